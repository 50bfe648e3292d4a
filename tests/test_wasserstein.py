"""W2 estimators: closed forms, independent solvers, and the W2-vs-W2² trap."""

import numpy as np
import ot
import pytest
import scipy.linalg
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm

from meanfield.errors import NumericalError
from meanfield.wasserstein import (
    ConvergenceError,
    compress,
    floor,
    projection_set,
    sinkhorn_divergence,
    sliced_reference,
    w2,
    w2_1d,
    w2_exact,
    w2_gaussian,
    w2_sliced,
)


def _weights(rng, n):
    w = rng.uniform(0.1, 1.0, n)
    return w / w.sum()


# ----------------------------------------------------------------------------- exact
@pytest.mark.parametrize("d", [2, 3])
def test_exact_matches_assignment(rng, d):
    x = rng.standard_normal((50, d))
    y = rng.standard_normal((50, d)) + 0.5
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    expected = np.sqrt(cost[rows, cols].mean())
    assert abs(w2_exact(x, y) - expected) < 1e-10


def test_exact_nonconvergence_raises(rng):
    x, y = rng.standard_normal((50, 2)), rng.standard_normal((50, 2))
    with pytest.raises(ConvergenceError, match="numItermax"):
        w2_exact(x, y, num_itermax=1)
    assert issubclass(ConvergenceError, RuntimeError)
    assert issubclass(ConvergenceError, NumericalError)


# ----------------------------------------------------------------------------- 1-D
@pytest.mark.parametrize(("n", "m", "weighted"), [(40, 40, False), (37, 23, False),
                                                  (37, 23, True), (1, 15, True)])
def test_1d_matches_exact_and_pot(rng, n, m, weighted):
    x = rng.standard_normal(n)
    y = 2.0 * rng.standard_normal(m) + 0.3
    a, b = (_weights(rng, n), _weights(rng, m)) if weighted else (None, None)
    got = w2_1d(x, y, a, b)
    assert abs(got - w2_exact(x[:, None], y[:, None], a, b)) < 1e-10
    aa = np.full(n, 1 / n) if a is None else a
    bb = np.full(m, 1 / m) if b is None else b
    assert abs(got - np.sqrt(ot.wasserstein_1d(x, y, aa, bb, p=2))) < 1e-10
    assert w2_1d(x[:, None], y[:, None], a, b) == got


def test_1d_unit_shift_pot_style(rng):
    x = rng.standard_normal(300)
    assert w2_1d(x, x + 1.0) == pytest.approx(1.0, abs=1e-12)
    assert np.sqrt(ot.wasserstein_1d(x, x + 1.0, p=2)) == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------- W2 vs W2²
# y = x + τ with |τ| = 3: W2 = 3 while W2² = 9, so a p-th-power mix-up fails at once.
SHIFT = np.array([3.0, 0.0])


def test_translation_exact_is_three(rng):
    x = rng.standard_normal((60, 2))
    assert w2_exact(x, x + SHIFT) == pytest.approx(3.0, abs=1e-10)


def test_translation_1d_is_three(rng):
    x = rng.standard_normal(500)
    a = _weights(rng, 500)
    assert w2_1d(x, x + 3.0, a, a) == pytest.approx(3.0, abs=1e-10)


def test_translation_sliced_single_direction_is_three(rng):
    x = rng.standard_normal((80, 2))
    assert w2_sliced(x, x + SHIFT, projections=np.array([[1.0, 0.0]])) == pytest.approx(
        3.0, abs=1e-10)


def test_translation_sinkhorn_is_three(rng):
    # For y = x + τ the quadratic cost splits into |x - y'|² plus terms separable in x
    # and y', so OT_ε(α, α_τ) = OT_ε(α, α) + |τ|² and S_ε = |τ|² for every ε. A small
    # reg (ε / |τ|² ≈ 0.06) therefore still has to give 3 up to solver round-off; the
    # marginal tolerance 1e-9 bounds the dual error by ~1e-9 · max cost ≈ 1e-7 on S,
    # i.e. ~2e-8 on sqrt(S).
    x = rng.standard_normal((60, 2))
    assert sinkhorn_divergence(x, x + SHIFT, reg=0.5) == pytest.approx(3.0, abs=1e-7)


def test_translation_gaussian_is_shift(rng):
    x = rng.standard_normal((70, 3))
    shift = np.array([1.0, -2.0, 0.5])
    assert w2_gaussian(x, x + shift) == pytest.approx(np.linalg.norm(shift), abs=1e-10)


