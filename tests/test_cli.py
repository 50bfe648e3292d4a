"""End-to-end tests of the `meanfield` command line: files written, exit codes, messages."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from meanfield.cli import main

TINY = """
[data]
n = 8
[dynamics]
mode = "{mode}"
T = 0.05
snapshots = 3
[schedule]
gamma = 0.01
batch = 4
[run]
N = 20
seeds = 2
"""


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("mode", ["sgd", "sde", "ode"])
def test_run_writes_contract_files(tmp_path, mode):
    cfg = _write(tmp_path, TINY.format(mode=mode))
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--set", "run.N=16"]) == 0
    for name in ("config.toml", "manifest.json", "trajectory.nc", "run.png"):
        assert (out / name).exists(), name
    with xr.open_dataset(out / "trajectory.nc", engine="scipy") as ds:
        assert ds["W"].dims == ("replica", "time", "neuron", "param")
        assert ds["W"].shape == (2, 3, 16, 2)
        assert ds["u"].dims == ("replica", "time", "atom", "output")
        assert ds["risk"].dims == ("replica", "time")
        assert np.all(np.isfinite(ds["risk"].values))
        assert ds["time"].values[0] == 0.0
    man = json.loads((out / "manifest.json").read_text())
    assert man["versions"]["numba"]
    assert len(man["seeds"]["replica_keys"]) == 2
    assert "N = 16" in (out / "config.toml").read_text().replace("N = 16", "N = 16")


def test_same_config_resumes_other_config_refused(tmp_path, capsys):
    cfg = _write(tmp_path, TINY.format(mode="sgd"))
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    assert "already complete" in capsys.readouterr().out
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["run", str(cfg), "--out", str(out), "--set", "run.N=30"]) == 2
    assert "different config" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert main(["run", str(cfg), "--out", str(out), "--set", "run.N=30", "--fresh"]) == 0
    assert "N = 30" in (out / "config.toml").read_text()


BAD = [
    ("[schedule]\nbeta = 1.5\n", [], "schedule.beta"),
    ("[model]\nfoo = 1\n", [], "model.foo"),
    ("[nonsense]\nx = 1\n", [], "nonsense"),
    ("[run]\nN = 1.5\n", [], "run.N"),
    ("[run\nN = 3\n", [], "malformed TOML"),
    ("", ["schedule.alpha=1"], "schedule.alpha"),
    ("", ["nokey"], "nokey"),
    ('[data]\nkind = "file"\npath = "/nonexistent/x.npz"\n', [], "/nonexistent/x.npz"),
    ('[init]\nkind = "dirac"\npoint = [1.0]\n', [], "init.point"),
]


@pytest.mark.parametrize(("text", "sets", "needle"), BAD)
def test_bad_input_exit_2_names_key(tmp_path, capsys, text, sets, needle):
    cfg = _write(tmp_path, text)
    args = ["run", str(cfg), "--out", str(tmp_path / "o")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_data_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.array([[0.0], [np.nan]]), y=np.array([1.0, 2.0]))
    cfg = _write(tmp_path, f'[data]\nkind = "file"\npath = "{bad}"\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert str(bad) in capsys.readouterr().err


def test_missing_config_file_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "none.toml" in capsys.readouterr().err


def test_blowup_exit_3_names_replica_and_step(tmp_path, capsys):
    text = ('[model]\nactivation = "linear"\n[schedule]\ngamma = 50.0\n'
            '[dynamics]\nmode = "ode"\nT = 200.0\nsnapshots = 2\n[run]\nN = 10\n')
    cfg = _write(tmp_path, text)
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "replica 0" in err
    assert "step" in err
    assert "Traceback" not in err


def test_python_dash_m_and_console_script(tmp_path):
    cfg = _write(tmp_path, TINY.format(mode="sgd"))
    proc = subprocess.run([sys.executable, "-m", "meanfield", "run", str(cfg), "--out",
                           str(tmp_path / "o"), "--set", "run.seeds=1"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "meanfield", "run", str(cfg), "--out",
                           str(tmp_path / "o"), "--set", "schedule.gamma=-1"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "schedule.gamma" in proc.stderr


LIN = """
[model]
layers = "first"
activation = "linear"
[data]
n = 12
input_dim = 2
[dynamics]
mode = "ode"
T = 0.5
snapshots = 3
[schedule]
gamma = 0.05
[run]
N = 30
seeds = 2
[limit]
method = "{method}"
N_ref = 2000
"""


@pytest.mark.parametrize("method", ["quadrature", "reference"])
def test_limit_command_writes_contract_files(tmp_path, method):
    cfg = _write(tmp_path, LIN.format(method=method))
    out = tmp_path / "lim"
    assert main(["limit", str(cfg), "--out", str(out)]) == 0
    for name in ("config.toml", "manifest.json", "limit.nc", "limit.png"):
        assert (out / name).exists(), name
    with xr.open_dataset(out / "limit.nc", engine="scipy") as ds:
        assert ds["u"].dims == ("t_u", "atom", "output")
        assert ds["points"].dims == ("time", "point", "param")
        assert ds["weights"].dims == ("time", "point")
        np.testing.assert_allclose(ds["weights"].sum("point").values, 1.0, rtol=1e-12)
        assert ds["t_u"].values[0] == 0.0
        assert ds["t_u"].values[-1] == pytest.approx(0.5)
        assert ds.attrs["method"] == method


def test_run_couple_adds_coupling_variables(tmp_path):
    cfg = _write(tmp_path, LIN.format(method="quadrature"))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--couple"]) == 0
    with xr.open_dataset(out / "trajectory.nc", engine="scipy") as ds:
        assert ds["coupling_sq"].dims == ("replica", "neuron")
        assert ds["coupling_rms"].dims == ("replica", "time")
        assert ds["output_error"].dims == ("replica", "time")
        assert np.all(ds["coupling_sq"].values > 0)


def test_limit_of_shared_noise_at_beta_one_is_input_error(tmp_path, capsys):
    cfg = _write(tmp_path, '[dynamics]\nmode = "sde"\nnoise = "shared"\n')
    assert main(["limit", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "shared" in err
    assert "Traceback" not in err
