"""Stepsize schedule of docs/theory.rst §2: the one place these formulas live.

γ_{α,N} = (γ N^{β−1})^{1/(1−α)},  ω(t) = (1 + t)^{−α},  η_n = γ_{α,N} ω(n γ_{α,N}),
n_T = round(T / dt) with dt = dt_factor · γ_{α,N} (dt_factor = 1 for SGD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


def gamma_alpha_n(gamma: float, beta: float, alpha: float, n_neurons: int) -> float:
    """Return the time step γ_{α,N} = (γ N^{β−1})^{1/(1−α)} of one SGD step."""
    return float((gamma * float(n_neurons) ** (beta - 1.0)) ** (1.0 / (1.0 - alpha)))


def omega(t: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """Return the time change ω(t) = (1 + t)^{−α}."""
    return (1.0 + t) ** (-alpha)


def omega_integral(t: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """Return ∫₀ᵗ ω(s) ds (the effective time of the flow)."""
    if alpha == 0.0:
        return t
    return ((1.0 + t) ** (1.0 - alpha) - 1.0) / (1.0 - alpha)


def n_steps(T: float, dt: float) -> int:
    """Return n_T = round(T / dt), the number of steps to reach time T (at least 1)."""
    return max(1, int(round(T / dt)))


def eta(n: int | np.ndarray, gamma_an: float, alpha: float) -> float | np.ndarray:
    """Return the per-neuron SGD step η_n = γ_{α,N} (1 + n γ_{α,N})^{−α}."""
    return gamma_an * omega(n * gamma_an, alpha)


@dataclass(frozen=True)
class Schedule:
    """Resolved time grid of one run.

    Attributes
    ----------
    gamma_an : float
        γ_{α,N}, the SGD step and the noise scale of the particle SDE.
    dt : float
        Integration step (γ_{α,N} for SGD, dt_factor·γ_{α,N} for sde/ode).
    n_total : int
        n_T, the number of steps.
    snapshot_steps : (S,) ndarray of int64
        Step indices of the snapshots (nearest step to equally spaced times in [0, T]).
    alpha : float
        Decay exponent of ω.
    """

    gamma_an: float
    dt: float
    n_total: int
    snapshot_steps: np.ndarray
    alpha: float

    @property
    def times(self) -> np.ndarray:
        """(S,) ndarray: actual times n·dt of the snapshots."""
        return self.snapshot_steps * self.dt


MAX_STEPS = 10**12  # more steps than any machine runs in days, at any N: an input error


def make_schedule(config) -> Schedule:
    """Resolve the schedule of a run from its config (schedule, dynamics and run sections).

    Raises
    ------
    ConfigError
        When γ_{α,N} overflows or underflows, when T < dt / 2 (n_T would round to 0 and
        the one step would overshoot T), or when n_T exceeds ``MAX_STEPS``.
    """
    s, d = config.schedule, config.dynamics
    where = (f"schedule.gamma = {s.gamma:g}, beta = {s.beta:g}, alpha = {s.alpha:g} at "
             f"run.N = {config.run.N}"
             + ("" if d.mode == "sgd" else f" with dynamics.dt_factor = {d.dt_factor:g}"))
    try:
        gan = gamma_alpha_n(s.gamma, s.beta, s.alpha, config.run.N)
    except (OverflowError, ZeroDivisionError):
        gan = math.inf
    dt = gan if d.mode == "sgd" else d.dt_factor * gan
    if not (math.isfinite(dt) and dt > 0.0):
        msg = (f"{where} give a step γ_{{α,N}} = {gan:g} that is not a positive finite "
               "number; choose schedule.gamma and schedule.alpha so that (γ N^(β−1))^(1/(1−α)) "
               "is representable")
        raise ConfigError(msg)
    if dt > 2.0 * d.T:  # n_T = round(T / dt) would be 0: one step would overshoot T
        msg = (f"{where} give a step dt = {dt:.4g}, more than twice dynamics.T = {d.T:g}: "
               "the first step would end far past T; lower schedule.gamma or raise dynamics.T")
        raise ConfigError(msg)
    if d.T / dt > MAX_STEPS:
        msg = (f"{where} and dynamics.T = {d.T:g} need {d.T / dt:.3g} steps of "
               f"dt = {dt:.3g} (more than {MAX_STEPS:.0e}); raise schedule.gamma or lower "
               "dynamics.T")
        raise ConfigError(msg)
    total = n_steps(d.T, dt)
    targets = np.linspace(0.0, d.T, d.snapshots)
    steps = np.minimum(np.rint(targets / dt).astype(np.int64), total)
    steps[-1] = total
    return Schedule(gamma_an=gan, dt=dt, n_total=total, snapshot_steps=steps, alpha=s.alpha)
