"""The paper's digits experiment (De Bortoli et al. 2020, §5) and two studies beyond it.

Setting: scikit-learn's 8×8 digits (64 standardised inputs, 10 classes, a held-out test
split), a two-layer ReLU network with both layers trained and the mean-field output
f_N = (1/N) Σ_k a^k σ(⟨b^k, x⟩), cross-entropy, PyTorch's default initialisation, and
minibatch SGD with one batch of M atoms shared by all neurons at the learning rate
γN^β(n + 1/γ_{α,N})^{−α}, i.e. the engine's schedule (THEORY.md §2).

Three studies, each a plain function returning JSON-ready dicts (:func:`reproduce` runs
them all and writes the figures):

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
   and stays put at β = 1 (SGD's batch noise survives the limit, THEORY.md §4–5).

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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402

from .config import Config, parse_config, to_dict  # noqa: E402
from .data import DataLaw, make_data  # noqa: E402
from .engine import simulate  # noqa: E402
from .rates import fit_rate  # noqa: E402
from .store import manifest, write_json  # noqa: E402
from .wasserstein import floor, w2_1d  # noqa: E402

__all__ = [
    "PaperSettings", "base_config", "constant_inputs", "fixed_init_study", "plot_accuracy",
    "plot_fixed_init", "plot_histograms", "plot_w2", "reproduce", "width_study",
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
    """fit_rate on squared errors, as JSON (theory is the coupling exponent of THEORY §5)."""
    if len(ns) < 2:
        return {}
    fit = fit_rate(ns, samples, beta=beta)
    blk = fit.to_json()
    blk["theory_note"] = "coupling-error exponent of THEORY.md §5, for reference"
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
        |W^k − W^1| under sgd); ``across_runs``: for each regime (sgd at every β in
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


# ---------------------------------------------------------------- figures
def _save(fig, path: str | os.PathLike) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_histograms(study: dict, path: str | os.PathLike, *, sizes: Sequence[int],
                    constant: Sequence[int]) -> None:
    """Histograms of the marginals at T across neurons, one column per N, with the KDE."""
    smp = study["_samples"]
    sizes = [n for n in study["N"] if n in set(sizes)] or study["N"]
    names = list(study["params"])
    fig, axes = plt.subplots(len(names), len(sizes), figsize=(3.2 * len(sizes), 2.6 * len(names)),
                             squeeze=False, layout="constrained")
    for i, name in enumerate(names):
        ref = smp["ref"][:, i]
        lo, hi = np.quantile(ref, [0.002, 0.998])
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        pad = 0.08 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        grid = np.linspace(lo, hi, 400)
        kde = gaussian_kde(ref)(grid) if np.ptp(ref) > 0 else None
        for j, N in enumerate(sizes):
            ax = axes[i, j]
            x = smp["finals"][N][:, i]
            bins = np.linspace(lo, hi, int(np.clip(2 * np.sqrt(N), 12, 60)) + 1)
            ax.hist(np.clip(x, lo, hi), bins=bins, density=True, color="C0", alpha=0.6,
                    label="N neurons at T")
            if kde is not None:
                ax.plot(grid, kde, color="k", lw=1.3,
                        label=f"limit: KDE of the\nwidest run (N = {study['widest']})")
            ax.set_xlim(lo, hi)
            ax.set_xlabel(_param_label(name, constant))
            if j == 0:
                ax.set_ylabel("density across neurons")
            ax.set_title(f"N = {N}", fontsize=10)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="upper right")
        if name == "b_0" and 0 in constant:
            axes[i, 0].text(0.5, 0.2, "input 0 is constant (pixel 0 ≡ 0):\nb_0 never moves "
                            "and stays\nat its initial law U(±1/8)", ha="center",
                            transform=axes[i, 0].transAxes, va="center", fontsize=7,
                            bbox={"facecolor": "white", "alpha": 0.85, "lw": 0})
    fig.suptitle(f"Digits, SGD with shared batches, β = {study['beta']:g}, T = "
                 f"{study['T']:g}: weights across neurons at T against the limit density")
    _save(fig, path)


def _param_label(name: str, constant: Sequence[int]) -> str:
    if name.startswith("a_"):
        return f"{name}: layer-2 weight to class {name[2:]}"
    r = int(name[2:])
    note = " (constant)" if r in constant else ""
    return f"{name}: weight from input {r}{note}"


def plot_w2(studies: Sequence[dict], path: str | os.PathLike) -> None:
    """W2 of each marginal at T against the widest run, against N, with fits and floors."""
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(studies), figsize=(5.2 * len(studies) + 2.6, 4.6),
                             squeeze=False, layout="constrained")
    for k, (ax, st) in enumerate(zip(axes[0], studies, strict=True)):
        handles = []
        for c, (name, blk) in enumerate(st["w2"].items()):
            ns = np.asarray(blk["fit_N"], float)
            vals = [np.asarray(v) for v in blk["per_replica"]]
            mean = np.array([np.sqrt(np.mean(v ** 2)) for v in vals])
            for n, v in zip(ns, vals, strict=True):
                ax.plot(np.full(len(v), n), v, ".", color=f"C{c}", alpha=0.4, ms=4)
            fit = blk["fit"]
            lab = name + (f": slope {fit['slope']:.2f} [{fit['slope_ci'][0]:.2f}, "
                          f"{fit['slope_ci'][1]:.2f}]" if fit else "")
            handles += ax.plot(ns, mean, "o-", color=f"C{c}", label=lab)
            ax.plot(ns, blk["floor_iid"], ":", color=f"C{c}", lw=1.2)
            ax.plot([st["widest"]], [blk["floor_two_widest_runs"]], "*", color=f"C{c}", ms=10)
            ax.plot([st["widest"] / 2], [blk["floor_halves_of_widest"]], "x", color=f"C{c}",
                    ms=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (neurons)")
        ax.set_ylabel(f"W2 at T to the widest run (N = {st['widest']})")
        ax.set_title(f"β = {st['beta']:g}")
        if k == len(studies) - 1:
            handles += [
                Line2D([], [], ls=":", color="gray", label="i.i.d. sampling floor\n"
                       "(N draws of the widest run)"),
                Line2D([], [], ls="", marker="*", color="gray", ms=10,
                       label="two widest runs\n(different initial draws)"),
                Line2D([], [], ls="", marker="x", color="gray", ms=7,
                       label="two halves of the widest run"),
                Line2D([], [], ls="", marker=".", color="gray", label="single replicas"),
            ]
            ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        else:
            ax.legend(handles=handles, fontsize=7, loc="lower left")
    fig.suptitle("1-D W2 of the neurons' marginals at T against N (line: RMS over replicas)")
    _save(fig, path)


def plot_accuracy(studies: Sequence[dict], path: str | os.PathLike) -> None:
    """Test accuracy and risk at T against N; test risk against time for every N."""
    fig, axes = plt.subplots(2, max(2, len(studies)), figsize=(11, 8), layout="constrained",
                             squeeze=False)
    for c, st in enumerate(studies):
        ns = [r["N"] for r in st["runs"]]
        for key, ax, lab in (("test_accuracy_T", axes[0, 0], "accuracy"),
                             ("test_risk_T", axes[0, 1], "risk")):
            v = [np.mean(r[key]) for r in st["runs"]]
            e = [np.std(r[key]) for r in st["runs"]]
            ax.errorbar(ns, v, yerr=e, fmt="o-", color=f"C{c}", capsize=3,
                        label=f"test {lab}, β = {st['beta']:g}")
            tr = [np.mean(r[key.replace("test", "train")]) for r in st["runs"]]
            ax.plot(ns, tr, "s--", color=f"C{c}", alpha=0.6, ms=4,
                    label=f"train {lab}, β = {st['beta']:g}")
        ax = axes[1, c]
        for k, r in enumerate(st["runs"]):
            ax.plot(r["times"], r["test_risk_path"],
                    color=plt.cm.viridis(k / max(1, len(st["runs"]) - 1)), label=f"N = {r['N']}")
        ax.set_yscale("log")
        ax.set_xlabel(r"time $t = n\,\gamma_{\alpha,N}$")
        ax.set_ylabel("test risk (cross-entropy)")
        ax.set_title(f"test risk during training, β = {st['beta']:g}")
        ax.legend(fontsize=8)
    for ax, lab in ((axes[0, 0], "accuracy at T"), (axes[0, 1], "risk (cross-entropy) at T")):
        ax.set_xscale("log")
        ax.set_xlabel("N (neurons)")
        ax.set_ylabel(lab)
        ax.set_title(f"{lab} against N")
        ax.legend(fontsize=8)
    for ax in axes[1, len(studies):]:
        ax.set_axis_off()
    fig.suptitle("Digits: train and held-out performance (mean ± std over initial draws)")
    _save(fig, path)


def plot_fixed_init(study: dict, path: str | os.PathLike) -> None:
    """Across-neuron spread against time (sgd vs sde) and across-run spread against N."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    idt = study["identity"]
    ax0.plot(idt["times"], idt["sgd_spread"], "o-",
             label=f"SGD, shared batches (max |W^k − W^1| = {idt['sgd_max_abs_diff']:.1e})")
    ax0.plot(idt["times"], idt["sde_spread"], "s-", label="SDE, independent noise")
    ax0.set_xlabel("time t")
    ax0.set_ylabel("spread across neurons (max over params of std)")
    ax0.set_title(f"one initial point, N = {idt['N']}, β = 1")
    ax0.legend(fontsize=8)
    for c, blk in enumerate(study["across_runs"]):
        ns = np.asarray(blk["N"], float)
        lab = f"{'SGD' if blk['mode'] == 'sgd' else 'SDE indep.'}, β = {blk['beta']:g}"
        if blk["slope"] is not None:
            lab += f": slope {blk['slope']:.2f} (expected {blk['expected_slope']:.3g})"
        ax1.plot(ns, blk["spread_of_mean"], "o-", color=f"C{c}", label=lab)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("N (neurons)")
    ax1.set_ylabel("across-run std of the neuron-mean weight at T")
    ax1.set_title(f"fixed W₀, {study['across_runs'][0]['replicas']} noise replicas, "
                  f"T = {study['T']:g}")
    ax1.legend(fontsize=8)
    fig.suptitle("Fixed initialisation: all neurons start at one point")
    _save(fig, path)


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
        plot_histograms(st, out / name, sizes=s.hist_sizes, constant=const)
        figures[f"histograms beta={st['beta']:g}"] = name
    plot_w2(studies, out / "w2_vs_n.png")
    plot_accuracy(studies, out / "accuracy_vs_n.png")
    plot_fixed_init(fixed, out / "fixed_init.png")
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
