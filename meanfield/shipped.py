"""Files shipped inside the package: the example configs (reached by name) and data sets.

The configs live in ``meanfield/configs/*.toml`` and the data sets in
``meanfield/datasets/*.npz``, installed with the package, so a command needs no clone:
``meanfield rate quick --out DIR`` runs the shipped ``rate_quick.toml`` and
``meanfield configs`` lists them all.  Inside a config, ``data.path =
"meanfield:closed_form.npz"`` names a shipped data set.
"""

from __future__ import annotations

from pathlib import Path

from meanfield.errors import ConfigError

__all__ = ["PREFIX", "config_command", "config_names", "config_path", "config_summary",
           "dataset_path", "find_config", "resolve_data_path"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DATASET_DIR = Path(__file__).resolve().parent / "datasets"
PREFIX = "meanfield:"  # data.path prefix of a shipped data set


def config_names() -> list[str]:
    """Return the names of the shipped configs (file stems, sorted)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def config_path(name: str) -> Path:
    """Return the file of shipped config ``name`` (``rate_quick`` or ``rate_quick.toml``).

    Raises
    ------
    ConfigError
        No shipped config has that name.
    """
    stem = name.removesuffix(".toml")
    if stem not in config_names():
        msg = f"no shipped config named {name!r} (shipped: {', '.join(config_names())})"
        raise ConfigError(msg)
    return CONFIG_DIR / f"{stem}.toml"


def config_command(name: str) -> str:
    """Return the command that runs shipped config ``name`` (its prefix, else ``run``)."""
    prefix = name.split("_")[0]
    return prefix if prefix in ("rate", "regimes") else "run"


def config_summary(name: str) -> str:
    """Return the first sentence of shipped config ``name``'s opening comment."""
    lines = []
    for line in config_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(" ".join(lines).split())
    return text.split(". ")[0].removesuffix(".") + "."


def find_config(text: str, command: str | None = None) -> Path:
    """Return the config file that ``text`` names on the command line.

    An existing file wins.  Otherwise ``text`` (without ``.toml``) may name a shipped
    config, either in full (``rate_quick``) or after the command's prefix (``quick`` for
    ``meanfield rate``).  Anything else is returned unchanged, so that reading it reports
    the missing file.
    """
    path = Path(text)
    if path.is_file() or path.parent != Path("."):
        return path
    stem = path.name.removesuffix(".toml")
    shipped = config_names()
    for name in (stem, f"{command}_{stem}" if command else None):
        if name in shipped:
            return config_path(name)
    return path


def dataset_path(name: str) -> Path:
    """Return the path of shipped data set ``name`` (e.g. ``digits.npz``)."""
    return DATASET_DIR / name


def resolve_data_path(path: str) -> Path:
    """Return the file ``data.path`` names: ``meanfield:NAME`` is a shipped data set."""
    if not path.startswith(PREFIX):
        return Path(path)
    name = path[len(PREFIX):]
    shipped = sorted(p.name for p in DATASET_DIR.glob("*.npz"))
    if name not in shipped:
        msg = f"data.path {path!r}: no shipped data set of that name (shipped: {shipped})"
        raise ConfigError(msg)
    return DATASET_DIR / name
