"""Timing, machine probes, and the workloads run side by side.

Timing: seconds per step is (t_long − t_short) / (n_long − n_short) for two runs of
different lengths (compile, setup, initial draws and snapshots cancel), the median over a
few repeats. Every loop runs in this process, pinned with ``os.sched_setaffinity`` to the
same CPUs (:func:`pinned`), with the same thread count for Numba, PyTorch and the BLAS.

Peaks are measured: a NumPy BLAS matmul (GFLOP/s) and a multithreaded STREAM triad
a = b + s c (GB/s, 24 bytes per element). The machine's load is judged by the CPU time
other processes took during the run (:func:`other_load`), not by the load average, which
the bench's own threads raise.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np

from .comparators import CHECK_STEPS, LOOPS, IndexPool, check_loops, numpy_sgd
from .report import targets
from .workloads import (
    COST_MODELS,
    GAMMA,
    Plan,
    bytes_per_step,
    engine_memory,
    engine_prepare,
    engine_steps,
    flops_per_step,
    workload_data,
    workload_shape,
)

_ENV_KEYS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS",
             "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
             "NUMBA_CACHE_DIR", "XLA_FLAGS")


# ---------------------------------------------------------------- timing
def _clock(go) -> float:
    t0 = time.perf_counter()
    go()
    return time.perf_counter() - t0


def time_per_step(prepare, budget: float, repeats: int, *, n_max: int = 1_000_000,
                  max_seconds: float = 60.0) -> dict:
    """Seconds per step of a loop, as the difference of a long and a short run.

    Calibration starts at 2 steps and grows the count (2× to 64×, by the time so far)
    until the time *difference* of two consecutive lengths reaches a quarter of the
    budget, so a large fixed cost per call (setup, initial draws, snapshots) cannot pass
    for the cost of steps; a loop whose 2 steps already exceed the budget is measured
    from there.

    Parameters
    ----------
    prepare : callable
        ``prepare(n)`` returns ``go``, a callable that runs n steps from the same start
        (compiling, if needed, happens in ``prepare``, untimed).
    budget : float
        Target seconds spent in the steps of the long run.
    repeats : int
        Number of (short, long) pairs; the median difference is returned. Fewer (at least
        two) when the pairs would take longer than ``max_seconds``.
    n_max : int
        Cap on the number of steps.
    max_seconds : float
        Time allowed for the repeated pairs.

    Returns
    -------
    dict
        ``sec``: median seconds per step; ``min``: the smallest pair value; ``samples``:
        every pair's value; ``n``: [n_short, n_long].
    """
    n = 2
    t = _clock(prepare(n))
    if t >= budget:  # slow steps, or a scheduling spike: look twice
        t = min(t, _clock(prepare(n)))
    if t >= budget:
        est = t / n
    else:
        while True:
            n2 = min(n_max, max(2 * n, min(64 * n, int(n * budget / (2 * max(t, 1e-9))))))
            t2 = _clock(prepare(n2))
            if t2 - t >= budget / 4 and t2 < 2 * budget:  # confirm: not a scheduling spike
                t2 = min(t2, _clock(prepare(n2)))
            if n2 >= n_max or t2 - t >= budget / 4:
                break
            n, t = n2, t2
        est = max(t2 - t, 1e-3 * t2) / (n2 - n)
    n_long = int(min(n_max, max(budget / est, 3 if 10 * est > 4 * budget else 10)))
    n_short = max(1, n_long // 5)
    pair = (n_long + n_short) * est
    reps = max(min(repeats, 2), min(repeats, int(max_seconds / pair)))
    go_short, go_long = prepare(n_short), prepare(n_long)
    samples = []
    for _ in range(reps):
        ts, tl = _clock(go_short), _clock(go_long)
        samples.append((tl - ts) / (n_long - n_short) if tl > ts else tl / n_long)
    return {"sec": float(np.median(samples)), "min": float(min(samples)), "samples": samples,
            "n": [n_short, n_long]}


# ---------------------------------------------------------------- machine probes
def _triad_kernel():
    import numba as nb

    @nb.njit(parallel=True, fastmath=True)
    def triad(a, b, c, s):
        for i in nb.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]
    return triad


def peak_probes(size: int, n: int) -> dict:
    """Measured peaks: BLAS matmul GFLOP/s (order ``size``) and stream GB/s (``n`` doubles)."""
    rng = np.random.default_rng(0)
    out = {}
    for dt in ("float64", "float32"):
        a = rng.standard_normal((size, size)).astype(dt)
        b = rng.standard_normal((size, size)).astype(dt)
        a @ b
        best = min(_clock(lambda a=a, b=b: a @ b) for _ in range(3))
        out[f"gflops_{dt}"] = 2.0 * size ** 3 / best / 1e9
    x, y, z = np.ones(n), np.ones(n), np.ones(n)
    triad = _triad_kernel()
    triad(x, y, z, 3.0)
    best = min(_clock(lambda: triad(x, y, z, 3.0)) for _ in range(5))
    out["gbs_triad"] = 24.0 * n / best / 1e9
    best = min(_clock(lambda: np.copyto(x, y)) for _ in range(5))
    out["gbs_numpy_copy_1thread"] = 16.0 * n / best / 1e9
    out["stream_bytes_per_array"] = 8 * n
    out["matmul_order"] = size
    return out


_PROBE = r"""
import json, time
t0 = time.perf_counter()
import meanfield as mf
t1 = time.perf_counter()
cfg = mf.parse_config({"data": {"n": 64, "input_dim": 1},
                       "schedule": {"gamma": 1e-3, "beta": 1.0, "batch": 10},
                       "dynamics": {"mode": "sgd", "T": 0.01, "snapshots": 2},
                       "run": {"N": 1000}})
