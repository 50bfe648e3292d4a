"""What a command checks before it writes anything: every task's inputs, and their size.

:func:`check_inputs` builds each task's data law and model, resolves its schedule, applies
the combination rules of the limit and the coupling, and estimates the memory of the run
(and of its limit) against the memory this process may use.  Any failure is a
:class:`~meanfield.errors.ConfigError` naming the key, so a command refuses bad input
with exit code 2 before DIR is created or touched.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..config import Config, to_dict
from ..data import make_data
from ..engine import memory_parts
from ..errors import ConfigError
from ..limit import check_coupling
from ..limit.solve import limit_bytes, resolve_method
from ..model import make_model
from ..schedule import make_schedule
from ..shipped import resolve_data_path

_GiB = float(1 << 30)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def available_memory() -> int | None:
    """Return the bytes this process may still allocate (None if unknown).

    The least of: the machine's available memory (``MemAvailable``), the room left under
    the cgroup's limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) and under the
    address-space limit (``ulimit -v``).
    """
    room = [_meminfo("MemAvailable")]
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if limit is not None:
        room.append(limit - (_read_int("/sys/fs/cgroup/memory.current") or 0))
    limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    if limit is not None and limit < 1 << 60:
        room.append(limit - (_read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes") or 0))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        room.append(soft - _vm_size())
    room = [r for r in room if r is not None]
    return max(0, min(room)) if room else None


def _atoms_bound(config: Config) -> int:
    """Upper bound of the numbers the data law holds, known before building it."""
    d = config.data
    if d.kind == "file":
        try:
            return os.path.getsize(resolve_data_path(d.path)) // 8 + 1
        except (OSError, TypeError, AttributeError, ConfigError):
            return 0  # make_data says what is wrong with the file
    if d.kind == "digits":
        return 1797 * 75
    n = 64 if d.n is None else d.n
    if d.kind == "teacher":  # x (n, p), the teacher (m, p) and its features (n, m)
        return n * (d.input_dim + 3) + d.teacher_width * (d.input_dim + n + 1)
    # mixture: x (n, p), the means (K, p) and the one-hot targets (n, K) from eye(K)
    return n * (d.input_dim + d.classes + 2) + d.classes * (d.input_dim + d.classes)


def _refuse_data(config: Config, need: float, room: float) -> None:
    d = config.data
    if d.kind == "file":
        msg = (f"data.path {d.path} holds {need / _GiB:.3g} GiB, more than the "
               f"{room / _GiB:.3g} GiB available; use a smaller data file")
        raise ConfigError(msg)
    msg = (f"the data law needs about {need / _GiB:.3g} GiB (data.kind = {d.kind!r}, "
           f"data.n = {d.n}, data.input_dim = {d.input_dim}, data.classes = {d.classes}, "
           f"data.teacher_width = {d.teacher_width}) but only {room / _GiB:.3g} GiB are "
           "available; lower the sizes named")
    raise ConfigError(msg)


def _refuse(config: Config, parts: dict[str, int], room: float) -> None:
    r = config.run
    need = sum(parts.values())
    top = max(parts, key=parts.get)
    values = ", ".join(f"{k} = {_value(config, k)}" for k in top.split(", "))
    msg = (f"this run needs about {need / _GiB:.3g} GiB, {parts[top] / _GiB:.3g} GiB of it "
           f"for {values} (run.N = {r.N}, run.seeds = {r.seeds}), but only "
           f"{room / _GiB:.3g} GiB are available; lower {top}")
    raise ConfigError(msg)


def _value(config: Config, dotted: str):
    section, _, name = dotted.partition(".")
    return getattr(getattr(config, section), name)


def check_inputs(configs: Iterable[Config], *, limit: bool = False, couple: bool = False,
                 particles: bool = True, save_weights: bool = True,
                 memory: int | None = None) -> None:
    """Check every task config of a command without running it.

    Parameters
    ----------
    configs : iterable of Config
        The resolved configs of the command's tasks (no [sweep]).
    limit : bool
        The command solves each task's limit (``limit``, ``rate``, ``regimes``).
    couple : bool
        The command couples the particles with the limit (``run --couple``, ``rate``).
    particles : bool
        The command runs the particle system (all but ``limit``).
    save_weights : bool
        The run keeps the particles at every snapshot.
    memory : int, optional
        Bytes available (default :func:`available_memory`).

    Raises
    ------
    ConfigError
        A bad data file, an unusable encoding, a schedule that overflows or overshoots T,
        an undefined limit or coupling, a dirac point of the wrong length, or a run or
        limit larger than the memory available.
    """
    room = available_memory() if memory is None else memory
    laws: dict[str, tuple] = {}
    for config in configs:
        if room is not None and 8 * _atoms_bound(config) > room:
            _refuse_data(config, 8 * _atoms_bound(config), room)
        key = json.dumps([to_dict(config)["data"], to_dict(config)["model"]], sort_keys=True,
                         default=str)
        if key not in laws:
            data = make_data(config)
            laws[key] = (data, make_model(config, data))
        data, model = laws[key]
        point = config.init.point
        if point is not None and len(point) != model.dim:
            msg = (f"init.point must be a list of D = {model.dim} numbers for this model, "
                   f"got {len(point)}")
            raise ConfigError(msg)
        J, C, D = data.x.shape[0], model.outputs, model.dim
        parts = (memory_parts(config, J, C, D, coupled=couple, save_weights=save_weights)
                 if particles else {})
        if particles and save_weights:  # netCDF writes a big-endian copy of the snapshots
            r = config.run
            parts["dynamics.snapshots"] += (r.seeds * config.dynamics.snapshots * r.N * D
                                            * np.dtype(r.dtype).itemsize)
        if room is not None and sum(parts.values()) > room:  # before the schedule's grid
            _refuse(config, parts, room)
        make_schedule(config)
        if couple:
            check_coupling(config)
        if limit or couple:
            method = resolve_method(config, model)
            key = {"pde": "limit.grid"}.get(method, "limit.N_ref")
            parts[key] = parts.get(key, 0) + limit_bytes(config, model, J)
            if room is not None and sum(parts.values()) > room:
                _refuse(config, parts, room)
