"""``meanfield bench``: the engine's cost per step beside NumPy, PyTorch and JAX loops.

Workloads (all layers = both, β = 1, so the per-neuron step is η = γ_{α,N} = γ):

- ``toy``: tanh, input_dim = 1, 64 teacher atoms, squared loss, M = 10; the engine in
  modes sgd, sde (independent noise) and ode, 1 and 8 replicas, float64 and float32;
- ``digits``: relu, 64 inputs, 10 outputs, softmax cross-entropy, the 1797 digits, M = 100,
  sgd.

Comparators (each only when its package imports; torch and jax are the optional extra
``bench``): the paper's stack (PyTorch autograd + ``torch.optim.SGD`` with lr = η N on the
1/N-scaled network), PyTorch with hand-written gradients under ``no_grad``, a vectorised
NumPy loop and a JAX ``jax.lax.scan`` loop (one jit of the whole scan, x64 enabled). They
do one shared-minibatch SGD step of the engine's ``sgd`` mode: with batch atoms (x_i, y_i),
u_i = (1/N) Σ_k a_k σ(b_k·x_i), g_i = ∂ℓ(u_i, y_i), a_k ← a_k − η (1/M) Σ_i σ(b_k·x_i) g_i,
b_k ← b_k − η (1/M) Σ_i (a_k·g_i) σ'(b_k·x_i) x_i. Comparators get their batch indices
precomputed (their random draws are not timed; the engine's are). Each comparator is
checked once against the engine: fed the engine's initial particles and the engine's own
batch draws, its weight increments over a few steps must match the engine's.

Timing: seconds per step is (t_long − t_short) / (n_long − n_short) for two runs of
different lengths (compile, setup, initial draws and snapshots cancel), the median over a
few repeats. Every loop runs in this process, pinned with ``os.sched_setaffinity`` to the
same CPUs, with the same thread count for Numba, PyTorch and the BLAS.

FLOP model (per step, engine rows): per (neuron, atom) pair, with p inputs and C outputs,
4p + 6C + 4 FLOPs — pre-activation 2p, σ counted as 1, output accumulation 2C, output
weight gradient 2C, a·g and σ' and their product 2C + 3, input weight gradient 2p — plus
3D per neuron for the update; sde adds 2D + 1 per pair for the noise sum (the normal draw
counted as 1), or on a line (p = C = 1, D = 2: ``particles.noise_sampler``) 8 per pair for
the second moments (two products, three multiply-adds). Atoms per step: M for sgd, J for
sde and ode. The transcendental σ is counted as one FLOP, so GFLOP/s understates the
arithmetic done. Byte model: the particles are read twice (mean field, then gradients) and
written once, 3 N D·itemsize per step per replica; the atoms stay in cache. Peaks are
measured: a NumPy BLAS matmul (GFLOP/s) and a multithreaded STREAM triad a = b + s c
(GB/s, 24 bytes per element).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .reference import activation, loss_grad

__all__ = ["Plan", "add_arguments", "main", "make_plan", "run_bench"]

GAMMA = 1e-3  # γ at β = 1: the per-neuron step of every workload
COMPARATORS = ("jax", "torch_manual", "numpy", "torch_autograd")
LABELS = {
    "meanfield": "meanfield",
    "jax": "JAX lax.scan",
    "torch_manual": "torch manual grads",
    "numpy": "NumPy",
    "torch_autograd": "paper's stack (torch autograd + SGD)",
}
_ENV_KEYS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS",
             "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
             "NUMBA_CACHE_DIR", "XLA_FLAGS")
_CHECK_STEPS = 8
_CHECK_TOL = 1e-6  # relative error of the weight increments (float64 loops)
OTHER_LOAD_MAX = 0.1  # warn when other processes took more of the machine's CPU time


# ---------------------------------------------------------------- plan
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
        Comparators to run when importable (names from ``COMPARATORS``).
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
        now warm cache); see :func:`jit_probes`.
    memory : bool
        Measure peak memory of every engine workload (tracemalloc).
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


def make_plan(name: str) -> Plan:
    """Return the plan ``full`` (≈ 10 min), ``quick`` (≈ 1–2 min) or ``tiny`` (for tests)."""
    if name == "full":
        return Plan("full", (100, 1000, 10_000, 100_000, 1_000_000), (100, 1000, 10_000),
                    replica_modes=("sgd", "sde"), budget=0.6, repeats=5, jit_probe="cold")
    if name == "quick":
        return Plan("quick", (100, 1000, 10_000), (100, 1000), budget=0.12, repeats=3,
                    max_seconds=4.0, probe_size=1024, jit_probe="warm")
    if name == "tiny":
        return Plan("tiny", (100,), (100,), engine_modes=("sgd", "ode"), replica_modes=(),
                    float32=False, comparators=("numpy",), budget=0.01, repeats=1,
                    max_seconds=1.0, probe_size=256, stream_size=2 ** 20, jit_probe="none",
                    memory=True)
    msg = f"unknown bench plan {name!r} (allowed: full, quick, tiny)"
    raise ValueError(msg)


# ---------------------------------------------------------------- workloads
def _config(workload: str, N: int, steps: int, *, mode: str = "sgd", dtype: str = "float64",
            seeds: int = 1, snapshots: int = 2):
    import meanfield as mf

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
    return mf.parse_config({
        "model": model, "data": data,
        "schedule": {"gamma": GAMMA, "beta": 1.0, "alpha": 0.0, "batch": batch},
        "dynamics": {"mode": mode, "noise": "independent", "T": steps * GAMMA,
                     "snapshots": snapshots},
        "run": {"N": N, "seeds": seeds, "seed": 0, "dtype": dtype},
    })


def _shape(workload: str, data) -> dict:
    """p, C, D, J, M and the activation / loss names of a workload."""
    cfg = _config(workload, 1, 1)
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


# ---------------------------------------------------------------- comparator loops
def numpy_sgd(W0: np.ndarray, X: np.ndarray, Y: np.ndarray, idx: np.ndarray, eta: float,
              act: str, loss: str) -> np.ndarray:
    """Run len(idx) shared-batch SGD steps of the two-layer network in vectorised NumPy.

    The batch gradient is taken in matrix products, (1/M) Σ_i H(w_k, z_i) without the
    per-atom (M, N, D) array of :func:`meanfield.bench.reference.sgd_step`: the same step,
    in the form a NumPy user would time.

    Parameters
    ----------
    W0 : (N, D) ndarray
        Initial particles, parameters ordered (a_0 … a_{C−1}, b_0 … b_{p−1}).
    X, Y : (J, p), (J, C) ndarray
        Atoms and targets (one-hot for cross-entropy).
    idx : (n, M) int ndarray
        Batch atoms of every step.
    eta : float
        Per-neuron step η.
    act, loss : str
        ``tanh`` / ``relu`` and ``squared`` / ``cross_entropy``.

    Returns
    -------
    (N, D) ndarray
        The particles after the n steps.
    """
    N, C = W0.shape[0], Y.shape[1]
    A, B = W0[:, :C].copy(), W0[:, C:].copy()
    M = idx.shape[1]
    for rows in idx:
        x, y = X[rows], Y[rows]
        T, dT = activation(act, x @ B.T)  # (M, N)
        g = loss_grad((T @ A) * (1.0 / N), y, loss)  # (M, C)
        GA = T.T @ g
        E = (g @ A.T) * dT
        GB = E.T @ x
        A -= (eta / M) * GA
        B -= (eta / M) * GB
    return np.concatenate([A, B], axis=1)


class _Numpy:
    name = "numpy"

    def __init__(self, W0, X, Y, eta, shape):
        self.W0, self.X, self.Y, self.eta, self.shape = W0, X, Y, eta, shape

    def prepare(self, idx):
        s = self.shape
        return lambda: numpy_sgd(self.W0, self.X, self.Y, idx, self.eta, s["act"], s["loss"])

    def result(self, out):
        return np.asarray(out)


class _TorchManual:
    name = "torch_manual"

    def __init__(self, W0, X, Y, eta, shape):
        import torch

        self.torch = torch
        self.W0 = torch.from_numpy(np.ascontiguousarray(W0))
        self.X, self.Y = torch.from_numpy(X), torch.from_numpy(Y)
        self.eta, self.shape = eta, shape

    def prepare(self, idx):
        torch = self.torch
        idx_t = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        X, Y, eta, act, loss = self.X, self.Y, self.eta, self.shape["act"], self.shape["loss"]
        N, C, M = self.W0.shape[0], Y.shape[1], idx.shape[1]

        def go():
            with torch.no_grad():
                A, B = self.W0[:, :C].clone(), self.W0[:, C:].clone()
                for rows in idx_t:
                    x, y = X[rows], Y[rows]
                    S = x @ B.T
                    if act == "tanh":
                        T = torch.tanh(S)
                        dT = 1.0 - T * T
                    else:
                        T = torch.relu(S)
                        dT = (S > 0.0).to(S.dtype)
                    u = (T @ A) * (1.0 / N)
                    g = u - y if loss == "squared" else torch.softmax(u, dim=1) - y
                    GA = T.T @ g
                    GB = ((g @ A.T) * dT).T @ x
                    A.sub_(GA, alpha=eta / M)
                    B.sub_(GB, alpha=eta / M)
                return torch.cat([A, B], dim=1)
        return go

    def result(self, out):
        return out.numpy()


class _TorchAutograd:
    """The paper's stack: nn.Linear layers, autograd, optim.SGD with lr = η N."""

    name = "torch_autograd"

    def __init__(self, W0, X, Y, eta, shape):
        import torch

        self.torch = torch
        self.W0 = np.ascontiguousarray(W0)
        self.X = torch.from_numpy(X)
        self.Y = torch.from_numpy(Y)
        self.labels = torch.from_numpy(np.argmax(Y, axis=1))
        self.eta, self.shape = eta, shape

    def prepare(self, idx):
        torch = self.torch
        nn = torch.nn
        idx_t = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        N, D = self.W0.shape
        C = self.Y.shape[1]
        p = D - C
        act = nn.Tanh() if self.shape["act"] == "tanh" else nn.ReLU()
        ce = self.shape["loss"] == "cross_entropy"
        X, Y, labels = self.X, self.Y, self.labels

        def go():
            hidden = nn.Linear(p, N, bias=False, dtype=torch.float64)
            out = nn.Linear(N, C, bias=False, dtype=torch.float64)
            with torch.no_grad():
                hidden.weight.copy_(torch.from_numpy(self.W0[:, C:]))
                out.weight.copy_(torch.from_numpy(self.W0[:, :C].T.copy()))
            net = nn.Sequential(hidden, act, out)
            opt = torch.optim.SGD(net.parameters(), lr=self.eta * N)
            for rows in idx_t:
                u = net(X[rows]) / N
                if ce:
                    loss = nn.functional.cross_entropy(u, labels[rows])
                else:
                    loss = 0.5 * ((u - Y[rows]) ** 2).sum(dim=1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return out.weight.detach().T, hidden.weight.detach()
        return go

    def result(self, out):
        return np.concatenate([out[0].numpy(), out[1].numpy()], axis=1)


class _Jax:
    name = "jax"

    def __init__(self, W0, X, Y, eta, shape):
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        N, C = W0.shape[0], Y.shape[1]
        self.A0, self.B0 = jnp.asarray(W0[:, :C]), jnp.asarray(W0[:, C:])
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
        act, loss, M = shape["act"], shape["loss"], shape["M"]

        def step(carry, rows):
            A, B = carry
            x, y = Xj[rows], Yj[rows]
            S = x @ B.T
            if act == "tanh":
                T = jnp.tanh(S)
                dT = 1.0 - T * T
            else:
                T = jnp.maximum(S, 0.0)
                dT = (S > 0.0).astype(S.dtype)
            u = (T @ A) * (1.0 / N)
            g = u - y if loss == "squared" else jax.nn.softmax(u, axis=1) - y
            GA = T.T @ g
            GB = ((g @ A.T) * dT).T @ x
            return (A - (eta / M) * GA, B - (eta / M) * GB), None

        @jax.jit
        def run(A, B, idx):
            (A, B), _ = jax.lax.scan(step, (A, B), idx)
            return A, B

        self.run = run

    def prepare(self, idx):
        idx_j = self.jnp.asarray(np.ascontiguousarray(idx, dtype=np.int32))

        def go():
            A, B = self.run(self.A0, self.B0, idx_j)
            A.block_until_ready()
            B.block_until_ready()
            return A, B
        go()  # compile for this length (and warm)
        return go

    def result(self, out):
        return np.concatenate([np.asarray(out[0]), np.asarray(out[1])], axis=1)


_LOOPS = {"numpy": _Numpy, "torch_manual": _TorchManual, "torch_autograd": _TorchAutograd,
          "jax": _Jax}
_MODULES = {"numpy": "numpy", "torch_manual": "torch", "torch_autograd": "torch",
            "jax": "jax"}


def available_comparators(names) -> list[str]:
    """Return the comparators of ``names`` whose package imports."""
    import importlib.util

    return [n for n in names if importlib.util.find_spec(_MODULES[n]) is not None]


# ---------------------------------------------------------------- timing
def _clock(go) -> float:
    t0 = time.perf_counter()
    go()
    return time.perf_counter() - t0


def time_per_step(prepare, budget: float, repeats: int, *, n_max: int = 1_000_000,
                  max_seconds: float = 60.0) -> dict:
    """Seconds per step of a loop, as the difference of a long and a short run.

    Calibration starts at 2 steps and grows the count (2× to 64×, by the time so far)
    until the time *difference* of two consecutive lengths reaches a quarter of the
    budget, so a large fixed cost per call (setup, initial draws, snapshots) cannot pass
    for the cost of steps; a loop whose 2 steps already exceed the budget is measured
    from there.

    Parameters
    ----------
    prepare : callable
        ``prepare(n)`` returns ``go``, a callable that runs n steps from the same start
        (compiling, if needed, happens in ``prepare``, untimed).
    budget : float
        Target seconds spent in the steps of the long run.
    repeats : int
        Number of (short, long) pairs; the median difference is returned. Fewer (at least
        two) when the pairs would take longer than ``max_seconds``.
    n_max : int
        Cap on the number of steps.
    max_seconds : float
        Time allowed for the repeated pairs.

    Returns
    -------
    dict
        ``sec``: median seconds per step; ``min``: the smallest pair value; ``samples``:
        every pair's value; ``n``: [n_short, n_long].
    """
    n = 2
    t = _clock(prepare(n))
    if t >= budget:  # slow steps, or a scheduling spike: look twice
        t = min(t, _clock(prepare(n)))
    if t >= budget:
        est = t / n
    else:
        while True:
            n2 = min(n_max, max(2 * n, min(64 * n, int(n * budget / (2 * max(t, 1e-9))))))
            t2 = _clock(prepare(n2))
            if t2 - t >= budget / 4 and t2 < 2 * budget:  # confirm: not a scheduling spike
                t2 = min(t2, _clock(prepare(n2)))
            if n2 >= n_max or t2 - t >= budget / 4:
                break
            n, t = n2, t2
        est = max(t2 - t, 1e-3 * t2) / (n2 - n)
    n_long = int(min(n_max, max(budget / est, 3 if 10 * est > 4 * budget else 10)))
    n_short = max(1, n_long // 5)
    pair = (n_long + n_short) * est
    reps = max(min(repeats, 2), min(repeats, int(max_seconds / pair)))
    go_short, go_long = prepare(n_short), prepare(n_long)
    samples = []
    for _ in range(reps):
        ts, tl = _clock(go_short), _clock(go_long)
        samples.append((tl - ts) / (n_long - n_short) if tl > ts else tl / n_long)
    return {"sec": float(np.median(samples)), "min": float(min(samples)), "samples": samples,
            "n": [n_short, n_long]}


class _IndexPool:
    """Precomputed batch indices (n, M) drawn by atom weight, grown on demand."""

    def __init__(self, p, M, seed=0):
        self.p, self.M = p, M
        self.rng = np.random.default_rng(seed)
        self.idx = np.zeros((0, M), np.int64)

    def take(self, n):
        if n > len(self.idx):
            more = self.rng.choice(len(self.p), size=(n - len(self.idx), self.M), p=self.p)
            self.idx = np.concatenate([self.idx, more])
        return self.idx[:n]


# ---------------------------------------------------------------- engine
def _engine_prepare(workload, N, mode, dtype, seeds, data):
    import meanfield as mf

    def prepare(n):
        cfg = _config(workload, N, n, mode=mode, dtype=dtype, seeds=seeds)
        return lambda: mf.simulate(cfg, data=data, save_weights=False)
    return prepare


def _engine_memory(workload, N, mode, dtype, seeds, data) -> int:
    import meanfield as mf

    cfg = _config(workload, N, 2, mode=mode, dtype=dtype, seeds=seeds)
    tracemalloc.start()
    try:
        mf.simulate(cfg, data=data, save_weights=False)
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def _engine_steps(workload, N, K, data):
    """Return the engine's sgd particles (N, D) at steps 0 and K, and its K batches."""
    import meanfield as mf
    from meanfield.particles import batch_draws, replica_streams

    cfg = _config(workload, N, K)
    traj = mf.simulate(cfg, data=data, save_weights=True)
    _, keys = replica_streams(cfg)
    idx = np.stack([batch_draws(int(keys[0]), n, cfg.schedule.batch, data.p)
                    for n in range(K)])
    return traj.W[0, 0], traj.W[0, -1], idx


def _check(loops: dict, workload: str, N: int, data, shape) -> list[dict]:
    """Increment agreement of every comparator with the engine over a few sgd steps."""
    out = []
    reference = "engine"
    try:
        W0, WK, idx = _engine_steps(workload, N, _CHECK_STEPS, data)
    except ImportError:  # engine internals moved: fall back to comparing the loops
        reference = "numpy"
        W0 = np.random.default_rng(1).standard_normal((N, shape["D"]))
        idx = _IndexPool(data.p, shape["M"], seed=1).take(_CHECK_STEPS)
        WK = numpy_sgd(W0, data.x, data.y, idx, GAMMA, shape["act"], shape["loss"])
    ref = WK - W0
    for name, cls in loops.items():
        loop = cls(W0, data.x, data.y, GAMMA, shape)
        got = loop.result(loop.prepare(idx)()) - W0
        err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))
        out.append({"workload": workload, "N": N, "impl": name, "steps": _CHECK_STEPS,
                    "reference": reference, "max_rel_err": err,
                    "agrees": bool(err <= _CHECK_TOL)})
    return out