mf.simulate(cfg, save_weights=False)
t2 = time.perf_counter()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork + exec
hwm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status")
       if line.startswith("VmHWM:")]
print(json.dumps({"import_s": t1 - t0, "first_simulate_s": t2 - t1,
                  "maxrss_bytes": hwm[0] if hwm else None}))
"""


def _probe_process(env, code: str = _PROBE, args=(), timeout: float = 1800) -> dict:
    """Run ``code`` in a fresh Python with ``env``: its last stdout line (JSON) and wall_s.

    On failure: {"error": [last stderr line], "wall_s": ...}.  The default probe's result
    also gets ``to_first_step_s``.
    """
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, check=False, timeout=timeout)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1:] or ["failed"], "wall_s": wall}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    if code is _PROBE:
        out["to_first_step_s"] = out["import_s"] + out["first_simulate_s"]
    return out


# code paths a user meets, each compiled alone into an empty cache by the cold probe:
# (name, config mapping, couple to the limit)
PATHS = (
    ("toy sgd float64, 1 replica", {"run": {"N": 1000}}, False),
    ("toy sgd float64, 8 replicas", {"run": {"N": 1000, "seeds": 8}}, False),
    ("toy sde float64, 8 replicas", {"run": {"N": 1000, "seeds": 8},
                                     "dynamics": {"mode": "sde"}}, False),
    ("toy sgd float32, 8 replicas", {"run": {"N": 1000, "seeds": 8, "dtype": "float32"}},
     False),
    ("toy sgd float64, block path", {"run": {"N": 16384}}, False),
    ("digits sgd float64, block path", {"run": {"N": 1000}, "data": {"kind": "digits"},
                                        "model": {"activation": "relu",
                                                  "loss": "cross_entropy"},
                                        "schedule": {"batch": 100}}, False),
    ("main job: toy sde, 8 replicas, coupled to the PDE limit",
     {"run": {"N": 1000, "seeds": 8}, "dynamics": {"mode": "sde"},
      "limit": {"method": "pde", "grid": 32}}, True),
)

_PATH_PROBE = r"""
import json, sys, time
import meanfield as mf
from meanfield.limit import solve_limit
spec, couple = json.loads(sys.argv[1]), sys.argv[2] == "1"
base = {"data": {"n": 64, "input_dim": 1}, "schedule": {"gamma": 1e-3, "beta": 1.0, "batch": 10},
        "dynamics": {"T": 0.01, "snapshots": 2}}
for key, section in spec.items():
    base[key] = {**base.get(key, {}), **section}
