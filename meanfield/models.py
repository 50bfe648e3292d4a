"""Two-layer mean-field models: activations, losses and the per-neuron kernels (THEORY.md §1).

A neuron has parameters w ∈ R^D.  ``layers = "both"``: w = (a, b), a ∈ R^C, b ∈ R^p,
F(w, x) = a σ(⟨b, x⟩), D = C + p.  ``layers = "first"``: F(w, x) = σ(⟨w, x⟩), C = 1, D = p.

The measure μ enters the dynamics only through the mean field u_j = ⟨μ, F(·, x_j)⟩ ∈ R^C,
j = 1..J.  Given u, the per-atom loss gradient is g_j = ∂₁ℓ(u_j, y_j), the per-neuron
stochastic gradient H(w, μ, z_j) = J_w F(w, x_j)ᵀ g_j and the drift h(w, μ) = Σ_j p_j H_j + λw.

The ``_`` functions are Numba kernels shared by the particle engine and the limit solvers;
they take integer codes (``LAYERS``, ``ACTIVATIONS``, ``LOSSES``) as runtime arguments so a
single compilation serves every model.  The public functions are thin NumPy-facing wrappers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

LAYERS = {"both": 0, "first": 1}
ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2, "linear": 3}
LOSSES = {"squared": 0, "logistic": 1, "cross_entropy": 2}
_BOTH = 0
_TANH, _SIGMOID, _RELU, _LINEAR = 0, 1, 2, 3
_SQUARED, _LOGISTIC, _CROSS_ENTROPY = 0, 1, 2

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@dataclass(frozen=True)
class Model:
    """Integer-coded model description passed to the kernels.

    Attributes
    ----------
    layers, activation, loss : int
        Codes from ``LAYERS``, ``ACTIVATIONS``, ``LOSSES``.
    l2 : float
        λ of the penalty V(w) = (λ/2)|w|².
    outputs : int
        C, the output dimension.
    input_dim : int
        p, the input dimension.
    """

    layers: int
    activation: int
    loss: int
    l2: float
    outputs: int
    input_dim: int

    @property
    def dim(self) -> int:
        """D, the number of parameters of one neuron."""
        return self.input_dim + (self.outputs if self.layers == _BOTH else 0)

    @property
    def offset(self) -> int:
        """Index of the first input weight b_0 inside w."""
        return self.outputs if self.layers == _BOTH else 0


def make_model(config, data) -> Model:
    """Build the :class:`Model` of a config for a data law (C and p come from the data)."""
    m = config.model
    return Model(
        layers=LAYERS[m.layers],
        activation=ACTIVATIONS[m.activation],
        loss=LOSSES[m.loss],
        l2=float(m.l2),
        outputs=int(data.y.shape[1]),
        input_dim=int(data.x.shape[1]),
    )


BLOCK = 512  # neurons per block: the unit of vectorised and parallel work, and of summation order
TILE = 4  # atoms per tile (even: a Box–Muller pair never straddles two tiles); each
# input-weight row of a block is read from memory once per tile of atoms, not per atom


# ---------------------------------------------------------------- fast elementary functions
# Numba's math.tanh / math.log / math.sin compile to scalar libm calls that block
# vectorisation.  The functions below are straight-line polynomial code (no calls, no
# data-dependent branches) that LLVM vectorises over the neuron lane.  Each keeps the
# dtype of its argument: float32 arguments use float32 constants and shorter polynomials,
# so float32 kernels run at twice the vector width.  Accuracies are measured in
# tests/test_fastmath.py.

_F32 = np.float32


@intrinsic
def _f64_as_i64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (an LLVM bitcast, no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _i64_as_f64(typingctx, i):
    """Reinterpret the bits of an int64 as a float64 (an LLVM bitcast, no conversion)."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


def _like(a, c):
    """Return c in the dtype of a, an array or a scalar (a Numba overload; float64 default)."""
    msg = "_like is a Numba kernel"
    raise NotImplementedError(msg)  # pragma: no cover


@overload(_like, inline="always", jit_options=_JIT)
def _like_overload(a, c):
    if a == types.float32 or (isinstance(a, types.Array) and a.dtype == types.float32):
        return lambda a, c: np.float32(c)
    return lambda a, c: np.float64(c)


