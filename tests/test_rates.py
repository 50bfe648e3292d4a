"""Rate fits: slopes of synthetic power laws, bootstrap CIs, theory exponents."""

import numpy as np
import pytest

from meanfield.rates import fit_rate, theory_exponent


def test_theory_exponents_table():
    assert theory_exponent(1.0) == -0.5
    assert [theory_exponent(b) for b in (0, 0.25, 0.5, 0.75)] == [-0.5, -0.375, -0.25, -0.125]
    got = [theory_exponent(b, 0.25) for b in (0, 0.25, 0.5, 0.75)]
    np.testing.assert_allclose(got, [-0.5, -0.5, -1 / 3, -1 / 6])


def test_slope_of_exact_power_law_with_chi2_replicas():
    """Per-replica squared errors c²/N · χ²_2/2 (mean c²/N): E_N = c N^{-1/2}; with 400
    replicas the bootstrap CI (≈ ±2 × 5 %/ln 100 in slope) must contain −0.5, and the
    slope must be within it; each E_N's CI must contain c N^{-1/2}."""
    rng = np.random.default_rng(1)
    ns = np.array([100, 1000, 10_000])
    samples = [0.3 ** 2 / n * rng.exponential(1.0, 400) for n in ns]
    fit = fit_rate(ns, samples, beta=1.0)
    assert fit.slope_ci[0] <= -0.5 <= fit.slope_ci[1]
    assert fit.agrees
    assert fit.slope_ci[1] - fit.slope_ci[0] < 0.1
    exact = 0.3 / np.sqrt(ns)
    assert np.all((fit.ci[:, 0] <= exact) & (exact <= fit.ci[:, 1]))
    assert fit.to_json()["theory"] == -0.5


def test_two_term_fit_recovers_exponent():
    ns = np.array([100, 300, 1000, 3000, 10_000, 30_000])
    e_true = 0.25
    E = 0.5 * ns ** -0.5 + 2.0 * ns ** -e_true
    fit = fit_rate(ns, [np.full(3, v ** 2) for v in E], beta=0.5)
    assert fit.two_term["e"] == pytest.approx(-e_true, abs=1e-3)
    assert fit.two_term["c1"] == pytest.approx(0.5, rel=1e-2)
    assert fit.theory == -0.25
    assert fit.two_term["asymptotic"] == pytest.approx(-e_true, abs=1e-3)


def test_two_term_fit_with_a_faster_noise_term():
    # β = 0, α = 1/4: noise term N^{-2/3} on top of the chaos term N^{-1/2}; the plain slope
    # is steeper than -1/2 at small N, the fitted curve's large-N slope is -1/2.
    ns = np.array([20, 63, 200, 632, 2000])
    E = 0.2 * ns ** -0.5 + 1.0 * ns ** (-2 / 3)
    fit = fit_rate(ns, [np.full(3, v ** 2) for v in E], beta=0.0, alpha=0.25)
    assert fit.slope < -0.55
    assert fit.two_term["e"] == pytest.approx(-2 / 3, abs=1e-3)
    assert fit.two_term["asymptotic"] == -0.5


@pytest.mark.parametrize("bad", [([100], [np.ones(3)]), ([100, 100], [np.ones(3)] * 2),
                                 ([10, 100], [np.ones(3), np.array([])]),
                                 ([10, 100], [np.ones(3), -np.ones(3)])])
def test_bad_inputs(bad):
    with pytest.raises(ValueError, match="fit_rate"):
        fit_rate(*bad)
