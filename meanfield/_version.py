"""Package version and results format (one place each; setup.cfg reads the version).

``RESULTS_FORMAT`` is an integer bumped in the same commit as any change that moves the
engine's bits (the golden digests of ``tests/test_golden.py`` tell when).  Cached task
results are keyed by it, not by the package version: a release that moves no bits reuses
finished work, and an engine change that moves bits never mixes with older results.
"""

__version__ = "0.1.0"

RESULTS_FORMAT = 2
