"""The N → ∞ McKean–Vlasov limit (docs/theory.rst §4): three independent solvers.

- ``pde`` (:mod:`.pde`): finite volumes for the limit PDE on a uniform grid, D ≤ 2;
- ``reference`` (:mod:`.reference`): N_ref particles of the engine with their own step;
- ``quadrature`` (:mod:`.quadrature`): weighted nodes of μ₀ moved by the characteristic
  ODE (deterministic dynamics only).

A limit is described by the trajectory of its mean field u_t on a fine time grid and by
its law λ_t at the snapshot times (a grid density, or weighted points).
"""

from .core import (
    METHODS,
    Limit,
    check_coupling,
    check_limit_defined,
    choose_method,
    is_deterministic,
)
from .solve import solve_limit

__all__ = ["METHODS", "Limit", "check_coupling", "check_limit_defined", "choose_method",
           "is_deterministic", "solve_limit"]
