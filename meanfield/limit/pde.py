"""Grid PDE for the McKean–Vlasov limit, D ≤ 2 (docs/theory.rst §4, method 1).

Solves, for the law λ_t of one parameter vector w ∈ R^D,

    ∂_t λ = ω(t) ∇·(λ h(·, λ_t)) [+ κ(t) Σ_{il} ∂_i ∂_l (Σ_il(·, λ_t) λ)],
    κ(t) = ω(t)² γ_α / (2M),  γ_α = γ^{1/(1−α)},

the diffusion only for β = 1 with mode = "sde" (independent noise).  h and Σ come from the
model kernels evaluated at the cell centres: μ enters them only through the mean field
u_t = Σ_cells λ_c |cell| F(w_c, x_j) (``mean_field`` with the cell masses as weights).

Scheme
------
* finite volumes on a uniform grid (``limit.grid`` cells per axis), λ stored as cell averages;
* advection with velocity v = −ω h; face velocity = mean of the two cell-centre values;
  MUSCL reconstruction with the van Leer limiter, upwind flux a⁺ λ_L + a⁻ λ_R;
* diffusion in divergence form: the flux along axis i is −Σ_l ∂_l(A_il λ), A = κ Σ, with
  a two-point difference for l = i and, for D = 2, the centred cross derivative averaged
  onto the face (zero ghost values outside the domain);
* zero flux through the domain boundary, so the update is conservative (mass is kept to
  round-off);
* SSP-RK2 (Heun) in time, dt = 0.4 / (Σ_i max|v_i|/dx_i + Σ_i 2 max A_ii/dx_i²
  + 2 max|A_01|/(dx_0 dx_1)), recomputed every step, capped at T/200 and shortened to hit
  the snapshot times exactly.  With the van Leer limiter this keeps the advective update
  positive.  The centred cross-diffusion stencil (D = 2 with diffusion) is not monotone:
  tiny negative values appear in the far tails of a smooth density (measured ~1e-8 of
  the mass in total on a 48² grid over T = 1).  After every stage negative values are set
  to 0 and λ is rescaled to its unclipped mass, so mass stays conserved to round-off; the
  clipped mass is tallied, a RuntimeWarning is issued above 1e-6 and a NumericalError
  above 1e-3.  A discontinuous μ₀ (init.kind = uniform) with cross-diffusion oscillates at
  the jump and typically hits the 1e-3 limit on coarse grids.

Domain
------
μ₀'s support box (±7 std per axis for a normal law, ±scale for a uniform one) is covered by a
coarse tensor grid of weighted nodes (cell masses of μ₀); the nodes are moved by the
characteristic ODE dw = −ω h(w, u) dt (Heun, u from the weighted nodes) over [0, T], and the
domain is the bounding box of all node positions at all times, widened per axis by 15 % of
its width plus 8 diffusion lengths L_i = (∫ 2 max A_ii dt)^{1/2} (A estimated on the nodes).
If the mass in the outermost ring of cells ever exceeds 1e-9 the solve stops with a
NumericalError.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import ndtr

from ..engine import threads
from ..errors import ConfigError, NumericalError
from ..init import init_scales
from ..model import drift, make_model, mean_field, noise_covariance
from ..schedule import gamma_alpha_n, omega
from .core import Limit

CFL = 0.4
BOUNDARY_TOL = 1e-9
CLIP_WARN = 1e-6
CLIP_FAIL = 1e-3
NORMAL_WIDTH = 7.0
PAD_FRACTION = 0.15
DIFFUSION_LENGTHS = 8.0
MAX_STEPS = 10**7  # a step this small means the drift is too stiff for the grid: stop
PARTS = 2  # the rows of a wide grid are summed in this many parts (fixed: it sets the bits)
PARALLEL_MIN = 4096  # rows below which one call does it all


# ------------------------------------------------------------------------- initial law
def _initial_law(config, model) -> list[tuple[str, float]]:
    """Per-axis (kind, scale) of μ₀ (a product law), in the model's parameter order."""
    ini = config.init
    if ini.kind not in ("normal", "uniform"):
        msg = (f"init.kind = {ini.kind!r} is not supported by limit.method = 'pde' "
               "(its law is not a fixed density); use 'normal' or 'uniform'")
        raise ConfigError(msg)
    return [(ini.kind, float(s)) for s in init_scales(config, model)]


