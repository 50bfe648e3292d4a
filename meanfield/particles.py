"""The particle engine: SGD (shared minibatch), the particle SDE and its noiseless ODE.

One step for all neurons k (THEORY.md §2–3), with ω_n = ω(n dt):

- ``sgd``:  W^k ← W^k − ω_n γ_{α,N} [(1/M) Σ_{i∈B} H(W^k, ν^N, z_i) + λ W^k], one batch B
  of M atoms per step, shared by all neurons;
- ``sde``:  W^k ← W^k − ω_n [dt (h(W^k, ν^N)) + (γ_{α,N} dt / M)^{1/2} Σ_j √p_j G^k_j g^k_j],
  G^k_j = H(W^k, ν^N, z_j) − E_z H (Euler–Maruyama; g^k_j i.i.d. N(0, 1), the same g_j for
  every k when ``noise = "shared"``); independent noise with D = 2 on a line, uncoupled,
  draws the same law as Σ^{1/2}(W^k, ν^N) ξ^k with 2 normals ξ^k (``noise_sampler``);
- ``ode``:  the sde step without noise.

All randomness inside the kernels comes from a counter-based generator: a draw is a hash
of (replica key, step, particle, atom), so results do not depend on thread count or
scheduling, and any draw can be recomputed (``noise_draws``, ``batch_draws``).  Sums over
neurons are taken in fixed blocks of ``BLOCK`` neurons, added in block order: the same
arithmetic whether blocks run on one thread or many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from .data import DataLaw, make_data
from .errors import ConfigError, NumericalError
from .models import (
    _BOTH,
    _JIT,
    BLOCK,
    TILE,
    Model,
    _dsig,
    _forward_block,
    _input_grads_tile,
    _like,
    _log,
    _loss_grad_kernel,
    _mean_field_kernel,
    _output_grads,
    _output_grads_tile,
    _preact_tile,
    _reduce_blocks,
    _sig_block,
    _sincos,
    make_model,
    risk,
)
from .schedule import Schedule, make_schedule

CHUNKS = None  # parallel work units (one scratch each) of one replica; None: one per thread.
# The split changes no number: every block does the same arithmetic in any chunk.
BLOCK_PATH_MIN = 16 * BLOCK  # one replica with N ≥ this runs its blocks in parallel,
BLOCK_WORK_MIN = 1 << 17  # and so does one whose step does N·A·D ≥ this over ≥ 2 blocks
STORE_MAX = 1 << 23  # most activations kept between forward and backward pass (64 MiB in f64)
BLOWUP = 1e30  # |u| beyond this is a blow-up (no meaningful network output is this large)
_MODES = {"sgd": 0, "sde": 1, "ode": 2}
_SGD, _SDE, _ODE = 0, 1, 2
_SHARED, _ATOMS, _ROOT = 0, 1, 2  # noise: shared g_j; own g^k_j per atom; own ξ^k times Σ^{1/2}

# ---------------------------------------------------------------- counter-based RNG
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
    polynomial kernels of ``models`` (≈ 1e-8 relative: the pair is measured within 3e-9 (1 + |z|)
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


# ---------------------------------------------------------------- the step
@nb.njit(inline="always", **_JIT)
def _grads_full_tile(Wt, lo, nk, X, atoms, g, cd, i0, nt, sig, noise, cn, act, GD, GN, normals):
    """``_output_grads`` + ``_input_grads_tile`` of a tile (layers = both, C = p = 1).

    One pass over the neurons for the TILE = 4 atoms i0..i0+3.

    sig = (σ rows of the 4 atoms), cn = (noise-coefficient rows).  The same products, added
    to GD and GN in the same atom order, so the same bits; but the gradient rows stay in
    registers across the tile and e is never stored.  A partial tile (nt < 4 atoms) passes
    rows of its own atoms in the missing places; those atoms get g = cd = 0, so they add
    exact zeros (the sums keep their values; only the sign of a zero sum can differ).

    normals = (kind, key, half, sqrt_p, ssum): kind ``_ROOT`` adds the second moments
    p_i H_i H_iᵀ to (GN[0], ssum, GN[1]); ``_ATOMS`` draws the tile's normals here, in
    registers; 0 takes the noise coefficients from the cn rows.
    """
    zero = _like(g, 0.0)
    i1, i2, i3 = i0 + min(1, nt - 1), i0 + min(2, nt - 1), i0 + min(3, nt - 1)
    g0, g1 = g[i0, 0], g[i1, 0] if nt > 1 else zero
    g2, g3 = g[i2, 0] if nt > 2 else zero, g[i3, 0] if nt > 3 else zero
    w0, w1 = cd[i0], cd[i1] if nt > 1 else zero
    w2, w3 = cd[i2] if nt > 2 else zero, cd[i3] if nt > 3 else zero
    c0, c1, c2, c3 = w0 * g0, w1 * g1, w2 * g2, w3 * g3
    x0, x1 = X[atoms[i0], 0], X[atoms[i1], 0]
    x2, x3 = X[atoms[i2], 0], X[atoms[i3], 0]
    d0, d1, d2, d3 = w0 * x0, w1 * x1, w2 * x2, w3 * x3
    gs, cs, ds, xs = (g0, g1, g2, g3), (c0, c1, c2, c3), (d0, d1, d2, d3), (x0, x1, x2, x3)
    # Separate loops rather than one with `if noise` inside: the single loop measured 15–25 %
    # slower (toy sgd 1.43e-5 against 1.25e-5 s/step at N = 10³).
    if noise and normals[0] == _ROOT:  # second moments for Σ^{1/2} (the update draws 2 normals)
        ssum = normals[4]
        for k in range(nk):
            t, e = _tile_drift(Wt[0, lo + k], k, sig, gs, cs, ds, act, GD)
            _tile_moments(k, t, e, gs, cs, ds, xs, GN, ssum)
    elif noise and normals[0]:  # independent noise drawn here, in registers
        _, key, half, sqrt_p, ssum = normals
        zero = _like(sqrt_p, 0.0)
        q0, q1 = sqrt_p[i0], sqrt_p[i1] if nt > 1 else zero
        q2, q3 = sqrt_p[i2] if nt > 2 else zero, sqrt_p[i3] if nt > 3 else zero
        m = i0 // 2
        for k in range(nk):
            za, zb = _particle_pair(key, lo + k, half, m)
            zc, zd = _particle_pair(key, lo + k, half, m + 1)
            v0, v1 = _like(GD, q0 * za), _like(GD, q1 * zb)  # as stored in a cn row
            v2, v3 = _like(GD, q2 * zc), _like(GD, q3 * zd)
            ssum[k] = (((ssum[k] + v0) + v1) + v2) + v3
            t, e = _tile_drift(Wt[0, lo + k], k, sig, gs, cs, ds, act, GD)
            _tile_noise(k, (v0, v1, v2, v3), t, e, gs, xs, GN)
    elif noise:
        n0, n1, n2, n3 = cn
        for k in range(nk):
            t, e = _tile_drift(Wt[0, lo + k], k, sig, gs, cs, ds, act, GD)
            _tile_noise(k, (n0[k], n1[k], n2[k], n3[k]), t, e, gs, xs, GN)
    elif nt > 2:
        for k in range(nk):
            _tile_drift(Wt[0, lo + k], k, sig, gs, cs, ds, act, GD)
    else:  # the last 1 or 2 atoms of a batch: half the work of a padded tile
        for k in range(nk):
            _pair_drift(Wt[0, lo + k], k, sig, gs, cs, ds, act, GD)


@nb.njit(inline="always", **_JIT)
def _pair_drift(a, k, sig, gs, cs, ds, act, GD):
    """``_tile_drift`` of the first 2 atoms of a tile whose other atoms add exact zeros."""
    t0, t1 = sig[0][k], sig[1][k]
    e0, e1 = (a * gs[0]) * _dsig(t0, act), (a * gs[1]) * _dsig(t1, act)
    GD[0, k] = (GD[0, k] + cs[0] * t0) + cs[1] * t1
    GD[1, k] = (GD[1, k] + ds[0] * e0) + ds[1] * e1


@nb.njit(inline="always", **_JIT)
def _tile_drift(a, k, sig, gs, cs, ds, act, GD):
    """Neuron k of ``_grads_full_tile``, output weight a: GD[:, k] += the 4 atoms' terms.

    Added in atom order; returns the atoms' σ and e = a g σ'.
    """
    t = (sig[0][k], sig[1][k], sig[2][k], sig[3][k])
    e = ((a * gs[0]) * _dsig(t[0], act), (a * gs[1]) * _dsig(t[1], act),
         (a * gs[2]) * _dsig(t[2], act), (a * gs[3]) * _dsig(t[3], act))
    GD[0, k] = (((GD[0, k] + cs[0] * t[0]) + cs[1] * t[1]) + cs[2] * t[2]) + cs[3] * t[3]
    GD[1, k] = (((GD[1, k] + ds[0] * e[0]) + ds[1] * e[1]) + ds[2] * e[2]) + ds[3] * e[3]
    return t, e


@nb.njit(inline="always", **_JIT)
def _tile_noise(k, n, t, e, gs, xs, GN):
    """Neuron k of ``_grads_full_tile``: add the 4 atoms' noise terms n_i H_i to GN[:, k]."""
    GN[0, k] = ((((GN[0, k] + n[0] * t[0] * gs[0]) + n[1] * t[1] * gs[1]) + n[2] * t[2] * gs[2])
                + n[3] * t[3] * gs[3])
    GN[1, k] = ((((GN[1, k] + n[0] * e[0] * xs[0]) + n[1] * e[1] * xs[1]) + n[2] * e[2] * xs[2])
                + n[3] * e[3] * xs[3])


