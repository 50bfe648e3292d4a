"""The runner: parameter grids expanded to tasks, run resumably by one of several executors.

A ``[sweep]`` section maps dotted config keys to lists of values
(``"run.N" = [100, 1000]``); the sweep is their Cartesian product, each point a *task*:
a fully resolved config with a stable id (:func:`task_id`: the parsed config, its data
files' contents and ``RESULTS_FORMAT``).
Replicas come from ``run.seeds`` inside each task.  Every finished task is written
atomically to ``DIR/tasks/<id>.nc``; a rerun on the same DIR skips finished tasks and
redoes missing, partial or corrupt ones.  Results are gathered into ``DIR/results.nc``
(:func:`meanfield.io.gather`).

What a task computes is the caller's: a *task function* ``task(config, *, progress=False)
-> xarray.Dataset``, a module-level function (or a ``functools.partial`` of one with
picklable arguments) so that it reaches process-pool and Dask workers by reference.
Each study defines its own (``meanfield.studies``); the runner knows nothing of them.
The dataset's ``seconds_*`` attributes go to the manifest, never into the task file.

Executors: ``serial``; ``processes`` (a process pool of ``workers``); ``dask`` (a
``LocalCluster`` of ``workers`` processes, or the cluster at ``scheduler``).  Each worker
runs with ``cores // workers`` Numba threads; results do not depend on the executor,
the worker count or the thread count (the engine's arithmetic is fixed, its random
numbers counter-based), so every executor gives bitwise-identical arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
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

from ._version import RESULTS_FORMAT, __version__
from .config import Config, _split_key, to_dict, to_toml, with_values
from .data import data_digest
from .errors import ConfigError, EnvironmentFailure

if TYPE_CHECKING:  # xarray is imported where it is used: `import meanfield` stays quick
    import xarray as xr

TaskFunction = Callable[..., "xr.Dataset"]  # task(config, *, progress=False) -> Dataset

EXECUTORS = ("serial", "processes", "dask")
NOT_AXES = ("run.seeds",)  # replicas live inside a task


@dataclass(frozen=True)
class Task:
    """One point of a sweep.

    Attributes
    ----------
    id : str
        Stable id (:func:`task_id`): hash of the parsed config, the contents of the data
        files it reads and ``RESULTS_FORMAT``.
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


def task_id(config: Config) -> str:
    """Stable id of a resolved task config: what determines its bits, hashed.

    The sha256 of canonical JSON holding the parsed config (:func:`~meanfield.config.to_dict`,
    keys sorted: formatting and key order in the TOML do not matter), the content hash of
    every data file it reads (``meanfield.data.data_digest``) and ``RESULTS_FORMAT``
    (bumped with any engine change that moves bits).  The package version is not in it:
    a release that moves no bits reuses finished tasks.
    """
    spec = {"config": to_dict(config), "data": data_digest(config),
            "results_format": RESULTS_FORMAT}
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def points(config: Config) -> list[tuple[tuple[int, ...], dict, Config]]:
    """Return the sweep's points as (index, values, resolved config), validated.

    The configs of :func:`expand` without their ids (which hash the data files): what a
    command checks before it reads any data file in full.
    """
    ax = axes(config)
    base = replace(config, sweep=None)
    out = []
    for index in itertools.product(*(range(len(v)) for v in ax.values())):
        values = {k: ax[k][i] for k, i in zip(ax, index, strict=True)}
        try:
            cfg = with_values(base, values)
        except ConfigError as err:
            msg = f"sweep point {values}: {err}"
            raise ConfigError(msg) from None
        out.append((tuple(index), values, cfg))
    return out


def expand(config: Config) -> list[Task]:
    """Expand a config's [sweep] into tasks (a config without [sweep] is one task)."""
    return [Task(task_id(cfg), index, values, cfg) for index, values, cfg in points(config)]


