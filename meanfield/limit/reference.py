"""Reference limit: N_ref particles of the engine, integrated with their own step.

For mode = sde at β = 1 the reference is the McKean–Vlasov SDE with noise scale γ_α/M and
independent noise; otherwise the deterministic flow (mode = ode), whose limit does not
depend on β, γ or M.  The step is ``[limit] dt`` (default: the finite-N runs' own step
dt_factor·γ_α at β = 1, else min(0.01, T/200)), never γ N_ref^{β−1}.
"""

from __future__ import annotations

import numpy as np

from ..config import with_values
from ..engine import simulate
from ..errors import ConfigError
from ..schedule import MAX_STEPS, Schedule, gamma_alpha_n, n_steps
from .core import Limit


def reference_schedule(config) -> Schedule:
    """Return the reference time grid (noise scale γ_α = γ^{1/(1−α)}, the β = 1 value)."""
    s, d = config.schedule, config.dynamics
    g_alpha = gamma_alpha_n(s.gamma, 1.0, s.alpha, 1)
    noisy = d.mode == "sde" and s.beta == 1.0
    if config.limit.dt is not None:
        dt = config.limit.dt
    else:
        dt = d.dt_factor * g_alpha if noisy else min(0.01, d.T / 200)
    if not d.T / dt <= MAX_STEPS:
        msg = (f"the reference limit's step dt = {dt:.3g} (limit.dt, or dynamics.dt_factor "
               f"times γ_α) needs {d.T / dt:.3g} steps to dynamics.T = {d.T:g}, more than "
               f"{MAX_STEPS:.0e}; raise it")
        raise ConfigError(msg)
    total = n_steps(d.T, dt)
    dt = d.T / total  # land exactly on T
    steps = np.rint(np.linspace(0.0, total, d.snapshots)).astype(np.int64)
    return Schedule(gamma_an=g_alpha, dt=dt, n_total=total, snapshot_steps=steps,
                    alpha=s.alpha)


def solve_reference(config, data, model) -> Limit:
    """Run N_ref particles (one replica, seed ``[limit] seed``) and record u at every step."""
    noisy = config.dynamics.mode == "sde" and config.schedule.beta == 1.0
    ref = with_values(config, {"run.N": config.limit.N_ref, "run.seeds": 1,
                               "run.seed": config.limit.seed,
                               "dynamics.mode": "sde" if noisy else "ode",
                               "dynamics.noise": "independent"})
    sched = reference_schedule(config)
    traj = simulate(ref, data=data, schedule=sched, record_u=True)
    N = config.limit.N_ref
    return Limit(method="reference", t_u=np.arange(sched.n_total + 1) * sched.dt,
                 u=traj.u_steps[0], times=sched.times, points=traj.W[0],
                 weights=np.full(traj.W.shape[1:3], 1.0 / N))
