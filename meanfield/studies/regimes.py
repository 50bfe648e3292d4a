"""Stepsize-regime explorer: a rate study per (β, α, γ, M) cell (docs/theory.rst §2, §4, §5).

A cell is one regime. Its widths run from ``regimes.N_min`` up to the widest N whose run
costs at most ``regimes.budget`` particle-steps per replica (N · n_T, with n_T growing like
N^{(1−β)/(1−α)}), but over at least ``regimes.decades`` decades. Per cell and width one
task (:func:`regime_task`) measures the coupling error E_N against
the limit and the across-seed spread of W_T from a fixed W_0. Per cell:

- the coupling exponent (log-log slope with bootstrap CI, two-term fit for β < 1), the
  theory exponent −min(½, (1−β)/(2(1−α))) (−½ at β = 1), and ``agrees``:
  |slope − theory| ≤ 0.07 (α = 0) or 0.1 (α > 0), or for β < 1 the large-N slope
  −min(½, e) of the two-term fit c₁N^{−1/2} + c₂N^{−e} within 0.05;
- the limit type, measured: the across-seed variance of W^{k,N}_T from a fixed W_0 is
  fitted against N; it falls like N^{−(1−β)/(1−α)} towards a deterministic limit and stays
  flat for a stochastic one. ``deterministic`` when the fitted variance exponent is below
  −0.1 with its CI below 0, ``stochastic`` otherwise.

Across cells: the W2 distances between the finite-N laws at each cell's widest N for β < 1
(same α, γ, M), and to the computed β < 1 limit, each beside the floor of two independent
samples of the limit of the same sizes; and the W2 between the β = 1 limit at several
γ_α/M and the β < 1 limit.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Config, RegimesConfig, to_toml, with_values
from ..data import make_data
from ..engine import simulate
from ..errors import ConfigError
from ..limit.cache import LimitCache
from ..rates import fit_rate
from ..runner import Task, task_id
from ..schedule import gamma_alpha_n, make_schedule
from .rate import distance_to_law, limit_law, rate_task

if TYPE_CHECKING:  # xarray is imported where it is used: `import meanfield` stays quick
    import xarray as xr

AGREE_TOL = {True: 0.07, False: 0.1}   # keyed by α == 0
TWO_TERM_TOL = 0.05
DETERMINISTIC_BELOW = -0.1            # variance exponent threshold of the limit type
FLOOR_REPS = 8


def widths(config: Config, beta: float, alpha: float, gamma: float) -> list[int]:
    """Return a cell's widths: log-spaced from N_min, ≥ ``decades`` decades, within budget.

    The widest N is the largest of N_min·10^decades … N_min·10³ (in steps of a quarter
    decade) whose run costs at most ``regimes.budget`` particle-steps N · n_T, and never
    less than N_min·10^decades.
    """
    reg = config.regimes

    def cost(n):  # particle-steps N · n_T of one replica
        return n * make_schedule(with_values(config, {
            "schedule.beta": beta, "schedule.alpha": alpha, "schedule.gamma": gamma,
            "run.N": n})).n_total

    top = reg.decades
    for q in np.arange(reg.decades + 0.25, 3.0 + 1e-9, 0.25):
        if cost(round(reg.N_min * 10.0 ** q)) > reg.budget:
            break
        top = q
    ns = np.rint(reg.N_min * np.logspace(0.0, top, reg.points)).astype(int)
    return sorted({int(n) for n in ns})


def cells(config: Config) -> list[dict]:
    """Return the grid's cells in order: dicts with beta, alpha, gamma, batch, N, config.

    The cell config has the regime's schedule and the regimes section at its defaults
    except ``spread_seeds`` (so a task's id does not depend on the rest of the grid).
    """
    if config.sweep:
        msg = ("meanfield regimes takes its grid from [regimes] (beta, alpha, gamma, batch); "
               "remove the [sweep] section")
        raise ConfigError(msg)
    if config.run.seeds < 2:
        msg = "run.seeds must be >= 2 for meanfield regimes (CIs bootstrap over replicas)"
        raise ConfigError(msg)
    reg = config.regimes
    base = replace(config, regimes=RegimesConfig(spread_seeds=reg.spread_seeds))
    out = []
    for beta in reg.beta:
        for alpha in reg.alpha:
            for gamma, batch in zip(reg.gamma, reg.batch, strict=True):
                cfg = with_values(base, {"schedule.beta": beta, "schedule.alpha": alpha,
                                         "schedule.gamma": gamma, "schedule.batch": batch})
                out.append({"beta": beta, "alpha": alpha, "gamma": gamma, "batch": batch,
                            "N": widths(config, beta, alpha, gamma), "config": cfg})
    return out


def tasks(grid: list[dict]) -> list[Task]:
    """Return the runner's tasks of a grid: one per (cell, width), index (cell, width)."""
    out = []
    for ci, cell in enumerate(grid):
        for wi, n in enumerate(cell["N"]):
            cfg = with_values(cell["config"], {"run.N": n})
            values = {k: cell[k] for k in ("beta", "alpha", "gamma", "batch")} | {"N": n}
            out.append(Task(task_id(cfg), (ci, wi), values, cfg))
    return out


def regime_task(config: Config, *, limits: LimitCache | None = None,
                progress: bool = False) -> xr.Dataset:
    """Run one (cell, N) point of ``meanfield regimes``.

    The variables of :func:`rate_task` (without the exact W2), plus the limit-type study
    (docs/theory.rst §5): ``regimes.spread_seeds`` one-replica runs from one fixed W_0
    (``init.seed`` = ``run.seed``) that differ only in their noise seeds (``run.seed``);
    ``spread`` (spread_replica,) is each run's squared deviation from the across-run mean,
    summed over parameters, averaged over neurons and scaled by S/(S − 1), so its mean is
    the across-seed variance of W^{k,N}_T.
    """
    ds = rate_task(config, limits=limits, progress=progress, exact=False)
    t0 = time.perf_counter()
    S = config.regimes.spread_seeds
    # One replica per run: init.seed fixes W_0 (replica 0's initial stream) in every run,
    # run.seed alone changes the noise.
    W = np.stack([simulate(with_values(config, {"init.seed": config.run.seed, "run.seeds": 1,
                                                "run.seed": config.run.seed + 1 + s}),
                           progress=progress).W[0, -1] for s in range(S)])   # (S, N, D)
    dev = ((W - W.mean(axis=0)) ** 2).sum(axis=2).mean(axis=1) * S / (S - 1)
    ds["spread"] = (("spread_replica",), dev)
    ds.attrs["seconds_simulation"] += time.perf_counter() - t0
    return ds


def _agreement(fit, alpha: float) -> tuple[bool, str | None]:
    if abs(fit.slope - fit.theory) <= AGREE_TOL[alpha == 0.0]:
        return True, "slope"
    e = fit.two_term.get("asymptotic")
    if e is not None and abs(e - fit.theory) <= TWO_TERM_TOL:
        return True, "two_term"
    return False, None


def summarize_cell(cell: dict, ds: xr.Dataset, seed: int = 0) -> dict:
    """Return a cell's regimes.json object from its (width, ...) slice of results.nc."""
    beta, alpha = cell["beta"], cell["alpha"]
    ns = cell["N"]
    cp = fit_rate(ns, [ds["coupling"].values[i] for i in range(len(ns))], beta=beta,
                  alpha=alpha, seed=seed)
    agrees, by = _agreement(cp, alpha)
    sp = fit_rate(ns, [ds["spread"].values[i] for i in range(len(ns))], beta=1.0, seed=seed)
    var_exp, var_ci = 2 * sp.slope, [2 * sp.slope_ci[0], 2 * sp.slope_ci[1]]
    measured = ("deterministic" if var_exp < DETERMINISTIC_BELOW and var_ci[1] < 0
                else "stochastic")
    expected = "deterministic" if beta < 1.0 else "stochastic"
    var_theory = -(1.0 - beta) / (1.0 - alpha)
    return {
        "beta": beta, "alpha": alpha, "gamma": cell["gamma"], "batch": cell["batch"],
        "gamma_alpha_over_M": gamma_alpha_n(cell["gamma"], 1.0, alpha, 1) / cell["batch"],
        "N": [int(n) for n in ns],
        "exponent": cp.slope, "exponent_ci": list(cp.slope_ci), "theory": cp.theory,
        "agrees": agrees, "agrees_by": by, "two_term": cp.two_term,
        "coupling": {"mean": cp.mean.tolist(), "ci": cp.ci.tolist()},
        "limit_type": measured, "limit_type_theory": expected,
        "limit_type_agrees": measured == expected,
        "spread": {"variance": (sp.mean ** 2).tolist(),
                   "variance_ci": (sp.ci ** 2).tolist(),
                   "exponent": var_exp, "exponent_ci": var_ci, "theory": var_theory},
        "w2": {"mean": np.sqrt(np.nanmean(ds["w2"].values ** 2, axis=-1)).tolist(),
               "floor": ds["floor"].values.tolist()},
    }


def _sliced(x, y, a=None, b=None):
    """Sliced W2 (200 directions, seed 0); exact 1-D for one coordinate."""
    from ..wasserstein import w2

    return w2(x, y, a, b, method="1d" if x.shape[1] == 1 else "sliced", seed=0)


def _draw(pts, wts, n, rng):
    return pts[rng.choice(len(pts), n, p=wts)]


def compare_laws(config: Config, grid: list[dict], results: xr.Dataset,
                 limits: LimitCache) -> list[dict]:
    """Compare finite-N laws at the widest N of β < 1 cells with each other and the limit.

    For every (α, γ, M) with β < 1 cells: sliced W2 between each pair of cells' W_T
    (replica 0, widest N) and between each and the β < 1 limit λ_T, each beside the floor
    (the same distance between independent draws of λ_T of the same sizes, or between N
    draws and λ_T, ``FLOOR_REPS`` repetitions); ``within`` means the distance is at most
    floor + 3 σ. Limits come from ``limits``.
    """
    data = make_data(config)
    out = []
    rng = np.random.default_rng(np.random.SeedSequence([config.limit.seed, 7]))
    groups: dict[tuple, list[int]] = {}
    for ci, c in enumerate(grid):
        if c["beta"] < 1.0:
            groups.setdefault((c["alpha"], c["gamma"], c["batch"]), []).append(ci)
    for (alpha, gamma, batch), members in groups.items():
        lim = limits.get(grid[members[0]]["config"], data)
        pts, wts = limit_law(lim)
        to_limit = distance_to_law(pts, wts, 0)
        law = {}
        for ci in members:
            w = results["W_final"].isel(cell=ci, width=len(grid[ci]["N"]) - 1).values
            law[ci] = w[np.all(np.isfinite(w), axis=1)]
        for i, ci in enumerate(members):
            n1 = len(law[ci])
            for cj in [*members[i + 1:], None]:
                n2 = None if cj is None else len(law[cj])
                if cj is None:   # against λ_T itself; floor: n1 draws of λ_T against λ_T
                    xs = [law[ci]] + [_draw(pts, wts, n1, rng) for _ in range(FLOOR_REPS)]
                    d, *fl = [to_limit(x) for x in xs]
                else:            # floor: independent n1- and n2-draws of λ_T
                    d = _sliced(law[ci], law[cj])
                    fl = [_sliced(_draw(pts, wts, n1, rng), _draw(pts, wts, n2, rng))
                          for _ in range(FLOOR_REPS)]
                f, fs = float(np.mean(fl)), float(np.std(fl, ddof=1))
                out.append({"alpha": alpha, "gamma": gamma, "batch": batch,
                            "a": {"beta": grid[ci]["beta"], "N": n1},
                            "b": ("limit (β < 1)" if cj is None else
                                  {"beta": grid[cj]["beta"], "N": n2}),
                            "w2": d, "floor": f, "floor_std": fs,
                            "within": bool(d <= f + 3 * fs)})
    return out


def noisy_limits(config: Config, limits: LimitCache) -> tuple[list[dict], dict]:
    """β = 1 limits at the γ_α/M of ``regimes.ratios`` against the β < 1 limit.

    For each α of the grid and each ratio r: the MV SDE limit with M = 1 and
    γ = r^{1−α} (so γ_α/M = r), and the W2 (sliced, weighted) between its λ_T and the
    β < 1 limit's (taken from ``limits``). Returns the list of distances and the laws (for
    :func:`meanfield.plotting.plot_limits`).
    """
    from ..limit import solve_limit

    data = make_data(config)
    base = replace(config, regimes=RegimesConfig(), sweep=None)
    out, laws = [], {}
    for alpha in config.regimes.alpha:
        det = with_values(base, {"schedule.beta": 0.0, "schedule.alpha": alpha})
        ref = limit_law(limits.get(det, data))
        laws[(alpha, 0.0)] = ref
        for r in sorted(config.regimes.ratios, reverse=True):
            cfg = with_values(base, {"schedule.beta": 1.0, "schedule.alpha": alpha,
                                     "schedule.batch": 1, "schedule.gamma": r ** (1 - alpha),
                                     "dynamics.mode": "sde", "dynamics.noise": "independent"})
            law = limit_law(solve_limit(cfg, data=data))
            laws[(alpha, r)] = law
            out.append({"alpha": alpha, "gamma_alpha_over_M": r,
                        "w2_to_beta_lt_1_limit": _sliced(law[0], ref[0], law[1], ref[1])})
    for alpha in config.regimes.alpha:
        d = [o["w2_to_beta_lt_1_limit"] for o in out if o["alpha"] == alpha]
        for o in out:
            if o["alpha"] == alpha:
                o["monotone_in_ratio"] = bool(np.all(np.diff(d) < 0))
    return out, laws


def run_regimes(config: Config, out: str | os.PathLike, *, fresh: bool = False,
                executor: str = "serial", workers: int | None = None,
                scheduler: str | None = None, progress: bool | None = None,
                wait: bool = False) -> dict:
    """Run (or resume) a regime study into ``out``, as ``meanfield regimes`` does.

    Writes ``config.toml``, ``manifest.json``, ``tasks/``, results.nc, regimes.json,
    limits.json and the figures regimes_exponent.png, regimes_limit_type.png, limits.png.
    Every cell's inputs are checked before DIR is touched (rules of :mod:`meanfield.outdir`;
    ``fresh`` deletes what meanfield wrote there, ``wait`` waits for another command
    holding it); executor, workers, scheduler and progress as in
    :func:`meanfield.runner.run_tasks`.

    Returns a dict with ``cells`` (the regimes.json list), ``laws`` (cross-regime law
    comparisons), ``noisy_limits`` and ``seconds``.
    """
    from ..outdir import claim
    from ..runner import check_executor
    from .preflight import check_inputs

    check_executor(executor, workers, scheduler)
    out = Path(out)
    start = time.perf_counter()
    try:
        grid = cells(config)
        todo = tasks(grid)
        check_inputs([t.config for t in todo], limit=True, couple=True)
    except ConfigError as err:
        reg = config.regimes
        msg = (f"a cell of the regimes grid (regimes.N_min = {reg.N_min}, decades = "
               f"{reg.decades:g}, budget = {reg.budget:g}) is not runnable: {err}")
        raise ConfigError(msg) from None
    with claim(out, config, command="regimes", fresh=fresh, wait=wait):
        return _run_regimes(config, out, grid, todo, start, executor=executor,
                            workers=workers, scheduler=scheduler, progress=progress)


def _run_regimes(config, out, grid, todo, start, **how) -> dict:
    """Run the regime study's tasks and write its outputs, in a claimed DIR."""
    from ..io import gather, write_json, write_netcdf
    from ..plotting import plot_limits, plot_regime_exponents, plot_regime_limit_types, save
    from ..runner import run_tasks

    limits = LimitCache()
    done = run_tasks(todo, out, partial(regime_task, limits=limits), command="regime", **how)
    P = max(len(c["N"]) for c in grid)
    res = gather(todo, done, {"cell": tuple(range(len(grid))), "width": tuple(range(P))})
    nmat = np.zeros((len(grid), P), dtype=np.int64)
    for ci, c in enumerate(grid):
        nmat[ci, :len(c["N"])] = c["N"]
    res = res.assign_coords({k: ("cell", [c[k] for c in grid])
                             for k in ("beta", "alpha", "gamma", "batch")})
    res["N"] = (("cell", "width"), nmat)
    write_netcdf(res, out / "results.nc")
    summary = [summarize_cell(c, res.isel(cell=ci, width=slice(0, len(c["N"]))),
                              config.run.seed) for ci, c in enumerate(grid)]
    write_json(summary, out / "regimes.json")
    laws = compare_laws(config, grid, res, limits)
    noisy, limit_laws = noisy_limits(config, limits)
    write_json({"laws": laws, "noisy_limits": noisy}, out / "limits.json")
    save(plot_regime_exponents(summary), out / "regimes_exponent.png")
    save(plot_regime_limit_types(summary), out / "regimes_limit_type.png")
    save(plot_limits(limit_laws, noisy), out / "limits.png")
    return {"cells": summary, "laws": laws, "noisy_limits": noisy,
            "seconds": time.perf_counter() - start, "config": to_toml(config)}


def describe_regimes(res: dict, out: str | os.PathLike) -> str:
    """Return the table ``meanfield regimes`` prints: one line per cell, then the limits."""
    lines = [f"{out}: {len(res['cells'])} cells in {res['seconds']:.1f} s",
             "   β     α      γ     M   N range        exponent [95% CI]        theory  agrees"
             "  limit type"]
    for c in res["cells"]:
        lo, hi = c["exponent_ci"]
        lines.append(
            f"  {c['beta']:4.2f}  {c['alpha']:4.2f}  {c['gamma']:5.3g}  {c['batch']:4d}  "
            f"{c['N'][0]:>5}–{c['N'][-1]:<7} {c['exponent']:7.3f} [{lo:6.3f}, {hi:6.3f}]  "
            f"{c['theory']:7.3f}  {'yes' if c['agrees'] else 'NO':>5}   {c['limit_type']}"
            f"{'' if c['limit_type_agrees'] else ' (theory: ' + c['limit_type_theory'] + ')'}")
    for d in res["noisy_limits"]:
        lines.append(f"  β = 1 limit, α = {d['alpha']:g}, γ_α/M = {d['gamma_alpha_over_M']:g}: "
                     f"W2 to the β < 1 limit {d['w2_to_beta_lt_1_limit']:.4f}")
    return "\n".join(lines)
