"""Hostile but realistic input: exit code, one stderr line naming the cause, DIR untouched.

Each case runs the command line in-process (``meanfield.cli.main``) on a tiny config and
checks the contract: the exit code (2 input, 3 numerical, 1 environment), exactly one
line on stderr that names the key or the cause, no traceback, and DIR exactly as it was
(absent stays absent).  The fault tests after the table check what must not be lost:
a user's files, finished work, fresh results when inputs change.
"""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from meanfield import outdir, runner
from meanfield.cli import main
from meanfield.config import parse_config
from meanfield.errors import ConfigError
from meanfield.studies.preflight import check_inputs

TINY = """
[data]
n = 8
[dynamics]
mode = "sde"
T = 0.05
snapshots = 3
[schedule]
gamma = 0.01
[run]
N = 20
seeds = 2
"""

SWEEP = TINY + '[sweep]\n"run.N" = [20, 40]\n'


def _tree(path: Path) -> dict | None:
    """Every file under ``path`` with its bytes (None if ``path`` does not exist)."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def _cli(capsys, args):
    """Run the command line; return (exit code, stdout, stderr), usage errors included."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:  # argparse
        code = stop.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _bad_npz(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.ones((4, 1)))  # no 'y'
    return path


# (command, extra config text or --set overrides, needle in the one stderr line, exit code)
CASES = [
    # negative seeds
    ("run", ["run.seed=-1"], "run.seed", 2),
    ("run", ["data.seed=-3"], "data.seed", 2),
    ("run", ["init.seed=-2"], "init.seed", 2),
    ("limit", ["limit.seed=-2"], "limit.seed", 2),
    # sizes that cannot fit, refused before any allocation
    ("run", ["run.N=10000000000"], "GiB", 2),
    ("run", ["data.n=100000000000"], "data.n", 2),
    ("run", ["dynamics.snapshots=1000000000000"], "GiB", 2),
    ("run", ["dynamics.mode=sgd", "schedule.batch=1000000000000"], "GiB", 2),
    ("limit", ["limit.grid=1000000"], "GiB", 2),
    ("limit", ["limit.method=reference", "limit.N_ref=1000000000000"], "GiB", 2),
    # schedules that overflow, underflow, overshoot T or never end
    ("run", ["schedule.gamma=10", "schedule.alpha=0.999"], "schedule.gamma", 2),
    ("run", ["schedule.gamma=1e-10", "schedule.alpha=0.99"], "schedule.gamma", 2),
    ("run", ["schedule.gamma=1e-300"], "schedule.gamma", 2),
    ("run", ["dynamics.T=1e300"], "dynamics.T", 2),
    ("run", ["schedule.gamma=1e4"], "dynamics.T", 2),
    ("run", ["dynamics.mode=sgd", "schedule.gamma=1e6"], "dynamics.T", 2),
    # combinations without a limit, undefined coupling, a bad data file, a bad sweep axis
    ("run --couple", ["dynamics.mode=sgd"], "beta", 2),
    ("limit", ["dynamics.noise=shared"], "shared", 2),
    ("limit", ["limit.method=pde", "model.layers=both", "data.input_dim=2"], "limit.method", 2),
    ("run", ["data.kind=file", "data.path=BADNPZ"], "data.path", 2),
    ("run", ["init.kind=dirac", "init.point=[1.0, 2.0, 3.0]"], "init.point", 2),
    # rate needs two widths
    ("rate", ['[sweep]\n"run.N" = [20]\n'], "run.N", 2),
    # malformed values, keys that do not apply, sizes of the regimes grid
    ("run", ["run.N=" + "9" * 5000], "malformed", 2),
    ("run", ["run.N=" + "[" * 3000], "malformed", 2),
    ("run", ["data.path=x.npz"], "data.path", 2),
    ("regimes", ["regimes.points=100000000"], "regimes.points", 2),
    ("regimes", ["regimes.decades=1e300"], "regimes.decades", 2),
    ("regimes", ["regimes.spread_seeds=1000000000000"], "regimes.spread_seeds", 2),
    ("limit", ["limit.method=quadrature", "dynamics.mode=ode", "limit.dt=1e-300"],
     "limit.dt", 2),
    ("limit", ["limit.method=reference", "dynamics.dt_factor=1e-300"], "dt_factor", 2),
    ("run", ["data.kind=gaussian_mixture", "data.classes=50000", "data.n=50000"],
     "data.classes", 2),
    ("run", ["data.teacher_width=1000000000000"], "data.teacher_width", 2),
    ("limit", ["model.l2=1e300"], "stiff", 3),
    ("limit", ["limit.grid=1000000"], "limit.grid", 2),
    ("run --couple", ["limit.method=reference", "limit.N_ref=1000000000000"], "limit.N_ref", 2),
    ("run", ["dynamics.mode=sgd", "schedule.batch=1000000000000"], "schedule.batch", 2),
    ("regimes", ["regimes.N_min=1000000000"], "regimes.N_min", 2),
    ("run", ["data.kind=file", "data.path=BADNPZ", "data.n=8"], "data.path", 2),
]


