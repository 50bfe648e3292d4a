"""Counter-based random numbers inside the kernels.

A draw is a hash of (replica key, step, particle, atom): results do not depend on thread
count or scheduling, and any draw can be recomputed from Python (``meanfield.engine``'s
``noise_draws`` and ``batch_draws``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .fastmath import _log, _sincos
from .jit import _JIT

_U = np.uint64
_GOLD = _U(0x9E3779B97F4A7C15)
_M1, _M2 = _U(0xBF58476D1CE4E5B9), _U(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = _U(30), _U(27), _U(31), _U(11)
_S32, _MASK30 = _U(32), _U((1 << 30) - 1)
_HALF_PI = 0.5 * math.pi
_TAG_BATCH, _TAG_EPOCH = _U(0x5851F42D4C957F2D), _U(0x14057B7EF767814F)
_TWO53 = 1.0 / 9007199254740992.0
_TWO32, _TWO30 = 2.0**-32, 2.0**-30


@nb.njit(inline="always", **_JIT)
def _fmix(z):
    """SplitMix64 finaliser: a bijective 64-bit mixer."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(inline="always", **_JIT)
def _subkey(key, n):
    """Key of sub-stream n (a step, an epoch) of the stream ``key``."""
    return _fmix(key ^ _fmix(_U(n) * _GOLD + _GOLD))


@nb.njit(inline="always", **_JIT)
def _bits(key, i):
    """64 random bits: draw i of the stream ``key``."""
    return _fmix(key ^ _fmix(_U(i) + _GOLD))


@nb.njit(inline="always", **_JIT)
def _uniform(key, i):
    """Uniform draw in [0, 1) with 53 random bits."""
    return np.float64(_bits(key, i) >> _S11) * _TWO53


@nb.njit(inline="always", **_JIT)
def _draw64(key, i):
    """64 random bits: output i of SplitMix64 started at ``key`` (one mix, vectorisable)."""
    return _fmix(key + (_U(i) + _U(1)) * _GOLD)


@nb.njit(inline="always", **_JIT)
def _normal_pair(key, m):
    """Two independent N(0, 1) draws: pair m of the stream ``key`` (vectorisable Box–Muller).

    One 64-bit draw b = draw m of the stream makes the pair.  Radius r = (−2 log u₁)^{1/2}
    with u₁ = (h + ½) 2⁻³² ∈ (0, 1) from the high 32 bits h (so |z| ≤ (66 ln 2)^{1/2} ≈ 6.76:
    the normal is truncated where its tail mass is 1.3e-11); angle φ = θ + q π/2 with
    θ = ((l + ½) 2⁻³⁰ − ½) π/2 ∈ (−π/4, π/4) from the low 30 bits l and the quadrant q from
    bits 30 and 31, so φ is uniform on a full turn.  log, sin and cos are the short
    polynomial kernels of ``fastmath`` (≈ 1e-8 relative: the pair is measured within 3e-9 (1 + |z|)
    of exact Box–Muller on the same bits, tests/test_fastmath.py), so a pair is a pure
    function of (key, m) and the loop over neurons vectorises.
    """
    b = _draw64(key, m)
    u1 = (np.float64(b >> _S32) + 0.5) * _TWO32
    r = math.sqrt(-2.0 * _log(u1))
    th = ((np.float64(b & _MASK30) + 0.5) * _TWO30 - 0.5) * _HALF_PI
    s, c = _sincos(th)
    odd = ((b >> _S30) & _U(1)) != _U(0)
    neg = ((b >> _S31) & _U(1)) != _U(0)
    x = -s if odd else c  # (c, s) rotated by q π/2
    y = c if odd else s
    return (-r if neg else r) * x, (-r if neg else r) * y


@nb.njit(inline="always", **_JIT)
def _particle_pair(key, k, half, m):
    """Return normals 2m and 2m + 1 of particle k, whose J normals are half = ⌈J/2⌉ pairs.

    The one place that lays out a step's noise stream: pair m of particle k is draw
    k·half + m (``_fill_normals``, ``noise_draws`` and the kernels all read it this way).
    """
    return _normal_pair(key, k * half + m)


@nb.njit(**_JIT)
def _fill_normals(key, row, out, scale):
    """out[j] = scale[j] · g_{row, j} for j < len(out): the normals of particle ``row``."""
    J = out.shape[0]
    half = (J + 1) // 2
    for m in range(half):
        z0, z1 = _particle_pair(key, row, half, m)
        out[2 * m] = scale[2 * m] * z0
        if 2 * m + 1 < J:
            out[2 * m + 1] = scale[2 * m + 1] * z1


@nb.njit(**_JIT)
def _epoch_perm(key, epoch, perm):
    """Fisher–Yates permutation of range(len(perm)) for the given epoch."""
    ke = _subkey(key ^ _TAG_EPOCH, epoch)
    J = perm.shape[0]
    for i in range(J):
        perm[i] = i
    for i in range(J - 1, 0, -1):
        r = min(int(_uniform(ke, i) * (i + 1)), i)
        perm[i], perm[r] = perm[r], perm[i]


@nb.njit(**_JIT)
def _draw_batch(key, n, M, J, uniform, pcum, sampling, perm, epoch, atoms):
    """Write the M atom indices of step n into atoms; return the epoch ``perm`` holds."""
    if sampling == 1:  # epochs: consecutive chunks of per-epoch permutations
        for i in range(M):
            pos = n * M + i
            e = pos // J
            if e != epoch:
                _epoch_perm(key, e, perm)
                epoch = e
            atoms[i] = perm[pos - e * J]
        return epoch
    kb = _subkey(key ^ _TAG_BATCH, n)
    for i in range(M):
        v = _uniform(kb, i)
        if uniform:
            atoms[i] = min(int(v * J), J - 1)
        else:  # first j with pcum[j] > v
            lo, hi = 0, J - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if pcum[mid] > v:
                    hi = mid
                else:
                    lo = mid + 1
            atoms[i] = lo
    return epoch
