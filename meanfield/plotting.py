"""Figures of every command and study.

Every function draws into the axes it is given (``ax=``, ``axes=`` or ``fig=``), or into
a new :class:`matplotlib.figure.Figure` when given none, and returns the Figure. None of
them picks a backend or saves: a notebook shows the returned Figure inline, and the
commands write it with :func:`save`. Figure-level decoration (suptitle, layout) is applied
only to a figure the function created or was handed as ``fig=``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .engine import Trajectory
    from .limit import Limit
    from .model import Model


def save(fig: Figure, path: str | os.PathLike, **kwargs) -> None:
    """Write ``fig`` to ``path`` at 110 dpi, atomically (``kwargs`` go to ``Figure.savefig``).

    The format comes from the suffix; a failed write (a full disk) leaves no partial file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png", **kwargs)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _cmap(name: str):
    return matplotlib.colormaps[name]


def param_names(model: Model) -> list[str]:
    """Names of the D parameters of a neuron: a_c (output weights) then b_r (input weights)."""
    a = [f"a_{c}" for c in range(model.offset)]
    return a + [f"b_{r}" for r in range(model.input_dim)]


def plot_run(traj: Trajectory, model: Model, *, title: str = "",
             axes: Sequence[Axes] | None = None) -> Figure:
    """Draw run.png: risk against time per replica, and a histogram of b_0 at 0 and T.

    Parameters
    ----------
    traj : Trajectory
    model : Model
    title : figure title (e.g. the regime)
    axes : two Axes, optional
        Where to draw (default: a new 10 × 4 in figure).
    """
    own = axes is None
    if own:
        fig = Figure(figsize=(10, 4))
        ax0, ax1 = fig.subplots(1, 2)
    else:
        ax0, ax1 = axes
        fig = ax0.figure
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
    if own:
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def plot_limit(limit: Limit, model: Model, *, title: str = "", fig: Figure | None = None
               ) -> Figure:
    """Draw limit.png: the limit law at the snapshot times (density or weighted histograms).

    A 2-D density gets one panel per snapshot shown (up to 4), anything else one panel;
    ``fig`` (a Figure or SubFigure) receives them (default: a new figure).
    """
    names = param_names(model)
    S = len(limit.times)
    show = sorted(set(np.linspace(0, S - 1, min(S, 4)).round().astype(int)))
    own = fig is None
    if limit.density is not None and limit.density.ndim == 3:
        if own:
            fig = Figure(figsize=(3.6 * len(show), 3.4))
        axes = fig.subplots(1, len(show), squeeze=False)
        c0, c1 = limit.centres
        for ax, si in zip(axes[0], show, strict=True):
            ax.pcolormesh(c0, c1, limit.density[si].T, shading="auto", cmap="viridis")
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            ax.set_title(f"t = {limit.times[si]:.3g}")
    else:
        if own:
            fig = Figure(figsize=(6, 4))
        ax = fig.subplots(1, 1, squeeze=False)[0, 0]
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
    if own:
        fig.tight_layout()
    return fig


def _floor_hits(mean, ci, floor, fstd) -> np.ndarray:
    """Points whose CI reaches the estimator floor band (floor + 2σ): floor-dominated."""
    return np.asarray(ci)[:, 0] <= np.asarray(floor) + 2 * np.asarray(fstd)


