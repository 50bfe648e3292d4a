"""The forward pass: preactivations, activations and the blocked mean field u."""

from __future__ import annotations

import numba as nb
import numpy as np

from .fastmath import _tanh
from .jit import _BOTH, _JIT, _KERNEL, _RELU, _SIGMOID, _TANH, BLOCK, TILE, _like
from .simd import _INPUTS_PER_PASS, _lane_dot, _preact8x4


@nb.njit(**_KERNEL)
def _sig_block(s, sig, nk, act):
    """sig[k] = σ(s[k]) for k < nk (one branch per block, the loops vectorise).

    Where both rows have room, tanh and sigmoid run on to the next multiple of 8, the
    vector width of the loop's epilogue, so no element takes the scalar remainder (the
    remainder cost as much as the vector loop).  The extra lanes hold scratch that nothing
    reads.
    """
    half, zero = _like(s, 0.5), _like(s, 0.0)  # keep s's dtype
    n8 = min(s.shape[0], sig.shape[0], (nk + 7) // 8 * 8)
    if act == _TANH:
        for k in range(n8):
            sig[k] = _tanh(s[k])
    elif act == _SIGMOID:
        for k in range(n8):
            sig[k] = half + half * _tanh(half * s[k])
    elif act == _RELU:
        for k in range(nk):
            v = s[k]
            sig[k] = v if v > zero else zero * v
    else:
        for k in range(nk):
            sig[k] = s[k]


@nb.njit(**_KERNEL)
def _sig_tile(s, sig, nk, act):
    """``_sig_block`` of the 4 rows s = (s0, s1, s2, s3) into sig = (sig0, …, sig3), in one loop.

    The same values as four ``_sig_block`` calls (the same operations on each element);
    one loop with 4 independent activations per neuron instead of four short loops.
    """
    half = _like(s[0], 0.5)  # keep s's dtype
    s0, s1, s2, s3 = s
    g0, g1, g2, g3 = sig
    n8 = min(s0.shape[0], s1.shape[0], s2.shape[0], s3.shape[0], g0.shape[0], g1.shape[0],
             g2.shape[0], g3.shape[0], (nk + 7) // 8 * 8)
    if act == _TANH:
        for k in range(n8):
            g0[k], g1[k], g2[k], g3[k] = _tanh(s0[k]), _tanh(s1[k]), _tanh(s2[k]), _tanh(s3[k])
    elif act == _SIGMOID:
        for k in range(n8):
            g0[k] = half + half * _tanh(half * s0[k])
            g1[k] = half + half * _tanh(half * s1[k])
            g2[k] = half + half * _tanh(half * s2[k])
            g3[k] = half + half * _tanh(half * s3[k])
    else:
        for t in range(4):
            _sig_block(s[t], sig[t], nk, act)


@nb.njit(inline="always", **_JIT)
def _dsig(t, act):
    """σ'(s) from t = σ(s) alone (selects, so loops calling it stay vectorised).

    tanh: 1 − t², sigmoid: t(1 − t), relu: 1 if t > 0 (⇔ s > 0) else 0, linear: 1.
    """
    one, zero = _like(t, 1.0), _like(t, 0.0)
    d = one - t * t if act == _TANH else t * (one - t)
    d = d if act <= _SIGMOID else (one if t > zero else zero)
    return d if act <= _RELU else one


@nb.njit(**_KERNEL)
def _dsig_block(sig, dsig, nk, act):
    """dsig[k] = σ'(s[k]) for k < nk, from sig[k] = σ(s[k]).

    So a stored σ(s) is all the backward pass needs.
    """
    for k in range(nk):
        dsig[k] = _dsig(sig[k], act)


@nb.njit(**_KERNEL)
def _preact_block(Wt, lo, nk, off, X, j, s):
    """s[k] = ⟨b_{lo+k}, x_j⟩ for k < nk; Wt is (D, N), b = Wt[off:off+p]."""
    p = X.shape[1]
    x0 = X[j, 0]
    for k in range(nk):
        s[k] = Wt[off, lo + k] * x0
    for r in range(1, p):
        xr = X[j, r]
        for k in range(nk):
            s[k] += Wt[off + r, lo + k] * xr


@nb.njit(**_KERNEL)
def _preact_tile(Wt, lo, nk, off, X, atoms, i0, nt, rows, base):
    """rows[base + t, k] = ⟨b_{lo+k}, x_{atoms[i0+t]}⟩ for t < nt, k < nk.

    The same sums, in the same order, as ``_preact_block`` atom by atom, but a full tile
    with p > 1 inputs keeps 8 neurons × 4 atoms in registers over all inputs
    (``_preact8x4``, much faster on digits than the loops of ``_preact_cols``, which do
    the last nk mod 8 neurons and the other cases, each row Wt[off + r] used for
    the nt atoms while it is in L1).  All inputs go in one pass, except when a row of Wt is
    a multiple of 1 KiB long (N a multiple of 128 in float64): then the 8-neuron pieces of
    the rows fall in at most 4 sets of the L1 cache, which hold 8–12 lines each, and a pass
    takes ``_INPUTS_PER_PASS`` inputs (in one pass such N ran at a third of the speed of
    their neighbours; in passes of 8 at the same speed).
    """
    p = X.shape[1]
    if nt == TILE and p > 1 and nk >= 8:  # 8 neurons × 4 atoms in registers over all inputs
        k8 = nk - nk % 8
        j0, j1, j2, j3 = atoms[i0], atoms[i0 + 1], atoms[i0 + 2], atoms[i0 + 3]
        per = p if (Wt.shape[1] * Wt.itemsize) % 1024 else _INPUTS_PER_PASS
        for r0 in range(0, p, per):
            r1 = min(p, r0 + per)
            for k in range(0, k8, 8):
                _preact8x4(Wt, lo + k, off, X, j0, j1, j2, j3, rows, base, k, r0, r1)
        _preact_cols(Wt, lo, k8, nk, off, X, atoms, i0, nt, rows, base)
    else:  # the literal 0 matters: a start known only at run time ran slower
        _preact_cols(Wt, lo, 0, nk, off, X, atoms, i0, nt, rows, base)


@nb.njit(inline="always", **_JIT)
def _preact_cols(Wt, lo, k0, nk, off, X, atoms, i0, nt, rows, base):
    """``_preact_tile`` for neurons k0 ≤ k < nk by loops over the neurons."""
    p = X.shape[1]
    if nt == TILE:  # one pass per input: each weight loaded once for the 4 atoms
        s0, s1, s2, s3 = rows[base], rows[base + 1], rows[base + 2], rows[base + 3]
        j0, j1, j2, j3 = atoms[i0], atoms[i0 + 1], atoms[i0 + 2], atoms[i0 + 3]
        x0, x1, x2, x3 = X[j0, 0], X[j1, 0], X[j2, 0], X[j3, 0]
        for k in range(k0, nk):
            w = Wt[off, lo + k]
            s0[k], s1[k], s2[k], s3[k] = w * x0, w * x1, w * x2, w * x3
        for r in range(1, p):
            x0, x1, x2, x3 = X[j0, r], X[j1, r], X[j2, r], X[j3, r]
            for k in range(k0, nk):
                w = Wt[off + r, lo + k]
                s0[k] += w * x0
                s1[k] += w * x1
                s2[k] += w * x2
                s3[k] += w * x3
        return
    for t in range(nt):
        s = rows[base + t]
        x0 = X[atoms[i0 + t], 0]
        for k in range(k0, nk):
            s[k] = Wt[off, lo + k] * x0
    for r in range(1, p):
        for t in range(nt):
            s = rows[base + t]
            xr = X[atoms[i0 + t], r]
            for k in range(k0, nk):
                s[k] += Wt[off + r, lo + k] * xr


@nb.njit(**_KERNEL)
def _forward_block(Wt, q, lo, hi, X, atoms, na, layers, act, vec, out, store):
    """out[i, c] = Σ_{k∈[lo,hi)} q_k F(w_k, x_{atoms[i]})_c (q empty ⇒ q_k = 1).

    Wt is (D, N); vec is (≥ TILE + 1, BLOCK) scratch.  If store is (≥ na, BLOCK) (not
    (·, 0)), σ(⟨b_{lo+k}, x_{atoms[i]}⟩) is kept in store[i, k] for the backward pass (q
    must then be empty).
    """
    nk = hi - lo
    C = out.shape[1]
    off = C if layers == _BOTH else 0
    keep = store.shape[1] > 0
    for i0 in range(0, na, TILE):
        nt = min(TILE, na - i0)
        _preact_tile(Wt, lo, nk, off, X, atoms, i0, nt, vec, 0)
        tile = keep and nt == TILE  # the tile's 4 activations in one loop
        if tile:
            _sig_tile((vec[0], vec[1], vec[2], vec[3]),
                      (store[i0], store[i0 + 1], store[i0 + 2], store[i0 + 3]), nk, act)
        for t in range(nt):
            i = i0 + t
            sig = store[i] if keep else vec[TILE]
            if not tile:
                _sig_block(vec[t], sig, nk, act)
            if q.shape[0] > 0:
                for k in range(nk):
                    sig[k] *= q[lo + k]
            if layers == _BOTH:
                for c in range(C):
                    out[i, c] = _lane_dot(Wt[c], lo, sig, nk, True)
            else:
                out[i, 0] = _lane_dot(sig, 0, sig, nk, False)


@nb.njit(**_KERNEL)
def _reduce_blocks(u_part, nblocks, na, scale, u, limit):
    """U = scale · Σ_b u_part[b] in block order; return False on NaN/inf or |u| > limit."""
    C = u.shape[1]
    ok = True
    for i in range(na):
        for c in range(C):
            s = 0.0
            for b in range(nblocks):
                s += u_part[b, i, c]
            v = s * scale
            u[i, c] = v
            if not abs(v) <= limit:
                ok = False
    return ok


@nb.njit(**_JIT)
def _mean_field_kernel(Wt, q, X, layers, act, vec, u_part, u, limit):
    """Mean field u (J, C) = Σ_k q_k F(w_k, x_j) (q empty ⇒ 1/N), summed block by block."""
    N = Wt.shape[1]
    J = X.shape[0]
    nblocks = (N + BLOCK - 1) // BLOCK
    atoms = np.arange(J)
    store = np.empty((0, 0), Wt.dtype)
    for b in range(nblocks):
        _forward_block(Wt, q, b * BLOCK, min(N, (b + 1) * BLOCK), X, atoms, J, layers, act,
                       vec, u_part[b], store)
    return _reduce_blocks(u_part, nblocks, J, 1.0 if q.shape[0] > 0 else 1.0 / N, u, limit)