def _tanh(x):
    """Vectorisable tanh of a float64 or float32 scalar (a Numba overload; see below)."""
    msg = "_tanh is a Numba kernel"
    raise NotImplementedError(msg)  # pragma: no cover


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c rounded once (``llvm.fma``: one instruction on FMA hardware, vectorisable).

    Written explicitly rather than left to the compiler's contraction, so the same source
    gives the same bits in every kernel it is inlined into.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        return builder.call(builder.module.declare_intrinsic("llvm.fma", [ty, ty, ty]), args)

    return a(a, b, c), codegen


@intrinsic
def _pow2_of_rounded(typingctx, t):
    """2^k for t = R + k, R = 1.5·2^52 (float64) or 1.5·2^23 (float32), |k| small.

    Integer arithmetic on the bits: t's low bits hold k, so 2^k's bits are (k + bias) << m.
    """
    if t == types.float64:
        width, magic, bias, shift = 64, 0x4338000000000000, 1023, 52
    elif t == types.float32:
        width, magic, bias, shift = 32, 0x4B400000, 127, 23
    else:
        return None

    def codegen(context, builder, signature, args):
        it = ir.IntType(width)
        i = builder.add(builder.sub(builder.bitcast(args[0], it), it(magic)), it(bias))
        return builder.bitcast(builder.shl(i, it(shift)), args[0].type)

    return t(t), codegen


# expm1(2h) = h (2 + h T(h)) on |h| ≤ ln2/4, T of degree 9 (float64): near-minimax for the
# relative error of expm1, fitted by Lawson-weighted least squares on 160 Chebyshev nodes in
# 50-digit arithmetic, each coefficient rounded to float64 before the next ones were refitted
# (scripts/fit_tanh.py; ≤ 0.22 ulp in exact arithmetic); float32: Taylor coefficients 1/n!,
# n = 2..7 of expm1(r), |r| ≤ ln2/2 ((ln2/2)^7/8! ≈ 1.5e-8)
_T64 = (2.0, 1.3333333333333282, 0.6666666666659204, 0.26666666666842775, 0.08888888909109863,
        0.025396825227988744, 0.0063491881947065, 0.0014109401641350342,
        0.0002828514276855381, 5.129397843804422e-05)
_E32 = tuple(_F32(1.0 / math.factorial(n)) for n in range(2, 8))
_TWO_INV_LN2 = 2.0 * 1.4426950408889634  # 2/ln2
_HALF_LN2_HI = 0.5 * 6.93147180369123816490e-01  # ln2/2 = hi + lo, hi with 33 significant bits
_HALF_LN2_LO = 0.5 * 1.90821492927058770002e-10
_R64 = 6755399441055744.0  # 1.5·2^52: adding it rounds to an integer
_K32 = tuple(_F32(c) for c in (1.4426950408889634, 0.693145751953125, 1.428606765330187e-06,
                                12582912.0, 9.1, 2.0, 1.0, 0.0))


def _tanh64(x):
    """Tanh from expm1 (float64): tanh|x| = m/(m + 2), m = expm1(2|x|).

    a = min(|x|, 20) (tanh = 1 in float64 beyond), 2a = k ln2 + 2h with k = round(2a/ln2)
    and |h| ≤ ln2/4 (Cody–Waite with ln2/2 in two parts, two FMAs); expm1(2h) is a degree-11
    near-minimax polynomial h (2 + h T(h)), T in Estrin's form (short dependency chains);
    m = 2^k expm1(2h) + (2^k − 1) with 2^k from the bits of the rounded 2a/ln2; the sign of x
    is copied onto m/(m + 2).  Every step is an IEEE operation or an explicit FMA, so the
    result is the same bits in every kernel.  Measured error ≤ 3 ulp (mean 0.16) against
    ``np.tanh`` on [−25, 25] and down to 1e-300 (tests/test_kernels.py); NaN propagates,
    ±0 gives ±0.  Measured 0.38 ns per element in a vectorised loop on this machine's AVX-512
    (0.50 for the previous degree-13 Taylor version, 7.9 ns for libm's scalar tanh; XLA's:
    0.47 ns).
    """
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = _T64
    a = abs(x)
    a = 20.0 if a > 20.0 else a  # NaN stays NaN
    t = _fma(a, _TWO_INV_LN2, _R64)
    kf = t - _R64
    h = _fma(kf, -_HALF_LN2_HI, a)
    h = _fma(kf, -_HALF_LN2_LO, h)
    h2 = h * h
    h4 = h2 * h2
    lo = _fma(_fma(_fma(c7, h, c6), h2, _fma(c5, h, c4)), h4,
              _fma(_fma(c3, h, c2), h2, _fma(c1, h, c0)))
    p = h * _fma(h, _fma(_fma(c9, h, c8), h4 * h4, lo), 2.0)  # expm1(2h)
    s = _pow2_of_rounded(t)
    m = _fma(s, p, s - 1.0)
    return math.copysign(m / (m + 2.0), x)


