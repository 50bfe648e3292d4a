"""``meanfield bench``: the engine's cost per step beside NumPy, PyTorch and JAX loops.

The package, top to bottom: :mod:`.reference` (the model maths in plain NumPy, the tests'
oracle), :mod:`.comparators` (the NumPy, PyTorch and JAX loops), :mod:`.workloads` (the
toy and digits workloads, the plans, the FLOP and byte models, the engine runs),
:mod:`.harness` (timing, machine probes, the run), :mod:`.report` (targets, bench.json,
bench.md) and :mod:`.command` (:func:`run_bench` and the command line).
"""

from .command import add_arguments as add_arguments
from .command import main as main
from .command import run_bench as run_bench
from .command import run_from_args as run_from_args
from .comparators import numpy_sgd as numpy_sgd
from .harness import cpu_seconds as cpu_seconds
from .harness import other_load as other_load
from .report import OTHER_LOAD_MAX as OTHER_LOAD_MAX
from .report import targets as targets
from .workloads import GAMMA as GAMMA
from .workloads import Plan as Plan
from .workloads import make_plan as make_plan

__all__ = [
    "GAMMA", "OTHER_LOAD_MAX", "Plan", "add_arguments", "cpu_seconds", "main", "make_plan",
    "numpy_sgd", "other_load", "run_bench", "run_from_args", "targets",
]
