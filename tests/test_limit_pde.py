"""Grid PDE limit solver (meanfield.limit.pde) against the closed form of docs/theory.rst §6.

Linear F(w, x) = ⟨w, x⟩, squared loss, layers = first, D = p = 2: h(w, λ) = Q m − c for every
w, so the deterministic flow translates λ rigidly, m_t = m* + e^{−Q∫ω}(m_0 − m*), and with
β = 1, mode = sde, α = 0 the law stays Gaussian with moments solving
dm/dt = −(Q m − c), dS/dt = (γ/M) Σ(m).
"""

from types import SimpleNamespace

import numpy as np
import ot
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from meanfield import model as models
from meanfield.config import parse_config
from meanfield.errors import ConfigError, NumericalError
from meanfield.limit import pde
from meanfield.schedule import omega_integral

SCALE = 0.5  # std of μ₀ = N(0, SCALE² I)


@pytest.fixture(scope="module")
def data():
    """Four atoms, uniform weights, Q = Σ p_j x_j x_jᵀ well conditioned."""
    x = np.array([[1.0, 0.2], [-0.3, 1.1], [0.8, -0.7], [0.1, 0.9]])
    y = np.array([[0.5], [-0.4], [0.9], [0.3]])
    return SimpleNamespace(x=x, y=y, p=np.full(4, 0.25), labels=None, uniform=True,
                           name="hand")


def linear_config(grid, **kw):
    sec = {"model": {"layers": "first", "activation": "linear", "loss": "squared"},
           "init": {"kind": "normal", "scale": SCALE},
           "schedule": {"beta": 1.0, "alpha": 0.0, "gamma": 1.0, "batch": 2},
           "dynamics": {"mode": "ode", "T": 2.0, "snapshots": 3},
           "limit": {"grid": grid}}
    for key, value in kw.items():
        s, k = key.split("__")
        sec[s][k] = value
    return parse_config(sec)


def solve(cfg, data):
    return pde.solve_pde(cfg, data=data, model=models.make_model(cfg, data))


def qc(data):
    Q = (data.x * data.p[:, None]).T @ data.x
    c = (data.x * data.p[:, None]).T @ data.y[:, 0]
    return Q, c


def moments(lim, s):
    """Mean (2,) and covariance (2, 2) of the grid density at snapshot s."""
    g = np.meshgrid(*lim.centres, indexing="ij")
    cell = np.prod([c[1] - c[0] for c in lim.centres])
    d = lim.density[s] * cell
    m = np.array([(gi * d).sum() for gi in g])
    C = np.array([[((g[a] - m[a]) * (g[b] - m[b]) * d).sum() for b in range(2)]
                  for a in range(2)])
    return m, C


def check_mass_and_sign(lim):
    cell = np.prod([c[1] - c[0] for c in lim.centres])
    mass = lim.density.reshape(len(lim.times), -1).sum(axis=1) * cell
    np.testing.assert_allclose(mass, 1.0, rtol=0.0, atol=1e-12)
    assert np.all(lim.density >= 0.0)


@pytest.fixture(scope="module")
def ode_limit(data):
    cfg = linear_config(128, schedule__alpha=0.25)
    return cfg, solve(cfg, data)


def test_ode_mean_and_covariance_match_closed_form(ode_limit, data):
    cfg, lim = ode_limit
    Q, c = qc(data)
    ms = np.linalg.solve(Q, c)
    for s, t in enumerate(lim.times):
        mt = ms + expm(-Q * omega_integral(t, 0.25)) @ (np.zeros(2) - ms)
        m, C = moments(lim, s)
        np.testing.assert_allclose(m, mt, rtol=1e-3, atol=1e-3 * np.abs(ms).max())
        np.testing.assert_allclose(C, SCALE**2 * np.eye(2), rtol=0.0, atol=5e-3 * SCALE**2)


