"""The particle engine (docs/theory.rst §2–3, §6) against the NumPy oracle of conftest.py.

Engine steps are checked one at a time: with T = 3 dt and 4 snapshots the snapshots are
steps 0, 1, 2, 3, so W at snapshot n + 1 must equal the reference step applied to W at
snapshot n, with the engine's own random draws (``batch_draws``, ``noise_draws``).
Data are hand-built (not ``make_data``), so these tests do not depend on data.py.
"""

import os
import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from meanfield import engine
from meanfield._kernels.jit import _ATOMS
from meanfield._kernels.step import BLOWUP
from meanfield.config import parse_config, with_values
from meanfield.engine import batch_draws, noise_draws, simulate
from meanfield.errors import ConfigError, NumericalError
from meanfield.init import initial_particles, replica_streams
from meanfield.model import make_model

ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear"]
HEADS = [("both", "squared", 1), ("both", "squared", 3), ("first", "squared", 1),
         ("both", "logistic", 1), ("first", "logistic", 1), ("both", "cross_entropy", 3)]
COMBOS = [(a, *h) for a in ACTIVATIONS for h in HEADS]
COMBO_IDS = [f"{a}-{layers}-{loss}-C{C}" for a, layers, loss, C in COMBOS]
P_DIM = 2


def make_config(act="tanh", layers="both", loss="squared", C=1, *, l2=0.0, mode="sde",
                noise="independent", sampling="iid", alpha=0.0, beta=1.0, gamma=0.5, M=4,
                T=1.0, snapshots=2, dt_factor=1.0, N=6, seeds=1, seed=0, dtype="float64",
                init=None):
    kind = "gaussian_mixture" if loss == "cross_entropy" else "teacher"
    return parse_config({
        "model": {"activation": act, "layers": layers, "loss": loss, "l2": l2},
        "data": {"kind": kind, "classes": max(C, 2)},
        "init": init or {"kind": "normal", "scale": 1.0},
        "schedule": {"gamma": gamma, "beta": beta, "alpha": alpha, "batch": M},
        "dynamics": {"mode": mode, "noise": noise, "sampling": sampling, "T": T,
                     "snapshots": snapshots, "dt_factor": dt_factor},
        "run": {"N": N, "seeds": seeds, "seed": seed, "dtype": dtype},
    })


def gamma_an(gamma, beta, alpha, N):
    """γ_{α,N} = (γ N^{β−1})^{1/(1−α)} (docs/theory.rst §2), written out independently."""
    return (gamma * N ** (beta - 1.0)) ** (1.0 / (1.0 - alpha))


def spec(act, layers, loss, C, l2):
    return SimpleNamespace(act=act, layers=layers, loss=loss, C=C, l2=l2)


def reference_step(ref, W, r, n, keys, cfg, data, m, gan, dt, *, per_atom=False):
    """One engine step n of replica r (from W (N, D)) in NumPy; per_atom: J normals per
    particle even where the engine draws Σ^{1/2} ξ (as it does for coupled runs)."""
    d, s = cfg.dynamics, cfg.schedule
    if d.mode == "sgd":
        atoms = batch_draws(keys[r], n, s.batch, data.p, sampling=d.sampling)
        return ref.sgd_step(W, n, atoms, data, m, gan, s.alpha)
    xi, root = None, False
    if d.mode == "sde":
        # independent noise on a line (D = 2), uncoupled: 2 normals per particle times Σ^{1/2}
        root = d.noise == "independent" and W.shape[1] == 2 and m.layers == "both" and not per_atom
        xi = noise_draws(keys[r], n, W.shape[0], 2 if root else data.x.shape[0])
        if d.noise == "shared":
            xi = np.tile(xi[0], (W.shape[0], 1))
    return ref.em_step(W, n, xi, data, m, gan, dt, s.alpha, s.batch, root=root)