def _axis_masses(edges: np.ndarray, kind: str, scale: float) -> np.ndarray:
    """Exact masses of the 1-D law (N(0, scale²) or U[−scale, scale]) in the given cells."""
    if kind == "normal":
        z = edges / scale
        # difference of upper tails on the right half, of lower CDFs on the left: no cancellation
        lower = ndtr(z)
        upper = ndtr(-z)
        right = edges[:-1] >= 0.0
        return np.where(right, upper[:-1] - upper[1:], lower[1:] - lower[:-1])
    cdf = np.clip((edges + scale) / (2.0 * scale), 0.0, 1.0)
    return np.diff(cdf)


def initial_masses(edges: list[np.ndarray], law) -> np.ndarray:
    """Cell masses (n0[, n1]) of the product law μ₀ on the grid with these edges."""
    out = _axis_masses(edges[0], *law[0])
    for e, ax in zip(edges[1:], law[1:], strict=True):
        out = np.multiply.outer(out, _axis_masses(e, *ax))
    return out


def _support_box(law) -> np.ndarray:
    """(D, 2) box holding μ₀ (up to ~1e-12 of its mass for a normal axis)."""
    return np.array([[-NORMAL_WIDTH * s, NORMAL_WIDTH * s] if k == "normal" else [-s, s]
                     for k, s in law])


# ------------------------------------------------------------------------- kernels (threaded)
def _mean_field(pool, W, data, model, q):
    """U = Σ_k q_k F(W_k, x), the rows in ``PARTS`` parts added in order (on ``pool``)."""
    if len(W) < PARALLEL_MIN:
        return mean_field(W, data.x, model, weights=q)
    parts = np.array_split(np.arange(len(W)), PARTS)
    futs = [pool.submit(mean_field, W[i], data.x, model, q[i]) for i in parts]
    return sum(f.result() for f in futs)


def _rows(pool, fn, W, u, data, model):
    """fn(W, u, data, model) row by row, the rows in ``PARTS`` parts (on ``pool``)."""
    if len(W) < PARALLEL_MIN:
        return fn(W, u, data, model)
    parts = np.array_split(np.arange(len(W)), PARTS)
    futs = [pool.submit(fn, W[i], u, data, model) for i in parts]
    return np.concatenate([f.result() for f in futs])


# ------------------------------------------------------------------------- domain
def _diffusion_on(config) -> bool:
    return config.schedule.beta == 1.0 and config.dynamics.mode == "sde"


def _kappa_factor(config) -> float:
    """γ_α / (2M): κ(t) = ω(t)² γ_α / (2M)."""
    s = config.schedule
    return gamma_alpha_n(s.gamma, 1.0, s.alpha, 1) / (2.0 * s.batch)