# ---------------------------------------------------------------- running one task
def _execute(task: TaskFunction, toml_text: str, threads: int, progress: bool = False
             ) -> tuple[bytes, dict]:
    """Worker entry point: run ``task`` on a config given as TOML; return (netCDF, timing)."""
    import tomllib

    import numba

    from .config import parse_config

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    start = time.perf_counter()
    config = parse_config(tomllib.loads(toml_text))
    ds = task(config, progress=progress)
    timings = {k: ds.attrs.pop(k) for k in list(ds.attrs) if k.startswith("seconds_")}
    info = {"seconds": time.perf_counter() - start, **timings, "host": platform.node(),
            "pid": os.getpid(), "threads": numba.get_num_threads(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds")}
    return bytes(ds.to_netcdf(engine="scipy")), info


# ---------------------------------------------------------------- task files
def task_path(out: Path, task: Task) -> Path:
    """Path of a task's result file."""
    return out / "tasks" / f"{task.id}.nc"


def check_task(path: Path, expected: str | None = None) -> tuple[xr.Dataset | None, str]:
    """Open a task file fully into memory and check it: (dataset or None, status).

    Status ``"ok"``; ``"missing"``; ``"unreadable"`` (partial or not netCDF);
    ``"checksum mismatch"`` (it parses, but its arrays are not the ones written);
    ``"from other inputs"`` (its id is not ``expected``, by default the file's stem: the
    config, a data file or ``RESULTS_FORMAT`` changed since it was written).
    """
    import xarray as xr

    from .io import dataset_checksum

    if not path.exists():
        return None, "missing"
    try:
        with xr.open_dataset(path, engine="scipy") as ds:
            loaded = ds.load()
    except Exception:  # noqa: BLE001 - any failure to read means: redo the task
        return None, "unreadable"
    if loaded.attrs.get("checksum") != dataset_checksum(loaded):
        return None, "checksum mismatch"
    if loaded.attrs.get("task_id") != (path.stem if expected is None else expected):
        return None, "from other inputs"
    return loaded, "ok"


def load_task(path: Path) -> xr.Dataset | None:
    """Open a finished task file fully into memory; None if missing, partial or corrupt."""
    return check_task(path)[0]


def stamp(ds: xr.Dataset, id_: str) -> xr.Dataset:
    """Return ``ds`` with its inputs' id, its provenance and the checksum of its contents.

    :func:`check_task` verifies both on reuse.
    """
    from .io import dataset_checksum, git_commit

    ds = ds.copy()
    ds.attrs.update(task_id=id_, results_format=RESULTS_FORMAT,
                    meanfield_version=__version__, git_commit=git_commit() or "unknown")
    ds.attrs["checksum"] = dataset_checksum(ds)
    return ds


def _stamp(task: Task, blob: bytes) -> xr.Dataset:
    """Return the worker's dataset (netCDF bytes) read back and stamped (:func:`stamp`)."""
    import io

    import xarray as xr

    with xr.open_dataset(io.BytesIO(blob), engine="scipy") as ds:
        ds = ds.load()
    return stamp(ds, task.id)


def write_result(ds: xr.Dataset, path: Path, id_: str) -> None:
    """Write a single result (trajectory.nc, limit.nc) stamped with its inputs' id."""
    from .io import write_netcdf

    write_netcdf(stamp(ds, id_), path)


def _write_task(out: Path, task: Task, blob: bytes) -> None:
    from .io import write_atomic

    write_atomic(task_path(out, task), bytes(_stamp(task, blob).to_netcdf(engine="scipy")))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------- executors
def _run_serial(fn, todo, threads, on_done, progress):
    for task in todo:
        on_done(task, *_execute(fn, to_toml(task.config), threads, progress))


class _WorkerTask:
    """The task function, sent once to each worker process (its state lives with the worker).

    A task such as ``partial(rate_task, limits=LimitCache())`` carries a cache; sent with
    every task, each task would get an empty copy.  The pool's initializer installs one
    copy per worker instead, and each task calls that copy.  Each worker notes the task it
    runs in a file named by its pid in ``marks``, so that the parent can tell which task
    a worker that died was running.
    """

    fn: TaskFunction | None = None
    marks: str | None = None

    @classmethod
    def install(cls, fn: TaskFunction, parent: int | None = None,
                marks: str | None = None) -> None:
        """Pool initializer: keep this worker's copy of the task function.

        The worker leaves Ctrl-C to the parent (which stops it), and dies with the parent
        (``_die_with_parent``).
        """
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if parent is not None:
            _die_with_parent(parent)
        cls.fn, cls.marks = fn, marks

    @classmethod
    def execute(cls, toml_text: str, threads: int, key: str = "") -> tuple[bytes, dict]:
        """Run the installed task function on one config (``_execute``)."""
        mark = Path(cls.marks, str(os.getpid())) if cls.marks else None
        if mark is not None:
            mark.write_text(key)
        result = _execute(cls.fn, toml_text, threads)
        if mark is not None:
            mark.write_text("")
        return result


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere a check)."""
    import contextlib
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # no prctl in this libc
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _sigint_blocked():
    """Context: SIGINT held back in this thread (delivered when it ends; not on Windows).

    Processes started inside inherit the mask, so Ctrl-C to the process group never
    reaches a worker, not even while it starts up.
    """
    import contextlib
    import signal

    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def blocked():
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    return blocked()


def _describe(task: Task) -> str:
    values = ", ".join(f"{k} = {_plain(v)}" for k, v in task.values.items())
    return f"the task {values}" if values else "the task"


def _exit_code(code: int | None) -> str:
    import signal

    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"{name}, out of memory?" if name == "SIGKILL" else name


def _run_processes(fn, todo, workers, threads, on_done):
    """Run ``todo`` on a pool of worker processes; a task whose worker dies runs once more.

    When a worker dies (killed, out of memory, crashed), the pool breaks: the tasks not
    finished go to a fresh pool.  A task that was running in a dying worker twice is
    given up; the others run on, then ``EnvironmentFailure`` names it.  On any other exit but
    success the workers are killed at once; they also die with this process, and ignore
    Ctrl-C (this process handles it).
    """
    import shutil
    import tempfile

    marks = Path(tempfile.mkdtemp(prefix="meanfield-workers-"))
    runs = dict.fromkeys((t.id for t in todo), 0)  # task id -> pools it was sent to
    finished, strikes, blind, failed = set(), {}, [], []

    def done(t, blob, info):
        on_done(t, blob, {**info, "runs": runs[t.id]} if runs[t.id] > 1 else info)
        finished.add(t.id)

    remaining = list(todo)
    try:
        while remaining:
            for t in remaining:
                runs[t.id] += 1
            procs = _pool_round(fn, remaining, workers, threads, str(marks), done)
            remaining = [t for t in remaining if t.id not in finished]
            if procs is not None:  # the pool broke
                failed += _blame(remaining, procs, marks, strikes, blind)
                given_up = {t.id for t, _ in failed}
                remaining = [t for t in remaining if t.id not in given_up]
    finally:
        shutil.rmtree(marks, ignore_errors=True)
    if failed:
        (task, code), more = failed[0], len(failed) - 1
        msg = (f"{_describe(task)} killed its worker process twice ({_exit_code(code)})"
               + (f", and {more} other task(s) did too" if more else "")
               + "; run it alone with --executor serial to see why, or give it more memory")
        raise EnvironmentFailure(msg)


def _pool_round(fn, tasks, workers, threads, marks, done):
    """Run ``tasks`` on a fresh pool until all are done (return None) or it breaks.

    On a break return the pool's {pid: Process}, every worker stopped, after passing on
    the results that had arrived.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    with _sigint_blocked():
        pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                                   mp_context=mp.get_context("spawn"),
                                   initializer=_WorkerTask.install,
                                   initargs=(fn, os.getpid(), marks))
        futures = {pool.submit(_WorkerTask.execute, to_toml(t.config), threads, t.id): t
                   for t in tasks}
    procs = dict(getattr(pool, "_processes", None) or {})  # pid -> Process (started by submit)
    broken = False
    try:
        pending = set(futures)
        while pending and not broken:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                if isinstance(fut.exception(), BrokenProcessPool):
                    broken = True
                else:
                    done(futures[fut], *fut.result())
    except BaseException:  # Ctrl-C, SIGTERM, a task's error: stop every worker now
        for proc in procs.values():
            proc.kill()
        for proc in procs.values():
            proc.join(1)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)  # after a break, the pool stops (terminates) every worker
    if not broken:
        return None
    for fut in pending:  # results that arrived with the break
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            done(futures[fut], *fut.result())
    return procs