def test_limit_layout(ode_limit, data):
    cfg, lim = ode_limit
    T = cfg.dynamics.T
    assert lim.method == "pde"
    np.testing.assert_array_equal(lim.times, np.linspace(0.0, T, 3))
    assert lim.t_u[0] == 0.0
    assert lim.t_u[-1] == T
    assert np.all(np.diff(lim.t_u) > 0)
    assert set(lim.times) <= set(lim.t_u)  # snapshot times are hit exactly
    assert lim.u.shape == (len(lim.t_u), 4, 1)
    assert lim.density.shape == (3, 128, 128)
    assert [len(c) for c in lim.centres] == [128, 128]
    # u_t = ⟨λ_t, F(·, x_j)⟩ = ⟨m_t, x_j⟩ for the linear model
    m, _ = moments(lim, 2)
    np.testing.assert_allclose(lim.u[-1, :, 0], data.x @ m, rtol=1e-10, atol=1e-12)
    check_mass_and_sign(lim)


def test_w2_convergence_order(data):
    """W2(PDE, exact Gaussian projected on the same grid) at order ≥ 1.5 (32², 64², 128²).

    Exact discrete W2 with ``ot.emd2`` on the weighted cell-centre clouds; cells of mass
    ≤ 1e-9 are dropped from both clouds (≤ 3e-7 of the mass, both renormalised) to keep the
    128² problem at ~4400 points.
    """
    Q, c = qc(data)
    ms = np.linalg.solve(Q, c)
    errors, hs = [], []
    for n in (32, 64, 128):
        cfg = linear_config(n, dynamics__snapshots=2)
        lim = solve(cfg, data)
        T = cfg.dynamics.T
        mt = ms + expm(-Q * T) @ (np.zeros(2) - ms)
        h = np.array([cc[1] - cc[0] for cc in lim.centres])
        edges = [np.append(cc - hh / 2, cc[-1] + hh / 2) - m
                 for cc, hh, m in zip(lim.centres, h, mt, strict=True)]
        exact = pde.initial_masses(edges, [("normal", SCALE)] * 2).ravel()
        got = lim.density[-1].ravel() * h.prod()
        pts = np.stack([g.ravel() for g in np.meshgrid(*lim.centres, indexing="ij")], axis=1)
        ka, kb = got > 1e-9, exact > 1e-9
        assert 1.0 - got[ka].sum() < 1e-6
        assert 1.0 - exact[kb].sum() < 1e-6
        w2sq = ot.emd2(got[ka] / got[ka].sum(), exact[kb] / exact[kb].sum(),
                       ot.dist(pts[ka], pts[kb]), numItermax=10**7)
        errors.append(np.sqrt(w2sq))
        hs.append(h[0])
    order = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    local = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert order >= 1.5, (errors, order)
    assert np.all(local >= 1.4), (errors, local)


def test_sde_moments_match_moment_ode(data):
    """β = 1, sde, α = 0: mean and covariance against solve_ivp of the moment equations."""
    cfg = linear_config(128, dynamics__mode="sde")
    lim = solve(cfg, data)
    Q, c = qc(data)
    x, y, p = data.x, data.y[:, 0], data.p
    k = cfg.schedule.gamma / cfg.schedule.batch

    def rhs(t, z):
        m = z[:2]
        G = x * (x @ m - y)[:, None] - (Q @ m - c)
        sig = (G * p[:, None]).T @ G
        return np.concatenate([-(Q @ m - c), k * sig.ravel()])

    z0 = np.concatenate([np.zeros(2), (SCALE**2 * np.eye(2)).ravel()])
    sol = solve_ivp(rhs, (0.0, cfg.dynamics.T), z0, t_eval=lim.times, rtol=1e-11,
                    atol=1e-13, method="DOP853")
    for s in range(len(lim.times)):
        m, C = moments(lim, s)
        mt, St = sol.y[:2, s], sol.y[2:, s].reshape(2, 2)
        np.testing.assert_allclose(m, mt, rtol=5e-3, atol=5e-3 * np.abs(sol.y[:2, -1]).max())
        np.testing.assert_allclose(C, St, rtol=0.0, atol=5e-3 * np.abs(St).max())
    assert np.abs(moments(lim, -1)[1] - SCALE**2 * np.eye(2)).max() > 0.05  # diffusion acts
    check_mass_and_sign(lim)