# ---------------------------------------------------------------- machine probes
def _triad_kernel():
    import numba as nb

    @nb.njit(parallel=True, fastmath=True)
    def triad(a, b, c, s):
        for i in nb.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]
    return triad


def peak_probes(size: int, n: int) -> dict:
    """Measured peaks: BLAS matmul GFLOP/s (order ``size``) and stream GB/s (``n`` doubles)."""
    rng = np.random.default_rng(0)
    out = {}
    for dt in ("float64", "float32"):
        a = rng.standard_normal((size, size)).astype(dt)
        b = rng.standard_normal((size, size)).astype(dt)
        a @ b
        best = min(_clock(lambda a=a, b=b: a @ b) for _ in range(3))
        out[f"gflops_{dt}"] = 2.0 * size ** 3 / best / 1e9
    x, y, z = np.ones(n), np.ones(n), np.ones(n)
    triad = _triad_kernel()
    triad(x, y, z, 3.0)
    best = min(_clock(lambda: triad(x, y, z, 3.0)) for _ in range(5))
    out["gbs_triad"] = 24.0 * n / best / 1e9
    best = min(_clock(lambda: np.copyto(x, y)) for _ in range(5))
    out["gbs_numpy_copy_1thread"] = 16.0 * n / best / 1e9
    out["stream_bytes_per_array"] = 8 * n
    out["matmul_order"] = size
    return out