# (mode, noise, sampling, alpha, l2, dt_factor)
STEP_CASES = [
    ("sgd", "independent", "iid", 0.0, 0.0, 1.0),
    ("sgd", "independent", "iid", 0.25, 0.3, 1.0),
    ("sgd", "independent", "epochs", 0.25, 0.0, 1.0),
    ("sde", "independent", "iid", 0.0, 0.0, 1.0),
    ("sde", "independent", "iid", 0.25, 0.3, 0.5),
    ("sde", "shared", "iid", 0.0, 0.3, 1.0),
    ("sde", "shared", "iid", 0.25, 0.0, 0.5),
    ("ode", "independent", "iid", 0.25, 0.3, 0.5),
]
STEP_IDS = [f"{m}-{nz if m == 'sde' else s}-a{a}-l2{lam}-f{f}"
            for m, nz, s, a, lam, f in STEP_CASES]


@pytest.mark.parametrize(("mode", "noise", "sampling", "alpha", "l2", "dt_factor"), STEP_CASES,
                         ids=STEP_IDS)
@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=COMBO_IDS)
def test_steps_match_reference(act, layers, loss, C, mode, noise, sampling, alpha, l2,
                               dt_factor, rng, ref, make_hand_data):
    N, J, M, R = 6, 7, 3, 2  # J odd: the last Box–Muller pair is half used
    data = make_hand_data(rng, J, P_DIM, C, loss, uniform=sampling == "epochs")
    gan = gamma_an(1.0, 0.5, alpha, N)
    dt = gan if mode == "sgd" else dt_factor * gan
    cfg = make_config(act, layers, loss, C, l2=l2, mode=mode, noise=noise, sampling=sampling,
                      alpha=alpha, beta=0.5, gamma=1.0, M=M, T=3 * dt, snapshots=4,
                      dt_factor=dt_factor, N=N, seeds=R, seed=11)
    traj = simulate(cfg, data=data)
    assert traj.schedule.gamma_an == pytest.approx(gan, rel=1e-14)
    assert traj.schedule.dt == pytest.approx(dt, rel=1e-14)
    np.testing.assert_array_equal(traj.steps, [0, 1, 2, 3])
    D = (C if layers == "both" else 0) + P_DIM
    assert traj.W.shape == (R, 4, N, D)
    assert traj.W.dtype == np.float64
    _, keys = replica_streams(cfg)
    m = spec(act, layers, loss, C, l2)
    for r in range(R):
        for n in range(3):
            expected = reference_step(ref, traj.W[r, n], r, n, keys, cfg, data, m, gan, dt)
            np.testing.assert_allclose(traj.W[r, n + 1], expected, rtol=1e-12, atol=1e-12,
                                       err_msg=f"replica {r}, step {n}")
        assert not np.array_equal(traj.W[r, 0], traj.W[r, 3])


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize(("mode", "M", "J", "noise"), [
    ("sgd", 10, 7, "root"), ("sgd", 3, 7, "root"), ("sde", 4, 7, "root"), ("sde", 4, 6, "root"),
    ("sde", 4, 5, "root"), ("ode", 4, 9, "root"), ("sde", 4, 4, "root"), ("sde", 4, 7, "atoms"),
    ("sde", 4, 6, "atoms"), ("sde", 4, 5, "atoms"), ("sde", 4, 4, "atoms")])
