"""Typed, validated experiment description: TOML in, frozen dataclasses out.

Every key of the validated sections ([model], [data], [init], [schedule], [dynamics],
[run], [limit], [regimes]) is declared once, as a dataclass field whose metadata holds its
check and a short description (``dataclasses.fields(ModelConfig)[0].metadata["doc"]``).
Checks run in ``__post_init__``, so a directly constructed ``Config`` is validated too;
every invalid input raises :class:`~meanfield.errors.ConfigError` with one line naming
the dotted key and the allowed values. The optional [sweep] section is kept raw, frozen
into hashable :class:`~meanfield.config.FrozenTable` mappings (lists become tuples), and read by
:mod:`meanfield.runner`. [regimes] is written out only when it differs from its defaults.
"""

from __future__ import annotations

import datetime
import math
import numbers
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from os import PathLike
from typing import Any, ClassVar, NoReturn

from meanfield.errors import ConfigError

__all__ = [
    "Config", "DataConfig", "DynamicsConfig", "FrozenTable", "InitConfig", "LimitConfig",
    "ModelConfig", "RegimesConfig",
    "RunConfig", "ScheduleConfig", "load_config", "parse_config", "reference", "to_dict",
    "to_toml",
    "with_values",
]

Check = Callable[[str, Any], Any]


def _fail(key: str, phrase: str, value: Any) -> NoReturn:
    msg = f"{key} must {phrase}, got {value!r}"
    raise ConfigError(msg)


def _pred(phrase: str, ok: Callable[[Any], bool], convert: Callable | None = None) -> Check:
    """Return a check that accepts ``v`` when ``ok(v)`` and stores ``convert(v)``."""
    def check(key: str, v: Any) -> Any:
        if not ok(v):
            _fail(key, phrase, v)
        return v if convert is None else convert(v)
    check.allowed = phrase.removeprefix("be ")  # type: ignore[attr-defined]
    return check


def _real(v: Any) -> float | None:
    """Return ``v`` as a finite float, or None if it is not a finite real (bool excluded)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    try:
        x = float(v)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def _choice(*allowed: str) -> Check:
    return _pred("be one of " + ", ".join(map(repr, allowed)),
                 lambda v: isinstance(v, str) and v in allowed)


def _int(lo: int | None = None, hi: int | None = None) -> Check:
    where = ("" if lo is None else f" >= {lo}") if hi is None else f" in [{lo}, {hi}]"
    return _pred("be an integer" + where,
                 lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
                 and (lo is None or v >= lo) and (hi is None or v <= hi), int)


def _float(lo: float, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Check:
    if hi is None:
        where = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        where = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def check(key: str, v: Any) -> float:
        x = _real(v)
        if x is None:
            _fail(key, "be a finite number " + where, v)
        above = x > lo if lo_open else x >= lo
        if not (above and (hi is None or (x < hi if hi_open else x <= hi))):
            _fail(key, ("be " if hi is None else "lie ") + where, v)
        return x
    check.allowed = f"a number {where}"  # type: ignore[attr-defined]
    return check


_bool = _pred("be true or false", lambda v: isinstance(v, bool))
_str = _pred("be a non-empty string", lambda v: isinstance(v, str) and v != "")
_points = _pred("be a non-empty list of finite numbers",
                lambda v: isinstance(v, list | tuple) and len(v) > 0
                and all(_real(x) is not None for x in v), lambda v: tuple(map(float, v)))


def _optional(check: Check) -> Check:
    def run(key: str, v: Any) -> Any:
        return None if v is None else check(key, v)
    run.allowed = f"{_allowed(check)}, or unset"  # type: ignore[attr-defined]
    return run


def _allowed(check: Check) -> str:
    """Return the values ``check`` accepts, in words (for the config reference)."""
    return getattr(check, "allowed", "")


def _key(default: Any, check: Check, doc: str) -> Any:
    """Declare one config key: its default, its check and a one-line description."""
    return field(default=default, metadata={"check": check, "doc": doc})


class _Section:
    """Mixin: validate and normalise every field (int → float for float keys, ...)."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = f.metadata["check"](f"{self.section}.{f.name}", getattr(self, f.name))
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """[model]: the two-layer network and its training loss."""

    section: ClassVar[str] = "model"
    layers: str = _key("both", _choice("both", "first"), "trained layers")
    activation: str = _key("tanh", _choice("tanh", "sigmoid", "relu", "linear"),
                           "hidden activation")
    loss: str = _key("squared", _choice("squared", "logistic", "cross_entropy"), "loss")
    l2: float = _key(0.0, _float(0.0), "L2 penalty on the parameters")


