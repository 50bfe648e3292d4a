r"""Wasserstein-2 distances between weighted point clouds, built on POT.

Every public function returns the distance :math:`W_2`, never its square. POT's
``ot.emd2`` and ``ot.wasserstein_1d(..., p=2)`` return :math:`W_2^2`; the square root is
taken exactly once, here.

Inputs are point sets ``x`` of shape ``(n, d)`` and ``y`` of shape ``(m, d)`` (a 1-D
array of length ``n`` is read as ``n`` points in dimension 1) with optional weights
``a`` of shape ``(n,)`` and ``b`` of shape ``(m,)``, non-negative and summing to 1
(relative tolerance 1e-9); ``None`` means uniform weights. Invalid inputs raise
``ValueError`` naming the argument; no function returns a silent NaN.

Estimators
----------
- :func:`w2_exact`: network simplex (``ot.emd2``) on the squared Euclidean cost.
- :func:`w2_1d`: exact 1-D distance through the quantile functions, any size.
- :func:`w2_sliced`: sliced W2 over a fixed set of unit directions
  (:func:`projection_set`), a lower bound on :func:`w2_exact`.
- :func:`sinkhorn_divergence`: debiased entropic divergence, log-domain Sinkhorn.
- :func:`w2_gaussian`: Bures–Wasserstein distance between Gaussian moment fits.
- :func:`w2`: picks one of the above; :func:`floor` estimates the sampling floor.
- :func:`compress`: shrinks a large weighted set (a grid density, a big reference cloud)
  before an exact solver: negligible cells are dropped, then, if it is still too large,
  it is replaced by an i.i.d. sample.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from .errors import NumericalError

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "ConvergenceError", "SlicedReference", "compress", "floor", "projection_set",
    "sinkhorn_divergence", "sliced_reference", "w2",
    "w2_1d", "w2_exact", "w2_gaussian", "w2_sliced",
]

_WEIGHT_RTOL = 1e-9
_METHODS = ("auto", "exact", "1d", "sliced", "sinkhorn", "gaussian")


class ConvergenceError(NumericalError):
    """An OT solver stopped before reaching optimality or its marginal tolerance.

    A :class:`RuntimeError` (through :class:`meanfield.errors.NumericalError`).
    """


# ----------------------------------------------------------------------------- validation
def _as_cloud(x: npt.ArrayLike, name: str) -> FloatArray:
    """Return ``x`` as a finite, non-empty ``(n, d)`` float64 array."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        msg = f"{name} must have shape (n, d) or (n,), got shape {arr.shape}"
        raise ValueError(msg)
    if arr.shape[0] == 0:
        msg = f"{name} is empty: it must hold at least one point"
        raise ValueError(msg)
    if arr.shape[1] == 0:
        msg = f"{name} has dimension d = 0, got shape {arr.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(arr)):
        msg = f"{name} contains NaN or inf"
        raise ValueError(msg)
    return arr


def _as_weights(w: npt.ArrayLike | None, n: int, name: str, points: str) -> FloatArray:
    """Return weights of length ``n`` (uniform when ``w`` is None), checked."""
    if w is None:
        return np.full(n, 1.0 / n)
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim != 1:
        msg = f"{name} must be a 1-D array of weights, got shape {arr.shape}"
        raise ValueError(msg)
    if arr.shape[0] != n:
        msg = f"{name} has length {arr.shape[0]} but {points} has {n} points"
        raise ValueError(msg)
    if not np.all(np.isfinite(arr)):
        msg = f"{name} contains NaN or inf"
        raise ValueError(msg)
    if np.any(arr < 0):
        msg = f"{name} has negative weights (min {arr.min()!r}); weights must be >= 0"
        raise ValueError(msg)
    total = float(arr.sum())
    if abs(total - 1.0) > _WEIGHT_RTOL:
        msg = f"{name} must sum to 1 (rtol {_WEIGHT_RTOL:g}), got sum {total!r}"
        raise ValueError(msg)
    return arr


