"""Shared test setup: the ``--runslow`` option, a seeded ``rng`` and the NumPy oracle.

The ``ref`` fixture is a plain-NumPy implementation of THEORY.md §1–3 (forward pass,
losses, per-atom gradients H, drift, centred noise, one SGD / Euler–Maruyama step),
written independently of ``meanfield.model``, ``meanfield.engine`` and
``meanfield._kernels``; the engine's kernels are checked against it.
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


# ---------------------------------------------------------------- NumPy oracle (THEORY §1–3)
def activation(name, s):
    """σ(s), σ'(s)."""
    if name == "tanh":
        t = np.tanh(s)
        return t, 1.0 - t * t
    if name == "sigmoid":
        t = 1.0 / (1.0 + np.exp(-s))
        return t, t * (1.0 - t)
    if name == "relu":
        return np.maximum(s, 0.0), (s > 0).astype(float)
    if name == "linear":
        return s, np.ones_like(s)
    raise ValueError(name)


def split(W, layers, C):
    """(a (N, C) or None, b (N, p))."""
    return (W[:, :C], W[:, C:]) if layers == "both" else (None, W)


def features(W, x, layers, act, C):
    """F(w_k, x_j) as a (J, N, C) array."""
    a, b = split(W, layers, C)
    sig, _ = activation(act, x @ b.T)  # (J, N)
    return sig[:, :, None] * a[None] if layers == "both" else sig[:, :, None]


def mean_field(W, x, layers, act, C):
    """u_j = (1/N) Σ_k F(w_k, x_j), (J, C)."""
    return features(W, x, layers, act, C).mean(axis=1)


def loss_value(u, y, loss):
    """ℓ(u_j, y_j), (J,)."""
    if loss == "squared":
        return 0.5 * np.sum((u - y) ** 2, axis=1)
    if loss == "logistic":
        return np.log1p(np.exp(-y[:, 0] * u[:, 0]))
    if loss == "cross_entropy":
        mx = u.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(u - mx).sum(axis=1))
        return -np.sum(y * (u - lse[:, None]), axis=1)
    raise ValueError(loss)


def loss_grad(u, y, loss):
    """g_j = ∂₁ℓ(u_j, y_j), (J, C)."""
    if loss == "squared":
        return u - y
    if loss == "logistic":
        return -y / (1.0 + np.exp(y * u))
    if loss == "cross_entropy":
        e = np.exp(u - u.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True) - y
    raise ValueError(loss)


def per_atom(W, x, g, layers, act, C):
    """H(w_k, z_j) = J_w F(w_k, x_j)ᵀ g_j as a (J, N, D) array."""
    a, b = split(W, layers, C)
    sig, dsig = activation(act, x @ b.T)  # (J, N)
    if layers == "both":
        Ha = sig[:, :, None] * g[:, None, :]  # (J, N, C)
        e = (g @ a.T) * dsig  # (J, N): (a·g_j) σ'(⟨b, x_j⟩)
        Hb = e[:, :, None] * x[:, None, :]
        return np.concatenate([Ha, Hb], axis=2)
    e = g[:, 0][:, None] * dsig
    return e[:, :, None] * x[:, None, :]


def drift(W, u, x, y, p, layers, act, loss, C, l2):
    """h(w_k) = Σ_j p_j H(w_k, z_j) + λ w_k, (N, D), for a given mean field u."""
    H = per_atom(W, x, loss_grad(u, y, loss), layers, act, C)
    return np.einsum("j,jnd->nd", p, H) + l2 * W


def noise(W, u, x, y, p, layers, act, loss, C, xi):
    """Σ_j √p_j (H_j − Σ_i p_i H_i) ξ_kj for ξ (N, J), (N, D)."""
    H = per_atom(W, x, loss_grad(u, y, loss), layers, act, C)
    G = H - np.einsum("j,jnd->nd", p, H)[None]
    return np.einsum("j,nj,jnd->nd", np.sqrt(p), xi, G)


def noise_cov(w, u, x, y, p, layers, act, loss, C):
    """Σ(w) = Σ_j p_j (H_j − h̄)(H_j − h̄)ᵀ at one particle w (D,), (D, D)."""
    H = per_atom(w[None], x, loss_grad(u, y, loss), layers, act, C)[:, 0]  # (J, D)
    G = H - p @ H
    return (G * p[:, None]).T @ G


def root_noise(W, u, x, y, p, layers, act, loss, C, xi):
    """Σ(W_k)^{1/2} ξ_k with the principal root from an eigendecomposition, xi (N, D)."""
    out = np.empty_like(W)
    for k, w in enumerate(W):
        lam, V = np.linalg.eigh(noise_cov(w, u, x, y, p, layers, act, loss, C))
        out[k] = V @ (np.sqrt(np.maximum(lam, 0.0)) * (V.T @ xi[k]))
    return out


def sgd_step(W, n, atoms, data, m, gamma_an, alpha):
    """W − ω_n γ_{α,N} [(1/M) Σ_{i∈B} H(W, ν^N, z_i) + λ W], u on the batch atoms."""
    x, y = data.x[atoms], data.y[atoms]
    u = mean_field(W, x, m.layers, m.act, m.C)
    H = per_atom(W, x, loss_grad(u, y, m.loss), m.layers, m.act, m.C)
    om = (1.0 + n * gamma_an) ** (-alpha)
    return W - om * gamma_an * (H.mean(axis=0) + m.l2 * W)


def em_step(W, n, xi, data, m, gamma_an, dt, alpha, M, *, root=False):
    """Euler–Maruyama: W − ω_n [dt h + (γ_{α,N} dt / M)^{1/2} Σ_j √p_j G_j ξ_j]; xi None: ode.

    root: the noise is Σ^{1/2} ξ_k with xi (N, D) instead.
    """
    u = mean_field(W, data.x, m.layers, m.act, m.C)
    h = drift(W, u, data.x, data.y, data.p, m.layers, m.act, m.loss, m.C, m.l2)
    om = (1.0 + n * dt) ** (-alpha)
    step = dt * h
    if xi is not None:
        nz = (root_noise if root else noise)(W, u, data.x, data.y, data.p, m.layers, m.act,
                                             m.loss, m.C, xi)
        step = step + np.sqrt(gamma_an * dt / M) * nz
    return W - om * step


@pytest.fixture(scope="session")
def ref():
    """The NumPy oracle as a namespace (``ref.drift(...)``, ``ref.em_step(...)``, ...)."""
    return SimpleNamespace(
        activation=activation, features=features, mean_field=mean_field,
        loss_value=loss_value, loss_grad=loss_grad, per_atom=per_atom, drift=drift,
        noise=noise, noise_cov=noise_cov, root_noise=root_noise, sgd_step=sgd_step,
        em_step=em_step)


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