_PROBE = r"""
import json, time
t0 = time.perf_counter()
import meanfield as mf
t1 = time.perf_counter()
cfg = mf.parse_config({"data": {"n": 64, "input_dim": 1},
                       "schedule": {"gamma": 1e-3, "beta": 1.0, "batch": 10},
                       "dynamics": {"mode": "sgd", "T": 0.01, "snapshots": 2},
                       "run": {"N": 1000}})
mf.simulate(cfg, save_weights=False)
t2 = time.perf_counter()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork + exec
hwm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status")
       if line.startswith("VmHWM:")]
print(json.dumps({"import_s": t1 - t0, "first_simulate_s": t2 - t1,
                  "maxrss_bytes": hwm[0] if hwm else None}))
"""


def _probe_process(env) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=False, timeout=1800)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1:] or ["failed"], "wall_s": wall}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    out["to_first_step_s"] = out["import_s"] + out["first_simulate_s"]
    return out


def jit_probes(kind: str) -> dict:
    """First-call compile time (empty cache) and time to first step on a warm cache.

    The probe process imports meanfield and runs 10 sgd steps of the toy model at N = 1000;
    ``to_first_step_s`` is import plus that call, ``wall_s`` the whole process. ``kind``:
    ``cold`` runs it with an empty NUMBA_CACHE_DIR (``cold``: compiles) and again on that
    cache (``warm``); ``warm`` runs it twice on the default cache (``prime`` brings the
    cache up to date with the source, ``warm`` is the measurement); ``none`` skips.
    """
    out = {"kind": kind, "workload": "toy sgd float64 N=1000, 10 steps"}
    if kind == "none":
        return out
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="meanfield-bench-cache-") as cache:
        if kind == "cold":
            env["NUMBA_CACHE_DIR"] = cache
            out["cold"] = _probe_process(env)
        else:  # default cache: bring it up to date with the source first
            out["prime"] = _probe_process(env)
        out["warm"] = _probe_process(env)
    return out


