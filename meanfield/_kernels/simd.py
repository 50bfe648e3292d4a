"""8-lane LLVM vector intrinsics: fixed-order dot products and register tiles.

Written as explicit LLVM vectors where the auto-vectoriser leaves the equivalent scalar
code scalar; each sums in a fixed lane order, so the bits do not depend on the thread
count or the block split.
"""

from __future__ import annotations

import numba as nb
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .jit import _JIT


def _float_c2d(arrays, scalars=()):
    """Check that the arrays are C-contiguous 2-D of one float dtype, the scalars of it too."""
    if not all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in arrays):
        return False
    dt = arrays[0].dtype
    same = all(x == dt for x in (*scalars, *(a.dtype for a in arrays)))
    return isinstance(dt, types.Float) and same


class _Vec8:
    """LLVM IR helpers of the 8-wide kernels: index casts, C 2-D arrays, vector loads."""

    def __init__(self, context, builder, sig):
        self.context, self.builder, self.sig = context, builder, sig
        self.intp = context.get_value_type(types.intp)
        self.vty = ir.VectorType(context.get_value_type(sig.args[0].dtype), 8)

    def index(self, args, i):
        """Return argument i as an intp."""
        return self.context.cast(self.builder, args[i], self.sig.args[i], types.intp)

    def c2d(self, args, i):
        """Return (data pointer, row length) of the C-contiguous 2-D array argument i."""
        a = self.context.make_array(self.sig.args[i])(self.context, self.builder, args[i])
        return a.data, cgutils.unpack_tuple(self.builder, a.shape, 2)[1]

    def ptr(self, data, i):
        """Return a pointer to the 8 elements data[i:i+8]."""
        return self.builder.bitcast(self.builder.gep(data, [i]), self.vty.as_pointer())

    def at(self, data, row, n, col):
        """Return a pointer to the 8 elements at (row, col) of a C 2-D array, rows of n."""
        b = self.builder
        return self.ptr(data, b.add(b.mul(row, n), col))

    def splat(self, x):
        """Return the scalar x in all 8 lanes."""
        b = self.builder
        v = b.insert_element(ir.Constant(self.vty, None), x, self.intp(0))
        return b.shuffle_vector(v, ir.Constant(self.vty, None),
                                ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8))


def _lanes8(weighted: bool):
    """Intrinsic Σ_{k<n} a[lo+k] b[k] (weighted) or Σ_{k<n} b[k] in a fixed 8-lane order.

    Lane j sums the terms k ≡ j (mod 8) of the first n − n mod 8 in order, the tail goes
    into lane 0, and the lanes are added as ((0+1)+(2+3))+((4+5)+(6+7)): the same bits for
    any thread count or block split.  Written with explicit 8-wide LLVM vectors because
    LLVM's SLP vectoriser leaves the equivalent eight scalar accumulators scalar (several
    times slower per term).
    a and b are contiguous 1-D arrays of one float dtype.
    """

    def impl(typingctx, a, lo, b, n):
        ok = all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" for x in (a, b))
        if not (ok and a.dtype == b.dtype and isinstance(a.dtype, types.Float)):
            return None

        def codegen(context, builder, sig, args):
            v = _Vec8(context, builder, sig)
            intp = v.intp
            pa = context.make_array(sig.args[0])(context, builder, args[0]).data
            pb = context.make_array(sig.args[2])(context, builder, args[2]).data
            pa = builder.gep(pa, [v.index(args, 1)])
            n = v.index(args, 3)
            n8 = builder.and_(n, intp(-8))

            def term(k, width):
                def at(ptr):
                    return builder.load(v.ptr(ptr, k), align=1) if width == 8 \
                        else builder.load(builder.gep(ptr, [k]))
                return builder.fmul(at(pa), at(pb)) if weighted else at(pb)

            acc = cgutils.alloca_once_value(builder, ir.Constant(v.vty, None))
            with cgutils.for_range_slice(builder, intp(0), n8, intp(8), intp) as (k, _):
                builder.store(builder.fadd(builder.load(acc), term(k, 8)), acc)
            v = builder.load(acc)
            lane0 = cgutils.alloca_once_value(builder, builder.extract_element(v, intp(0)))
            with cgutils.for_range_slice(builder, n8, n, intp(1), intp) as (k, _):
                builder.store(builder.fadd(builder.load(lane0), term(k, 1)), lane0)
            e = [builder.load(lane0)] + [builder.extract_element(v, intp(j)) for j in range(1, 8)]
            left = builder.fadd(builder.fadd(e[0], e[1]), builder.fadd(e[2], e[3]))
            return builder.fadd(left, builder.fadd(builder.fadd(e[4], e[5]),
                                                   builder.fadd(e[6], e[7])))

        return a.dtype(a, lo, b, n), codegen

    return intrinsic(impl)


_dot8, _sum8 = _lanes8(True), _lanes8(False)


