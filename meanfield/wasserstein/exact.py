"""Exact W2: network simplex (``ot.emd2``) and the 1-D quantile formula."""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from ..errors import ConvergenceError
from ._checks import FloatArray, _check_pair, _sqcost, _sqrt_nonneg


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