def plot_rates(summaries: list[tuple[str, dict]], *, title: str = "",
               ax: Axes | None = None) -> Figure:
    """Draw w2_vs_n.png: E_N and law-level W2 against N (log-log), fits, theory, floors.

    Law-level points whose interval reaches their estimator's floor band are drawn hollow
    and the first such N is annotated: from there on the floor, not the particles, sets
    the curve.

    Parameters
    ----------
    summaries : list of (label, rate.json dict)
        One or several studies on the same axes.
    title : axes title (default: the regime of the first study)
    ax : Axes, optional
        Where to draw (default: a new 8 × 5.5 in figure; save it with
        ``bbox_inches="tight"``, the legend sits outside the axes).
    """
    if ax is None:
        ax = Figure(figsize=(8, 5.5)).subplots()
    for i, (label, s) in enumerate(summaries):
        pre = f"{label}: " if label else ""
        series = [("coupling", "o", "coupling E_N", s["N"]),
                  ("w2", "s", "W2(ν^N, λ)", s["N"])]
        if s.get("w2_exact"):
            series.append(("w2_exact", "^", "exact W2(ν^N, λ)", s["w2_exact"]["N"]))
        for j, (key, marker, name, n_list) in enumerate(series):
            blk, ns = s[key], np.asarray(n_list, dtype=float)
            mean, ci = np.asarray(blk["mean"]), np.asarray(blk["ci"])
            color = f"C{3 * i + j}"
            hits = (np.zeros(len(ns), bool) if key == "coupling" else
                    _floor_hits(mean, ci, blk["floor"], blk.get("floor_std", 0.0)))
            ax.errorbar(ns, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], fmt="none",
                        ecolor=color, capsize=3)
            if not hits.all():
                ax.plot(ns[~hits], mean[~hits], marker, color=color, label=f"{pre}{name}")
            if hits.any():
                ax.plot(ns[hits], mean[hits], marker, mfc="none", color=color,
                        label=f"{pre}{name}: at its floor")
                k = int(np.argmax(hits))
                ax.annotate(f"floor reached\nN = {int(ns[k])}", (ns[k], mean[k]),
                            xytext=(8, 12), textcoords="offset points", fontsize=7,
                            color=color, arrowprops={"arrowstyle": "->", "color": color})
            lo, hi = blk["slope_ci"]
            fit = np.exp(blk["intercept"] if "intercept" in blk else
                         np.polyfit(np.log(ns), np.log(mean), 1)[1]) * ns ** blk["slope"]
            ax.plot(ns, fit, "-", color=color, lw=1,
                    label=f"slope {blk['slope']:.2f} ± {(hi - lo) / 2:.2f}")
            if key == "coupling":
                th = mean[0] * (ns / ns[0]) ** blk["theory"]
                ax.plot(ns, th, ":", color="k", label=f"theory slope {blk['theory']:.3g}")
            else:
                floor = np.asarray(blk["floor"])
                fstd = np.asarray(blk.get("floor_std", np.zeros_like(floor)))
                ax.fill_between(ns, floor - 2 * fstd, floor + 2 * fstd, color=color,
                                alpha=0.15, label=f"floor ± 2σ ({blk['estimator']})")
                ax.plot(ns, floor, "--", color=color, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (neurons)")
    ax.set_ylabel("error / distance at T")
    r = summaries[0][1]["regime"]
    ax.set_title(title or (f"{r['mode']}, {r['noise']} noise: β = {r['beta']}, α = {r['alpha']}, "
                           f"γ = {r['gamma']}, M = {r['batch']}, {r['replicas']} replicas"),
                 fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax.figure


def _cell_grid(summary: list[dict]):
    """Rows β (ascending), columns (α, γ, M): index maps and labels for regime heatmaps."""
    betas = sorted({c["beta"] for c in summary})
    cols = sorted({(c["alpha"], c["gamma"], c["batch"]) for c in summary})
    where = {(c["beta"], c["alpha"], c["gamma"], c["batch"]): c for c in summary}
    labels = [f"α = {a:g}\nγ = {g:g}, M = {m}" for a, g, m in cols]
    return betas, cols, where, labels


def _heatmap(ax, values, text, betas, labels, *, cmap, vmin, vmax, title, cbar_label):
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
    for (i, j), t in np.ndenumerate(text):
        r, g, b, _ = im.cmap(im.norm(values[i, j])) if np.isfinite(values[i, j]) else (1,) * 4
        ax.text(j, i, t, ha="center", va="center", fontsize=7,
                color="w" if 0.299 * r + 0.587 * g + 0.114 * b < 0.45 else "k")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_ylabel("β")
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, label=cbar_label, shrink=0.85)


def _regime_tables(summary: list[dict]):
    """Heatmap values and labels over β × (α, γ, M): exponent, − theory, variance exponent."""
    betas, cols, where, labels = _cell_grid(summary)
    shape = (len(betas), len(cols))
    exp_v, diff_v, var_v = (np.full(shape, np.nan) for _ in range(3))
    exp_t, diff_t, var_t = (np.full(shape, "", dtype=object) for _ in range(3))
    for i, b in enumerate(betas):
        for j, col in enumerate(cols):
            c = where.get((b, *col))
            if c is None:
                continue
            lo, hi = c["exponent_ci"]
            exp_v[i, j] = c["exponent"]
            exp_t[i, j] = f"{c['exponent']:.3f}\n[{lo:.2f}, {hi:.2f}]"
            diff_v[i, j] = c["exponent"] - c["theory"]
            mark = "✓" if c["agrees"] else "✗"
            diff_t[i, j] = f"{diff_v[i, j]:+.3f} {mark}\ntheory {c['theory']:.3f}"
            var_v[i, j] = c["spread"]["exponent"]
            ok = "" if c["limit_type_agrees"] else " (≠ theory)"
            var_t[i, j] = f"{c['spread']['exponent']:.2f}\n{c['limit_type'][:5]}.{ok}"
    return betas, cols, labels, (exp_v, exp_t), (diff_v, diff_t), (var_v, var_t)


def plot_regime_exponents(summary: list[dict], *, axes: Sequence[Axes] | None = None
                          ) -> Figure:
    """Draw regimes_exponent.png from regimes.json cells.

    The measured coupling exponent (with its CI) and measured − theory as heatmaps over
    β × (α, γ, M), agreement marked ✓/✗; ``axes``: two Axes (default: a new figure).
    """
    betas, cols, labels, (exp_v, exp_t), (diff_v, diff_t), _ = _regime_tables(summary)
    own = axes is None
    if own:
        w = 2.2 + 1.6 * len(cols)
        fig = Figure(figsize=(2 * w, 1.2 + 0.75 * len(betas)), constrained_layout=True)
        axes = fig.subplots(1, 2)
    _heatmap(axes[0], exp_v, exp_t, betas, labels, cmap="viridis", vmin=-0.6, vmax=0.0,
             title="measured coupling exponent [95% CI]", cbar_label="slope of log E_N")
    _heatmap(axes[1], diff_v, diff_t, betas, labels, cmap="RdBu_r", vmin=-0.2, vmax=0.2,
             title="measured − theory (✓ agrees)", cbar_label="exponent difference")
    if own:
        fig.suptitle("propagation-of-chaos exponents by stepsize regime", fontsize=11)
    return axes[0].figure


def plot_regime_limit_types(summary: list[dict], *, axes: Sequence[Axes] | None = None
                            ) -> Figure:
    """Draw regimes_limit_type.png from regimes.json cells.

    The across-seed variance of W_T from a fixed W_0 against N per cell, and its fitted
    exponent as a heatmap labelled with the measured limit type; ``axes``: two Axes
    (default: a new figure).
    """
    betas, cols, labels, _, _, (var_v, var_t) = _regime_tables(summary)
    if axes is None:
        w = 2.2 + 1.6 * len(cols)
        fig = Figure(figsize=(6 + w, 4.5 + 0.12 * len(summary)), constrained_layout=True)
        axes = fig.subplots(1, 2)
    styles = ["-", "--", ":", "-."]
    alphas = sorted({c["alpha"] for c in summary})
    for c in summary:
        ns = np.asarray(c["N"], dtype=float)
        var = np.asarray(c["spread"]["variance"])
        k = betas.index(c["beta"])
        axes[0].plot(ns, var, styles[alphas.index(c["alpha"]) % 4], marker="o", ms=3,
                     color=_cmap("viridis")(k / max(1, len(betas) - 1)),
                     label=(f"β = {c['beta']:g}, α = {c['alpha']:g}, γ = {c['gamma']:g}, "
                            f"M = {c['batch']}: {c['limit_type']}"))
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("N (neurons)")
    axes[0].set_ylabel("across-seed variance of W_T (fixed W_0)")
    axes[0].set_title("→ 0: deterministic limit; flat: stochastic", fontsize=10)
    axes[0].legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2)
    _heatmap(axes[1], var_v, var_t, betas, labels, cmap="viridis", vmin=-1.0, vmax=0.1,
             title="variance exponent and measured limit type",
             cbar_label="slope of log variance")
    return axes[0].figure


