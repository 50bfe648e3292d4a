"""Stopping a run: Ctrl-C and SIGTERM mid-segment, killed workers, an unreachable scheduler.

Signals reach Python between the engine's compiled calls, which split each snapshot
segment into bounded pieces of work (``engine.CALL_WORK``) without moving a bit.  The CLI
exits 130 on Ctrl-C and 143 on SIGTERM with one line on stderr, keeping finished tasks;
workers of ``--executor processes`` never outlive it; a task whose worker dies runs once
more on a fresh one.
"""

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import tomllib
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from meanfield import engine, runner
from meanfield.cli import main
from meanfield.config import parse_config
from meanfield.errors import EnvironmentFailure
from meanfield.io import load_results
from meanfield.limit import solve_limit
from meanfield.studies import run as run_study

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc and uses a pty")

# one endless snapshot segment: 5·10¹¹ steps of 20 000 particles (the block path)
ENDLESS = """
[data]
n = 16
[dynamics]
mode = "sde"
T = {T}
snapshots = 2
[schedule]
gamma = 0.001
[run]
N = 20000
"""

# two quick tasks, then two endless ones (the replica path), for two workers
SWEEP = """
[data]
n = 16
[dynamics]
mode = "sde"
snapshots = 2
[schedule]
gamma = 0.001
[run]
N = 300
seeds = 2
[sweep]
"dynamics.T" = [0.01, 0.02, 5e8, 6e8]
"""

# four tasks of a fraction of a second each
SHORT_SWEEP = """
[data]
n = 16
[dynamics]
mode = "sde"
T = {T}
snapshots = 3
[schedule]
gamma = 0.001
[run]
N = 300
seeds = 2
[sweep]
"data.seed" = [0, 1, 2, 3]
"""


# ---------------------------------------------------------------- helpers
def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def cli():
    """Start ``python -m meanfield ARGS`` (this checkout); killed and reaped at teardown."""
    procs = []

    def start(*args, **kw):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        procs.append(subprocess.Popen([sys.executable, "-m", "meanfield", *map(str, args)],
                                      env=env, stdout=subprocess.DEVNULL, **kw))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.__exit__(None, None, None)  # closes its pipes, waits


def _ppid_and_state(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None, None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), fields[0]


