"""Figures: run summaries (risk against time, a weight histogram)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .models import Model  # noqa: E402
from .particles import Trajectory  # noqa: E402


def param_names(model: Model) -> list[str]:
    """Names of the D parameters of a neuron: a_c (output weights) then b_r (input weights)."""
    a = [f"a_{c}" for c in range(model.offset)]
    return a + [f"b_{r}" for r in range(model.input_dim)]


def plot_run(traj: Trajectory, model: Model, path: str | os.PathLike, *, title: str = "") -> None:
    """Save run.png: risk against time per replica, and a histogram of the weight b_0 at 0 and T.

    Parameters
    ----------
    traj : Trajectory
    model : Model
    path : path of the PNG to write
    title : figure title (e.g. the regime)
    """
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
    for r in range(traj.risk.shape[0]):
        ax0.plot(traj.times, traj.risk[r], color="C0", alpha=0.6, lw=1,
                 label="train risk" if r == 0 else None)
        if traj.test_risk is not None:
            ax0.plot(traj.times, traj.test_risk[r], color="C1", alpha=0.6, lw=1,
                     label="test risk" if r == 0 else None)
    ax0.set_xlabel("time t")
    ax0.set_ylabel("risk")
    if np.all(traj.risk > 0):
        ax0.set_yscale("log")
    ax0.legend()
    ax0.set_title("risk")
    if traj.W is not None:
        q = model.offset
        name = param_names(model)[q]
        w0 = traj.W[:, 0, :, q].ravel()
        wT = traj.W[:, -1, :, q].ravel()
        bins = np.histogram_bin_edges(np.concatenate([w0, wT]), bins=60)
        ax1.hist(w0, bins=bins, density=True, alpha=0.4, label="t = 0")
        ax1.hist(wT, bins=bins, density=True, alpha=0.6, label=f"t = {traj.times[-1]:.3g}")
        ax1.set_xlabel(f"{name} (weight from input 0)")
        ax1.set_ylabel("density across neurons")
        ax1.legend()
        ax1.set_title(f"neurons: {name}")
    else:
        ax1.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_limit(limit, model: Model, path: str | os.PathLike, *, title: str = "") -> None:
    """Save limit.png: the limit law at the snapshot times (density or weighted histograms)."""
    names = param_names(model)
    S = len(limit.times)
    show = sorted(set(np.linspace(0, S - 1, min(S, 4)).round().astype(int)))
    if limit.density is not None and limit.density.ndim == 3:
        fig, axes = plt.subplots(1, len(show), figsize=(3.6 * len(show), 3.4), squeeze=False)
        c0, c1 = limit.centres
        for ax, si in zip(axes[0], show, strict=True):
            ax.pcolormesh(c0, c1, limit.density[si].T, shading="auto", cmap="viridis")
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            ax.set_title(f"t = {limit.times[si]:.3g}")
    else:
        fig, axes = plt.subplots(1, 1, figsize=(6, 4), squeeze=False)
        ax = axes[0, 0]
        q = model.offset if model.dim > model.offset else 0
        for si in show:
            if limit.density is not None:
                ax.plot(limit.centres[0], limit.density[si], label=f"t = {limit.times[si]:.3g}")
            else:
                ax.hist(limit.points[si, :, q], bins=80, weights=limit.weights[si],
                        density=True, histtype="step", label=f"t = {limit.times[si]:.3g}")
        ax.set_xlabel(names[q] if limit.density is None else names[0])
        ax.set_ylabel("density")
        ax.legend()
    fig.suptitle(title or f"limit ({limit.method})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rates(summaries: list[tuple[str, dict]], path: str | os.PathLike, *,
               title: str = "") -> None:
    """Save w2_vs_n.png: E_N and law-level W2 against N (log-log), fits, theory, floors.

    Parameters
    ----------
    summaries : list of (label, rate.json dict)
        One or several studies on the same axes.
    path : path of the PNG to write
    title : figure title (default: the regime of the first study)
    """
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (label, s) in enumerate(summaries):
        ns = np.asarray(s["N"], dtype=float)
        for key, marker, name in (("coupling", "o", "coupling E_N"), ("w2", "s", "W2(ν^N, λ)")):
            blk = s[key]
            mean, ci = np.asarray(blk["mean"]), np.asarray(blk["ci"])
            color = f"C{2 * i + (key == 'w2')}"
            ax.errorbar(ns, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], fmt=marker,
                        color=color, capsize=3,
                        label=f"{label + ': ' if label else ''}{name}")
            lo, hi = blk["slope_ci"]
            fit = np.exp(np.polyfit(np.log(ns), np.log(mean), 1)[1]) * ns ** blk["slope"]
            ax.plot(ns, fit, "-", color=color,
                    label=f"slope {blk['slope']:.2f} ± {(hi - lo) / 2:.2f}")
            if key == "coupling":
                th = mean[0] * (ns / ns[0]) ** blk["theory"]
                ax.plot(ns, th, ":", color="k", label=f"theory slope {blk['theory']:.3g}")
        floor = np.asarray(s["w2"]["floor"])
        fstd = np.asarray(s["w2"].get("floor_std", np.zeros_like(floor)))
        ax.fill_between(ns, floor - 2 * fstd, floor + 2 * fstd, color=f"C{2 * i + 1}",
                        alpha=0.15, label=f"W2 floor ({s['w2']['estimator']})")
        ax.plot(ns, floor, "--", color=f"C{2 * i + 1}", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (neurons)")
    ax.set_ylabel("error")
    r = summaries[0][1]["regime"]
    ax.set_title(title or (f"{r['mode']}, {r['noise']} noise: β = {r['beta']}, α = {r['alpha']}, "
                           f"γ = {r['gamma']}, M = {r['batch']}, {r['replicas']} replicas"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
