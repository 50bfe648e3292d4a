"""Sweeps: parameter grids expanded to tasks, run resumably by one of several executors.

A ``[sweep]`` section maps dotted config keys to lists of values
(``"run.N" = [100, 1000]``); the sweep is their Cartesian product, each point a *task*:
a fully resolved config with a stable id (hash of its TOML and the package version).
Replicas come from ``run.seeds`` inside each task.  Every finished task is written
atomically to ``DIR/tasks/<id>.nc``; a rerun on the same DIR skips finished tasks and
redoes missing, partial or corrupt ones.  Results are gathered into ``DIR/results.nc``
(:func:`meanfield.store.gather`).

Executors: ``serial``; ``processes`` (a process pool of ``workers``); ``dask`` (a
``LocalCluster`` of ``workers`` processes, or the cluster at ``scheduler``).  Each worker
runs with ``cores // workers`` Numba threads; results do not depend on the executor,
the worker count or the thread count (the engine's arithmetic is fixed, its random
numbers counter-based), so every executor gives bitwise-identical arrays.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._version import __version__
from .config import Config, _split_key, to_toml, with_values
from .errors import ConfigError

if TYPE_CHECKING:  # xarray is imported where it is used: `import meanfield` stays quick
    import xarray as xr

EXECUTORS = ("serial", "processes", "dask")
NOT_AXES = ("run.seeds",)  # replicas live inside a task


@dataclass(frozen=True)
class Task:
    """One point of a sweep.

    Attributes
    ----------
    id : str
        Stable id: hash of the resolved config's TOML and the package version.
    index : tuple of int
        Position along each axis.
    values : dict
        Axis key → value at this point.
    config : Config
        The resolved config of the task (no [sweep] section).
    """

    id: str
    index: tuple[int, ...]
    values: dict
    config: Config


def axes(config: Config) -> dict[str, tuple]:
    """Return the sweep axes {dotted key: values} in file order (empty without [sweep])."""
    if not config.sweep:
        return {}
    out = {}
    for key, values in config.sweep.items():
        _split_key(key)  # unknown section / key ⇒ ConfigError naming it
        if key in NOT_AXES:
            msg = f"sweep.{key} cannot be an axis: replicas come from run.seeds in every task"
            raise ConfigError(msg)
        if not isinstance(values, tuple) or not values:
            msg = f'sweep."{key}" must be a non-empty list of values, got {values!r}'
            raise ConfigError(msg)
        if len(set(values)) != len(values):
            msg = f'sweep."{key}" lists a value twice: {list(values)!r}'
            raise ConfigError(msg)
        out[key] = values
    return out


def dim_names(keys) -> dict[str, str]:
    """Return the dimension name of each axis.

    The last part of the key (``run.N`` → ``N``), or the whole key with ``.`` → ``_``
    where two axes would share a name.
    """
    last = [k.split(".")[-1] for k in keys]
    return {k: (n if last.count(n) == 1 else k.replace(".", "_"))
            for k, n in zip(keys, last, strict=True)}


def task_id(config: Config) -> str:
    """Stable id of a resolved task config."""
    text = f"meanfield {__version__}\n{to_toml(config)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand(config: Config) -> list[Task]:
    """Expand a config's [sweep] into tasks (a config without [sweep] is one task)."""
    ax = axes(config)
    base = replace(config, sweep=None)
    tasks = []
    for index in itertools.product(*(range(len(v)) for v in ax.values())):
        values = {k: ax[k][i] for k, i in zip(ax, index, strict=True)}
        try:
            cfg = with_values(base, values)
        except ConfigError as err:
            msg = f"sweep point {values}: {err}"
            raise ConfigError(msg) from None
        tasks.append(Task(task_id(cfg), tuple(index), values, cfg))
    return tasks