def _tanh32(x):
    """Tanh from expm1 in float32, as ``_tanh64`` with a degree-7 polynomial, |x| ≤ 9.1.

    Beyond 9.1 float32 tanh rounds to ±1.  Measured error ≤ 3 float32 ulp and ≤ 1.2e-7
    absolute against float64 ``np.tanh`` over [−12, 12] (tests/test_fastmath.py); NaN
    propagates.  All arithmetic is float32.
    """
    c2, c3, c4, c5, c6, c7 = _E32
    inv_ln2, ln2_hi, ln2_lo, rnd, big, two, one, zero = _K32
    a = min(abs(x), big) if x == x else x
    y = -two * a
    t = _fma(y, inv_ln2, rnd)
    kf = t - rnd
    r = _fma(kf, -ln2_hi, y)
    r = _fma(kf, -ln2_lo, r)
    r2 = r * r
    lo = _fma(_fma(c4, r, c3), r2, _fma(c2, r, one))
    hi = _fma(c7, r2, _fma(c6, r, c5))
    p = _fma(hi, r2 * r2, lo) * r  # expm1(r)
    s = _pow2_of_rounded(t)
    m = _fma(s, p, s - one)
    th = abs(m / (two + m))
    return th if x >= zero else -th


_tanh64_jit = nb.njit(inline="always", **_JIT)(_tanh64)
_tanh32_jit = nb.njit(inline="always", **_JIT)(_tanh32)


@overload(_tanh, jit_options=_JIT)
def _tanh_overload(x):
    if x == types.float32:
        return _tanh32
    if isinstance(x, types.Float):
        return _tanh64
    return None


# log(1 + f) = f − f²/2 + f³ Q(f) on f ∈ [√½ − 1, √2 − 1]: Q of degree 7, fitted by
# least squares on Chebyshev nodes weighted to the relative error of log(1 + f)
# (measured ≤ 6.9e-9 on a 2·10⁵-point grid)
_LQ = (0.3333335404727912, -0.25000851943542934, 0.19999826572958077, -0.16621369910242298,
       0.14227114035855024, -0.13202104208883467, 0.12620327488971497, -0.07362867871487286)
_LN2 = 0.6931471805599453
# sin t = t + t³ S(t²), cos t = 1 − t²/2 + t⁴ C(t²) on |t| ≤ π/4, S and C of degree 2 fitted
# the same way (measured absolute error ≤ 2.7e-9 for sin, ≤ 1.1e-10 for cos)
_SN = (-0.16666654339337095, 0.008332148256325457, -0.00019513932562139746)
_CS = (0.04166664623669293, -0.001388734148652757, 2.443585173511056e-05)


@nb.njit(inline="always", **_JIT)
def _log(x):
    """Natural logarithm of a positive, normal, finite float64 to ~1e-8 relative (vectorisable).

    Made for the normal draws, which need a cheap log, not a correctly rounded one:
    x = 2^k (1 + f) with 1 + f ∈ [√2/2, √2) read from the bits (no division), then
    k ln 2 + f − f²/2 + f³ Q(f) with Q in Estrin's form by explicit FMAs (the same bits in
    every kernel).  Measured relative error ≤ 6.9e-9 against ``np.log`` over [2⁻⁶⁰, 2⁶⁰]
    (tests/test_fastmath.py).  Zero, negative, subnormal, inf and NaN arguments are not
    handled (the engine never passes them).
    """
    ix = _f64_as_i64(x)
    hx = ix + ((0x3FF00000 - 0x3FE6A09E) << 32)
    k = (hx >> 52) - 0x3FF
    f = _i64_as_f64((hx & 0x000FFFFFFFFFFFFF) + (0x3FE6A09E << 32)) - 1.0
    f2 = f * f
    q0, q1, q2, q3, q4, q5, q6, q7 = _LQ
    hi = _fma(_fma(q7, f, q6), f2, _fma(q5, f, q4))
    q = _fma(hi, f2 * f2, _fma(_fma(q3, f, q2), f2, _fma(q1, f, q0)))
    return _fma(np.float64(k), _LN2, _fma(f2 * f, q, _fma(-0.5, f2, f)))