# ---------------------------------------------------------------- machine info
def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds all CPUs spent busy, incl. steal; this process's and its children's).

    From /proc/stat (user, nice, system, irq, softirq, steal) and ``os.times``; None where
    /proc/stat is missing.  The difference of two calls, busy − own, is the CPU time other
    processes (and the hypervisor) took meanwhile: the bench's own threads raise the load
    average, so the load average alone cannot tell an idle machine from a busy one.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        user, nice, system, _, _, irq, softirq, steal = (int(x) for x in fields[1:9])
    except (OSError, ValueError):
        return None
    t = os.times()
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return busy, t.user + t.system + t.children_user + t.children_system


def other_load(start: tuple[float, float] | None, end: tuple[float, float] | None,
               wall: float, cores: int) -> float | None:
    """Share (0..1) of the machine's CPU time that other processes took.

    ``start`` and ``end`` are :func:`cpu_seconds` taken ``wall`` seconds apart.
    """
    if start is None or end is None or wall <= 0:
        return None
    other = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, other) / (wall * max(cores, 1))


def machine_info(threads: int, cpus: list[int]) -> dict:
    """CPU model, core count, pinned CPUs, threads, package versions, BLAS, load."""
    model, flags = None, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model is None:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in ("meanfield", "numpy", "numba", "llvmlite", "torch", "jax", "jaxlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    blas = None
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: d.get(k) for k in ("internal_api", "version", "num_threads")}
                for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        pass
    return {
        "cpu_model": model or platform.processor(),
        "simd": [f for f in ("avx2", "avx512f", "fma") if f" {f}" in flags],
        "cores": os.cpu_count(), "cpus_pinned": cpus, "threads": threads,
        "platform": platform.platform(), "versions": versions, "blas": blas,
        "loadavg_start": list(os.getloadavg()),
        "env": {k: os.environ.get(k) for k in _ENV_KEYS if k in os.environ},
    }