def _descendants(pid):
    """Pids of every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid, state = _ppid_and_state(entry.name)
            if ppid is not None and state != "Z":
                parents[int(entry.name)] = ppid
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - out
        out |= frontier
    return out


def _alive(pids, grace=1.0):
    """Those of ``pids`` still running (not gone, not zombies) after up to ``grace`` s."""
    deadline = time.monotonic() + grace
    while True:
        alive = {p for p in pids if _ppid_and_state(p)[1] not in (None, "Z")}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _workers(pid):
    """Descendants of ``pid`` that are pool workers (not the resource tracker)."""
    out = set()
    for child in _descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.add(child)
    return out


def _wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _lines(err):
    """The stderr lines that are not the up-front note on a long run."""
    return [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("meanfield: note")]


def _stop(proc, sig, *, group=False):
    """Send ``sig``; return (seconds to exit, stderr)."""
    start = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"no exit within 30 s of {sig!r}")
    return time.monotonic() - start, err


CODES = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated (SIGTERM)")}


@pytest.fixture(scope="module")
def warm():
    """Compile (or load) both step kernels here, so that subprocesses find them cached."""
    engine.simulate(parse_config({"data": {"n": 16}, "dynamics": {"T": 0.001, "snapshots": 2},
                                  "schedule": {"gamma": 0.001}, "run": {"N": 20000}}))
    engine.simulate(parse_config({"data": {"n": 16}, "dynamics": {"T": 0.01, "snapshots": 2},
                                  "schedule": {"gamma": 0.001}, "run": {"N": 300, "seeds": 2}}))


# ---------------------------------------------------------------- splitting segments
BIT_CASES = {
    "sgd_epochs_replicas": ({"dynamics": {"mode": "sgd", "T": 1.5, "snapshots": 3,
                                          "sampling": "epochs"},
                             "schedule": {"gamma": 0.05, "batch": 5},
                             "run": {"N": 60, "seeds": 2}}, False, False),
    "sde_atoms_2d_f32_record_u": ({"dynamics": {"mode": "sde", "T": 1.0, "snapshots": 3},
                                   "data": {"input_dim": 2},
                                   "schedule": {"gamma": 0.05, "batch": 2},
                                   "run": {"N": 50, "seeds": 3, "dtype": "float32"}},
                                  False, True),
    "sde_block_path_record_u": ({"data": {"n": 128},
                                 "dynamics": {"mode": "sde", "T": 0.2, "snapshots": 3},
                                 "schedule": {"gamma": 0.01, "batch": 2},
                                 "run": {"N": 600, "seeds": 1}}, False, True),
    "coupled_ode_record_u": ({"dynamics": {"mode": "ode", "T": 1.0, "snapshots": 3},
                              "schedule": {"gamma": 0.05}, "limit": {"method": "quadrature"},
                              "run": {"N": 40, "seeds": 2}}, True, True),
}


@pytest.mark.parametrize("per_call", [1, 7])
@pytest.mark.parametrize("name", sorted(BIT_CASES))
def test_split_segments_move_no_bit(monkeypatch, name, per_call):
    """A run whose every compiled call does 1 (or 7) steps equals the default run bitwise:
    W, u, metrics, coupling and the mean field of every step (record_u)."""
    table, couple, record_u = BIT_CASES[name]
    cfg = parse_config({**table, "data": {"n": 24, "seed": 3, **table.get("data", {})}})
    limit = solve_limit(cfg) if couple else None
    whole = engine.simulate(cfg, limit=limit, record_u=record_u)
    steps = np.diff(whole.steps)
    assert steps.min() > per_call  # the default does each segment in one call; this does not
    if per_call == 1:
        monkeypatch.setattr(engine, "CALL_WORK", 1)
        assert engine.call_steps(cfg.run.seeds, cfg.run.N, 30, 3, coupled=couple) == 1
    else:
        monkeypatch.setattr(engine, "call_steps", lambda *a, **k: per_call)
    split = engine.simulate(cfg, limit=limit, record_u=record_u)
    for field in ("W", "u", "risk", "coupling_sq", "coupling_rms", "output_error", "u_steps"):
        a, b = getattr(whole, field), getattr(split, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert a.tobytes() == b.tobytes(), field


def test_call_budget_bounds_work_per_call():
    work, pad_n, pad_a = engine.CALL_WORK, engine.CALL_PAD_N, engine.CALL_PAD_A
    assert engine.call_steps(1, 10**5, 16, 2) == work // (10**5 * (16 + pad_a) * 2)
    assert engine.call_steps(1, 10**9, 300, 65) == 1  # at least one step
    assert engine.call_steps(2, 10, 8, 2) == work // (2 * pad_n * (8 + pad_a) * 2)
    assert engine.call_steps(3, 1000, 10, 3, coupled=True) == work // (2 * 3000 * 18 * 3)


# ---------------------------------------------------------------- signals
def _read_bar_until_progress(fd, proc, timeout=120):
    """Read the child's stderr (a pty) until its progress bar has counted steps."""
    text = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                text += os.read(fd, 65536).decode(errors="replace")
            except OSError:
                break
        for count in re.findall(r"\|\s*([0-9.]+)[kMGTP]?/", text):
            if float(count) > 0:
                return text
    pytest.fail(f"no progress seen; stderr so far: {text!r}")


def _drain(fd):
    text = ""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            return text
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return text
        if not chunk:
            return text
        text += chunk.decode(errors="replace")


# slow: from a cold Numba cache (a clean CI clone) the subprocess or its workers can still
# be compiling when the signal lands, and exit past the limit (or finish before it);
# they pass with a warm cache: pytest --runslow
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_segment_stops_within_a_second(tmp_path, warm, cli, sig):
    """A run inside one endless segment (10¹² steps, N = 20 000) stops within 2 s of the
    signal with the signal's exit code and one line, no traceback, nothing left running."""
    cfg = _write(tmp_path, ENDLESS.format(T=5e8))
    out = tmp_path / "out"
    master, slave = pty.openpty()  # stderr a terminal: the progress bar shows the steps done
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    proc = cli("run", cfg, "--out", out, stderr=slave)
    try:
        os.close(slave)
        before = _read_bar_until_progress(master, proc)  # inside the segment's compiled calls
        kids = _descendants(proc.pid)
        start = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=30)
        seconds = time.monotonic() - start
        err = before + _drain(master)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    code, word = CODES[sig]
    assert proc.returncode == code, err
    assert seconds < 2.0
    assert "Traceback" not in err
    lines = [ln for ln in re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err))
             if ln.strip() and not ln.startswith(("N=", "meanfield: note"))]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"meanfield: {word}")
    assert not _alive(kids)
    assert not (out / "trajectory.nc").exists()


# slow: from a cold Numba cache (a clean CI clone) the subprocess or its workers can still
# be compiling when the signal lands, and exit past the limit (or finish before it);
# they pass with a warm cache: pytest --runslow
@pytest.mark.slow
@pytest.mark.parametrize(("executor", "sig", "group"), [
    ("processes", signal.SIGINT, True), ("processes", signal.SIGTERM, False),
    ("dask", signal.SIGINT, True)])