@nb.njit(inline="always", **_JIT)
def _sincos(t):
    """(sin t, cos t) of a float64 |t| ≤ π/4 to ~3e-9 absolute (vectorisable; no reduction).

    Degree-7 and degree-8 polynomials by explicit FMAs.  Measured absolute error ≤ 2.7e-9
    (sin) and ≤ 1.1e-10 (cos) against ``np.sin`` / ``np.cos`` (tests/test_fastmath.py).
    """
    z = t * t
    s = _fma(t * z, _fma(_fma(_SN[2], z, _SN[1]), z, _SN[0]), t)
    c = _fma(z * z, _fma(_fma(_CS[2], z, _CS[1]), z, _CS[0]), _fma(-0.5, z, 1.0))
    return s, c


@nb.njit(inline="always", **_JIT)
def _sig_block(s, sig, nk, act):
    """sig[k] = σ(s[k]) for k < nk (one branch per block, the loops vectorise).

    Where both rows have room, tanh and sigmoid run on to the next multiple of 8, the
    vector width of the loop's epilogue, so no element takes the scalar remainder: the call
    measured 69 ns for nk = 100 and for 128, 52 for 96.  The extra lanes hold scratch that
    nothing reads.
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


@nb.njit(inline="always", **_JIT)
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


@nb.njit(inline="always", **_JIT)
def _dsig_block(sig, dsig, nk, act):
    """dsig[k] = σ'(s[k]) for k < nk, from sig[k] = σ(s[k]).

    So a stored σ(s) is all the backward pass needs.
    """
    for k in range(nk):
        dsig[k] = _dsig(sig[k], act)


@nb.njit(inline="always", **_JIT)
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
    LLVM's SLP vectoriser leaves the equivalent eight scalar accumulators scalar (measured
    0.25 ns per term, against 0.05 ns for this loop, on a 10³-term dot in float64).
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
    it measured 3.3× slower than one row at a time).  GD, X and vec are C-contiguous 2-D
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


@nb.njit(inline="always", **_JIT)
def _preact_tile(Wt, lo, nk, off, X, atoms, i0, nt, rows, base):
    """rows[base + t, k] = ⟨b_{lo+k}, x_{atoms[i0+t]}⟩ for t < nt, k < nk.

    The same sums, in the same order, as ``_preact_block`` atom by atom, but a full tile
    with p > 1 inputs keeps 8 neurons × 4 atoms in registers over all inputs
    (``_preact8x4``; digits at N = 10³: 2.5× faster than the loops of ``_preact_cols``,
    which do the last nk mod 8 neurons and the other cases, each row Wt[off + r] used for
    the nt atoms while it is in L1).  All inputs go in one pass, except when a row of Wt is
    a multiple of 1 KiB long (N a multiple of 128 in float64): then the 8-neuron pieces of
    the rows fall in at most 4 sets of the L1 cache, which hold 8–12 lines each, and a pass
    takes ``_INPUTS_PER_PASS`` inputs (in one pass, N = 1024 measured 0.080 against 0.028
    ns per multiply-add for N = 1000; in passes of 8, 0.034 for both).
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
    else:  # the literal 0 matters: a start known only at run time measured 1.5× slower
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


@nb.njit(inline="always", **_JIT)
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


@nb.njit(inline="always", **_JIT)
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


@nb.njit(inline="always", **_JIT)
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


@nb.njit(inline="always", **_JIT)
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


@nb.njit(inline="always", **_JIT)
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


@nb.njit(inline="always", **_JIT)
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


