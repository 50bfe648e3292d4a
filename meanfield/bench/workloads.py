"""What the bench times: the workloads, the plans, the FLOP and byte models, the engine runs.

Workloads (all layers = both, β = 1, so the per-neuron step is η = γ_{α,N} = γ):

- ``toy``: tanh, input_dim = 1, 64 teacher atoms, squared loss, M = 10; the engine in
  modes sgd, sde (independent noise) and ode, 1 and 8 replicas, float64 and float32;
- ``digits``: relu, 64 inputs, 10 outputs, softmax cross-entropy, the 1797 digits, M = 100,
  sgd.

FLOP model (per step, engine rows): per (neuron, atom) pair, with p inputs and C outputs,
4p + 6C + 4 FLOPs — pre-activation 2p, σ counted as 1, output accumulation 2C, output
weight gradient 2C, a·g and σ' and their product 2C + 3, input weight gradient 2p — plus
3D per neuron for the update; sde adds 2D + 1 per pair for the noise sum (the normal draw
counted as 1), or on a line (p = C = 1, D = 2: ``engine.noise_sampler``) 8 per pair for
the second moments (two products, three multiply-adds). Atoms per step: M for sgd, J for
sde and ode. The transcendental σ is counted as one FLOP, so GFLOP/s understates the
arithmetic done. Byte model: the particles are read twice (mean field, then gradients) and
written once, 3 N D·itemsize per step per replica; the atoms stay in cache.

The engine is reached through ``parse_config``, ``make_data`` and ``simulate``; for the
comparator check, :func:`engine_steps` also replays the engine's own batch draws
(``batch_draws``) and initial particles (``replica_streams``).
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import numpy as np

from ..config import parse_config
from ..data import make_data
from ..engine import batch_draws, simulate
from ..init import replica_streams
from .comparators import COMPARATORS

GAMMA = 1e-3  # γ at β = 1: the per-neuron step of every workload
COST_MODELS = {  # the FLOP and byte models above, as bench.json states them
    "flop": "per (neuron, atom): 4p + 6C + 4 (+ 2D + 1 for sde noise, 8 on a line); "
            "+ 3D per neuron; atoms = M (sgd) or J (sde, ode); σ counts 1",
    "bytes": "3 N D itemsize per step per replica (particles read twice, written once)",
}

# the loaded-machine probe: the block path with 2 and 20 blocks, one replica on the
# replica path, and 8 replicas
LOADED = (("digits", 1000, 1), ("digits", 10_000, 1), ("digits", 100, 1), ("toy", 100_000, 1),
          ("toy", 1000, 8))


# ---------------------------------------------------------------- plans
@dataclass(frozen=True)
class Plan:
    """What one bench run measures.

    Attributes
    ----------
    name : str
        ``full``, ``quick`` or ``tiny``.
    toy_sizes, digits_sizes : tuple of int
        Values of N for the toy and digits workloads (digits may be empty).
    engine_modes : tuple of str
        Engine modes timed on the toy workload (float64, one replica).
    replica_modes : tuple of str
        Toy modes also timed with ``replicas`` replicas.
    replicas : int
        The many-replica count.
    float32 : bool
        Time the toy sgd workload in float32 too.
    comparators : tuple of str
        Comparators to run when importable (names from ``comparators.COMPARATORS``).
    budget : float
        Target seconds of the long timing run.
    repeats : int
        Repeats of each (short, long) pair; the median per-step time is reported.
    max_seconds : float
        Time allowed for the repeats of one measurement (slow loops repeat less, ≥ 2).
    replica_max_N : int
        Largest N timed with ``replicas`` replicas.
    probe_size : int
        Matrix order of the BLAS probe.
    stream_size : int
        Elements (float64) of each of the three arrays of the stream probe.
    jit_probe : str
        ``none``, ``warm`` (a process on the default cache, then the measured second one) or
        ``cold`` (a fresh process with an empty NUMBA_CACHE_DIR, then a second one on the
        now warm cache); see :func:`meanfield.bench.harness.jit_probes`.
    memory : bool
        Measure peak memory of every engine workload (tracemalloc).
    loaded : tuple of (str, int, int)
        (workload, N, replicas) timed on 1 and on all threads while another process keeps
        one of the pinned CPUs busy (:func:`meanfield.bench.harness.loaded_probe`).
    """

    name: str
    toy_sizes: tuple[int, ...]
    digits_sizes: tuple[int, ...]
    engine_modes: tuple[str, ...] = ("sgd", "sde", "ode")
    replica_modes: tuple[str, ...] = ("sgd",)
    replicas: int = 8
    float32: bool = True
    comparators: tuple[str, ...] = COMPARATORS
    budget: float = 0.6
    repeats: int = 3
    max_seconds: float = 30.0
    replica_max_N: int = 100_000
    probe_size: int = 2048
    stream_size: int = 2 ** 24
    jit_probe: str = "cold"
    memory: bool = True
    loaded: tuple[tuple[str, int, int], ...] = ()


def make_plan(name: str) -> Plan:
    """Return the plan ``full``, ``quick`` (fewer sizes, no cold compile) or ``tiny`` (tests)."""
    if name == "full":
        return Plan("full", (100, 1000, 10_000, 100_000, 1_000_000), (100, 1000, 10_000),
                    replica_modes=("sgd", "sde"), budget=0.6, repeats=5, jit_probe="cold",
                    loaded=LOADED)
    if name == "quick":
        return Plan("quick", (100, 1000, 10_000), (100, 1000), budget=0.12, repeats=3,
                    max_seconds=4.0, probe_size=1024, jit_probe="warm", loaded=LOADED)
    if name == "tiny":
        return Plan("tiny", (100,), (100,), engine_modes=("sgd", "ode"), replica_modes=(),
                    float32=False, comparators=("numpy",), budget=0.01, repeats=1,
                    max_seconds=1.0, probe_size=256, stream_size=2 ** 20, jit_probe="none",
                    memory=True)
    msg = f"unknown bench plan {name!r} (allowed: full, quick, tiny)"
    raise ValueError(msg)


# ---------------------------------------------------------------- workloads
def workload_config(workload: str, N: int, steps: int, *, mode: str = "sgd",
                    dtype: str = "float64", seeds: int = 1, snapshots: int = 2):
    """Return the resolved config of ``steps`` steps of ``workload`` at ``N`` neurons."""
    if workload == "toy":
        model = {"layers": "both", "activation": "tanh", "loss": "squared"}
        data = {"kind": "teacher", "n": 64, "input_dim": 1}
        batch = 10
    elif workload == "digits":
        model = {"layers": "both", "activation": "relu", "loss": "cross_entropy"}
        data = {"kind": "digits"}
        batch = 100
    else:
        msg = f"unknown workload {workload!r}"
        raise ValueError(msg)
    return parse_config({
        "model": model, "data": data,
        "schedule": {"gamma": GAMMA, "beta": 1.0, "alpha": 0.0, "batch": batch},
        "dynamics": {"mode": mode, "noise": "independent", "T": steps * GAMMA,
                     "snapshots": snapshots},
        "run": {"N": N, "seeds": seeds, "seed": 0, "dtype": dtype},
    })


def workload_data(workload: str):
    """Return the data law of ``workload``."""
    return make_data(workload_config(workload, 1, 1))


def workload_shape(workload: str, data) -> dict:
    """Return p, C, D, J, M and the activation / loss names of a workload."""
    cfg = workload_config(workload, 1, 1)
    p, C = data.x.shape[1], data.y.shape[1]
    return {"p": p, "C": C, "D": p + C, "J": data.x.shape[0], "M": cfg.schedule.batch,
            "act": cfg.model.activation, "loss": cfg.model.loss}


def flops_per_step(shape: dict, N: int, mode: str = "sgd", seeds: int = 1) -> float:
    """FLOPs of one step of the engine by the model in the module docstring."""
    p, C, D = shape["p"], shape["C"], shape["D"]
    atoms = shape["M"] if mode == "sgd" else shape["J"]
    noise = 8 if p == C == 1 else 2 * D + 1  # second moments on a line, else per-atom normals
    pair = 4 * p + 6 * C + 4 + (noise if mode == "sde" else 0)
    return float(seeds) * (N * atoms * pair + 3.0 * N * D)


def bytes_per_step(shape: dict, N: int, itemsize: int, seeds: int = 1) -> float:
    """Bytes moved by one step by the model in the module docstring: 3 N D itemsize."""
    return float(seeds) * 3.0 * N * shape["D"] * itemsize


# ---------------------------------------------------------------- the engine on a workload
def engine_prepare(workload, N, mode, dtype, seeds, data):
    """Return ``prepare(n)``: a callable running n engine steps of the workload."""
    def prepare(n):
        cfg = workload_config(workload, N, n, mode=mode, dtype=dtype, seeds=seeds)
        return lambda: simulate(cfg, data=data, save_weights=False)
    return prepare


def engine_memory(workload, N, mode, dtype, seeds, data) -> int:
    """Peak traced memory (bytes) of one short simulate of the workload."""
    cfg = workload_config(workload, N, 2, mode=mode, dtype=dtype, seeds=seeds)
    tracemalloc.start()
    try:
        simulate(cfg, data=data, save_weights=False)
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def engine_steps(workload, N, K, data):
    """Return the engine's sgd particles (N, D) at steps 0 and K, and its K batches."""
    cfg = workload_config(workload, N, K)
    traj = simulate(cfg, data=data, save_weights=True)
    _, keys = replica_streams(cfg)
    idx = np.stack([batch_draws(int(keys[0]), n, cfg.schedule.batch, data.p)
                    for n in range(K)])
    return traj.W[0, 0], traj.W[0, -1], idx
