"""Training runs and limits (``meanfield run`` and ``meanfield limit``) as Python calls.

:func:`run_simulation` trains one config (``trajectory.nc``, ``run.png``) or, with a
``[sweep]`` section, runs :func:`run_task` / :func:`couple_task` at every sweep point
(``results.nc``); :func:`run_limit` solves the McKean–Vlasov limit (``limit.nc``,
``limit.png``). Both write ``config.toml`` and ``manifest.json`` and resume a finished DIR.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Config
from ..data import make_data
from ..engine import LONG_RUN, memory_bytes, simulate
from ..errors import ConfigError
from ..init import replica_streams
from ..limit import check_coupling, solve_limit
from ..model import make_model
from ..schedule import make_schedule
from .preflight import check_inputs

if TYPE_CHECKING:  # xarray is imported where it is used: `import meanfield` stays quick
    import xarray as xr

    from ..engine import Trajectory
    from ..limit import Limit


def run_task(config: Config, *, progress: bool = False) -> xr.Dataset:
    """Run the task of ``meanfield run``: simulate, return the trajectory dataset."""
    from ..io import trajectory_dataset

    return trajectory_dataset(simulate(config, progress=progress))


def couple_task(config: Config, *, progress: bool = False) -> xr.Dataset:
    """Run the task of ``meanfield run --couple``: solve the limit, simulate coupled twins."""
    from ..io import trajectory_dataset

    data = make_data(config)
    limit = solve_limit(config, data=data)
    return trajectory_dataset(simulate(config, data=data, limit=limit, progress=progress))


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_simulation` or :func:`run_limit` did in DIR.

    Attributes
    ----------
    out : Path
        DIR.
    seconds : float
        Wall time of the work (0 when ``complete_before``).
    complete_before : bool
        DIR already held the finished result of the same config: nothing was done.
    trajectory : Trajectory or None
        The run (single run).
    limit : Limit or None
        The limit (``run_limit``, or a coupled single run).
    results : xarray.Dataset or None
        The gathered results of a sweep.
    """

    out: Path
    seconds: float = 0.0
    complete_before: bool = False
    trajectory: Trajectory | None = None
    limit: Limit | None = None
    results: xr.Dataset | None = None


def run_simulation(config: Config, out: str | os.PathLike, *, couple: bool = False,
                   fresh: bool = False, executor: str = "serial", workers: int | None = None,
                   scheduler: str | None = None, progress: bool | None = None,
                   wait: bool = False) -> RunOutcome:
    """Train ``config`` into ``out``, as ``meanfield run`` does.

    Without ``[sweep]``: ``trajectory.nc``, ``run.png`` and ``manifest.json`` (replica
    keys, timing); with ``couple`` each neuron also runs its limit twin (``coupling_sq``,
    ...). With ``[sweep]``: one task per point through :func:`meanfield.runner.run_sweep`
    (``tasks/``, ``results.nc``). Every task's inputs are checked before DIR is touched
    (:func:`~meanfield.studies.preflight.check_inputs`); DIR follows the rules of
    :mod:`meanfield.outdir`.

    Parameters
    ----------
    config : Config
    out : path
        DIR.
    couple : bool
        Couple each neuron with its limit twin.
    fresh : bool
        Delete what meanfield wrote in DIR and start over.
    executor, workers, scheduler : sweep executor settings (see ``run_sweep``)
    progress : bool, optional
        Progress bars (default: when stderr is a terminal).
    wait : bool
        Wait for another command holding DIR instead of refusing.
    """
    from ..outdir import claim
    from ..runner import check_executor, expand, points, run_sweep

    out = Path(out)
    if scheduler is not None and not config.sweep:
        msg = f"--scheduler {scheduler} runs sweep tasks; this config has no [sweep]"
        raise ConfigError(msg)
    check_executor(executor, workers, scheduler)
    check_inputs([cfg for _, _, cfg in points(config)], couple=couple, limit=couple)
    tasks = expand(config)
    with claim(out, config, command="run", fresh=fresh, wait=wait):
        if config.sweep:
            _note_long_run([t.config for t in tasks])
            start = time.perf_counter()
            res = run_sweep(config, out, couple_task if couple else run_task,
                            command="couple" if couple else "run", executor=executor,
                            workers=workers, scheduler=scheduler, progress=progress)
            return RunOutcome(out, time.perf_counter() - start, results=res)
        return _single_run(config, out, tasks[0].id, couple, progress)


