"""The performance targets, and the files a bench run writes: bench.json, bench.md, manifest.json.

A target is a ratio of seconds per step (comparator time / meanfield time, or one engine
row over another) against a threshold; a target whose rows were not measured (a comparator
not installed, a size not in the plan) is reported with ``pass`` None, not as a failure.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .comparators import CHECK_STEPS, CHECK_TOL, COMPARATORS, LABELS

OTHER_LOAD_MAX = 0.1  # warn when other processes took more of the machine's CPU time


# ---------------------------------------------------------------- targets
def _lookup(rows, workload, impl, N, mode="sgd", dtype="float64", seeds=1):
    for r in rows:
        if (r["workload"], r["impl"], r["N"], r["mode"], r["dtype"], r["seeds"]) == (
                workload, impl, N, mode, dtype, seeds):
            return r["sec_per_step"]
    return None


def targets(result: dict) -> list[dict]:
    """Pass/fail of the performance targets (ratios = comparator time / meanfield time)."""
    rows = result["rows"]
    toy = sorted({r["N"] for r in rows if r["workload"] == "toy"})
    digits = sorted({r["N"] for r in rows if r["workload"] == "digits"})
    R = result["plan"]["replicas"]
    out = []

    def add(name, N, num, den, op, threshold):
        value = None if num is None or den is None else num / den
        ok = None if value is None else (value >= threshold if op == ">=" else
                                         value <= threshold)
        out.append({"target": name, "N": N, "value": value, "op": op,
                    "threshold": threshold, "pass": ok})

    def mf(N, **kw):
        return _lookup(rows, "toy", "meanfield", N, **kw)

    for N in toy:
        add("toy sgd f64: JAX / meanfield", N, _lookup(rows, "toy", "jax", N), mf(N),
            ">=", 1.0)
    for N in (n for n in toy if n <= 1000):
        add("toy sgd f64: paper's stack / meanfield", N,
            _lookup(rows, "toy", "torch_autograd", N), mf(N), ">=", 13.0)
    for N in (n for n in toy if n >= 100_000):
        add("toy sgd f64: torch manual / meanfield", N,
            _lookup(rows, "toy", "torch_manual", N), mf(N), ">=", 1.5)
    for N in toy:
        add("toy sgd f64: NumPy / meanfield", N, _lookup(rows, "toy", "numpy", N), mf(N),
            ">=", 3.0)
    for N in (n for n in toy if n >= 1000):
        add("toy sgd f32: JAX(f64) / meanfield(f32)", N, _lookup(rows, "toy", "jax", N),
            mf(N, dtype="float32"), ">=", 2.0)
    for N in toy:
        add("toy: sde / ode step time", N, mf(N, mode="sde"), mf(N, mode="ode"), "<=", 1.5)
    if 1000 in toy:
        add(f"toy sgd: {R} replicas / 1 replica", 1000, mf(1000, seeds=R), mf(1000),
            "<=", 5.0)
    for N in digits:
        add("digits sgd f64: JAX / meanfield", N, _lookup(rows, "digits", "jax", N),
            _lookup(rows, "digits", "meanfield", N), ">=", 1.2)
    for N in digits:
        add("digits sgd: torch manual / meanfield", N,
            _lookup(rows, "digits", "torch_manual", N),
            _lookup(rows, "digits", "meanfield", N), ">=", 1.0)
    for r in result.get("loaded", []):
        add(f"one CPU busy: {r['workload']} x{r['seeds']}, all threads / 1 thread", r["N"],
            r["sec_all"], r["sec_1"], "<=", 1.0)
    warm = result["jit"].get("warm", {}).get("to_first_step_s")
    if result["jit"]["kind"] != "none":
        out.append({"target": "warm cache: import + first step (s)", "N": 1000, "value": warm,
                    "op": "<", "threshold": 2.0,
                    "pass": None if warm is None else warm < 2.0})
    return out


# ---------------------------------------------------------------- bench.md
def _e(t):
    return "—" if t is None else f"{t:.2e}"


def _ratio(r):
    return f"{r:.1f}×" if r >= 1 else f"{r:.2g}×"


def _cell(t, ref):
    if t is None:
        return "—"
    return f"{t:.2e} ({_ratio(t / ref)})" if ref else f"{t:.2e}"


def report_markdown(result: dict) -> str:
    """Return bench.md: tables of seconds per step, ratios, engine rates, targets, probes."""
    rows, peak, m = result["rows"], result["peak"], result["machine"]
    # the ratios depend on the vector width the kernels compile for: name it
    names = [x.upper().replace("AVX512F", "AVX-512") for x in m.get("simd", ())]
    simd = ", ".join(names) or "no AVX2"  # machine_info looks for avx2, avx512f and fma only
    # the bench's own threads raise the load average: judge by other processes' CPU time
    other = m.get("other_load")
    share = "" if other is None else f"; other processes took {100 * other:.1f}% of the CPU time"
    lines = [f"# meanfield bench ({result['plan']['name']})", "",
             f"{m['cpu_model']} ({simd}), {m['cores']} cores; {m['threads']} threads pinned "
             f"to CPUs {m['cpus_pinned']}; load average {m['loadavg_start'][0]:.2f} → "
             f"{m['loadavg_end'][0]:.2f}. Versions: "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + share + ".", "",
             "Seconds per step (median of (t_long − t_short)/(n_long − n_short)); in "
             "parentheses comparator time / meanfield time (> 1: meanfield is faster).", ""]
    if other is None:  # no /proc/stat: the load average before the run
        busy = m["loadavg_start"][0] > 0.5 * (m["cores"] or 1)
        what = f"load average {m['loadavg_start'][0]:.1f} on {m['cores']} cores"
    else:
        busy = other > OTHER_LOAD_MAX
        what = f"other processes took {100 * other:.0f}% of the CPU time"
    if busy:
        lines += [f"**Warning: {what}.** Other "
                  "processes compete for the pinned CPUs; multithreaded loops (PyTorch's "
                  "spin-waiting OpenMP, OpenBLAS, Numba's prange) can slow down many-fold "
                  "and unevenly. Rerun on an idle machine (or compare with the hidden "
                  "option `--threads 1`) before reading the ratios.", ""]
    impls = [c for c in COMPARATORS if any(r["impl"] == c for r in rows)]
    for workload, title in (("toy", "Toy sgd, float64, one replica (tanh, p = 1, M = 10)"),
                            ("digits", "Digits sgd, float64 (relu, 64 → 10, "
                                       "cross-entropy, M = 100)")):
        sizes = sorted({r["N"] for r in rows if r["workload"] == workload})
        if not sizes:
            continue
        lines += [f"## {title}", "",
                  "| N | meanfield | " + " | ".join(LABELS[c] for c in impls) + " |",
                  "|---:|---:|" + "---:|" * len(impls)]
        for N in sizes:
            ref = _lookup(rows, workload, "meanfield", N)
            lines.append(f"| {N:.0e} | {_e(ref)} | " + " | ".join(
                _cell(_lookup(rows, workload, c, N), ref) for c in impls) + " |")
        lines.append("")
    lines += ["## Engine", "",
              "Particle-steps/s = replicas·N / (s/step); GFLOP/s and GB/s by the FLOP and "
              "byte models below, with % of the measured peak (f64 matmul "
              f"{peak['gflops_float64']:.1f}, f32 matmul {peak['gflops_float32']:.1f} "
              f"GFLOP/s; triad {peak['gbs_triad']:.1f} GB/s). Peak memory: tracemalloc "
              "peak of one short simulate (arrays only).", "",
              "| workload | mode | dtype | replicas | N | s/step | particle-steps/s | "
              "GFLOP/s (% peak) | GB/s (% peak) | peak MiB | first call s |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["impl"] != "meanfield":
            continue
        fpk = peak[f"gflops_{r['dtype']}"]
        mem = r.get("peak_mem_bytes")
        lines.append(
            f"| {r['workload']} | {r['mode']} | {r['dtype']} | {r['seeds']} | {r['N']:.0e} | "
            f"{r['sec_per_step']:.2e} | {r['particle_steps_per_s']:.2e} | "
            f"{r['gflops']:.2f} ({100 * r['gflops'] / fpk:.0f}%) | "
            f"{r['gbs']:.2f} ({100 * r['gbs'] / peak['gbs_triad']:.0f}%) | "
            f"{'—' if mem is None else f'{mem / 2**20:.1f}'} | {r['first_call_s']:.2f} |")
    lines += ["", f"FLOP model: {result['models']['flop']}. Byte model: "
              f"{result['models']['bytes']}.", "", "## Targets", "",
              "| target | N | measured | required | pass |", "|---|---:|---:|---:|:---:|"]
    for t in result["targets"]:
        v = "—" if t["value"] is None else f"{t['value']:.2f}"
        ok = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        lines.append(f"| {t['target']} | {t['N']:.0e} | {v} | {t['op']} {t['threshold']:g} "
                     f"| {ok} |")
    lines += ["", "## Comparator checks", "",
              f"Each loop, fed the engine's initial particles and its own batch draws, runs "
              f"{CHECK_STEPS} sgd steps; max |Δw − Δw_engine| / max |Δw_engine| must be "
              f"≤ {CHECK_TOL:g}.", "", "| workload | N | loop | against | rel. error | agrees |",
              "|---|---:|---|---|---:|:---:|"]
    for c in result["checks"]:
        lines.append(f"| {c['workload']} | {c['N']} | {LABELS[c['impl']]} | "
                     f"{c['reference']} | {c['max_rel_err']:.1e} | "
                     f"{'yes' if c['agrees'] else 'NO'} |")
    loaded = result.get("loaded", [])
    if loaded:
        lines += ["", "## One CPU busy", "",
                  f"Another process spins on CPU {m['cpus_pinned'][-1]}; each workload (sgd, "
                  "float64) is timed on 1 thread, then on all. A ratio above 1: the extra "
                  f"threads slow the run down. OMP_WAIT_POLICY = "
                  f"{m['env'].get('OMP_WAIT_POLICY', 'unset')}.", "",
                  "| workload | replicas | N | 1 thread s/step | all threads s/step | ratio |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in loaded:
            lines.append(f"| {r['workload']} | {r['seeds']} | {r['N']:.0e} | {r['sec_1']:.2e} "
                         f"| {r['sec_all']:.2e} | {r['ratio']:.2f} |")
    jit = result["jit"]
    lines += ["", "## JIT", ""]
    if jit["kind"] == "none":
        lines.append("Not measured in this plan.")
    else:
        lines.append(f"Probe: {jit['workload']}, in a fresh process.")
        lines.append("")
        lines += ["| process | import s | first simulate s | import + first step s | "
                  "process wall s | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]
        for key, label in (("cold", "empty NUMBA_CACHE_DIR (compiles)"),
                           ("prime", "first process, default cache"),
                           ("warm", "second process, warm cache")):
            p = jit.get(key)
            if p is None:
                continue
            if "error" in p:
                lines.append(f"| {label} | error: {p['error']} | | | | |")
                continue
            rss = p.get("maxrss_bytes")
            lines.append(f"| {label} | {p['import_s']:.2f} | {p['first_simulate_s']:.2f} | "
                         f"{p['to_first_step_s']:.2f} | {p['wall_s']:.2f} | "
                         f"{'—' if rss is None else f'{rss / 2**20:.0f}'} |")
        paths = jit.get("paths")
        if paths:
            lines += ["", "Cold compile per code path: each alone in an empty NUMBA_CACHE_DIR "
                      "(tiny runs; compile = first call cold − first call warm).", "",
                      "| code path | first call cold s | warm s | compile s |",
                      "|---|---:|---:|---:|"]
            for p in paths:
                if "error" in p:
                    lines.append(f"| {p['path']} | error: {p['error']} | | |")
                else:
                    lines.append(f"| {p['path']} | {p['cold_s']:.1f} | {p['warm_s']:.2f} | "
                                 f"{p['compile_s']:.1f} |")
    lines += ["", f"Total bench time {result['elapsed_s']:.0f} s; this process's max RSS "
              f"{result['maxrss_bytes'] / 2**20:.0f} MiB.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- files
def _finite(obj):
    """Replace NaN / inf by None so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating) and not math.isfinite(obj):
        return None
    return obj


def write_report(out: Path, result: dict, *, threads: int, cpus: list[int]) -> None:
    """Write bench.json, bench.md and manifest.json of ``result`` into the directory out."""
    from ..io import manifest, write_json

    write_json(_finite(result), out / "bench.json")
    (out / "bench.md").write_text(report_markdown(result))
    write_json(manifest("bench", plan=result["plan"]["name"], threads_pinned=threads,
                        cpus=cpus, timings={"total_s": result["elapsed_s"]}),
               out / "manifest.json")