@intrinsic
def _preact8x4(typingctx, Wt, col, off, X, j0, j1, j2, j3, rows, base, k, r0, r1):
    """rows[base + t, k + l] (+)= Σ_{r0 ≤ r < r1} Wt[off + r, col + l] X[j_t, r], t < 4, l < 8.

    r0 = 0 starts the sums, with the product of input 0; r0 > 0 continues the sums in rows.
    One multiply and one add per input in input order, exactly as the scalar loops of
    ``_preact_tile``: the same bits.  Explicit 8-wide LLVM vectors keep the 4 × 8 sums in
    registers across the inputs, so a weight is loaded once for 4 atoms and a sum once per
    call (LLVM does not vectorise this outer loop by itself).  Wt (D, N), X (J, p) and
    rows are C-contiguous 2-D arrays of one float dtype.
    """
    if not _float_c2d((Wt, X, rows)):
        return None

    def codegen(context, builder, sig, args):
        v = _Vec8(context, builder, sig)
        intp = v.intp
        (W, nW), (Xd, p), (R, nR) = v.c2d(args, 0), v.c2d(args, 3), v.c2d(args, 8)
        col, off, base, k, r0, r1 = (v.index(args, i) for i in (1, 2, 9, 10, 11, 12))
        js = [builder.mul(v.index(args, 4 + t), p) for t in range(4)]

        def wrow(r):
            return builder.load(v.at(W, builder.add(off, r), nW, col), align=1)

        def xs(t, r):
            return v.splat(builder.load(builder.gep(Xd, [builder.add(js[t], r)])))

        out = [v.at(R, builder.add(base, intp(t)), nR, k) for t in range(4)]
        accs = [cgutils.alloca_once(builder, v.vty) for t in range(4)]
        first = builder.icmp_signed("==", r0, intp(0))
        with builder.if_else(first) as (start, resume):
            with start:
                w = wrow(intp(0))
                for t in range(4):
                    builder.store(builder.fmul(w, xs(t, intp(0))), accs[t])
            with resume:
                for t in range(4):
                    builder.store(builder.load(out[t], align=1), accs[t])
        lo = builder.select(first, intp(1), r0)
        with cgutils.for_range_slice(builder, lo, r1, intp(1), intp) as (r, _):
            w = wrow(r)
            for t in range(4):
                builder.store(builder.fadd(builder.load(accs[t]), builder.fmul(w, xs(t, r))),
                              accs[t])
        for t in range(4):
            builder.store(builder.load(accs[t]), out[t], align=1)
        return context.get_dummy_value()

    return types.none(Wt, col, off, X, j0, j1, j2, j3, rows, base, k, r0, r1), codegen


@nb.njit(inline="always", **_JIT)
def _lane_dot(a, lo, b, n, weighted):
    """Σ_{k<n} a[lo+k] b[k] (or Σ b[k] if not weighted) in a fixed 8-lane order (b's dtype)."""
    return _dot8(a, lo, b, n) if weighted else _sum8(a, lo, b, n)


@intrinsic
def _input_grads4x4(typingctx, GD, grow, X, xr, j0, j1, j2, j3, w0, w1, w2, w3, vec, ebase,
                    k8):
    """GD[grow + i, k] += c_ti vec[ebase + t, k] for t = 0, 1, 2, 3 in order; i < 4, k < k8.

    c_ti = w_t X[j_t, xr + i], one multiply as in ``_input_grads_tile``'s loops, and then one
    multiply and one add per atom: the same bits.  The 16 c_ti stay in registers over the
    neurons, so each 8-neuron piece of a GD row is loaded and stored once for 4 atoms and
    each e piece once for 4 rows (LLVM does not vectorise the equivalent loop over four rows:
    it ran slower than one row at a time).  GD, X and vec are C-contiguous 2-D
    arrays of one float dtype, k8 a multiple of 8.
    """
    if not _float_c2d((GD, X, vec), (w0, w1, w2, w3)):
        return None

    def codegen(context, builder, sig, args):
        v = _Vec8(context, builder, sig)
        intp = v.intp
        (G, nG), (Xd, p), (V, nV) = v.c2d(args, 0), v.c2d(args, 2), v.c2d(args, 12)
        grow, xr, ebase, k8 = (v.index(args, i) for i in (1, 3, 13, 14))
        rows = [builder.mul(v.index(args, 4 + t), p) for t in range(4)]
        c = [[v.splat(builder.fmul(args[8 + t], builder.load(builder.gep(
            Xd, [builder.add(rows[t], builder.add(xr, intp(i)))])))) for t in range(4)]
             for i in range(4)]
        with cgutils.for_range_slice(builder, intp(0), k8, intp(8), intp) as (k, _):
            e = [builder.load(v.at(V, builder.add(ebase, intp(t)), nV, k), align=1)
                 for t in range(4)]
            for i in range(4):
                gp = v.at(G, builder.add(grow, intp(i)), nG, k)
                g = builder.load(gp, align=1)
                for t in range(4):
                    g = builder.fadd(g, builder.fmul(c[i][t], e[t]))
                builder.store(g, gp, align=1)
        return context.get_dummy_value()

    return types.none(GD, grow, X, xr, j0, j1, j2, j3, w0, w1, w2, w3, vec, ebase, k8), codegen


_INPUTS_PER_PASS = 8  # inputs per register pass of _preact8x4 (see _preact_tile)
