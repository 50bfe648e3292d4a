"""`meanfield bench`: an end-to-end tiny run, and the NumPy comparator against the engine.

The comparator check feeds the NumPy loop the engine's own initial particles and batch
draws (``batch_draws`` with the replica key), so both must produce the same weights; the
loop's single step is also checked against the NumPy oracle of conftest.py.
"""

import dataclasses
import json
import math
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

from meanfield import bench
from meanfield.bench.workloads import workload_config
from meanfield.cli import main
from meanfield.engine import batch_draws, simulate
from meanfield.init import replica_streams


def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, float | int) and not isinstance(obj, bool):
        yield obj


def test_bench_tiny_end_to_end(tmp_path):
    import numba

    cpus, threads = os.sched_getaffinity(0), numba.get_num_threads()
    out = tmp_path / "bench"
    out.mkdir()
    (out / "bench.md").write_text("stale\n")  # bench results just overwrite
    assert main(["bench", "--tiny", "--out", str(out), "--threads", "1"]) == 0
    assert os.sched_getaffinity(0) == cpus  # pinning and thread counts are restored
    assert numba.get_num_threads() == threads
    res = json.loads((out / "bench.json").read_text())
    assert {"plan", "machine", "peak", "models", "rows", "checks", "targets", "jit"} <= set(res)
    assert res["plan"]["name"] == "tiny"
    m = res["machine"]
    assert m["threads"] == 1
    assert len(m["cpus_pinned"]) == 1
    assert m["cores"] >= 1
    assert m["versions"]["numpy"]
    for key in ("gflops_float64", "gflops_float32", "gbs_triad"):
        assert res["peak"][key] > 0
    assert all(math.isfinite(x) for x in _finite_numbers(res))
    impls = {(r["workload"], r["impl"], r["mode"]) for r in res["rows"]}
    assert {("toy", "meanfield", "sgd"), ("toy", "meanfield", "ode"), ("toy", "numpy", "sgd"),
            ("digits", "meanfield", "sgd"), ("digits", "numpy", "sgd")} <= impls
    for r in res["rows"]:
        assert r["sec_per_step"] > 0
        assert r["particle_steps_per_s"] > 0
        if r["impl"] == "meanfield":
            assert r["gflops"] > 0
            assert r["gbs"] > 0
            assert r["peak_mem_bytes"] > 0
    assert res["checks"]
    assert all(c["agrees"] for c in res["checks"])
    assert any(t["target"].startswith("toy sgd f64: NumPy") and t["value"] > 0
               for t in res["targets"])
    md = (out / "bench.md").read_text()
    assert "| N | meanfield | NumPy |" in md
    assert "stale" not in md
    assert "## Targets" in md
    header = md.splitlines()[2]  # the machine line names the vector width the ratios depend on
    assert ("AVX2" in header) == ("avx2" in m["simd"])
    assert ("AVX-512" in header) == ("avx512f" in m["simd"])
    assert 0 <= m["other_load"] <= 1  # Linux: /proc/stat is there
    assert "other processes took" in header
    assert ("**Warning" in md) == (m["other_load"] > bench.OTHER_LOAD_MAX)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "bench"
    assert manifest["plan"] == "tiny"


def test_bench_bad_arguments_are_argparse_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--out", str(tmp_path), "--fast"])
    assert exc.value.code == 2
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["bench", "--tiny", "--out", str(f)]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize(("workload", "N"), [("toy", 37), ("digits", 23)])
def test_numpy_comparator_matches_engine_sgd(workload, N, ref):
    K = 6
    cfg = workload_config(workload, N, K, snapshots=K + 1)
    traj = simulate(cfg, save_weights=True)
    W = traj.W[0]  # (K + 1, N, D): every step
    from meanfield.data import make_data

    data = make_data(cfg)
    _, keys = replica_streams(cfg)
    M = cfg.schedule.batch
    idx = np.stack([batch_draws(int(keys[0]), n, M, data.p) for n in range(K)])
    act, loss = cfg.model.activation, cfg.model.loss
    got = bench.numpy_sgd(W[0], data.x, data.y, idx, bench.GAMMA, act, loss)
    scale = np.max(np.abs(W[-1] - W[0]))
    assert scale > 0
    np.testing.assert_allclose(got - W[0], W[-1] - W[0], rtol=0, atol=1e-9 * scale)
    # one loop step against the independent NumPy oracle of conftest.py
    spec = SimpleNamespace(layers="both", act=act, loss=loss, C=data.y.shape[1], l2=0.0)
    one = bench.numpy_sgd(W[2], data.x, data.y, idx[2:3], bench.GAMMA, act, loss)
    oracle = ref.sgd_step(W[2], 2, idx[2], data, spec, bench.GAMMA, 0.0)
    np.testing.assert_allclose(one, oracle, rtol=1e-12, atol=1e-14)