@nb.njit(inline="always", **_JIT)
def _tile_moments(k, t, e, gs, cs, ds, xs, GN, ssum):
    """Neuron k of ``_grads_full_tile``: add the 4 atoms' p_i H_i H_iᵀ to (GN[0], ssum, GN[1]).

    H_i = (g_i σ_i, e_i x_i); p_i H_i is (cs_i σ_i, ds_i e_i), the products ``_tile_drift``
    adds to GD, so the compiler computes them once.
    """
    a0, a1, a2, a3 = cs[0] * t[0], cs[1] * t[1], cs[2] * t[2], cs[3] * t[3]
    b0, b1, b2, b3 = ds[0] * e[0], ds[1] * e[1], ds[2] * e[2], ds[3] * e[3]
    h0, h1, h2, h3 = gs[0] * t[0], gs[1] * t[1], gs[2] * t[2], gs[3] * t[3]
    v0, v1, v2, v3 = xs[0] * e[0], xs[1] * e[1], xs[2] * e[2], xs[3] * e[3]
    GN[0, k] = (((GN[0, k] + a0 * h0) + a1 * h1) + a2 * h2) + a3 * h3
    ssum[k] = (((ssum[k] + a0 * v0) + a1 * v1) + a2 * v2) + a3 * v3
    GN[1, k] = (((GN[1, k] + b0 * v0) + b1 * v1) + b2 * v2) + b3 * v3


@nb.njit(inline="always", **_JIT)
def _root_noise(GD, GN, ssum, k, key, n):
    """Σ^{1/2} ξ for neuron k (D = 2) from h = GD[:, k] and the second moments.

    Σ = S − h hᵀ with S = (GN[0, k], ssum[k]; ssum[k], GN[1, k]); the principal square
    root of a 2×2 positive semi-definite matrix is (Σ + s I)/τ, s = (det Σ)^{1/2},
    τ = (tr Σ + 2s)^{1/2} (0 if Σ = 0).  ξ is the pair of particle n (``noise_draws``
    with J = 2).
    """
    h0, h1 = GD[0, k], GD[1, k]
    zero = _like(h0, 0.0)
    saa = max(GN[0, k] - h0 * h0, zero)  # rounding can leave a tiny negative variance
    sww = max(GN[1, k] - h1 * h1, zero)
    saw = ssum[k] - h0 * h1
    s = math.sqrt(max(saa * sww - saw * saw, zero))
    tau = math.sqrt(saa + sww + (s + s))
    r = _like(h0, 1.0) / tau if tau > zero else zero  # a select: the loop stays vectorised
    z0, z1 = _particle_pair(key, n, 1, 0)
    x0, x1 = _like(h0, z0), _like(h0, z1)
    return ((saa + s) * x0 + saw * x1) * r, (saw * x0 + (sww + s) * x1) * r