@pytest.mark.parametrize(("command", "change", "needle", "code"), CASES,
                         ids=[f"{c[0]}:{' '.join(c[1])[:40]}" for c in CASES])
def test_bad_input_one_line_exit_code_dir_untouched(tmp_path, capsys, command, change,
                                                    needle, code):
    text = TINY + "".join(c for c in change if c.startswith("["))
    sets = [c.replace("BADNPZ", str(_bad_npz(tmp_path))) for c in change
            if not c.startswith("[")]
    if "data.kind=file" in sets and "data.n=8" not in sets:
        text = text.replace("n = 8\n", "")
    cfg = _write(tmp_path, text)
    out = tmp_path / "out"
    before = _tree(out)
    args = [*command.split(), cfg, "--out", out]
    for s in sets:
        args += ["--set", s]
    got, _, err = _cli(capsys, args)
    assert got == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    if code == 2:
        assert _tree(out) == before  # not even created


@pytest.mark.parametrize("flags", [["--workers", "0"], ["--workers", "-1"], ["--workers", "x"],
                                   ["--executor", "serial", "--scheduler", "tcp://h:1"]])
def test_bad_executor_flags_touch_nothing_even_with_fresh(tmp_path, capsys, flags):
    cfg = _write(tmp_path, SWEEP)
    out = tmp_path / "out"
    assert _cli(capsys, ["run", cfg, "--out", out])[0] == 0
    before = _tree(out)
    code, _, err = _cli(capsys, ["run", cfg, "--out", out, "--fresh", *flags])
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert _tree(out) == before


def test_sweep_over_a_list_valued_key(tmp_path, capsys):
    text = TINY + '[init]\nkind = "dirac"\npoint = [0.1, 0.2]\n' + \
        '[sweep]\n"init.point" = [[0.1, 0.2], [0.3, 0.4]]\n'
    out = tmp_path / "out"
    code, _, err = _cli(capsys, ["run", _write(tmp_path, text), "--out", out])
    assert code == 0, err
    with xr.open_dataset(out / "results.nc", engine="scipy") as ds:
        assert list(ds["point"].values) == ["[0.1, 0.2]", "[0.3, 0.4]"]
        np.testing.assert_array_equal(ds["W"].isel(point=1, time=0).values[..., 0], 0.3)


def test_memory_estimate_refuses_before_allocating():
    # N = 2e8 particles in 2 replicas keep 2·2e8·2·8 bytes ≈ 6 GiB with their snapshots
    cfg = parse_config({"data": {"n": 8}, "run": {"N": 200_000_000, "seeds": 2}})
    with pytest.raises(ConfigError, match=r"GiB.*run\.N = 200000000"):
        check_inputs([cfg], memory=3 << 30)
    check_inputs([parse_config({"data": {"n": 8}, "run": {"N": 1000}})], memory=3 << 30)


def test_out_is_a_file(tmp_path, capsys):
    cfg = _write(tmp_path, TINY)
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, _, err = _cli(capsys, ["run", cfg, "--out", target])
    assert code == 2
    assert "is a file" in err
    assert len(err.strip().splitlines()) == 1
    assert target.read_text() == "mine"


def test_out_cannot_be_created(tmp_path, capsys):
    cfg = _write(tmp_path, TINY)
    code, _, err = _cli(capsys, ["run", cfg, "--out", "/proc/meanfield-cannot-exist/out"])
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_disk_full_is_one_line_and_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))

    monkeypatch.setattr("meanfield.io.write_netcdf", full)
    cfg = _write(tmp_path, TINY)
    code, _, err = _cli(capsys, ["run", cfg, "--out", tmp_path / "out"])
    assert code == 1, err
    assert "No space left" in err
    assert "free some space" in err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert (tmp_path / "out" / "config.toml").stat().st_size > 0


