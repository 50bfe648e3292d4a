"""End-to-end: `meanfield rate` on a tiny study, and the scripts around it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from meanfield.cli import main
from meanfield.shipped import dataset_path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = """
[data]
n = 8
[dynamics]
mode = "sde"
T = 0.3
snapshots = 3
[schedule]
gamma = 0.1
batch = 4
[run]
seeds = 4
[limit]
method = "pde"
grid = 48
[sweep]
"run.N" = [30, 100, 300]
"""


@pytest.fixture(scope="module")
def rate_dir(cli_study):
    return cli_study("rate", TINY)


def test_rate_writes_contract(rate_dir):
    for name in ("config.toml", "manifest.json", "results.nc", "rate.json", "w2_vs_n.png"):
        assert (rate_dir / name).exists(), name
    r = json.loads((rate_dir / "rate.json").read_text())
    assert r["N"] == [30, 100, 300]
    for block in ("coupling", "w2"):
        b = r[block]
        assert set(b) >= {"mean", "ci", "slope", "slope_ci", "theory", "agrees", "two_term"}
        assert len(b["mean"]) == 3
        assert all(lo <= m <= hi for m, (lo, hi) in zip(b["mean"], b["ci"], strict=True))
        assert b["theory"] == -0.5
    assert len(r["w2"]["floor"]) == 3
    assert r["w2"]["estimator"].startswith("sliced")
    import meanfield as mf

    res = mf.load_results(rate_dir)
    # coupling.mean is E_N: sqrt of the mean over replicas of the per-replica mean sup error
    np.testing.assert_allclose(r["coupling"]["mean"],
                               np.sqrt(res["coupling"].mean("replica").values), rtol=1e-12)
    # the exact (emd2) law-level W2 on the first replicas, with its own floor
    e = r["w2_exact"]
    assert e["N"] == [30, 100, 300]
    assert e["estimator"].startswith("exact")
    assert np.all(np.isfinite(e["mean"]))
    assert np.all(np.asarray(e["floor"]) > 0)
    from meanfield.studies.rate import EXACT_REPLICAS

    assert np.isfinite(res["w2_exact"].values).sum() == 3 * min(EXACT_REPLICAS, 4)
    # timings live in the manifest, never in the results
    tasks = json.loads((rate_dir / "manifest.json").read_text())["tasks"]
    assert all(t["seconds_simulation"] > 0 and t["seconds_distances"] > 0 for t in tasks)
    assert not any(k.startswith("seconds") for k in res.attrs)


def test_rate_needs_an_n_axis(tmp_path, capsys):
    cfg = tmp_path / "r.toml"
    cfg.write_text(TINY.replace('"run.N" = [30, 100, 300]', '"schedule.beta" = [0.5, 1.0]'))
    assert main(["rate", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "run.N" in capsys.readouterr().err


def test_plot_script_replots_several_dirs(rate_dir, tmp_path):
    out = tmp_path / "both.png"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "plot_w2_vs_n.py"), str(rate_dir),
                           str(rate_dir), "--labels", "a", "b", "--out", str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10_000


def test_convergence_rate_script_resumes_finished_dir(rate_dir):
    """The script is a thin entry point: on a finished DIR with the same config it reuses
    every task and rewrites rate.json identically."""
    before = (rate_dir / "rate.json").read_text()
    proc = subprocess.run([sys.executable, str(SCRIPTS / "convergence_rate.py"),
                           str(rate_dir / "config.toml"), "--out", str(rate_dir)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (rate_dir / "rate.json").read_text() == before


def test_closed_form_rate_study(tmp_path):
    """The shipped closed-form study (docs/theory.rst §6, 256 replicas, N = 100 … 10⁴, ≈ 10 s):
    slope −0.5 ± 0.03 and E_N within 3 bootstrap standard errors of sqrt(tr(AΣ₀Aᵀ)/N)
    at every N, A = I − (I − ηQ)^{n_T}."""
    out = tmp_path / "cf"
    assert main(["rate", "closed_form", "--out", str(out)]) == 0  # a shipped config by name
    r = json.loads((out / "rate.json").read_text())
    c = r["coupling"]
    assert abs(c["slope"] + 0.5) <= 0.03
    x = np.load(dataset_path("closed_form.npz"))["x"]
    Q = x.T @ x / len(x)
    eta, n = 0.05, 40
    A = np.eye(2) - np.linalg.matrix_power(np.eye(2) - eta * Q, n)
    exact = np.sqrt(np.trace(A @ (0.49 * np.eye(2)) @ A.T) / np.asarray(r["N"]))
    ci = np.asarray(c["ci"])
    se = (ci[:, 1] - ci[:, 0]) / (2 * 1.96)
    assert np.all(np.abs(np.asarray(c["mean"]) - exact) <= 3 * se)


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_worker_solves_each_limit_once(tmp_path, executor):
    """One worker, three widths: the limit is solved by the first task and reused after.

    The task function (with its LimitCache) goes to each worker once, not with every task.
    """
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "out"
    assert main(["rate", str(cfg), "--out", str(out), "--executor", executor,
                 "--workers", "1"]) == 0
    tasks = json.loads((out / "manifest.json").read_text())["tasks"]
    secs = sorted(t["seconds_limit"] for t in tasks)
    assert len({t["pid"] for t in tasks}) == 1
    assert secs[-1] > 0.0
    assert secs[1] < 0.05 * secs[-1]  # two cache hits: a key lookup against a PDE solve
