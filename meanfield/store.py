"""Results on disk: xarray datasets written as netCDF, and the run manifest.

Results files hold results only (no timings, hosts or dates), so equal runs give equal
arrays; everything about *how* a run went goes to ``manifest.json``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr

from .particles import Trajectory

_PACKAGES = ("meanfield", "numpy", "numba", "llvmlite", "pot", "scipy", "xarray", "matplotlib")


def trajectory_dataset(traj: Trajectory) -> xr.Dataset:
    """Return a Trajectory as an xarray Dataset with DESIGN.md's names and dimensions."""
    data = {
        "u": (("replica", "time", "atom", "output"), traj.u),
        "risk": (("replica", "time"), traj.risk),
        "step": (("time",), traj.steps.astype(np.int32)),
    }
    if traj.W is not None:
        data["W"] = (("replica", "time", "neuron", "param"), traj.W)
    for name in ("test_risk", "accuracy", "test_accuracy"):
        if getattr(traj, name) is not None:
            data[name] = (("replica", "time"), getattr(traj, name))
    s = traj.schedule
    attrs = {"dt": s.dt, "gamma_alpha_N": s.gamma_an, "n_steps": int(s.n_total)}
    return xr.Dataset(data, coords={"time": traj.times}, attrs=attrs)


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write ``ds`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="scipy")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def manifest(command: str, **extra) -> dict:
    """Return the provenance record of a command: versions, git commit, host, date, extras."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import numba

    return {
        "command": command,
        "argv": sys.argv,
        "versions": {"python": platform.python_version(), **versions},
        "git_commit": _git_commit(),
        "host": platform.node(),
        "platform": platform.platform(),
        "threads": numba.get_num_threads(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