def _blame(remaining, procs, marks, strikes, blind) -> list:
    """After a broken pool: count a strike against each task a dead worker was running.

    Workers the pool stopped itself end by SIGTERM; one that died first ended otherwise
    (SIGKILL, a crash, an exit).  Return [(task, exit code)] of the tasks at two strikes;
    two deaths no task can be blamed for stop the run (``EnvironmentFailure``).
    """
    import signal

    by_id = {t.id: t for t in remaining}
    out, blamed = [], False
    for pid, proc in procs.items():
        mark = marks / str(pid)
        key = mark.read_text() if mark.exists() else ""
        if proc.exitcode == -signal.SIGTERM or key not in by_id:
            continue
        blamed = True
        strikes[key] = strikes.get(key, 0) + 1
        if strikes[key] >= 2:
            out.append((by_id[key], proc.exitcode))
    if not blamed:
        blind.append([p.exitcode for p in procs.values()])
        if len(blind) >= 2:
            codes = ", ".join(sorted({_exit_code(c) for b in blind for c in b
                                      if c != -signal.SIGTERM} or {"SIGTERM"}))
            msg = (f"worker processes keep dying ({codes}); run with --executor serial to "
                   "see why")
            raise EnvironmentFailure(msg)
    return out


SCHEDULER_TIMEOUT = 10  # seconds to reach the Dask scheduler at --scheduler before giving up


