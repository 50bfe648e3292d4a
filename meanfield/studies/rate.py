"""The convergence-rate study (``meanfield rate``): E_N and law-level W2 against N.

One task per N (:func:`rate_task`): the limit, a run coupled to it, and the law-level
distances of ν^N_T to λ_T with their floors; :func:`rate_summary` fits them
(:func:`meanfield.rates.fit_rate`) into rate.json, and :func:`run_rate` runs the whole
study into DIR as the command does.
"""

from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Config
from ..data import make_data
from ..engine import simulate
from ..errors import ConfigError
from ..limit.cache import LimitCache
from ..rates import fit_rate

if TYPE_CHECKING:  # xarray is imported where it is used: `import meanfield` stays quick
    import xarray as xr

LAW_REPLICAS = 16         # replicas that get the law-level and marginal W2 (NaN for others)
EXACT_MAX_N = 5000        # exact (network-simplex) law-level W2 up to this N in D >= 2
EXACT_REPLICAS = 3        # replicas that get it (it costs O(N · EXACT_LIMIT_POINTS) each)
EXACT_FLOOR_REPS = 2      # repetitions of its floor
EXACT_LIMIT_POINTS = 1500  # the limit law is sampled down to this many points for it



def limit_law(limit, si: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Return the limit's law at snapshot ``si`` as weighted points ((P, D), (P,)).

    Empty cells of a grid density are dropped.
    """
    if limit.density is None:
        return limit.points[si], limit.weights[si]
    grids = np.meshgrid(*limit.centres, indexing="ij")
    pts = np.stack([g.ravel() for g in grids], axis=1)
    mass = limit.density[si].ravel() * np.prod([c[1] - c[0] for c in limit.centres])
    keep = mass > 0
    return pts[keep], mass[keep] / mass[keep].sum()


def distance_to_law(pts: np.ndarray, wts: np.ndarray, seed: int):
    """Return x ↦ W2 of the point cloud x (uniform weights) to the weighted law (pts, wts).

    Exact 1-D for D = 1; otherwise sliced W2 with 200 directions seeded by ``seed``,
    against a reference whose projections are sorted once. Cells holding a total mass
    < 1e-9 are dropped first: most cells of a grid limit hold next to no mass, and
    dropping them moves the W2 far less than its floor.
    """
    from ..wasserstein import compress, projection_set, sliced_reference, w2_1d, w2_sliced

    if pts.shape[1] == 1:
        return lambda x: w2_1d(x, pts, None, wts)
    ref = sliced_reference(*compress(pts, wts, len(pts), rng=np.random.default_rng(0),
                                     drop_mass=1e-9),
                           projections=projection_set(pts.shape[1], 200, seed))
    return lambda x: w2_sliced(x, ref)


def rate_task(config: Config, *, limits: LimitCache | None = None, progress: bool = False,
              exact: bool = True) -> xr.Dataset:
    """Run one point of ``meanfield rate``: limit, coupled simulation, law-level distances.

    Per replica: the mean over neurons of sup_t |W^{k,N} − W^{k,⋆}|² (``coupling``), the
    RMS output error at T; for the first ``LAW_REPLICAS`` replicas (NaN for the others)
    the law-level W2 of ν^N_T against λ_T (exact 1-D for D = 1,
    sliced W2 with 200 directions seeded by ``limit.seed`` otherwise — the same estimator
    at every N of a study), for D ≥ 2 and N ≤ ``EXACT_MAX_N`` also the exact W2
    (``ot.emd2``, first ``EXACT_REPLICAS`` replicas, NaN for the others and above) against
    λ_T sampled down to ``EXACT_LIMIT_POINTS`` points (:func:`~meanfield.wasserstein.compress`),
    and the exact W2 of each one-coordinate marginal. The floor of each estimator (N
    i.i.d. draws of λ_T against the same representation of λ_T, 8 repetitions; 2 for the
    exact one) rides along, and so do replica 0's particles
    at T (``W_final``). Wall times of the limit, the simulation and the distances go to
    ``attrs["seconds_*"]``, which the runner moves to the manifest.

    The limit comes from ``limits`` (a fresh cache if not given): a study passes one
    cache to all its tasks, so under the serial executor equal limit problems are solved
    once; a task sent to a worker process gets an empty copy and solves its own.
    """
    import xarray as xr

    from ..wasserstein import compress, w2_1d, w2_exact

    t0 = time.perf_counter()
    data = make_data(config)
    limit = (LimitCache() if limits is None else limits).get(config, data)
    t1 = time.perf_counter()
    traj = simulate(config, data=data, limit=limit, progress=progress)
    t2 = time.perf_counter()
    pts, wts = limit_law(limit)
    R, N, D = config.run.seeds, config.run.N, traj.W.shape[-1]
    law_w2 = distance_to_law(pts, wts, config.limit.seed)
    w2, marg = np.full(R, np.nan), np.full((R, D), np.nan)
    for r in range(min(R, LAW_REPLICAS)):
        w2[r] = law_w2(traj.W[r, -1])
        marg[r] = [w2_1d(traj.W[r, -1, :, q], pts[:, q], None, wts) for q in range(D)]
    rng = np.random.default_rng(np.random.SeedSequence([config.limit.seed, N]))
    draws = [pts[rng.choice(len(pts), size=N, p=wts)] for _ in range(8)]
    floor = np.array([law_w2(x) for x in draws])
    mfloor = np.array([[w2_1d(x[:, q], pts[:, q], None, wts) for q in range(D)]
                       for x in draws])
    w2x = np.full(R, np.nan)
    efloor = np.full(EXACT_FLOOR_REPS, np.nan)
    if exact and D > 1 and N <= EXACT_MAX_N:
        cpts, cwts = compress(pts, wts, EXACT_LIMIT_POINTS, rng=np.random.default_rng(
            np.random.SeedSequence([config.limit.seed, 1])), drop_mass=1e-6)
        for r in range(min(R, EXACT_REPLICAS)):
            w2x[r] = w2_exact(traj.W[r, -1], cpts, None, cwts)
        efloor = np.array([w2_exact(x, cpts, None, cwts) for x in draws[:EXACT_FLOOR_REPS]])
    t3 = time.perf_counter()
    return xr.Dataset({
        "coupling": (("replica",), traj.coupling_sq.mean(axis=1)),
        "output_error": (("replica",), traj.output_error[:, -1]),
        "w2": (("replica",), w2),
        "w2_exact": (("replica",), w2x),
        "w2_marginal": (("replica", "param"), marg),
        "floor": ((), floor.mean()),
        "floor_std": ((), floor.std(ddof=1)),
        "floor_exact": ((), efloor.mean()),
        "floor_exact_std": ((), efloor.std(ddof=1)),
        "floor_marginal": (("param",), mfloor.mean(axis=0)),
        "W_final": (("neuron", "param"), traj.W[0, -1]),
    }, attrs={"limit_method": limit.method, "estimator": "1d" if D == 1 else "sliced",
              "seconds_limit": t1 - t0, "seconds_simulation": t2 - t1,
              "seconds_distances": t3 - t2})


def rate_summary(results, config) -> dict:
    """Build rate.json (docs/guide/rate.rst) from the gathered results of a rate sweep.

    Parameters
    ----------
    results : xarray.Dataset
        ``results.nc`` with dimension ``N`` and per-replica ``coupling``, ``output_error``,
        ``w2``, ``w2_marginal`` and per-N ``floor``, ``floor_std``, ``floor_marginal``.
    config : Config
        The study's config (regime for the theory exponents).
    """
    s = config.schedule
    ns = results["N"].values

    def fit(var):
        samples = [np.asarray(results[var].sel(N=n).values) ** (1 if var == "coupling" else 2)
                   for n in ns]
        return fit_rate(ns, samples, beta=s.beta, alpha=s.alpha, seed=config.run.seed)

    coupling, w2, out = fit("coupling"), fit("w2"), fit("output_error")
    D = results.sizes["param"]
    marginals = []
    for q in range(D):
        samples = [np.asarray(results["w2_marginal"].sel(N=n, param=q).values) ** 2
                   for n in ns]
        m = fit_rate(ns, samples, beta=s.beta, alpha=s.alpha, seed=config.run.seed)
        marginals.append({**m.to_json(), "param": q,
                          "floor": results["floor_marginal"].sel(param=q).values.tolist()})
    return {
        "N": [int(n) for n in ns],
        "regime": {"mode": config.dynamics.mode, "noise": config.dynamics.noise,
                   "beta": s.beta, "alpha": s.alpha, "gamma": s.gamma, "batch": s.batch,
                   "replicas": config.run.seeds},
        "coupling": coupling.to_json(),
        "output_error": out.to_json(),
        "w2": {**w2.to_json(), "floor": results["floor"].values.tolist(),
               "floor_std": results["floor_std"].values.tolist(),
               "estimator": "w2_1d (exact)" if D == 1 else "sliced W2, 200 directions"},
        "w2_marginal": marginals,
        "w2_exact": _exact_block(results, ns, s, config.run.seed),
    }


def _exact_block(results, ns, s, seed) -> dict | None:
    """rate.json block of the exact W2 (D ≥ 2, N ≤ EXACT_MAX_N); None if under two N."""
    if "w2_exact" not in results:
        return None
    have = [n for n in ns if np.isfinite(results["w2_exact"].sel(N=n).values).any()]
    if len(have) < 2:
        return None
    samples = [np.asarray(results["w2_exact"].sel(N=n).values) ** 2 for n in have]
    fit = fit_rate(have, samples, beta=s.beta, alpha=s.alpha, seed=seed)
    return {"N": [int(n) for n in have], **fit.to_json(),
            "floor": results["floor_exact"].sel(N=have).values.tolist(),
            "floor_std": results["floor_exact_std"].sel(N=have).values.tolist(),
            "estimator": f"exact (ot.emd2) vs {EXACT_LIMIT_POINTS} draws of the limit"}


def run_rate(config: Config, out: str | os.PathLike, *, fresh: bool = False,
             executor: str = "serial", workers: int | None = None,
             scheduler: str | None = None, progress: bool | None = None,
             wait: bool = False) -> dict:
    """Run (or resume) a rate study into ``out``, as ``meanfield rate`` does.

    Writes ``config.toml``, ``manifest.json``, ``tasks/``, ``results.nc``, ``rate.json``
    and ``w2_vs_n.png`` (docs/guide/rate.rst).

    Parameters
    ----------
    config : Config
        With ``[sweep]`` of exactly one axis ``"run.N"`` and ``run.seeds`` ≥ 2.
    out : path
        DIR (rules of :mod:`meanfield.outdir`); every task's inputs are checked before
        it is touched.
    fresh : bool
        Delete what meanfield wrote in DIR and start over.
    executor, workers, scheduler, progress
        As in :func:`meanfield.runner.run_sweep`.
    wait : bool
        Wait for another command holding DIR instead of refusing.

    Returns
    -------
    dict
        The content of rate.json.
    """
    from ..io import write_json
    from ..outdir import claim
    from ..plotting import plot_rates, save
    from ..runner import axes, check_executor, points, run_sweep
    from .preflight import check_inputs

    check_executor(executor, workers, scheduler)
    ax = axes(config)
    if list(ax) != ["run.N"]:
        msg = ('meanfield rate needs [sweep] with exactly one axis "run.N" (a list of widths), '
               f"got {list(ax) or 'none'}; sweep other parameters with meanfield regimes")
        raise ConfigError(msg)
    if len(ax["run.N"]) < 2:
        msg = (f'sweep."run.N" must list at least 2 widths for meanfield rate (a slope needs '
               f"two), got {list(ax['run.N'])}")
        raise ConfigError(msg)
    if config.run.seeds < 2:
        msg = "run.seeds must be >= 2 for meanfield rate (CIs bootstrap over replicas)"
        raise ConfigError(msg)
    out = Path(out)
    check_inputs([cfg for _, _, cfg in points(config)], limit=True, couple=True)
    with claim(out, config, command="rate", fresh=fresh, wait=wait):
        res = run_sweep(config, out, partial(rate_task, limits=LimitCache()), command="rate",
                        executor=executor, workers=workers, scheduler=scheduler,
                        progress=progress)
        summary = rate_summary(res, config)
        write_json(summary, out / "rate.json")
        save(plot_rates([("", summary)]), out / "w2_vs_n.png", bbox_inches="tight")
    return summary


def describe_rate(summary: dict, out: str | os.PathLike, seconds: float) -> str:
    """Return the lines ``meanfield rate`` prints: slopes, floors, time per phase."""
    c, w = summary["coupling"], summary["w2"]
    lines = [f"{out}: N = {summary['N']} in {seconds:.1f} s",
             f"  coupling E_N slope {c['slope']:.3f} [{c['slope_ci'][0]:.3f}, "
             f"{c['slope_ci'][1]:.3f}], theory {c['theory']:.3f}, agrees: {c['agrees']}",
             f"  law-level W2 slope {w['slope']:.3f}, floor {w['floor'][0]:.3g} … "
             f"{w['floor'][-1]:.3g} ({w['estimator']})"]
    if summary.get("w2_exact"):
        e = summary["w2_exact"]
        lines.append(f"  exact W2 (N ≤ {e['N'][-1]}) slope {e['slope']:.3f}, floor "
                     f"{e['floor'][0]:.3g} … {e['floor'][-1]:.3g}")
    tasks = json.loads((Path(out) / "manifest.json").read_text())["tasks"]
    sim = sum(t.get("seconds_simulation", 0.0) for t in tasks)
    dist = sum(t.get("seconds_distances", 0.0) for t in tasks)
    if sim or dist:
        lines.append(f"  time in this call: simulation {sim:.1f} s, distances {dist:.1f} s, "
                     f"limits {sum(t.get('seconds_limit', 0.0) for t in tasks):.1f} s")
    return "\n".join(lines)
