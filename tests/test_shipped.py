"""Shipped configs and data sets (package data), reached by name; the generated config
reference against the checks it describes."""

import re

import numpy as np
import pytest

import meanfield as mf
from meanfield.cli import main
from meanfield.config import reference
from meanfield.errors import ConfigError
from meanfield.shipped import (
    CONFIG_DIR,
    config_names,
    dataset_path,
    find_config,
    resolve_data_path,
)


def test_every_shipped_config_loads():
    names = config_names()
    assert {"quickstart", "rate_quick", "rate_closed_form", "regimes_quick"} <= set(names)
    for name in names:
        mf.load_config(CONFIG_DIR / f"{name}.toml")


def test_find_config_by_name_prefix_and_file(tmp_path, monkeypatch):
    assert find_config("rate_quick") == CONFIG_DIR / "rate_quick.toml"
    assert find_config("rate_quick.toml") == CONFIG_DIR / "rate_quick.toml"
    assert find_config("quick", "rate") == CONFIG_DIR / "rate_quick.toml"
    assert find_config("quick", "regimes") == CONFIG_DIR / "regimes_quick.toml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rate_quick").write_text("[run]\nN = 3\n")
    assert str(find_config("rate_quick")) == "rate_quick"  # a user's file wins
    assert str(find_config("nope", "rate")) == "nope"
    assert str(find_config("sub/rate_quick")) == "sub/rate_quick"  # a path is never a name


def test_configs_command_lists_and_prints(capsys):
    assert main(["configs"]) == 0
    listing = capsys.readouterr().out
    for name in config_names():
        assert name in listing
    assert main(["configs", "rate_quick"]) == 0
    assert capsys.readouterr().out == (CONFIG_DIR / "rate_quick.toml").read_text()
    assert main(["configs", "nope"]) == 2
    assert "no shipped config named 'nope'" in capsys.readouterr().err


def test_unknown_config_name_is_an_input_error(tmp_path, capsys):
    assert main(["run", "no_such_config", "--out", str(tmp_path / "o")]) == 2
    assert "no_such_config" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_shipped_data_sets():
    for name in ("digits.npz", "closed_form.npz"):
        with np.load(dataset_path(name), allow_pickle=False) as f:
            assert {"x", "y"} <= set(f.files)
    assert resolve_data_path("meanfield:closed_form.npz") == dataset_path("closed_form.npz")
    assert str(resolve_data_path("data/x.npz")) == "data/x.npz"
    with pytest.raises(ConfigError, match="no shipped data set"):
        resolve_data_path("meanfield:nope.npz")
    cfg = mf.load_config(CONFIG_DIR / "rate_closed_form.toml")
    data = mf.make_data(cfg)
    x = np.load(dataset_path("closed_form.npz"))["x"]
    np.testing.assert_array_equal(data.x, x)


def test_missing_shipped_data_set_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nkind = "file"\npath = "meanfield:nope.npz"\n'
                   '[model]\nlayers = "first"\nactivation = "linear"\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "no shipped data set" in capsys.readouterr().err


# ------------------------------------------------------------ the generated reference
def _section_fields():
    return {s["section"]: {k["key"]: k for k in s["keys"]} for s in reference()}


def test_reference_lists_every_key_with_its_default():
    cfg = mf.Config()
    for sec, keys in _section_fields().items():
        section = getattr(cfg, sec)
        assert set(keys) == set(vars(section)), sec
        for name, k in keys.items():
            assert k["default"] == getattr(section, name)
            assert k["allowed"], f"{sec}.{name}"
            assert k["doc"], f"{sec}.{name}"


def _outside(allowed: str):
    """Values just outside the range an 'allowed' phrase states (independently parsed)."""
    m = re.fullmatch(r"one of (.*)", allowed)
    if m:
        return ["not-a-choice"]
    m = re.fullmatch(r"an integer >= (-?\d+)", allowed)
    if m:
        return [int(m.group(1)) - 1, 1.5]
    m = re.fullmatch(r"an integer in \[(\d+), (\d+)\]", allowed)
    if m:
        return [int(m.group(1)) - 1, int(m.group(2)) + 1]
    m = re.fullmatch(r"a number (>=|>) ([-\d.e]+)", allowed)
    if m:
        lo = float(m.group(2))
        return [lo if m.group(1) == ">" else lo - 1e-9 - abs(lo) * 1e-9, "x"]
    m = re.fullmatch(r"a number in ([\[(])([-\d.e]+), ([-\d.e]+)([\])])", allowed)
    if m:
        lo, hi = float(m.group(2)), float(m.group(3))
        return [lo if m.group(1) == "(" else lo - 1e-6, hi if m.group(4) == ")" else hi + 1e-6]
    if allowed == "true or false":
        return [1]
    return []


def test_reference_allowed_ranges_are_the_checks():
    """Every range the reference states is enforced: a value just outside it is refused."""
    checked = 0
    for sec, keys in _section_fields().items():
        for name, k in keys.items():
            phrase = k["allowed"].removesuffix(", or unset")
            for bad in _outside(phrase):
                with pytest.raises(ConfigError, match=re.escape(f"{sec}.{name}")):
                    mf.parse_config({sec: {name: bad}})
                checked += 1
    assert checked >= 40
