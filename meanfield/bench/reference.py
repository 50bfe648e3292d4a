"""The model maths of docs/theory.rst §1–3 in plain NumPy: the one oracle.

Forward pass, losses, per-atom gradients H, drift, centred noise, one SGD and one
Euler–Maruyama step, written out from the formulas, independently of the engine: this
module imports NumPy and nothing else, so that the engine's kernels can be checked against
it (``tests/conftest.py`` hands it to the tests as the ``ref`` fixture). The bench's NumPy
comparator (:func:`meanfield.bench.numpy_sgd`) takes its activations and loss
gradients from here.

Shapes: particles ``W`` (N, D), parameters ordered (a_0 … a_{C−1}, b_0 … b_{p−1}) when
both layers train (``layers == "both"``), else ``b`` alone; atoms ``x`` (J, p), targets
``y`` (J, C), weights ``p`` (J,). Everything is computed in full arrays, one formula at a
time, for clarity rather than speed.
"""

from __future__ import annotations

import numpy as np


def activation(name, s):
    """σ(s), σ'(s)."""
    if name == "tanh":
        t = np.tanh(s)
        return t, 1.0 - t * t
    if name == "sigmoid":
        t = 1.0 / (1.0 + np.exp(-s))
        return t, t * (1.0 - t)
    if name == "relu":
        return np.maximum(s, 0.0), (s > 0).astype(s.dtype)
    if name == "linear":
        return s, np.ones_like(s)
    msg = f"unknown activation {name!r}"
    raise ValueError(msg)


def split(W, layers, C):
    """Split particles into (a (N, C) or None, b (N, p))."""
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
    msg = f"unknown loss {loss!r}"
    raise ValueError(msg)


def loss_grad(u, y, loss):
    """g_j = ∂₁ℓ(u_j, y_j), (J, C)."""
    if loss == "squared":
        return u - y
    if loss == "logistic":
        return -y / (1.0 + np.exp(y * u))
    if loss == "cross_entropy":
        e = np.exp(u - u.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True) - y
    msg = f"unknown loss {loss!r}"
    raise ValueError(msg)


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
    """W − ω_n γ_{α,N} [(1/M) Σ_{i∈B} H(W, ν^N, z_i) + λ W], u on the batch atoms.

    ``data`` has ``x``, ``y`` (a DataLaw or alike); ``m`` has ``layers``, ``act``, ``loss``,
    ``C`` and ``l2``.
    """
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
