"""One step of the particles and of their limit twins, and the step loops.

Sums over neurons are taken in fixed blocks of ``BLOCK`` neurons, added in block order: the
same arithmetic whether blocks run on one thread (``_advance_replicas``, one replica per
thread) or many (``_advance_blocks``, one replica's blocks in parallel).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .backward import _input_grads_tile, _loss_grad_kernel, _output_grads, _output_grads_tile
from .forward import _dsig, _forward_block, _preact_tile, _reduce_blocks, _sig_block
from .jit import _BOTH, _JIT, _KERNEL, _ROOT, _SDE, _SGD, _SHARED, BLOCK, TILE, _like
from .rng import _TAG_NOISE, _draw_batch, _fill_normals, _particle_pair, _particle_quad, _stream

BLOWUP = 1e30  # |u| beyond this is a blow-up (no meaningful network output is this large)

@nb.njit(**_KERNEL)
def _grads_full_tile(Wt, lo, nk, X, atoms, g, cd, i0, nt, sig, noise, cn, act, GD, GN, normals):
    """``_output_grads`` + ``_input_grads_tile`` of a tile (layers = both, C = p = 1).

    One pass over the neurons for the TILE = 4 atoms i0..i0+3.

    sig = (σ rows of the 4 atoms), cn = (noise-coefficient rows).  The same products, added
    to GD and GN in the same atom order, so the same bits; but the gradient rows stay in
    registers across the tile and e is never stored.  A partial tile (nt < 4 atoms) passes
    rows of its own atoms in the missing places; those atoms get g = cd = 0, so they add
    exact zeros (the sums keep their values; only the sign of a zero sum can differ).

    normals = (kind, kstep, nq, sqrt_p, ssum): kind ``_ROOT`` adds the second moments
    p_i H_i H_iᵀ to (GN[0], ssum, GN[1]); ``_ATOMS`` draws the tile's normals here, in
    registers (one Philox block per neuron: the tile's four atoms); 0 takes the noise
    coefficients from the cn rows.
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
    # Separate loops rather than one with `if noise` inside: the single loop was slower
    # (CHANGELOG.md, kernel design measurements).
    if noise and normals[0] == _ROOT:  # second moments for Σ^{1/2} (the update draws 2 normals)
        ssum = normals[4]
        for k in range(nk):
            t, e = _tile_drift(Wt[0, lo + k], k, sig, gs, cs, ds, act, GD)
            _tile_moments(k, t, e, gs, cs, ds, xs, GN, ssum)
    elif noise and normals[0]:  # independent noise drawn here, in registers
        _, kstep, nq, sqrt_p, ssum = normals
        zero = _like(sqrt_p, 0.0)
        q0, q1 = sqrt_p[i0], sqrt_p[i1] if nt > 1 else zero
        q2, q3 = sqrt_p[i2] if nt > 2 else zero, sqrt_p[i3] if nt > 3 else zero
        q = i0 // 4
        for k in range(nk):
            za, zb, zc, zd = _particle_quad(kstep, lo + k, nq, q)
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
def _root_noise(GD, GN, ssum, k, kstep, n):
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
    z0, z1 = _particle_pair(kstep, n, 1, 0)
    x0, x1 = _like(h0, z0), _like(h0, z1)
    return ((saa + s) * x0 + saw * x1) * r, (saw * x0 + (sww + s) * x1) * r


@nb.njit(**_KERNEL)
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
    nq = (J + 3) // 4  # Philox blocks of 4 normals per neuron (independent noise)
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
            elif nt == TILE:  # the tile's 4 atoms are one Philox block of 4 normals
                c0, c1, c2, c3 = vec[CN], vec[CN + 1], vec[CN + 2], vec[CN + 3]
                s0, s1, s2, s3 = sqrt_p[i0], sqrt_p[i0 + 1], sqrt_p[i0 + 2], sqrt_p[i0 + 3]
                q = i0 // 4
                for k in range(nk):
                    z0, z1, z2, z3 = _particle_quad(kstep, lo + k, nq, q)
                    c0[k], c1[k], c2[k], c3[k] = s0 * z0, s1 * z1, s2 * z2, s3 * z3
                    ssum[k] = (((ssum[k] + c0[k]) + c1[k]) + c2[k]) + c3[k]
            else:  # the last, partial tile: by Box–Muller pairs (half of the block each)
                for t in range(0, nt, 2):  # atoms i, i + 1 (i even) share a Box–Muller pair
                    i = i0 + t
                    m = i // 2
                    cn, cn1 = vec[CN + t], vec[CN + t + 1]
                    s0, s1 = sqrt_p[i], sqrt_p[min(i + 1, J - 1)]
                    if i + 1 < na:
                        for k in range(nk):
                            z0, z1 = _particle_pair(kstep, lo + k, nq, m)
                            cn[k] = s0 * z0
                            cn1[k] = s1 * z1
                            ssum[k] = (ssum[k] + cn[k]) + cn1[k]
                    else:
                        for k in range(nk):
                            z0, _ = _particle_pair(kstep, lo + k, nq, m)
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
                                 GN, (sampler if draw_here else 0, kstep, nq, sqrt_p, ssum))
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

    A function of its own so that the block-parallel loop runs the same vectorised code
    as the serial one.
    """
    N = Wt.shape[1]
    q = Wt[0, :0]
    for b in range((N + BLOCK - 1) // BLOCK):  # every block, skipping others' (see below)
        if b < b0 or b >= b1:
            continue
        _forward_block(Wt, q, b * BLOCK, min(N, (b + 1) * BLOCK), X, atoms, na, layers, act,
                       vec, u_part[b], sig_store[b])


@nb.njit(**_KERNEL)
def _update_pair(Wt, b, X, atoms, na, g, cd, noise, sampler, cn_shared, sqrt_p, kstep,
                 layers, act, l2, om, dt, ns, vec, GD, GN, store, no_store, Ws, twin_noise,
                 all_atoms, gs, p, csq):
    """Update block b of the particles Wt, then (if Ws is not empty) of their limit twins.

    One call site of ``_update_block`` for both (the twins' arguments are selected).
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
    clamped to [0, nblocks)) ran markedly slower in the step loop of ``_advance_blocks``,
    although not in a micro-benchmark of the callee alone (CHANGELOG.md).
    """
    N = Wt.shape[1]
    for b in range((N + BLOCK - 1) // BLOCK):
        if b < b0 or b >= b1:
            continue
        _update_pair(Wt, b, X, atoms, na, g, cd, noise, sampler, cn_shared, sqrt_p, kstep,
                     layers, act, l2, om, dt, ns, vec, GD, GN, sig_store[b], no_store, Ws,
                     twin_noise, all_atoms, gs, p, csq)


@nb.njit(**_KERNEL)
def _prepare_step(n, key, mode, sampler, sampling, M, uniform, pcum, p, sqrt_p, perm, epoch,
                  atoms, cd, cn_shared):
    """Draw the batch (sgd) or the shared noise (sde) of step n; return (na, kstep, epoch).

    kstep is the step's noise stream (``_kernels.rng._stream``).
    """
    J = p.shape[0]
    kstep = _stream(key, _TAG_NOISE, n)
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
def _steps_serial(Wt, r, n0, nsteps, key, pb, sqrt_p, all_atoms, sc):
    """Run steps n0..n0+nsteps−1 of replica r on one thread; return the failing step or −1.

    pb is the problem (``meanfield.engine.Problem``), sc the scratch bundle
    (``meanfield.engine.Scratch``); this replica's work arrays are row r of sc's per-replica
    arrays and its vector scratch is unit r.  Each step: particles first, then their limit
    twins if sc.Ws[r] is not empty.  With sc.u_hist[r] not empty, u of step n goes to its
    row n − n0.  The step loop is inside this function: one call per replica and segment,
    not per step, whose argument passing would cost as much as a small step.  Compiled
    without NRT (``_nrt=False``): it allocates nothing, and the reference counts of the
    many array views a step takes would each cost an atomic add and a call.
    """
    X, Y, p = pb.X, pb.Y, pb.p
    u_part, u, g, ell = sc.u_part[r], sc.u[r], sc.g[r], sc.ell[r]
    atoms, cd, cn_shared, perm = sc.atoms[r], sc.cd[r], sc.cn_shared[r], sc.perm[r]
    vec, GD, GN, sig_store = sc.vec[r], sc.GD[r], sc.GN[r], sc.sig_store[r]
    Ws, us, gs, csq, u_hist = sc.Ws[r], sc.us[r], sc.gs[r], sc.csq[r], sc.u_hist[r]
    N = Wt.shape[1]
    nblocks = (N + BLOCK - 1) // BLOCK
    q = Wt[0, :0]
    epoch = -1
    for n in range(n0, n0 + nsteps):
        na, kstep, epoch = _prepare_step(n, key, pb.mode, pb.sampler, pb.sampling, pb.M,
                                         pb.uniform, pb.pcum, p, sqrt_p, perm, epoch, atoms, cd,
                                         cn_shared)
        for b in range(nblocks):
            _forward_block(Wt, q, b * BLOCK, min(N, (b + 1) * BLOCK), X, atoms, na, pb.layers,
                           pb.act, vec, u_part[b], sig_store[b])
        if not _reduce_blocks(u_part, nblocks, na, 1.0 / N, u, BLOWUP):
            return n
        if u_hist.shape[0] > 0:  # loops: a slice assignment would need NRT
            for i in range(na):
                for c in range(u.shape[1]):
                    u_hist[n - n0, i, c] = u[i, c]
        _loss_grad_kernel(u, Y, atoms, na, pb.loss, g, ell)
        om = (1.0 + n * pb.dt) ** (-pb.alpha)
        if Ws.shape[1] > 0:
            _twin_prepare(n, pb.dt, sc.t_lim, sc.u_lim, Y, all_atoms, pb.loss, us, gs, ell)
        for b in range(nblocks):
            _update_pair(Wt, b, X, atoms, na, g, cd, pb.mode == _SDE, pb.sampler, cn_shared,
                         sqrt_p, kstep, pb.layers, pb.act, pb.l2, om, pb.dt, pb.ns, vec, GD, GN,
                         sig_store[b], sc.no_store, Ws, sc.twin_noise, all_atoms, gs, p, csq)
    return -1


@nb.njit(parallel=True, **_JIT)
def _advance_replicas(Wt, keys, pb, n0, nsteps, sc, status):
    """Advance every replica r (in parallel; Wt is (R, D, N)) by nsteps steps from step n0.

    sc.Ws (R, D, N or 0): limit twins advanced in the same loop (none if N = 0), sc.csq
    (R, N) their running sup of |W − W*|²; sc.u_hist (R, nsteps or 0, J, C): the mean field
    of every step.  status[r] is set to the failing step on NaN/inf or blow-up (replica r
    stops).
    """
    sqrt_p = np.sqrt(pb.p)
    all_atoms = np.arange(pb.p.shape[0])
    for r in nb.prange(Wt.shape[0]):
        bad = _steps_serial(Wt[r], r, n0, nsteps, keys[r], pb, sqrt_p, all_atoms, sc)
        if bad >= 0:
            status[r] = bad


@nb.njit(parallel=True, **_JIT)
def _advance_blocks(Wt, key, pb, n0, nsteps, sc, status):
    """Advance one replica (Wt is (D, N)), its neuron blocks in parallel within each step.

    sc holds one replica (row 0 of its per-replica arrays); its blocks are split into
    ``sc.vec.shape[0]`` chunks, one vector scratch each (one per thread by default).  Every
    block does the same arithmetic as in ``_advance_replicas`` whatever its chunk, so the
    result is bitwise identical.
    """
    X, Y, p = pb.X, pb.Y, pb.p
    u_part, u, g, ell = sc.u_part[0], sc.u[0], sc.g[0], sc.ell[0]
    atoms, cd, cn_shared, perm = sc.atoms[0], sc.cd[0], sc.cn_shared[0], sc.perm[0]
    sig_store, Ws, us, gs, csq, u_hist = (sc.sig_store[0], sc.Ws[0], sc.us[0], sc.gs[0],
                                          sc.csq[0], sc.u_hist[0])
    vec, GD, GN, no_store, twin_noise = sc.vec, sc.GD, sc.GN, sc.no_store, sc.twin_noise
    layers, act, l2, dt, ns, sampler = pb.layers, pb.act, pb.l2, pb.dt, pb.ns, pb.sampler
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
        na, kstep, epoch = _prepare_step(n, key, pb.mode, pb.sampler, pb.sampling, pb.M,
                                         pb.uniform, pb.pcum, p, sqrt_p, perm, epoch, atoms, cd,
                                         cn_shared)
        for c in nb.prange(nchunks):
            _forward_blocks(Wt, c * per, min(nblocks, (c + 1) * per), X, atoms, na, layers,
                            act, vec[c], u_part, sig_store)
        if not _reduce_blocks(u_part, nblocks, na, 1.0 / N, u, BLOWUP):
            status[0] = n
            return
        if u_hist.shape[0] > 0:
            u_hist[n - n0, :, :] = u[:na]
        _loss_grad_kernel(u, Y, atoms, na, pb.loss, g, ell)
        om = (1.0 + n * dt) ** (-pb.alpha)
        if couple:
            _twin_prepare(n, dt, sc.t_lim, sc.u_lim, Y, all_atoms, pb.loss, us, gs, ell)
        noise = pb.mode == _SDE
        for c in nb.prange(nchunks):
            _update_blocks(Wt, c * per, min(nblocks, (c + 1) * per), X, atoms, na, g, cd,
                           noise, sampler, cn_shared, sqrt_p, kstep, layers, act, l2, om, dt,
                           ns, vec[c], GD[c], GN[c], sig_store, no_store, Ws, twin_noise,
                           all_atoms, gs, p, csq)
