"""Sweeps: expansion, resumption after SIGKILL, corrupt task files, executors, DIR rules."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from meanfield import io, runner, simulate
from meanfield.cli import main
from meanfield.config import parse_config
from meanfield.errors import ConfigError
from meanfield.io import load_results

SWEEP = """
[data]
n = 8
[dynamics]
mode = "sde"
T = {T}
snapshots = 3
[schedule]
gamma = 0.01
[run]
seeds = 2
[sweep]
"run.N" = [20, 50, 100]
"schedule.beta" = [0.5, 1.0]
"""


# six tasks of ≈ 0.3 s each (13 000 steps × 200 neurons × 16 atoms): once the first task
# file appears, a signal sent ≤ 20 ms later lands well before the sixth task finishes
SLOW_SWEEP = """
[data]
n = 16
[dynamics]
mode = "sde"
T = 13.0
snapshots = 3
[schedule]
gamma = 0.001
[run]
N = 200
[sweep]
"data.seed" = [0, 1, 2, 3, 4, 5]
"""


def _cfg(tmp_path, T=0.05, name="s.toml"):
    path = tmp_path / name
    path.write_text(SWEEP.format(T=T))
    return path


def test_expand_product_ids_and_dims():
    cfg = parse_config({"sweep": {"run.N": [10, 20], "schedule.beta": [0.5, 0.75, 1.0]}})
    tasks = runner.expand(cfg)
    assert len(tasks) == 6
    assert [t.values for t in tasks[:2]] == [{"run.N": 10, "schedule.beta": 0.5},
                                             {"run.N": 10, "schedule.beta": 0.75}]
    assert tasks[4].config.run.N == 20
    assert tasks[4].config.schedule.beta == 0.75
    assert tasks[4].config.sweep is None
    assert len({t.id for t in tasks}) == 6
    assert [t.id for t in runner.expand(cfg)] == [t.id for t in tasks]  # stable
    assert io.dim_names(["run.N", "schedule.beta"]) == {"run.N": "N", "schedule.beta": "beta"}
    assert io.dim_names(["run.seed", "data.seed"]) == {"run.seed": "run_seed",
                                                          "data.seed": "data_seed"}


def test_task_id_hashes_parsed_config_data_and_results_format(tmp_path, monkeypatch):
    # the id format finished output dirs are resumed by: never change it silently
    import hashlib
    import json

    from meanfield.config import to_dict

    cfg = parse_config({"run": {"N": 7}, "schedule": {"beta": 0.5}})
    spec = {"config": to_dict(cfg), "data": None, "results_format": runner.RESULTS_FORMAT}
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    assert runner.task_id(cfg) == hashlib.sha256(text.encode()).hexdigest()[:16]
    # the package version is not in it; the parsed config is (int and float spellings agree)
    monkeypatch.setattr(runner, "__version__", "99.0")
    assert runner.task_id(parse_config({"run": {"N": 7}, "schedule": {"beta": 0.5}})) == \
        runner.task_id(cfg)
    assert runner.task_id(parse_config({"schedule": {"gamma": 1}})) == \
        runner.task_id(parse_config({"schedule": {"gamma": 1.0}}))
    # RESULTS_FORMAT is
    monkeypatch.setattr(runner, "RESULTS_FORMAT", runner.RESULTS_FORMAT + 1)
    assert runner.task_id(cfg) != hashlib.sha256(text.encode()).hexdigest()[:16]
    monkeypatch.undo()
    # and so are the bytes of a data file
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((4, 1)), y=np.zeros(4))
    fcfg = parse_config({"data": {"kind": "file", "path": str(path)}})
    before = runner.task_id(fcfg)
    np.savez(path, x=np.ones((4, 1)), y=np.ones(4))
    assert runner.task_id(fcfg) != before


@pytest.mark.parametrize(("table", "needle"), [
    ({"run.seeds": [1, 2]}, "run.seeds"),
    ({"run.nope": [1]}, "run.nope"),
    ({"run.N": []}, "run.N"),
    ({"schedule.beta": [0.5, 2.0]}, "schedule.beta"),
])
def test_bad_sweep_axes(table, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        runner.expand(parse_config({"sweep": table}))


def test_results_layout_and_values_match_single_runs(tmp_path):
    cfg_path = _cfg(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg_path), "--out", str(out)]) == 0
    res = load_results(out)
    assert res["W"].dims == ("N", "beta", "replica", "time", "neuron", "param")
    assert res["W"].shape == (3, 2, 2, 3, 100, 2)
    assert list(res["N"].values) == [20, 50, 100]
    # the N = 20 slice is a NaN-padded copy of a direct simulation of that task's config
    task = runner.expand(parse_config(_toml(cfg_path)))[0]
    assert task.values == {"run.N": 20, "schedule.beta": 0.5}
    traj = simulate(task.config)
    W = res["W"].sel(N=20, beta=0.5).values
    assert np.array_equal(W[:, :, :20], traj.W)
    assert np.all(np.isnan(W[:, :, 20:]))
    assert np.array_equal(res["t"].sel(N=20, beta=0.5).values, traj.times)


def _toml(path):
    import tomllib

    return tomllib.loads(path.read_text())


def test_truncated_task_file_is_redone(tmp_path):
    cfg_path = _cfg(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg_path), "--out", str(out)]) == 0
    first = load_results(out)
    files = sorted((out / "tasks").glob("*.nc"))
    victim = files[2]
    victim.write_bytes(victim.read_bytes()[:200])
    others = {f: f.stat().st_mtime_ns for f in files if f != victim}
    assert main(["run", str(cfg_path), "--out", str(out)]) == 0
    xr.testing.assert_identical(load_results(out), first)
    assert {f: f.stat().st_mtime_ns for f in others} == others
    import json

    man = json.loads((out / "manifest.json").read_text())
    status = {t["id"]: t["status"] for t in man["tasks"]}
    assert status[victim.stem] == "unreadable, redone"
    assert sum(s == "reused" for s in status.values()) == 5


def test_mismatched_config_refused_dir_unchanged(tmp_path, capsys):
    cfg_path = _cfg(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg_path), "--out", str(out)]) == 0
    snapshot = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["run", str(cfg_path), "--out", str(out), "--set", "dynamics.T=0.1"]) == 2
    assert "different config" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == snapshot


def test_executors_give_identical_arrays(tmp_path):
    cfg_path = _cfg(tmp_path)
    results = {}
    for ex, extra in [("serial", []), ("processes", ["--workers", "2"]),
                      ("dask", ["--workers", "2"])]:
        out = tmp_path / ex
        assert main(["run", str(cfg_path), "--out", str(out), "--executor", ex, *extra]) == 0
        results[ex] = load_results(out)
    xr.testing.assert_identical(results["serial"], results["processes"])
    xr.testing.assert_identical(results["serial"], results["dask"])


def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path):
    """Kill a sweep after ≥ 1 task finished and before all did; resuming completes it with
    results equal to an uninterrupted run's, and no finished task runs again."""
    cfg_path = tmp_path / "kill.toml"
    cfg_path.write_text(SLOW_SWEEP)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "meanfield", "run", str(cfg_path), "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tasks_dir = out / "tasks"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if tasks_dir.exists() and any(tasks_dir.glob("*.nc")):
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in tasks_dir.glob("*.nc")}
    assert 1 <= len(finished) < 6, "the kill must land between the first and the last task"
    assert not (out / "results.nc").exists()
    assert main(["run", str(cfg_path), "--out", str(out)]) == 0
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in finished} == finished
    whole = tmp_path / "whole"
    assert main(["run", str(cfg_path), "--out", str(whole)]) == 0
    xr.testing.assert_identical(load_results(out), load_results(whole))


