"""The two-layer mean-field model and its maths on NumPy arrays (docs/theory.rst §1–3).

A neuron has parameters w ∈ R^D.  ``layers = "both"``: w = (a, b), a ∈ R^C, b ∈ R^p,
F(w, x) = a σ(⟨b, x⟩), D = C + p.  ``layers = "first"``: F(w, x) = σ(⟨w, x⟩), C = 1, D = p.

The measure μ enters the dynamics only through the mean field u_j = ⟨μ, F(·, x_j)⟩ ∈ R^C,
j = 1..J.  Given u, the per-atom loss gradient is g_j = ∂₁ℓ(u_j, y_j), the per-neuron
stochastic gradient H(w, μ, z_j) = J_w F(w, x_j)ᵀ g_j and the drift h(w, μ) = Σ_j p_j H_j + λw.

Each function takes particles W (N, D) and returns NumPy arrays; the compiled kernels
behind them live in :mod:`meanfield._kernels` (integer codes ``LAYERS``, ``ACTIVATIONS``,
``LOSSES`` select the model at run time, so one compilation serves every model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._kernels.backward import _drift_noise_kernel, _loss_grad_kernel, _noise_cov_kernel
from ._kernels.forward import _mean_field_kernel
from ._kernels.jit import (
    _BOTH,
    _CROSS_ENTROPY,
    _FIRST,
    _LINEAR,
    _LOGISTIC,
    _RELU,
    _SIGMOID,
    _SQUARED,
    _TANH,
    BLOCK,
)

LAYERS = {"both": _BOTH, "first": _FIRST}
ACTIVATIONS = {"tanh": _TANH, "sigmoid": _SIGMOID, "relu": _RELU, "linear": _LINEAR}
LOSSES = {"squared": _SQUARED, "logistic": _LOGISTIC, "cross_entropy": _CROSS_ENTROPY}


@dataclass(frozen=True)
class Model:
    """Integer-coded model description passed to the kernels.

    Attributes
    ----------
    layers, activation, loss : int
        Codes from ``LAYERS``, ``ACTIVATIONS``, ``LOSSES``.
    l2 : float
        λ of the penalty V(w) = (λ/2)|w|².
    outputs : int
        C, the output dimension.
    input_dim : int
        p, the input dimension.
    """

    layers: int
    activation: int
    loss: int
    l2: float
    outputs: int
    input_dim: int

    @property
    def dim(self) -> int:
        """D, the number of parameters of one neuron."""
        return self.input_dim + (self.outputs if self.layers == _BOTH else 0)

    @property
    def offset(self) -> int:
        """Index of the first input weight b_0 inside w."""
        return self.outputs if self.layers == _BOTH else 0


def make_model(config, data) -> Model:
    """Build the :class:`Model` of a config for a data law (C and p come from the data)."""
    m = config.model
    return Model(
        layers=LAYERS[m.layers],
        activation=ACTIVATIONS[m.activation],
        loss=LOSSES[m.loss],
        l2=float(m.l2),
        outputs=int(data.y.shape[1]),
        input_dim=int(data.x.shape[1]),
    )


def _scratch(D: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vec, GD, GN) block scratch for the kernels."""
    return (np.zeros((6, BLOCK), dtype), np.zeros((D, BLOCK), dtype),
            np.zeros((D, BLOCK), dtype))


def mean_field(W: np.ndarray, x: np.ndarray, model: Model, weights=None) -> np.ndarray:
    """Return u (J, C): u_j = Σ_k q_k F(W_k, x_j), q_k = 1/N or the given particle weights.

    Parameters
    ----------
    W : (N, D) ndarray
        Particles, one per row.
    x : (J, p) ndarray
        Atoms' inputs.
    model : Model
    weights : (N,) ndarray, optional
        Particle weights summing to 1 (quadrature nodes); default uniform 1/N.
    """
    Wt = np.ascontiguousarray(W.T)
    q = np.ascontiguousarray(weights, dtype=W.dtype) if weights is not None else Wt[0, :0]
    J = x.shape[0]
    nblocks = (W.shape[0] + BLOCK - 1) // BLOCK
    u_part = np.zeros((nblocks, J, model.outputs), W.dtype)
    u = np.zeros((J, model.outputs), W.dtype)
    _mean_field_kernel(Wt, q, np.ascontiguousarray(x, dtype=W.dtype), model.layers,
                       model.activation, _scratch(model.dim, W.dtype)[0], u_part, u, np.inf)
    return u