@contextlib.contextmanager
def pinned(threads: int | None, torch: bool):
    """Pin this process to its first ``threads`` allowed CPUs; restore everything on exit.

    Numba, the BLAS and (if ``torch``) PyTorch get the same thread count; JAX, imported
    later, sizes its pool from the pinned affinity.

    Yields
    ------
    (threads, cpus) : (int, list of int)
    """
    import numba

    old_cpus, old_numba = os.sched_getaffinity(0), numba.get_num_threads()
    cpus = sorted(old_cpus)
    threads = min(threads or len(cpus), len(cpus), numba.config.NUMBA_NUM_THREADS)
    cpus = cpus[:threads]
    blas = old_torch = None
    os.sched_setaffinity(0, cpus)
    try:
        numba.set_num_threads(threads)
        try:
            from threadpoolctl import threadpool_limits

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                blas = threadpool_limits(threads, user_api="blas")
        except ImportError:
            pass
        if torch:
            import torch as _torch

            old_torch = _torch.get_num_threads()
            _torch.set_num_threads(threads)
        yield threads, cpus
    finally:
        if old_torch is not None:
            import torch as _torch

            _torch.set_num_threads(old_torch)
        if blas is not None:
            blas.restore_original_limits()
        numba.set_num_threads(old_numba)
        os.sched_setaffinity(0, old_cpus)


# ---------------------------------------------------------------- the run
def _row(workload, impl, N, shape, timing, *, mode="sgd", dtype="float64", seeds=1,
         memory=None, first_call=None):
    sec = timing["sec"]
    row = {"workload": workload, "impl": impl, "mode": mode, "dtype": dtype, "seeds": seeds,
           "N": N, "sec_per_step": sec, "sec_per_step_min": timing["min"],
           "samples": timing["samples"], "steps": timing["n"],
           "particle_steps_per_s": seeds * N / sec, "load1": os.getloadavg()[0]}
    if impl == "meanfield":
        item = np.dtype(dtype).itemsize
        row["gflops"] = flops_per_step(shape, N, mode, seeds) / sec / 1e9
        row["gbs"] = bytes_per_step(shape, N, item, seeds) / sec / 1e9
        row["peak_mem_bytes"] = memory
        row["first_call_s"] = first_call
    return row


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _time_engine(workload, N, mode, dtype, seeds, data, plan, shape, rows, quiet):
    prepare = _engine_prepare(workload, N, mode, dtype, seeds, data)
    first = _clock(prepare(2))
    timing = time_per_step(prepare, plan.budget, plan.repeats, n_max=2_000_000,
                           max_seconds=plan.max_seconds)
    mem = _engine_memory(workload, N, mode, dtype, seeds, data) if plan.memory else None
    rows.append(_row(workload, "meanfield", N, shape, timing, mode=mode, dtype=dtype,
                     seeds=seeds, memory=mem, first_call=first))
    _log(f"  {workload} N={N} meanfield {mode} {dtype} x{seeds}: "
         f"{timing['sec']:.3g} s/step", quiet)


