"""Convergence rates: log-log slope fits with bootstrap confidence intervals (docs/theory.rst §5).

An error curve is measured as per-replica mean squared errors at each N; the error at N is
E_N = (mean over replicas)^{1/2}.  The slope is the plain least-squares slope of log E_N
against log N; its CI comes from a bootstrap that resamples replicas independently at each
N.  Beside it, for β < 1, the two-term fit c₁N^{−1/2} + c₂N^{−e}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def theory_exponent(beta: float, alpha: float = 0.0) -> float:
    """Return the predicted log-log slope of the coupling error (docs/theory.rst §5).

    −min(½, (1 − β)/(2(1 − α))) for β < 1, and −½ at β = 1.
    """
    if beta >= 1.0:
        return -0.5
    return -min(0.5, (1.0 - beta) / (2.0 * (1.0 - alpha)))


@dataclass(frozen=True)
class RateFit:
    """A fitted convergence rate.

    Attributes
    ----------
    N : (K,) ndarray
    mean : (K,) ndarray
        E_N = sqrt(mean over replicas of the squared error).
    ci : (K, 2) ndarray
        Bootstrap 95 % interval of E_N.
    slope, intercept : float
        Least-squares fit log E_N = intercept + slope · log N.
    slope_ci : tuple of float
        Bootstrap 95 % interval of the slope.
    theory : float
        Predicted slope for the regime.
    agrees : bool
        Whether slope_ci contains theory.
    two_term : dict
        β < 1: {"c1", "c2", "e", "e_ci", "asymptotic"} of c₁N^{−1/2} + c₂N^{−e} (``e`` and
        its CI reported negative, like slopes; ``asymptotic`` = −min(½, e), the fitted
        curve's large-N slope); empty otherwise.
    """

    N: np.ndarray
    mean: np.ndarray
    ci: np.ndarray
    slope: float
    intercept: float
    slope_ci: tuple[float, float]
    theory: float
    agrees: bool
    two_term: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Return the rate.json block (without N; docs/guide/rate.rst)."""
        return {"mean": self.mean.tolist(), "ci": self.ci.tolist(), "slope": self.slope,
                "slope_ci": list(self.slope_ci), "intercept": self.intercept,
                "theory": self.theory,
                "agrees": bool(self.agrees), "two_term": self.two_term}


def _slope(logn, loge):
    A = np.stack([np.ones_like(logn), logn], axis=1)
    coef = np.linalg.lstsq(A, loge, rcond=None)[0]
    return coef[1], coef[0]


def _two_term(ns, es):
    """Fit E = c₁N^{−1/2} + c₂N^{−e}, c ≥ 0, e ∈ (0, 1], by least squares on log E.

    e may exceed ½ (a noise term that decays faster than the chaos term, e.g. β = 0 at
    α = ¼); the fitted curve's asymptotic exponent is then −min(½, e).
    """
    from scipy.optimize import least_squares

    def resid(theta):
        c1, c2, e = np.exp(theta[0]), np.exp(theta[1]), theta[2]
        return np.log(c1 * ns ** -0.5 + c2 * ns ** -e) - np.log(es)

    x0 = np.array([np.log(es[-1] * np.sqrt(ns[-1]) / 2), np.log(es[0] / 2), 0.25])
    sol = least_squares(resid, x0, bounds=([-50, -50, 1e-3], [50, 50, 1.0]))
    return float(np.exp(sol.x[0])), float(np.exp(sol.x[1])), float(sol.x[2])


def fit_rate(ns, samples, *, beta: float = 1.0, alpha: float = 0.0, n_boot: int = 1000,
             seed: int = 0) -> RateFit:
    """Fit the log-log slope of E_N against N with a bootstrap CI over replicas.

    Parameters
    ----------
    ns : (K,) array of int
        Widths N, at least two distinct.
    samples : sequence of K arrays
        Per-replica squared errors at each N (e.g. the mean over neurons of
        sup_t ``|W^{k,N} − W^{k,⋆}|²``); NaN entries are ignored.
    beta, alpha : float
        Regime, for the theory exponent and the two-term fit (β < 1).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the bootstrap.
    """
    ns = np.asarray(ns, dtype=np.float64)
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    samples = [s[np.isfinite(s)] for s in samples]
    if len(ns) != len(samples) or len(np.unique(ns)) < 2:
        msg = "fit_rate needs one sample array per N and at least two distinct N"
        raise ValueError(msg)
    if any(s.size == 0 or np.any(s < 0) for s in samples):
        msg = "fit_rate: every N needs at least one finite, nonnegative squared error"
        raise ValueError(msg)
    mean = np.sqrt([s.mean() for s in samples])
    slope, intercept = _slope(np.log(ns), np.log(mean))
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(ns)))
    for i, s in enumerate(samples):
        idx = rng.integers(0, s.size, (n_boot, s.size))
        boot[:, i] = np.sqrt(s[idx].mean(axis=1))
    slopes = np.array([_slope(np.log(ns), np.log(b))[0] for b in boot])
    lo, hi = np.percentile(slopes, [2.5, 97.5])
    theory = theory_exponent(beta, alpha)
    two = {}
    if beta < 1.0 and len(ns) >= 3:
        c1, c2, e = _two_term(ns, mean)
        es = [_two_term(ns, b)[2] for b in boot[: min(n_boot, 200)]]
        two = {"c1": c1, "c2": c2, "e": -e, "e_ci": [-float(np.percentile(es, 97.5)),
                                                    -float(np.percentile(es, 2.5))],
               "asymptotic": -min(0.5, e)}
    return RateFit(N=ns, mean=mean, ci=np.percentile(boot, [2.5, 97.5], axis=0).T,
                   slope=float(slope), intercept=float(intercept),
                   slope_ci=(float(lo), float(hi)), theory=theory,
                   agrees=bool(lo <= theory <= hi), two_term=two)

