"""The paper's digits experiment (De Bortoli et al. 2020, §5) and two studies beyond it.

Setting: scikit-learn's 8×8 digits (64 standardised inputs, 10 classes, a held-out test
split), a two-layer ReLU network with both layers trained and the mean-field output
f_N = (1/N) Σ_k a^k σ(⟨b^k, x⟩), cross-entropy, PyTorch's default initialisation, and
minibatch SGD with one batch of M atoms shared by all neurons at the learning rate
γN^β(n + 1/γ_{α,N})^{−α}, i.e. the engine's schedule (docs/theory.rst §2).

Two studies, each a plain function returning JSON-ready dicts (:func:`reproduce` runs
them all and writes the figures, drawn by :mod:`meanfield.plotting`):

1. :func:`width_study`: marginals of the neurons at T (the output weight a_0 to class 0
   and layer-1 weights b_r) for several N, against the KDE of the widest run; the 1-D W2
   of each marginal against the widest run with fitted log-log slopes and three floors;
   test risk and accuracy against N.  Runs at one β share the batch sequence (the same
   ``run.seed``) and differ only in the initial draw (``init.seed``), so at β = 1, whose
   shared-batch limit keeps the batch noise, every N is compared with the limit for the
   same batches.
2. :func:`fixed_init_study`: all neurons start at one point.  Shared-batch SGD keeps them
   identical; the independent-noise SDE spreads them.  Across replicas that differ only in
   the noise, the spread of the neuron-mean weight shrinks like N^{−(1−β)/2} for β < 1
   and stays put at β = 1 (SGD's batch noise survives the limit, docs/theory.rst §4–5).

Parameter layout (layers = both): w = (a_0 … a_{C−1}, b_0 … b_{p−1}); the layer-1 weight
from input r is index C + r.  Pixel 0 of every digit is 0, so after standardisation input
0 is constant and b_0 never moves: the studies report it and add the most-moving input.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, parse_config, to_dict
from ..data import DataLaw, make_data
from ..engine import simulate
from ..io import manifest, write_json
from ..rates import fit_rate
from ..wasserstein import floor, w2_1d

__all__ = [
    "PaperSettings", "base_config", "constant_inputs", "fixed_init_study", "reproduce",
    "width_study",
]

REF_INIT_SEEDS = (1000, 1001)  # init seeds of the two widest runs (reference, floor)


@dataclass(frozen=True)
class PaperSettings:
    """Everything that defines a reproduction run.

    Attributes
    ----------
    sizes : tuple of int
        Widths N of the width study; the widest is the reference (run twice).
    hist_sizes : tuple of int
        Widths drawn in the histogram figures (a subset of ``sizes``).
    betas : tuple of float
        Width exponents β of the width study.
    T, gamma, alpha, batch : float, float, float, int
        Horizon and schedule (γ, α, M).
    replicas : int
        Independent initial draws at every N below the widest.
    test_fraction : float
        Held-out fraction of the digits.
    seed : int
        ``run.seed`` of every run (the batch sequence).
    fixed_sizes : tuple of int
        Widths of the fixed-initialisation study.
    fixed_T : float
        Horizon of the fixed-initialisation study.
    fixed_replicas : int
        Noise replicas (``run.seeds``) per width in the fixed-initialisation study.
    fixed_sde_max : int
        Largest width run with the (full-batch, costlier) independent-noise SDE.
    """

    sizes: tuple[int, ...] = (100, 300, 1000, 3000, 10000)
    hist_sizes: tuple[int, ...] = (100, 300, 1000, 3000, 10000)
    betas: tuple[float, ...] = (0.75, 1.0)
    T: float = 100.0
    gamma: float = 1.0
    alpha: float = 0.0
    batch: int = 100
    replicas: int = 3
    test_fraction: float = 0.2
    seed: int = 0
    fixed_sizes: tuple[int, ...] = (10, 100, 1000, 3000)
    fixed_T: float = 10.0
    fixed_replicas: int = 8
    fixed_sde_max: int = 1000


FULL = PaperSettings(sizes=(500, 1000, 2000, 5000, 10000, 50000),
                     hist_sizes=(500, 5000, 50000),
                     fixed_sizes=(10, 100, 1000, 10000), fixed_sde_max=3000)
"""The paper's widths N = 500, 5000, 50000 (plus 1000, 2000, 10000 for the W2 fits)."""


