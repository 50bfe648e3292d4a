"""``meanfield paper`` (scripts/reproduce_paper.py) end to end on tiny settings, and the
fixed-init property."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import meanfield as mf
from meanfield.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reproduce_paper.py"


def _finite_numbers(obj, path="paper.json"):
    """Yield (path, value) for every number in a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _finite_numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _finite_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield path, obj


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    argv = ["--out", str(out), "--sizes", "40", "80", "160", "--T", "2", "--replicas", "2",
            "--fixed-sizes", "10", "40", "--fixed-T", "1", "--fixed-replicas", "3"]
    assert main(["paper", *argv]) == 0
    return out


def test_outputs_exist(paper_dir):
    for name in ("paper.json", "manifest.json", "histograms_beta0.75.png",
                 "histograms_beta1.png", "w2_vs_n.png", "accuracy_vs_n.png",
                 "fixed_init.png"):
        path = paper_dir / name
        assert path.is_file(), name
        assert path.stat().st_size > 0, name
    for name in json.loads((paper_dir / "paper.json").read_text())["figures"].values():
        assert (paper_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_json(paper_dir):
    res = json.loads((paper_dir / "paper.json").read_text())
    assert {"settings", "config", "data", "width_study", "fixed_init", "figures"} <= set(res)
    assert res["data"]["input0_constant"] is True  # pixel 0 of the digits is always 0
    assert 0 in res["data"]["constant_inputs"]
    assert res["data"]["inputs"] == 64
    assert res["data"]["classes"] == 10
    assert res["data"]["n_test"] > 0
    bad = [(p, v) for p, v in _finite_numbers(res) if not math.isfinite(v)]
    assert not bad
    assert [st["beta"] for st in res["width_study"]] == [0.75, 1.0]
    for st in res["width_study"]:
        assert st["N"] == [40, 80, 160]
        assert st["widest"] == 160
        moving = st["moving_input"]
        assert moving not in res["data"]["constant_inputs"]
        assert st["params"] == {"a_0": 0, f"b_{moving}": 10 + moving, "b_0": 10}
        assert len(st["runs"]) == 3
        for run in st["runs"]:
            assert len(run["test_accuracy_T"]) == 2
            assert all(0.0 <= a <= 1.0 for a in run["test_accuracy_T"])
            assert run["test_risk_T"][0] < run["test_risk_0"]  # training reduces test risk
        for blk in st["w2"].values():
            assert blk["fit_N"] == [40, 80]
            assert {"slope", "slope_ci", "mean"} <= set(blk["fit"])
            assert len(blk["floor_iid"]) == 2
            assert blk["floor_two_widest_runs"] > 0
            assert blk["floor_halves_of_widest"] > 0
        # b_0 never moves: at T it is still the U(±1/8) initial law, not pinned to a value
        assert st["w2"]["b_0"]["per_replica"][0][0] > 0
    fixed = res["fixed_init"]
    assert fixed["identity"]["sgd_max_abs_diff"] == 0.0
    assert max(fixed["identity"]["sgd_spread"]) == 0.0
    assert fixed["identity"]["sde_spread"][-1] > 0.0
    modes = [(b["mode"], b["beta"]) for b in fixed["across_runs"]]
    assert modes == [("sgd", 0.75), ("sgd", 1.0), ("sde", 1.0)]
    man = json.loads((paper_dir / "manifest.json").read_text())
    assert man["command"] == "reproduce_paper"
    assert man["timings"]["total_s"] > 0


def _dirac_config(mode, N=30, seeds=1):
    rng = np.random.default_rng(3)
    point = [0.0] * 10 + (rng.uniform(-1, 1, 64) / 8).tolist()
    return mf.parse_config({
        "model": {"layers": "both", "activation": "relu", "loss": "cross_entropy"},
        "data": {"kind": "digits", "n": 300, "test_fraction": 0.2},
        "init": {"kind": "dirac", "point": point, "seed": 0},
        "schedule": {"gamma": 1.0, "beta": 1.0, "batch": 20},
        "dynamics": {"mode": mode, "noise": "independent", "T": 5.0, "snapshots": 3},
        "run": {"N": N, "seeds": seeds}})


def test_sgd_with_dirac_init_keeps_neurons_identical():
    traj = mf.simulate(_dirac_config("sgd", seeds=2))
    W = traj.W  # (R, S, N, D)
    assert np.array_equal(W, np.broadcast_to(W[:, :, :1], W.shape))
    assert np.ptp(W[:, -1, 0], axis=0).max() > 0  # the replicas' batches moved them apart
    assert np.abs(W[:, -1] - W[:, 0]).max() > 1e-3  # and training moved them


def test_independent_sde_spreads_a_dirac_init():
    traj = mf.simulate(_dirac_config("sde"))
    W = traj.W[0]
    assert np.ptp(W[0], axis=0).max() == 0.0
    spread = np.ptp(W[-1], axis=0)
    assert spread.max() > 1e-3
    assert np.count_nonzero(spread > 0) > 10  # output weights and the non-constant inputs


def test_script_is_the_paper_command():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--full" in out
    assert "meanfield paper" in out
