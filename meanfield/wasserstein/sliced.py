"""Sliced W2 over a fixed set of unit directions, with a reusable reference."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._checks import (
    FloatArray,
    _as_cloud,
    _as_weights,
    _check_pair,
    _check_projections,
    _sqrt_nonneg,
)


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
