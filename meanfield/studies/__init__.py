"""Experiments built from the pieces, each with its own task function for the runner.

- :mod:`.run`: ``meanfield run`` / ``meanfield limit`` (training runs, sweeps, limits);
- :mod:`.rate`: ``meanfield rate``, the convergence-rate study;
- :mod:`.regimes`: ``meanfield regimes``, a rate study per stepsize regime;
- :mod:`.paper`: the paper's digits experiment (``scripts/reproduce_paper.py``).
"""
