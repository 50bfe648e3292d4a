"""`meanfield regimes`: width selection, the grid, an end-to-end tiny study, resume."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from meanfield.cli import main
from meanfield.config import parse_config
from meanfield.studies.regimes import cells, widths

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = """
[data]
n = 8
noise = 1.0
[dynamics]
mode = "sde"
T = 0.5
snapshots = 2
[run]
seeds = 4
[limit]
method = "pde"
grid = 32
[regimes]
beta = [0.5, 1.0]
alpha = [0.0]
gamma = [0.5]
batch = [1]
N_min = 16
points = 3
budget = 2e4
spread_seeds = 6
ratios = [1.0, 0.1, 0.01]
"""


def _n_steps(T, dt):
    return max(1, round(T / dt))


@pytest.mark.parametrize(("beta", "alpha"), [(0.0, 0.0), (0.5, 0.25), (1.0, 0.0)])
def test_widths_span_decades_within_budget(beta, alpha):
    cfg = parse_config({"dynamics": {"T": 1.0}, "regimes": {"N_min": 10, "budget": 1e5,
                                                             "points": 4}})
    ns = widths(cfg, beta, alpha, 1.0)
    assert ns[0] == 10
    assert len(ns) == 4
    assert ns[-1] >= 10 * 10 ** 1.5 - 1                       # at least 1.5 decades
    ratios = np.diff(np.log10(ns))
    np.testing.assert_allclose(ratios, ratios.mean(), atol=0.02)  # log-spaced

    def cost(n):  # N · n_T, γ_{α,N} = (γ N^{β−1})^{1/(1−α)} written out independently
        return n * _n_steps(1.0, (n ** (beta - 1.0)) ** (1.0 / (1.0 - alpha)))

    if ns[-1] > round(10 * 10 ** 1.5):   # extended beyond 1.5 decades: only within budget
        assert cost(ns[-1]) <= 1e5
    nxt = round(ns[-1] * 10 ** 0.25)
    assert ns[-1] >= 10_000 or cost(nxt) > 1e5 or ns[-1] == round(10 * 10 ** 1.5)


def test_cells_grid_and_errors():
    cfg = parse_config({"run": {"seeds": 2},
                        "regimes": {"beta": [0.5, 1.0], "alpha": [0.0, 0.25],
                                    "gamma": [1.0, 0.1], "batch": [1, 10]}})
    grid = cells(cfg)
    assert len(grid) == 8
    assert {(c["gamma"], c["batch"]) for c in grid} == {(1.0, 1), (0.1, 10)}
    c = grid[-1]
    s = c["config"].schedule
    assert (s.beta, s.alpha, s.gamma, s.batch) == (c["beta"], c["alpha"], c["gamma"],
                                                   c["batch"])
    from meanfield.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[sweep\]"):
        cells(parse_config({"run": {"seeds": 2}, "sweep": {"run.N": [10, 20]}}))
    with pytest.raises(ConfigError, match="run.seeds must be >= 2"):
        cells(parse_config({}))


@pytest.fixture(scope="module")
def regimes_dir(cli_study):
    return cli_study("regimes", TINY)


def test_regimes_writes_contract(regimes_dir):
    for name in ("config.toml", "manifest.json", "results.nc", "regimes.json", "limits.json",
                 "regimes_exponent.png", "regimes_limit_type.png", "limits.png"):
        assert (regimes_dir / name).exists(), name
    cells_ = json.loads((regimes_dir / "regimes.json").read_text())
    assert isinstance(cells_, list)
    assert len(cells_) == 2
    for c in cells_:
        assert set(c) >= {"beta", "alpha", "gamma", "batch", "N", "exponent", "exponent_ci",
                          "theory", "agrees", "limit_type"}
        assert c["N"][0] == 16
        assert np.log10(c["N"][-1] / 16) >= 1.5 - 1e-9
        lo, hi = c["exponent_ci"]
        assert lo <= c["exponent"] <= hi
        assert c["limit_type"] in ("deterministic", "stochastic")
    half, one = cells_
    assert half["theory"] == -0.25
    assert one["theory"] == -0.5
    # limit type, measured: across-seed variance from a fixed W_0 falls like N^{-(1-β)}
    # at β = 1/2 and stays flat at β = 1 (CIs from a bootstrap over 6 seeds)
    assert half["limit_type"] == "deterministic"
    assert one["limit_type"] == "stochastic"
    lo, hi = half["spread"]["exponent_ci"]
    assert hi < 0
    assert lo <= -0.5 + 0.25
    lim = json.loads((regimes_dir / "limits.json").read_text())
    assert [d["gamma_alpha_over_M"] for d in lim["noisy_limits"]] == [1.0, 0.1, 0.01]
    assert all(d["w2_to_beta_lt_1_limit"] > 0 for d in lim["noisy_limits"])
    assert lim["laws"]
    assert all(set(d) >= {"w2", "floor", "within"} for d in lim["laws"])


def test_regimes_spread_is_across_seed_variance(regimes_dir):
    """Independent check of `spread`: rerun the fixed-W_0 runs of one task and compute the
    across-seed variance with NumPy."""
    import meanfield as mf
    from meanfield.io import load_results

    res = load_results(regimes_dir)
    cfg = mf.load_config(regimes_dir / "config.toml")
    base = cells(cfg)[0]["config"]
    n = int(res["N"].values[0, 0])
    runs = np.stack([mf.simulate(mf.with_values(base, {
        "run.N": n, "init.seed": base.run.seed, "run.seeds": 1,
        "run.seed": base.run.seed + 1 + s})).W[0] for s in range(6)])   # (6, time, N, D)
    assert all(np.array_equal(runs[0, 0], r[0]) for r in runs)       # one fixed W_0
    assert not np.array_equal(runs[0, -1], runs[1, -1])               # different noise
    var = runs[:, -1].var(axis=0, ddof=1).sum(axis=1).mean()
    np.testing.assert_allclose(res["spread"].values[0, 0].mean(), var, rtol=1e-12)


def test_regimes_resume_reuses_tasks(regimes_dir):
    before = (regimes_dir / "regimes.json").read_text()
    proc = subprocess.run([sys.executable, str(SCRIPTS / "stepsize_regimes.py"),
                           str(regimes_dir / "config.toml"), "--out", str(regimes_dir)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads((regimes_dir / "manifest.json").read_text())["tasks"]
    assert tasks
    assert all(t["status"] == "reused" for t in tasks)
    assert (regimes_dir / "regimes.json").read_text() == before


def test_regimes_bad_config_exit_2(tmp_path, capsys):
    cfg = tmp_path / "r.toml"
    cfg.write_text(TINY.replace("beta = [0.5, 1.0]", "beta = [0.5, 1.5]"))
    assert main(["regimes", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "regimes.beta[1] must lie in [0, 1], got 1.5" in err
    assert not (tmp_path / "o").exists()