def _check_pair(
    x: npt.ArrayLike, y: npt.ArrayLike, a: npt.ArrayLike | None, b: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Validate two weighted clouds of the same dimension."""
    xa = _as_cloud(x, "x")
    ya = _as_cloud(y, "y")
    if xa.shape[1] != ya.shape[1]:
        msg = (f"x and y must have the same dimension d, got x of shape {xa.shape} "
               f"and y of shape {ya.shape}")
        raise ValueError(msg)
    return xa, ya, _as_weights(a, xa.shape[0], "a", "x"), _as_weights(b, ya.shape[0], "b", "y")


def _check_projections(projections: npt.ArrayLike, d: int) -> FloatArray:
    """Validate an ``(L, d)`` array of unit directions."""
    th = np.asarray(projections, dtype=np.float64)
    if th.ndim == 1:
        th = th[None, :]
    if th.ndim != 2 or th.shape[0] == 0 or th.shape[1] != d:
        msg = f"projections must have shape (L, {d}) with L >= 1, got shape {th.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(th)):
        msg = "projections contains NaN or inf"
        raise ValueError(msg)
    norms = np.linalg.norm(th, axis=1)
    if np.any(np.abs(norms - 1.0) > 1e-6):
        msg = f"projections must be unit vectors, got norms in [{norms.min()}, {norms.max()}]"
        raise ValueError(msg)
    return th


def _sqcost(x: FloatArray, y: FloatArray) -> FloatArray:
    """Squared Euclidean cost matrix ``(n, m)``, each entry summed from differences.

    Same values as ``ot.dist(x, y)`` (POT's default ``"sqeuclidean"``), but without the
    ``|x|^2 + |y|^2 - 2 x.y`` cancellation: exact zeros for coincident points and full
    relative accuracy for clouds far from the origin.
    """
    from scipy.spatial.distance import cdist  # lazily: `import meanfield` stays quick

    return cdist(x, y, "sqeuclidean")


def _sqrt_nonneg(value: float, what: str) -> float:
    """Square root of a squared distance; tiny negatives from round-off are clipped."""
    if not np.isfinite(value):
        msg = f"{what} produced a non-finite squared distance {value!r}"
        raise NumericalError(msg)
    return float(np.sqrt(max(value, 0.0)))


# ----------------------------------------------------------------------------- estimators
def w2_exact(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    a: npt.ArrayLike | None = None,
    b: npt.ArrayLike | None = None,
    *,
    num_itermax: int = 10_000_000,
) -> float:
    r"""Exact W2 by the network simplex on the squared Euclidean cost.

    .. math:: W_2(\mu, \nu) = \Big(\min_{P \in \Pi(a, b)} \sum_{ij} P_{ij}
              |x_i - y_j|^2\Big)^{1/2},

    computed as ``sqrt(ot.emd2(a, b, C))`` with ``C`` the squared Euclidean cost
    (as ``ot.dist(x, y)``, evaluated without cancellation). Memory is ``O(n m)``.

    Parameters
    ----------
    x : (n, d) ndarray of float64
        Support of the first measure (a 1-D array is read as ``(n, 1)``).
    y : (m, d) ndarray of float64
        Support of the second measure.
    a : (n,) ndarray of float64, optional
        Weights of ``x``, non-negative, summing to 1; uniform when None.
    b : (m,) ndarray of float64, optional
        Weights of ``y``; uniform when None.
    num_itermax : int, optional
        Maximum number of network-simplex iterations (POT's ``numItermax``).

    Returns
    -------
    float
        :math:`W_2`, not its square.

    Raises
    ------
    ValueError
        Invalid input (see the module docstring).
    ConvergenceError
        The simplex stopped before optimality (POT's ``numItermax`` warning or an
        infeasible / unbounded result code).
    """
    xa, ya, wa, wb = _check_pair(x, y, a, b)
    if int(num_itermax) < 1:
        msg = f"num_itermax must be a positive integer, got {num_itermax!r}"
        raise ValueError(msg)
    cost = _sqcost(xa, ya)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import ot  # lazily: POT imports its torch / jax backends when they are installed

        value, log = ot.emd2(wa, wb, cost, numItermax=int(num_itermax), log=True)
    if log["warning"] is not None:
        msg = f"ot.emd2 did not reach optimality: {log['warning']} (num_itermax={num_itermax})"
        raise ConvergenceError(msg)
    for w in caught:  # anything unrelated to convergence is passed on unchanged
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return _sqrt_nonneg(float(value), "w2_exact")


def _w2sq_1d(x: FloatArray, y: FloatArray, a: FloatArray, b: FloatArray) -> float:
    r"""Squared 1-D W2 from the quantile functions, on validated 1-D arrays.

    :math:`W_2^2 = \int_0^1 (F^{-1}(t) - G^{-1}(t))^2 dt`, exact: both quantile
    functions are step functions, constant between consecutive cumulative weights.
    """
    ix = np.argsort(x, kind="stable")
    iy = np.argsort(y, kind="stable")
    xs, ys = x[ix], y[iy]
    cx = np.cumsum(a[ix])
    cy = np.cumsum(b[iy])
    cx /= cx[-1]
    cy /= cy[-1]
    cx[-1] = cy[-1] = 1.0
    t = np.sort(np.concatenate(([0.0], cx, cy)))
    dt = np.diff(t)
    upper = t[1:]  # quantile on (t_k, t_{k+1}] is the first atom whose CDF reaches t_{k+1}
    qx = xs[np.minimum(np.searchsorted(cx, upper, side="left"), xs.size - 1)]
    qy = ys[np.minimum(np.searchsorted(cy, upper, side="left"), ys.size - 1)]
    return float(np.sum(dt * (qx - qy) ** 2))


def w2_1d(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    a: npt.ArrayLike | None = None,
    b: npt.ArrayLike | None = None,
) -> float:
    r"""Exact W2 between two weighted measures on the line, for any sizes.

    .. math:: W_2(\mu, \nu) = \Big(\int_0^1 |F_\mu^{-1}(t) - F_\nu^{-1}(t)|^2 dt\Big)^{1/2},

    evaluated exactly by merging the breakpoints of the two weighted CDFs.
    Cost ``O((n + m) log(n + m))``.

    Parameters
    ----------
    x : (n,) or (n, 1) ndarray of float64
        Support of the first measure.
    y : (m,) or (m, 1) ndarray of float64
        Support of the second measure.
    a : (n,) ndarray of float64, optional
        Weights of ``x``; uniform when None.
    b : (m,) ndarray of float64, optional
        Weights of ``y``; uniform when None.

    Returns
    -------
    float
        :math:`W_2`, not its square.

    Raises
    ------
    ValueError
        Invalid input, or points of dimension other than 1.
    """
    xa, ya, wa, wb = _check_pair(x, y, a, b)
    if xa.shape[1] != 1:
        msg = f"w2_1d needs 1-D points, got x of shape {xa.shape}"
        raise ValueError(msg)
    return _sqrt_nonneg(_w2sq_1d(xa[:, 0], ya[:, 0], wa, wb), "w2_1d")


def projection_set(d: int, n_projections: int, seed: int | None = 0) -> FloatArray:
    """Seeded set of directions drawn uniformly on the unit sphere.

    Draw once per study and reuse the same set for every N, so that the sliced
    estimates at different N differ only through the measures.

    Parameters
    ----------
    d : int
        Dimension of the points, ``d >= 1``.
    n_projections : int
        Number of directions ``L >= 1``.
    seed : int or None, optional
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (L, d) ndarray of float64
        Rows of unit Euclidean norm.
    """
    if int(d) != d or d < 1:
        msg = f"d must be a positive integer, got {d!r}"
        raise ValueError(msg)
    if int(n_projections) != n_projections or n_projections < 1:
        msg = f"n_projections must be a positive integer, got {n_projections!r}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((int(n_projections), int(d)))
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    while np.any(norms == 0.0):  # probability zero, but never divide by 0
        g[norms[:, 0] == 0.0] = rng.standard_normal((int(np.sum(norms == 0.0)), int(d)))
        norms = np.linalg.norm(g, axis=1, keepdims=True)
    return g / norms


class SlicedReference:
    """One measure's projections, sorted once, for many sliced W2 evaluations against it.

    Built by :func:`sliced_reference`; :func:`w2_sliced` builds one internally. Holds, per
    direction l (rows), the sorted projected support ``ys[l]``, its cumulative weights
    ``cy[l]``, the partial first moments ``gy[l]`` (∫₀^{cy} of the quantile function,
    with a leading 0) and the second moment ``m2[l]``.
    """

    __slots__ = ("cy", "dim", "gy", "m2", "projections", "ys")

    def __init__(self, y: FloatArray, b: FloatArray, projections: FloatArray) -> None:
        py = projections @ y.T                                   # (L, m)
        order = np.argsort(py, axis=1)  # ties: any order gives the same quantile function
        self.ys = np.take_along_axis(py, order, axis=1)
        w = b[order]
        self.cy = np.cumsum(w, axis=1)
        self.cy /= self.cy[:, -1:]
        self.cy[:, -1] = 1.0
        yw = self.ys * w
        self.gy = np.concatenate([np.zeros((py.shape[0], 1)), np.cumsum(yw, axis=1)], axis=1)
        self.m2 = np.sum(yw * self.ys, axis=1)
        self.projections = projections
        self.dim = y.shape[1]

    def _partial_moment(self, s: FloatArray) -> FloatArray:
        """G(s) = ∫₀^s F⁻¹(t) dt per direction, for levels s of shape (L, n)."""
        L, m = self.ys.shape
        offset = 2.0 * np.arange(L)[:, None]  # rows made increasing end to end: one search
        j = np.searchsorted((self.cy + offset).ravel(), (s + offset).ravel(), side="left")
        j = np.minimum(j.reshape(s.shape) - m * np.arange(L)[:, None], m - 1)  # cy_j >= s
        rows = np.arange(L)[:, None]
        prev = np.where(j > 0, self.cy[rows, np.maximum(j - 1, 0)], 0.0)
        return self.gy[rows, j] + (s - prev) * self.ys[rows, j]

    def w2sq_each(self, x: FloatArray, a: FloatArray) -> FloatArray:
        r"""Squared 1-D W2 per direction between the projections of (x, a) and this measure.

        Exact: :math:`\int (F^{-1} - G^{-1})^2 = \int F^{-1\,2} + \int G^{-1\,2}
        - 2 \sum_i x_{(i)} (G(c_i) - G(c_{i-1}))` with G the partial first moment.
        """
        px = self.projections @ x.T                              # (L, n)
        order = np.argsort(px, axis=1)
        xs = np.take_along_axis(px, order, axis=1)
        w = a[order]
        cx = np.cumsum(w, axis=1)
        cx /= cx[:, -1:]
        cx[:, -1] = 1.0
        g = self._partial_moment(cx)
        cross = np.sum(xs * np.diff(g, axis=1, prepend=0.0), axis=1)
        return np.maximum(np.sum(xs ** 2 * w, axis=1) + self.m2 - 2.0 * cross, 0.0)


def sliced_reference(
    y: npt.ArrayLike, b: npt.ArrayLike | None = None, *, projections: npt.ArrayLike
) -> SlicedReference:
    """Prepare ``(y, b)`` for repeated :func:`w2_sliced` calls (sorts its projections once).

    Parameters
    ----------
    y : (m, d) ndarray of float64
        Support of the reference measure.
    b : (m,) ndarray of float64, optional
        Its weights; uniform when None.
    projections : (L, d) ndarray of float64
        Unit directions, e.g. from :func:`projection_set`.
    """
    ya = _as_cloud(y, "y")
    wb = _as_weights(b, ya.shape[0], "b", "y")
    return SlicedReference(ya, wb, _check_projections(projections, ya.shape[1]))


def w2_sliced(
    x: npt.ArrayLike,
    y: npt.ArrayLike | SlicedReference,
    a: npt.ArrayLike | None = None,
    b: npt.ArrayLike | None = None,
    *,
    projections: npt.ArrayLike | None = None,
) -> float:
    r"""Sliced W2 over a fixed set of directions.

    .. math:: SW_2(\mu, \nu) = \Big(\frac{1}{L} \sum_{l=1}^{L}
              W_2^2(\langle \theta_l, \cdot \rangle_\# \mu,
              \langle \theta_l, \cdot \rangle_\# \nu)\Big)^{1/2} \le W_2(\mu, \nu),

    each 1-D term exact (quantile functions; see :class:`SlicedReference`). Cost
    ``O(L (n log n + m log m))``, or ``O(L n log(n m))`` against a prepared reference.

    Parameters
    ----------
    x : (n, d) ndarray of float64
        Support of the first measure.
    y : (m, d) ndarray of float64, or SlicedReference
        Support of the second measure, or a reference from :func:`sliced_reference`
        (then ``b`` and ``projections`` must be None: they are the reference's).
    a : (n,) ndarray of float64, optional
        Weights of ``x``; uniform when None.
    b : (m,) ndarray of float64, optional
        Weights of ``y``; uniform when None.
    projections : (L, d) ndarray of float64
        Unit directions :math:`\theta_l`, e.g. from :func:`projection_set`.

    Returns
    -------
    float
        :math:`SW_2`, not its square.
    """
    if isinstance(y, SlicedReference):
        if b is not None or projections is not None:
            msg = "with a SlicedReference y, pass neither b nor projections"
            raise ValueError(msg)
        ref = y
        xa = _as_cloud(x, "x")
        if xa.shape[1] != ref.dim:
            msg = (f"x and y must have the same dimension, got x of dimension {xa.shape[1]} "
                   f"and y of dimension {ref.dim}")
            raise ValueError(msg)
        wa = _as_weights(a, xa.shape[0], "a", "x")
    else:
        if projections is None:
            msg = "w2_sliced needs projections (e.g. projection_set(d, 200, seed))"
            raise ValueError(msg)
        xa, ya, wa, wb = _check_pair(x, y, a, b)
        ref = SlicedReference(ya, wb, _check_projections(projections, xa.shape[1]))
    return _sqrt_nonneg(float(np.mean(ref.w2sq_each(xa, wa))), "w2_sliced")


def _entropic_ot(
    a: FloatArray, b: FloatArray, cost: FloatArray, reg: float, max_iter: int, tol: float
) -> float:
    r"""Entropic OT value :math:`OT_\varepsilon(a, b)` by log-domain Sinkhorn.

    Solves :math:`\min_P \langle P, C\rangle + \varepsilon\,\mathrm{KL}(P \| a \otimes b)`
    through its dual potentials ``f``, ``g`` and returns
    :math:`\langle a, f\rangle + \langle b, g\rangle`. The stopping criterion is the L1
    error of the column marginal after each row update (checked every 10 iterations).
    The potentials are warm-started by epsilon-scaling (one update per epsilon, halving
    from the largest cost down to ``reg``); those updates count towards ``max_iter``.
    """
    from scipy.special import logsumexp

    loga = np.log(a, where=a > 0, out=np.full_like(a, -np.inf))
    logb = np.log(b, where=b > 0, out=np.full_like(b, -np.inf))
    f = np.zeros(a.size)
    g = np.zeros(b.size)
    # epsilon-scaling warm start: one update per epsilon from the largest cost down
    eps = max(float(cost.max()), reg)
    start = 0
    while eps > reg and start < max_iter:
        g = -eps * logsumexp((f[:, None] - cost) / eps + loga[:, None], axis=0)
        f = -eps * logsumexp((g[None, :] - cost) / eps + logb[None, :], axis=1)
        eps *= 0.5
        start += 1
    kern = -cost / reg
    err = np.inf
    for it in range(start, max_iter):
        g = -reg * logsumexp(kern + (f / reg + loga)[:, None], axis=0)
        f = -reg * logsumexp(kern + (g / reg + logb)[None, :], axis=1)
        if it % 10 == 9 or it == max_iter - 1:
            logp = kern + (f / reg + loga)[:, None] + (g / reg + logb)[None, :]
            err = float(np.sum(np.abs(np.exp(logsumexp(logp, axis=0)) - b)))
            if err < tol:
                break
    if not err < tol:
        msg = (f"Sinkhorn (reg={reg!r}) did not reach marginal error {tol:g} within "
               f"max_iter={max_iter} iterations (last error {err:.3g})")
        raise ConvergenceError(msg)
    fa = np.where(a > 0, f, 0.0)
    gb = np.where(b > 0, g, 0.0)
    return float(a @ fa + b @ gb)


def sinkhorn_divergence(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    a: npt.ArrayLike | None = None,
    b: npt.ArrayLike | None = None,
    *,
    reg: float,
    max_iter: int = 10000,
    tol: float = 1e-9,
) -> float:
    r"""Debiased Sinkhorn divergence, returned on the distance scale.

    .. math:: S_\varepsilon = OT_\varepsilon(a, b) - \tfrac12 OT_\varepsilon(a, a)
              - \tfrac12 OT_\varepsilon(b, b), \qquad
              \text{returns } \sqrt{\max(S_\varepsilon, 0)},

    with :math:`OT_\varepsilon(a, b) = \min_P \langle P, C \rangle + \varepsilon\,
    \mathrm{KL}(P \| a \otimes b)`, :math:`C_{ij} = |x_i - y_j|^2`, solved by a
    log-domain Sinkhorn loop (Feydy et al., 2019). :math:`S_\varepsilon \to W_2^2` as
    :math:`\varepsilon \to 0`; for a translation :math:`y = x + \tau` it equals
    :math:`|\tau|^2` for every :math:`\varepsilon`. Memory ``O(n m)``. The square root
    turns round-off of size :math:`10^{-16}` in :math:`S_\varepsilon` into about
    :math:`10^{-8}`. Plain Sinkhorn converges slowly when ``reg`` is small against the
    spread of the costs; then raise ``max_iter`` or loosen ``tol``.

    Parameters
    ----------
    x : (n, d) ndarray of float64
        Support of the first measure.
    y : (m, d) ndarray of float64
        Support of the second measure.
    a : (n,) ndarray of float64, optional
        Weights of ``x``; uniform when None.
    b : (m,) ndarray of float64, optional
        Weights of ``y``; uniform when None.
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`, in units of squared distance.
    max_iter : int, optional
        Maximum Sinkhorn iterations per OT problem.
    tol : float, optional
        Required L1 error of the marginals.

    Returns
    -------
    float
        :math:`\sqrt{\max(S_\varepsilon, 0)}`.

    Raises
    ------
    ConvergenceError
        A marginal error stayed above ``tol`` after ``max_iter`` iterations.
    """
    xa, ya, wa, wb = _check_pair(x, y, a, b)
    if not (np.isfinite(reg) and reg > 0):
        msg = f"reg must be a positive finite float, got {reg!r}"
        raise ValueError(msg)
    if int(max_iter) != max_iter or max_iter < 1:
        msg = f"max_iter must be a positive integer, got {max_iter!r}"
        raise ValueError(msg)
    if not (np.isfinite(tol) and tol > 0):
        msg = f"tol must be a positive finite float, got {tol!r}"
        raise ValueError(msg)
    reg, tol, max_iter = float(reg), float(tol), int(max_iter)
    ab = _entropic_ot(wa, wb, _sqcost(xa, ya), reg, max_iter, tol)
    aa = _entropic_ot(wa, wa, _sqcost(xa, xa), reg, max_iter, tol)
    bb = _entropic_ot(wb, wb, _sqcost(ya, ya), reg, max_iter, tol)
    return _sqrt_nonneg(ab - 0.5 * aa - 0.5 * bb, "sinkhorn_divergence")


def _psd_sqrt(s: FloatArray) -> FloatArray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    vals, vecs = np.linalg.eigh(0.5 * (s + s.T))
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def w2_gaussian(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    a: npt.ArrayLike | None = None,
    b: npt.ArrayLike | None = None,
) -> float:
    r"""Bures–Wasserstein distance between the Gaussian moment fits (a diagnostic).

    .. math:: W_2(\mathcal N(m_1, S_1), \mathcal N(m_2, S_2))^2 = |m_1 - m_2|^2
              + \mathrm{tr}\big(S_1 + S_2 - 2 (S_2^{1/2} S_1 S_2^{1/2})^{1/2}\big),

    with weighted means :math:`m = \sum_i a_i x_i` and weighted (population, no
    Bessel correction) covariances :math:`S = \sum_i a_i (x_i - m)(x_i - m)^T`.
    Matrix square roots are taken by a symmetric eigendecomposition with negative
    round-off eigenvalues clipped to 0 (exact for these symmetric PSD matrices, and
    defined for singular ones, unlike a general ``scipy.linalg.sqrtm``).

    Parameters
    ----------
    x : (n, d) ndarray of float64
        Support of the first measure.
    y : (m, d) ndarray of float64
        Support of the second measure.
    a : (n,) ndarray of float64, optional
        Weights of ``x``; uniform when None.
    b : (m,) ndarray of float64, optional
        Weights of ``y``; uniform when None.

    Returns
    -------
    float
        Bures–Wasserstein distance, not its square.
    """
    xa, ya, wa, wb = _check_pair(x, y, a, b)
    m1, m2 = wa @ xa, wb @ ya
    xc, yc = xa - m1, ya - m2
    s1 = (xc * wa[:, None]).T @ xc
    s2 = (yc * wb[:, None]).T @ yc
    r2 = _psd_sqrt(s2)
    cross = _psd_sqrt(r2 @ s1 @ r2)
    value = float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(cross))
    return _sqrt_nonneg(value, "w2_gaussian")


def compress(
    points: npt.ArrayLike,
    weights: npt.ArrayLike | None,
    max_points: int,
    *,
    rng: np.random.Generator,
    drop_mass: float = 1e-9,
) -> tuple[FloatArray, FloatArray]:
    """Shrink a weighted point set to at most ``max_points`` points.

    First the lightest points are dropped while their total mass stays below
    ``drop_mass`` (the empty and near-empty cells of a grid density); the rest is
    renormalised. If more than ``max_points`` remain, ``max_points`` points are drawn
    i.i.d. by weight and given uniform weights: the result is then an unbiased sample of
    the measure, and a W2 against it carries the sampling error of a ``max_points``-point
    sample (see :func:`floor`). Never builds anything larger than the input.

    Parameters
    ----------
    points : (P, d) ndarray of float64
        Support.
    weights : (P,) ndarray of float64, optional
        Non-negative weights summing to 1; uniform when None.
    max_points : int
        Largest size of the result, ``>= 1``.
    rng : numpy.random.Generator
        Source of the sample (used only when sampling is needed).
    drop_mass : float, optional
        Largest total mass that may be dropped, in ``[0, 1)``.

    Returns
    -------
    points : (K, d) ndarray of float64
    weights : (K,) ndarray of float64
        ``K <= max_points``, weights summing to 1.
    """
    pts = _as_cloud(points, "points")
    w = _as_weights(weights, pts.shape[0], "weights", "points")
    if int(max_points) != max_points or max_points < 1:
        msg = f"max_points must be a positive integer, got {max_points!r}"
        raise ValueError(msg)
    if not 0.0 <= drop_mass < 1.0:
        msg = f"drop_mass must lie in [0, 1), got {drop_mass!r}"
        raise ValueError(msg)
    order = np.argsort(w, kind="stable")
    dropped = np.searchsorted(np.cumsum(w[order]), drop_mass, side="right")
    keep = np.sort(order[dropped:])
    pts, w = pts[keep], w[keep] / w[keep].sum()
    if pts.shape[0] > max_points:
        pts = pts[rng.choice(pts.shape[0], size=int(max_points), p=w)]
        w = np.full(int(max_points), 1.0 / int(max_points))
    return pts, w


# ----------------------------------------------------------------------------- dispatch
def w2(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    a: npt.ArrayLike | None = None,
    b: npt.ArrayLike | None = None,
    *,
    method: str = "auto",
    memory_bytes: float = 2e9,
    projections: npt.ArrayLike | None = None,
    seed: int | None = 0,
    reg: float | None = None,
) -> float:
    """W2 between two weighted point clouds with a chosen or automatic estimator.

    ``method="auto"`` picks, in order:

    1. ``d == 1`` → :func:`w2_1d` (exact, any size);
    2. ``8 n m <= memory_bytes`` (the float64 cost matrix fits) and ``n, m <= 5000``
       → :func:`w2_exact`;
    3. otherwise → :func:`w2_sliced` with ``projections``, or
       ``projection_set(d, 200, seed)`` when ``projections`` is None.

    Parameters
    ----------
    x : (n, d) ndarray of float64
        Support of the first measure.
    y : (m, d) ndarray of float64
        Support of the second measure.
    a : (n,) ndarray of float64, optional
        Weights of ``x``; uniform when None.
    b : (m,) ndarray of float64, optional
        Weights of ``y``; uniform when None.
    method : {"auto", "exact", "1d", "sliced", "sinkhorn", "gaussian"}, optional
        Estimator; the explicit names call :func:`w2_exact`, :func:`w2_1d`,
        :func:`w2_sliced`, :func:`sinkhorn_divergence`, :func:`w2_gaussian`.
    memory_bytes : float, optional
        Memory budget for the ``(n, m)`` cost matrix in the ``"auto"`` rule.
    projections : (L, d) ndarray of float64, optional
        Directions for the sliced estimator; reuse one set across a whole study.
    seed : int or None, optional
        Seed of the default projection set (``L = 200``) when ``projections`` is None.
    reg : float, optional
        Entropic regularisation; required for ``method="sinkhorn"``.

    Returns
    -------
    float
        The chosen estimate of :math:`W_2` (never its square).
    """
    if method not in _METHODS:
        msg = f"method must be one of {_METHODS}, got {method!r}"
        raise ValueError(msg)
    if method == "auto":
        xa, ya, _, _ = _check_pair(x, y, a, b)
        (n, d), m = xa.shape, ya.shape[0]
        if d == 1:
            method = "1d"
        elif 8.0 * n * m <= memory_bytes and n <= 5000 and m <= 5000:
            method = "exact"
        else:
            method = "sliced"
    if method == "exact":
        return w2_exact(x, y, a, b)
    if method == "1d":
        return w2_1d(x, y, a, b)
    if method == "sliced":
        if projections is None:
            projections = projection_set(_as_cloud(x, "x").shape[1], 200, seed)
        return w2_sliced(x, y, a, b, projections=projections)
    if method == "sinkhorn":
        if reg is None:
            msg = "method='sinkhorn' needs reg (a positive float)"
            raise ValueError(msg)
        return sinkhorn_divergence(x, y, a, b, reg=reg)
    return w2_gaussian(x, y, a, b)


def floor(
    sample_limit: tuple[npt.ArrayLike, npt.ArrayLike],
    n: int,
    *,
    reps: int,
    rng: np.random.Generator,
    method: str = "auto",
    **kw: object,
) -> tuple[float, float]:
    """Estimator floor: W2 between an n-point i.i.d. sample of the limit and the limit.

    The limit is the weighted point set ``(points, weights)`` with ``P`` points. Each
    repetition draws ``n`` points i.i.d. from it (uniform weights ``1/n``) and measures
    :func:`w2` to the reference: the limit itself when ``P <= 10 n``, otherwise a second
    independent i.i.d. sample of size ``10 n`` (uniform weights), which keeps the cost
    bounded and adds only the smaller sampling error of the larger sample. This is the
    value a W2 estimate at N = n cannot go below even when the particles follow the
    limit exactly.

    Parameters
    ----------
    sample_limit : tuple of ((P, d) ndarray, (P,) ndarray)
        Points and weights (non-negative, summing to 1) of the limit measure.
    n : int
        Sample size, ``n >= 1``.
    reps : int
        Number of independent repetitions, ``reps >= 1``.
    rng : numpy.random.Generator
        Source of randomness.
    method : str, optional
        Estimator passed to :func:`w2`.
    **kw
        Further keywords for :func:`w2` (``projections``, ``seed``, ``reg``, ...).

    Returns
    -------
    mean : float
        Mean of the ``reps`` distances.
    std : float
        Their standard deviation (``ddof=1``; 0.0 when ``reps == 1``).
    """
    if not isinstance(sample_limit, tuple) or len(sample_limit) != 2:
        msg = "sample_limit must be a tuple (points (P, d), weights (P,))"
        raise ValueError(msg)
    points = _as_cloud(sample_limit[0], "sample_limit points")
    weights = _as_weights(sample_limit[1], points.shape[0], "sample_limit weights",
                          "sample_limit points")
    if int(n) != n or n < 1:
        msg = f"n must be a positive integer, got {n!r}"
        raise ValueError(msg)
    if int(reps) != reps or reps < 1:
        msg = f"reps must be a positive integer, got {reps!r}"
        raise ValueError(msg)
    if not isinstance(rng, np.random.Generator):
        msg = f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        raise ValueError(msg)
    n, reps = int(n), int(reps)
    n_points = points.shape[0]
    p = weights / weights.sum()
    values = np.empty(reps)
    for r in range(reps):
        sample = points[rng.choice(n_points, size=n, p=p)]
        if n_points <= 10 * n:
            values[r] = w2(sample, points, None, weights, method=method, **kw)
        else:
            ref = points[rng.choice(n_points, size=10 * n, p=p)]
            values[r] = w2(sample, ref, method=method, **kw)
    std = float(values.std(ddof=1)) if reps > 1 else 0.0
    return float(values.mean()), std