def _marginal_density(pts, wts, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Marginal density of coordinate q: exact per grid line for a grid law, else a histogram."""
    xs, inv = np.unique(pts[:, q], return_inverse=True)
    if len(xs) <= 4000 and len(xs) > 2:
        mass = np.bincount(inv, weights=wts, minlength=len(xs))
        return xs, mass / np.gradient(xs)
    lo, hi = np.quantile(pts[:, q], [1e-3, 1 - 1e-3])
    dens, edges = np.histogram(pts[:, q], bins=80, range=(lo, hi), weights=wts, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), dens


def plot_limits(laws: dict, distances: list[dict], *, names: list[str] | None = None,
                fig: Figure | None = None) -> Figure:
    """Draw limits.png: marginal densities of λ_T for β < 1 and for β = 1 at several γ_α/M.

    Parameters
    ----------
    laws : dict
        (α, r) → (points (P, D), weights (P,)); r = 0.0 is the β < 1 limit, r > 0 the
        β = 1 limit with γ_α/M = r.
    distances : list of dict
        The ``noisy_limits`` entries (α, γ_α/M, W2 to the β < 1 limit), for the legend.
    names : parameter names (default w_0, w_1, ...)
    fig : Figure or SubFigure, optional
        Receives one row of panels per α (default: a new figure).
    """
    alphas = sorted({a for a, _ in laws})
    D = next(iter(laws.values()))[0].shape[1]
    nq = min(D, 3)
    names = names or [f"w_{q}" for q in range(D)]
    if fig is None:
        fig = Figure(figsize=(4.2 * nq, 3.4 * len(alphas)), constrained_layout=True)
    axes = fig.subplots(len(alphas), nq, squeeze=False)
    dist = {(d["alpha"], d["gamma_alpha_over_M"]): d["w2_to_beta_lt_1_limit"]
            for d in distances}
    for i, alpha in enumerate(alphas):
        keys = sorted((k for k in laws if k[0] == alpha), key=lambda k: -k[1])
        keys = [k for k in keys if k[1] > 0] + [(alpha, 0.0)]
        for q in range(nq):
            ax = axes[i, q]
            lo, hi = np.inf, -np.inf
            for n, k in enumerate(keys):
                xs, dens = _marginal_density(*laws[k], q)
                cdf = np.cumsum(dens * np.gradient(xs))
                lo = min(lo, xs[np.searchsorted(cdf, 1e-3 * cdf[-1])])
                hi = max(hi, xs[min(np.searchsorted(cdf, (1 - 1e-3) * cdf[-1]), len(xs) - 1)])
                r = k[1]
                label = ("β < 1 (MV ODE)" if r == 0 else
                         f"β = 1, γ_α/M = {r:g} (W2 {dist.get(k, np.nan):.3f})")
                ax.plot(xs, dens, color="k" if r == 0 else _cmap("plasma")(n / max(1, len(keys))),
                        lw=2 if r == 0 else 1.2, ls="--" if r == 0 else "-", label=label)
            pad = 0.1 * (hi - lo)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_xlabel(names[q])
            ax.set_ylabel("marginal density of λ_T")
            ax.set_title(f"α = {alpha:g}: {names[q]}", fontsize=10)
            if q == 0:
                ax.legend(fontsize=7)
    fig.suptitle("limits at T: noise of the β = 1 limit (implicit regularisation) vanishes "
                 "as γ_α/M → 0", fontsize=10)
    return fig


# ---------------------------------------------------------------- the digits experiment
# (meanfield.studies.paper; its figures are saved with bbox_inches="tight")
def plot_histograms(study: dict, *, sizes: Sequence[int], constant: Sequence[int],
                    fig: Figure | None = None) -> Figure:
    """Histograms of the marginals at T across neurons, one column per N, with the KDE.

    ``fig`` (Figure or SubFigure) receives a parameter × N grid (default: a new figure).
    """
    from scipy.stats import gaussian_kde

    smp = study["_samples"]
    sizes = [n for n in study["N"] if n in set(sizes)] or study["N"]
    names = list(study["params"])
    if fig is None:
        fig = Figure(figsize=(3.2 * len(sizes), 2.6 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), len(sizes), squeeze=False)
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
    return fig


def _param_label(name: str, constant: Sequence[int]) -> str:
    if name.startswith("a_"):
        return f"{name}: layer-2 weight to class {name[2:]}"
    r = int(name[2:])
    note = " (constant)" if r in constant else ""
    return f"{name}: weight from input {r}{note}"


def plot_w2(studies: Sequence[dict], *, fig: Figure | None = None) -> Figure:
    """W2 of each marginal at T against the widest run, against N, with fits and floors.

    ``fig`` (Figure or SubFigure) receives one panel per β (default: a new figure).
    """
    from matplotlib.lines import Line2D

    if fig is None:
        fig = Figure(figsize=(5.2 * len(studies) + 2.6, 4.6), layout="constrained")
    axes = fig.subplots(1, len(studies), squeeze=False)
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
    return fig


def plot_accuracy(studies: Sequence[dict], *, fig: Figure | None = None) -> Figure:
    """Test accuracy and risk at T against N; test risk against time for every N.

    ``fig`` (Figure or SubFigure) receives a 2 × max(2, β count) grid (default: new).
    """
    if fig is None:
        fig = Figure(figsize=(11, 8), layout="constrained")
    axes = fig.subplots(2, max(2, len(studies)), squeeze=False)
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
                    color=_cmap("viridis")(k / max(1, len(st["runs"]) - 1)), label=f"N = {r['N']}")
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
    return fig


def plot_fixed_init(study: dict, *, axes: Sequence[Axes] | None = None) -> Figure:
    """Across-neuron spread against time (sgd vs sde) and across-run spread against N.

    ``axes``: two Axes (default: a new figure).
    """
    own = axes is None
    if own:
        fig = Figure(figsize=(11, 4.3), layout="constrained")
        axes = fig.subplots(1, 2)
    ax0, ax1 = axes
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
    if own:
        fig.suptitle("Fixed initialisation: all neurons start at one point")
    return ax0.figure
