"""The backward pass: loss gradients, per-neuron gradients H, drift, noise, covariance."""

from __future__ import annotations

import math

import numba as nb

from .forward import _dsig, _dsig_block, _preact_block, _sig_block
from .jit import _BOTH, _JIT, _KERNEL, _LOGISTIC, _SQUARED, BLOCK, TILE, _like
from .simd import _input_grads4x4


@nb.njit(**_KERNEL)
def _output_grads(Wt, lo, nk, g, i, cd, cn, noise, layers, act, sig, dsig, e, GD, GN):
    """Add the output-weight part of H for neurons lo..lo+nk−1 and loss gradient g_i.

    From sig = σ(s): GD[c] += cd σ(s) g_ic and GN[c] += cn σ(s) g_ic (layers = both), and
    e = (a·g_i) σ'(s) (both) or g_i σ'(s) (first), the factor of x in the input-weight part.
    """
    C = g.shape[1]
    _dsig_block(sig, dsig, nk, act)
    if layers == _BOTH:
        zero = _like(e, 0.0)
        for k in range(nk):
            e[k] = zero
        for c in range(C):
            gc = g[i, c]
            cg = cd * gc
            if noise:  # one fused loop per output (loads of sig shared)
                for k in range(nk):
                    e[k] += Wt[c, lo + k] * gc
                    GD[c, k] += cg * sig[k]
                    GN[c, k] += cn[k] * sig[k] * gc
            else:
                for k in range(nk):
                    e[k] += Wt[c, lo + k] * gc
                    GD[c, k] += cg * sig[k]
        for k in range(nk):
            e[k] *= dsig[k]
    else:
        g0 = g[i, 0]
        for k in range(nk):
            e[k] = g0 * dsig[k]


@nb.njit(**_KERNEL)
def _output_grads_tile(Wt, lo, nk, g, i0, cd, act, sig, e, GD):
    """``_output_grads`` of a full tile of 4 atoms i0..i0+3 (layers = both, no noise).

    The same products and the same order of sums (atoms in order into GD[c, k], outputs
    in order into e_t[k]), so the same bits; but each Wt[c] and GD[c] row is loaded once
    for the 4 atoms.  sig = (σ rows), e = (rows for (a·g_t) σ').
    """
    C = g.shape[1]
    s0, s1, s2, s3 = sig
    e0, e1, e2, e3 = e
    zero = _like(e0, 0.0)
    for k in range(nk):
        e0[k] = zero
        e1[k] = zero
        e2[k] = zero
        e3[k] = zero
    for c in range(C):
        g0, g1, g2, g3 = g[i0, c], g[i0 + 1, c], g[i0 + 2, c], g[i0 + 3, c]
        c0, c1, c2, c3 = cd[i0] * g0, cd[i0 + 1] * g1, cd[i0 + 2] * g2, cd[i0 + 3] * g3
        G = GD[c]
        for k in range(nk):
            w = Wt[c, lo + k]
            e0[k] += w * g0
            e1[k] += w * g1
            e2[k] += w * g2
            e3[k] += w * g3
            G[k] = (((G[k] + c0 * s0[k]) + c1 * s1[k]) + c2 * s2[k]) + c3 * s3[k]
    for k in range(nk):
        e0[k] *= _dsig(s0[k], act)
        e1[k] *= _dsig(s1[k], act)
        e2[k] *= _dsig(s2[k], act)
        e3[k] *= _dsig(s3[k], act)