def test_scalar_regression_on_a_line_matches_reference(act, mode, M, J, noise, rng, ref,
                                                       make_hand_data, monkeypatch):
    # layers = both, C = 1, p = 1 takes the one-pass tile kernel (_kernels.step._grads_full_tile),
    # with partial tiles padded by zero-weight copies: M = 10 is tiles of 4, 4, 2; M = 3 one
    # partial tile; J = 7, 6, 5 and 9 (sde, ode) end with partial tiles of 3, 2 and 1 atoms,
    # J = 4 is one full tile.  Independent sde noise is Σ^{1/2} ξ (second moments summed in
    # the tile), or with noise = "atoms" (what coupled runs use) J normals drawn in registers.
    if noise == "atoms":
        monkeypatch.setattr(engine, "noise_sampler", lambda *a, **k: _ATOMS)
    N, R = 13, 2
    data = make_hand_data(rng, J, 1, 1, "squared")
    gan = gamma_an(1.0, 0.5, 0.25, N)
    cfg = make_config(act, "both", "squared", 1, l2=0.05, mode=mode, alpha=0.25, beta=0.5,
                      gamma=1.0, M=M, T=3 * gan, snapshots=4, N=N, seeds=R, seed=3)
    traj = simulate(cfg, data=data)
    _, keys = replica_streams(cfg)
    m = spec(act, "both", "squared", 1, 0.05)
    for r in range(R):
        for n in range(3):
            W = traj.W[r, n]
            expected = reference_step(ref, W, r, n, keys, cfg, data, m, gan, gan,
                                      per_atom=noise == "atoms")
            atol = 1e-12
            if mode == "sde" and noise == "root":
                # Σ is rank 1 for relu (every H_j ∥ (w, a)): a square root of rounded Σ is off
                # by ≈ (ε tr Σ)^{1/2} in the null direction, in the engine and in eigh alike
                u = ref.mean_field(W, data.x, "both", act, 1)
                tr = [np.trace(ref.noise_cov(w, u, data.x, data.y, data.p, "both", act,
                                             "squared", 1)) for w in W]
                xi = noise_draws(keys[r], n, N, 2)
                ns = np.sqrt(gan * gan / M)
                eps = np.finfo(np.float64).eps
                atol = 1e-12 + ns * np.sqrt(64 * eps * np.array(tr)) * np.linalg.norm(xi, axis=1)
                atol = atol[:, None]
            err = np.abs(traj.W[r, n + 1] - expected) - 1e-12 * np.abs(expected)
            assert np.all(err <= atol), (r, n, np.max(err / atol))


@pytest.mark.parametrize(("mode", "noise"), [("sgd", "independent"), ("sde", "independent"),
                                             ("sde", "shared")])
def test_steps_match_reference_block_parallel_path(mode, noise, rng, ref, make_hand_data):
    # R = 1 and N ≥ 16 · 512 runs the neuron blocks in parallel; N = 8200 ends with a
    # partial block.
    N, J, M = 8200, 5, 2
    data = make_hand_data(rng, J, P_DIM, 1, "squared")
    gan = gamma_an(0.5, 1.0, 0.25, N)
    cfg = make_config("tanh", "both", "squared", 1, l2=0.1, mode=mode, noise=noise,
                      alpha=0.25, gamma=0.5, M=M, T=2 * gan, snapshots=3, N=N, seed=5)
    traj = simulate(cfg, data=data)
    np.testing.assert_array_equal(traj.steps, [0, 1, 2])
    _, keys = replica_streams(cfg)
    m = spec("tanh", "both", "squared", 1, 0.1)
    for n in range(2):
        expected = reference_step(ref, traj.W[0, n], 0, n, keys, cfg, data, m, gan, gan)
        np.testing.assert_allclose(traj.W[0, n + 1], expected, rtol=1e-12, atol=1e-12)


def test_trajectory_contents(rng, ref, make_hand_data):
    N, J, C, R, S = 10, 6, 3, 2, 5
    data = make_hand_data(rng, J, P_DIM, C, "cross_entropy")
    cfg = make_config("sigmoid", "both", "cross_entropy", C, mode="sde", T=1.3, snapshots=S,
                      N=N, seeds=R, gamma=0.2)
    traj = simulate(cfg, data=data)
    assert traj.W.shape == (R, S, N, C + P_DIM)
    assert traj.u.shape == (R, S, J, C)
    assert traj.risk.shape == (R, S)
    dt = gamma_an(0.2, 1.0, 0.0, N)
    np.testing.assert_allclose(traj.times, traj.steps * dt, rtol=1e-15)
    assert traj.steps[-1] == round(1.3 / dt)
    for r in range(R):
        for s in range(S):
            u = ref.mean_field(traj.W[r, s], data.x, "both", "sigmoid", C)
            np.testing.assert_allclose(traj.u[r, s], u, rtol=1e-13, atol=1e-14)
            risk = data.p @ ref.loss_value(u, data.y, "cross_entropy")
            assert traj.risk[r, s] == pytest.approx(risk, rel=1e-13)
    assert traj.accuracy is None  # no labels
    assert traj.test_risk is None  # no held-out atoms
    lean = simulate(cfg, data=data, save_weights=False)
    assert lean.W is None
    np.testing.assert_array_equal(lean.u, traj.u)