def base_config(s: PaperSettings, *, beta: float, N: int, T: float | None = None,
                **extra: dict) -> Config:
    """Return the paper's config at (β, N); ``extra`` updates sections (``init={...}``)."""
    tables = {
        "model": {"layers": "both", "activation": "relu", "loss": "cross_entropy"},
        "data": {"kind": "digits", "test_fraction": s.test_fraction},
        "init": {"kind": "torch_default"},
        "schedule": {"gamma": s.gamma, "beta": beta, "alpha": s.alpha, "batch": s.batch},
        "dynamics": {"mode": "sgd", "T": s.T if T is None else T, "snapshots": 11},
        "run": {"N": N, "seeds": 1, "seed": s.seed},
    }
    for section, values in extra.items():
        tables[section] = {**tables.get(section, {}), **values}
    return parse_config(tables)


def constant_inputs(data: DataLaw) -> list[int]:
    """Return the indices of the inputs that take one value on every training and test atom."""
    x = np.concatenate([data.x, data.x_test])
    return [int(r) for r in np.flatnonzero(np.ptp(x, axis=0) == 0.0)]


def _log(msg: str) -> None:
    if sys.stderr.isatty():
        print(msg, file=sys.stderr, flush=True)


def _run(cfg: Config, data: DataLaw, timings: dict, label: str):
    t0 = time.perf_counter()
    traj = simulate(cfg, data=data, progress=sys.stderr.isatty())
    timings[label] = round(time.perf_counter() - t0, 3)
    _log(f"{label}: {timings[label]:.1f} s")
    return traj


def _rate_block(ns: Sequence[int], samples: Sequence[np.ndarray], beta: float) -> dict:
    """fit_rate on squared errors, as JSON (theory: the coupling exponent, docs/theory.rst §5)."""
    if len(ns) < 2:
        return {}
    fit = fit_rate(ns, samples, beta=beta)
    blk = fit.to_json()
    blk["theory_note"] = "coupling-error exponent of docs/theory.rst §5, for reference"
    return blk


