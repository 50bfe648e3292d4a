"""Figures: run summaries (risk against time, a weight histogram)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .engine import Trajectory  # noqa: E402
from .model import Model  # noqa: E402


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


def _floor_hits(mean, ci, floor, fstd) -> np.ndarray:
    """Points whose CI reaches the estimator floor band (floor + 2σ): floor-dominated."""
    return np.asarray(ci)[:, 0] <= np.asarray(floor) + 2 * np.asarray(fstd)


def plot_rates(summaries: list[tuple[str, dict]], path: str | os.PathLike, *,
               title: str = "") -> None:
    """Save w2_vs_n.png: E_N and law-level W2 against N (log-log), fits, theory, floors.

    Law-level points whose interval reaches their estimator's floor band are drawn hollow
    and the first such N is annotated: from there on the floor, not the particles, sets
    the curve.

    Parameters
    ----------
    summaries : list of (label, rate.json dict)
        One or several studies on the same axes.
    path : path of the PNG to write
    title : figure title (default: the regime of the first study)
    """
    fig, ax = plt.subplots(figsize=(8, 5.5))
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
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


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


def plot_regimes(summary: list[dict], exponent_path: str | os.PathLike,
                 limit_type_path: str | os.PathLike) -> None:
    """Save regimes_exponent.png and regimes_limit_type.png from regimes.json cells.

    Exponent figure: the measured coupling exponent (with its CI) and measured − theory as
    heatmaps over β × (α, γ, M), agreement marked ✓/✗. Limit-type figure: the across-seed
    variance of W_T from a fixed W_0 against N per cell, and its fitted exponent as a
    heatmap labelled with the measured limit type.
    """
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
    w = 2.2 + 1.6 * len(cols)
    fig, axes = plt.subplots(1, 2, figsize=(2 * w, 1.2 + 0.75 * len(betas)),
                             constrained_layout=True)
    _heatmap(axes[0], exp_v, exp_t, betas, labels, cmap="viridis", vmin=-0.6, vmax=0.0,
             title="measured coupling exponent [95% CI]", cbar_label="slope of log E_N")
    _heatmap(axes[1], diff_v, diff_t, betas, labels, cmap="RdBu_r", vmin=-0.2, vmax=0.2,
             title="measured − theory (✓ agrees)", cbar_label="exponent difference")
    fig.suptitle("propagation-of-chaos exponents by stepsize regime", fontsize=11)
    fig.savefig(exponent_path, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(6 + w, 4.5 + 0.12 * len(summary)),
                             constrained_layout=True)
    styles = ["-", "--", ":", "-."]
    alphas = sorted({c["alpha"] for c in summary})
    for c in summary:
        ns = np.asarray(c["N"], dtype=float)
        var = np.asarray(c["spread"]["variance"])
        k = betas.index(c["beta"])
        axes[0].plot(ns, var, styles[alphas.index(c["alpha"]) % 4], marker="o", ms=3,
                     color=plt.cm.viridis(k / max(1, len(betas) - 1)),
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
    fig.savefig(limit_type_path, dpi=110)
    plt.close(fig)


def _marginal_density(pts, wts, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Marginal density of coordinate q: exact per grid line for a grid law, else a histogram."""
    xs, inv = np.unique(pts[:, q], return_inverse=True)
    if len(xs) <= 4000 and len(xs) > 2:
        mass = np.bincount(inv, weights=wts, minlength=len(xs))
        return xs, mass / np.gradient(xs)
    lo, hi = np.quantile(pts[:, q], [1e-3, 1 - 1e-3])
    dens, edges = np.histogram(pts[:, q], bins=80, range=(lo, hi), weights=wts, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), dens


def plot_limits(laws: dict, distances: list[dict], path: str | os.PathLike, *,
                names: list[str] | None = None) -> None:
    """Save limits.png: marginal densities of λ_T for β < 1 and for β = 1 at several γ_α/M.

    Parameters
    ----------
    laws : dict
        (α, r) → (points (P, D), weights (P,)); r = 0.0 is the β < 1 limit, r > 0 the
        β = 1 limit with γ_α/M = r.
    distances : list of dict
        The ``noisy_limits`` entries (α, γ_α/M, W2 to the β < 1 limit), for the legend.
    path : path of the PNG to write
    names : parameter names (default w_0, w_1, ...)
    """
    alphas = sorted({a for a, _ in laws})
    D = next(iter(laws.values()))[0].shape[1]
    nq = min(D, 3)
    names = names or [f"w_{q}" for q in range(D)]
    fig, axes = plt.subplots(len(alphas), nq, figsize=(4.2 * nq, 3.4 * len(alphas)),
                             squeeze=False, constrained_layout=True)
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
                ax.plot(xs, dens, color="k" if r == 0 else plt.cm.plasma(n / max(1, len(keys))),
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