# ----------------------------------------------------------------------------- sliced
def test_sliced_lower_bound_and_translation(rng):
    theta = projection_set(3, 50, seed=1)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(theta, projection_set(3, 50, seed=1))
    for _ in range(3):
        x = rng.standard_normal((40, 3))
        y = 1.3 * rng.standard_normal((30, 3)) + 0.2
        assert w2_sliced(x, y, projections=theta) <= w2_exact(x, y) + 1e-12
    shift = np.array([1.0, 2.0, -1.0])
    x = rng.standard_normal((40, 3))
    expected = np.sqrt(np.mean((theta @ shift) ** 2))
    assert w2_sliced(x, x + shift, projections=theta) == pytest.approx(expected, abs=1e-10)


def test_sliced_rejects_bad_projections(rng):
    x = rng.standard_normal((10, 2))
    with pytest.raises(ValueError, match="projections"):
        w2_sliced(x, x, projections=np.ones((4, 3)) / np.sqrt(3))
    with pytest.raises(ValueError, match="unit"):
        w2_sliced(x, x, projections=np.ones((4, 2)))


# ----------------------------------------------------------------------------- sinkhorn
def test_sinkhorn_identical_is_zero(rng):
    x = rng.standard_normal((50, 2))
    a = _weights(rng, 50)
    assert sinkhorn_divergence(x, x.copy(), a, a.copy(), reg=0.5) < 1e-8


def test_sinkhorn_too_few_iterations_raises(rng):
    x = rng.standard_normal((50, 2))
    with pytest.raises(ConvergenceError, match="max_iter"):
        sinkhorn_divergence(x, x + SHIFT, reg=0.1, max_iter=3)


# ----------------------------------------------------------------------------- Gaussian
def test_gaussian_matches_closed_form_of_sample_moments(rng):
    x = rng.multivariate_normal([0.0, 1.0], [[2.0, 0.3], [0.3, 0.5]], size=200)
    y = rng.multivariate_normal([1.0, -1.0], [[1.0, -0.2], [-0.2, 1.5]], size=150)
    b = _weights(rng, 150)
    m1, m2 = x.mean(0), b @ y
    s1 = np.cov(x.T, bias=True)
    s2 = np.cov(y.T, aweights=b, bias=True)
    r2 = np.real(scipy.linalg.sqrtm(s2))
    cross = np.real(scipy.linalg.sqrtm(r2 @ s1 @ r2))
    expected = np.sqrt(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * cross))
    assert w2_gaussian(x, y, None, b) == pytest.approx(expected, rel=1e-10)


def test_gaussian_1d_closed_form(rng):
    x = rng.standard_normal(100)
    y = 3.0 * rng.standard_normal(80) + 2.0
    expected = np.hypot(x.mean() - y.mean(), x.std() - y.std())
    assert w2_gaussian(x, y) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- dispatch
def test_w2_dispatch(rng):
    x1, y1 = rng.standard_normal(30), rng.standard_normal(20)
    assert w2(x1, y1) == w2_1d(x1, y1)
    x, y = rng.standard_normal((30, 2)), rng.standard_normal((20, 2))
    assert w2(x, y) == w2_exact(x, y)
    theta = projection_set(2, 200, seed=5)
    assert w2(x, y, memory_bytes=100.0, seed=5) == w2_sliced(x, y, projections=theta)
    assert w2(x, y, method="gaussian") == w2_gaussian(x, y)
    assert w2(x, y, method="sinkhorn", reg=1.0) == sinkhorn_divergence(x, y, reg=1.0)
    with pytest.raises(ValueError, match="method"):
        w2(x, y, method="emd")
    with pytest.raises(ValueError, match="reg"):
        w2(x, y, method="sinkhorn")


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("fn", "kw"),
    [(w2_exact, {}), (w2_1d, {}), (w2_gaussian, {}), (sinkhorn_divergence, {"reg": 1.0}),
     (w2_sliced, {"projections": np.array([[1.0]])})],
)
def test_bad_inputs_raise(rng, fn, kw):
    x, y = rng.standard_normal(5), rng.standard_normal(4)
    a = np.full(5, 0.2)
    bad = {
        "empty": ((np.zeros(0), y), "x is empty"),
        "nan": ((np.array([0.0, np.nan, 1.0, 2.0, 3.0]), y), "x contains NaN"),
        "negative": ((x, y, np.array([0.5, -0.1, 0.2, 0.2, 0.2])), "a has negative"),
        "sum": ((x, y, np.full(5, 0.21)), "a must sum to 1"),
        "length": ((x, y, np.full(4, 0.25)), "a has length 4"),
        "inf_y": ((x, np.array([0.0, np.inf, 1.0, 2.0])), "y contains NaN or inf"),
        "b_len": ((x, y, a, np.full(5, 0.2)), "b has length 5"),
    }
    for args, match in bad.values():
        with pytest.raises(ValueError, match=match):
            fn(*args, **kw)


