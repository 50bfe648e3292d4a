"""Results on disk: xarray datasets written as netCDF, the run manifest, the DIR rule.

Results files hold results only (no timings, hosts or dates), so equal runs give equal
arrays; everything about *how* a run went goes to ``manifest.json``.  This module imports
no engine code: trajectories and limits are read through their attributes.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # xarray is imported where it is used: `import meanfield` stays quick
    import xarray as xr

    from .engine import Trajectory
    from .limit import Limit

# attributes of a task file that say where it came from, not what it holds
PROVENANCE = ("task_id", "checksum", "results_format", "meanfield_version", "git_commit")
_PACKAGES = ("meanfield", "numpy", "numba", "llvmlite", "pot", "scipy", "xarray", "matplotlib")


def trajectory_dataset(traj: Trajectory) -> xr.Dataset:
    """Return a Trajectory as an xarray Dataset (names and dimensions: docs/guide/outputs.rst)."""
    import xarray as xr

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
    if traj.coupling_sq is not None:
        data["coupling_sq"] = (("replica", "neuron"), traj.coupling_sq)
        data["coupling_rms"] = (("replica", "time"), traj.coupling_rms)
        data["output_error"] = (("replica", "time"), traj.output_error)
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


def dataset_checksum(ds: xr.Dataset) -> str:
    """Return the sha256 of a dataset's variables, coordinates and attributes.

    Every variable's name, dtype, shape and bytes (integers as int64, floats
    little-endian: the same in memory and read back from netCDF), and every attribute but
    ``checksum`` itself as plain Python values, in sorted order.  A task file stores it
    (``attrs["checksum"]``), and a rerun redoes a task whose file no longer matches it.
    """
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        a = np.ascontiguousarray(ds[name].values)
        if np.issubdtype(a.dtype, np.integer):  # netCDF3 keeps int64 as int32
            a = a.astype("<i8")
        elif a.dtype.kind == "f":  # in memory little-endian, on disk big-endian
            a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    for key in sorted(k for k in ds.attrs if k != "checksum"):
        value = ds.attrs[key]  # as plain Python: netCDF reads 1 back as np.int32(1)
        plain = value if isinstance(value, str) else np.asarray(value).tolist()
        h.update(f"{key}={plain!r};".encode())
    return h.hexdigest()


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` by a synced temporary file and a rename (no partial file).

    The temporary file is ``.NAME.PID.tmp`` beside ``path`` and is removed if the write
    fails (a full disk leaves neither a partial nor a 0-byte file).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def git_commit() -> str | None:
    """Return the git commit of the package's checkout (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _numba_threads() -> int | None:
    """Numba's thread count if the engine is loaded (read, never imported from here)."""
    numba = sys.modules.get("numba")
    return None if numba is None else numba.get_num_threads()