def test_signal_to_sweep_keeps_finished_tasks(tmp_path, warm, cli, executor, sig, group):
    """Ctrl-C to the process group, or SIGTERM to the parent alone, while two workers are
    in endless tasks: exit 130 / 143 within 2 s, one line, no worker traceback or log, the
    two finished tasks kept and in manifest.json, no worker left."""
    if executor == "dask":
        pytest.importorskip("distributed")
    cfg = _write(tmp_path, SWEEP)
    out = tmp_path / "out"
    proc = cli("run", cfg, "--out", out, "--executor", executor, "--workers", 2,
               stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: len(list((out / "tasks").glob("*.nc"))) == 2 or proc.poll() is not None,
              180, "the two quick tasks")
    assert proc.poll() is None
    time.sleep(1.0)  # the workers are into the endless tasks
    kids = _descendants(proc.pid)
    assert len(_workers(proc.pid)) == 2
    seconds, err = _stop(proc, sig, group=group)
    code, word = CODES[sig]
    assert proc.returncode == code, err
    assert seconds < 2.0
    assert "Traceback" not in err
    assert len(_lines(err)) == 1, err
    assert _lines(err)[0].startswith(f"meanfield: {word}")
    assert not _alive(kids)
    kept = list((out / "tasks").glob("*.nc"))
    assert len(kept) == 2
    assert all(runner.load_task(f) is not None for f in kept)
    tasks = json.loads((out / "manifest.json").read_text())["tasks"]
    assert sorted(t["status"] for t in tasks) == ["done", "done", "pending", "pending"]
    assert {t["id"] for t in tasks if t["status"] == "done"} == {f.stem for f in kept}


def test_workers_die_with_a_killed_parent(tmp_path, warm, cli):
    """SIGKILL to the parent (no cleanup possible) in the middle of tasks: its workers die
    with it (and so the resource tracker they keep open)."""
    cfg = _write(tmp_path, SWEEP)
    out = tmp_path / "out"
    proc = cli("run", cfg, "--out", out, "--executor", "processes", "--workers", 2,
                stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(list((out / "tasks").glob("*.nc"))) == 2 or proc.poll() is not None,
              180, "the two quick tasks")
    time.sleep(1.0)  # the workers are into the endless tasks
    kids = _descendants(proc.pid)  # the workers and multiprocessing's resource tracker
    assert proc.poll() is None
    assert len(_workers(proc.pid)) == 2
    proc.kill()
    proc.wait()
    assert not _alive(kids, grace=2.0)


