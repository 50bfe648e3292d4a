"""Counter-based random numbers inside the kernels: Philox4x32-10.

Every random bit is Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", SC 2011; the Random123 reference) of a counter under a key, with no hashing
and no state.  The key is the 64-bit replica key (``meanfield.init.replica_streams``),
split into two 32-bit words (low, high).  The 128-bit counter is four 32-bit words

    (j mod 2³², ⌊j / 2³²⌋, n mod 2³², ⌊n / 2³²⌋ + tag · 2³⁰)

for block j < 2⁶⁴ of sub-stream n < 2⁶² (the step, or the epoch) of the stream kind
``tag`` (2 bits: noise, batch, epoch).  Distinct (tag, n, j) are distinct counters, so no
two draws of one replica share a block: streams cannot overlap, whatever their sizes.
A block's output words (x₀, x₁, x₂, x₃) make two 64-bit words x₀ + 2³² x₁ and
x₂ + 2³² x₃ (the little-endian reading of the 128 bits); 64-bit word i of a stream is
half i mod 2 of block ⌊i/2⌋.

Noise: particle k's J normals of a step are ⌈J/4⌉ blocks of the step's noise stream;
its block q, block k⌈J/4⌉ + q of the stream, holds normals 4q..4q+3, each 64-bit word a
Box–Muller pair (``_normal_pair``, ``_particle_quad``).  The last block's surplus is
unused (half a block per particle for the 2 normals of the Σ^{1/2} sampler).  Batch
draws use 64-bit word i of the step's batch stream for atom i, epoch permutations word i
of the epoch's stream for the swap at position i.

Results do not depend on thread count or scheduling, and any draw can be recomputed from
Python (``meanfield.engine``'s ``noise_draws`` and ``batch_draws``).  All words are
uint64 values below 2³² and each product is a 32 × 32 → 64-bit multiply of two such
words, so the loops over neurons that call these functions vectorise.  The functions are
checked bit for bit against Random123's known-answer vectors and against an independent
NumPy implementation (tests/test_rng.py).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .fastmath import _log, _sincos
from .jit import _JIT

_U = np.uint64
_LO32 = _U(0xFFFFFFFF)
_M0, _M1 = _U(0xD2511F53), _U(0xCD9E8D57)  # Philox4x32 round multipliers
_W0, _W1 = _U(0x9E3779B9), _U(0xBB67AE85)  # Philox4x32 key increments (Weyl sequence)
_S11, _S30, _S31, _S32 = _U(11), _U(30), _U(31), _U(32)
_MASK30 = _U((1 << 30) - 1)
_TAG_NOISE, _TAG_BATCH, _TAG_EPOCH = 0, 1, 2  # stream kinds (bits 30-31 of counter word 3)
_HALF_PI = 0.5 * math.pi
_TWO53 = 1.0 / 9007199254740992.0
_TWO32, _TWO30 = 2.0**-32, 2.0**-30


@nb.njit(inline="always", **_JIT)
def _philox_round(c0, c1, c2, c3, k0, k1):
    """One Philox4x32 round: two 32 × 32 → 64-bit products, their halves xor-ed in."""
    p0 = _M0 * c0
    p1 = _M1 * c2
    return (p1 >> _S32) ^ c1 ^ k0, p1 & _LO32, (p0 >> _S32) ^ c3 ^ k1, p0 & _LO32


@nb.njit(inline="always", **_JIT)
def _bump(k0, k1):
    """Return the next round's key: (k0, k1) plus the Weyl increments, modulo 2³²."""
    return (k0 + _W0) & _LO32, (k1 + _W1) & _LO32