def _scratch(D: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vec, GD, GN) block scratch for the kernels."""
    return (np.zeros((6, BLOCK), dtype), np.zeros((D, BLOCK), dtype),
            np.zeros((D, BLOCK), dtype))


def mean_field(W: np.ndarray, x: np.ndarray, model: Model, weights=None) -> np.ndarray:
    """Return u (J, C): u_j = Σ_k q_k F(W_k, x_j), q_k = 1/N or the given particle weights.

    Parameters
    ----------
    W : (N, D) ndarray
        Particles, one per row.
    x : (J, p) ndarray
        Atoms' inputs.
    model : Model
    weights : (N,) ndarray, optional
        Particle weights summing to 1 (quadrature nodes); default uniform 1/N.
    """
    Wt = np.ascontiguousarray(W.T)
    q = np.ascontiguousarray(weights, dtype=W.dtype) if weights is not None else Wt[0, :0]
    J = x.shape[0]
    nblocks = (W.shape[0] + BLOCK - 1) // BLOCK
    u_part = np.zeros((nblocks, J, model.outputs), W.dtype)
    u = np.zeros((J, model.outputs), W.dtype)
    _mean_field_kernel(Wt, q, np.ascontiguousarray(x, dtype=W.dtype), model.layers,
                       model.activation, _scratch(model.dim, W.dtype)[0], u_part, u, np.inf)
    return u


def loss_and_grad(u: np.ndarray, y: np.ndarray, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """Return (ℓ_j (J,), g_j = ∂₁ℓ(u_j, y_j) (J, C)) for mean field u (J, C) and targets y."""
    J = u.shape[0]
    g = np.empty_like(u)
    ell = np.empty(J, dtype=u.dtype)
    _loss_grad_kernel(u, y.astype(u.dtype), np.arange(J), J, model.loss, g, ell)
    return ell, g


def risk(u: np.ndarray, y: np.ndarray, p: np.ndarray, model: Model) -> float:
    """Return the risk Σ_j p_j ℓ(u_j, y_j) (no penalty term)."""
    return float(np.dot(p, loss_and_grad(u, y, model)[0]))


def _drift_noise(W, u, data, model, xi):
    Wt = np.ascontiguousarray(W.T)
    dt = W.dtype
    _, g = loss_and_grad(u, data.y, model)
    vec, GD, GN = _scratch(model.dim, dt)
    drift_t, nz_t = np.empty_like(Wt), np.empty_like(Wt)
    noise = xi is not None
    xi = np.ascontiguousarray(xi, dtype=dt) if noise else np.zeros((1, 1), dt)
    _drift_noise_kernel(Wt, np.ascontiguousarray(data.x, dtype=dt), data.p.astype(dt), g, xi,
                        noise, model.layers, model.activation, model.l2, vec, GD, GN,
                        drift_t, nz_t)
    return drift_t.T.copy(), nz_t.T.copy()


def drift(W: np.ndarray, u: np.ndarray, data, model: Model) -> np.ndarray:
    """Return h(W_k, μ) (N, D) for every particle, μ entering through its mean field u (J, C)."""
    return _drift_noise(W, u, data, model, None)[0]


def noise_sample(W: np.ndarray, u: np.ndarray, data, model: Model, xi: np.ndarray) -> np.ndarray:
    """Return Σ^{1/2}-distributed noise (N, D) for each particle without a matrix square root.

    With centred per-atom gradients G_j = H(w, μ, z_j) − E_z H, the vector
    Σ_j √p_j G_j ξ_j has covariance exactly Σ(w, μ) = Cov_z H when ξ_j are i.i.d. N(0, 1)
    (THEORY.md §3).

    Parameters
    ----------
    W : (N, D) ndarray
    u : (J, C) ndarray
        Mean field of μ at the atoms.
    data : DataLaw
    model : Model
    xi : (N, J) ndarray
        Standard normal draws, one row per particle (rows equal for shared noise).
    """
    return _drift_noise(W, u, data, model, xi)[1]


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


def noise_covariance(W: np.ndarray, u: np.ndarray, data, model: Model) -> np.ndarray:
    """Return the noise covariance Σ(W_k, μ) (N, D, D) of every particle (THEORY.md §1).

    Σ(w, μ) = Σ_j p_j (H_j − h̄)(H_j − h̄)ᵀ with H_j = J_w F(w, x_j)ᵀ g_j, g_j = ∂₁ℓ(u_j, y_j)
    and h̄ = Σ_j p_j H_j (the L2 term adds no noise).  Two passes over the atoms (mean, then
    centred second moment) per block of neurons: O(N·J·D²) time, O(N·D²) memory.

    Parameters
    ----------
    W : (N, D) ndarray
        Particles, one per row.
    u : (J, C) ndarray
        Mean field of μ at the atoms.
    data : DataLaw
    model : Model
    """
    Wt = np.ascontiguousarray(W.T)
    dt = W.dtype
    _, g = loss_and_grad(u, data.y, model)
    D = model.dim
    vec, GD, HB = _scratch(D, dt)
    S = np.zeros((D, D, BLOCK), dt)
    out = np.empty((W.shape[0], D, D), dt)
    _noise_cov_kernel(Wt, np.ascontiguousarray(data.x, dtype=dt), data.p.astype(dt), g,
                      model.layers, model.activation, vec, GD, HB, S, out)
    return out
