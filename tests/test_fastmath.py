"""Accuracy of the engine's vectorisable elementary functions and of its normal draws.

The kernels replace libm (scalar calls that block vectorisation) with polynomial code:
``_tanh`` (float64 and float32 versions), ``_log`` and ``_sincos`` (short polynomials) in
``meanfield._kernels.fastmath``, and the Box–Muller transform ``_normal_pair`` in
``meanfield._kernels.rng`` built from them.  Errors are measured against NumPy in ulps of the
result's dtype.
"""

import math

import numba as nb
import numpy as np
import pytest
from scipy import stats

from meanfield import model as models
from meanfield._kernels.fastmath import _log, _sincos, _tanh
from meanfield._kernels.rng import _normal_pair, _particle_pair, _particle_quad, _stream
from meanfield.engine import noise_draws


@nb.njit(cache=True, error_model="numpy")
def _apply_tanh(x, out):
    for i in range(x.shape[0]):
        out[i] = _tanh(x[i])


@nb.njit(cache=True, error_model="numpy")
def _apply_log(x, out):
    for i in range(x.shape[0]):
        out[i] = _log(x[i])


@nb.njit(cache=True, error_model="numpy")
def _apply_sincos(x, s, c):
    for i in range(x.shape[0]):
        s[i], c[i] = _sincos(x[i])


@nb.njit(cache=True, error_model="numpy")
def _apply_normal_pair(b, out):
    for i in range(b.shape[0]):
        out[i, 0], out[i, 1] = _normal_pair(b[i])


