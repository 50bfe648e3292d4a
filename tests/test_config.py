import dataclasses
import tomllib

import pytest

from meanfield.config import (
    Config,
    DataConfig,
    FrozenTable,
    InitConfig,
    ModelConfig,
    load_config,
    parse_config,
    to_dict,
    to_toml,
    with_values,
)
from meanfield.errors import ConfigError

DEFAULTS = {
    "model": {"layers": "both", "activation": "tanh", "loss": "squared", "l2": 0.0},
    "data": {"kind": "teacher", "n": None, "input_dim": 1, "teacher_width": 4, "noise": 0.0,
             "classes": 2, "quadrature": False, "test_fraction": 0.0, "path": None, "seed": 0},
    "init": {"kind": "normal", "scale": 1.0, "scale_a": None, "scale_b": None, "point": None,
             "seed": None},
    "schedule": {"gamma": 1.0, "beta": 1.0, "alpha": 0.0, "batch": 10},
    "dynamics": {"mode": "sde", "noise": "independent", "sampling": "iid", "T": 1.0,
                 "snapshots": 11, "dt_factor": 1.0},
    "run": {"N": 1000, "seeds": 1, "seed": 0, "dtype": "float64"},
    "limit": {"method": "auto", "N_ref": 1_000_000, "grid": 256, "dt": None, "seed": 0},
}


def test_defaults_match_the_table():
    cfg = Config()
    for section, values in DEFAULTS.items():
        assert dataclasses.asdict(getattr(cfg, section)) == values
    assert cfg.sweep is None
    assert parse_config({}) == cfg
    assert hash(cfg) == hash(Config())
    assert isinstance(cfg.model.l2, float)
    assert isinstance(cfg.schedule.gamma, float)


def test_every_key_has_a_description():
    for section in (ModelConfig, DataConfig, InitConfig):
        for f in dataclasses.fields(section):
            assert f.metadata["doc"]


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run.N = 3  # type: ignore[misc]


def _rich_config():
    mapping = {
        "model": {"activation": "relu", "loss": "cross_entropy", "l2": 1e-300},
        "data": {"kind": "file", "path": 'dir/with "quotes"\\ and ünïcode\t.npz', "n": 7,
                 "classes": 3, "test_fraction": 0.1, "seed": 5},
        "init": {"kind": "dirac", "point": [0.1, -2, 1 / 3], "scale_a": 2, "seed": 2**40},
        "schedule": {"gamma": 0.1 + 0.2, "beta": 0.75, "alpha": 0.5, "batch": 1},
        "dynamics": {"mode": "sgd", "T": 1e16, "snapshots": 2, "dt_factor": 5e-324},
        "run": {"N": 1, "seeds": 3, "dtype": "float32"},
        "sweep": {"run.N": [100, 1000], "schedule.beta": [0.5, 1.0], "nested": {"x": "y"},
                  "list": [{"a": 1}, [True, False]]},
        "limit": {"method": "pde", "grid": 64, "dt": 1e-3},
    }
    return parse_config(mapping)


def test_round_trip_through_toml():
    for cfg in (Config(), _rich_config()):
        text = to_toml(cfg)
        assert parse_config(tomllib.loads(text)) == cfg
        assert tomllib.loads(text) == to_dict(cfg)


def test_floats_and_quoted_keys_in_toml():
    cfg = _rich_config()
    text = to_toml(cfg)
    assert '"run.N" = [100, 1000]' in text
    assert "T = 1e+16" in text
    assert "gamma = 0.30000000000000004" in text
    assert "[sweep.nested]" in text
    assert "scale_a = 2.0" in text
    assert "scale_b" not in text
    assert cfg.init.point == (0.1, -2.0, 1 / 3)
    assert isinstance(cfg.init.point[1], float)


def test_raw_sections_are_frozen_and_hashable():
    cfg = _rich_config()
    assert isinstance(cfg.sweep, FrozenTable)
    assert cfg.sweep["run.N"] == (100, 1000)
    assert cfg.limit.grid == 64
    assert hash(cfg) == hash(_rich_config())
    assert to_dict(cfg)["sweep"] == {"run.N": [100, 1000], "schedule.beta": [0.5, 1.0],
                                     "nested": {"x": "y"}, "list": [{"a": 1}, [True, False]]}
    with pytest.raises(TypeError):
        cfg.sweep["run.N"] = (1,)  # type: ignore[index]


def test_to_dict_omits_none():
    d = to_dict(Config())
    assert "n" not in d["data"]
    assert "point" not in d["init"]
    assert "sweep" not in d
    assert d["run"]["N"] == 1000