@nb.njit(inline="always", **_JIT)
def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1).

    All arguments and results are uint64 holding 32-bit words.  Ten rounds, the key
    bumped between rounds (Random123's ``philox4x32_R(10, ctr, key)``), written out so
    that the code is straight-line and the loops that call it vectorise.
    """
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    return _philox_round(c0, c1, c2, c3, k0, k1)


@nb.njit(inline="always", **_JIT)
def _stream(key, tag, n):
    """Return the stream of kind ``tag``, sub-stream n (a step, an epoch), of replica ``key``.

    As the words it fixes: (key low, key high, counter word 2, counter word 3).
    """
    key, n = _U(key), _U(n)
    return key & _LO32, key >> _S32, n & _LO32, (n >> _S32) | (_U(tag) << _S30)


@nb.njit(inline="always", **_JIT)
def _block(s, j):
    """Block j of the stream s: 128 bits as two 64-bit words (x₀ + 2³² x₁, x₂ + 2³² x₃)."""
    j = _U(j)
    x0, x1, x2, x3 = _philox(j & _LO32, j >> _S32, s[2], s[3], s[0], s[1])
    return x0 | (x1 << _S32), x2 | (x3 << _S32)


@nb.njit(inline="always", **_JIT)
def _uniform(s, i):
    """Uniform draw in [0, 1) from the top 53 bits of 64-bit word i of the stream s."""
    w0, w1 = _block(s, _U(i) >> _U(1))
    w = w1 if i & 1 else w0
    return np.float64(w >> _S11) * _TWO53


@nb.njit(inline="always", **_JIT)
def _normal_pair(b):
    """Two independent N(0, 1) draws from the 64 random bits b (vectorisable Box–Muller).

    Radius r = (−2 log u₁)^{1/2} with u₁ = (h + ½) 2⁻³² ∈ (0, 1) from the high 32 bits h
    (so |z| ≤ (66 ln 2)^{1/2} ≈ 6.76: the normal is truncated where its tail mass is
    1.3e-11); angle φ = θ + q π/2 with θ = ((l + ½) 2⁻³⁰ − ½) π/2 ∈ (−π/4, π/4) from the
    low 30 bits l and the quadrant q from bits 30 and 31, so φ is uniform on a full turn.
    log, sin and cos are the short polynomial kernels of ``fastmath`` (≈ 1e-8 relative:
    the pair is measured within 3e-9 (1 + |z|) of exact Box–Muller on the same bits,
    tests/test_fastmath.py), so a pair is a pure function of b and the loop over neurons
    vectorises.
    """
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
def _particle_block(s, k, nq, q):
    """Block of normals 4q..4q+3 of particle k, whose J normals are nq = ⌈J/4⌉ blocks.

    The one place that lays out a step's noise stream: block k·nq + q of the stream s
    (``_particle_quad``, ``_particle_pair``, ``_fill_normals``, ``noise_draws`` and the
    kernels all read it this way).
    """
    return _block(s, _U(k) * _U(nq) + _U(q))


@nb.njit(inline="always", **_JIT)
def _particle_quad(s, k, nq, q):
    """Return normals 4q..4q+3 of particle k (one Philox block; see ``_particle_block``)."""
    w0, w1 = _particle_block(s, k, nq, q)
    z0, z1 = _normal_pair(w0)
    z2, z3 = _normal_pair(w1)
    return z0, z1, z2, z3


@nb.njit(inline="always", **_JIT)
def _particle_pair(s, k, nq, m):
    """Return normals 2m and 2m + 1 of particle k (half m mod 2 of block ⌊m/2⌋)."""
    w0, w1 = _particle_block(s, k, nq, m >> 1)
    return _normal_pair(w1 if m & 1 else w0)


@nb.njit(**_JIT)
def _fill_normals(s, row, out, scale):
    """out[j] = scale[j] · g_{row, j} for j < len(out): the normals of particle ``row``."""
    J = out.shape[0]
    nq = (J + 3) // 4
    for q in range(nq):
        z = _particle_quad(s, row, nq, q)
        for t in range(min(4, J - 4 * q)):
            out[4 * q + t] = scale[4 * q + t] * z[t]


@nb.njit(**_JIT)
def _noise_rows(key, n, out):
    """out[k] = the normals of particle k at step n (``meanfield.engine.noise_draws``)."""
    s = _stream(key, _TAG_NOISE, n)
    ones = np.ones(out.shape[1])
    for row in range(out.shape[0]):
        _fill_normals(s, row, out[row], ones)


@nb.njit(**_JIT)
def _epoch_perm(key, epoch, perm):
    """Fisher–Yates permutation of range(len(perm)) for the given epoch."""
    s = _stream(key, _TAG_EPOCH, epoch)
    J = perm.shape[0]
    for i in range(J):
        perm[i] = i
    for i in range(J - 1, 0, -1):
        r = min(int(_uniform(s, i) * (i + 1)), i)
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
    s = _stream(key, _TAG_BATCH, n)
    for i in range(M):
        v = _uniform(s, i)
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
