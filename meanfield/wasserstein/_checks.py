"""Validation of point clouds, weights and projections; the squared cost."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..errors import NumericalError

FloatArray = npt.NDArray[np.float64]

_WEIGHT_RTOL = 1e-9


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