def loss_and_grad(u: np.ndarray, y: np.ndarray, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """Return (ℓ_j (J,), g_j = ∂₁ℓ(u_j, y_j) (J, C)) for mean field u (J, C) and targets y."""
    J = u.shape[0]
    g = np.empty_like(u)
    ell = np.empty(J, dtype=u.dtype)
    _loss_grad_kernel(u, y.astype(u.dtype), np.arange(J), J, model.loss, g, ell)
    return ell, g


def risk(u: np.ndarray, y: np.ndarray, p: np.ndarray, model: Model) -> float:
    """Return the risk Σ_j p_j ℓ(u_j, y_j) (no penalty term)."""
    return float(np.dot(p, loss_and_grad(u, y, model)[0]))


def _drift_noise(W, u, data, model, xi):
    Wt = np.ascontiguousarray(W.T)
    dt = W.dtype
    _, g = loss_and_grad(u, data.y, model)
    vec, GD, GN = _scratch(model.dim, dt)
    drift_t, nz_t = np.empty_like(Wt), np.empty_like(Wt)
    noise = xi is not None
    xi = np.ascontiguousarray(xi, dtype=dt) if noise else np.zeros((1, 1), dt)
    _drift_noise_kernel(Wt, np.ascontiguousarray(data.x, dtype=dt), data.p.astype(dt), g, xi,
                        noise, model.layers, model.activation, model.l2, vec, GD, GN,
                        drift_t, nz_t)
    return drift_t.T.copy(), nz_t.T.copy()


def drift(W: np.ndarray, u: np.ndarray, data, model: Model) -> np.ndarray:
    """Return h(W_k, μ) (N, D) for every particle, μ entering through its mean field u (J, C)."""
    return _drift_noise(W, u, data, model, None)[0]


def noise_sample(W: np.ndarray, u: np.ndarray, data, model: Model, xi: np.ndarray) -> np.ndarray:
    """Return Σ^{1/2}-distributed noise (N, D) for each particle without a matrix square root.

    With centred per-atom gradients G_j = H(w, μ, z_j) − E_z H, the vector
    Σ_j √p_j G_j ξ_j has covariance exactly Σ(w, μ) = Cov_z H when ξ_j are i.i.d. N(0, 1)
    (docs/theory.rst §3).

    Parameters
    ----------
    W : (N, D) ndarray
    u : (J, C) ndarray
        Mean field of μ at the atoms.
    data : DataLaw
    model : Model
    xi : (N, J) ndarray
        Standard normal draws, one row per particle (rows equal for shared noise).
    """
    return _drift_noise(W, u, data, model, xi)[1]


def noise_covariance(W: np.ndarray, u: np.ndarray, data, model: Model) -> np.ndarray:
    """Return the noise covariance Σ(W_k, μ) (N, D, D) of every particle (docs/theory.rst §1).

    Σ(w, μ) = Σ_j p_j (H_j − h̄)(H_j − h̄)ᵀ with H_j = J_w F(w, x_j)ᵀ g_j, g_j = ∂₁ℓ(u_j, y_j)
    and h̄ = Σ_j p_j H_j (the L2 term adds no noise).  Two passes over the atoms (mean, then
    centred second moment) per block of neurons: O(N·J·D²) time, O(N·D²) memory.

    Parameters
    ----------
    W : (N, D) ndarray
        Particles, one per row.
    u : (J, C) ndarray
        Mean field of μ at the atoms.
    data : DataLaw
    model : Model
    """
    Wt = np.ascontiguousarray(W.T)
    dt = W.dtype
    _, g = loss_and_grad(u, data.y, model)
    D = model.dim
    vec, GD, HB = _scratch(D, dt)
    S = np.zeros((D, D, BLOCK), dt)
    out = np.empty((W.shape[0], D, D), dt)
    _noise_cov_kernel(Wt, np.ascontiguousarray(data.x, dtype=dt), data.p.astype(dt), g,
                      model.layers, model.activation, vec, GD, HB, S, out)
    return out
