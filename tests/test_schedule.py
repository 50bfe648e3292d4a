"""The stepsize schedule of docs/theory.rst §2: γ_{α,N}, n_T, snapshot steps, ω."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from meanfield.config import parse_config
from meanfield.schedule import eta, make_schedule, n_steps, omega, omega_integral


def config(**sections):
    return parse_config(sections)


@pytest.mark.parametrize(("beta", "n_total"),
                         [(0.0, 50000), (0.25, 10574), (0.5, 2236), (0.75, 473), (1.0, 100)])
def test_n_total_table(beta, n_total):
    # N = 500, T = 100, γ = 1, α = 0: n_T = round(100 · 500^{1−β}).
    cfg = config(schedule={"gamma": 1.0, "beta": beta, "alpha": 0.0},
                 dynamics={"mode": "sgd", "T": 100.0}, run={"N": 500})
    sched = make_schedule(cfg)
    assert sched.n_total == n_total
    assert sched.gamma_an == pytest.approx(500.0 ** (beta - 1.0), rel=1e-15)
    assert sched.dt == sched.gamma_an


@pytest.mark.parametrize(("gamma", "beta", "alpha", "N"),
                         [(1.0, 0.5, 0.25, 100), (0.1, 1.0, 0.25, 37), (0.5, 0.0, 0.5, 1000),
                          (2.0, 0.75, 0.9, 10), (0.01, 0.25, 0.0, 4096)])
@pytest.mark.parametrize(("mode", "dt_factor"), [("sgd", 1.0), ("sde", 0.3), ("ode", 1.0)])
def test_gamma_alpha_n_and_dt(gamma, beta, alpha, N, mode, dt_factor):
    cfg = config(schedule={"gamma": gamma, "beta": beta, "alpha": alpha},
                 dynamics={"mode": mode, "dt_factor": dt_factor, "T": 3.0}, run={"N": N})
    sched = make_schedule(cfg)
    gan = (gamma * N ** (beta - 1.0)) ** (1.0 / (1.0 - alpha))
    assert sched.gamma_an == pytest.approx(gan, rel=1e-14)
    dt = gan if mode == "sgd" else dt_factor * gan  # dt_factor ignored by sgd
    assert sched.dt == pytest.approx(dt, rel=1e-14)
    assert sched.n_total == max(1, round(3.0 / dt))
    assert sched.alpha == alpha


def test_dt_factor_ignored_by_sgd():
    base = {"schedule": {"gamma": 0.3}, "run": {"N": 50}}
    a = make_schedule(config(**base, dynamics={"mode": "sgd", "dt_factor": 0.25}))
    b = make_schedule(config(**base, dynamics={"mode": "sgd", "dt_factor": 1.0}))
    c = make_schedule(config(**base, dynamics={"mode": "sde", "dt_factor": 0.25}))
    assert a.dt == b.dt == a.gamma_an
    assert c.dt == pytest.approx(0.25 * a.gamma_an, rel=1e-15)
    assert c.n_total == round(1.0 / c.dt)


def test_n_steps_rounds_to_nearest_and_is_at_least_one():
    assert n_steps(1.0, 0.3) == 3  # 3.33
    assert n_steps(1.0, 0.15) == 7  # 6.67
    assert n_steps(1.0, 10.0) == 1  # 0.1 rounds to 0, but one step is the minimum


@pytest.mark.parametrize(("T", "gamma", "N", "S", "mode"),
                         [(1.0, 0.37, 20, 11, "sgd"), (2.3, 0.05, 7, 7, "sde"),
                          (1.0, 0.7, 3, 5, "ode"), (5.0, 1.3, 11, 4, "sgd"),
                          (0.9, 0.013, 100, 13, "sde")])
def test_snapshot_steps_are_nearest_steps(T, gamma, N, S, mode):
    cfg = config(schedule={"gamma": gamma, "beta": 1.0},
                 dynamics={"mode": mode, "T": T, "snapshots": S, "dt_factor": 0.7},
                 run={"N": N})
    sched = make_schedule(cfg)
    dt = sched.dt
    n_total = round(T / dt)
    assert sched.n_total == max(1, n_total)
    steps = np.asarray(sched.snapshot_steps)
    assert steps.shape == (S,)
    assert steps.dtype == np.int64
    assert steps[0] == 0
    assert steps[-1] == sched.n_total
    assert np.all(np.diff(steps) >= 0)
    grid = np.arange(sched.n_total + 1) * dt
    for s in range(S - 1):  # brute force: the grid point nearest to t_s = s T / (S − 1)
        t = s * T / (S - 1)
        assert steps[s] == np.argmin(np.abs(grid - t)), (s, t)
    np.testing.assert_array_equal(sched.times, steps * dt)


def test_omega_and_eta():
    t = np.array([0.0, 0.5, 3.0, 99.0])
    np.testing.assert_allclose(omega(t, 0.25), (1.0 + t) ** -0.25, rtol=1e-15)
    np.testing.assert_array_equal(omega(t, 0.0), np.ones(4))
    assert omega(3.0, 0.5) == pytest.approx(0.5, rel=1e-15)
    n = np.arange(5)
    gan = 0.2
    np.testing.assert_allclose(eta(n, gan, 0.25), gan * (1.0 + n * gan) ** -0.25, rtol=1e-15)
    # the learning-rate form of docs/theory.rst §2: η_n = γ N^β (n + 1/γ_{α,N})^{−α} / N
    gamma, beta, alpha, N = 0.7, 0.5, 0.25, 64
    gan = (gamma * N ** (beta - 1)) ** (1 / (1 - alpha))
    lr = gamma * N**beta * (n + 1 / gan) ** (-alpha)
    np.testing.assert_allclose(eta(n, gan, alpha), lr / N, rtol=1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.6])
def test_omega_integral(alpha):
    for t in (0.0, 0.3, 7.0):
        exact = quad(lambda s: (1.0 + s) ** -alpha, 0.0, t, epsabs=1e-13, epsrel=1e-13)[0]
        assert omega_integral(t, alpha) == pytest.approx(exact, rel=1e-11, abs=1e-14)
    assert math.isclose(omega_integral(7.0, 0.0), 7.0)
