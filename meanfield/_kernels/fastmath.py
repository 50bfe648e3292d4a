"""Fast elementary functions: straight-line code that LLVM vectorises over neurons.

Numba's math.tanh / math.log / math.sin compile to scalar libm calls that block
vectorisation.  The functions below are straight-line polynomial code (no calls, no
data-dependent branches) that LLVM vectorises over the neuron lane.  Each keeps the
dtype of its argument: float32 arguments use float32 constants and shorter polynomials,
so float32 kernels run at twice the vector width.  Accuracies are measured in
tests/test_fastmath.py.

"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from .jit import _JIT

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
    ±0 gives ±0.  It vectorises, unlike libm's scalar tanh (an order of magnitude slower
    per element).
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