def domain(config, data, model, law, *, nodes_per_axis: int | None = None) -> np.ndarray:
    """(D, 2) computational box from a deterministic presimulation (see module docstring)."""
    D = model.dim
    box = _support_box(law)
    m = nodes_per_axis or (2001 if D == 1 else 48)
    edges = [np.linspace(lo, hi, m + 1) for lo, hi in box]
    cen = [0.5 * (e[1:] + e[:-1]) for e in edges]
    q = initial_masses(edges, law).ravel()
    W = np.stack([g.ravel() for g in np.meshgrid(*cen, indexing="ij")], axis=1)
    lo, hi = W.min(axis=0), W.max(axis=0)
    lo, hi = np.minimum(lo, box[:, 0]), np.maximum(hi, box[:, 1])
    T, alpha = config.dynamics.T, config.schedule.alpha
    diffusion = _diffusion_on(config)
    kf = _kappa_factor(config)
    var = np.zeros(D)
    t, width = 0.0, np.maximum(hi - lo, 1e-12)

    def vel(W, t):
        u = mean_field(W, data.x, model, weights=q)
        return -omega(t, alpha) * drift(W, u, data, model), u

    for _ in range(20000):
        if t >= T:
            break
        v, u = vel(W, t)
        if not np.all(np.isfinite(v)):
            msg = f"PDE domain presimulation produced NaN/inf at t = {t:.6g}"
            raise NumericalError(msg)
        speed = np.max(np.abs(v) / width)
        dt = min(T - t, T / 200.0, 0.02 / speed if speed > 0 else np.inf)
        if dt * MAX_STEPS < T - t:
            msg = (f"PDE domain presimulation: the drift at t = {t:.6g} moves nodes at "
                   f"{speed:.3g} box widths per unit time, more than {MAX_STEPS:.0e} steps to "
                   f"T = {T:g}; the drift is too stiff (lower model.l2, init or data scales)")
            raise NumericalError(msg)
        if diffusion:
            sig = noise_covariance(W, u, data, model)
            dmax = np.max(np.diagonal(sig, axis1=1, axis2=2), axis=0)
            var += 2.0 * kf * omega(t, alpha) ** 2 * dmax * dt
        W1 = W + dt * v
        W = W + 0.5 * dt * (v + vel(W1, t + dt)[0])
        t = T if T - t - dt <= 1e-12 * T else t + dt
        lo, hi = np.minimum(lo, W.min(axis=0)), np.maximum(hi, W.max(axis=0))
    if t < T:
        msg = (f"PDE domain presimulation reached only t = {t:.6g} of T = {T:g} in 20000 "
               "steps; the drift is too stiff (lower model.l2, init or data scales)")
        raise NumericalError(msg)
    pad = PAD_FRACTION * (hi - lo) + DIFFUSION_LENGTHS * np.sqrt(var)
    return np.stack([lo - pad, hi + pad], axis=1)


# ------------------------------------------------------------------------- finite volumes
def _van_leer(lam):
    """Limited slopes along axis 0 (zero in the first and last cell)."""
    d = np.diff(lam, axis=0)
    dm, dp = d[:-1], d[1:]
    prod = dm * dp
    s = np.zeros_like(lam)
    den = dm + dp
    np.divide(2.0 * prod, den, out=s[1:-1], where=prod > 0.0)
    return s


def _advective_faces(lam, v):
    """Upwind MUSCL flux λv on the interior faces along axis 0, shape (n0 − 1, ...)."""
    s = _van_leer(lam)
    left = lam[:-1] + 0.5 * s[:-1]
    right = lam[1:] - 0.5 * s[1:]
    a = 0.5 * (v[:-1] + v[1:])
    return np.maximum(a, 0.0) * left + np.minimum(a, 0.0) * right


def _centred_diff(B, axis, dx):
    """∂B/∂w_axis by centred differences with zero ghost cells."""
    Bm = np.moveaxis(B, axis, 0)
    out = np.empty_like(Bm)
    out[1:-1] = Bm[2:] - Bm[:-2]
    out[0] = Bm[1]
    out[-1] = -Bm[-2]
    return np.moveaxis(out, 0, axis) / (2.0 * dx)


def _divergence(F, dx):
    """−(F_{i+1/2} − F_{i−1/2})/dx along axis 0 with zero boundary fluxes; F on interior faces."""
    out = np.empty((F.shape[0] + 1, *F.shape[1:]))
    out[:-1] = -F
    out[-1] = 0.0
    out[1:] += F
    return out / dx