@pytest.mark.parametrize("args", [["run"], ["run", "c.toml"], ["nonsense", "c.toml"],
                                  ["run", "c.toml", "--out", "o", "--workers", "x"]])
def test_usage_errors_are_one_line(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "usage" not in err


# ---------------------------------------------------------------- what must not be lost
def test_fresh_never_touches_a_directory_meanfield_did_not_make(tmp_path, capsys):
    out = tmp_path / "thesis_dir"
    (out / "thesis").mkdir(parents=True)
    (out / "thesis" / "ch1.tex").write_text("chapter one")
    (out / "notes.txt").write_text("notes")
    (out / "config.toml").write_text("# my own config\n")
    before = _tree(out)
    cfg = _write(tmp_path, TINY)
    code, _, err = _cli(capsys, ["run", cfg, "--out", out, "--fresh"])
    assert code == 2
    assert "not made by meanfield" in err
    assert _tree(out) == before


def test_fresh_removes_only_what_meanfield_wrote(tmp_path, capsys):
    cfg = _write(tmp_path, SWEEP)
    out = tmp_path / "out"
    assert _cli(capsys, ["run", cfg, "--out", out])[0] == 0
    (out / "my_analysis.py").write_text("print(1)")
    (out / "tasks" / "keep.txt").write_text("mine")
    code, _, err = _cli(capsys, ["run", cfg, "--out", out, "--fresh", "--set", "run.seeds=3"])
    assert code == 0, err
    assert (out / "my_analysis.py").read_text() == "print(1)"
    assert (out / "tasks" / "keep.txt").read_text() == "mine"
    assert "run.seeds" not in err
    assert "kept" in err
    with xr.open_dataset(out / "results.nc", engine="scipy") as ds:
        assert ds.sizes["replica"] == 3


def test_aborted_start_never_blocks_a_corrected_config(tmp_path, capsys):
    cfg = _write(tmp_path, TINY)
    out = tmp_path / "out"
    # a start that blew up (numerical failure, exit 3) left config.toml and no result
    code, _, err = _cli(capsys, ["run", cfg, "--out", out, "--set", "schedule.gamma=0.1",
                                 "--set", "dynamics.T=2", "--set", "init.scale=1e200"])
    assert code == 3, err
    assert len(err.strip().splitlines()) == 1
    assert "replica" in err
    assert (out / "config.toml").exists()
    code, _, err = _cli(capsys, ["run", cfg, "--out", out])
    assert code == 0, err
    assert (out / "trajectory.nc").exists()


def test_changed_data_file_is_recomputed(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.standard_normal((8, 1)), y=rng.standard_normal(8))
    text = TINY + '[sweep]\n"run.N" = [20, 40]\n'
    cfg = _write(tmp_path, text.replace("n = 8", f'kind = "file"\npath = "{data}"'))
    single = _write(tmp_path, TINY.replace("n = 8", f'kind = "file"\npath = "{data}"'),
                    "s.toml")
    out, out1 = tmp_path / "out", tmp_path / "out1"
    assert _cli(capsys, ["run", cfg, "--out", out])[0] == 0
    assert _cli(capsys, ["run", single, "--out", out1])[0] == 0
    with xr.open_dataset(out / "results.nc", engine="scipy") as ds:
        risk0 = ds["risk"].values.copy()
    np.savez(data, x=rng.standard_normal((8, 1)), y=rng.standard_normal(8))
    code, stdout, _ = _cli(capsys, ["run", cfg, "--out", out])
    assert code == 0
    man = json.loads((out / "manifest.json").read_text())
    assert [t["status"] for t in man["tasks"]] == ["done", "done"]
    with xr.open_dataset(out / "results.nc", engine="scipy") as ds:
        assert not np.array_equal(ds["risk"].values, risk0)
    code, stdout, err = _cli(capsys, ["run", single, "--out", out1])
    assert code == 0
    assert "already complete" not in stdout
    assert "other inputs" in err


def test_corrupted_but_parsable_task_is_redone(tmp_path, capsys):
    cfg = _write(tmp_path, SWEEP)
    out = tmp_path / "out"
    assert _cli(capsys, ["run", cfg, "--out", out])[0] == 0
    good = (out / "results.nc").read_bytes()
    victim = sorted((out / "tasks").glob("*.nc"))[0]
    with xr.open_dataset(victim, engine="scipy") as ds:
        bad = ds.load()
    bad["W"].values[0, -1, 0, 0] += 1.0  # a flipped value; the file still parses
    bad.to_netcdf(victim, engine="scipy")
    code, _, err = _cli(capsys, ["run", cfg, "--out", out])
    assert code == 0
    assert "checksum mismatch" in err
    assert victim.stem in err
    man = json.loads((out / "manifest.json").read_text())
    assert sorted(t["status"] for t in man["tasks"]) == ["checksum mismatch, redone", "reused"]
    assert (out / "results.nc").read_bytes() == good


@pytest.mark.parametrize("kinds", [["gaussian_mixture", "teacher"],
                                   ["teacher", "gaussian_mixture"]])
def test_sweep_gathers_the_union_of_variables(tmp_path, capsys, kinds):
    text = TINY + f'[sweep]\n"data.kind" = {json.dumps(kinds)}\n'
    cfg = _write(tmp_path, text)
    out = tmp_path / "out"
    code, _, err = _cli(capsys, ["run", cfg, "--out", out, "--set", "model.loss=squared"])
    assert code == 0, err
    with xr.open_dataset(out / "results.nc", engine="scipy") as ds:
        acc = ds["accuracy"].sel(kind="gaussian_mixture").values
        assert np.all(np.isfinite(acc))
        assert np.all(np.isnan(ds["accuracy"].sel(kind="teacher").values))
        assert np.all(np.isfinite(ds["risk"].values))


def test_test_fraction_sweep_keeps_test_risk(tmp_path, capsys):
    text = TINY.replace("n = 8", 'kind = "gaussian_mixture"\nn = 16') + \
        '[sweep]\n"data.test_fraction" = [0.25, 0.0]\n'
    out = tmp_path / "out"
    code, _, err = _cli(capsys, ["run", _write(tmp_path, text), "--out", out])
    assert code == 0, err
    with xr.open_dataset(out / "results.nc", engine="scipy") as ds:
        assert np.all(np.isfinite(ds["test_risk"].sel(test_fraction=0.25).values))
        assert np.all(np.isnan(ds["test_risk"].sel(test_fraction=0.0).values))


def test_a_held_directory_is_refused_naming_the_holder(tmp_path, capsys):
    cfg_path = _write(tmp_path, TINY)
    out = tmp_path / "out"
    config = parse_config({"data": {"n": 8}})
    with outdir.claim(out, config, command="run"):
        before = _tree(out)
        code, _, err = _cli(capsys, ["run", cfg_path, "--out", out])
        assert code == 2
        assert f"pid {os.getpid()}" in err
        assert "--wait" in err
        assert _tree(out) == before


# three tasks of about 3 s each: the second and third command start while the first holds DIR
SLOW = """
[data]
n = 16
[dynamics]
mode = "sde"
T = 13.0
snapshots = 3
[schedule]
gamma = 0.001
[run]
N = 2000
[sweep]
"data.seed" = [0, 1, 2]
"""


def test_two_processes_on_one_dir_compute_nothing_twice(tmp_path):
    cfg = _write(tmp_path, SLOW)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(runner.__file__).parents[1])}
    cmd = [sys.executable, "-m", "meanfield", "run", str(cfg), "--out", str(out)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env}
    first = subprocess.Popen(cmd, **pipes)
    deadline = time.monotonic() + 120
    while not (out / "config.toml").exists():
        assert time.monotonic() < deadline
        assert first.poll() is None
        time.sleep(0.02)
    refused = subprocess.Popen(cmd, **pipes)
    waited = subprocess.Popen([*cmd, "--wait"], **pipes)
    results = {name: (p, *p.communicate(timeout=600))
               for name, p in (("refused", refused), ("waited", waited), ("first", first))}
    for name, (proc, _, err) in results.items():
        assert proc.returncode == (2 if name == "refused" else 0), (name, err)
    err = results["refused"][2]
    assert "in use by meanfield run" in err
    assert len(err.strip().splitlines()) == 1
    assert "waiting for meanfield run" in results["waited"][2]
    man = json.loads((out / "manifest.json").read_text())
    assert [t["status"] for t in man["tasks"]] == ["reused"] * 3  # the waiter computed none
