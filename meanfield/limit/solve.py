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

    data = make_data(config) if data is None else data
    model = make_model(config, data)
    method = resolve_method(config, model)
    if method == "quadrature":
        from .quadrature import solve_quadrature

        return solve_quadrature(config, data, model)
    if method == "reference":
        from .reference import solve_reference

        return solve_reference(config, data, model)
    from .pde import solve_pde

    return solve_pde(config, data, model)


def resolve_method(config, model) -> str:
    """Return the solver ``solve_limit`` will use, or raise why there is none.

    Checks, without solving, every rule that makes a limit undefined or a method
    inapplicable, so a command can refuse its input before it writes anything.

    Raises
    ------
    ConfigError
        As :func:`solve_limit`.
    """
    from ..schedule import MAX_STEPS

    check_limit_defined(config)
    method = config.limit.method
    if method == "auto":
        method = choose_method(config, model.dim)
    ini, T, ldt = config.init.kind, config.dynamics.T, config.limit.dt
    if method != "pde" and ldt is not None and T / ldt > MAX_STEPS:
        msg = (f"limit.dt = {ldt:g} needs {T / ldt:.3g} steps to dynamics.T = {T:g} (more "
               f"than {MAX_STEPS:.0e}); raise limit.dt or leave it out (automatic)")
        raise ConfigError(msg)
    if method == "quadrature" and not is_deterministic(config):
        msg = ("limit.method = 'quadrature' needs a deterministic limit (mode = 'ode' or "
               "schedule.beta < 1); use 'pde' or 'reference'")
        raise ConfigError(msg)
    if method == "quadrature" and ini == "torch_default":
        msg = "init.kind = 'torch_default' depends on N: no N → ∞ limit law; use normal/uniform"
        raise ConfigError(msg)
    if method == "reference":
        from .reference import reference_schedule

        reference_schedule(config)  # its step count (ConfigError if it cannot end)
    if method == "pde" and model.dim > 2:
        msg = (f"limit.method = 'pde' needs a parameter dimension D <= 2, got D = {model.dim}; "
               "use limit.method = 'reference' or 'quadrature'")
        raise ConfigError(msg)
    if method == "pde" and ini not in ("normal", "uniform"):
        msg = (f"init.kind = {ini!r} is not supported by limit.method = 'pde' "
               "(its law is not a fixed density); use 'normal' or 'uniform'")
        raise ConfigError(msg)
    return method


def limit_bytes(config, model, J: int) -> int:
    """Estimate the bytes the limit of ``config`` needs (its big arrays; see ``solve_limit``).

    They grow with ``limit.grid`` (pde), ``limit.N_ref`` (reference, and the Sobol nodes of
    quadrature in high dimension) and ``dynamics.snapshots``.
    """
    from ..engine import memory_bytes
    from .quadrature import TENSOR_MAX
    from .reference import reference_schedule

    method = resolve_method(config, model)
    D, C, S = model.dim, model.outputs, config.dynamics.snapshots
    if method == "pde":
        cells = float(config.limit.grid) ** D
        return int(8 * cells * (S + 12 + 2 * J * C))
    if method == "reference":
        from ..config import with_values

        ref = with_values(config, {"run.N": config.limit.N_ref, "run.seeds": 1})
        steps = reference_schedule(config).n_total
        return memory_bytes(ref, J, C, D, hist_steps=steps + 1)
    per_axis = min(64, int(TENSOR_MAX ** (1.0 / D)))
    sobol = 2 ** min(20, max(1, config.limit.N_ref - 1).bit_length())
    P = per_axis ** D if per_axis >= 8 else sobol
    return int(8 * P * (D * (S + 4) + 2 * J * C))