class _Rhs:
    """Right-hand side dλ/dt and the quantities (u, rates) of one evaluation."""

    def __init__(self, config, data, model, centres, dx, pool):
        self.config, self.data, self.model, self.pool = config, data, model, pool
        self.D = model.dim
        self.shape = tuple(len(c) for c in centres)
        self.cell = float(np.prod(dx))
        self.dx = dx
        self.W = np.stack([g.ravel() for g in np.meshgrid(*centres, indexing="ij")], axis=1)
        self.alpha = config.schedule.alpha
        self.diffusion = _diffusion_on(config)
        self.kf = _kappa_factor(config)

    def mean_field(self, lam):
        mass = lam.ravel() * self.cell
        live = mass > 0.0
        return _mean_field(self.pool, self.W[live], self.data, self.model, mass[live])

    def __call__(self, lam, t, u=None):
        """Return (dλ/dt, u, stability rate r: dt ≤ CFL / r)."""
        if u is None:
            u = self.mean_field(lam)
        if not np.all(np.isfinite(u)):
            msg = f"PDE mean field became NaN/inf at t = {t:.6g}"
            raise NumericalError(msg)
        om = omega(t, self.alpha)
        v = (-om * _rows(self.pool, drift, self.W, u, self.data, self.model)).reshape(
            *self.shape, self.D)
        dx = self.dx
        rate = sum(np.max(np.abs(v[..., i])) / dx[i] for i in range(self.D))
        faces = []
        for i in range(self.D):
            lam_i = np.moveaxis(lam, i, 0)
            faces.append(_advective_faces(lam_i, np.moveaxis(v[..., i], i, 0)))
        if self.diffusion:
            A = (om * om * self.kf) * _rows(self.pool, noise_covariance, self.W, u, self.data,
                                            self.model).reshape(*self.shape, self.D, self.D)
            rate += sum(2.0 * np.max(A[..., i, i]) / dx[i] ** 2 for i in range(self.D))
            if self.D == 2:
                rate += 2.0 * np.max(np.abs(A[..., 0, 1])) / (dx[0] * dx[1])
            for i in range(self.D):
                B = np.moveaxis(A[..., i, i] * lam, i, 0)
                Fd = (B[1:] - B[:-1]) / dx[i]
                for m in range(self.D):
                    if m != i:
                        c = np.moveaxis(_centred_diff(A[..., i, m] * lam, m, dx[m]), i, 0)
                        Fd = Fd + 0.5 * (c[1:] + c[:-1])
                faces[i] = faces[i] - Fd
        out = np.zeros(self.shape)
        for i in range(self.D):
            np.moveaxis(out, i, 0)[...] += _divergence(faces[i], dx[i])
        return out, u, rate


def _clip(lam, cell, tally):
    """Set negative values to 0 and rescale to the unclipped mass (conserved to round-off).

    Adds the clipped mass to ``tally[0]``.
    """
    neg = lam < 0.0
    if not neg.any():
        return lam
    total = lam.sum()
    tally[0] -= lam[neg].sum() * cell
    lam[neg] = 0.0
    lam *= total / lam.sum()
    return lam


def _edge_mass(lam):
    if lam.ndim == 1:
        return lam[0] + lam[-1]
    return lam[0].sum() + lam[-1].sum() + lam[1:-1, 0].sum() + lam[1:-1, -1].sum()


def evolve(config, data, model, box, law=None, lam0=None):
    """Run the finite-volume solve on the box (D, 2); return the :class:`Limit`.

    ``lam0`` (cell densities) overrides the initial law ``law`` (used by tests).  Wide
    grids evaluate their rows on ``threads()`` threads (the package's one thread policy);
    the result does not depend on that number.
    """
    with ThreadPoolExecutor(max(1, min(PARTS, threads()))) as pool:
        return _evolve(config, data, model, box, law, lam0, pool)


