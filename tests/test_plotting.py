"""Figures draw into given axes, return their Figure, and never choose a backend."""

import subprocess
import sys

import numpy as np
from matplotlib.figure import Figure

from meanfield.plotting import plot_rates, plot_regime_exponents


def _block(ns, slope):
    mean = np.asarray(ns, float) ** slope
    return {"mean": mean.tolist(), "ci": np.stack([0.9 * mean, 1.1 * mean], 1).tolist(),
            "slope": slope, "slope_ci": [slope - 0.1, slope + 0.1], "intercept": 0.0,
            "theory": -0.5, "agrees": True, "two_term": {}}


SUMMARY = {"N": [10, 100, 1000],
           "regime": {"mode": "sde", "noise": "independent", "beta": 1.0, "alpha": 0.0,
                      "gamma": 0.1, "batch": 1, "replicas": 4},
           "coupling": _block([10, 100, 1000], -0.5),
           "w2": {**_block([10, 100, 1000], -0.4), "floor": [1e-3] * 3,
                  "floor_std": [1e-4] * 3, "estimator": "sliced"}}


def test_plot_rates_draws_into_the_given_axes():
    fig = Figure()
    ax = fig.subplots()
    assert plot_rates([("", SUMMARY)], ax=ax) is fig
    assert ax.get_xscale() == "log"
    own = plot_rates([("", SUMMARY)])
    assert isinstance(own, Figure)
    assert own is not fig


def test_plot_regime_exponents_takes_axes():
    cell = {"beta": 0.5, "alpha": 0.0, "gamma": 1.0, "batch": 1, "exponent": -0.25,
            "exponent_ci": [-0.3, -0.2], "theory": -0.25, "agrees": True,
            "spread": {"exponent": -0.5}, "limit_type": "deterministic",
            "limit_type_agrees": True}
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert plot_regime_exponents([cell], axes=axes) is fig


def test_no_backend_chosen_at_import():
    code = ("import matplotlib, sys; b = matplotlib.rcParams._get_backend_or_none(); "
            "import meanfield.plotting, meanfield.cli, meanfield.studies.paper; "
            "print(matplotlib.rcParams._get_backend_or_none() == b, "
            "'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "False"]