def width_study(s: PaperSettings, data: DataLaw, beta: float, *, moving: int | None = None,
                timings: dict | None = None) -> dict:
    """Train at every N of ``s.sizes`` at one β; return marginals, W2s, risks (JSON-ready).

    Parameters
    ----------
    s : PaperSettings
    data : DataLaw
        The digits law (with a test split).
    beta : float
    moving : int, optional
        The input r whose layer-1 weight is shown beside b_0; default: the non-constant
        input whose weight moved most (W2 between t = 0 and T) in the reference run.
    timings : dict, optional
        Receives the wall time of every run.

    Returns
    -------
    dict
        ``N``, ``params`` (name → parameter index), per-N ``runs`` (test/train risk and
        accuracy per replica), ``w2`` (per marginal: per-replica W2 against the reference,
        fit, floors) and ``_samples`` (the marginals at T, for the figures; not JSON).
    """
    timings = {} if timings is None else timings
    sizes = sorted(set(s.sizes))
    C, p = data.outputs, data.input_dim
    wide = sizes[-1]
    tag = f"beta={beta:g}"
    refs = [_run(base_config(s, beta=beta, N=wide, init={"seed": k}), data, timings,
                 f"{tag} N={wide} init.seed={k}") for k in REF_INIT_SEEDS]
    W_ref = refs[0].W[0, -1]
    const = set(constant_inputs(data))
    if moving is None:
        moved = [-1.0 if r in const else w2_1d(refs[0].W[0, 0, :, C + r], W_ref[:, C + r])
                 for r in range(p)]
        moving = int(np.argmax(moved))
    params = {"a_0": 0, f"b_{moving}": C + moving, "b_0": C}
    runs, finals, w2s = [], {}, {name: [] for name in params}
    for N in sizes:
        if wide == N:
            trajs = refs
        else:
            trajs = [_run(base_config(s, beta=beta, N=N, init={"seed": k}), data, timings,
                          f"{tag} N={N} init.seed={k}") for k in range(s.replicas)]
        runs.append({
            "N": N,
            "init_seeds": list(REF_INIT_SEEDS) if wide == N else list(range(s.replicas)),
            "steps": int(trajs[0].schedule.n_total),
            "gamma_alpha_N": trajs[0].schedule.gamma_an,
            "test_risk_T": [float(t.test_risk[0, -1]) for t in trajs],
            "test_accuracy_T": [float(t.test_accuracy[0, -1]) for t in trajs],
            "train_risk_T": [float(t.risk[0, -1]) for t in trajs],
            "train_accuracy_T": [float(t.accuracy[0, -1]) for t in trajs],
            "test_risk_0": float(trajs[0].test_risk[0, 0]),
            "times": trajs[0].times.tolist(),
            "test_risk_path": trajs[0].test_risk[0].tolist(),
            "test_accuracy_path": trajs[0].test_accuracy[0].tolist(),
        })
        finals[N] = trajs[0].W[0, -1][:, list(params.values())]
        compare = trajs[1:] if wide == N else trajs  # the widest: run 2 against run 1
        for name, q in params.items():
            w2s[name].append([w2_1d(t.W[0, -1, :, q], W_ref[:, q]) for t in compare])
    rng = np.random.default_rng(s.seed)
    w2 = {}
    for name, q in params.items():
        ref = W_ref[:, q]
        half = rng.permutation(wide)
        fl = [floor((ref[:, None], np.full(wide, 1.0 / wide)), N, reps=20, rng=rng,
                    method="1d") for N in sizes[:-1]]
        small = sizes[:-1]
        w2[name] = {
            "param_index": q,
            "per_replica": w2s[name][:-1],
            "fit_N": small,
            "fit": _rate_block(small, [np.square(v) for v in w2s[name][:-1]], beta),
            "floor_two_widest_runs": w2s[name][-1][0],
            "floor_halves_of_widest": w2_1d(ref[half[: wide // 2]], ref[half[wide // 2:]]),
            "floor_iid": [f[0] for f in fl],
            "floor_iid_std": [f[1] for f in fl],
        }
    return {"beta": beta, "T": s.T, "N": sizes, "widest": wide, "params": params,
            "moving_input": moving, "runs": runs, "w2": w2,
            "_samples": {"finals": finals, "ref": W_ref[:, list(params.values())],
                         "init_ref": refs[0].W[0, 0][:, list(params.values())]}}


def _dirac_point(data: DataLaw, seed: int) -> list[float]:
    """Return one fixed neuron: a = 0, b drawn once from PyTorch's U(±1/√p)."""
    rng = np.random.default_rng(seed)
    b = rng.uniform(-1.0, 1.0, data.input_dim) / math.sqrt(data.input_dim)
    return [0.0] * data.outputs + b.tolist()


def _spread_across_neurons(W: np.ndarray) -> np.ndarray:
    """(R, S, N, D) → (R, S): max over parameters of the std across neurons.

    Taken of W − W^1 (the first neuron), so identical neurons give exactly 0.
    """
    return (W - W[:, :, :1]).std(axis=2).max(axis=-1)


def _mean_weight_spread(W_T: np.ndarray) -> tuple[float, np.ndarray]:
    """(R, N, D) → (spread, per-replica squared deviations) of the neuron-mean weight.

    spread = (mean over parameters of the across-replica variance (ddof = 1))^{1/2};
    the deviations |m_r − m̄|² / D · R/(R − 1) have that mean, for :func:`fit_rate`.
    """
    m = W_T.mean(axis=1)  # (R, D)
    R = m.shape[0]
    dev = np.sum((m - m.mean(axis=0)) ** 2, axis=1) / m.shape[1] * R / (R - 1)
    return float(math.sqrt(dev.mean())), dev


def fixed_init_study(s: PaperSettings, data: DataLaw, *, timings: dict | None = None) -> dict:
    """All neurons start at one point: identity under SGD, spread under the independent SDE.

    Returns
    -------
    dict
        ``point_seed``; ``identity`` (N, times, the across-neuron spread (max over
        parameters of the std across neurons) against time for sgd and sde, and the largest
        ``|W^k − W^1|`` under sgd); ``across_runs``: for each regime (sgd at every β in
        {0.75, 1}, sde-independent at β = 1) the across-replica spread of the neuron-mean
        weight at T per N with a log-log fit (``expected`` slope −(1 − β)/2 for sgd, −½
        for the independent SDE).
    """
    timings = {} if timings is None else timings
    R = max(2, s.fixed_replicas)
    point = _dirac_point(data, s.seed)
    init = {"kind": "dirac", "point": point, "seed": 0}
    sizes = sorted(set(s.fixed_sizes))
    n_id = min(sizes[-1], max(s.fixed_sde_max, 2))
    ident = {"N": n_id}
    for mode in ("sgd", "sde"):
        cfg = base_config(s, beta=1.0, N=n_id, T=s.fixed_T, init=init,
                          dynamics={"mode": mode, "noise": "independent"},
                          run={"seeds": 1})
        tr = _run(cfg, data, timings, f"fixed-init identity {mode} N={n_id}")
        ident["times"] = tr.times.tolist()
        ident[f"{mode}_spread"] = _spread_across_neurons(tr.W)[0].tolist()
        ident[f"{mode}_max_abs_diff"] = float(np.max(np.abs(tr.W[0] - tr.W[0, :, :1])))
        ident[f"{mode}_test_accuracy_T"] = float(tr.test_accuracy[0, -1])
    regimes = [("sgd", 0.75, sizes), ("sgd", 1.0, sizes),
               ("sde", 1.0, [n for n in sizes if n <= s.fixed_sde_max])]
    across = []
    for mode, beta, ns in regimes:
        spreads, devs, neuron_spread = [], [], []
        for N in ns:
            cfg = base_config(s, beta=beta, N=N, T=s.fixed_T, init=init,
                              dynamics={"mode": mode, "noise": "independent",
                                        "snapshots": 2},
                              run={"seeds": R})
            tr = _run(cfg, data, timings, f"fixed-init {mode} beta={beta:g} N={N}")
            sp, dev = _mean_weight_spread(tr.W[:, -1])
            spreads.append(sp)
            devs.append(dev)
            neuron_spread.append(float(_spread_across_neurons(tr.W[:, -1:]).max()))
        fit = fit_rate(ns, devs, beta=beta) if len(ns) >= 2 else None
        across.append({
            "mode": mode, "noise": "shared batch" if mode == "sgd" else "independent",
            "beta": beta, "N": ns, "replicas": R, "spread_of_mean": spreads,
            "max_spread_across_neurons": neuron_spread,
            "slope": None if fit is None else fit.slope,
            "slope_ci": None if fit is None else list(fit.slope_ci),
            "expected_slope": (beta - 1.0) / 2.0 if mode == "sgd" else -0.5,
        })
    return {"point_seed": s.seed, "T": s.fixed_T, "identity": ident, "across_runs": across}


# ---------------------------------------------------------------- the whole reproduction
def _public(study: dict) -> dict:
    return {k: v for k, v in study.items() if not k.startswith("_")}


def reproduce(out: str | os.PathLike, s: PaperSettings, *, command: str = "reproduce_paper",
              log: Callable[[str], None] | None = None) -> dict:
    """Run every study of ``s``, write ``paper.json``, ``manifest.json`` and PNGs into ``out``.

    Returns
    -------
    dict
        The content of ``paper.json``.
    """
    from ..plotting import plot_accuracy, plot_fixed_init, plot_histograms, plot_w2, save

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict = {}
    cfg0 = base_config(s, beta=s.betas[0], N=s.sizes[-1])
    data = make_data(cfg0)
    const = constant_inputs(data)
    studies, moving = [], None
    for beta in s.betas:
        st = width_study(s, data, beta, moving=moving, timings=timings)
        moving = st["moving_input"]
        studies.append(st)
    fixed = fixed_init_study(s, data, timings=timings)
    figures = {}
    for st in studies:
        name = f"histograms_beta{st['beta']:g}.png"
        save(plot_histograms(st, sizes=s.hist_sizes, constant=const), out / name,
             bbox_inches="tight")
        figures[f"histograms beta={st['beta']:g}"] = name
    for fig, name in ((plot_w2(studies), "w2_vs_n.png"),
                      (plot_accuracy(studies), "accuracy_vs_n.png"),
                      (plot_fixed_init(fixed), "fixed_init.png")):
        save(fig, out / name, bbox_inches="tight")
    figures.update({"w2": "w2_vs_n.png", "accuracy": "accuracy_vs_n.png",
                    "fixed_init": "fixed_init.png"})
    result = {
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
        "config": to_dict(cfg0),
        "data": {"name": data.name, "n_train": data.n_atoms, "n_test": int(len(data.x_test)),
                 "inputs": data.input_dim, "classes": data.outputs,
                 "constant_inputs": const, "input0_constant": 0 in const,
                 "note": "input 0 (pixel 0) is 0 in every image, so the layer-1 weight b_0 "
                         "(parameter index C + 0 = 10) never moves; b_{moving} is the "
                         "non-constant input whose weight moved most in the widest run"},
        "layout": "w = (a_0..a_9, b_0..b_63): a_c layer-2 weight to class c (index c), "
                  "b_r layer-1 weight from input r (index 10 + r)",
        "width_study": [_public(st) for st in studies],
        "fixed_init": fixed,
        "figures": figures,
    }
    write_json(result, out / "paper.json")
    total = time.perf_counter() - t_start
    write_json(manifest(command, seeds={"run.seed": s.seed, "init.seed": list(REF_INIT_SEEDS)},
                        timings={"total_s": round(total, 3), "runs": timings},
                        outputs=["paper.json", *figures.values()]), out / "manifest.json")
    return result