def manifest(command: str, **extra) -> dict:
    """Return the provenance record of a command: versions, git commit, host, date, extras.

    ``threads`` is Numba's thread count unless ``extra`` gives it (a sweep records its
    workers' count).
    """
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "command": command,
        "argv": sys.argv,
        "versions": {"python": platform.python_version(), **versions},
        "git_commit": git_commit(),
        "host": platform.node(),
        "platform": platform.platform(),
        "threads": _numba_threads(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def dim_names(keys, taken=()) -> dict[str, str]:
    """Return the dimension name of each axis.

    The last part of the key (``run.N`` → ``N``), or the whole key with ``.`` → ``_``
    where two axes would share a name or the name is ``taken`` (a variable of the
    results: the axis ``limit.dt`` becomes ``limit_dt`` beside the variable ``dt``).
    """
    last = [k.split(".")[-1] for k in keys]
    return {k: (n if last.count(n) == 1 and n not in taken else k.replace(".", "_"))
            for k, n in zip(keys, last, strict=True)}


def gather(tasks, datasets, axes: dict) -> xr.Dataset:
    """Stack the datasets of a sweep's tasks into one Dataset with a dimension per axis.

    Axis ``run.N`` becomes dimension ``N`` (see :func:`dim_names`), with the axis values
    as its coordinate.  Dimensions whose size differs between tasks (``neuron``, ``time``
    when T or snapshots vary) are padded with NaN, and so is a variable that only some
    tasks have (``accuracy`` in a sweep over ``data.kind``): the result holds the union.
    Each task's actual snapshot times become the variable ``t`` (axes..., time), the
    time dimension an index, and its scalar attributes (dt, n_steps, ...) variables over
    the axes.

    Parameters
    ----------
    tasks : list of runner.Task
        Anything with an ``index`` (position along each axis).
    datasets : list of xarray.Dataset, one per task (same order)
    axes : dict
        Axis key → values, as :func:`meanfield.runner.axes` returns.
    """
    import xarray as xr

    per_task = []
    for ds in datasets:
        fields = {k: (v.dims, v.values) for k, v in ds.data_vars.items()}
        if "time" in ds.coords:
            fields["t"] = (("time",), ds["time"].values)
        for key, val in ds.attrs.items():
            if (isinstance(val, int | float | np.number) and not isinstance(val, bool)
                    and key not in PROVENANCE):
                fields[key] = ((), np.asarray(val))
        per_task.append(fields)
    names_all = list(dict.fromkeys(name for f in per_task for name in f))  # union, in order
    taken = set(names_all) | {d for f in per_task for dims, _ in f.values() for d in dims}
    names = dim_names(list(axes), taken)
    adims = [names[k] for k in axes]
    ashape = [len(v) for v in axes.values()]
    out = {}
    for name in names_all:
        have = [f[name] for f in per_task if name in f]
        dims = have[0][0]
        if any(d != dims for d, _ in have):
            msg = (f"sweep tasks disagree on the dimensions of {name!r}: "
                   f"{sorted({d for d, _ in have})}")
            raise ValueError(msg)
        size = [max(v.shape[i] for _, v in have) for i in range(len(dims))]
        vals = [f[name][1] if name in f else None for f in per_task]
        ragged = len(have) < len(per_task) or any(v.shape != tuple(size) for _, v in have)
        dtype = np.result_type(*(v for _, v in have))
        if ragged and not np.issubdtype(dtype, np.floating):
            dtype = np.float64
        arr = np.full(ashape + size, np.nan if np.issubdtype(dtype, np.floating) else 0,
                      dtype=dtype)
        for task, v in zip(tasks, vals, strict=True):
            if v is not None:
                arr[task.index + tuple(slice(0, n) for n in v.shape)] = v
        out[name] = (tuple(adims) + dims, arr)
    # a list-valued axis (init.point) gets its values as text: a coordinate is 1-D
    coords = {names[k]: [str(list(x)) if isinstance(x, tuple) else x for x in v]
              for k, v in axes.items()}
    attrs = {"axes": ", ".join(axes), "axes_dims": ", ".join(adims)}
    formats = {ds.attrs.get("results_format") for ds in datasets} - {None}
    if len(formats) == 1:
        attrs["results_format"] = formats.pop()
    return xr.Dataset(out, coords=coords, attrs=attrs)


def load_results(out: str | os.PathLike) -> xr.Dataset:
    """Open DIR/results.nc of a finished sweep (loaded into memory)."""
    import xarray as xr

    path = Path(out) / "results.nc"
    with xr.open_dataset(path, engine="scipy") as ds:
        return ds.load()


def limit_dataset(limit: Limit) -> xr.Dataset:
    """Return a Limit as an xarray Dataset (limit.nc, docs/guide/outputs.rst)."""
    import xarray as xr

    data = {"u": (("t_u", "atom", "output"), limit.u)}
    coords = {"t_u": limit.t_u, "time": limit.times}
    if limit.density is not None:
        axes = [f"w{i}" for i in range(len(limit.centres))]
        data["density"] = (("time", *axes), limit.density)
        coords.update({a: c for a, c in zip(axes, limit.centres, strict=True)})
    if limit.points is not None:
        data["points"] = (("time", "point", "param"), limit.points)
        data["weights"] = (("time", "point"), limit.weights)
    return xr.Dataset(data, coords=coords, attrs={"method": limit.method})