# ---------------------------------------------------------------- task functions
def run_task(config: Config, *, progress: bool = False) -> xr.Dataset:
    """Run the task of ``meanfield run``: simulate, return the trajectory dataset."""
    from .engine import simulate
    from .store import trajectory_dataset

    return trajectory_dataset(simulate(config, progress=progress))


def couple_task(config: Config, *, progress: bool = False) -> xr.Dataset:
    """Run the task of ``meanfield run --couple``: solve the limit, simulate coupled twins."""
    from .data import make_data
    from .engine import simulate
    from .limit import solve_limit
    from .store import trajectory_dataset

    data = make_data(config)
    limit = solve_limit(config, data=data)
    return trajectory_dataset(simulate(config, data=data, limit=limit, progress=progress))


def limit_law(limit, si: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Return the limit's law at snapshot ``si`` as weighted points ((P, D), (P,)).

    Empty cells of a grid density are dropped.
    """
    if limit.density is None:
        return limit.points[si], limit.weights[si]
    grids = np.meshgrid(*limit.centres, indexing="ij")
    pts = np.stack([g.ravel() for g in grids], axis=1)
    mass = limit.density[si].ravel() * np.prod([c[1] - c[0] for c in limit.centres])
    keep = mass > 0
    return pts[keep], mass[keep] / mass[keep].sum()


def distance_to_law(pts: np.ndarray, wts: np.ndarray, seed: int):
    """Return x ↦ W2 of the point cloud x (uniform weights) to the weighted law (pts, wts).

    Exact 1-D for D = 1; otherwise sliced W2 with 200 directions seeded by ``seed``,
    against a reference whose projections are sorted once. Cells holding a total mass
    < 1e-9 are dropped first (a grid limit: ~16k cells → ~6k; the W2 changes by less than
    1e-6 here).
    """
    from .wasserstein import compress, projection_set, sliced_reference, w2_1d, w2_sliced

    if pts.shape[1] == 1:
        return lambda x: w2_1d(x, pts, None, wts)
    ref = sliced_reference(*compress(pts, wts, len(pts), rng=np.random.default_rng(0),
                                     drop_mass=1e-9),
                           projections=projection_set(pts.shape[1], 200, seed))
    return lambda x: w2_sliced(x, ref)


LAW_REPLICAS = 16         # replicas that get the law-level and marginal W2 (NaN for others)
EXACT_MAX_N = 5000        # exact (network-simplex) law-level W2 up to this N in D >= 2
EXACT_REPLICAS = 3        # replicas that get it (it costs O(N · EXACT_LIMIT_POINTS) each)
EXACT_FLOOR_REPS = 2      # repetitions of its floor
EXACT_LIMIT_POINTS = 1500  # the limit law is sampled down to this many points for it


_LIMITS: dict[str, object] = {}  # per-process memo of solved limits (see cached_limit)


def cached_limit(config: Config, data=None):
    """Solve ``config``'s limit once per process and reuse it for equal limit problems.

    The key is the config with everything the limit does not depend on reset: the run
    section (N, replicas, seed) always, and for a deterministic limit (β < 1 or mode ode)
    also γ, β, M and the noise settings — the MV ODE is the same for all of them
    (THEORY.md §4). A regime study solves each distinct limit once per worker.
    """
    from .limit import is_deterministic, solve_limit

    reset = {"run.N": None, "run.seeds": None, "run.seed": None}
    if is_deterministic(config):
        reset.update({"schedule.beta": 0.0, "schedule.gamma": None, "schedule.batch": None,
                      "dynamics.mode": "ode", "dynamics.noise": None,
                      "dynamics.sampling": None, "dynamics.dt_factor": None})
    key = to_toml(replace(with_values(config, reset), sweep=None))
    if key not in _LIMITS:
        if len(_LIMITS) >= 8:
            _LIMITS.pop(next(iter(_LIMITS)))
        _LIMITS[key] = solve_limit(config, data=data)
    return _LIMITS[key]


def rate_task(config: Config, *, progress: bool = False, exact: bool = True) -> xr.Dataset:
    """Run one point of ``meanfield rate``: limit, coupled simulation, law-level distances.

    Per replica: the mean over neurons of sup_t |W^{k,N} − W^{k,⋆}|² (``coupling``), the
    RMS output error at T; for the first ``LAW_REPLICAS`` replicas (NaN for the others)
    the law-level W2 of ν^N_T against λ_T (exact 1-D for D = 1,
    sliced W2 with 200 directions seeded by ``limit.seed`` otherwise — the same estimator
    at every N of a study), for D ≥ 2 and N ≤ ``EXACT_MAX_N`` also the exact W2
    (``ot.emd2``, first ``EXACT_REPLICAS`` replicas, NaN for the others and above) against
    λ_T sampled down to ``EXACT_LIMIT_POINTS`` points (:func:`~meanfield.wasserstein.compress`),
    and the exact W2 of each one-coordinate marginal. The floor of each estimator (N
    i.i.d. draws of λ_T against the same representation of λ_T, 8 repetitions; 2 for the
    exact one) rides along, and so do replica 0's particles
    at T (``W_final``). Wall times of the limit, the simulation and the distances go to
    ``attrs["seconds_*"]``, which the runner moves to the manifest.
    """
    import xarray as xr

    from .data import make_data
    from .engine import simulate
    from .wasserstein import compress, w2_1d, w2_exact

    t0 = time.perf_counter()
    data = make_data(config)
    limit = cached_limit(config, data)
    t1 = time.perf_counter()
    traj = simulate(config, data=data, limit=limit, progress=progress)
    t2 = time.perf_counter()
    pts, wts = limit_law(limit)
    R, N, D = config.run.seeds, config.run.N, traj.W.shape[-1]
    law_w2 = distance_to_law(pts, wts, config.limit.seed)
    w2, marg = np.full(R, np.nan), np.full((R, D), np.nan)
    for r in range(min(R, LAW_REPLICAS)):
        w2[r] = law_w2(traj.W[r, -1])
        marg[r] = [w2_1d(traj.W[r, -1, :, q], pts[:, q], None, wts) for q in range(D)]
    rng = np.random.default_rng(np.random.SeedSequence([config.limit.seed, N]))
    draws = [pts[rng.choice(len(pts), size=N, p=wts)] for _ in range(8)]
    floor = np.array([law_w2(x) for x in draws])
    mfloor = np.array([[w2_1d(x[:, q], pts[:, q], None, wts) for q in range(D)]
                       for x in draws])
    w2x = np.full(R, np.nan)
    efloor = np.full(EXACT_FLOOR_REPS, np.nan)
    if exact and D > 1 and N <= EXACT_MAX_N:
        cpts, cwts = compress(pts, wts, EXACT_LIMIT_POINTS, rng=np.random.default_rng(
            np.random.SeedSequence([config.limit.seed, 1])), drop_mass=1e-6)
        for r in range(min(R, EXACT_REPLICAS)):
            w2x[r] = w2_exact(traj.W[r, -1], cpts, None, cwts)
        efloor = np.array([w2_exact(x, cpts, None, cwts) for x in draws[:EXACT_FLOOR_REPS]])
    t3 = time.perf_counter()
    return xr.Dataset({
        "coupling": (("replica",), traj.coupling_sq.mean(axis=1)),
        "output_error": (("replica",), traj.output_error[:, -1]),
        "w2": (("replica",), w2),
        "w2_exact": (("replica",), w2x),
        "w2_marginal": (("replica", "param"), marg),
        "floor": ((), floor.mean()),
        "floor_std": ((), floor.std(ddof=1)),
        "floor_exact": ((), efloor.mean()),
        "floor_exact_std": ((), efloor.std(ddof=1)),
        "floor_marginal": (("param",), mfloor.mean(axis=0)),
        "W_final": (("neuron", "param"), traj.W[0, -1]),
    }, attrs={"limit_method": limit.method, "estimator": "1d" if D == 1 else "sliced",
              "seconds_limit": t1 - t0, "seconds_simulation": t2 - t1,
              "seconds_distances": t3 - t2})


def regime_task(config: Config, *, progress: bool = False) -> xr.Dataset:
    """Run one (cell, N) point of ``meanfield regimes``.

    The variables of :func:`rate_task` (without the exact W2), plus the limit-type study
    (THEORY.md §5): ``regimes.spread_seeds`` one-replica runs from one fixed W_0
    (``init.seed`` = ``run.seed``) that differ only in their noise seeds (``run.seed``);
    ``spread`` (spread_replica,) is each run's squared deviation from the across-run mean,
    summed over parameters, averaged over neurons and scaled by S/(S − 1), so its mean is
    the across-seed variance of W^{k,N}_T.
    """
    from .engine import simulate

    ds = rate_task(config, progress=progress, exact=False)
    t0 = time.perf_counter()
    S = config.regimes.spread_seeds
    # One replica per run: init.seed fixes W_0 (replica 0's initial stream) in every run,
    # run.seed alone changes the noise.
    W = np.stack([simulate(with_values(config, {"init.seed": config.run.seed, "run.seeds": 1,
                                                "run.seed": config.run.seed + 1 + s}),
                           progress=progress).W[0, -1] for s in range(S)])   # (S, N, D)
    dev = ((W - W.mean(axis=0)) ** 2).sum(axis=2).mean(axis=1) * S / (S - 1)
    ds["spread"] = (("spread_replica",), dev)
    ds.attrs["seconds_simulation"] += time.perf_counter() - t0
    return ds


TASKS: dict[str, Callable[..., xr.Dataset]] = {"run": run_task, "couple": couple_task,
                                               "rate": rate_task, "regime": regime_task}


def _execute(kind: str, toml_text: str, threads: int, progress: bool = False
             ) -> tuple[bytes, dict]:
    """Worker entry point: run one task from its TOML; return (netCDF bytes, timing)."""
    import tomllib

    import numba

    from .config import parse_config

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    start = time.perf_counter()
    config = parse_config(tomllib.loads(toml_text))
    ds = TASKS[kind](config, progress=progress)
    ds.attrs["task_id"] = task_id(config)
    timings = {k: ds.attrs.pop(k) for k in list(ds.attrs) if k.startswith("seconds_")}
    info = {"seconds": time.perf_counter() - start, **timings, "host": platform.node(),
            "pid": os.getpid(), "threads": numba.get_num_threads(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds")}
    return bytes(ds.to_netcdf(engine="scipy")), info


# ---------------------------------------------------------------- task files
def task_path(out: Path, task: Task) -> Path:
    """Path of a task's result file."""
    return out / "tasks" / f"{task.id}.nc"


def load_task(path: Path) -> xr.Dataset | None:
    """Open a finished task file fully into memory; None if missing, partial or corrupt."""
    import xarray as xr

    if not path.exists():
        return None
    try:
        with xr.open_dataset(path, engine="scipy") as ds:
            loaded = ds.load()
    except Exception:  # noqa: BLE001 - any failure to read means: redo the task
        return None
    return loaded if loaded.attrs.get("task_id") == path.stem else None


def _write_task(out: Path, task: Task, blob: bytes) -> None:
    path = task_path(out, task)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------- executors
def _run_serial(kind, todo, threads, on_done, progress):
    for task in todo:
        on_done(task, *_execute(kind, to_toml(task.config), threads, progress))


def _run_processes(kind, todo, workers, threads, on_done):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    try:
        futures = {pool.submit(_execute, kind, to_toml(t.config), threads): t for t in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                on_done(futures[fut], *fut.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_dask(kind, todo, workers, threads, scheduler, on_done):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - dask is in the test and dask extras
        msg = "--executor dask needs dask.distributed: pip install 'meanfield[dask]'"
        raise ConfigError(msg) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {client.submit(_execute, kind, to_toml(t.config), threads, pure=False): t
                   for t in todo}
        for fut in as_completed(futures):
            on_done(futures[fut], *fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------- the runner
def run_sweep(config: Config, out: str | os.PathLike, *, kind: str = "run",
              executor: str = "serial", workers: int | None = None,
              scheduler: str | None = None, progress: bool | None = None) -> xr.Dataset:
    """Run every unfinished task of ``config``'s sweep into ``out``; gather results.nc.

    Parameters
    ----------
    config : Config
        A config with a [sweep] section (without one it is a one-task sweep).
    out : path
        DIR, already prepared (config.toml written or checked by the caller).
    kind : str
        Task function name in ``TASKS``.
    executor : {"serial", "processes", "dask"}
    workers : int, optional
        Parallel workers (default: all cores for processes/dask, 1 for serial).
    scheduler : str, optional
        Address of an existing Dask scheduler (dask only).
    progress : bool, optional
        Show a tqdm bar over tasks (default: when stderr is a terminal).

    Returns
    -------
    xarray.Dataset
        The gathered results (also written to ``out/results.nc``).
    """
    from .store import gather, write_netcdf

    tasks = expand(config)
    done = run_tasks(tasks, out, kind=kind, executor=executor, workers=workers,
                     scheduler=scheduler, progress=progress)
    results = gather(tasks, done, axes(config))
    write_netcdf(results, Path(out) / "results.nc")
    return results


def run_tasks(tasks: list[Task], out: str | os.PathLike, *, kind: str = "run",
              executor: str = "serial", workers: int | None = None,
              scheduler: str | None = None, progress: bool | None = None
              ) -> list[xr.Dataset]:
    """Run the unfinished ones of ``tasks`` into ``out/tasks``; return every task's dataset.

    The engine of :func:`run_sweep`, for callers that build their own task list
    (``meanfield regimes``). Writes ``out/manifest.json`` (also when interrupted).
    Parameters as in :func:`run_sweep`.
    """
    from .store import manifest, write_json

    if executor not in EXECUTORS:
        msg = f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}"
        raise ConfigError(msg)
    if workers is not None and workers < 1:
        msg = f"--workers must be an integer >= 1, got {workers}"
        raise ConfigError(msg)
    out = Path(out)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    for stale in (out / "tasks").glob(".*.tmp"):
        stale.unlink()
    status = {}
    for t in tasks:
        path = task_path(out, t)
        if load_task(path) is not None:
            status[t.id] = {"status": "reused"}
        else:
            status[t.id] = {"status": "pending" if not path.exists() else "corrupt, redone"}
    todo = [t for t in tasks if status[t.id]["status"] != "reused"]
    cores = _cores()
    workers = workers or (1 if executor == "serial" else cores)
    threads = max(1, cores // workers) if executor != "serial" else cores
    progress = sys.stderr.isatty() if progress is None else progress
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="task",
                   desc="sweep", file=sys.stderr)

    def on_done(task, blob, info):
        _write_task(out, task, blob)
        status[task.id] = {"status": "done", **info}
        if bar is not None:
            bar.update(1)

    start = time.perf_counter()
    try:
        if executor == "serial":
            _run_serial(kind, todo, threads, on_done, progress)
        elif executor == "processes":
            _run_processes(kind, todo, workers, threads, on_done)
        else:
            _run_dask(kind, todo, workers, threads, scheduler, on_done)
    finally:
        if bar is not None:
            bar.close()
        write_json(manifest(kind, executor=executor, workers=workers, threads=threads,
                            seconds=time.perf_counter() - start,
                            tasks=[{"id": t.id, **{k: _plain(v) for k, v in t.values.items()},
                                    **status[t.id]} for t in tasks]),
                   out / "manifest.json")
    return [load_task(task_path(out, t)) for t in tasks]


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