def _raises(match, mapping=None, overrides=()):
    with pytest.raises(ConfigError, match=match) as info:
        parse_config(mapping or {}, overrides)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("schedule.beta", 1.5, r"schedule\.beta must lie in \[0, 1\], got 1\.5"),
        ("schedule.beta", -0.1, r"schedule\.beta must lie in \[0, 1\]"),
        ("schedule.alpha", 1, r"schedule\.alpha must lie in \[0, 1\)"),
        ("schedule.gamma", 0, r"schedule\.gamma must be > 0, got 0"),
        ("schedule.batch", 0, r"schedule\.batch must be an integer >= 1"),
        ("dynamics.snapshots", 1, r"dynamics\.snapshots must be an integer >= 2, got 1"),
        ("dynamics.snapshots", "x", r"dynamics\.snapshots must be an integer >= 2, got 'x'"),
        ("dynamics.dt_factor", 0, r"dynamics\.dt_factor must lie in \(0, 1\]"),
        ("dynamics.T", float("inf"), r"dynamics\.T must be a finite number > 0"),
        ("data.test_fraction", 1, r"data\.test_fraction must lie in \[0, 1\)"),
        ("data.classes", 1, r"data\.classes must be an integer >= 2"),
        ("data.quadrature", 1, r"data\.quadrature must be true or false"),
        ("data.path", 3, r"data\.path must be a non-empty string"),
        ("model.l2", -1.0, r"model\.l2 must be >= 0"),
        ("model.l2", float("nan"), r"model\.l2 must be a finite number >= 0"),
        ("model.activation", "softplus", r"model\.activation must be one of 'tanh'"),
        ("init.scale", 0.0, r"init\.scale must be > 0"),
        ("init.point", [1, "a"], r"init\.point must be a non-empty list of finite numbers"),
        ("init.point", [], r"init\.point must be a non-empty list"),
        ("run.N", 0, r"run\.N must be an integer >= 1, got 0"),
        ("run.N", 1.5, r"run\.N must be an integer >= 1, got 1\.5"),
        ("run.N", True, r"run\.N must be an integer >= 1, got True"),
        ("run.seed", 1.0, r"run\.seed must be an integer >= 0, got 1\.0"),
        ("schedule.beta", "x", r"schedule\.beta must be a finite number in \[0, 1\], got 'x'"),
        ("schedule.beta", True, r"schedule\.beta must be a finite number"),
        ("run.dtype", "float16", r"run\.dtype must be one of 'float64', 'float32'"),
    ],
)
def test_bad_values_name_the_key_and_range(key, value, match):
    section, name = key.split(".")
    _raises(match, {section: {name: value}})


def test_unknown_key_and_section():
    _raises(r"^unknown key model\.foo \(allowed: activation, l2, layers, loss\)$",
            {"model": {"foo": 1}})
    msg = _raises(r"^unknown section \[bar\] \(allowed: data, dynamics, init, limit, model, "
                  r"regimes, run, schedule, sweep\)$", {"bar": {}})
    assert "[bar]" in msg
    _raises(r"\[model\] must be a table", {"model": 3})
    _raises(r"\[sweep\] must be a table", {"sweep": [1, 2]})


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"model": {"loss": "cross_entropy", "layers": "first"}, "data": {"kind": "digits"}},
         r"model\.loss = 'cross_entropy' requires model\.layers = 'both'"),
        ({"model": {"loss": "cross_entropy"}},
         r"model\.loss = 'cross_entropy' requires data\.kind != 'teacher'"),
        ({"model": {"loss": "logistic"}, "data": {"kind": "gaussian_mixture", "classes": 3}},
         r"model\.loss = 'logistic' with data\.kind = 'gaussian_mixture' requires "
         r"data\.classes = 2, got 3"),
        ({"data": {"quadrature": True, "kind": "digits"}},
         r"data\.quadrature = true requires data\.kind = 'teacher'"),
        ({"data": {"quadrature": True, "input_dim": 2}},
         r"data\.quadrature = true requires data\.input_dim = 1, got 2"),
        ({"data": {"kind": "file"}}, r"data\.kind = 'file' requires data\.path"),
        ({"init": {"kind": "dirac"}}, r"init\.kind = 'dirac' requires init\.point"),
        ({"init": {"point": [0.0, 1.0]}}, r"init\.point is only allowed with init\.kind"),
    ],
)
def test_cross_field_rules(mapping, match):
    _raises(match, mapping)


def test_cross_field_rules_accept_valid_combinations():
    parse_config({"model": {"loss": "cross_entropy"}, "data": {"kind": "gaussian_mixture",
                                                               "classes": 5}})
    parse_config({"model": {"loss": "logistic"}, "data": {"kind": "gaussian_mixture"}})
    parse_config({"data": {"quadrature": True}})
    parse_config({"init": {"kind": "dirac", "point": [0.5, 0.5]}})


def test_direct_construction_is_validated():
    with pytest.raises(ConfigError, match=r"model\.l2 must be >= 0"):
        ModelConfig(l2=-1)
    with pytest.raises(ConfigError, match=r"init\.kind = 'dirac' requires init\.point"):
        Config(init=InitConfig(kind="dirac"))
    assert DataConfig(noise=1).noise == 1.0