@nb.njit(**_KERNEL)
def _input_grads_tile(X, atoms, i0, nt, cd, noise, off, nk, vec, ebase, cnbase, GD, GN):
    """GD[off + r] += cd_i x_ir e_i and GN[off + r] += cn_i e_i x_ir for the nt atoms i0 + t.

    e_i = vec[ebase + t], cn_i = vec[cnbase + t].  Atoms are added in order for every
    (r, k), as atom by atom, but each row GD[off + r] serves the whole tile from L1.
    """
    p = X.shape[1]
    if nt == TILE and not noise:  # one pass per input: GD's row loaded once for the 4 atoms
        e0, e1, e2, e3 = vec[ebase], vec[ebase + 1], vec[ebase + 2], vec[ebase + 3]
        j0, j1, j2, j3 = atoms[i0], atoms[i0 + 1], atoms[i0 + 2], atoms[i0 + 3]
        w0, w1, w2, w3 = cd[i0], cd[i0 + 1], cd[i0 + 2], cd[i0 + 3]
        p4, k8 = p - p % 4, nk - nk % 8
        for r in range(0, p4, 4):  # 4 rows × 8 neurons at a time, in registers
            _input_grads4x4(GD, off + r, X, r, j0, j1, j2, j3, w0, w1, w2, w3, vec, ebase, k8)
        for r in range(p):
            c0, c1 = w0 * X[j0, r], w1 * X[j1, r]
            c2, c3 = w2 * X[j2, r], w3 * X[j3, r]
            G = GD[off + r]
            # two loops: a start known only at run time for all rows measured slower (see
            # _preact_tile); the rows r ≥ p4 take the whole range from a literal 0
            if r < p4:  # the last nk mod 8 neurons
                for k in range(k8, nk):
                    G[k] = (((G[k] + c0 * e0[k]) + c1 * e1[k]) + c2 * e2[k]) + c3 * e3[k]
            else:
                for k in range(nk):
                    G[k] = (((G[k] + c0 * e0[k]) + c1 * e1[k]) + c2 * e2[k]) + c3 * e3[k]
        return
    for r in range(p):
        for t in range(nt):
            i = i0 + t
            xr = X[atoms[i], r]
            cx = cd[i] * xr
            e, cn = vec[ebase + t], vec[cnbase + t]
            if noise:
                for k in range(nk):
                    GD[off + r, k] += cx * e[k]
                    GN[off + r, k] += cn[k] * e[k] * xr
            else:
                for k in range(nk):
                    GD[off + r, k] += cx * e[k]


@nb.njit(**_KERNEL)
def _accumulate_atom(Wt, lo, nk, X, j, g, i, cd, cn, noise, layers, act, vec, GD, GN):
    """Add atom j's stochastic gradient to neurons lo..lo+nk−1: GD[:, k] += cd H, GN += cn_k H.

    H(w, z_j) = J_w F(w, x_j)ᵀ g_i: (σ(s) g_i, (a·g_i) σ'(s) x_j) for layers = both and
    g_i σ'(s) x_j for layers = first, s = ⟨b, x_j⟩.  cn (BLOCK,) holds per-neuron noise
    coefficients (used only if noise).  vec is (≥ 4, BLOCK) scratch.  (The engine does
    the same arithmetic by tiles of atoms, in ``particles._update_block``.)
    """
    p = X.shape[1]
    off = g.shape[1] if layers == _BOTH else 0
    s, sig, dsig, e = vec[0], vec[1], vec[2], vec[3]
    _preact_block(Wt, lo, nk, off, X, j, s)
    _sig_block(s, sig, nk, act)
    _output_grads(Wt, lo, nk, g, i, cd, cn, noise, layers, act, sig, dsig, e, GD, GN)
    for r in range(p):
        xr = X[j, r]
        cx = cd * xr
        if noise:
            for k in range(nk):
                GD[off + r, k] += cx * e[k]
                GN[off + r, k] += cn[k] * e[k] * xr
        else:
            for k in range(nk):
                GD[off + r, k] += cx * e[k]