@nb.njit(cache=True, error_model="numpy")
def _engine_order_normals(key, step, N, J, out):
    """The draws in the engine's order (loop over neurons innermost, as _update_block):
    whole blocks of 4 atoms by ``_particle_quad``, the last partial one by pairs."""
    s = _stream(key, 0, step)
    nq = (J + 3) // 4
    for q in range(J // 4):
        for k in range(N):
            z0, z1, z2, z3 = _particle_quad(s, k, nq, q)
            out[k, 4 * q], out[k, 4 * q + 1], out[k, 4 * q + 2], out[k, 4 * q + 3] = (
                z0, z1, z2, z3)
    for m in range(2 * (J // 4), (J + 1) // 2):
        for k in range(N):
            z0, z1 = _particle_pair(s, k, nq, m)
            out[k, 2 * m] = z0
            if 2 * m + 1 < J:
                out[k, 2 * m + 1] = z1


def _ulps(got, want, dtype):
    """|got − want| in units of the spacing of ``want`` rounded to dtype."""
    spacing = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


def test_tanh_float32_accuracy_and_dtype():
    # float32 tanh: k ln2 + r reduction, degree-7 Taylor expm1(r), all in float32.
    # Measured: ≤ 2.82 float32 ulp and ≤ 1.5e-7 absolute against float64 np.tanh.
    x = np.concatenate([np.linspace(-12.0, 12.0, 400_001), np.geomspace(1e-35, 1.0, 20_000)])
    x = np.concatenate([x, -x]).astype(np.float32)
    out = np.empty_like(x)
    _apply_tanh(x, out)
    want = np.tanh(x.astype(np.float64))
    assert _ulps(out, want, np.float32).max() <= 3.5
    assert np.abs(out - want).max() <= 2e-7
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 30.0, -30.0], np.float32)
    out = np.empty_like(special)
    _apply_tanh(special, out)
    assert np.isnan(out[0])
    assert out[1:].tolist() == [1.0, -1.0, 0.0, 1.0, -1.0]


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_float32_activations_through_the_engine(act):
    # layers = first, N = 1, w = 1: u_j = σ(x_j) computed in float32 end to end.
    x = np.linspace(-15.0, 15.0, 30001).astype(np.float32)
    model = models.Model(layers=models.LAYERS["first"], activation=models.ACTIVATIONS[act],
                         loss=0, l2=0.0, outputs=1, input_dim=1)
    u = models.mean_field(np.ones((1, 1), np.float32), x[:, None], model)[:, 0]
    assert u.dtype == np.float32
    xd = x.astype(np.float64)
    exact = np.tanh(xd) if act == "tanh" else 0.5 + 0.5 * np.tanh(0.5 * xd)
    np.testing.assert_allclose(u, exact, rtol=0, atol=4e-7)


def test_log_relative_error():
    # Short-polynomial log for the normal draws: measured ≤ 7e-9 relative (tolerance 1e-8).
    rng = np.random.default_rng(1)
    x = np.concatenate([np.geomspace(2.0**-60, 2.0**60, 200_001),
                        rng.uniform(0.0, 1.0, 200_000) + 2.0**-53,
                        (np.arange(0, 2**12) + 0.5) * 2.0**-32,  # the engine's smallest u₁
                        1.0 - (np.arange(0, 2**12) + 0.5) * 2.0**-32,  # and largest
                        [1.0, 0.5, 2.0, math.sqrt(0.5), math.sqrt(2.0), 1.0 - 2.0**-53]])
    out = np.empty_like(x)
    _apply_log(x, out)
    want = np.log(x)
    nz = want != 0
    assert (np.abs(out - want)[nz] / np.abs(want[nz])).max() <= 1e-8
    assert np.all(out[x == 1.0] == 0.0)


def test_sincos_absolute_error():
    # Degree-7/8 polynomials on [−π/4, π/4]: measured ≤ 2.7e-9 (sin), ≤ 1.1e-10 (cos).
    t = np.concatenate([np.linspace(-math.pi / 4, math.pi / 4, 400_001),
                        np.geomspace(1e-300, math.pi / 4, 10_000)])
    t = np.concatenate([t, -t])
    s, c = np.empty_like(t), np.empty_like(t)
    _apply_sincos(t, s, c)
    assert np.abs(s - np.sin(t)).max() <= 3e-9
    assert np.abs(c - np.cos(t)).max() <= 2e-10
    assert np.all(np.sign(s) == np.sign(t))  # odd, and sin t ≈ t for tiny t
    assert np.all(s[np.abs(t) < 1e-150] == t[np.abs(t) < 1e-150])


def test_normal_pair_matches_exact_box_muller_on_the_same_bits():
    # Independent reference: Box–Muller of the same 64-bit words with np.log, np.sqrt,
    # np.cos, np.sin: r = (−2 log u₁)^{1/2}, u₁ = (h + ½) 2⁻³² from the high 32 bits,
    # φ = θ + q π/2, θ = ((l + ½) 2⁻³⁰ − ½) π/2 from the low 30, q from bits 30–31.
    # Words: random ones, and the extremes of u₁ and θ in every quadrant.
    rng = np.random.default_rng(4)
    edge = np.array([(h << 32) | (q << 30) | lo for h in (0, 1, 2**31, 2**32 - 1)
                     for q in range(4) for lo in (0, 1, 2**29, 2**30 - 1)], dtype=np.uint64)
    b = np.concatenate([rng.integers(0, 2**64, 400_000, dtype=np.uint64, endpoint=False),
                        edge])
    z = np.empty((b.size, 2))
    _apply_normal_pair(b, z)
    u1 = ((b >> np.uint64(32)).astype(np.float64) + 0.5) * 2.0**-32
    low = (b & np.uint64((1 << 30) - 1)).astype(np.float64)
    q = ((b >> np.uint64(30)) & np.uint64(3)).astype(np.float64)
    phi = ((low + 0.5) * 2.0**-30 - 0.5) * (math.pi / 2) + q * (math.pi / 2)
    r = np.sqrt(-2.0 * np.log(u1))
    want = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    err = np.abs(z - want) / (1.0 + np.abs(want))
    assert err.max() <= 2e-8, err.max()


@pytest.mark.parametrize("J", [1, 2, 3, 4, 6, 9, 12])
def test_noise_draws_are_the_engine_order_draws(J):
    # noise_draws fills row by row with scalar calls; the engine calls _particle_quad and
    # _particle_pair in loops over neurons that vectorise: the numbers must be bitwise
    # the same.
    key, step, N = 0x1234_5678_9ABC_DEF0, 17, 1031
    want = noise_draws(key, step, N, J)
    got = np.empty((N, J))
    _engine_order_normals(np.uint64(key), step, N, J, got)
    np.testing.assert_array_equal(got, want)


def test_normals_distribution():
    # 2·10⁶ draws (fixed key, so the test is deterministic).  Tolerances are 3σ of the
    # sampling distribution for exact N(0, 1) draws.
    z = noise_draws(0x5EED_5EED_5EED_5EED, 3, 200_000, 10).ravel()
    n = z.size
    assert abs(z.mean()) <= 3 / math.sqrt(n)
    assert abs(z.var() - 1.0) <= 3 * math.sqrt(2.0 / n)
    assert abs(np.mean(z**4) - 3.0) <= 3 * math.sqrt(96.0 / n)  # Var(z⁴) = 105 − 9
    assert abs(np.mean(z**3)) <= 3 * math.sqrt(15.0 / n)  # Var(z³) = 15
    # KS: √n D is asymptotically Kolmogorov-distributed; critical value at the 3σ
    # two-sided level (p = 0.0027)
    d = stats.kstest(z, stats.norm.cdf).statistic
    assert d * math.sqrt(n) <= stats.kstwobign.isf(0.0027)
    # tails beyond 3 and 4: binomial counts within 3σ
    for a in (3.0, 4.0):
        q = 2 * stats.norm.sf(a)
        cnt = np.count_nonzero(np.abs(z) > a)
        assert abs(cnt - n * q) <= 3 * math.sqrt(n * q * (1 - q)), (a, cnt, n * q)
    # u₁ ≥ 2⁻³³: |z| ≤ (2 · 33 ln 2)^{1/2} ≈ 6.76
    assert np.abs(z).max() <= math.sqrt(2 * 33 * math.log(2.0))
    # the two members of a Box–Muller pair and neighbouring neurons are uncorrelated
    Z = z.reshape(200_000, 10)
    for a, b in ((Z[:, 0], Z[:, 1]), (Z[:-1, 0], Z[1:, 0])):
        assert abs(np.corrcoef(a, b)[0, 1]) <= 3 / math.sqrt(a.size)