@dataclass(frozen=True)
class DataConfig(_Section):
    """[data]: the data law; ``n = None`` means 64 atoms (synthetic) or all (digits)."""

    section: ClassVar[str] = "data"
    kind: str = _key("teacher", _choice("teacher", "gaussian_mixture", "digits", "file"),
                     "data law")
    n: int | None = _key(None, _optional(_int(1)),
                         "number of atoms (None: kind default; not used with kind = 'file')")
    input_dim: int = _key(1, _int(1), "input dimension")
    teacher_width: int = _key(4, _int(1), "hidden width of the teacher network")
    noise: float = _key(0.0, _float(0.0), "label noise standard deviation")
    classes: int = _key(2, _int(2), "number of classes")
    quadrature: bool = _key(False, _bool, "Gauss–Hermite atoms instead of samples")
    test_fraction: float = _key(0.0, _float(0.0, 1.0, hi_open=True), "held-out fraction")
    path: str | None = _key(None, _optional(_str), "data file (kind = 'file')")
    seed: int = _key(0, _int(0), "seed of the data law")


@dataclass(frozen=True)
class InitConfig(_Section):
    """[init]: law of the initial particles; scale_a/scale_b default to ``scale``."""

    section: ClassVar[str] = "init"
    kind: str = _key("normal", _choice("normal", "uniform", "dirac", "torch_default"),
                     "initial law")
    scale: float = _key(1.0, _float(0.0, lo_open=True), "scale of every parameter")
    scale_a: float | None = _key(None, _optional(_float(0.0, lo_open=True)),
                                 "scale of the output weight (None: scale)")
    scale_b: float | None = _key(None, _optional(_float(0.0, lo_open=True)),
                                 "scale of the input weights (None: scale)")
    point: tuple[float, ...] | None = _key(None, _optional(_points),
                                           "the atom of a dirac initial law")
    seed: int | None = _key(None, _optional(_int(0)), "seed of the initial law (None: run)")


@dataclass(frozen=True)
class ScheduleConfig(_Section):
    """[schedule]: stepsize regime γ_{α,N} = (γ N^{β−1})^{1/(1−α)} and batch size M."""

    section: ClassVar[str] = "schedule"
    gamma: float = _key(1.0, _float(0.0, lo_open=True), "stepsize constant γ")
    beta: float = _key(1.0, _float(0.0, 1.0), "width exponent β")
    alpha: float = _key(0.0, _float(0.0, 1.0, hi_open=True), "decay exponent α")
    batch: int = _key(10, _int(1), "batch size M")


@dataclass(frozen=True)
class DynamicsConfig(_Section):
    """[dynamics]: which particle dynamics runs, up to time T."""

    section: ClassVar[str] = "dynamics"
    mode: str = _key("sde", _choice("sgd", "sde", "ode"), "particle dynamics")
    noise: str = _key("independent", _choice("independent", "shared"), "SDE noise")
    sampling: str = _key("iid", _choice("iid", "epochs"), "SGD batch sampling")
    T: float = _key(1.0, _float(0.0, lo_open=True), "final time")
    snapshots: int = _key(11, _int(2), "number of saved times in [0, T]")
    dt_factor: float = _key(1.0, _float(0.0, 1.0, lo_open=True), "dt / γ_{α,N} (sde, ode)")


