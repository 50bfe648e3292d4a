"""The ``meanfield`` command line (DESIGN.md: commands, DIR rules, exit codes)."""

from __future__ import annotations

import argparse
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
    from .models import make_model
    from .particles import replica_streams, simulate
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
        from .limit import solve_limit
        from .particles import check_coupling

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
    from .models import make_model
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