@nb.njit(**_JIT)
def _loss_grad_kernel(u, Y, atoms, na, loss, g, ell):
    """Write g[i] = ∂₁ℓ(u_i, y_{atoms[i]}) and ell[i] = ℓ(u_i, y_{atoms[i]}) for i < na."""
    C = u.shape[1]
    for i in range(na):
        j = atoms[i]
        if loss == _SQUARED:
            v = 0.0
            for c in range(C):
                d = u[i, c] - Y[j, c]
                g[i, c] = d
                v += 0.5 * d * d
            ell[i] = v
        elif loss == _LOGISTIC:
            m = Y[j, 0] * u[i, 0]  # ℓ = log(1 + e^{−m}), ∂ℓ/∂u = −y / (1 + e^{m})
            if m > 0.0:
                e = math.exp(-m)
                ell[i] = math.log1p(e)
                g[i, 0] = -Y[j, 0] * e / (1.0 + e)
            else:
                e = math.exp(m)
                ell[i] = -m + math.log1p(e)
                g[i, 0] = -Y[j, 0] / (1.0 + e)
        else:
            mx = u[i, 0]
            for c in range(1, C):
                mx = max(mx, u[i, c])
            z = 0.0
            for c in range(C):
                z += math.exp(u[i, c] - mx)
            lse = mx + math.log(z)
            v = 0.0
            for c in range(C):
                g[i, c] = math.exp(u[i, c] - lse) - Y[j, c]
                v -= Y[j, c] * (u[i, c] - lse)
            ell[i] = v


@nb.njit(**_JIT)
def _drift_noise_kernel(Wt, X, P, g, xi, noise, layers, act, l2, vec, GD, GN, drift, nz):
    """drift[:, k] = Σ_j P_j H(w_k, z_j) + λ w_k; if noise, nz[:, k] = Σ_j √P_j G_kj ξ_kj."""
    D, N = Wt.shape
    J = X.shape[0]
    cn = vec[4]
    for lo in range(0, N, BLOCK):
        nk = min(N, lo + BLOCK) - lo
        GD[:, :nk] = 0.0
        GN[:, :nk] = 0.0
        ssum = vec[5]
        ssum[:nk] = 0.0
        for j in range(J):
            if noise:
                for k in range(nk):
                    cn[k] = math.sqrt(P[j]) * xi[lo + k, j]
                    ssum[k] += cn[k]
            _accumulate_atom(Wt, lo, nk, X, j, g, j, P[j], cn, noise, layers, act, vec, GD, GN)
        for r in range(D):
            for k in range(nk):
                drift[r, lo + k] = GD[r, k] + l2 * Wt[r, lo + k]
                if noise:
                    nz[r, lo + k] = GN[r, k] - ssum[k] * GD[r, k]


@nb.njit(**_JIT)
def _noise_cov_kernel(Wt, X, P, g, layers, act, vec, GD, HB, S, out):
    """out[k] = Σ_j P_j (H_kj − h̄_k)(H_kj − h̄_k)ᵀ, h̄_k = Σ_j P_j H_kj (two passes, per block).

    Wt is (D, N); GD, HB are (D, BLOCK) and S is (D, D, BLOCK) scratch; out is (N, D, D).
    """
    D, N = Wt.shape
    J = X.shape[0]
    cn = vec[4]
    for lo in range(0, N, BLOCK):
        nk = min(N, lo + BLOCK) - lo
        HB[:, :nk] = 0.0
        S[:, :, :nk] = 0.0
        for j in range(J):
            _accumulate_atom(Wt, lo, nk, X, j, g, j, P[j], cn, False, layers, act, vec, HB, HB)
        for j in range(J):
            GD[:, :nk] = 0.0
            _accumulate_atom(Wt, lo, nk, X, j, g, j, 1.0, cn, False, layers, act, vec, GD, GD)
            pj = P[j]
            for r in range(D):
                for k in range(nk):
                    GD[r, k] -= HB[r, k]
            for r in range(D):
                for s in range(r + 1):
                    for k in range(nk):
                        S[r, s, k] += pj * GD[r, k] * GD[s, k]
        for k in range(nk):
            for r in range(D):
                for s in range(r + 1):
                    out[lo + k, r, s] = S[r, s, k]
                    out[lo + k, s, r] = S[r, s, k]
