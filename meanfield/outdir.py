"""The output directory DIR of a command: whose it is, who holds it, what it may delete.

A DIR that meanfield made holds a marker file, ``.meanfield``, which is also the lock
(an advisory ``flock``): one command at a time per DIR.  A second command on the same
DIR stops at once, naming the holder, or with ``wait`` waits for it to finish.

The rules (docs: "Outputs"):

* a DIR that does not exist or is empty is taken, and marked;
* a non-empty DIR without the marker is refused: meanfield never writes into, and never
  deletes from, a directory it did not make (a DIR written by an older meanfield,
  recognised by its ``config.toml`` and ``manifest.json``, is adopted);
* ``config.toml`` holds the config of the DIR's results.  A DIR holding another config
  is refused, compared as parsed configs, not as text; but a DIR that holds no result
  yet (a start that stopped before finishing anything) takes the new config;
* ``fresh`` deletes only the files meanfield writes (``OUTPUTS``, the task files,
  its temporary files) and keeps anything else.

Callers validate everything first: nothing is written to DIR before the config, its data
and its combination rules have been checked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import re
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .config import Config, parse_config, to_dict, to_toml
from .errors import ConfigError, EnvironmentFailure
from .io import write_atomic

MARKER = ".meanfield"
# every file a command writes at the top of DIR (figures of the paper study by pattern)
OUTPUTS = ("config.toml", "manifest.json", "results.nc", "trajectory.nc", "run.png",
           "limit.nc", "limit.png", "rate.json", "w2_vs_n.png", "regimes.json",
           "limits.json", "regimes_exponent.png", "regimes_limit_type.png", "limits.png")
RESULTS = ("results.nc", "trajectory.nc", "limit.nc")  # a DIR with one of these has results
_TASK_FILE = re.compile(r"[0-9a-f]{16}\.nc")
_TMP_FILE = re.compile(r"\..+\.tmp")


def _is_ours(out: Path) -> bool:
    """Tell whether DIR carries the marker, or is a DIR an older meanfield wrote."""
    if (out / MARKER).exists():
        return True
    try:
        man = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (out / "config.toml").is_file() and isinstance(man, dict) and "command" in man


def _has_results(out: Path) -> bool:
    tasks = out / "tasks"
    return (any((out / name).exists() for name in RESULTS)
            or (tasks.is_dir() and any(_TASK_FILE.fullmatch(p.name) for p in tasks.iterdir())))


def _our_files(out: Path) -> list[Path]:
    """Return the files of DIR that meanfield wrote (what ``fresh`` deletes)."""
    found = [out / n for n in OUTPUTS if (out / n).is_file()]
    found += [p for p in out.iterdir() if p.is_file() and _TMP_FILE.fullmatch(p.name)]
    tasks = out / "tasks"
    if tasks.is_dir():
        found += [p for p in tasks.iterdir() if p.is_file()
                  and (_TASK_FILE.fullmatch(p.name) or _TMP_FILE.fullmatch(p.name))]
    return found


def os_error_hint(err: OSError) -> str:
    """Return what to do about a failed file operation, in a few words."""
    return {errno.ENOSPC: "free some space and rerun (finished work is kept)",
            errno.EROFS: "choose a writable --out",
            errno.EACCES: "choose a --out you may write to",
            errno.EPERM: "choose a --out you may write to",
            errno.EDQUOT: "free some quota and rerun (finished work is kept)"}.get(
                err.errno, "check the path and rerun")


def _environment(out: Path, err: OSError, doing: str) -> EnvironmentFailure:
    reason = err.strerror or str(err)
    return EnvironmentFailure(f"cannot {doing} in --out {out}: {reason}; {os_error_hint(err)}")


def _holder(fh) -> str:
    fh.seek(0)
    try:
        h = json.loads(fh.read() or "{}")
    except ValueError:
        h = {}
    if not h:
        return "another meanfield process"
    return (f"meanfield {h.get('command', '')} (pid {h.get('pid')} on {h.get('host')}, "
            f"since {h.get('since')})")


def _lock(out: Path, wait: bool):
    """Open and lock DIR's marker; return the open file (the lock lives as long as it)."""
    fh = open(out / MARKER, "a+")  # noqa: SIM115 - held open for the command's lifetime
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not wait:
            holder = _holder(fh)
            fh.close()
            msg = (f"--out {out} is in use by {holder}; wait for it to finish, "
                   "rerun with --wait, or use another directory")
            raise ConfigError(msg) from None
        print(f"meanfield: waiting for {_holder(fh)} to release {out}", file=sys.stderr)
        fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def _write_holder(fh, command: str) -> None:
    """Say in the marker who holds DIR (read by a second command that finds it locked)."""
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"command": command, "pid": os.getpid(), "host": platform.node(),
                         "since": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n")
    fh.flush()


def _same_config(cfg_file: Path, config: Config) -> bool | None:
    """True/False: DIR's config.toml is / is not ``config``; None: it cannot be read."""
    try:
        stored = parse_config(tomllib.loads(cfg_file.read_text()))
    except (OSError, ValueError, ConfigError):
        return None
    return to_dict(stored) == to_dict(config)


@contextlib.contextmanager
def claim(out: str | os.PathLike, config: Config, *, command: str, fresh: bool = False,
          wait: bool = False) -> Iterator[bool]:
    """Take DIR for ``config`` while the ``with`` block runs; yield True if DIR holds it.

    Creates DIR (and its marker) if needed, locks it, applies ``fresh`` and checks or
    writes ``config.toml``; the lock is released when the block ends.

    Raises
    ------
    ConfigError
        DIR is a file, is a non-empty directory meanfield did not make, holds results of
        another config, or is in use by another command (without ``wait``).
    EnvironmentFailure
        DIR cannot be created or written (read-only, no space, no permission).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        msg = f"--out {out} is a file, not a directory; choose a directory path"
        raise ConfigError(msg)
    if out.is_dir() and any(out.iterdir()) and not _is_ours(out):
        msg = (f"--out {out} is not empty and was not made by meanfield (no {MARKER} file); "
               "meanfield writes only into new or empty directories: choose another one")
        raise ConfigError(msg)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fh = _lock(out, wait)
    except OSError as err:
        raise _environment(out, err, "create the lock file") from None
    try:
        cfg_file = out / "config.toml"
        if fresh:
            ours = _our_files(out)
            for path in ours:
                path.unlink()
            kept = [p for p in out.iterdir() if p.name != MARKER and p.name != "tasks"]
            if kept:
                names = ", ".join(sorted(p.name for p in kept)[:5])
                print(f"meanfield: --fresh removed {len(ours)} file(s) meanfield wrote and "
                      f"kept {len(kept)} it did not ({names})", file=sys.stderr)
        same = _same_config(cfg_file, config) if cfg_file.exists() else None
        if same is False and _has_results(out):
            msg = (f"--out {out} holds results of a different config (config.toml); "
                   "use another directory, or --fresh to start over")
            raise ConfigError(msg)
        if same is None and cfg_file.exists() and _has_results(out):
            msg = (f"--out {out}: config.toml cannot be read, but DIR holds results; "
                   "use another directory, or --fresh to start over")
            raise ConfigError(msg)
        if not same:
            write_atomic(cfg_file, to_toml(config))
        _write_holder(fh, command)
        yield bool(same)
    finally:
        with contextlib.suppress(OSError):
            fh.close()