def test_overrides_are_parsed_as_toml():
    cfg = parse_config({"schedule": {"beta": 0.5}}, [
        "schedule.beta=0.75", "run.N=100", "data.kind=file", 'model.activation="relu"',
        " init.point = [0.1, 0.2] ", "init.kind=dirac", "data.quadrature=false",
        "data.path=some/dir/file.npz",
    ])
    assert cfg.schedule.beta == 0.75
    assert isinstance(cfg.schedule.beta, float)
    assert cfg.run.N == 100
    assert type(cfg.run.N) is int
    assert cfg.data.kind == "file"
    assert cfg.model.activation == "relu"
    assert cfg.init.point == (0.1, 0.2)
    assert cfg.data.path == "some/dir/file.npz"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("schedule.beta", r"bad override 'schedule\.beta': expected section\.key=value"),
        ("model.foo=1", r"bad override 'model\.foo=1': unknown key model\.foo \(allowed:"),
        ("bar.x=1", r"bad override 'bar\.x=1': unknown section \[bar\]"),
        ("sweep.x=1", r"bad override 'sweep\.x=1': unknown section \[x\]"),
        ("init.point=[0.1,", r"bad override 'init\.point=\[0\.1,': malformed TOML value"),
        ('data.kind="digits', r"bad override .*malformed TOML value"),
        ("run.N=", r"bad override 'run\.N=': malformed TOML value"),
        ("run.N=1\nrun.seed=2", r"bad override .*single TOML value"),
        ("schedule.beta=1.5", r"schedule\.beta must lie in \[0, 1\], got 1\.5"),
        ("run.N=abc", r"run\.N must be an integer >= 1, got 'abc'"),
    ],
)
def test_bad_overrides(override, match):
    _raises(match, {}, [override])


def test_load_config(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[schedule]\nbeta = 0.5\n\n[sweep]\n"run.N" = [100, 1000]\n')
    cfg = load_config(path, ["run.seeds=4"])
    assert cfg.schedule.beta == 0.5
    assert cfg.run.seeds == 4
    assert cfg.sweep == {"run.N": (100, 1000)}
    assert load_config(str(path)) == with_values(cfg, {"run.seeds": None})


def test_load_config_missing_and_malformed(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nloss = 1\n")
    with pytest.raises(ConfigError, match=r"^malformed TOML in .*bad\.toml: ") as info:
        load_config(bad)
    assert "\n" not in str(info.value)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="malformed TOML in"):
        load_config(binary)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)


def test_with_values():
    cfg = Config()
    new = with_values(cfg, {"schedule.beta": 0.5, "run.N": 100, "init.point": (1, 2),
                            "init.kind": "dirac"})
    assert new.schedule.beta == 0.5
    assert new.run.N == 100
    assert new.init.point == (1.0, 2.0)
    assert cfg == Config()
    assert with_values(new, {"init.point": None, "init.kind": "normal"}).init == cfg.init
    with pytest.raises(ConfigError, match=r"unknown key run\.n"):
        with_values(cfg, {"run.n": 3})
    with pytest.raises(ConfigError, match=r"schedule\.beta must lie in \[0, 1\]"):
        with_values(cfg, {"schedule.beta": 2})


def test_sweep_values_must_be_toml_values():
    with pytest.raises(ConfigError, match=r"sweep\.\"a b\" must be a TOML value"):
        parse_config({"sweep": {"a b": None}})


def test_regimes_section():
    cfg = parse_config({"regimes": {"beta": [0.5, 1], "gamma": [1, 0.1], "batch": [1, 10]}})
    assert cfg.regimes.beta == (0.5, 1.0)
    assert cfg.regimes.batch == (1, 10)
    assert "regimes" in to_dict(cfg)
    assert "regimes" not in to_dict(Config())
    assert parse_config(tomllib.loads(to_toml(cfg))) == cfg
    _raises(r"^regimes\.beta\[1\] must lie in \[0, 1\], got 2$", {"regimes": {"beta": [0, 2]}})
    _raises(r"^regimes\.alpha must list each value once", {"regimes": {"alpha": [0, 0]}})
    _raises(r"^regimes\.decades must lie in \[1\.5, 6\]", {"regimes": {"decades": 1}})
    _raises(r"^regimes\.gamma and regimes\.batch must have the same length",
            {"regimes": {"gamma": [1, 2]}})


def test_sweep_axis_override():
    base = {"run": {"N": 10}, "sweep": {"run.N": [10, 20], "schedule.beta": [0.5, 1.0]}}
    cfg = parse_config(base, ["sweep.run.N=[40, 80, 160]"])
    assert dict(cfg.sweep) == {"run.N": (40, 80, 160), "schedule.beta": (0.5, 1.0)}
    assert list(cfg.sweep) == ["run.N", "schedule.beta"]  # axis order kept
    cfg = parse_config({}, ['sweep."dynamics.T"=[1.0, 2.0]'])
    assert dict(cfg.sweep) == {"dynamics.T": (1.0, 2.0)}
    assert base["sweep"]["run.N"] == [10, 20]  # the mapping is not modified
    with pytest.raises(ConfigError, match="unknown key run.NN"):
        parse_config({}, ["sweep.run.NN=[1, 2]"])
    with pytest.raises(ConfigError, match="unknown section"):
        parse_config({}, ["sweep.nope.N=[1, 2]"])