@dataclass(frozen=True)
class RunConfig(_Section):
    """[run]: number of particles, replicas and the master seed."""

    section: ClassVar[str] = "run"
    N: int = _key(1000, _int(1), "number of particles (neurons)")
    seeds: int = _key(1, _int(1), "number of independent replicas")
    seed: int = _key(0, _int(0), "master seed")
    dtype: str = _key("float64", _choice("float64", "float32"), "particle dtype")


@dataclass(frozen=True)
class LimitConfig(_Section):
    """[limit]: how the N → ∞ McKean–Vlasov limit is computed (docs/theory.rst §4)."""

    section: ClassVar[str] = "limit"
    method: str = _key("auto", _choice("auto", "pde", "reference", "quadrature"),
                       "solver: pde (D ≤ 2), reference (N_ref particles), quadrature")
    N_ref: int = _key(1_000_000, _int(1), "particles of the reference solver")
    grid: int = _key(256, _int(8), "PDE cells per axis")
    dt: float | None = _key(None, _optional(_float(0.0, lo_open=True)),
                            "time step of reference / quadrature (None: automatic)")
    seed: int = _key(0, _int(0), "seed of the reference solver")


def _list_of(check: Check, *, distinct: bool = True) -> Check:
    """Check a non-empty list whose every item passes ``check``; stored as a tuple."""
    def run(key: str, v: Any) -> tuple:
        if not isinstance(v, list | tuple) or not v:
            _fail(key, "be a non-empty list", v)
        items = tuple(check(f"{key}[{i}]", x) for i, x in enumerate(v))
        if distinct and len(set(items)) != len(items):
            _fail(key, "list each value once", list(v))
        return items
    each = "distinct items" if distinct else "items"
    run.allowed = f"a non-empty list of {each}, each {_allowed(check)}"  # type: ignore
    return run


@dataclass(frozen=True)
class RegimesConfig(_Section):
    """[regimes]: the grid of ``meanfield regimes`` (docs/theory.rst §2, §4, §5).

    Cells are β × α × the (γ, M) pairs ``zip(gamma, batch)``. Each cell is a rate study
    over N from ``N_min`` up to the widest N whose run costs at most ``budget``
    particle-steps per replica (N · n_T), but over at least ``decades`` decades.
    """

    section: ClassVar[str] = "regimes"
    beta: tuple[float, ...] = _key((0.0, 0.25, 0.5, 0.75, 1.0), _list_of(_float(0.0, 1.0)),
                                   "width exponents β")
    alpha: tuple[float, ...] = _key((0.0, 0.25), _list_of(_float(0.0, 1.0, hi_open=True)),
                                    "decay exponents α")
    gamma: tuple[float, ...] = _key((1.0,), _list_of(_float(0.0, lo_open=True), distinct=False),
                                    "stepsize constants γ, paired with batch")
    batch: tuple[int, ...] = _key((1,), _list_of(_int(1), distinct=False),
                                  "batch sizes M, paired with gamma")
    N_min: int = _key(30, _int(2), "smallest N of every cell")
    decades: float = _key(1.5, _float(1.5, 6.0), "least span of N, in decades")
    points: int = _key(4, _int(3, 1000), "widths per cell (log-spaced)")
    budget: float = _key(2e6, _float(1.0), "particle-steps N·n_T per replica at the widest N")
    spread_seeds: int = _key(8, _int(3, 10_000),
                             "noise seeds of the fixed-W_0 limit-type study")
    ratios: tuple[float, ...] = _key((1.0, 0.3, 0.1, 0.03), _list_of(_float(0.0, lo_open=True)),
                                     "γ_α/M values of the β = 1 limits compared with β < 1")


_SECTIONS: dict[str, type[_Section]] = {
    c.section: c for c in (ModelConfig, DataConfig, InitConfig, ScheduleConfig,
                           DynamicsConfig, RunConfig, LimitConfig, RegimesConfig)}