def test_targets_pass_fail_and_missing_comparators():
    def row(workload, impl, N, sec, mode="sgd", dtype="float64", seeds=1):
        return {"workload": workload, "impl": impl, "N": N, "mode": mode, "dtype": dtype,
                "seeds": seeds, "sec_per_step": sec}

    rows = [row("toy", "meanfield", 1000, 1e-5), row("toy", "numpy", 1000, 4e-5),
            row("toy", "jax", 1000, 0.5e-5), row("toy", "meanfield", 1000, 1e-5, mode="sde"),
            row("toy", "meanfield", 1000, 1e-5, mode="ode"),
            row("toy", "meanfield", 1000, 6e-5, seeds=8), row("digits", "meanfield", 100, 1e-4),
            row("digits", "jax", 100, 1.1e-4)]
    res = {"rows": rows, "plan": {"replicas": 8}, "jit": {"kind": "warm",
                                                          "warm": {"to_first_step_s": 1.0}}}
    got = {t["target"]: t for t in bench.targets(res)}
    assert got["toy sgd f64: NumPy / meanfield"]["pass"] is True
    assert got["toy sgd f64: NumPy / meanfield"]["value"] == pytest.approx(4.0)
    assert got["toy sgd f64: JAX / meanfield"]["pass"] is False
    assert got["toy sgd f64: paper's stack / meanfield"]["pass"] is None
    assert got["toy: sde / ode step time"]["pass"] is True
    assert got["toy sgd: 8 replicas / 1 replica"]["pass"] is False
    assert got["warm cache: import + first step (s)"]["pass"] is True
    assert got["digits sgd f64: JAX / meanfield"]["value"] == pytest.approx(1.1)
    assert got["digits sgd f64: JAX / meanfield"]["pass"] is False  # 1.2 required
    assert got["digits sgd: torch manual / meanfield"]["pass"] is None


def test_import_leaves_xarray_and_scipy_spatial_unloaded():
    # the warm-cache time to a first step (a bench target) is mostly imports: xarray and
    # scipy.spatial are imported where they are used, not by `import meanfield`
    import subprocess
    import sys

    code = ("import sys, meanfield; print(sorted(m for m in "
            "('xarray', 'scipy.spatial', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_other_load_counts_only_other_processes_cpu_time():
    # arithmetic: 3 busy CPU-seconds over 2 s on 2 cores, 1.6 of them this process's
    assert bench.other_load((10.0, 1.0), (13.0, 2.6), 2.0, 2) == pytest.approx(0.35)
    assert bench.other_load((10.0, 1.0), (10.5, 2.0), 1.0, 2) == 0.0  # tick rounding
    assert bench.other_load(None, (1.0, 1.0), 1.0, 2) is None
    # this process's own spinning is counted as its own, and inside the machine's busy time
    a = bench.cpu_seconds()
    t0 = time.process_time()
    while time.process_time() - t0 < 0.5:
        pass
    b = bench.cpu_seconds()
    own = b[1] - a[1]
    assert own >= 0.45
    assert b[0] - a[0] >= own - 0.05  # both from 100 Hz tick accounting


def test_loaded_targets_and_markdown():
    # all threads / 1 thread with one CPU busy: at most 1 passes
    res = {"rows": [], "plan": {"replicas": 8}, "jit": {"kind": "none"},
           "loaded": [{"workload": "digits", "N": 1000, "seeds": 1, "sec_1": 2e-3,
                       "sec_all": 3e-3, "ratio": 1.5},
                      {"workload": "toy", "N": 1000, "seeds": 8, "sec_1": 4e-4,
                       "sec_all": 3e-4, "ratio": 0.75}]}
    got = [t for t in bench.targets(res) if t["target"].startswith("one CPU busy")]
    assert [t["pass"] for t in got] == [False, True]
    assert got[0]["value"] == pytest.approx(1.5)


def test_loaded_probe_keeps_a_cpu_busy_and_stops_it():
    import numba

    from meanfield.bench.harness import loaded_probe
    from meanfield.bench.workloads import make_plan, workload_data

    cpus = sorted(os.sched_getaffinity(0))
    threads = numba.get_num_threads()
    if len(cpus) < 2 or threads < 2:
        pytest.skip("needs 2 CPUs and 2 Numba threads")
    plan = dataclasses.replace(make_plan("tiny"), loaded=(("toy", 100, 1),))
    children = os.times().children_user
    t0 = time.perf_counter()
    out = loaded_probe(plan, 2, cpus[:2], {"toy": workload_data("toy")}, True)
    wall = time.perf_counter() - t0
    busy = os.times().children_user - children  # the busy process, waited for on return
    assert len(out) == 1
    assert out[0]["sec_1"] > 0
    assert out[0]["sec_all"] > 0
    assert out[0]["ratio"] == pytest.approx(out[0]["sec_all"] / out[0]["sec_1"])
    # the busy process spun on a CPU while the probe ran (it starts a Python first)
    assert busy > 0.5 * wall - 0.2
    assert numba.get_num_threads() == threads


def test_import_sets_passive_omp_wait_unless_the_user_did():
    import subprocess
    import sys

    code = "import os, meanfield; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.strip() == "ACTIVE"


@pytest.mark.slow
def test_compile_probe_of_one_path(monkeypatch):
    # a path compiled alone into an empty cache: the cold first call pays the compile, the
    # second process loads it from that cache
    from meanfield.bench import harness

    monkeypatch.setattr(harness, "PATHS", harness.PATHS[:1])
    (row,) = harness.compile_probes()
    assert "error" not in row
    assert row["compile_s"] == pytest.approx(row["cold_s"] - row["warm_s"])
    assert row["warm_s"] < row["cold_s"]
