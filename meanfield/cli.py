"""The ``meanfield`` command line (DESIGN.md: commands, DIR rules, exit codes)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ConfigError, NumericalError

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_NUMERIC, EXIT_INTERRUPT = 0, 1, 2, 3, 130


def _prepare_dir(out: Path, resolved_toml: str, fresh: bool) -> bool:
    """Create DIR for a config; return True if DIR already holds this config.

    A DIR holding another config is refused (ConfigError, nothing touched) unless ``fresh``.
    """
    cfg_file = out / "config.toml"
    if fresh and out.exists():
        shutil.rmtree(out)
    if cfg_file.exists():
        if cfg_file.read_text() != resolved_toml:
            msg = (f"--out {out} holds a different config (config.toml); "
                   "use another directory or --fresh to start over")
            raise ConfigError(msg)
        return True
    if out.exists() and any(out.iterdir()):
        msg = f"--out {out} is not empty and holds no meanfield config; use an empty directory"
        raise ConfigError(msg)
    out.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(resolved_toml)
    return False


def _cmd_run(args) -> int:
    from .config import load_config, to_toml
    from .data import make_data
    from .engine import simulate
    from .init import replica_streams
    from .model import make_model
    from .plots import plot_run
    from .store import manifest, trajectory_dataset, write_json, write_netcdf

    config = load_config(args.config, args.set)
    out = Path(args.out)
    resumed = _prepare_dir(out, to_toml(config), args.fresh)
    if config.sweep:
        return _sweep(config, out, args, "couple" if args.couple else "run")
    if resumed and (out / "trajectory.nc").exists():
        print(f"{out}: already complete (same config); nothing to do. Use --fresh to redo.")
        return EXIT_OK
    data = make_data(config)
    model = make_model(config, data)
    limit = None
    if args.couple:
        from .limit import check_coupling, solve_limit

        check_coupling(config)
        limit = solve_limit(config, data=data)
    start = time.perf_counter()
    traj = simulate(config, data=data, progress=sys.stderr.isatty(), limit=limit)
    seconds = time.perf_counter() - start
    write_netcdf(trajectory_dataset(traj), out / "trajectory.nc")
    s = config.schedule
    title = (f"{config.dynamics.mode}, N = {config.run.N}, β = {s.beta}, α = {s.alpha}, "
             f"γ = {s.gamma}, M = {s.batch}")
    plot_run(traj, model, out / "run.png", title=title)
    _, keys = replica_streams(config)
    write_json(manifest("run", seconds=seconds, seeds={
        "run.seed": config.run.seed, "init.seed": config.init.seed,
        "replica_keys": [f"{int(k):#018x}" for k in keys]},
        dt=traj.schedule.dt, n_steps=int(traj.schedule.n_total), data=data.name),
        out / "manifest.json")
    print(f"{out}: {config.run.seeds} replica(s), N = {config.run.N}, "
          f"{traj.schedule.n_total} steps of dt = {traj.schedule.dt:.4g} in {seconds:.2f} s; "
          f"final risk {traj.risk[:, -1].mean():.4g}")
    if traj.coupling_sq is not None:
        print(f"coupling error E_N = {np.sqrt(traj.coupling_sq.mean()):.4g} "
              f"(limit: {limit.method})")
    return EXIT_OK


def _cmd_limit(args) -> int:
    from .config import load_config, to_toml
    from .data import make_data
    from .limit import solve_limit
    from .model import make_model
    from .plots import plot_limit
    from .store import limit_dataset, manifest, write_json, write_netcdf

    config = load_config(args.config, args.set)
    out = Path(args.out)
    resumed = _prepare_dir(out, to_toml(config), args.fresh)
    if resumed and (out / "limit.nc").exists():
        print(f"{out}: already complete (same config); nothing to do. Use --fresh to redo.")
        return EXIT_OK
    data = make_data(config)
    start = time.perf_counter()
    limit = solve_limit(config, data=data)
    seconds = time.perf_counter() - start
    write_netcdf(limit_dataset(limit), out / "limit.nc")
    plot_limit(limit, make_model(config, data), out / "limit.png")
    write_json(manifest("limit", seconds=seconds, method=limit.method, data=data.name),
               out / "manifest.json")
    print(f"{out}: limit by {limit.method} to T = {limit.times[-1]:g} in {seconds:.2f} s")
    return EXIT_OK


def _sweep(config, out: Path, args, kind: str) -> int:
    from .sweep import run_sweep

    start = time.perf_counter()
    res = run_sweep(config, out, kind=kind, executor=args.executor, workers=args.workers,
                    scheduler=args.scheduler)
    dims = ", ".join(f"{d} = {res.sizes[d]}" for d in res.attrs["axes_dims"].split(", ")
                     if d)
    print(f"{out}: sweep over {dims or 'nothing'} finished in "
          f"{time.perf_counter() - start:.1f} s; results in {out / 'results.nc'}")
    return EXIT_OK


def _executor_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("serial", "processes", "dask"), default="serial",
                   help="how sweep tasks run (default serial)")
    p.add_argument("--workers", type=int, default=None, help="parallel workers")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of an existing Dask scheduler (with --executor dask)")


def _cmd_rate(args) -> int:
    from .config import load_config, to_toml
    from .plots import plot_rates
    from .rates import rate_summary
    from .store import write_json
    from .sweep import axes, run_sweep

    config = load_config(args.config, args.set)
    ax = axes(config)
    if list(ax) != ["run.N"]:
        msg = ('meanfield rate needs [sweep] with exactly one axis "run.N" (a list of widths), '
               f"got {list(ax) or 'none'}; sweep other parameters with meanfield regimes")
        raise ConfigError(msg)
    if config.run.seeds < 2:
        msg = "run.seeds must be >= 2 for meanfield rate (CIs bootstrap over replicas)"
        raise ConfigError(msg)
    out = Path(args.out)
    _prepare_dir(out, to_toml(config), args.fresh)
    start = time.perf_counter()
    res = run_sweep(config, out, kind="rate", executor=args.executor, workers=args.workers,
                    scheduler=args.scheduler)
    summary = rate_summary(res, config)
    write_json(summary, out / "rate.json")
    plot_rates([("", summary)], out / "w2_vs_n.png")
    c, w = summary["coupling"], summary["w2"]
    print(f"{out}: N = {summary['N']} in {time.perf_counter() - start:.1f} s\n"
          f"  coupling E_N slope {c['slope']:.3f} [{c['slope_ci'][0]:.3f}, "
          f"{c['slope_ci'][1]:.3f}], theory {c['theory']:.3f}, agrees: {c['agrees']}\n"
          f"  law-level W2 slope {w['slope']:.3f}, floor {w['floor'][0]:.3g} … "
          f"{w['floor'][-1]:.3g} ({w['estimator']})")
    if summary.get("w2_exact"):
        e = summary["w2_exact"]
        print(f"  exact W2 (N ≤ {e['N'][-1]}) slope {e['slope']:.3f}, floor {e['floor'][0]:.3g}"
              f" … {e['floor'][-1]:.3g}")
    tasks = json.loads((out / "manifest.json").read_text())["tasks"]
    sim = sum(t.get("seconds_simulation", 0.0) for t in tasks)
    dist = sum(t.get("seconds_distances", 0.0) for t in tasks)
    if sim or dist:
        print(f"  time in this call: simulation {sim:.1f} s, distances {dist:.1f} s, "
              f"limits {sum(t.get('seconds_limit', 0.0) for t in tasks):.1f} s")
    return EXIT_OK


def _cmd_bench(args) -> int:
    from .bench import run_from_args

    return run_from_args(args)


def _cmd_regimes(args) -> int:
    from .config import load_config, to_toml
    from .regimes import run_regimes

    config = load_config(args.config, args.set)
    out = Path(args.out)
    _prepare_dir(out, to_toml(config), args.fresh)
    res = run_regimes(config, out, executor=args.executor, workers=args.workers,
                      scheduler=args.scheduler)
    print(f"{out}: {len(res['cells'])} cells in {res['seconds']:.1f} s")
    print("   β     α      γ     M   N range        exponent [95% CI]        theory  agrees"
          "  limit type")
    for c in res["cells"]:
        lo, hi = c["exponent_ci"]
        print(f"  {c['beta']:4.2f}  {c['alpha']:4.2f}  {c['gamma']:5.3g}  {c['batch']:4d}  "
              f"{c['N'][0]:>5}–{c['N'][-1]:<7} {c['exponent']:7.3f} [{lo:6.3f}, {hi:6.3f}]  "
              f"{c['theory']:7.3f}  {'yes' if c['agrees'] else 'NO':>5}   {c['limit_type']}"
              f"{'' if c['limit_type_agrees'] else ' (theory: ' + c['limit_type_theory'] + ')'}")
    for d in res["noisy_limits"]:
        print(f"  β = 1 limit, α = {d['alpha']:g}, γ_α/M = {d['gamma_alpha_over_M']:g}: "
              f"W2 to the β < 1 limit {d['w2_to_beta_lt_1_limit']:.4f}")
    return EXIT_OK


def _command(sub, name: str, func, help_text: str) -> argparse.ArgumentParser:
    """Add a subcommand with the arguments every command shares: CONFIG --out --set --fresh."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("config", help="TOML config file")
    p.add_argument("--out", required=True, help="output directory DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (value parsed as TOML), repeatable")
    p.add_argument("--fresh", action="store_true", help="delete DIR's contents and start over")
    p.set_defaults(func=func)
    return p


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="meanfield", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = _command(sub, "run", _cmd_run, "train N neurons by SGD / particle SDE / ODE")
    run.add_argument("--couple", action="store_true",
                     help="couple each neuron with its limit twin (coupling_sq, ...)")
    _executor_flags(run)
    _command(sub, "limit", _cmd_limit, "solve the N → ∞ McKean–Vlasov limit")
    rate = _command(sub, "rate", _cmd_rate, "convergence-rate study: E_N and W2 against N")
    _executor_flags(rate)
    regimes = _command(sub, "regimes", _cmd_regimes,
                       "stepsize-regime explorer: a rate study per (β, α, γ, M) cell")
    _executor_flags(regimes)
    bench = sub.add_parser("bench", help="time the engine against NumPy / PyTorch / JAX loops")
    from .bench import add_arguments as _bench_arguments

    _bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 input, 3 numerical, 130 Ctrl-C)."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"meanfield: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except NumericalError as err:
        print(f"meanfield: numerical failure: {err}", file=sys.stderr)
        return EXIT_NUMERIC
    except KeyboardInterrupt:
        print("meanfield: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT


if __name__ == "__main__":
    sys.exit(main())