def test_dimension_mismatch_raises(rng):
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((4, 3))
    for fn in (w2_exact, w2_gaussian, w2):
        with pytest.raises(ValueError, match="same dimension"):
            fn(x, y)
    with pytest.raises(ValueError, match="1-D points"):
        w2_1d(x, x)


# ----------------------------------------------------------------------------- floor
def test_floor_decays_like_inverse_sqrt_n():
    size = 40_000
    points = norm.ppf((np.arange(size) + 0.5) / size)[:, None]
    weights = np.full(size, 1.0 / size)
    small, _ = floor((points, weights), 100, reps=30, rng=np.random.default_rng(1))
    large, std = floor((points, weights), 1600, reps=30, rng=np.random.default_rng(2))
    assert std > 0
    assert 2.5 <= small / large <= 6.0  # sqrt(1600 / 100) = 4, up to log-log factors


# ----------------------------------------------------------------------------- compress
def test_compress_drops_only_negligible_mass(rng):
    pts = rng.standard_normal((50, 2))
    w = np.concatenate([np.full(40, 1e-13), _weights(rng, 10)])
    w /= w.sum()
    cp, cw = compress(pts, w, 100, rng=rng)
    assert cp.shape == (10, 2)
    np.testing.assert_array_equal(cp, pts[40:])
    np.testing.assert_allclose(cw, w[40:] / w[40:].sum(), rtol=1e-12)
    same_p, same_w = compress(pts, w, 100, rng=rng, drop_mass=0.0)
    assert same_p.shape == (50, 2)
    assert abs(same_w.sum() - 1) < 1e-12


def test_compress_samples_a_large_grid_without_bias():
    # A 300x300 grid density of N(0, I): compressed to 2000 points, the exact W2 back to a
    # fine sample of the same law is at the sampling floor of a 2000-point sample.
    c = np.linspace(-5, 5, 300)
    gx, gy = np.meshgrid(c, c, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    w = np.exp(-0.5 * (pts ** 2).sum(axis=1))
    w /= w.sum()
    cp, cw = compress(pts, w, 2000, rng=np.random.default_rng(3))
    assert cp.shape == (2000, 2)
    assert np.allclose(cw, 1 / 2000)
    np.testing.assert_allclose(cp.mean(axis=0), 0.0, atol=4 * np.sqrt(1 / 2000))
    np.testing.assert_allclose(np.cov(cp.T), np.eye(2), atol=6 * np.sqrt(2 / 2000))
    ref = floor((pts, w), 2000, reps=5, rng=np.random.default_rng(4), method="sliced")
    got = w2_sliced(cp, pts, None, w, projections=projection_set(2, 200, 0))
    assert got <= ref[0] + 4 * ref[1]


def test_compress_bad_inputs(rng):
    pts = rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match="max_points"):
        compress(pts, None, 0, rng=rng)
    with pytest.raises(ValueError, match="drop_mass"):
        compress(pts, None, 3, rng=rng, drop_mass=1.0)
    with pytest.raises(ValueError, match="weights must sum to 1"):
        compress(pts, np.full(5, 0.3), 3, rng=rng)


@pytest.mark.parametrize("weighted", [False, True])
def test_sliced_equals_mean_of_1d_terms(rng, weighted):
    # Independent path: w2_1d (merged breakpoints) on each projection, against the
    # partial-moment formula of SlicedReference; ties included (rounded points).
    x = np.round(rng.standard_normal((300, 2)), 1)
    y = rng.standard_normal((700, 2)) * 1.3 + 0.2
    a = _weights(rng, 300) if weighted else None
    b = _weights(rng, 700)
    th = projection_set(2, 50, 4)
    direct = np.sqrt(np.mean([w2_1d(x @ t, y @ t, a, b) ** 2 for t in th]))
    assert w2_sliced(x, y, a, b, projections=th) == pytest.approx(direct, rel=1e-10)
    ref = sliced_reference(y, b, projections=th)
    assert w2_sliced(x, ref, a) == pytest.approx(direct, rel=1e-10)
    assert w2_sliced(y, sliced_reference(y, b, projections=th), b) < 1e-6
    with pytest.raises(ValueError, match="pass neither b nor projections"):
        w2_sliced(x, ref, a, b)
    with pytest.raises(ValueError, match="same dimension"):
        w2_sliced(rng.standard_normal((5, 3)), ref)
