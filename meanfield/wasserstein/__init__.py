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

from ..errors import ConvergenceError
from .approx import sinkhorn_divergence, w2_gaussian
from .choose import compress, floor, w2
from .exact import w2_1d, w2_exact
from .sliced import SlicedReference, projection_set, sliced_reference, w2_sliced

__all__ = [
    "ConvergenceError", "SlicedReference", "compress", "floor", "projection_set",
    "sinkhorn_divergence", "sliced_reference", "w2",
    "w2_1d", "w2_exact", "w2_gaussian", "w2_sliced",
]
