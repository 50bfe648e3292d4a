"""``solve_limit``: the N → ∞ limit of a config by the solver its ``[limit]`` section names."""

from __future__ import annotations

from ..errors import ConfigError
from .core import Limit, check_limit_defined, choose_method, is_deterministic


def solve_limit(config, *, data=None) -> Limit:
    """Compute the N → ∞ limit of ``config``'s particle system by ``[limit] method``.

    Raises
    ------
    ConfigError
        A combination without a deterministic limit (shared noise or sgd at β = 1), or a
        method that does not apply (quadrature for a stochastic limit, pde for D > 2).
    NumericalError
        Non-finite values, or PDE mass reaching the domain boundary.
    """
    from ..data import make_data
    from ..model import make_model

    check_limit_defined(config)
    data = make_data(config) if data is None else data
    model = make_model(config, data)
    method = config.limit.method
    if method == "auto":
        method = choose_method(config, model.dim)
    if method == "quadrature":
        if not is_deterministic(config):
            msg = ("limit.method = 'quadrature' needs a deterministic limit (mode = 'ode' or "
                   "schedule.beta < 1); use 'pde' or 'reference'")
            raise ConfigError(msg)
        from .quadrature import solve_quadrature

        return solve_quadrature(config, data, model)
    if method == "reference":
        from .reference import solve_reference

        return solve_reference(config, data, model)
    from .pde import solve_pde

    return solve_pde(config, data, model)
