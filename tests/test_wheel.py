"""The wheel, installed (not editable) in a fresh venv and run from another directory.

It must run the main job and the digits experiment with no clone and no scikit-learn:
the configs and data sets are package data, reached by name.  Slow (it installs the
dependencies and compiles the kernels of a new install from cold): CI runs it as a step of
its own (``.ci/run``); locally ``python -m pytest --runslow tests/test_wheel.py``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env=None, timeout=3600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_runs_main_job_and_digits_without_a_clone(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
          str(ROOT)], cwd=tmp_path)
    (wheel,) = dist.glob("meanfield-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR")}
    cli = str(venv / "bin" / "meanfield")

    # an installed package, not this clone; no scikit-learn to fall back on
    where = _run([str(py), "-c", "import meanfield, importlib.util; print(meanfield.__file__);"
                  "print(importlib.util.find_spec('sklearn'))"], cwd=elsewhere, env=env)
    assert str(venv) in where.splitlines()[0]
    assert where.splitlines()[1] == "None"
    assert "rate_quick" in _run([cli, "configs"], cwd=elsewhere, env=env)

    # the README's main job, as a user would shrink it: print the shipped config, edit it
    text = _run([cli, "configs", "rate_quick"], cwd=elsewhere, env=env)
    assert '"run.N" = [100, 300, 1000, 3000, 10000]' in text
    (elsewhere / "small.toml").write_text(text.replace(
        '"run.N" = [100, 300, 1000, 3000, 10000]', '"run.N" = [40, 80, 160]'))
    _run([cli, "rate", "small.toml", "--out", "rate", "--set", "run.seeds=8",
          "--set", "dynamics.T=2.0", "--set", "limit.grid=48"], cwd=elsewhere, env=env)
    rate = json.loads((elsewhere / "rate" / "rate.json").read_text())
    assert rate["N"] == [40, 80, 160]
    assert (elsewhere / "rate" / "w2_vs_n.png").read_bytes()[:4] == b"\x89PNG"

    # a shipped data set named in a shipped config, run by name
    _run([cli, "limit", "rate_closed_form", "--out", "cf"], cwd=elsewhere, env=env)
    assert (elsewhere / "cf" / "limit.nc").is_file()

    # the digits experiment in miniature, from the shipped digits copy
    _run([cli, "paper", "--out", "paper", "--sizes", "20", "40", "--T", "1", "--replicas",
          "2", "--fixed-sizes", "10", "20", "--fixed-T", "0.5", "--fixed-replicas", "3"],
         cwd=elsewhere, env=env)
    paper = json.loads((elsewhere / "paper" / "paper.json").read_text())
    assert paper["data"]["inputs"] == 64
    assert (elsewhere / "paper" / "w2_vs_n.png").is_file()
