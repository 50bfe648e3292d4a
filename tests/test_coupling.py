"""Synchronous coupling (docs/theory.rst §5) and the limit solvers that drive it."""

import types

import numpy as np
import pytest

import meanfield as mf
from meanfield.errors import ConfigError
from meanfield.io import trajectory_dataset
from meanfield.limit import solve_limit


def _linear_data(J=12, seed=3):
    """Hand-built data with y = 0, so m* = Q⁻¹c = 0 = mean of μ₀ and the limit stands still."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(J, 2)) * np.array([1.0, 0.6])
    return types.SimpleNamespace(x=x, y=np.zeros((J, 1)), p=np.full(J, 1.0 / J), labels=None,
                                 x_test=np.zeros((0, 2)), y_test=np.zeros((0, 1)),
                                 labels_test=None, uniform=True, name="hand")


def _bootstrap_se(samples, rng, n_boot=2000):
    idx = rng.integers(0, len(samples), (n_boot, len(samples)))
    return np.sqrt(samples[idx].mean(axis=1)).std(ddof=1)


@pytest.mark.parametrize("N", [100, 1000])
def test_closed_form_coupling_error(N):
    """Linear F, squared loss, ode, m* = m_0: particles translate by ((I − ηQ)^n − I)δ with
    δ the empirical initial mean, twins stand still, so E_N² = tr(A Σ₀ Aᵀ)/N with
    A = I − (I − ηQ)^{n_T}, Σ₀ = scale² I.  One sample of |Aδ|² per replica: 256 replicas
    give a bootstrap standard error of ≈ 3 % on E_N."""
    data = _linear_data()
    cfg = mf.parse_config({
        "model": {"layers": "first", "activation": "linear"},
        "dynamics": {"mode": "ode", "T": 2.0, "snapshots": 3},
        "schedule": {"gamma": 0.05},
        "init": {"scale": 0.7},
        "run": {"N": N, "seeds": 256, "seed": 11},
        "limit": {"method": "quadrature"},
    })
    limit = solve_limit(cfg, data=data)
    assert np.abs(limit.u).max() < 1e-12  # the limit stands still
    traj = mf.simulate(cfg, data=data, limit=limit, save_weights=False)
    per_replica = traj.coupling_sq.mean(axis=1)
    # every particle of a replica carries the same error
    np.testing.assert_allclose(traj.coupling_sq, per_replica[:, None] * np.ones((1, N)),
                               rtol=1e-9)
    E = np.sqrt(per_replica.mean())
    se = _bootstrap_se(per_replica, np.random.default_rng(0))
    Q = data.x.T @ data.x / len(data.x)
    eta, n = traj.schedule.dt, traj.schedule.n_total
    A = np.eye(2) - np.linalg.matrix_power(np.eye(2) - eta * Q, n)
    exact = np.sqrt(np.trace(A @ (0.49 * np.eye(2)) @ A.T) / N)
    assert se / E < 0.05
    assert abs(E - exact) <= 3 * se, (E, exact, se)
    # coupling_rms at T equals the RMS distance, output error = |Q^{1/2}-ish| > 0, 0 at t = 0
    assert np.all(traj.coupling_rms[:, 0] == 0.0)
    np.testing.assert_allclose(traj.coupling_rms[:, -1] ** 2, per_replica, rtol=1e-9)
    assert np.all(traj.output_error[:, -1] > 0)
    ds = trajectory_dataset(traj)
    assert ds["coupling_sq"].dims == ("replica", "neuron")
    assert ds["coupling_rms"].dims == ("replica", "time")
    assert ds["output_error"].dims == ("replica", "time")


def test_coupling_error_decreases_with_n_nonlinear_sde():
    """tanh, both layers, D = 2, sde at β = 1 against a reference limit: E_N falls with N
    (about like N^{-1/2}); the reference's own error is far below E_N at N = 10⁴."""
    base = {"data": {"n": 16}, "dynamics": {"mode": "sde", "T": 1.0, "snapshots": 3},
            "schedule": {"gamma": 0.1, "batch": 4},
            "limit": {"method": "reference", "N_ref": 400_000}}
    cfg = mf.parse_config({**base, "run": {"N": 100, "seeds": 4}})
    limit = solve_limit(cfg)
    E = []
    for N, R in [(100, 16), (1000, 4), (10_000, 2)]:
        traj = mf.simulate(mf.with_values(cfg, {"run.N": N, "run.seeds": R}), limit=limit,
                           save_weights=False)
        E.append(np.sqrt(traj.coupling_sq.mean()))
    assert E[0] > E[1] > E[2], E
    slope = np.polyfit(np.log([100, 1000, 10_000]), np.log(E), 1)[0]
    assert -0.75 < slope < -0.3, (slope, E)


@pytest.mark.parametrize(("mode", "beta", "noise"), [("sgd", 1.0, "independent"),
                                                     ("sde", 1.0, "shared")])
def test_coupling_undefined_combinations(mode, beta, noise):
    cfg = mf.parse_config({"dynamics": {"mode": mode, "noise": noise},
                           "schedule": {"beta": beta}, "run": {"N": 10}})
    with pytest.raises(ConfigError, match="beta"):
        solve_limit(cfg)


def test_sgd_beta_below_one_couples_with_deterministic_flow():
    cfg = mf.parse_config({"data": {"n": 8}, "dynamics": {"mode": "sgd", "T": 0.5,
                                                          "snapshots": 2},
                           "schedule": {"beta": 0.5, "gamma": 0.5}, "run": {"N": 50},
                           "limit": {"method": "quadrature"}})
    limit = solve_limit(cfg)
    traj = mf.simulate(cfg, limit=limit)
    assert np.all(np.isfinite(traj.coupling_sq))
    assert traj.coupling_sq.max() > 0


def test_quadrature_and_reference_agree_within_monte_carlo_error():
    """mode = ode, tanh D = 2: the quadrature u_T agrees with the mean of 16 independent
    references (N_ref = 25 000 each, one replica each of the reference solver's engine run)
    within 5 standard errors of that mean, per atom (SE from the references' spread, t with
    15 dof: P(|t| > 5) ≈ 2e-4 per atom); the Euler error of the reference (dt = 0.005),
    estimated by halving dt, is checked to be below half that SE."""
    from meanfield.limit.reference import reference_schedule, solve_reference

    cfg = mf.parse_config({"data": {"n": 16},
                           "dynamics": {"mode": "ode", "T": 1.0, "snapshots": 3},
                           "limit": {"method": "quadrature", "dt": 0.005}})
    q = solve_limit(cfg)
    refs = mf.simulate(mf.with_values(cfg, {"run.N": 25_000, "run.seeds": 16}),
                       schedule=reference_schedule(cfg), save_weights=False)
    uT = refs.u[:, -1]  # (16, J, 1)
    se = uT.std(axis=0, ddof=1) / np.sqrt(len(uT))
    assert np.all(np.abs(q.u[-1] - uT.mean(axis=0)) <= 5 * se)
    data = mf.make_data(cfg)
    model = mf.make_model(cfg, data)
    small = mf.with_values(cfg, {"limit.N_ref": 25_000})
    r1 = solve_reference(small, data, model)
    r2 = solve_reference(mf.with_values(small, {"limit.dt": 0.0025}), data, model)
    assert np.all(np.abs(r1.u[-1] - r2.u[-1]) < 0.25 * se)  # Euler error ≲ SE / 2