# ---------------------------------------------------------------- batches
@pytest.mark.parametrize(("J", "M"), [(12, 4), (12, 3), (12, 12), (12, 1), (7, 7)])
def test_epoch_batches_cover_every_atom_once(J, M):
    p = np.full(J, 1.0 / J)
    per_epoch = J // M
    key = replica_streams(make_config(seed=3))[1][0]
    first = None
    for epoch in range(4):
        atoms = np.concatenate([batch_draws(key, epoch * per_epoch + i, M, p, sampling="epochs")
                                for i in range(per_epoch)])
        np.testing.assert_array_equal(np.sort(atoms), np.arange(J), err_msg=f"epoch {epoch}")
        if epoch == 0:
            first = atoms
    if J > 3:  # epochs are reshuffled (all 4 equal has probability (1/J!)³)
        later = [np.concatenate([batch_draws(key, e * per_epoch + i, M, p, sampling="epochs")
                                 for i in range(per_epoch)]) for e in (1, 2, 3)]
        assert any(not np.array_equal(first, x) for x in later)


@pytest.mark.parametrize("uniform", [True, False])
def test_iid_batches_follow_atom_weights(uniform):
    J, M, steps = 5, 500, 400
    p = np.full(J, 0.2) if uniform else np.array([0.05, 0.1, 0.15, 0.3, 0.4])
    key = replica_streams(make_config(seed=4))[1][0]
    atoms = np.concatenate([batch_draws(key, n, M, p) for n in range(steps)])
    n = atoms.size
    assert atoms.min() >= 0
    assert atoms.max() < J
    counts = np.bincount(atoms, minlength=J)
    # multinomial counts: sd (n p (1 − p))^{1/2}, 5σ each
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p))), (counts, n * p)


def test_epochs_need_uniform_weights(rng, make_hand_data):
    data = make_hand_data(rng, 6, P_DIM, 1, "squared")
    assert not data.uniform
    cfg = make_config(mode="sgd", sampling="epochs", M=2)
    with pytest.raises(ConfigError, match="epochs"):
        simulate(cfg, data=data)


def test_noise_draws_are_standard_normal():
    key = replica_streams(make_config(seed=9))[1][0]
    xi = noise_draws(key, 3, 20000, 7).ravel()
    n = xi.size
    # mean sd 1/√n; variance sd (2/n)^{1/2}; 5σ
    assert abs(xi.mean()) < 5 / np.sqrt(n)
    assert abs(xi.var() - 1.0) < 5 * np.sqrt(2.0 / n)
    assert abs(np.mean(xi**4) - 3.0) < 5 * np.sqrt(96.0 / n)  # Var(ξ⁴) = 105 − 9 = 96
    other = noise_draws(key, 4, 20000, 7).ravel()
    assert abs(np.corrcoef(xi, other)[0, 1]) < 5 / np.sqrt(n)


def test_noise_draws_do_not_depend_on_call_history():
    # noise_draws(key, step) must be a pure function of (key, step): the same draws
    # whatever was called before (and no exception), or the engine cannot be replayed.
    keys = replica_streams(make_config(seed=11, seeds=2))[1]
    steps = range(10)
    forward = {(r, s): noise_draws(keys[r], s, 3, 5) for r in range(2) for s in steps}
    for r in (1, 0):
        for s in reversed(steps):
            np.testing.assert_array_equal(noise_draws(keys[r], s, 3, 5), forward[r, s],
                                          err_msg=f"replica {r}, step {s}")