cfg = mf.parse_config(base)
t0 = time.perf_counter()
limit = solve_limit(cfg) if couple else None
mf.simulate(cfg, limit=limit, save_weights=False)
print(json.dumps({"first_s": time.perf_counter() - t0}))
"""


def compile_probes() -> list[dict]:
    """Cold compile time of each code path in :data:`PATHS`, alone in an empty cache.

    For each path a fresh process runs it on an empty NUMBA_CACHE_DIR, then a second
    process on that cache; compile seconds = first call (cold) − first call (warm).
    """
    out = []
    for name, spec, couple in PATHS:
        args = (json.dumps(spec), "1" if couple else "0")
        with tempfile.TemporaryDirectory(prefix="meanfield-bench-cache-") as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            cold = _probe_process(env, _PATH_PROBE, args, 3600)
            warm = cold if "error" in cold else _probe_process(env, _PATH_PROBE, args, 3600)
        row = {"path": name}
        if "error" in warm:
            row["error"] = warm["error"][0]
        else:
            row.update(cold_s=cold["first_s"], warm_s=warm["first_s"],
                       compile_s=cold["first_s"] - warm["first_s"])
        out.append(row)
    return out


def jit_probes(kind: str) -> dict:
    """First-call compile time (empty cache) and time to first step on a warm cache.

    The probe process imports meanfield and runs 10 sgd steps of the toy model at N = 1000;
    ``to_first_step_s`` is import plus that call, ``wall_s`` the whole process. ``kind``:
    ``cold`` runs it with an empty NUMBA_CACHE_DIR (``cold``: compiles) and again on that
    cache (``warm``), then compiles every code path of :data:`PATHS` alone
    (:func:`compile_probes`, ``paths``); ``warm`` runs it twice on the default cache
    (``prime`` brings the cache up to date with the source, ``warm`` is the measurement);
    ``none`` skips.
    """
    out = {"kind": kind, "workload": "toy sgd float64 N=1000, 10 steps"}
    if kind == "none":
        return out
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="meanfield-bench-cache-") as cache:
        if kind == "cold":
            env["NUMBA_CACHE_DIR"] = cache
            out["cold"] = _probe_process(env)
        else:  # default cache: bring it up to date with the source first
            out["prime"] = _probe_process(env)
        out["warm"] = _probe_process(env)
    if kind == "cold":
        out["paths"] = compile_probes()
    return out


_BUSY = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def loaded_probe(plan: Plan, threads: int, cpus: list[int], data: dict, quiet: bool) -> list:
    """Seconds per step on 1 and on ``threads`` threads with one pinned CPU kept busy.

    Another process spins on the last of ``cpus`` (a CPU this process is pinned to) while
    each workload of ``plan.loaded`` is timed with 1 thread, then with all; the ratio
    all ÷ 1 above 1 means the extra threads slow the run down (they wait for a partner the
    busy process has descheduled).  Returns one dict per workload; none with fewer than 2
    threads.
    """
    import numba

    if threads < 2 or not plan.loaded:
        return []
    busy = subprocess.Popen([sys.executable, "-c", _BUSY, str(cpus[-1])])
    out = []
    try:
        for workload, N, seeds in plan.loaded:
            prepare = engine_prepare(workload, N, "sgd", "float64", seeds, data[workload])
            prepare(2)()
            sec = {}
            for th in (1, threads):
                numba.set_num_threads(th)
                sec[th] = time_per_step(prepare, plan.budget, plan.repeats,
                                        max_seconds=plan.max_seconds)["sec"]
            out.append({"workload": workload, "N": N, "seeds": seeds, "sec_1": sec[1],
                        "sec_all": sec[threads], "ratio": sec[threads] / sec[1]})
            _log(f"  loaded {workload} N={N} x{seeds}: {threads} threads / 1 = "
                 f"{sec[threads] / sec[1]:.2f}", quiet)
    finally:
        numba.set_num_threads(threads)
        busy.kill()
        busy.wait()
    return out


# ---------------------------------------------------------------- machine info
def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds all CPUs spent busy, incl. steal; this process's and its children's).

    From /proc/stat (user, nice, system, irq, softirq, steal) and ``os.times``; None where
    /proc/stat is missing.  The difference of two calls, busy − own, is the CPU time other
    processes (and the hypervisor) took meanwhile: the bench's own threads raise the load
    average, so the load average alone cannot tell an idle machine from a busy one.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        user, nice, system, _, _, irq, softirq, steal = (int(x) for x in fields[1:9])
    except (OSError, ValueError):
        return None
    t = os.times()
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return busy, t.user + t.system + t.children_user + t.children_system


def other_load(start: tuple[float, float] | None, end: tuple[float, float] | None,
               wall: float, cores: int) -> float | None:
    """Share (0..1) of the machine's CPU time that other processes took.

    ``start`` and ``end`` are :func:`cpu_seconds` taken ``wall`` seconds apart.
    """
    if start is None or end is None or wall <= 0:
        return None
    other = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, other) / (wall * max(cores, 1))


def machine_info(threads: int, cpus: list[int]) -> dict:
    """CPU model, core count, pinned CPUs, threads, package versions, BLAS, load."""
    model, flags = None, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model is None:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in ("meanfield", "numpy", "numba", "llvmlite", "torch", "jax", "jaxlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    blas = None
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: d.get(k) for k in ("internal_api", "version", "num_threads")}
                for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        pass
    return {
        "cpu_model": model or platform.processor(),
        "simd": [f for f in ("avx2", "avx512f", "fma") if f" {f}" in flags],
        "cores": os.cpu_count(), "cpus_pinned": cpus, "threads": threads,
        "platform": platform.platform(), "versions": versions, "blas": blas,
        "loadavg_start": list(os.getloadavg()),
        "env": {k: os.environ.get(k) for k in _ENV_KEYS if k in os.environ},
    }


@contextlib.contextmanager
def pinned(threads: int | None, torch: bool):
    """Pin this process to its first ``threads`` allowed CPUs; restore everything on exit.

    Numba, the BLAS and (if ``torch``) PyTorch get the same thread count; JAX, imported
    later, sizes its pool from the pinned affinity.

    Yields
    ------
    (threads, cpus) : (int, list of int)
    """
    import numba

    old_cpus, old_numba = os.sched_getaffinity(0), numba.get_num_threads()
    cpus = sorted(old_cpus)
    threads = min(threads or len(cpus), len(cpus), numba.config.NUMBA_NUM_THREADS)
    cpus = cpus[:threads]
    blas = old_torch = None
    os.sched_setaffinity(0, cpus)
    try:
        numba.set_num_threads(threads)
        try:
            from threadpoolctl import threadpool_limits

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                blas = threadpool_limits(threads, user_api="blas")
        except ImportError:
            pass
        if torch:
            import torch as _torch

            old_torch = _torch.get_num_threads()
            _torch.set_num_threads(threads)
        yield threads, cpus
    finally:
        if old_torch is not None:
            import torch as _torch

            _torch.set_num_threads(old_torch)
        if blas is not None:
            blas.restore_original_limits()
        numba.set_num_threads(old_numba)
        os.sched_setaffinity(0, old_cpus)


# ---------------------------------------------------------------- the run
def _row(workload, impl, N, shape, timing, *, mode="sgd", dtype="float64", seeds=1,
         memory=None, first_call=None):
    sec = timing["sec"]
    row = {"workload": workload, "impl": impl, "mode": mode, "dtype": dtype, "seeds": seeds,
           "N": N, "sec_per_step": sec, "sec_per_step_min": timing["min"],
           "samples": timing["samples"], "steps": timing["n"],
           "particle_steps_per_s": seeds * N / sec, "load1": os.getloadavg()[0]}
    if impl == "meanfield":
        item = np.dtype(dtype).itemsize
        row["gflops"] = flops_per_step(shape, N, mode, seeds) / sec / 1e9
        row["gbs"] = bytes_per_step(shape, N, item, seeds) / sec / 1e9
        row["peak_mem_bytes"] = memory
        row["first_call_s"] = first_call
    return row


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _time_engine(workload, N, mode, dtype, seeds, data, plan, shape, rows, quiet):
    prepare = engine_prepare(workload, N, mode, dtype, seeds, data)
    first = _clock(prepare(2))
    timing = time_per_step(prepare, plan.budget, plan.repeats, n_max=2_000_000,
                           max_seconds=plan.max_seconds)
    mem = engine_memory(workload, N, mode, dtype, seeds, data) if plan.memory else None
    rows.append(_row(workload, "meanfield", N, shape, timing, mode=mode, dtype=dtype,
                     seeds=seeds, memory=mem, first_call=first))
    _log(f"  {workload} N={N} meanfield {mode} {dtype} x{seeds}: "
         f"{timing['sec']:.3g} s/step", quiet)


def _check(loops: dict, workload: str, N: int, data, shape) -> list[dict]:
    """Increment agreement of every comparator with the engine over a few sgd steps."""
    reference = "engine"
    try:
        W0, WK, idx = engine_steps(workload, N, CHECK_STEPS, data)
    except ImportError:  # engine internals moved: fall back to comparing the loops
        reference = "numpy"
        W0 = np.random.default_rng(1).standard_normal((N, shape["D"]))
        idx = IndexPool(data.p, shape["M"], seed=1).take(CHECK_STEPS)
        WK = numpy_sgd(W0, data.x, data.y, idx, GAMMA, shape["act"], shape["loss"])
    return check_loops(loops, W0, WK, idx, data, GAMMA, shape, workload=workload,
                       reference=reference)


def _run_workload(workload, sizes, plan, comps, rows, checks, quiet):
    data = workload_data(workload)
    shape = workload_shape(workload, data)
    loops = {name: LOOPS[name] for name in comps}
    modes = plan.engine_modes if workload == "toy" else ("sgd",)
    pool = IndexPool(data.p, shape["M"])
    n_max = max(1000, min(1_000_000, 10_000_000 // shape["M"]))
    for N in sizes:
        for mode in modes:
            _time_engine(workload, N, mode, "float64", 1, data, plan, shape, rows, quiet)
        if workload == "toy":
            if plan.float32:
                _time_engine(workload, N, "sgd", "float32", 1, data, plan, shape, rows, quiet)
            many = plan.replica_modes if plan.replica_max_N >= N else ()
            for mode in many:
                _time_engine(workload, N, mode, "float64", plan.replicas, data, plan, shape,
                             rows, quiet)
        W0 = np.random.default_rng(N).standard_normal((N, shape["D"]))
        for name, cls in loops.items():
            loop = cls(W0, data.x, data.y, GAMMA, shape)
            timing = time_per_step(lambda n, loop=loop: loop.prepare(pool.take(n)),
                                   plan.budget, plan.repeats, n_max=n_max,
                                   max_seconds=plan.max_seconds)
            rows.append(_row(workload, name, N, shape, timing))
            _log(f"  {workload} N={N} {name}: {timing['sec']:.3g} s/step", quiet)
            del loop
    if loops:
        checks += _check(loops, workload, 1000 if workload == "toy" else 100, data, shape)
    return shape


def measure(plan: Plan, comps: list[str], threads: int, cpus: list[int],
            quiet: bool) -> dict:
    """Run every measurement of ``plan`` in this (pinned) process; return bench.json's dict.

    Parameters
    ----------
    plan : Plan
        What to measure.
    comps : list of str
        The comparators to run (importable ones, :func:`comparators.available_comparators`).
    threads : int
        Threads every loop uses.
    cpus : list of int
        The CPUs this process is pinned to.
    quiet : bool
        No progress lines on stderr.

    Returns
    -------
    dict
        The content of bench.json (before non-finite numbers become null).
    """
    start = time.perf_counter()
    cpu0 = cpu_seconds()
    info = machine_info(threads, cpus)
    _log(f"meanfield bench ({plan.name}): {threads} threads on CPUs {cpus}; "
         f"comparators: {', '.join(comps) or 'none'}", quiet)
    peak = peak_probes(plan.probe_size, plan.stream_size)
    _log(f"  peak: {peak['gflops_float64']:.1f} GFLOP/s (f64 matmul), "
         f"{peak['gbs_triad']:.1f} GB/s (triad)", quiet)
    rows: list[dict] = []
    checks: list[dict] = []
    shapes = {}
    for workload, sizes in (("toy", plan.toy_sizes), ("digits", plan.digits_sizes)):
        if sizes:
            shapes[workload] = _run_workload(workload, sizes, plan, comps, rows, checks,
                                             quiet)
    loaded = loaded_probe(plan, threads, cpus, {w: workload_data(w) for w, _, _ in plan.loaded},
                          quiet)
    jit = jit_probes(plan.jit_probe)
    result = {
        "plan": asdict(plan),
        "machine": {**info, "loadavg_end": list(os.getloadavg()),
                    "other_load": other_load(cpu0, cpu_seconds(), time.perf_counter() - start,
                                             info["cores"] or 1)},
        "peak": peak,
        "models": dict(COST_MODELS),
        "shapes": shapes,
        "gamma": GAMMA,
        "rows": rows,
        "checks": checks,
        "jit": jit,
        "loaded": loaded,
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "elapsed_s": time.perf_counter() - start,
    }
    result["targets"] = targets(result)
    return result