def _evolve(config, data, model, box, law, lam0, pool):
    n = config.limit.grid
    edges = [np.linspace(lo, hi, n + 1) for lo, hi in box]
    centres = tuple(0.5 * (e[1:] + e[:-1]) for e in edges)
    dx = np.array([e[1] - e[0] for e in edges])
    cell = float(np.prod(dx))
    lam = initial_masses(edges, law) if lam0 is None else np.array(lam0, dtype=float) * cell
    lam = lam / (lam.sum() * cell)  # μ₀'s mass outside the box (≤ ~1e-12) is dropped
    rhs = _Rhs(config, data, model, centres, dx, pool)
    T = config.dynamics.T
    times = np.linspace(0.0, T, config.dynamics.snapshots)
    dens = [lam.copy()]
    t_u, us = [], []
    t = 0.0
    tally = [0.0]  # cumulative clipped (negative) mass

    def check(lam, t):
        if _edge_mass(lam) * cell > BOUNDARY_TOL:
            msg = (f"PDE mass reached the domain boundary at t = {t:.6g}; "
                   f"mass {_edge_mass(lam) * cell:.3g} in the outermost cells of the box "
                   f"{box.tolist()}")
            raise NumericalError(msg)

    check(lam, 0.0)
    for target in times[1:]:
        while t < target:
            k1, u, rate = rhs(lam, t)
            t_u.append(t)
            us.append(u)
            dt = min(CFL / rate if rate > 0 else np.inf, T / 200.0)
            if dt * MAX_STEPS < T:
                msg = (f"PDE step at t = {t:.6g} would be dt = {dt:.3g} (stability rate "
                       f"{rate:.3g}): more than {MAX_STEPS:.0e} steps to T = {T:g}; the "
                       "drift is too stiff (lower model.l2, init or data scales, or the grid)")
                raise NumericalError(msg)
            last = target - t <= dt * (1.0 + 1e-9)
            dt = target - t if last else dt
            l1 = _clip(lam + dt * k1, cell, tally)
            k2 = rhs(l1, t + dt)[0]
            lam = _clip(0.5 * lam + 0.5 * (l1 + dt * k2), cell, tally)
            t = target if last else t + dt
            if not np.all(np.isfinite(lam)):
                msg = f"PDE density became NaN/inf at t = {t:.6g}"
                raise NumericalError(msg)
            if tally[0] > CLIP_FAIL:
                msg = (f"PDE density lost positivity at t = {t:.6g} (clipped mass "
                       f"{tally[0]:.3g}); refine limit.grid")
                raise NumericalError(msg)
            check(lam, t)
        dens.append(lam.copy())
    if tally[0] > CLIP_WARN:
        warnings.warn(f"PDE: {tally[0]:.3g} of negative mass clipped over [0, T] (the "
                      "cross-diffusion stencil is not monotone); refine limit.grid",
                      RuntimeWarning, stacklevel=3)
    t_u.append(T)
    us.append(rhs.mean_field(lam))
    return Limit(method="pde", t_u=np.array(t_u), u=np.array(us), times=times,
                 density=np.array(dens), centres=centres)


def solve_pde(config, data=None, model=None) -> Limit:
    """Solve the limit PDE on a grid (docs/theory.rst §4, method 1) and return its :class:`Limit`.

    Parameters
    ----------
    config : Config
        Reads [init], [schedule], [dynamics] and ``limit.grid`` (cells per axis).
    data : DataLaw, optional
        Default ``make_data(config)``.
    model : Model, optional
        Default ``make_model(config, data)``.

    Returns
    -------
    Limit
        ``t_u``: the solver's own time steps (0 … T); ``u`` (K, J, C) at those times;
        ``times`` = linspace(0, T, dynamics.snapshots); ``density`` (S, n0[, n1]), a
        probability density on ``centres`` (sum × cell area = 1).

    Raises
    ------
    ConfigError
        D > 2, or an initial law that is not a fixed density (dirac, torch_default).
    NumericalError
        Mass reached the domain boundary, positivity lost, or NaN/inf.
    """
    if data is None:
        from ..data import make_data
        data = make_data(config)
    if model is None:
        model = make_model(config, data)
    if model.dim > 2:
        msg = (f"limit.method = 'pde' needs a parameter dimension D <= 2, got D = {model.dim}; "
               "use limit.method = 'reference' or 'quadrature'")
        raise ConfigError(msg)
    law = _initial_law(config, model)
    box = domain(config, data, model, law)
    return evolve(config, data, model, box, law)
