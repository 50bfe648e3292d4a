"""The computed limit (``Limit``) and the rules of when a limit exists (docs/theory.rst §4–5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Limit:
    """The computed limit.

    Attributes
    ----------
    method : str
        "pde", "reference" or "quadrature".
    t_u : (K,) ndarray
        Fine time grid of the mean field, t_u[0] = 0, t_u[-1] = T.
    u : (K, J, C) ndarray
        Mean field u_j(t) = ⟨λ_t, F(·, x_j)⟩ on ``t_u``.
    times : (S,) ndarray
        Snapshot times of the law.
    density : (S, n0[, n1]) ndarray or None
        pde: probability density on the cell centres (integrates to 1 with the cell area).
    centres : tuple of (n_i,) ndarrays or None
        pde: uniform cell centres per parameter axis.
    points : (S, P, D) ndarray or None
        reference / quadrature: particle positions at the snapshot times.
    weights : (S, P) ndarray or None
        Their weights (sum 1).
    """

    method: str
    t_u: np.ndarray
    u: np.ndarray
    times: np.ndarray
    density: np.ndarray | None = None
    centres: tuple | None = None
    points: np.ndarray | None = None
    weights: np.ndarray | None = None

    def u_at(self, t: float) -> np.ndarray:
        """Mean field (J, C) at time t by linear interpolation on ``t_u``."""
        k = int(np.clip(np.searchsorted(self.t_u, t) - 1, 0, len(self.t_u) - 2))
        t0, t1 = self.t_u[k], self.t_u[k + 1]
        w = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
        return (1.0 - w) * self.u[k] + w * self.u[k + 1]

    def check_coupling(self, config) -> None:
        """Raise ConfigError unless ``config``'s particles can be coupled with this limit."""
        check_coupling(config)


def is_deterministic(config) -> bool:
    """Return True when the limit is the deterministic MV ODE (mode ode, or β < 1)."""
    return config.dynamics.mode == "ode" or config.schedule.beta < 1.0


def check_limit_defined(config) -> None:
    """Raise ConfigError for combinations without a deterministic limit (docs/theory.rst §4)."""
    d = config.dynamics
    if config.schedule.beta == 1.0 and (d.mode == "sgd" or (d.mode == "sde"
                                                             and d.noise == "shared")):
        what = "sgd (shared batches)" if d.mode == "sgd" else "sde with shared noise"
        msg = (f"dynamics.mode = {d.mode!r}: {what} at schedule.beta = 1 keeps a common noise "
               "in the limit (no deterministic λ_t); use mode = 'sde' with "
               "noise = 'independent', or beta < 1")
        raise ConfigError(msg)


METHODS = ("auto", "pde", "reference", "quadrature")


def choose_method(config, dim: int) -> str:
    """Return the solver ``[limit] method = "auto"`` picks.

    pde for D ≤ 2 (normal or uniform μ₀), else quadrature for deterministic dynamics,
    else reference.
    """
    if dim <= 2 and config.init.kind in ("normal", "uniform"):
        return "pde"
    return "quadrature" if is_deterministic(config) else "reference"


def check_coupling(config) -> None:
    """Raise ConfigError unless synchronous coupling is defined for this config.

    Coupling is defined for sde (independent noise, or any noise at β < 1), ode, and sgd
    with β < 1 (docs/theory.rst §4–5).
    """
    d = config.dynamics
    if d.mode == "sgd" and config.schedule.beta == 1.0:
        msg = ("--couple with dynamics.mode = 'sgd' needs schedule.beta < 1: shared-batch SGD "
               "at beta = 1 has no deterministic limit to couple with")
        raise ConfigError(msg)
    check_limit_defined(config)