def _run_workload(workload, sizes, plan, comps, rows, checks, quiet):
    import meanfield as mf

    data = mf.make_data(_config(workload, sizes[0], 1))
    shape = _shape(workload, data)
    loops = {name: _LOOPS[name] for name in comps}
    modes = plan.engine_modes if workload == "toy" else ("sgd",)
    pool = _IndexPool(data.p, shape["M"])
    n_max = max(1000, min(1_000_000, 10_000_000 // shape["M"]))
    for N in sizes:
        for mode in modes:
            _time_engine(workload, N, mode, "float64", 1, data, plan, shape, rows, quiet)
        if workload == "toy":
            if plan.float32:
                _time_engine(workload, N, "sgd", "float32", 1, data, plan, shape, rows, quiet)
            many = plan.replica_modes if plan.replica_max_N >= N else ()
            for mode in many:
                _time_engine(workload, N, mode, "float64", plan.replicas, data, plan, shape,
                             rows, quiet)
        W0 = np.random.default_rng(N).standard_normal((N, shape["D"]))
        for name, cls in loops.items():
            loop = cls(W0, data.x, data.y, GAMMA, shape)
            timing = time_per_step(lambda n, loop=loop: loop.prepare(pool.take(n)),
                                   plan.budget, plan.repeats, n_max=n_max,
                                   max_seconds=plan.max_seconds)
            rows.append(_row(workload, name, N, shape, timing))
            _log(f"  {workload} N={N} {name}: {timing['sec']:.3g} s/step", quiet)
            del loop
    if loops:
        checks += _check(loops, workload, 1000 if workload == "toy" else 100, data, shape)
    return shape


def run_bench(out, *, plan: Plan, threads: int | None = None, quiet: bool = False) -> dict:
    """Run the benchmark of ``plan`` and write bench.json, bench.md, manifest.json to out.

    Parameters
    ----------
    out : path-like
        Output directory (created if missing; earlier bench files are overwritten).
    plan : Plan
        What to measure (:func:`make_plan`).
    threads : int, optional
        Threads (and pinned CPUs) for every loop; default: all CPUs this process may use.
    quiet : bool
        No progress lines on stderr.

    Returns
    -------
    dict
        The content of bench.json.
    """
    from ..errors import ConfigError
    from ..store import manifest, write_json

    out = Path(out)
    if out.exists() and not out.is_dir():
        msg = f"--out must be a directory, got the file {out}"
        raise ConfigError(msg)
    out.mkdir(parents=True, exist_ok=True)
    comps = available_comparators(plan.comparators)
    use_torch = "torch_manual" in comps or "torch_autograd" in comps
    with pinned(threads, use_torch) as (threads, cpus):
        result = _measure(plan, comps, threads, cpus, quiet)
        write_json(_finite(result), out / "bench.json")
        (out / "bench.md").write_text(report_markdown(result))
        write_json(manifest("bench", plan=plan.name, threads_pinned=threads, cpus=cpus,
                            timings={"total_s": result["elapsed_s"]}), out / "manifest.json")
    return result


def _measure(plan, comps, threads, cpus, quiet) -> dict:
    start = time.perf_counter()
    cpu0 = cpu_seconds()
    info = machine_info(threads, cpus)
    _log(f"meanfield bench ({plan.name}): {threads} threads on CPUs {cpus}; "
         f"comparators: {', '.join(comps) or 'none'}", quiet)
    peak = peak_probes(plan.probe_size, plan.stream_size)
    _log(f"  peak: {peak['gflops_float64']:.1f} GFLOP/s (f64 matmul), "
         f"{peak['gbs_triad']:.1f} GB/s (triad)", quiet)
    rows: list[dict] = []
    checks: list[dict] = []
    shapes = {}
    for workload, sizes in (("toy", plan.toy_sizes), ("digits", plan.digits_sizes)):
        if sizes:
            shapes[workload] = _run_workload(workload, sizes, plan, comps, rows, checks,
                                             quiet)
    jit = jit_probes(plan.jit_probe)
    result = {
        "plan": asdict(plan),
        "machine": {**info, "loadavg_end": list(os.getloadavg()),
                    "other_load": other_load(cpu0, cpu_seconds(), time.perf_counter() - start,
                                             info["cores"] or 1)},
        "peak": peak,
        "models": {
            "flop": "per (neuron, atom): 4p + 6C + 4 (+ 2D + 1 for sde noise, 8 on a line); "
                    "+ 3D per neuron; atoms = M (sgd) or J (sde, ode); σ counts 1",
            "bytes": "3 N D itemsize per step per replica (particles read twice, written once)",
        },
        "shapes": shapes,
        "gamma": GAMMA,
        "rows": rows,
        "checks": checks,
        "jit": jit,
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "elapsed_s": time.perf_counter() - start,
    }
    result["targets"] = targets(result)
    return result


def _finite(obj):
    """Replace NaN / inf by None so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------- targets and report
def _lookup(rows, workload, impl, N, mode="sgd", dtype="float64", seeds=1):
    for r in rows:
        if (r["workload"], r["impl"], r["N"], r["mode"], r["dtype"], r["seeds"]) == (
                workload, impl, N, mode, dtype, seeds):
            return r["sec_per_step"]
    return None


def targets(result: dict) -> list[dict]:
    """Pass/fail of the performance targets (ratios = comparator time / meanfield time)."""
    rows = result["rows"]
    toy = sorted({r["N"] for r in rows if r["workload"] == "toy"})
    digits = sorted({r["N"] for r in rows if r["workload"] == "digits"})
    R = result["plan"]["replicas"]
    out = []

    def add(name, N, num, den, op, threshold):
        value = None if num is None or den is None else num / den
        ok = None if value is None else (value >= threshold if op == ">=" else
                                         value <= threshold)
        out.append({"target": name, "N": N, "value": value, "op": op,
                    "threshold": threshold, "pass": ok})

    def mf(N, **kw):
        return _lookup(rows, "toy", "meanfield", N, **kw)

    for N in toy:
        add("toy sgd f64: JAX / meanfield", N, _lookup(rows, "toy", "jax", N), mf(N),
            ">=", 1.0)
    for N in (n for n in toy if n <= 1000):
        add("toy sgd f64: paper's stack / meanfield", N,
            _lookup(rows, "toy", "torch_autograd", N), mf(N), ">=", 13.0)
    for N in (n for n in toy if n >= 100_000):
        add("toy sgd f64: torch manual / meanfield", N,
            _lookup(rows, "toy", "torch_manual", N), mf(N), ">=", 1.5)
    for N in toy:
        add("toy sgd f64: NumPy / meanfield", N, _lookup(rows, "toy", "numpy", N), mf(N),
            ">=", 3.0)
    for N in (n for n in toy if n >= 1000):
        add("toy sgd f32: JAX(f64) / meanfield(f32)", N, _lookup(rows, "toy", "jax", N),
            mf(N, dtype="float32"), ">=", 2.0)
    for N in toy:
        add("toy: sde / ode step time", N, mf(N, mode="sde"), mf(N, mode="ode"), "<=", 1.5)
    if 1000 in toy:
        add(f"toy sgd: {R} replicas / 1 replica", 1000, mf(1000, seeds=R), mf(1000),
            "<=", 5.0)
    for N in digits:
        add("digits sgd: torch manual / meanfield", N,
            _lookup(rows, "digits", "torch_manual", N),
            _lookup(rows, "digits", "meanfield", N), ">=", 1.0)
    warm = result["jit"].get("warm", {}).get("to_first_step_s")
    if result["jit"]["kind"] != "none":
        out.append({"target": "warm cache: import + first step (s)", "N": 1000, "value": warm,
                    "op": "<", "threshold": 2.0,
                    "pass": None if warm is None else warm < 2.0})
    return out


def _e(t):
    return "—" if t is None else f"{t:.2e}"


def _ratio(r):
    return f"{r:.1f}×" if r >= 1 else f"{r:.2g}×"


def _cell(t, ref):
    if t is None:
        return "—"
    return f"{t:.2e} ({_ratio(t / ref)})" if ref else f"{t:.2e}"


def report_markdown(result: dict) -> str:
    """Return bench.md: tables of seconds per step, ratios, engine rates, targets, probes."""
    rows, peak, m = result["rows"], result["peak"], result["machine"]
    # the ratios depend on the vector width the kernels compile for: name it
    names = [x.upper().replace("AVX512F", "AVX-512") for x in m.get("simd", ())]
    simd = ", ".join(names) or "no AVX2"  # machine_info looks for avx2, avx512f and fma only
    # the bench's own threads raise the load average: judge by other processes' CPU time
    other = m.get("other_load")
    share = "" if other is None else f"; other processes took {100 * other:.1f}% of the CPU time"
    lines = [f"# meanfield bench ({result['plan']['name']})", "",
             f"{m['cpu_model']} ({simd}), {m['cores']} cores; {m['threads']} threads pinned "
             f"to CPUs {m['cpus_pinned']}; load average {m['loadavg_start'][0]:.2f} → "
             f"{m['loadavg_end'][0]:.2f}. Versions: "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + share + ".", "",
             "Seconds per step (median of (t_long − t_short)/(n_long − n_short)); in "
             "parentheses comparator time / meanfield time (> 1: meanfield is faster).", ""]
    if other is None:  # no /proc/stat: the load average before the run
        busy = m["loadavg_start"][0] > 0.5 * (m["cores"] or 1)
        what = f"load average {m['loadavg_start'][0]:.1f} on {m['cores']} cores"
    else:
        busy = other > OTHER_LOAD_MAX
        what = f"other processes took {100 * other:.0f}% of the CPU time"
    if busy:
        lines += [f"**Warning: {what}.** Other "
                  "processes compete for the pinned CPUs; multithreaded loops (PyTorch's "
                  "spin-waiting OpenMP, OpenBLAS, Numba's prange) can slow down many-fold "
                  "and unevenly. Rerun on an idle machine (or compare with the hidden "
                  "option `--threads 1`) before reading the ratios.", ""]
    impls = [c for c in COMPARATORS if any(r["impl"] == c for r in rows)]
    for workload, title in (("toy", "Toy sgd, float64, one replica (tanh, p = 1, M = 10)"),
                            ("digits", "Digits sgd, float64 (relu, 64 → 10, "
                                       "cross-entropy, M = 100)")):
        sizes = sorted({r["N"] for r in rows if r["workload"] == workload})
        if not sizes:
            continue
        lines += [f"## {title}", "",
                  "| N | meanfield | " + " | ".join(LABELS[c] for c in impls) + " |",
                  "|---:|---:|" + "---:|" * len(impls)]
        for N in sizes:
            ref = _lookup(rows, workload, "meanfield", N)
            lines.append(f"| {N:.0e} | {_e(ref)} | " + " | ".join(
                _cell(_lookup(rows, workload, c, N), ref) for c in impls) + " |")
        lines.append("")
    lines += ["## Engine", "",
              "Particle-steps/s = replicas·N / (s/step); GFLOP/s and GB/s by the FLOP and "
              "byte models below, with % of the measured peak (f64 matmul "
              f"{peak['gflops_float64']:.1f}, f32 matmul {peak['gflops_float32']:.1f} "
              f"GFLOP/s; triad {peak['gbs_triad']:.1f} GB/s). Peak memory: tracemalloc "
              "peak of one short simulate (arrays only).", "",
              "| workload | mode | dtype | replicas | N | s/step | particle-steps/s | "
              "GFLOP/s (% peak) | GB/s (% peak) | peak MiB | first call s |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["impl"] != "meanfield":
            continue
        fpk = peak[f"gflops_{r['dtype']}"]
        mem = r.get("peak_mem_bytes")
        lines.append(
            f"| {r['workload']} | {r['mode']} | {r['dtype']} | {r['seeds']} | {r['N']:.0e} | "
            f"{r['sec_per_step']:.2e} | {r['particle_steps_per_s']:.2e} | "
            f"{r['gflops']:.2f} ({100 * r['gflops'] / fpk:.0f}%) | "
            f"{r['gbs']:.2f} ({100 * r['gbs'] / peak['gbs_triad']:.0f}%) | "
            f"{'—' if mem is None else f'{mem / 2**20:.1f}'} | {r['first_call_s']:.2f} |")
    lines += ["", f"FLOP model: {result['models']['flop']}. Byte model: "
              f"{result['models']['bytes']}.", "", "## Targets", "",
              "| target | N | measured | required | pass |", "|---|---:|---:|---:|:---:|"]
    for t in result["targets"]:
        v = "—" if t["value"] is None else f"{t['value']:.2f}"
        ok = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        lines.append(f"| {t['target']} | {t['N']:.0e} | {v} | {t['op']} {t['threshold']:g} "
                     f"| {ok} |")
    lines += ["", "## Comparator checks", "",
              f"Each loop, fed the engine's initial particles and its own batch draws, runs "
              f"{_CHECK_STEPS} sgd steps; max |Δw − Δw_engine| / max |Δw_engine| must be "
              f"≤ {_CHECK_TOL:g}.", "", "| workload | N | loop | against | rel. error | agrees |",
              "|---|---:|---|---|---:|:---:|"]
    for c in result["checks"]:
        lines.append(f"| {c['workload']} | {c['N']} | {LABELS[c['impl']]} | "
                     f"{c['reference']} | {c['max_rel_err']:.1e} | "
                     f"{'yes' if c['agrees'] else 'NO'} |")
    jit = result["jit"]
    lines += ["", "## JIT", ""]
    if jit["kind"] == "none":
        lines.append("Not measured in this plan.")
    else:
        lines.append(f"Probe: {jit['workload']}, in a fresh process.")
        lines.append("")
        lines += ["| process | import s | first simulate s | import + first step s | "
                  "process wall s | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]
        for key, label in (("cold", "empty NUMBA_CACHE_DIR (compiles)"),
                           ("prime", "first process, default cache"),
                           ("warm", "second process, warm cache")):
            p = jit.get(key)
            if p is None:
                continue
            if "error" in p:
                lines.append(f"| {label} | error: {p['error']} | | | | |")
                continue
            rss = p.get("maxrss_bytes")
            lines.append(f"| {label} | {p['import_s']:.2f} | {p['first_simulate_s']:.2f} | "
                         f"{p['to_first_step_s']:.2f} | {p['wall_s']:.2f} | "
                         f"{'—' if rss is None else f'{rss / 2**20:.0f}'} |")
    lines += ["", f"Total bench time {result['elapsed_s']:.0f} s; this process's max RSS "
              f"{result['maxrss_bytes'] / 2**20:.0f} MiB.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line
def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Add ``[--quick] --out DIR`` (and the hidden ``--tiny``, ``--threads``) to ``ap``."""
    ap.add_argument("--quick", action="store_true",
                    help="fewer sizes and repeats, no cold-compile probe (about 1–2 minutes)")
    ap.add_argument("--out", required=True, metavar="DIR", help="output directory")
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)


def run_from_args(args) -> int:
    """Run the bench for parsed arguments; return the exit code (0)."""
    if args.threads is not None and args.threads < 1:
        from ..errors import ConfigError

        msg = f"--threads must be >= 1, got {args.threads}"
        raise ConfigError(msg)
    plan = make_plan("tiny" if args.tiny else "quick" if args.quick else "full")
    result = run_bench(args.out, plan=plan, threads=args.threads)
    fails = [t for t in result["targets"] if t["pass"] is False]
    print(f"{args.out}: bench.json, bench.md ({len(result['rows'])} timings, "
          f"{len(fails)} of {len(result['targets'])} target checks failing) in "
          f"{result['elapsed_s']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scripts/bench.py``: the same as ``meanfield bench``."""
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    from ..errors import ConfigError

    try:
        return run_from_args(args)
    except ConfigError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
