"""μ₀ and the seed streams: replica generators and keys, initial particles (docs/theory.rst §2)."""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError
from .model import Model


def replica_streams(config) -> tuple[list[np.random.Generator], np.ndarray]:
    """Return the per-replica init generators and the (R,) uint64 keys of the dynamics.

    Both derive from ``SeedSequence(run.seed).spawn(seeds)``; with ``init.seed`` set the
    initial particles come from ``SeedSequence(init.seed).spawn(seeds)`` instead, so a
    study can fix W_0 and vary only the noise.
    """
    R = config.run.seeds
    children = [c.spawn(2) for c in np.random.SeedSequence(config.run.seed).spawn(R)]
    keys = np.array([c[1].generate_state(1, np.uint64)[0] for c in children], dtype=np.uint64)
    if config.init.seed is None:
        init = [c[0] for c in children]
    else:
        init = np.random.SeedSequence(config.init.seed).spawn(R)
    return [np.random.default_rng(s) for s in init], keys


def init_scales(config, model: Model) -> np.ndarray:
    """(D,) per-coordinate scale of μ₀: std (normal) or half-width (uniform).

    ``init.scale_a`` / ``init.scale_b`` override ``init.scale`` for the output / input
    weights when layers = both.
    """
    ini = config.init
    scale = np.full(model.dim, ini.scale)
    q = model.offset
    if q:
        scale[:q] = ini.scale if ini.scale_a is None else ini.scale_a
        scale[q:] = ini.scale if ini.scale_b is None else ini.scale_b
    return scale


def initial_particles(config, model: Model, rng: np.random.Generator, N: int) -> np.ndarray:
    """Draw N i.i.d. particles (N, D) from μ₀ as ``[init]`` describes (float64)."""
    ini = config.init
    p, D = model.input_dim, model.dim
    nb_a = model.offset  # number of output weights (0 for layers = first)
    if ini.kind == "dirac":
        point = np.asarray(ini.point, dtype=np.float64)
        if point.shape != (D,):
            msg = f"init.point must be a list of D = {D} numbers for this model, got {len(point)}"
            raise ConfigError(msg)
        return np.tile(point, (N, 1))
    if ini.kind == "torch_default":
        lim = np.full(D, 1.0 / math.sqrt(p))
        lim[:nb_a] = 1.0 / math.sqrt(N)
        return rng.uniform(-1.0, 1.0, size=(N, D)) * lim
    scale = init_scales(config, model)
    if ini.kind == "uniform":
        return rng.uniform(-1.0, 1.0, size=(N, D)) * scale
    return rng.standard_normal((N, D)) * scale
