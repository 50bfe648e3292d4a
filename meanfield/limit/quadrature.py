"""Quadrature limit: weighted nodes of μ₀ moved by the characteristic ODE (deterministic limits).

dW/dt = −ω(t) h(W, λ_t), λ_t = Σ_k q_k δ_{W_k(t)}: the nodes of a quadrature rule of μ₀
(tensor Gauss–Hermite for normal, Gauss–Legendre for uniform, one node for dirac, scrambled
Sobol points for large D) follow the limit's characteristics, integrated with classical RK4.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from ..errors import ConfigError, NumericalError
from ..init import init_scales
from ..model import Model, drift, mean_field
from ..schedule import omega
from .core import Limit

TENSOR_MAX = 2**18  # nodes of a tensor rule; beyond, quasi-Monte Carlo


def nodes(config, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """Return quadrature nodes (P, D) and weights (P,) of μ₀."""
    ini, D = config.init, model.dim
    if ini.kind == "dirac":
        return np.asarray(ini.point, dtype=np.float64)[None, :], np.ones(1)
    if ini.kind == "torch_default":
        msg = "init.kind = 'torch_default' depends on N: no N → ∞ limit law; use normal/uniform"
        raise ConfigError(msg)
    scale = init_scales(config, model)
    per_axis = min(64, int(TENSOR_MAX ** (1.0 / D)))
    if per_axis >= 8:
        if ini.kind == "normal":
            x, w = hermegauss(per_axis)
        else:
            x, w = leggauss(per_axis)
        w = w / w.sum()
        grids = np.meshgrid(*([x] * D), indexing="ij")
        pts = np.stack([g.ravel() for g in grids], axis=1) * scale
        wts = np.ones(len(pts))
        for g in np.meshgrid(*([w] * D), indexing="ij"):
            wts = wts * g.ravel()
        return pts, wts / wts.sum()
    from scipy.stats import norm, qmc

    m = int(math.ceil(math.log2(max(config.limit.N_ref, 2))))
    u = qmc.Sobol(D, scramble=True, seed=config.limit.seed).random_base2(min(m, 20))
    pts = norm.ppf(u) if ini.kind == "normal" else 2.0 * u - 1.0
    return pts * scale, np.full(len(pts), 1.0 / len(pts))


def solve_quadrature(config, data, model: Model) -> Limit:
    """Integrate the characteristic ODE of the deterministic limit from quadrature nodes."""
    W, q = nodes(config, model)
    T, S = config.dynamics.T, config.dynamics.snapshots
    alpha = config.schedule.alpha
    dt_max = config.limit.dt if config.limit.dt is not None else min(0.01, T / 200)
    times = np.linspace(0.0, T, S)

    def rhs(t, w):
        u = mean_field(w, data.x, model, weights=q)
        return -omega(t, alpha) * drift(w, u, data, model), u

    t_u, us = [0.0], []
    points = [W.copy()]
    t = 0.0
    for t_next in times[1:]:
        n = max(1, int(math.ceil((t_next - t) / dt_max - 1e-9)))
        h = (t_next - t) / n
        for _ in range(n):
            k1, u = rhs(t, W)
            us.append(u)
            k2, _ = rhs(t + h / 2, W + h / 2 * k1)
            k3, _ = rhs(t + h / 2, W + h / 2 * k2)
            k4, _ = rhs(t + h, W + h * k3)
            W = W + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += h
            t_u.append(t)
            if not np.all(np.isfinite(W)):
                msg = f"quadrature limit: non-finite nodes at t = {t:.6g}"
                raise NumericalError(msg)
        t = t_next
        points.append(W.copy())
    us.append(mean_field(W, data.x, model, weights=q))
    pts = np.stack(points)
    return Limit(method="quadrature", t_u=np.array(t_u), u=np.stack(us), times=times,
                 points=pts, weights=np.broadcast_to(q, pts.shape[:2]).copy())