# ---------------------------------------------------------------- closed form (docs/theory.rst §6)
@pytest.mark.parametrize(("alpha", "dt_factor"), [(0.0, 1.0), (0.25, 0.5)])
def test_ode_linear_closed_form(alpha, dt_factor, rng, make_hand_data):
    # F(w, x) = ⟨w, x⟩, squared loss: h = Q m − c for every particle (m the particle mean),
    # so all particles translate by the same vector and
    # m_{n+1} − m* = (I − ω_n dt Q)(m_n − m*), i.e. m* + (I − ηQ)^n (m_0 − m*) when α = 0.
    N, J = 40, 5
    data = make_hand_data(rng, J, P_DIM, 1, "squared", uniform=True)
    x, y, p = data.x, data.y[:, 0], data.p
    Q = (x * p[:, None]).T @ x
    c = x.T @ (p * y)
    m_star = np.linalg.solve(Q, c)
    gan = gamma_an(0.2, 1.0, alpha, N)
    dt = dt_factor * gan
    cfg = make_config("linear", "first", "squared", 1, mode="ode", alpha=alpha, gamma=0.2,
                      T=40 * dt, snapshots=11, dt_factor=dt_factor, N=N, seeds=2)
    traj = simulate(cfg, data=data)
    np.testing.assert_array_equal(traj.steps, np.arange(0, 41, 4))
    for r in range(2):
        W = traj.W[r]
        shift = W - W[:, :1]  # displacement of every particle relative to particle 0
        np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), rtol=0,
                                   atol=1e-12)
        m = W[0].mean(axis=0)
        expected = [m.copy()]
        for n in range(40):
            A = np.eye(P_DIM) - (1.0 + n * dt) ** (-alpha) * dt * Q
            m = m_star + A @ (m - m_star)
            expected.append(m.copy())
        if alpha == 0.0:  # the matrix-power form of docs/theory.rst §6
            n = 40
            closed = m_star + np.linalg.matrix_power(np.eye(P_DIM) - gan * Q, n) @ (
                W[0].mean(axis=0) - m_star)
            np.testing.assert_allclose(expected[n], closed, rtol=0, atol=1e-12)
        for s, n in enumerate(traj.steps):
            np.testing.assert_allclose(W[s].mean(axis=0), expected[n], rtol=0, atol=1e-10)
    assert np.linalg.norm(traj.W[0, -1].mean(axis=0) - m_star) < 0.5 * np.linalg.norm(
        traj.W[0, 0].mean(axis=0) - m_star)  # it did move toward m*


# ---------------------------------------------------------------- noise through the engine
def test_sde_increment_mean_and_covariance(rng, ref, make_hand_data):
    # All particles at w0 (dirac): one step gives i.i.d. increments
    # Δ = −ω_0 [dt h(w0) + (γ_{α,N} dt / M)^{1/2} Σ^{1/2} ξ] ~ N(−dt h, (γ_{α,N} dt / M) Σ).
    N, J, M = 20000, 6, 4
    data = make_hand_data(rng, J, P_DIM, 1, "squared")
    w0 = np.array([0.8, -0.6, 1.1])
    gan = gamma_an(0.5, 1.0, 0.0, N)
    dt = 0.5 * gan
    cfg = make_config("tanh", "both", "squared", 1, l2=0.1, mode="sde", gamma=0.5, M=M,
                      T=dt, snapshots=2, dt_factor=0.5, N=N, seed=21,
                      init={"kind": "dirac", "point": w0.tolist()})
    traj = simulate(cfg, data=data)
    np.testing.assert_array_equal(traj.steps, [0, 1])
    np.testing.assert_array_equal(traj.W[0, 0], np.tile(w0, (N, 1)))
    inc = traj.W[0, 1] - traj.W[0, 0]
    u = ref.mean_field(w0[None], data.x, "both", "tanh", 1)
    h = ref.drift(w0[None], u, data.x, data.y, data.p, "both", "tanh", "squared", 1, 0.1)[0]
    cov = gan * dt / M * ref.noise_cov(w0, u, data.x, data.y, data.p, "both", "tanh",
                                       "squared", 1)
    # standard errors: mean (cov_ii / N)^{1/2}; sample covariance
    # ((cov_ii cov_ll + cov_il²) / N)^{1/2} (Gaussian increments); 5σ each
    diag = np.diag(cov)
    assert np.all(np.abs(inc.mean(axis=0) + dt * h) <= 5 * np.sqrt(diag / N)), (inc.mean(0), h)
    S = np.cov(inc, rowvar=False)
    se = np.sqrt((np.outer(diag, diag) + cov**2) / N)
    assert np.all(np.abs(S - cov) <= 5 * se), (S, cov, se)
    # independent across particles: lag-1 correlation of the first coordinate, sd 1/√N
    a = inc[:, 0] - inc[:, 0].mean()
    assert abs(np.dot(a[:-1], a[1:]) / np.dot(a, a)) < 5 / np.sqrt(N)


