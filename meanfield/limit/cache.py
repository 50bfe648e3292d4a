"""A cache of solved limits, keyed by the limit problem they solve (an object, passed in)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..config import Config, to_toml, with_values

if TYPE_CHECKING:
    from ..data import DataLaw
    from . import Limit

# Keys the limit does not depend on: the run section (N, replicas, seed) always ...
_RUN_KEYS = {"run.N": None, "run.seeds": None, "run.seed": None}
# ... and, for a deterministic limit (β < 1 or mode ode), also γ, β, M and the noise
# settings: the MV ODE is the same for all of them (docs/theory.rst §4).
_NOISE_KEYS = {"schedule.beta": 0.0, "schedule.gamma": None, "schedule.batch": None,
               "dynamics.mode": "ode", "dynamics.noise": None, "dynamics.sampling": None,
               "dynamics.dt_factor": None}


class LimitCache:
    """Solve each distinct limit problem once and reuse it for equal problems.

    A study creates one and passes it to its tasks and its summaries, so a rate study (one
    limit for every N) or a regime study (one deterministic limit per α) solves each limit
    once. The oldest entry is dropped beyond ``maxsize``. A copy made by pickling (a task
    sent to another process) starts empty: solved limits never travel between processes.

    Parameters
    ----------
    maxsize : int
        Most limits kept.
    """

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._limits: dict[str, Limit] = {}

    def __len__(self) -> int:
        """Return the number of limits held."""
        return len(self._limits)

    def __getstate__(self) -> dict:
        """Return the state a pickled copy gets: the size, no limits."""
        return {"maxsize": self.maxsize, "_limits": {}}

    @staticmethod
    def key(config: Config) -> str:
        """Return the key of ``config``'s limit problem: the config with what it ignores reset."""
        from . import is_deterministic

        reset = dict(_RUN_KEYS)
        if is_deterministic(config):
            reset.update(_NOISE_KEYS)
        return to_toml(replace(with_values(config, reset), sweep=None))

    def get(self, config: Config, data: DataLaw | None = None) -> Limit:
        """Return ``config``'s limit, solving it (on ``data`` if given) when not cached."""
        from . import solve_limit

        key = self.key(config)
        if key not in self._limits:
            if len(self._limits) >= self.maxsize:
                self._limits.pop(next(iter(self._limits)))
            self._limits[key] = solve_limit(config, data=data)
        return self._limits[key]