def _run_dask(fn, todo, workers, threads, scheduler, on_done):
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - dask is in the test and dask extras
        msg = "--executor dask needs dask.distributed: pip install 'meanfield[dask]'"
        raise ConfigError(msg) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except OSError as err:  # TimeoutError included: refused, unreachable, no answer
            msg = (f"cannot reach the Dask scheduler at {scheduler} within "
                   f"{SCHEDULER_TIMEOUT} s ({type(err).__name__}); start it (dask scheduler) "
                   "or fix --scheduler, or use --executor processes")
            raise EnvironmentFailure(msg) from None
    import logging

    log, level = logging.getLogger("distributed"), None
    try:
        # one copy of the task function per worker, reused by its tasks (see _WorkerTask)
        [shared] = client.scatter([fn], broadcast=True, hash=False)
        futures = {client.submit(_execute, shared, to_toml(t.config), threads, pure=False): t
                   for t in todo}
        pending = set(futures)
        while pending:  # polled: a Ctrl-C inside Dask's condition waits breaks their locks
            finished = {f for f in pending if f.done()}
            pending -= finished
            for fut in finished:
                on_done(futures[fut], *fut.result())
            if pending and not finished:
                time.sleep(0.05)
    except BaseException:
        if cluster is not None:  # Ctrl-C, SIGTERM, a task's error: stop the local workers now
            level = log.level
            log.setLevel(logging.CRITICAL)  # the nannies would log each killed worker
            _kill_local_workers(cluster)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if level is not None:
            log.setLevel(level)


def _kill_local_workers(cluster) -> None:
    """Kill a LocalCluster's worker processes at once (their running tasks cannot stop).

    Closing would wait for them, then the nannies kill workers still busy after 4 s.
    """
    import signal

    for nanny in list(getattr(cluster, "workers", {}).values()):
        pid = getattr(getattr(nanny, "process", None), "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- the runner
def check_executor(executor: str = "serial", workers: int | None = None,
                   scheduler: str | None = None) -> None:
    """Raise ConfigError unless the executor settings make sense (before DIR is touched)."""
    if executor not in EXECUTORS:
        msg = f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}"
        raise ConfigError(msg)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        msg = f"--workers must be an integer >= 1, got {workers!r}"
        raise ConfigError(msg)
    if scheduler is not None and executor != "dask":
        msg = f"--scheduler {scheduler} needs --executor dask, got --executor {executor}"
        raise ConfigError(msg)
    if scheduler is not None:
        _reach(scheduler)