@pytest.mark.parametrize("R", [4000, pytest.param(40000, marks=pytest.mark.slow)])
def test_sgd_increment_mean_and_covariance(R, rng, ref, make_hand_data):
    # One SGD step of a single neuron from w0, over R replicas (independent batches):
    # Δ = −η [(1/M) Σ_{i∈B} H(w0, z_i) + λ w0], B = M i.i.d. atoms drawn by weight, so
    # E Δ = −η h(w0) and Cov Δ = η² Σ(w0) / M (docs/theory.rst §3: it matches the SDE's noise).
    N, J, M, l2 = 2, 6, 3, 0.1  # both neurons at w0 stay equal (shared batch): use neuron 0
    data = make_hand_data(rng, J, P_DIM, 1, "squared")
    w0 = np.array([0.8, -0.6, 1.1])
    eta = gamma_an(0.5, 1.0, 0.0, N)
    cfg = make_config("tanh", "both", "squared", 1, l2=l2, mode="sgd", gamma=0.5, M=M,
                      T=eta, snapshots=2, N=N, seeds=R, seed=8,
                      init={"kind": "dirac", "point": w0.tolist()})
    traj = simulate(cfg, data=data, save_weights=True)
    np.testing.assert_array_equal(traj.W[:, 1, 0], traj.W[:, 1, 1])
    inc = traj.W[:, 1, 0] - w0  # (R, D)
    u = ref.mean_field(w0[None], data.x, "both", "tanh", 1)
    h = ref.drift(w0[None], u, data.x, data.y, data.p, "both", "tanh", "squared", 1, l2)[0]
    cov = eta**2 / M * ref.noise_cov(w0, u, data.x, data.y, data.p, "both", "tanh",
                                     "squared", 1)
    # standard errors: mean (cov_ii / R)^{1/2}; sample covariance from the empirical
    # spread of the centred products (the increments are discrete, not Gaussian); 5σ each
    assert np.all(np.abs(inc.mean(axis=0) + eta * h) <= 5 * np.sqrt(np.diag(cov) / R))
    c = inc - inc.mean(axis=0)
    prods = c[:, :, None] * c[:, None, :]
    S = prods.sum(axis=0) / (R - 1)
    se = prods.std(axis=0) / np.sqrt(R)
    assert np.all(np.abs(S - cov) <= 5 * se + 1e-15), (S, cov, se)