@pytest.mark.parametrize(("kind", "mode"), [("normal", "sde"), ("uniform", "ode")])
def test_nonlinear_conserves_mass_and_sign(kind, mode, rng, make_hand_data):
    """tanh, both layers (D = 2): mass, positivity, u consistent with λ_T.

    (A discontinuous μ₀ is run without diffusion: the centred cross-diffusion stencil is not
    monotone at a jump, see the module docstring of meanfield.limit.pde.)
    """
    data = make_hand_data(rng, 16, 1, 1, "squared", uniform=True)
    cfg = parse_config({"model": {"layers": "both", "activation": "tanh"},
                        "init": {"kind": kind, "scale": 1.0},
                        "schedule": {"beta": 1.0, "gamma": 0.5, "batch": 4},
                        "dynamics": {"mode": mode, "T": 1.0, "snapshots": 3},
                        "limit": {"grid": 48}})
    model = models.make_model(cfg, data)
    lim = pde.solve_pde(cfg, data=data, model=model)
    check_mass_and_sign(lim)
    cell = np.prod([c[1] - c[0] for c in lim.centres])
    pts = np.stack([g.ravel() for g in np.meshgrid(*lim.centres, indexing="ij")], axis=1)
    want = models.mean_field(pts, data.x, model, weights=lim.density[-1].ravel() * cell)
    np.testing.assert_allclose(lim.u[-1], want, rtol=1e-12, atol=1e-14)
    assert np.all(np.isfinite(lim.u))


def test_one_dimensional(data):
    """D = 1 (first layer, p = 1): the mean translates as m_t = m* + e^{−qt}(m_0 − m*)."""
    d1 = SimpleNamespace(x=data.x[:, :1], y=data.y, p=data.p)
    cfg = linear_config(256)
    lim = solve(cfg, d1)
    q, cc = qc(d1)
    ms = cc[0] / q[0, 0]
    mt = ms + np.exp(-q[0, 0] * cfg.dynamics.T) * (0.0 - ms)
    (ctr,) = lim.centres
    dx = ctr[1] - ctr[0]
    assert lim.density.shape == (3, 256)
    np.testing.assert_allclose((ctr * lim.density[-1]).sum() * dx, mt, rtol=1e-3)
    np.testing.assert_allclose(lim.density.sum(axis=1) * dx, 1.0, rtol=0, atol=1e-12)


def test_three_parameters_rejected(rng, make_hand_data):
    data = make_hand_data(rng, 8, 2, 1, "squared")
    cfg = parse_config({"model": {"layers": "both"}, "limit": {"grid": 16}})
    with pytest.raises(ConfigError, match="limit.method"):
        pde.solve_pde(cfg, data=data, model=models.make_model(cfg, data))


@pytest.mark.parametrize("init", [{"kind": "dirac", "point": [0.1, 0.2]},
                                  {"kind": "torch_default"}])
def test_initial_law_without_density_rejected(init, data):
    cfg = parse_config({"model": {"layers": "first", "activation": "linear"}, "init": init})
    with pytest.raises(ConfigError, match="init.kind"):
        solve(cfg, data)


def test_mass_at_boundary_raises(data):
    """A box too small for the translated law: the boundary check stops the solve."""
    cfg = linear_config(32)
    law = [("normal", SCALE)] * 2
    box = np.array([[-2.5, 1.0], [-2.5, 2.5]])  # m_T leaves through the right edge of axis 0
    Q, c = qc(data)
    assert np.linalg.solve(Q, c)[0] > 0.5
    with pytest.raises(NumericalError, match="PDE mass reached the domain boundary at t = "):
        pde.evolve(cfg, data, models.make_model(cfg, data), box, law)


def test_domain_covers_the_flow(data):
    cfg = linear_config(32)
    model = models.make_model(cfg, data)
    box = pde.domain(cfg, data, model, [("normal", SCALE)] * 2)
    Q, c = qc(data)
    ms = np.linalg.solve(Q, c)
    for t in np.linspace(0.0, cfg.dynamics.T, 9):
        mt = ms - expm(-Q * t) @ ms
        assert np.all(box[:, 0] < mt - 7 * SCALE)
        assert np.all(mt + 7 * SCALE < box[:, 1])


def test_wide_grid_bits_do_not_depend_on_thread_count(data):
    """Grids of ≥ PARALLEL_MIN cells run their rows on threads() threads in fixed parts."""
    import numba

    cfg = linear_config(64, dynamics__mode="sde", dynamics__T=0.2)
    assert pde.PARALLEL_MIN <= 64 * 64
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = solve(cfg, data)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = solve(cfg, data)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.density, many.density)
    np.testing.assert_array_equal(one.u, many.u)