def _single_run(config: Config, out: Path, inputs: str, couple: bool,
                progress: bool | None) -> RunOutcome:
    """Run ``meanfield run`` without [sweep] in a claimed DIR."""
    from ..io import manifest, trajectory_dataset, write_json
    from ..plotting import plot_run, save
    from ..runner import write_result

    if _finished(out / "trajectory.nc", inputs):
        return RunOutcome(out, complete_before=True)
    _note_long_run([config])
    progress = sys.stderr.isatty() if progress is None else progress
    data = make_data(config)
    model = make_model(config, data)
    limit = None
    if couple:
        check_coupling(config)
        limit = solve_limit(config, data=data)
    start = time.perf_counter()
    traj = simulate(config, data=data, progress=progress, limit=limit)
    seconds = time.perf_counter() - start
    write_result(trajectory_dataset(traj), out / "trajectory.nc", inputs)
    s = config.schedule
    title = (f"{config.dynamics.mode}, N = {config.run.N}, β = {s.beta}, α = {s.alpha}, "
             f"γ = {s.gamma}, M = {s.batch}")
    save(plot_run(traj, model, title=title), out / "run.png")
    _, keys = replica_streams(config)
    write_json(manifest("run", seconds=seconds, seeds={
        "run.seed": config.run.seed, "init.seed": config.init.seed,
        "replica_keys": [f"{int(k):#018x}" for k in keys]},
        dt=traj.schedule.dt, n_steps=int(traj.schedule.n_total), data=data.name),
        out / "manifest.json")
    return RunOutcome(out, seconds, trajectory=traj, limit=limit)


def _note_long_run(configs: list[Config]) -> None:
    """Say on stderr, in one line, how big a run of more than ``LONG_RUN`` particle-steps is."""
    steps = sum(c.run.N * make_schedule(c).n_total * c.run.seeds for c in configs)
    if steps < LONG_RUN:
        return
    size = 0  # memory of the largest task (engine's estimate)
    for c in configs:
        data = make_data(c)
        model = make_model(c, data)
        size = max(size, memory_bytes(c, data.x.shape[0], model.outputs, model.dim))
    c = configs[0]
    what = (f"{len(configs)} tasks" if len(configs) > 1 else
            f"N = {c.run.N} × {make_schedule(c).n_total} steps × {c.run.seeds} replica(s)")
    each = " a task" if len(configs) > 1 else ""
    mem = f"{size / 1e9:.3g} GB" if size >= 1e9 else f"{size / 1e6:.3g} MB"
    print(f"meanfield: note: a long run: {steps:.3g} particle-steps ({what}), about {mem} "
          f"of memory{each}; Ctrl-C stops it, keeping finished tasks", file=sys.stderr)


def _finished(path: Path, inputs: str) -> bool:
    """Tell whether ``path`` holds the intact result of these inputs (else say why not)."""
    from ..runner import check_task

    _, state = check_task(path, inputs)
    if state not in ("ok", "missing"):
        print(f"meanfield: {path} is {state}; recomputing it", file=sys.stderr)
    return state == "ok"


def run_limit(config: Config, out: str | os.PathLike, *, fresh: bool = False,
              wait: bool = False) -> RunOutcome:
    """Solve ``config``'s limit into ``out`` (``limit.nc``, ``limit.png``), as ``meanfield limit``.

    Inputs are checked before DIR is touched; DIR follows :mod:`meanfield.outdir`.
    """
    from ..io import limit_dataset, manifest, write_json
    from ..outdir import claim
    from ..plotting import plot_limit, save
    from ..runner import task_id, write_result

    out = Path(out)
    check_inputs([config], limit=True, particles=False)
    inputs = task_id(config)
    with claim(out, config, command="limit", fresh=fresh, wait=wait):
        if _finished(out / "limit.nc", inputs):
            return RunOutcome(out, complete_before=True)
        data = make_data(config)
        start = time.perf_counter()
        limit = solve_limit(config, data=data)
        seconds = time.perf_counter() - start
        write_result(limit_dataset(limit), out / "limit.nc", inputs)
        save(plot_limit(limit, make_model(config, data)), out / "limit.png")
        write_json(manifest("limit", seconds=seconds, method=limit.method, data=data.name),
                   out / "manifest.json")
    return RunOutcome(out, seconds, limit=limit)


_COMPLETE = "{}: already complete (same config); nothing to do. Use --fresh to redo."


def describe_run(config: Config, outcome: RunOutcome) -> str:
    """Return what ``meanfield run`` prints about ``outcome``."""
    out = outcome.out
    if outcome.results is not None:
        res = outcome.results
        dims = ", ".join(f"{d} = {res.sizes[d]}" for d in res.attrs["axes_dims"].split(", ")
                         if d)
        return (f"{out}: sweep over {dims or 'nothing'} finished in {outcome.seconds:.1f} s; "
                f"results in {out / 'results.nc'}")
    if outcome.complete_before:
        return _COMPLETE.format(out)
    traj = outcome.trajectory
    text = (f"{out}: {config.run.seeds} replica(s), N = {config.run.N}, "
            f"{traj.schedule.n_total} steps of dt = {traj.schedule.dt:.4g} in "
            f"{outcome.seconds:.2f} s; final risk {traj.risk[:, -1].mean():.4g}")
    if traj.coupling_sq is not None:
        text += (f"\ncoupling error E_N = {np.sqrt(traj.coupling_sq.mean()):.4g} "
                 f"(limit: {outcome.limit.method})")
    return text


def describe_limit(outcome: RunOutcome) -> str:
    """Return what ``meanfield limit`` prints about ``outcome``."""
    if outcome.complete_before:
        return _COMPLETE.format(outcome.out)
    lim = outcome.limit
    return (f"{outcome.out}: limit by {lim.method} to T = {lim.times[-1]:g} in "
            f"{outcome.seconds:.2f} s")