# slow: from a cold Numba cache (a clean CI clone) the subprocess or its workers can still
# be compiling when the signal lands, and exit past the limit (or finish before it);
# they pass with a warm cache: pytest --runslow
@pytest.mark.slow
def test_ctrl_c_keeps_finished_tasks_exit_130(tmp_path):
    cfg_path = tmp_path / "int.toml"
    cfg_path.write_text(SLOW_SWEEP)
    out = tmp_path / "int"
    proc = subprocess.Popen([sys.executable, "-m", "meanfield", "run", str(cfg_path), "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any((out / "tasks").glob("*.nc")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    kept = list((out / "tasks").glob("*.nc"))
    assert 1 <= len(kept) < 6
    assert all(runner.load_task(f) is not None for f in kept)
    import json

    statuses = [t["status"] for t in json.loads((out / "manifest.json").read_text())["tasks"]]
    assert statuses.count("done") == len(kept)


def test_coupled_sweep_adds_coupling_per_task(tmp_path):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text('[data]\nn = 8\n[dynamics]\nmode = "ode"\nT = 0.1\nsnapshots = 2\n'
                        '[schedule]\ngamma = 0.05\n[run]\nseeds = 2\n[limit]\n'
                        'method = "quadrature"\n[sweep]\n"run.N" = [10, 40]\n')
    out = tmp_path / "out"
    assert main(["run", str(cfg_path), "--out", str(out), "--couple"]) == 0
    res = load_results(out)
    assert res["coupling_sq"].dims == ("N", "replica", "neuron")
    assert np.all(np.isfinite(res["coupling_sq"].sel(N=40).values))
    assert np.all(np.isnan(res["coupling_sq"].sel(N=10).values[:, 10:]))