@nb.njit(inline="always", **_JIT)
def _update_block(Wt, lo, hi, X, atoms, na, g, cd, noise, sampler, cn_shared, sqrt_p,
                  kstep, layers, act, l2, om, dt, ns, vec, GD, GN, store):
    """Advance neurons lo..hi−1 of Wt (D, N) by one step given the step's loss gradients g.

    vec is (≥ 4 TILE + 2, BLOCK) scratch; GD, GN are (D, BLOCK); store is (≥ na, BLOCK)
    with the activations ``_forward_block`` kept for this block, or (≥ na, 0) to recompute
    them.  Atoms go by tiles of TILE (rows of vec: preactivations, activations, e and noise
    coefficients of the tile's atoms, then σ' and Σ_i cn_i).
    """
    D = Wt.shape[0]
    J = sqrt_p.shape[0]
    nk = hi - lo
    C = g.shape[1]
    off = C if layers == _BOTH else 0
    half = (J + 1) // 2
    om, dt, ns, l2 = _like(GD, om), _like(GD, dt), _like(GD, ns), _like(GD, l2)  # GD's dtype
    SIG, E, CN = TILE, 2 * TILE, 3 * TILE  # first rows of vec
    dsig, ssum = vec[4 * TILE], vec[4 * TILE + 1]
    keep = store.shape[1] > 0
    one_output = layers == _BOTH and C == 1 and X.shape[1] == 1  # scalar regression on a line
    root = noise and sampler == _ROOT  # Python checks one_output
    draw_here = one_output and sampler != _SHARED  # the tile kernel draws normals in registers
    GD[:, :nk] = 0.0
    if noise:
        GN[:, :nk] = 0.0
        ssum[:nk] = 0.0
    for i0 in range(0, na, TILE):
        nt = min(TILE, na - i0)
        if noise and not draw_here:  # cn_i = √p_i g^k_i for the tile's atoms, ssum in atom order
            if sampler == _SHARED:
                for t in range(nt):
                    cn = vec[CN + t]
                    cn[:nk] = cn_shared[i0 + t]
                    for k in range(nk):
                        ssum[k] += cn[k]
            else:
                for t in range(0, nt, 2):  # atoms i, i + 1 (i even) share a Box–Muller pair
                    i = i0 + t
                    m = i // 2
                    cn, cn1 = vec[CN + t], vec[CN + t + 1]
                    s0, s1 = sqrt_p[i], sqrt_p[min(i + 1, J - 1)]
                    if i + 1 < na:
                        for k in range(nk):
                            z0, z1 = _particle_pair(kstep, lo + k, half, m)
                            cn[k] = s0 * z0
                            cn1[k] = s1 * z1
                            ssum[k] = (ssum[k] + cn[k]) + cn1[k]
                    else:
                        for k in range(nk):
                            z0, _ = _particle_pair(kstep, lo + k, half, m)
                            cn[k] = s0 * z0
                            ssum[k] += cn[k]
        if not keep:
            _preact_tile(Wt, lo, nk, off, X, atoms, i0, nt, vec, 0)
        if one_output or (nt == TILE and layers == _BOTH and not noise):  # one-pass tiles
            # a partial tile (one_output only) is padded with copies of its last atom, weight 0
            t1, t2, t3 = min(1, nt - 1), min(2, nt - 1), min(3, nt - 1)
            if keep:
                rows = (store[i0], store[i0 + t1], store[i0 + t2], store[i0 + t3])
            else:
                for t in range(nt):
                    _sig_block(vec[t], vec[SIG + t], nk, act)
                rows = (vec[SIG], vec[SIG + t1], vec[SIG + t2], vec[SIG + t3])
            if one_output:
                _grads_full_tile(Wt, lo, nk, X, atoms, g, cd, i0, nt, rows, noise,
                                 (vec[CN], vec[CN + t1], vec[CN + t2], vec[CN + t3]), act, GD,
                                 GN, (sampler if draw_here else 0, kstep, half, sqrt_p,
                                      ssum))
                continue
            _output_grads_tile(Wt, lo, nk, g, i0, cd, act, rows,
                               (vec[E], vec[E + 1], vec[E + 2], vec[E + 3]), GD)
        else:
            for t in range(nt):
                i = i0 + t
                sig = store[i] if keep else vec[SIG + t]
                if not keep:
                    _sig_block(vec[t], sig, nk, act)
                _output_grads(Wt, lo, nk, g, i, cd[i], vec[CN + t], noise, layers, act, sig,
                              dsig, vec[E + t], GD, GN)
        _input_grads_tile(X, atoms, i0, nt, cd, noise, off, nk, vec, E, CN, GD, GN)
    if root:  # GN ← Σ^{1/2} ξ and ssum ← 0: the update below then adds ns·GN
        for k in range(nk):
            GN[0, k], GN[1, k] = _root_noise(GD, GN, ssum, k, kstep, lo + k)
            ssum[k] = 0.0
    for r in range(D):
        if noise:
            for k in range(nk):
                w = Wt[r, lo + k]
                step = dt * (GD[r, k] + l2 * w) + ns * (GN[r, k] - ssum[k] * GD[r, k])
                Wt[r, lo + k] = w - om * step
        else:
            for k in range(nk):
                w = Wt[r, lo + k]
                Wt[r, lo + k] = w - om * (dt * (GD[r, k] + l2 * w))


