"""Shared test setup: the ``--runslow`` option, a seeded ``rng`` and the NumPy oracle.

The ``ref`` fixture is ``meanfield.bench.reference``, a plain-NumPy implementation of
docs/theory.rst §1–3 (forward pass, losses, per-atom gradients H, drift, centred noise, one SGD /
Euler–Maruyama step) that imports nothing but NumPy (test_bench_reference.py checks), written
independently of the engine; the engine's kernels are checked against it. The bench's NumPy
comparator uses the same module.
"""

from types import SimpleNamespace

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked `slow`")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="needs --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def rng():
    """A freshly seeded generator, so every test is reproducible on its own."""
    return np.random.default_rng(20200714)


@pytest.fixture(scope="session")
def ref():
    """The NumPy oracle, :mod:`meanfield.bench.reference` (``ref.drift(...)``, ...)."""
    from meanfield.bench import reference

    return reference


def hand_data(rng, J, p_dim, C, loss, *, uniform=False):
    """A DataLaw-like namespace with random atoms in the loss's target encoding."""
    x = rng.standard_normal((J, p_dim))
    if loss == "logistic":
        y = np.where(rng.random(J) < 0.5, -1.0, 1.0)[:, None]
    elif loss == "cross_entropy":
        y = np.eye(C)[rng.integers(C, size=J)]
    else:
        y = rng.standard_normal((J, C))
    p = np.full(J, 1.0 / J) if uniform else rng.uniform(0.5, 1.5, J)
    p = p / p.sum()
    return SimpleNamespace(
        x=x, y=y, p=p, labels=None, x_test=np.zeros((0, p_dim)), y_test=np.zeros((0, C)),
        labels_test=None, uniform=bool(np.all(p == p[0])), name="hand")


@pytest.fixture(scope="session")
def make_hand_data():
    """Factory ``make_hand_data(rng, J, p_dim, C, loss, uniform=False)``."""
    return hand_data


def _cli_study(tmp_path_factory, command, toml_text):
    """Run ``meanfield COMMAND CONFIG --out DIR`` on toml_text in a fresh directory.

    The command must exit 0; returns DIR.
    """
    from meanfield.cli import main

    tmp = tmp_path_factory.mktemp(command)
    cfg = tmp / "r.toml"
    cfg.write_text(toml_text)
    out = tmp / "out"
    assert main([command, str(cfg), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def cli_study(tmp_path_factory):
    """Factory ``cli_study(command, toml_text)`` → the output directory of that study."""
    return lambda command, toml_text: _cli_study(tmp_path_factory, command, toml_text)