_RAW_SECTIONS = ("sweep",)


class FrozenTable(Mapping[str, Any]):
    """Read-only, hashable mapping holding a raw TOML table (nested tables frozen too).

    Lists are stored as tuples, so ``config.sweep["run.N"] == (100, 1000)``;
    :func:`to_dict` gives plain dicts and lists back.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        """Return the value of ``key``."""
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the keys in file order."""
        return iter(self._data)

    def __len__(self) -> int:
        """Return the number of keys."""
        return len(self._data)

    def __hash__(self) -> int:
        """Hash the items (order-independent, like equality)."""
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        """Return ``FrozenTable({...})``."""
        return f"FrozenTable({self._data!r})"


_SCALARS = (str, int, float, datetime.date, datetime.time)  # bool is an int; datetime a date


def _freeze(key: str, v: Any) -> Any:
    if isinstance(v, Mapping):
        for k in v:
            if not isinstance(k, str):
                _fail(key, "have string keys", k)
        return FrozenTable({k: _freeze(f"{key}.{_toml_key(k)}", x) for k, x in v.items()})
    if isinstance(v, list | tuple):
        return tuple(_freeze(f"{key}[{i}]", x) for i, x in enumerate(v))
    if not isinstance(v, _SCALARS):
        _fail(key, "be a TOML value (string, number, boolean, date, list or table)", v)
    return v