def _reach(scheduler: str, timeout: float = 5.0) -> None:
    """Raise unless a Dask scheduler address is well formed and answers a TCP connection."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host, port = None, None
    if url.scheme not in ("tcp", "tls") or not host or not port:
        msg = f"--scheduler must look like tcp://HOST:PORT, got {scheduler!r}"
        raise ConfigError(msg)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        msg = (f"cannot reach the Dask scheduler at {scheduler} ({err.strerror or err}); "
               "start it, check the address, or use --executor processes")
        raise EnvironmentFailure(msg) from None


def run_sweep(config: Config, out: str | os.PathLike, task: TaskFunction, *,
              command: str = "sweep", executor: str = "serial", workers: int | None = None,
              scheduler: str | None = None, progress: bool | None = None) -> xr.Dataset:
    """Run every unfinished task of ``config``'s sweep into ``out``; gather results.nc.

    Parameters
    ----------
    config : Config
        A config with a [sweep] section (without one it is a one-task sweep).
    out : path
        DIR, already prepared (config.toml written or checked by the caller).
    task : callable
        The task function, ``task(config, *, progress=False) -> xarray.Dataset``:
        module-level (or a ``functools.partial`` of one) for the processes and dask
        executors.
    command : str
        Name recorded as the manifest's ``command``.
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
    from .io import gather, write_netcdf

    tasks = expand(config)
    done = run_tasks(tasks, out, task, command=command, executor=executor, workers=workers,
                     scheduler=scheduler, progress=progress)
    results = gather(tasks, done, axes(config))
    write_netcdf(results, Path(out) / "results.nc")
    return results


def run_tasks(tasks: list[Task], out: str | os.PathLike, task: TaskFunction, *,
              command: str = "sweep", executor: str = "serial", workers: int | None = None,
              scheduler: str | None = None, progress: bool | None = None
              ) -> list[xr.Dataset]:
    """Run the unfinished ones of ``tasks`` into ``out/tasks``; return every task's dataset.

    The engine of :func:`run_sweep`, for callers that build their own task list
    (:func:`meanfield.run_regimes`). Writes ``out/manifest.json`` (also
    when interrupted). Parameters as in :func:`run_sweep`.
    """
    from .io import manifest, write_json

    check_executor(executor, workers, scheduler)
    out = Path(out)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    for stale in (out / "tasks").glob(".*.tmp"):
        stale.unlink()
    status = {}
    for t in tasks:
        _, state = check_task(task_path(out, t))
        status[t.id] = {"status": {"ok": "reused", "missing": "pending"}.get(
            state, f"{state}, redone")}
        if state not in ("ok", "missing"):
            where = ", ".join(f"{k} = {v!r}" for k, v in t.values.items()) or "the run"
            print(f"meanfield: task {t.id} ({where}): its file is {state}; recomputing it",
                  file=sys.stderr)
    todo = [t for t in tasks if status[t.id]["status"] != "reused"]
    cores = _cores()
    workers = workers or (1 if executor == "serial" else cores)
    threads = max(1, cores // workers) if executor != "serial" else cores
    progress = sys.stderr.isatty() if progress is None else progress
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="task",
                   desc="sweep", file=sys.stderr)

    def on_done(t, blob, info):
        _write_task(out, t, blob)
        before = status[t.id]["status"]  # "pending", or why a file was redone
        status[t.id] = {"status": "done" if before == "pending" else before, **info}
        if bar is not None:
            bar.update(1)

    start = time.perf_counter()
    try:
        if executor == "serial":
            _run_serial(task, todo, threads, on_done, progress)
        elif executor == "processes":
            _run_processes(task, todo, workers, threads, on_done)
        else:
            _run_dask(task, todo, workers, threads, scheduler, on_done)
    finally:
        if bar is not None:
            bar.close()
        write_json(manifest(command, executor=executor, workers=workers, threads=threads,
                            seconds=time.perf_counter() - start,
                            tasks=[{"id": t.id, **{k: _plain(v) for k, v in t.values.items()},
                                    **status[t.id]} for t in tasks]),
                   out / "manifest.json")
    return [load_task(task_path(out, t)) for t in tasks]


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
