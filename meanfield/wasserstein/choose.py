"""``w2``: the estimator a problem calls for; ``floor``; ``compress`` of large sets."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._checks import FloatArray, _as_cloud, _as_weights, _check_pair
from .approx import sinkhorn_divergence, w2_gaussian
from .exact import w2_1d, w2_exact
from .sliced import projection_set, w2_sliced

_METHODS = ("auto", "exact", "1d", "sliced", "sinkhorn", "gaussian")


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

    1. ``d == 1`` → :func:`~meanfield.wasserstein.w2_1d` (exact, any size);
    2. ``8 n m <= memory_bytes`` (the float64 cost matrix fits) and ``n, m <= 5000``
       → :func:`~meanfield.wasserstein.w2_exact`;
    3. otherwise → :func:`~meanfield.wasserstein.w2_sliced` with ``projections``, or
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
        Estimator; the explicit names call :func:`~meanfield.wasserstein.w2_exact`,
        :func:`~meanfield.wasserstein.w2_1d`, :func:`~meanfield.wasserstein.w2_sliced`,
        :func:`~meanfield.wasserstein.sinkhorn_divergence`,
        :func:`~meanfield.wasserstein.w2_gaussian`.
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
