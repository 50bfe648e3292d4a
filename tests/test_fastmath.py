"""Accuracy of the engine's vectorisable elementary functions and of its normal draws.

The kernels replace libm (scalar calls that block vectorisation) with polynomial code:
``_tanh`` (float64 and float32 versions), ``_log`` and ``_sincos`` (fdlibm kernels) in
``meanfield.models``, and the Box–Muller transform ``_normal_pair`` in
``meanfield.particles`` built from them.  Errors are measured against NumPy in ulps of the
result's dtype.
"""

import math

import numba as nb
import numpy as np
import pytest
from scipy import stats

from meanfield import models
from meanfield.models import _log, _sincos, _tanh
from meanfield.particles import _normal_pair, _subkey, noise_draws


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
def _engine_order_normals(key, N, J, out):
    """The draws in the engine's order (loop over neurons innermost, as _update_block)."""
    half = (J + 1) // 2
    for m in range(half):
        for k in range(N):
            z0, z1 = _normal_pair(key, k * half + m)
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


def test_log_within_1_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.geomspace(2.0**-60, 2.0**60, 200_001),
                        rng.uniform(0.0, 1.0, 200_000) + 2.0**-53,
                        (np.arange(1, 2**12) * 2.0**-53),  # the engine's smallest u₁
                        [1.0, 0.5, 2.0, math.sqrt(0.5), math.sqrt(2.0), 1.0 - 2.0**-53]])
    out = np.empty_like(x)
    _apply_log(x, out)
    want = np.log(x)
    err = np.abs(out - want) / np.spacing(np.abs(want) + 1e-300)
    assert err[want != 0].max() <= 1.0
    assert np.all(out[x == 1.0] == 0.0)


def test_sincos_within_1_ulp():
    t = np.concatenate([np.linspace(-math.pi / 4, math.pi / 4, 400_001),
                        np.geomspace(1e-300, math.pi / 4, 10_000)])
    t = np.concatenate([t, -t])
    s, c = np.empty_like(t), np.empty_like(t)
    _apply_sincos(t, s, c)
    assert _ulps(s, np.sin(t), np.float64)[t != 0].max() <= 1.0
    assert _ulps(c, np.cos(t), np.float64).max() <= 1.0


def test_noise_draws_are_the_engine_order_draws():
    # noise_draws fills row by row with scalar calls; the engine calls _normal_pair in a
    # loop over neurons that vectorises: the numbers must be bitwise the same.
    key, step, N, J = 0x1234_5678_9ABC_DEF0, 17, 1031, 9
    want = noise_draws(key, step, N, J)
    got = np.empty((N, J))
    _engine_order_normals(np.uint64(_subkey(np.uint64(key), step)), N, J, got)
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
    # u₁ ≥ 2⁻⁵³: |z| ≤ (2 · 53 ln 2)^{1/2} ≈ 8.57
    assert np.abs(z).max() <= math.sqrt(2 * 53 * math.log(2.0))
    # the two members of a Box–Muller pair and neighbouring neurons are uncorrelated
    Z = z.reshape(200_000, 10)
    for a, b in ((Z[:, 0], Z[:, 1]), (Z[:-1, 0], Z[1:, 0])):
        assert abs(np.corrcoef(a, b)[0, 1]) <= 3 / math.sqrt(a.size)
