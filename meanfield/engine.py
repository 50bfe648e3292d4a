"""The particle engine: SGD (shared minibatch), the particle SDE and its noiseless ODE.

One step for all neurons k (docs/theory.rst §2–3), with ω_n = ω(n dt):

- ``sgd``:  W^k ← W^k − ω_n γ_{α,N} [(1/M) Σ_{i∈B} H(W^k, ν^N, z_i) + λ W^k], one batch B
  of M atoms per step, shared by all neurons;
- ``sde``:  W^k ← W^k − ω_n [dt (h(W^k, ν^N)) + (γ_{α,N} dt / M)^{1/2} Σ_j √p_j G^k_j g^k_j],
  G^k_j = H(W^k, ν^N, z_j) − E_z H (Euler–Maruyama; g^k_j i.i.d. N(0, 1), the same g_j for
  every k when ``noise = "shared"``); independent noise with D = 2 on a line, uncoupled,
  draws the same law as Σ^{1/2}(W^k, ν^N) ξ^k with 2 normals ξ^k (``noise_sampler``);
- ``ode``:  the sde step without noise.

All randomness inside the kernels comes from a counter-based generator (Philox4x32-10 under
the replica key, the counter made of step, stream kind, particle and atom), so results do
not depend on thread count or scheduling, and any draw can be recomputed (``noise_draws``,
``batch_draws``).  Sums over neurons are taken in fixed blocks of ``BLOCK`` neurons, added
in block order: the same arithmetic whether blocks run on one thread or many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba as nb
import numpy as np

from ._kernels.forward import _mean_field_kernel
from ._kernels.jit import _ATOMS, _BOTH, _ODE, _ROOT, _SDE, _SGD, _SHARED, BLOCK, TILE
from ._kernels.rng import _draw_batch, _noise_rows
from ._kernels.step import BLOWUP, _advance_blocks, _advance_replicas, _steps_serial
from .data import DataLaw, make_data
from .errors import ConfigError, NumericalError
from .init import initial_particles, replica_streams
from .model import Model, make_model, risk
from .schedule import Schedule, make_schedule

BLOCK_PATH_MIN = 16 * BLOCK  # one replica with N ≥ this runs its blocks in parallel,
BLOCK_WORK_MIN = 1 << 17  # and so does one whose step does N·A·D ≥ this over ≥ 2 blocks
STORE_MAX = 1 << 23  # most activations kept between forward and backward pass (64 MiB in f64)
# Most work one compiled call does, in particle · atom · parameter units (twins counted):
# a snapshot segment runs as several calls within this budget, and Python sees signals
# (Ctrl-C, SIGTERM) between calls.  Measured on 2 cores (AMD EPYC, another process busy):
# 1.3–6 ns a unit, so a call takes 20–100 ms (``call_steps``).  A call is at least one
# step however big (N = 10⁶ at 64 atoms: ≈ 1 s a step).  No number depends on it.
CALL_WORK = 1 << 24
CALL_PAD_N, CALL_PAD_A = 64, 8  # a step costs as if N ≥ 64 and A + 8 atoms (fixed costs)
LONG_RUN = 10**9  # particle-steps (N · steps · replicas) from which a run says so up front
_MODES = {"sgd": _SGD, "sde": _SDE, "ode": _ODE}


@dataclass(frozen=True)
class Trajectory:
    """Snapshots of a run of ``R`` replicas.

    Attributes
    ----------
    W : (R, S, N, D) ndarray or None
        Particles at the snapshot times (None when not saved).
    u : (R, S, J, C) ndarray
        Mean field u_j = ⟨ν^N, F(·, x_j)⟩ at the training atoms.
    risk : (R, S) ndarray
        Training risk Σ_j p_j ℓ(u_j, y_j).
    times : (S,) ndarray
        Actual step times n·dt of the snapshots.
    steps : (S,) ndarray of int64
        Step indices of the snapshots.
    schedule : Schedule
    test_risk, accuracy, test_accuracy : (R, S) ndarray or None
        Held-out risk and (weighted) accuracies when the data have them.
    coupling_sq : (R, N) ndarray or None
        With a limit: sup over steps of ``|W^{k,N} − W^{k,⋆}|²`` per neuron (docs/theory.rst §5).
    coupling_rms : (R, S) ndarray or None
        With a limit: RMS over neurons of ``|W^{k,N} − W^{k,⋆}|`` at the snapshots.
    output_error : (R, S) ndarray or None
        With a limit: RMS over atoms (and outputs) of u^N − u at the snapshots.
    u_steps : (R, n_T + 1, J, C) ndarray or None
        With ``record_u``: the mean field at every step time n·dt.
    """

    W: np.ndarray | None
    u: np.ndarray
    risk: np.ndarray
    times: np.ndarray
    steps: np.ndarray
    schedule: Schedule
    test_risk: np.ndarray | None = None
    accuracy: np.ndarray | None = None
    test_accuracy: np.ndarray | None = None
    coupling_sq: np.ndarray | None = None
    coupling_rms: np.ndarray | None = None
    output_error: np.ndarray | None = None
    u_steps: np.ndarray | None = None


def threads() -> int:
    """Return the number of threads every parallel part uses: Numba's (one policy).

    The block path splits a replica's blocks into this many chunks, the PDE solver runs its
    row parts on this many threads, and the runner sets it to cores // workers in each
    worker (``numba.set_num_threads``).  No result depends on it.
    """
    return nb.get_num_threads()


class Problem(NamedTuple):
    """What the step kernels compute on: data, model and dynamics codes, the time grid.

    Built once by ``simulate`` and read by name in ``_kernels.step``.
    """

    X: np.ndarray  # (J, p) atoms' inputs, in the particles' dtype
    Y: np.ndarray  # (J, C) targets
    p: np.ndarray  # (J,) atom weights
    pcum: np.ndarray  # (J,) cumulative weights (last exactly 1), for batch draws
    uniform: bool  # all atom weights equal
    layers: int  # model codes (``model.LAYERS``, ``ACTIVATIONS``, ``LOSSES``)
    act: int
    loss: int
    l2: float
    mode: int  # _SGD, _SDE or _ODE
    sampler: int  # how the sde draws its noise (``noise_sampler``)
    sampling: int  # 1: sgd batches by epochs, 0: i.i.d.
    M: int  # batch size
    dt: float  # step
    ns: float  # noise scale (γ_{α,N} dt / M)^{1/2}
    alpha: float  # decay exponent of ω(t) = (1 + t)^{−α}


class Scratch(NamedTuple):
    """Preallocated work arrays of the step kernels, built by ``_scratch`` only.

    Per-replica arrays lead with the replica (R rows; one on the block path).  The vector
    scratch (vec, GD, GN) leads with the work unit: the replica, or on the block path the
    chunk of blocks a thread takes.
    """

    u_part: np.ndarray  # (R, blocks, A, C) per-block partial mean fields
    u: np.ndarray  # (R, A, C) mean field at the step's atoms
    g: np.ndarray  # (R, A, C) loss gradients
    ell: np.ndarray  # (R, max(A, J)) losses
    atoms: np.ndarray  # (R, A) the step's atoms (int64)
    cd: np.ndarray  # (R, A) the step's atom weights in the drift
    cn_shared: np.ndarray  # (R, J) shared noise coefficients √p_j g_j
    perm: np.ndarray  # (R, J) epoch permutation (int64)
    vec: np.ndarray  # (units, 4 TILE + 2, BLOCK) tile rows
    GD: np.ndarray  # (units, D, BLOCK) drift of a block
    GN: np.ndarray  # (units, D, BLOCK) noise of a block
    # σ(⟨b_k, x_i⟩) of every neuron and step atom, kept from the forward to the backward
    # pass when it fits in STORE_MAX numbers (else last axis 0: recomputed, the same values)
    sig_store: np.ndarray  # (R, blocks, A, BLOCK or 0)
    no_store: np.ndarray  # (J, 0): "recompute" for the twins
    Ws: np.ndarray  # (R, D, N or 0) limit twins (none: uncoupled)
    twin_noise: bool  # the twins get the particles' noise (sde at β = 1)
    t_lim: np.ndarray  # (K,) the limit's time grid
    u_lim: np.ndarray  # (K, J, C) the limit's mean field on it
    us: np.ndarray  # (R, J, C) the limit's mean field at the step time
    gs: np.ndarray  # (R, J, C) the twins' loss gradients
    csq: np.ndarray  # (R, N or 0) running sup of |W − W*|²
    u_hist: np.ndarray  # (R, steps or 0, J, C) u of every step (record_u)


def _scratch(R, N, A, J, C, D, dtype, blocks, hist_steps, limit=None, twin_noise=False,
             chunks=None):
    """Build the :class:`Scratch` of R replicas (blocks: R = 1, work split into chunks).

    With a limit, the twins start empty (``simulate`` copies W_0 into them) and the
    limit's mean field is stored for the kernels.
    """
    nblocks = (N + BLOCK - 1) // BLOCK
    store = R * nblocks * A * BLOCK <= STORE_MAX
    units = min(chunks or threads(), nblocks) if blocks else R
    couple = limit is not None
    return Scratch(
        u_part=np.zeros((R, nblocks, A, C), dtype),
        u=np.zeros((R, A, C), dtype),
        g=np.zeros((R, A, C), dtype),
        ell=np.zeros((R, max(A, J)), dtype),
        atoms=np.zeros((R, A), np.int64),
        cd=np.zeros((R, A), dtype),
        cn_shared=np.zeros((R, J), dtype),
        perm=np.zeros((R, J), np.int64),
        vec=np.zeros((units, 4 * TILE + 2, BLOCK), dtype),
        GD=np.zeros((units, D, BLOCK), dtype),
        GN=np.zeros((units, D, BLOCK), dtype),
        sig_store=np.zeros((R, nblocks, A, BLOCK if store else 0), dtype),
        no_store=np.zeros((J, 0), dtype),
        Ws=np.zeros((R, D, N if couple else 0), dtype),
        twin_noise=bool(twin_noise),
        t_lim=np.ascontiguousarray(limit.t_u, np.float64) if couple else np.zeros(2),
        u_lim=(np.ascontiguousarray(limit.u, dtype) if couple
               else np.zeros((2, J, C), dtype)),
        us=np.zeros((R, J, C), dtype),
        gs=np.zeros((R, J, C), dtype),
        csq=np.zeros((R, N if couple else 0)),
        u_hist=np.zeros((R, hist_steps, J, C), dtype),
    )


def memory_parts(config, J: int, C: int, D: int, *, coupled: bool = False,
                 save_weights: bool = True, hist_steps: int = 0) -> dict[str, int]:
    """Estimate the bytes :func:`simulate` allocates for ``config``, by the keys that size them.

    ``"run.N, run.seeds"``: the particles (R·N·D, twice with limit twins), the float64
    draw of W₀ per replica, the running coupling error; ``"dynamics.snapshots"``: the
    snapshots kept (R·S·N·D with ``save_weights``, R·S·J·C of u); ``"schedule.batch"``
    (sgd) or ``"data.n"``: the per-block partial sums (R·⌈N/BLOCK⌉·A·C), the kept
    activations (at most ``STORE_MAX``) and the step's atom arrays; ``"dynamics.T"``: the
    recorded mean field (R·hist_steps·J·C).  Callers compare the sum with the memory the
    machine has before starting (``meanfield.studies.preflight``).
    """
    R, N, M = config.run.seeds, config.run.N, config.schedule.batch
    S = config.dynamics.snapshots
    isz = np.dtype(config.run.dtype).itemsize
    sgd = config.dynamics.mode == "sgd"
    A = M if sgd else J
    nblocks = -(-N // BLOCK)
    return {
        "run.N, run.seeds": (R * N * D * (2 if coupled else 1) * isz + 2 * N * D * 8
                             + (R * N * 8 if coupled else 0)),
        "dynamics.snapshots": R * S * ((N * D if save_weights else 0) + J * C) * isz,
        "schedule.batch" if sgd else "data.n": (
            R * nblocks * A * C + min(R * nblocks * A * BLOCK, STORE_MAX) + R * (A + J) * 4
        ) * isz,
        "dynamics.T": R * hist_steps * J * C * isz,
    }


def memory_bytes(config, J: int, C: int, D: int, **kwargs) -> int:
    """Return the sum of :func:`memory_parts` (same arguments)."""
    return sum(memory_parts(config, J, C, D, **kwargs).values())


def call_steps(R: int, N: int, A: int, D: int, *, coupled: bool = False) -> int:
    """Return how many steps one compiled call runs: as many as fit in ``CALL_WORK``.

    A step of R replicas of N particles with D parameters at A atoms does R·N·(A + 8)·D
    units of work, N counted as at least 64 (``CALL_PAD_N``, ``CALL_PAD_A``: the costs of
    a particle and a replica that do not grow with the atoms), twice that with limit twins.
    """
    per_step = (R * max(N, CALL_PAD_N) * (A + CALL_PAD_A) * D * (2 if coupled else 1))
    return max(1, CALL_WORK // per_step)


def _mean_field(Wt, X, model):
    """Mean field u (J, C) of particles Wt (D, N) by the blocked sum; None if not finite."""
    nblocks = (Wt.shape[1] + BLOCK - 1) // BLOCK
    u_part = np.zeros((nblocks, X.shape[0], model.outputs), Wt.dtype)
    u = np.zeros((X.shape[0], model.outputs), Wt.dtype)
    vec = np.zeros((TILE + 1, BLOCK), Wt.dtype)
    ok = _mean_field_kernel(Wt, Wt[0, :0], X, model.layers, model.activation, vec, u_part, u,
                            BLOWUP)
    return u if ok and np.all(np.isfinite(Wt)) else None


def _accuracy(u, labels, p):
    if labels is None or len(labels) == 0:
        return np.nan
    pred = np.argmax(u, axis=1) if u.shape[1] > 1 else (u[:, 0] > 0).astype(np.int64)
    return float(np.dot(p, pred == labels))


def simulate(config, *, data: DataLaw | None = None, save_weights: bool = True,
             progress: bool = False, limit=None, schedule: Schedule | None = None,
             record_u: bool = False, chunks: int | None = None) -> Trajectory:
    """Run ``run.seeds`` replicas of the particle system described by ``config``.

    Parameters
    ----------
    config : Config
    data : DataLaw, optional
        The data law (default: ``make_data(config)``).
    save_weights : bool
        Keep the particles at every snapshot (memory R·S·N·D).
    progress : bool
        Show a tqdm bar over steps (with an ETA).
    limit : meanfield.limit.Limit, optional
        Couple every particle with a limit twin W^{k,⋆} (same W^k_0, same noise draws g^k_j)
        driven by the limit's mean field u_t, inside the same compiled loop (docs/theory.rst §5):
        the MV SDE for mode = sde at β = 1, the deterministic flow otherwise.
    schedule : Schedule, optional
        Time grid to use instead of the config's (the reference limit solver sets its own
        step); the noise scale is (schedule.gamma_an · dt / M)^{1/2}.
    record_u : bool
        Keep the mean field of every step (sde and ode only).
    chunks : int, optional
        Work units of the block path (one replica's blocks in parallel), each with its own
        scratch; default one per thread (``threads()``).  No number depends on it: every
        block does the same arithmetic in any chunk.

    Returns
    -------
    Trajectory

    Raises
    ------
    NumericalError
        On NaN/inf or blow-up (``|u| > 1e30``), naming the replica, the step and the time.
    """
    data = make_data(config) if data is None else data
    model = make_model(config, data)
    sched = make_schedule(config) if schedule is None else schedule
    d, s, R, N = config.dynamics, config.schedule, config.run.seeds, config.run.N
    if d.sampling == "epochs" and d.mode == "sgd" and not data.uniform:
        msg = "dynamics.sampling = 'epochs' needs uniform atom weights; use 'iid'"
        raise ConfigError(msg)
    if record_u and d.mode == "sgd":
        msg = "record_u needs dynamics.mode = 'sde' or 'ode' (sgd sees only its batch)"
        raise ConfigError(msg)
    if limit is not None:
        limit.check_coupling(config)
    dtype = np.dtype(config.run.dtype)
    J, C, D = data.x.shape[0], model.outputs, model.dim
    mode = _MODES[d.mode]
    M = s.batch
    A = M if mode == _SGD else J
    X, Y = np.ascontiguousarray(data.x, dtype), np.ascontiguousarray(data.y, dtype)
    p = data.p.astype(dtype)
    pcum = np.cumsum(data.p)
    pcum[-1] = 1.0
    rngs, keys = replica_streams(config)
    Wt = np.ascontiguousarray(np.stack([initial_particles(config, model, g, N).T for g in rngs]),
                              dtype=dtype)  # (R, D, N): loops over neurons are unit-stride
    ns = math.sqrt(sched.gamma_an * sched.dt / M)
    # threads meet twice per step on the block path: worth it for enough work per step
    # (digits-size sgd reaches it at N = 10³, toy sgd at N ≈ 6600)
    blocks = R == 1 and (N >= BLOCK_PATH_MIN or (N > BLOCK and N * A * D >= BLOCK_WORK_MIN))
    seg_max = int(np.max(np.diff(sched.snapshot_steps), initial=0))
    per_call = call_steps(R, N, A, D, coupled=limit is not None)
    scr = _scratch(R, N, A, J, C, D, dtype, blocks, min(seg_max, per_call) if record_u else 0,
                   limit, twin_noise=d.mode == "sde" and s.beta == 1.0, chunks=chunks)
    if limit is not None:
        scr.Ws[...] = Wt  # the twins start at W_0
    status = np.full(R, -1, np.int64)
    S = len(sched.snapshot_steps)
    out_W = np.empty((R, S, N, D), dtype) if save_weights else None
    out_u = np.empty((R, S, J, C), dtype)
    metrics = {k: np.full((R, S), np.nan) for k in ("risk", "test_risk", "acc", "test_acc",
                                                    "crms", "oerr")}
    u_steps = np.empty((R, sched.n_total + 1, J, C), dtype) if record_u else None
    has_test = data.x_test.shape[0] > 0
    X_test = data.x_test.astype(dtype)

    def record(si):
        for r in range(R):
            u = _mean_field(Wt[r], X, model)
            if u is None:
                t = sched.snapshot_steps[si] * sched.dt
                msg = (f"replica {r}: non-finite particles or |u| > {BLOWUP:g} "
                       f"at step {sched.snapshot_steps[si]} "
                       f"(t = {t:.6g})")
                raise NumericalError(msg)
            out_u[r, si] = u
            if save_weights:
                out_W[r, si] = Wt[r].T
            metrics["risk"][r, si] = risk(u, data.y, data.p, model)
            metrics["acc"][r, si] = _accuracy(u, data.labels, data.p)
            if has_test:
                ut = _mean_field(Wt[r], X_test, model)
                uniform_test = np.full(len(X_test), 1.0 / len(X_test))
                metrics["test_risk"][r, si] = risk(ut, data.y_test, uniform_test, model)
                metrics["test_acc"][r, si] = _accuracy(ut, data.labels_test, uniform_test)
            if limit is not None:
                twin = scr.Ws[r]
                metrics["crms"][r, si] = math.sqrt(np.mean(np.sum((Wt[r] - twin) ** 2, 0)))
                ul = limit.u_at(float(sched.snapshot_steps[si] * sched.dt))
                metrics["oerr"][r, si] = math.sqrt(np.mean((u - ul) ** 2))
        if record_u and si == S - 1:
            u_steps[:, -1] = out_u[:, si]

    record(0)
    sampler = noise_sampler(config, model, coupled=limit is not None)
    pb = Problem(X=X, Y=Y, p=p, pcum=pcum.astype(dtype), uniform=data.uniform,
                 layers=model.layers, act=model.activation, loss=model.loss, l2=model.l2,
                 mode=mode, sampler=sampler, sampling=int(d.sampling == "epochs"), M=M,
                 dt=sched.dt, ns=ns, alpha=s.alpha)
    sqrt_p, all_atoms = np.sqrt(pb.p), np.arange(pb.p.shape[0])  # as _advance_replicas has them
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(sched.n_total), desc=f"N={N}", unit="step", unit_scale=True,
                   leave=False)
    try:
        for si in range(1, S):
            n1 = int(sched.snapshot_steps[si])
            for n0 in range(int(sched.snapshot_steps[si - 1]), n1, per_call):
                nsteps = min(per_call, n1 - n0)
                if blocks:
                    _advance_blocks(Wt[0], keys[0], pb, n0, nsteps, scr, status)
                elif R == 1:  # one replica on one thread: no parallel region to meet in
                    status[0] = _steps_serial(Wt[0], 0, n0, nsteps, keys[0], pb, sqrt_p,
                                              all_atoms, scr)
                else:
                    _advance_replicas(Wt, keys, pb, n0, nsteps, scr, status)
                if record_u:
                    u_steps[:, n0:n0 + nsteps] = scr.u_hist[:, :nsteps]
                bad = np.flatnonzero(status >= 0)
                if bad.size:
                    r, n = int(bad[0]), int(status[bad[0]])
                    msg = (f"replica {r}: mean field non-finite or beyond {BLOWUP:g} at step "
                           f"{n} (t = {n * sched.dt:.6g}); reduce schedule.gamma or "
                           "dynamics.dt_factor")
                    raise NumericalError(msg)
                if bar is not None:
                    bar.update(nsteps)
            record(si)
    finally:
        if bar is not None:
            bar.close()
    cls = data.labels is not None
    coupled = limit is not None
    return Trajectory(
        W=out_W, u=out_u, risk=metrics["risk"], times=sched.times, steps=sched.snapshot_steps,
        schedule=sched,
        test_risk=metrics["test_risk"] if has_test else None,
        accuracy=metrics["acc"] if cls else None,
        test_accuracy=metrics["test_acc"] if cls and has_test else None,
        coupling_sq=scr.csq if coupled else None,
        coupling_rms=metrics["crms"] if coupled else None,
        output_error=metrics["oerr"] if coupled else None,
        u_steps=u_steps,
    )


def noise_sampler(config, model: Model, *, coupled: bool = False) -> int:
    """Kernel code of the way the sde draws its noise (docs/theory.rst §3).

    ``_SHARED``: one g_j per atom for all particles.  ``_ROOT``: independent noise on a
    scalar regression on a line (D = 2), uncoupled: 2 normals ξ^k per particle times the
    closed-form principal root Σ^{1/2}(W^k) — the same law as Σ_j √p_j G^k_j g^k_j at a cost
    of 3 products per atom instead of a normal.  ``_ATOMS`` otherwise: J normals g^k_j per
    particle (coupled twins keep it: their noise difference Σ_j √p_j (G_j − G*_j) g_j is
    Lipschitz in W, while Σ^{1/2} is not where Σ degenerates).
    """
    if config.dynamics.noise == "shared":
        return _SHARED
    one_output = model.layers == _BOTH and model.outputs == 1 and model.dim == 2
    return _ROOT if one_output and not coupled else _ATOMS


# ---------------------------------------------------------------- draws, for tests and twins
def noise_draws(key: int, step: int, N: int, J: int) -> np.ndarray:
    """Return the (N, J) standard normals g^k_j that step ``step`` uses (independent noise).

    Row 0 is also the shared-noise draw of that step.  With J = 2 these are the ξ^k that
    the Σ^{1/2} sampler multiplies (``noise_sampler``).  Row k is Box–Muller of the
    Philox4x32-10 blocks k⌈J/4⌉ … k⌈J/4⌉ + ⌈J/4⌉ − 1 of the step's noise stream under
    the replica key (the layout in ``meanfield._kernels.rng``), four normals a block.
    """
    out = np.empty((N, J))
    _noise_rows(np.uint64(key), step, out)
    return out


def batch_draws(key: int, step: int, M: int, p: np.ndarray, *, sampling: str = "iid"):
    """Return the (M,) atom indices of SGD step ``step`` for atom weights p (J,)."""
    p = np.asarray(p, dtype=np.float64)
    pcum = np.cumsum(p)
    pcum[-1] = 1.0
    J = p.shape[0]
    atoms = np.empty(M, np.int64)
    perm = np.empty(J, np.int64)
    uniform = bool(np.all(p == p[0]))
    _draw_batch(np.uint64(key), step, M, J, uniform, pcum, int(sampling == "epochs"), perm,
                -1, atoms)
    return atoms