@pytest.mark.parametrize(("mode", "noise"), [("sde", "shared"), ("sgd", "independent")])
def test_common_noise_keeps_dirac_particles_together(mode, noise, rng, make_hand_data):
    # Shared noise (or SGD's shared batch) from one point: every particle does the same
    # arithmetic on the same numbers, so they stay identical while moving.
    data = make_hand_data(rng, 5, P_DIM, 1, "squared", uniform=True)
    w0 = [0.5, 0.3, -0.7]
    cfg = make_config("tanh", "both", "squared", 1, mode=mode, noise=noise, M=2, T=3.0,
                      snapshots=4, N=50, seeds=2, init={"kind": "dirac", "point": w0})
    traj = simulate(cfg, data=data)
    assert traj.steps[-1] == 6
    for W in traj.W:
        np.testing.assert_allclose(W, np.broadcast_to(W[:, :1], W.shape), rtol=0, atol=1e-13)
        assert np.linalg.norm(W[-1, 0] - np.array(w0)) > 1e-2  # they did move
    indep = simulate(with_values(cfg, {"dynamics.mode": "sde",
                                       "dynamics.noise": "independent"}), data=data)
    assert np.all(indep.W[:, -1].std(axis=1) > 1e-3)  # independent noise spreads them


# ---------------------------------------------------------------- reproducibility
def test_same_config_twice_is_bitwise_identical(rng, make_hand_data):
    data = make_hand_data(rng, 6, P_DIM, 1, "squared")
    for mode in ("sgd", "sde"):
        cfg = make_config(mode=mode, T=2.0, snapshots=3, N=30, seeds=3, M=2)
        a, b = simulate(cfg, data=data), simulate(cfg, data=data)
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.u, b.u)
        np.testing.assert_array_equal(a.risk, b.risk)


_THREAD_SCRIPT = textwrap.dedent("""
    import sys
    from types import SimpleNamespace

    import numba
    import numpy as np

    from meanfield.config import parse_config
    from meanfield.engine import simulate

    rng = np.random.default_rng(3)
    J, P = 7, 2
    x, y = rng.standard_normal((J, P)), rng.standard_normal((J, 1))
    p = rng.uniform(0.5, 1.5, J)
    p /= p.sum()
    data = SimpleNamespace(x=x, y=y, p=p, labels=None, x_test=np.zeros((0, P)),
                           y_test=np.zeros((0, 1)), labels_test=None, uniform=False,
                           name="t")
    out = {}
    for name, N, R, mode in [("replicas", 200, 3, "sde"), ("blocks", 9000, 1, "sde"),
                             ("blocks_sgd", 9000, 1, "sgd")]:
        cfg = parse_config({
            "model": {"activation": "tanh"},
            "schedule": {"gamma": 0.5, "beta": 1.0, "batch": 3},
            "dynamics": {"mode": mode, "T": 2.0, "snapshots": 3},
            "run": {"N": N, "seeds": R, "seed": 7}})
        out[name] = simulate(cfg, data=data).W
    out["threads"] = np.array(numba.get_num_threads())
    np.savez(sys.argv[1], **out)
""")