@nb.njit(**_JIT)
def _forward_blocks(Wt, b0, b1, X, atoms, na, layers, act, vec, u_part, sig_store):
    """Forward pass of blocks b0..b1−1 of Wt (D, N): u_part[b] and the kept activations.

    A function of its own (not inlined) so that the block-parallel loop runs the same
    vectorised code as the serial one.
    """
    N = Wt.shape[1]
    q = Wt[0, :0]
    for b in range((N + BLOCK - 1) // BLOCK):  # every block, skipping others' (see below)
        if b < b0 or b >= b1:
            continue
        _forward_block(Wt, q, b * BLOCK, min(N, (b + 1) * BLOCK), X, atoms, na, layers, act,
                       vec, u_part[b], sig_store[b])


@nb.njit(inline="always", **_JIT)
def _update_pair(Wt, b, X, atoms, na, g, cd, noise, sampler, cn_shared, sqrt_p, kstep,
                 layers, act, l2, om, dt, ns, vec, GD, GN, store, no_store, Ws, twin_noise,
                 all_atoms, gs, p, csq):
    """Update block b of the particles Wt, then (if Ws is not empty) of their limit twins.

    One call site of ``_update_block`` for both (the twins' arguments are selected), so the
    compiled step holds one copy of it.
    """
    N = Wt.shape[1]
    lo, hi = b * BLOCK, min(N, (b + 1) * BLOCK)
    for twin in range(2 if Ws.shape[1] > 0 else 1):
        _update_block(Ws if twin else Wt, lo, hi, X, all_atoms if twin else atoms,
                      p.shape[0] if twin else na, gs if twin else g, p if twin else cd,
                      twin_noise if twin else noise, sampler, cn_shared, sqrt_p, kstep,
                      layers, act, l2, om, dt, ns, vec, GD, GN, no_store if twin else store)
    if Ws.shape[1] > 0:
        _coupling_block(Wt, Ws, lo, hi, csq)


@nb.njit(**_JIT)
def _update_blocks(Wt, b0, b1, X, atoms, na, g, cd, noise, sampler, cn_shared, sqrt_p,
                   kstep, layers, act, l2, om, dt, ns, vec, GD, GN, sig_store, no_store, Ws,
                   twin_noise, all_atoms, gs, p, csq):
    """Update blocks b0..b1−1 of Wt (D, N), then of the twins Ws if not empty.

    A function of its own, like ``_forward_blocks``.  Both loop over every block index
    and skip those outside [b0, b1): the same kernels looped over range(b0, b1) (even
    clamped to [0, nblocks)) ran 1.45× slower in the step loop of ``_advance_blocks``
    (1.45e-4 against 1.01e-4 s/step, toy sgd, N = 10⁴, one thread; the replica path's
    step: 1.0e-4), although not in a micro-benchmark of the callee alone.
    """
    N = Wt.shape[1]
    for b in range((N + BLOCK - 1) // BLOCK):
        if b < b0 or b >= b1:
            continue
        _update_pair(Wt, b, X, atoms, na, g, cd, noise, sampler, cn_shared, sqrt_p, kstep,
                     layers, act, l2, om, dt, ns, vec, GD, GN, sig_store[b], no_store, Ws,
                     twin_noise, all_atoms, gs, p, csq)


@nb.njit(inline="always", **_JIT)
def _prepare_step(n, key, mode, sampler, sampling, M, uniform, pcum, p, sqrt_p, perm, epoch,
                  atoms, cd, cn_shared):
    """Draw the batch (sgd) or the shared noise (sde) of step n; return (na, kstep, epoch)."""
    J = p.shape[0]
    kstep = _subkey(key, n)
    if mode == _SGD:
        epoch = _draw_batch(key, n, M, J, uniform, pcum, sampling, perm, epoch, atoms)
        for i in range(M):
            cd[i] = 1.0 / M
        return M, kstep, epoch
    for j in range(J):
        atoms[j] = j
        cd[j] = p[j]
    if mode == _SDE and sampler == _SHARED:
        _fill_normals(kstep, 0, cn_shared, sqrt_p)
    return J, kstep, epoch


@nb.njit(**_JIT)
def _limit_u(t, t_lim, u_lim, out):
    """Out = u_lim linearly interpolated at time t on the grid t_lim (clamped at the ends)."""
    K = t_lim.shape[0]
    lo, hi = 0, K - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if t_lim[mid] <= t:
            lo = mid
        else:
            hi = mid
    w = 0.0 if t_lim[hi] == t_lim[lo] else (t - t_lim[lo]) / (t_lim[hi] - t_lim[lo])
    w = min(max(w, 0.0), 1.0)
    for j in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[j, c] = (1.0 - w) * u_lim[lo, j, c] + w * u_lim[hi, j, c]


@nb.njit(**_JIT)
def _twin_prepare(n, dt, t_lim, u_lim, Y, all_atoms, loss, us, gs, ell):
    """Loss gradients of the limit twins at step n: g* = ∂ℓ(u_lim(t_n), y) at every atom."""
    _limit_u(n * dt, t_lim, u_lim, us)
    J = us.shape[0]
    _loss_grad_kernel(us, Y, all_atoms, J, loss, gs, ell)


@nb.njit(**_JIT)
def _coupling_block(Wt, Ws, lo, hi, csq):
    """csq[k] = max(csq[k], |W_k − W*_k|²) for neurons lo..hi−1."""
    D = Wt.shape[0]
    for k in range(lo, hi):
        d2 = 0.0
        for r in range(D):
            d = Wt[r, k] - Ws[r, k]
            d2 += d * d
        csq[k] = max(csq[k], d2)


@nb.njit(_nrt=False, **_JIT)
def _steps_serial(Wt, n0, nsteps, key, X, Y, p, sqrt_p, pcum, uniform, layers, act, loss, l2,
                  mode, sampler, sampling, M, dt, ns, alpha, u_part, u, g, ell, atoms, cd,
                  cn_shared, perm, vec, GD, GN, sig_store, no_store, Ws, twin_noise, t_lim,
                  u_lim, all_atoms, us, gs, csq, u_hist):
    """Run steps n0..n0+nsteps−1 of one replica on one thread; return the failing step or −1.

    Each step: particles first, then their limit twins if Ws is not empty.  With u_hist
    not empty, u of step n goes to u_hist[n − n0].  The step loop is inside this function
    (one call per replica and segment: a call per step, with its ~45 array arguments,
    cost 0.2 µs, half the step at N = 1, M = 1).  Compiled without NRT (``_nrt=False``):
    it allocates nothing, and the reference counts of the ~100 array views a step takes
    (rows of vec, store, …) cost an atomic add and a call each — 0.87 → 0.61 µs per step
    at N = 1, 1.6 → 1.45 µs at N = 10² (toy sgd, float64, AMD EPYC Zen 5); the same bits.
    """
    N = Wt.shape[1]
    nblocks = (N + BLOCK - 1) // BLOCK
    q = Wt[0, :0]
    epoch = -1
    for n in range(n0, n0 + nsteps):
        na, kstep, epoch = _prepare_step(n, key, mode, sampler, sampling, M, uniform, pcum, p,
                                         sqrt_p, perm, epoch, atoms, cd, cn_shared)
        for b in range(nblocks):
            _forward_block(Wt, q, b * BLOCK, min(N, (b + 1) * BLOCK), X, atoms, na, layers,
                           act, vec, u_part[b], sig_store[b])
        if not _reduce_blocks(u_part, nblocks, na, 1.0 / N, u, BLOWUP):
            return n
        if u_hist.shape[0] > 0:  # loops: a slice assignment would need NRT
            for i in range(na):
                for c in range(u.shape[1]):
                    u_hist[n - n0, i, c] = u[i, c]
        _loss_grad_kernel(u, Y, atoms, na, loss, g, ell)
        om = (1.0 + n * dt) ** (-alpha)
        if Ws.shape[1] > 0:
            _twin_prepare(n, dt, t_lim, u_lim, Y, all_atoms, loss, us, gs, ell)
        for b in range(nblocks):
            _update_pair(Wt, b, X, atoms, na, g, cd, mode == _SDE, sampler, cn_shared,
                         sqrt_p, kstep, layers, act, l2, om, dt, ns, vec, GD, GN, sig_store[b],
                         no_store, Ws, twin_noise, all_atoms, gs, p, csq)
    return -1


@nb.njit(parallel=True, **_JIT)
def _advance_replicas(Wt, keys, X, Y, p, pcum, uniform, layers, act, loss, l2, mode, sampler,
                      sampling, M, dt, ns, alpha, n0, nsteps, u_part, u, g, ell, atoms, cd,
                      cn_shared, perm, vec, GD, GN, sig_store, no_store, Ws, twin_noise, t_lim,
                      u_lim, us, gs, csq, u_hist, status):
    """Advance every replica r (in parallel; Wt is (R, D, N)) by nsteps steps from step n0.

    Ws (R, D, N or 0): limit twins advanced in the same loop (none if N = 0), csq (R, N)
    their running sup of |W − W*|²; u_hist (R, nsteps or 0, J, C): the mean field of every
    step.  status[r] is set to the failing step on NaN/inf or blow-up (replica r stops).
    """
    sqrt_p = np.sqrt(p)
    all_atoms = np.arange(p.shape[0])
    for r in nb.prange(Wt.shape[0]):
        bad = _steps_serial(Wt[r], n0, nsteps, keys[r], X, Y, p, sqrt_p, pcum, uniform, layers,
                            act, loss, l2, mode, sampler, sampling, M, dt, ns, alpha, u_part[r],
                            u[r], g[r], ell[r], atoms[r], cd[r], cn_shared[r], perm[r], vec[r],
                            GD[r], GN[r], sig_store[r], no_store, Ws[r], twin_noise, t_lim,
                            u_lim, all_atoms, us[r], gs[r], csq[r], u_hist[r])
        if bad >= 0:
            status[r] = bad


@nb.njit(parallel=True, **_JIT)
def _advance_blocks(Wt, key, X, Y, p, pcum, uniform, layers, act, loss, l2, mode, sampler,
                    sampling, M, dt, ns, alpha, n0, nsteps, u_part, u, g, ell, atoms, cd,
                    cn_shared, perm, vec, GD, GN, sig_store, no_store, Ws, twin_noise, t_lim,
                    u_lim, us, gs, csq, u_hist, status):
    """Advance one replica (Wt is (D, N)), its neuron blocks in parallel within each step.

    Blocks are split into ``vec.shape[0]`` chunks (one scratch each; one per thread by
    default); every block does the same arithmetic as in ``_advance_replicas`` whatever its
    chunk, so the result is bitwise identical.
    """
    N = Wt.shape[1]
    J = p.shape[0]
    nblocks = (N + BLOCK - 1) // BLOCK
    nchunks = vec.shape[0]
    per = (nblocks + nchunks - 1) // nchunks
    sqrt_p = np.sqrt(p)
    all_atoms = np.arange(J)
    epoch = -1
    couple = Ws.shape[1] > 0
    for n in range(n0, n0 + nsteps):
        na, kstep, epoch = _prepare_step(n, key, mode, sampler, sampling, M, uniform, pcum, p,
                                         sqrt_p, perm, epoch, atoms, cd, cn_shared)
        for c in nb.prange(nchunks):
            _forward_blocks(Wt, c * per, min(nblocks, (c + 1) * per), X, atoms, na, layers,
                            act, vec[c], u_part, sig_store)
        if not _reduce_blocks(u_part, nblocks, na, 1.0 / N, u, BLOWUP):
            status[0] = n
            return
        if u_hist.shape[0] > 0:
            u_hist[n - n0, :, :] = u[:na]
        _loss_grad_kernel(u, Y, atoms, na, loss, g, ell)
        om = (1.0 + n * dt) ** (-alpha)
        if couple:
            _twin_prepare(n, dt, t_lim, u_lim, Y, all_atoms, loss, us, gs, ell)
        for c in nb.prange(nchunks):
            _update_blocks(Wt, c * per, min(nblocks, (c + 1) * per), X, atoms, na, g, cd,
                           mode == _SDE, sampler, cn_shared, sqrt_p, kstep, layers, act, l2,
                           om, dt, ns, vec[c], GD[c], GN[c], sig_store, no_store, Ws,
                           twin_noise, all_atoms, gs, p, csq)


# ---------------------------------------------------------------- Python API
@dataclass(frozen=True)
class Trajectory:
    """Snapshots of a run of ``R`` replicas.

    Attributes
    ----------
    W : (R, S, N, D) ndarray or None
        Particles at the snapshot times (None when not saved).
    u : (R, S, J, C) ndarray
        Mean field u_j = ⟨ν^N, F(·, x_j)⟩ at the training atoms.
    risk : (R, S) ndarray
        Training risk Σ_j p_j ℓ(u_j, y_j).
    times : (S,) ndarray
        Actual step times n·dt of the snapshots.
    steps : (S,) ndarray of int64
        Step indices of the snapshots.
    schedule : Schedule
    test_risk, accuracy, test_accuracy : (R, S) ndarray or None
        Held-out risk and (weighted) accuracies when the data have them.
    coupling_sq : (R, N) ndarray or None
        With a limit: sup over steps of |W^{k,N} − W^{k,⋆}|² per neuron (THEORY.md §5).
    coupling_rms : (R, S) ndarray or None
        With a limit: RMS over neurons of |W^{k,N} − W^{k,⋆}| at the snapshots.
    output_error : (R, S) ndarray or None
        With a limit: RMS over atoms (and outputs) of u^N − u at the snapshots.
    u_steps : (R, n_T + 1, J, C) ndarray or None
        With ``record_u``: the mean field at every step time n·dt.
    """

    W: np.ndarray | None
    u: np.ndarray
    risk: np.ndarray
    times: np.ndarray
    steps: np.ndarray
    schedule: Schedule
    test_risk: np.ndarray | None = None
    accuracy: np.ndarray | None = None
    test_accuracy: np.ndarray | None = None
    coupling_sq: np.ndarray | None = None
    coupling_rms: np.ndarray | None = None
    output_error: np.ndarray | None = None
    u_steps: np.ndarray | None = None


def replica_streams(config) -> tuple[list[np.random.Generator], np.ndarray]:
    """Return the per-replica init generators and the (R,) uint64 keys of the dynamics.

    Both derive from ``SeedSequence(run.seed).spawn(seeds)``; with ``init.seed`` set the
    initial particles come from ``SeedSequence(init.seed).spawn(seeds)`` instead, so a
    study can fix W_0 and vary only the noise.
    """
    R = config.run.seeds
    children = [c.spawn(2) for c in np.random.SeedSequence(config.run.seed).spawn(R)]
    keys = np.array([c[1].generate_state(1, np.uint64)[0] for c in children], dtype=np.uint64)
    if config.init.seed is None:
        init = [c[0] for c in children]
    else:
        init = np.random.SeedSequence(config.init.seed).spawn(R)
    return [np.random.default_rng(s) for s in init], keys


def init_scales(config, model: Model) -> np.ndarray:
    """(D,) per-coordinate scale of μ₀: std (normal) or half-width (uniform).

    ``init.scale_a`` / ``init.scale_b`` override ``init.scale`` for the output / input
    weights when layers = both.
    """
    ini = config.init
    scale = np.full(model.dim, ini.scale)
    q = model.offset
    if q:
        scale[:q] = ini.scale if ini.scale_a is None else ini.scale_a
        scale[q:] = ini.scale if ini.scale_b is None else ini.scale_b
    return scale


def initial_particles(config, model: Model, rng: np.random.Generator, N: int) -> np.ndarray:
    """Draw N i.i.d. particles (N, D) from μ₀ as ``[init]`` describes (float64)."""
    ini = config.init
    p, D = model.input_dim, model.dim
    nb_a = model.offset  # number of output weights (0 for layers = first)
    if ini.kind == "dirac":
        point = np.asarray(ini.point, dtype=np.float64)
        if point.shape != (D,):
            msg = f"init.point must be a list of D = {D} numbers for this model, got {len(point)}"
            raise ConfigError(msg)
        return np.tile(point, (N, 1))
    if ini.kind == "torch_default":
        lim = np.full(D, 1.0 / math.sqrt(p))
        lim[:nb_a] = 1.0 / math.sqrt(N)
        return rng.uniform(-1.0, 1.0, size=(N, D)) * lim
    scale = init_scales(config, model)
    if ini.kind == "uniform":
        return rng.uniform(-1.0, 1.0, size=(N, D)) * scale
    return rng.standard_normal((N, D)) * scale


def _scratch(R, N, A, J, C, D, dtype, blocks, couple, hist_steps):
    """Preallocated work arrays: per replica, or (blocks mode, R = 1) per chunk of blocks."""
    nblocks = (N + BLOCK - 1) // BLOCK
    store = R * nblocks * A * BLOCK <= STORE_MAX
    lead = () if blocks else (R,)
    units = (min(CHUNKS or nb.get_num_threads(), nblocks),) if blocks else (R,)
    return {
        "u_part": np.zeros((*lead, nblocks, A, C), dtype),
        "u": np.zeros((*lead, A, C), dtype),
        "g": np.zeros((*lead, A, C), dtype),
        "ell": np.zeros((*lead, max(A, J)), dtype),
        "atoms": np.zeros((*lead, A), np.int64),
        "cd": np.zeros((*lead, A), dtype),
        "cn_shared": np.zeros((*lead, J), dtype),
        "perm": np.zeros((*lead, J), np.int64),
        "vec": np.zeros((*units, 4 * TILE + 2, BLOCK), dtype),
        "GD": np.zeros((*units, D, BLOCK), dtype),
        "GN": np.zeros((*units, D, BLOCK), dtype),
        # σ(⟨b_k, x_i⟩) of every neuron and step atom, kept from the forward to the backward
        # pass when it fits in STORE_MAX numbers (else recomputed: the same values)
        "sig_store": np.zeros((*lead, nblocks, A, BLOCK if store else 0), dtype),
        "no_store": np.zeros((J, 0), dtype),
        "Ws": np.zeros((*lead, D, N if couple else 0), dtype),
        "twin_noise": False,
        "t_lim": np.zeros(2),
        "u_lim": np.zeros((2, J, C), dtype),
        "us": np.zeros((*lead, J, C), dtype),
        "gs": np.zeros((*lead, J, C), dtype),
        "csq": np.zeros((*lead, N if couple else 0)),
        "u_hist": np.zeros((*lead, hist_steps, J, C), dtype),
    }


def _mean_field(Wt, X, model):
    """Mean field u (J, C) of particles Wt (D, N) by the blocked sum; None if not finite."""
    nblocks = (Wt.shape[1] + BLOCK - 1) // BLOCK
    u_part = np.zeros((nblocks, X.shape[0], model.outputs), Wt.dtype)
    u = np.zeros((X.shape[0], model.outputs), Wt.dtype)
    vec = np.zeros((TILE + 1, BLOCK), Wt.dtype)
    ok = _mean_field_kernel(Wt, Wt[0, :0], X, model.layers, model.activation, vec, u_part, u,
                            BLOWUP)
    return u if ok and np.all(np.isfinite(Wt)) else None


def _accuracy(u, labels, p):
    if labels is None or len(labels) == 0:
        return np.nan
    pred = np.argmax(u, axis=1) if u.shape[1] > 1 else (u[:, 0] > 0).astype(np.int64)
    return float(np.dot(p, pred == labels))


def simulate(config, *, data: DataLaw | None = None, save_weights: bool = True,
             progress: bool = False, limit=None, schedule: Schedule | None = None,
             record_u: bool = False) -> Trajectory:
    """Run ``run.seeds`` replicas of the particle system described by ``config``.

    Parameters
    ----------
    config : Config
    data : DataLaw, optional
        The data law (default: ``make_data(config)``).
    save_weights : bool
        Keep the particles at every snapshot (memory R·S·N·D).
    progress : bool
        Show a tqdm bar over snapshots.
    limit : meanfield.limit.Limit, optional
        Couple every particle with a limit twin W^{k,⋆} (same W^k_0, same noise draws g^k_j)
        driven by the limit's mean field u_t, inside the same compiled loop (THEORY.md §5):
        the MV SDE for mode = sde at β = 1, the deterministic flow otherwise.
    schedule : Schedule, optional
        Time grid to use instead of the config's (the reference limit solver sets its own
        step); the noise scale is (schedule.gamma_an · dt / M)^{1/2}.
    record_u : bool
        Keep the mean field of every step (sde and ode only).

    Returns
    -------
    Trajectory

    Raises
    ------
    NumericalError
        On NaN/inf or blow-up (|u| > 1e30), naming the replica, the step and the time.
    """
    data = make_data(config) if data is None else data
    model = make_model(config, data)
    sched = make_schedule(config) if schedule is None else schedule
    d, s, R, N = config.dynamics, config.schedule, config.run.seeds, config.run.N
    if d.sampling == "epochs" and d.mode == "sgd" and not data.uniform:
        msg = "dynamics.sampling = 'epochs' needs uniform atom weights; use 'iid'"
        raise ConfigError(msg)
    if record_u and d.mode == "sgd":
        msg = "record_u needs dynamics.mode = 'sde' or 'ode' (sgd sees only its batch)"
        raise ConfigError(msg)
    if limit is not None:
        check_coupling(config)
    dtype = np.dtype(config.run.dtype)
    J, C, D = data.x.shape[0], model.outputs, model.dim
    mode = _MODES[d.mode]
    M = s.batch
    A = M if mode == _SGD else J
    X, Y = np.ascontiguousarray(data.x, dtype), np.ascontiguousarray(data.y, dtype)
    p = data.p.astype(dtype)
    pcum = np.cumsum(data.p)
    pcum[-1] = 1.0
    rngs, keys = replica_streams(config)
    Wt = np.ascontiguousarray(np.stack([initial_particles(config, model, g, N).T for g in rngs]),
                              dtype=dtype)  # (R, D, N): loops over neurons are unit-stride
    ns = math.sqrt(sched.gamma_an * sched.dt / M)
    # threads meet twice per step on the block path: worth it for enough work per step
    # (digits-size sgd at N = 10³, two blocks on 2 threads: 7.7e-4 s/step against
    # 8.2e-4 to 1.1e-3 on the replica path's one thread; toy sgd reaches it at N ≈ 6600)
    blocks = R == 1 and (N >= BLOCK_PATH_MIN or (N > BLOCK and N * A * D >= BLOCK_WORK_MIN))
    seg_max = int(np.max(np.diff(sched.snapshot_steps), initial=0))
    scr = _scratch(R, N, A, J, C, D, dtype, blocks, limit is not None,
                   seg_max if record_u else 0)
    if limit is not None:
        scr["Ws"][...] = Wt[0] if blocks else Wt
        scr["twin_noise"] = d.mode == "sde" and s.beta == 1.0
        scr["t_lim"] = np.ascontiguousarray(limit.t_u, np.float64)
        scr["u_lim"] = np.ascontiguousarray(limit.u, dtype)
    status = np.full(R, -1, np.int64)
    S = len(sched.snapshot_steps)
    out_W = np.empty((R, S, N, D), dtype) if save_weights else None
    out_u = np.empty((R, S, J, C), dtype)
    metrics = {k: np.full((R, S), np.nan) for k in ("risk", "test_risk", "acc", "test_acc",
                                                    "crms", "oerr")}
    u_steps = np.empty((R, sched.n_total + 1, J, C), dtype) if record_u else None
    has_test = data.x_test.shape[0] > 0
    X_test = data.x_test.astype(dtype)

    def record(si):
        for r in range(R):
            u = _mean_field(Wt[r], X, model)
            if u is None:
                t = sched.snapshot_steps[si] * sched.dt
                msg = (f"replica {r}: non-finite particles or |u| > {BLOWUP:g} "
                       f"at step {sched.snapshot_steps[si]} "
                       f"(t = {t:.6g})")
                raise NumericalError(msg)
            out_u[r, si] = u
            if save_weights:
                out_W[r, si] = Wt[r].T
            metrics["risk"][r, si] = risk(u, data.y, data.p, model)
            metrics["acc"][r, si] = _accuracy(u, data.labels, data.p)
            if has_test:
                ut = _mean_field(Wt[r], X_test, model)
                uniform_test = np.full(len(X_test), 1.0 / len(X_test))
                metrics["test_risk"][r, si] = risk(ut, data.y_test, uniform_test, model)
                metrics["test_acc"][r, si] = _accuracy(ut, data.labels_test, uniform_test)
            if limit is not None:
                twin = scr["Ws"] if blocks else scr["Ws"][r]
                metrics["crms"][r, si] = math.sqrt(np.mean(np.sum((Wt[r] - twin) ** 2, 0)))
                ul = limit.u_at(float(sched.snapshot_steps[si] * sched.dt))
                metrics["oerr"][r, si] = math.sqrt(np.mean((u - ul) ** 2))
        if record_u and si == S - 1:
            u_steps[:, -1] = out_u[:, si]

    record(0)
    segments = range(1, S)
    if progress:
        from tqdm import tqdm

        segments = tqdm(segments, desc=f"N={N}", unit="snap", leave=False)
    sampler = noise_sampler(config, model, coupled=limit is not None)
    args = (X, Y, p, pcum.astype(dtype), data.uniform, model.layers, model.activation,
            model.loss, model.l2, mode, sampler, int(d.sampling == "epochs"), M,
            sched.dt, ns, s.alpha)
    for si in segments:
        n0 = int(sched.snapshot_steps[si - 1])
        nsteps = int(sched.snapshot_steps[si]) - n0
        if nsteps > 0:
            if blocks:
                _advance_blocks(Wt[0], keys[0], *args, n0, nsteps, *scr.values(), status)
            else:
                _advance_replicas(Wt, keys, *args, n0, nsteps, *scr.values(), status)
            if record_u:
                hist = scr["u_hist"][None] if blocks else scr["u_hist"]
                u_steps[:, n0:n0 + nsteps] = hist[:, :nsteps]
        bad = np.flatnonzero(status >= 0)
        if bad.size:
            r, n = int(bad[0]), int(status[bad[0]])
            msg = (f"replica {r}: mean field non-finite or beyond {BLOWUP:g} at step {n} "
                   f"(t = {n * sched.dt:.6g}); reduce schedule.gamma or dynamics.dt_factor")
            raise NumericalError(msg)
        record(si)
    cls = data.labels is not None
    coupled = limit is not None
    return Trajectory(
        W=out_W, u=out_u, risk=metrics["risk"], times=sched.times, steps=sched.snapshot_steps,
        schedule=sched,
        test_risk=metrics["test_risk"] if has_test else None,
        accuracy=metrics["acc"] if cls else None,
        test_accuracy=metrics["test_acc"] if cls and has_test else None,
        coupling_sq=(scr["csq"][None] if blocks else scr["csq"]) if coupled else None,
        coupling_rms=metrics["crms"] if coupled else None,
        output_error=metrics["oerr"] if coupled else None,
        u_steps=u_steps,
    )


def noise_sampler(config, model: Model, *, coupled: bool = False) -> int:
    """Kernel code of the way the sde draws its noise (THEORY.md §3).

    ``_SHARED``: one g_j per atom for all particles.  ``_ROOT``: independent noise on a
    scalar regression on a line (D = 2), uncoupled: 2 normals ξ^k per particle times the
    closed-form principal root Σ^{1/2}(W^k) — the same law as Σ_j √p_j G^k_j g^k_j at a cost
    of 3 products per atom instead of a normal.  ``_ATOMS`` otherwise: J normals g^k_j per
    particle (coupled twins keep it: their noise difference Σ_j √p_j (G_j − G*_j) g_j is
    Lipschitz in W, while Σ^{1/2} is not where Σ degenerates).
    """
    if config.dynamics.noise == "shared":
        return _SHARED
    one_output = model.layers == _BOTH and model.outputs == 1 and model.dim == 2
    return _ROOT if one_output and not coupled else _ATOMS


def check_coupling(config) -> None:
    """Raise ConfigError unless synchronous coupling is defined for this config.

    Coupling is defined for sde (independent noise, or any noise at β < 1), ode, and sgd
    with β < 1 (THEORY.md §4–5).
    """
    from .limit import check_limit_defined

    d = config.dynamics
    if d.mode == "sgd" and config.schedule.beta == 1.0:
        msg = ("--couple with dynamics.mode = 'sgd' needs schedule.beta < 1: shared-batch SGD "
               "at beta = 1 has no deterministic limit to couple with")
        raise ConfigError(msg)
    check_limit_defined(config)


# ---------------------------------------------------------------- draws, for tests and twins
def noise_draws(key: int, step: int, N: int, J: int) -> np.ndarray:
    """Return the (N, J) standard normals g^k_j that step ``step`` uses (independent noise).

    Row 0 is also the shared-noise draw of that step.  With J = 2 these are the ξ^k that
    the Σ^{1/2} sampler multiplies (``noise_sampler``).
    """
    k = np.uint64(_subkey(np.uint64(key), step))  # from Python the jitted helper returns int
    out = np.empty((N, J))
    ones = np.ones(J)
    for row in range(N):
        _fill_normals(k, row, out[row], ones)
    return out


def batch_draws(key: int, step: int, M: int, p: np.ndarray, *, sampling: str = "iid"):
    """Return the (M,) atom indices of SGD step ``step`` for atom weights p (J,)."""
    p = np.asarray(p, dtype=np.float64)
    pcum = np.cumsum(p)
    pcum[-1] = 1.0
    J = p.shape[0]
    atoms = np.empty(M, np.int64)
    perm = np.empty(J, np.int64)
    uniform = bool(np.all(p == p[0]))
    _draw_batch(np.uint64(key), step, M, J, uniform, pcum, int(sampling == "epochs"), perm,
                -1, atoms)
    return atoms