# ---------------------------------------------------------------- dying workers
def _serial_results(tmp_path, text):
    cfg = _write(tmp_path, text, "serial.toml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "serial")]) == 0
    return load_results(tmp_path / "serial")


@pytest.mark.slow
def test_killed_worker_task_is_retried(tmp_path, warm, cli):
    """SIGKILL one of two workers mid-sweep from outside: the run still exits 0, and
    results.nc equals an uninterrupted serial run's bitwise (the deterministic version,
    a worker killing itself, runs by default)."""
    text = SHORT_SWEEP.format(T=20.0)
    cfg = _write(tmp_path, text)
    out = tmp_path / "out"
    proc = cli("run", cfg, "--out", out, "--executor", "processes", "--workers", 2,
                stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any((out / "tasks").glob("*.nc")) or proc.poll() is not None, 180,
              "the first task")
    victims = _workers(proc.pid)
    assert victims, "no worker to kill"
    os.kill(min(victims), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    tasks = json.loads((out / "manifest.json").read_text())["tasks"]
    assert all(t["status"] == "done" for t in tasks)
    assert any(t.get("runs") == 2 for t in tasks)  # what the dead worker was running
    xr.testing.assert_identical(load_results(out), _serial_results(tmp_path, text))


def _dies_on(config, *, progress=False, seed, flag=None):
    """A task function whose worker SIGKILLs itself on data.seed = seed (once, with flag).

    Every task first sends its worker SIGINT, which a worker ignores (Ctrl-C is the
    parent's); were it not ignored, the task would fail with KeyboardInterrupt.
    """
    os.kill(os.getpid(), signal.SIGINT)
    if config.data.seed == seed and (flag is None or not os.path.exists(flag)):
        if flag is not None:
            Path(flag).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return run_study.run_task(config, progress=progress)


def test_task_that_killed_its_worker_once_runs_again(tmp_path, warm, monkeypatch, capsys):
    """A worker SIGKILLs itself on one task, once: exit 0, nothing on stderr, that task ran
    again on a fresh worker, and results.nc equals a serial run's bitwise."""
    text = SHORT_SWEEP.format(T=0.5)
    expected = _serial_results(tmp_path, text)
    monkeypatch.setattr(run_study, "run_task",
                        partial(_dies_on, seed=2, flag=str(tmp_path / "flag")))
    out = tmp_path / "out"
    assert main(["run", str(_write(tmp_path, text)), "--out", str(out), "--executor",
                 "processes", "--workers", "2"]) == 0
    assert "meanfield" not in capsys.readouterr().err
    assert (tmp_path / "flag").exists()
    tasks = {t["data.seed"]: t for t in json.loads((out / "manifest.json").read_text())["tasks"]}
    assert tasks[2]["runs"] == 2
    assert all(t["status"] == "done" for t in tasks.values())
    xr.testing.assert_identical(load_results(out), expected)


def test_task_that_kills_its_worker_twice_stops_the_run(tmp_path, warm, monkeypatch, capsys):
    """The other tasks finish, then exit 1 with one line naming the task (its sweep
    values); the finished tasks are kept."""
    monkeypatch.setattr(run_study, "run_task", partial(_dies_on, seed=3))
    cfg = _write(tmp_path, SHORT_SWEEP.format(T=0.5))
    out = tmp_path / "out"
    code = main(["run", str(cfg), "--out", str(out), "--executor", "processes",
                 "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert "data.seed = 3" in err
    assert "twice" in err
    assert "SIGKILL" in err
    tasks = {t["data.seed"]: t for t in json.loads((out / "manifest.json").read_text())["tasks"]}
    assert [tasks[s]["status"] for s in range(4)] == ["done", "done", "done", "pending"]
    assert len(list((out / "tasks").glob("*.nc"))) == 3


def test_blind_break_twice_gives_up():
    class Dead:
        exitcode = 1

    strikes, blind = {}, []
    runner._blame([], {1: Dead()}, Path("/nonexistent"), strikes, blind)
    with pytest.raises(EnvironmentFailure, match="keep dying"):
        runner._blame([], {2: Dead()}, Path("/nonexistent"), strikes, blind)


def test_error_while_unwinding_an_interrupt_is_the_interrupt(tmp_path, monkeypatch, capsys):
    """A cleanup error raised on the way out of Ctrl-C (a lock broken by the interrupt)
    still exits 130 with the interrupt's line; the same error alone is an internal error."""
    broken = "cannot release un-acquired lock"

    def interrupted(*args, **kw):
        try:
            raise KeyboardInterrupt
        finally:
            raise RuntimeError(broken)

    def failing(*args, **kw):
        raise RuntimeError(broken)

    cfg = _write(tmp_path, "[run]\nN = 10\n")
    monkeypatch.setattr(run_study, "run_simulation", interrupted)
    assert main(["run", str(cfg), "--out", str(tmp_path / "a")]) == 130
    assert capsys.readouterr().err.startswith("meanfield: interrupted")
    monkeypatch.setattr(run_study, "run_simulation", failing)
    assert main(["run", str(cfg), "--out", str(tmp_path / "b")]) == 1
    assert "internal error" in capsys.readouterr().err


# ---------------------------------------------------------------- dask, long runs
def test_unreachable_scheduler_fails_fast(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.setattr(runner, "SCHEDULER_TIMEOUT", 2)
    cfg = _write(tmp_path, SHORT_SWEEP.format(T=0.01))
    start = time.monotonic()
    code = main(["run", str(cfg), "--out", str(tmp_path / "out"), "--executor", "dask",
                 "--scheduler", "tcp://127.0.0.1:1"])
    seconds = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 1, err
    assert seconds < 10
    assert len(err.strip().splitlines()) == 1, err
    assert "tcp://127.0.0.1:1" in err
    assert "Traceback" not in err


def test_long_run_says_so_up_front(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_study, "LONG_RUN", 100)
    text = ('[data]\nn = 8\n[dynamics]\nT = 0.05\nsnapshots = 3\n'
            '[schedule]\ngamma = 0.01\n[run]\nN = 20\nseeds = 2\n')
    assert main(["run", str(_write(tmp_path, text)), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    # 20 particles × 5 steps × 2 replicas, and the engine's memory estimate
    size = engine.memory_bytes(parse_config(tomllib.loads(text)), 8, 1, 2)
    assert "a long run: 200 particle-steps (N = 20 × 5 steps × 2 replica(s))" in err
    assert f"about {size / 1e6:.3g} MB of memory" in err