def test_results_do_not_depend_on_thread_count(tmp_path):
    procs = {}
    for threads in (1, 2):
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        path = tmp_path / f"w{threads}.npz"
        procs[threads] = (path, subprocess.Popen(
            [sys.executable, "-c", _THREAD_SCRIPT, str(path)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for threads, (path, proc) in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        with np.load(path) as f:
            results[threads] = {k: f[k] for k in f.files}
        assert int(results[threads]["threads"]) == threads
    for name in ("replicas", "blocks", "blocks_sgd"):
        np.testing.assert_array_equal(results[1][name], results[2][name], err_msg=name)
        assert np.all(np.isfinite(results[1][name]))


def test_seeds_control_init_and_noise(rng, make_hand_data):
    data = make_hand_data(rng, 6, P_DIM, 1, "squared")
    base = make_config(mode="sde", T=1.0, snapshots=3, N=20, seeds=2)
    a = simulate(base, data=data)
    b = simulate(with_values(base, {"run.seed": 1}), data=data)
    assert not np.array_equal(a.W[:, 0], b.W[:, 0])
    assert not np.array_equal(a.W[:, -1], b.W[:, -1])
    assert not np.array_equal(a.W[0], a.W[1])  # replicas differ
    # init.seed fixes W_0; run.seed then drives only the noise
    fixed = with_values(base, {"init.seed": 5})
    c = simulate(fixed, data=data)
    d = simulate(with_values(fixed, {"run.seed": 1}), data=data)
    np.testing.assert_array_equal(c.W[:, 0], d.W[:, 0])
    assert np.all(np.abs(c.W[:, -1] - d.W[:, -1]) > 0)
    # ... and the noiseless ODE then ignores run.seed entirely
    e = simulate(with_values(fixed, {"dynamics.mode": "ode"}), data=data)
    f = simulate(with_values(fixed, {"dynamics.mode": "ode", "run.seed": 1}), data=data)
    np.testing.assert_array_equal(e.W, f.W)


# ---------------------------------------------------------------- float32
@pytest.mark.parametrize("mode", ["sgd", "sde"])
def test_float32_agrees_with_float64(mode, rng, make_hand_data):
    # 100 steps of a tame model (tanh, squared loss, dt = 0.05, O(1) weights, the risk
    # decreases). W_0 is rounded to float32 (relative error 6e-8) and every step adds a few
    # float32 ulps; the flow is at most mildly expanding over T = 5 (|∂h/∂w| = O(1)), so the
    # accumulated error is ≲ 100 steps × 1e-7 = 1e-5 of max|W| even if nothing cancels
    # (measured: 4e-7). Tolerance 2e-5 · max|W|; a dtype bug (noise, batches, scaling)
    # would be O(1).
    data = make_hand_data(rng, 8, P_DIM, 1, "squared", uniform=True)
    cfg = make_config("tanh", "both", "squared", 1, l2=0.01, mode=mode, gamma=0.05, M=4,
                      T=5.0, snapshots=3, N=64, seeds=2)
    a = simulate(cfg, data=data)
    b = simulate(with_values(cfg, {"run.dtype": "float32"}), data=data)
    assert a.steps[-1] == 100
    assert b.W.dtype == np.float32
    assert b.u.dtype == np.float32
    scale = np.max(np.abs(a.W))
    np.testing.assert_allclose(b.W, a.W, rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(b.u, a.u, rtol=0, atol=2e-5 * np.max(np.abs(a.u)))
    assert not np.array_equal(a.W[:, -1], a.W[:, 0])


# ---------------------------------------------------------------- blow-up
def test_blowup_raises_numerical_error_naming_replica_and_step(rng, ref, make_hand_data):
    # Linear activation, both layers: F = a⟨b, x⟩ is quadratic in w and a large step
    # diverges super-exponentially in some replicas. The expected failing replica and
    # step come from the NumPy reference run from the same W_0: the engine stops at the
    # first step whose mean field is non-finite or beyond BLOWUP, and (one snapshot
    # segment) reports the lowest-index replica that failed.
    data = make_hand_data(np.random.default_rng(1), 4, P_DIM, 1, "squared")
    N, R, gamma = 3, 4, 1.2
    cfg = make_config("linear", "both", "squared", 1, mode="ode", gamma=gamma, M=1,
                      T=60 * gamma, snapshots=2, N=N, seeds=R, seed=3)
    model = make_model(cfg, data)
    rngs, _ = replica_streams(cfg)
    m = spec("linear", "both", "squared", 1, 0.0)
    fail = {}
    for r in range(R):
        W = initial_particles(cfg, model, rngs[r], N)
        for n in range(61):
            with np.errstate(all="ignore"):
                u = ref.mean_field(W, data.x, "both", "linear", 1)
                if not np.all(np.abs(u) <= BLOWUP):
                    fail[r] = n
                    break
                W = ref.em_step(W, n, None, data, m, gamma, gamma, 0.0, 1)
    assert fail, "the config was meant to diverge"
    r = min(fail)
    with pytest.raises(NumericalError) as info:
        simulate(cfg, data=data)
    msg = str(info.value)
    assert re.search(rf"\breplica {r}\b", msg), (msg, fail)
    assert re.search(rf"\bstep {fail[r]}\b", msg), (msg, fail)