@dataclass(frozen=True)
class Config:
    """A whole experiment; ``Config()`` is the default one.

    ``sweep`` is an unvalidated raw table (:class:`~meanfield.config.FrozenTable`) or None.
    Cross-field rules are checked here, after every section checked itself.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    init: InitConfig = field(default_factory=InitConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    limit: LimitConfig = field(default_factory=LimitConfig)
    regimes: RegimesConfig = field(default_factory=RegimesConfig)
    sweep: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        """Check section types, freeze the raw tables, then check cross-field rules."""
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                _fail(name, f"be a {cls.__name__}", getattr(self, name))
        for name in _RAW_SECTIONS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                _fail(f"[{name}]", "be a table", value)
            object.__setattr__(self, name, None if value is None else _freeze(name, value))
        m, d, i = self.model, self.data, self.init
        rules = [
            (m.loss == "cross_entropy" and m.layers != "both",
             f"model.loss = 'cross_entropy' requires model.layers = 'both', got {m.layers!r}"),
            (m.loss == "cross_entropy" and d.kind == "teacher",
             "model.loss = 'cross_entropy' requires data.kind != 'teacher'"),
            (m.loss == "logistic" and d.kind == "gaussian_mixture" and d.classes != 2,
             "model.loss = 'logistic' with data.kind = 'gaussian_mixture' requires "
             f"data.classes = 2, got {d.classes}"),
            (d.quadrature and d.kind != "teacher",
             f"data.quadrature = true requires data.kind = 'teacher', got {d.kind!r}"),
            (d.quadrature and d.input_dim != 1,
             f"data.quadrature = true requires data.input_dim = 1, got {d.input_dim}"),
            (d.kind == "file" and d.path is None, "data.kind = 'file' requires data.path"),
            (i.kind == "dirac" and i.point is None, "init.kind = 'dirac' requires init.point"),
            (len(self.regimes.gamma) != len(self.regimes.batch),
             f"regimes.gamma and regimes.batch must have the same length (they are paired), "
             f"got {len(self.regimes.gamma)} and {len(self.regimes.batch)}"),
            (i.kind != "dirac" and i.point is not None,
             f"init.point is only allowed with init.kind = 'dirac', got {i.kind!r}"),
            (d.kind != "file" and d.path is not None,
             f"data.path is only read with data.kind = 'file', got {d.kind!r}"),
        ]
        for broken, msg in rules:
            if broken:
                raise ConfigError(msg)


def _split_key(dotted: str) -> tuple[str, str]:
    """Split ``"section.key"`` of a validated section, or raise naming the allowed ones."""
    section, _, name = dotted.partition(".")
    if section not in _SECTIONS:
        msg = f"unknown section [{section}] (allowed: {', '.join(sorted(_SECTIONS))})"
        raise ConfigError(msg)
    allowed = sorted(f.name for f in fields(_SECTIONS[section]))
    if name not in allowed:
        msg = f"unknown key {dotted} (allowed: {', '.join(allowed)})"
        raise ConfigError(msg)
    return section, name


def _parse_override(item: str) -> tuple[str, str, Any]:
    """Parse ``"section.key=value"``; value is TOML, or a bare word taken as a string.

    ``sweep.section.key=[...]`` (or ``sweep."section.key"=[...]``) sets one sweep axis:
    returned as ``("sweep", "section.key", values)``.
    """
    dotted, eq, text = item.partition("=")
    dotted, text = dotted.strip(), text.strip()
    try:
        if not eq:
            msg = "expected section.key=value"
            raise ConfigError(msg)
        if dotted.startswith("sweep."):
            axis = dotted.removeprefix("sweep.").strip("\"'")
            _split_key(axis)
            section, name = "sweep", axis
        else:
            section, name = _split_key(dotted)
        try:
            doc = tomllib.loads(f"v = {text}")
            if len(doc) != 1:
                msg = "the value must be a single TOML value"
                raise ConfigError(msg)
            value = doc["v"]
        except tomllib.TOMLDecodeError as err:
            if not text or text[0] in "\"'[{":
                msg = f"malformed TOML value ({err})"
                raise ConfigError(msg) from err
            value = text
        except (RecursionError, ValueError) as err:  # nesting too deep, huge integer
            msg = f"malformed TOML value ({type(err).__name__}: {err})"
            raise ConfigError(msg) from None
    except ConfigError as err:
        msg = f"bad override {item!r}: {err}"
        raise ConfigError(msg) from err
    return section, name, value


def parse_config(mapping: Mapping[str, Any], overrides: Iterable[str] = ()) -> Config:
    """Build a validated :class:`Config` from a TOML-shaped nested mapping.

    Parameters
    ----------
    mapping : Mapping
        ``{section: {key: value}}`` as returned by ``tomllib.load``; absent keys take their
        defaults. Not modified.
    overrides : iterable of str
        ``"section.key=value"`` strings applied after ``mapping``; ``value`` is parsed as a
        TOML value (``schedule.beta=0.75``, ``init.point=[0.1, 0.2]``), and a bare word
        that is not TOML is taken as a string (``data.kind=digits``).  A sweep axis is
        set with ``sweep.run.N=[100, 1000]`` (replacing that axis, or adding it).

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Unknown section or key, bad value or type, broken cross-field rule, bad override.
    """
    if not isinstance(mapping, Mapping):
        _fail("the config", "be a table", mapping)
    tables: dict[str, Any] = {}
    for section, table in mapping.items():
        if section in _RAW_SECTIONS:
            tables[section] = table
            continue
        if section not in _SECTIONS:
            allowed = ", ".join(sorted([*_SECTIONS, *_RAW_SECTIONS]))
            msg = f"unknown section [{section}] (allowed: {allowed})"
            raise ConfigError(msg)
        if not isinstance(table, Mapping):
            _fail(f"[{section}]", "be a table", table)
        for name in table:
            _split_key(f"{section}.{name}")
        tables[section] = dict(table)
    for item in overrides:
        section, name, value = _parse_override(item)
        if section == "sweep":
            if not isinstance(tables.get("sweep", {}), Mapping):
                _fail("[sweep]", "be a table", tables["sweep"])
            tables["sweep"] = {**tables.get("sweep", {}), name: value}
        else:
            tables.setdefault(section, {})[name] = value
    sections = {s: cls(**tables.get(s, {})) for s, cls in _SECTIONS.items()}
    return Config(**sections, sweep=tables.get("sweep"))


def load_config(path: str | PathLike[str], overrides: Iterable[str] = ()) -> Config:
    """Read a TOML config file, apply ``overrides`` and validate (see :func:`parse_config`).

    Raises
    ------
    ConfigError
        Missing or unreadable file, malformed TOML, or any invalid content.
    """
    try:
        with open(path, "rb") as fh:
            mapping = tomllib.load(fh)
    except FileNotFoundError as err:
        msg = f"config file not found: {path}"
        raise ConfigError(msg) from err
    except OSError as err:
        msg = f"cannot read config file {path}: {err.strerror}"
        raise ConfigError(msg) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        msg = f"malformed TOML in {path}: {err}"
        raise ConfigError(msg) from err
    except (RecursionError, ValueError) as err:  # nesting too deep, a 5000-digit integer
        msg = f"malformed TOML in {path}: {type(err).__name__}: {err}"
        raise ConfigError(msg) from None
    return parse_config(mapping, overrides)


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


_OPTIONAL_SECTIONS = ("regimes",)  # omitted when at their defaults (used by one command)


def reference() -> list[dict[str, Any]]:
    """Return every validated key, section by section, for the config reference.

    One dict per section: ``section``, ``doc`` (the section's docstring) and ``keys``, a
    list of dicts with ``key``, ``default``, ``allowed`` (the accepted values in words,
    from the key's check) and ``doc`` (its description).  The documentation's config page
    is generated from it, so the code stays the one source.
    """
    out = []
    for name, cls in _SECTIONS.items():
        keys = [{"key": f.name, "default": f.default, "allowed": _allowed(f.metadata["check"]),
                 "doc": f.metadata["doc"]} for f in fields(cls)]
        out.append({"section": name, "doc": cls.__doc__ or "", "keys": keys})
    return out


def to_dict(config: Config) -> dict[str, Any]:
    """Return ``config`` as nested plain dicts and lists, with None values omitted.

    [regimes], read only by ``meanfield regimes``, is omitted while it holds its defaults.
    """
    out: dict[str, Any] = {}
    for name in _SECTIONS:
        section = getattr(config, name)
        if name in _OPTIONAL_SECTIONS and section == type(section)():
            continue
        out[name] = {f.name: _plain(getattr(section, f.name)) for f in fields(section)
                     if getattr(section, f.name) is not None}
    for name in _RAW_SECTIONS:
        if getattr(config, name) is not None:
            out[name] = _plain(getattr(config, name))
    return out


def with_values(config: Config, values: Mapping[str, Any]) -> Config:
    """Return a new validated config with dotted keys replaced (None restores the default).

    Example: ``with_values(cfg, {"run.N": 100, "schedule.beta": 0.5})``.
    """
    tables = to_dict(config)
    for dotted, value in values.items():
        section, name = _split_key(dotted)
        if value is None:
            tables.get(section, {}).pop(name, None)
        else:
            tables.setdefault(section, {})[name] = value
    return parse_config(tables)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _toml_str(s: str) -> str:
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04X}" if ord(c) < 0x20
                                              or ord(c) == 0x7F else c) for c in s) + '"'


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _toml_str(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".e") else r + ".0"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, datetime.date | datetime.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    _fail("a TOML value", "be a string, number, boolean, date, list or table", v)


def _emit_table(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    if lines:
        lines.append("")
    lines.append("[" + ".".join(map(_toml_key, path)) + "]")
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
              if not isinstance(v, dict)]
    for k, v in table.items():
        if isinstance(v, dict):
            _emit_table(lines, [*path, k], v)


def to_toml(config: Config) -> str:
    """Return ``config`` as TOML text; ``parse_config(tomllib.loads(to_toml(c))) == c``.

    Floats are written with ``repr`` (exact round trip, always with '.' or 'e'); keys that
    are not bare TOML keys are quoted (``"run.N" = [100, 1000]``); None values are omitted.
    """
    lines: list[str] = []
    for name, table in to_dict(config).items():
        _emit_table(lines, [name], table)
    return "\n".join(lines) + "\n"
