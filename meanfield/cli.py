"""The ``meanfield`` command line (DESIGN.md: commands, DIR rules, exit codes).

Each command is one call of a Python function (:mod:`meanfield.studies`); this module
parses arguments, prints that function's summary and maps exceptions to exit codes.
"""

from __future__ import annotations

import argparse
import sys
import time

from .errors import ConfigError, NumericalError

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_NUMERIC, EXIT_INTERRUPT = 0, 1, 2, 3, 130


def _config(args):
    from .config import load_config

    return load_config(args.config, args.set)


def _executor(args) -> dict:
    return {"executor": args.executor, "workers": args.workers, "scheduler": args.scheduler}


def _cmd_run(args) -> int:
    from .studies.run import describe_run, run_simulation

    config = _config(args)
    print(describe_run(config, run_simulation(config, args.out, couple=args.couple,
                                              fresh=args.fresh, **_executor(args))))
    return EXIT_OK


def _cmd_limit(args) -> int:
    from .studies.run import describe_limit, run_limit

    print(describe_limit(run_limit(_config(args), args.out, fresh=args.fresh)))
    return EXIT_OK


def _cmd_rate(args) -> int:
    from .studies.rate import describe_rate, run_rate

    start = time.perf_counter()
    summary = run_rate(_config(args), args.out, fresh=args.fresh, **_executor(args))
    print(describe_rate(summary, args.out, time.perf_counter() - start))
    return EXIT_OK


def _cmd_regimes(args) -> int:
    from .studies.regimes import describe_regimes, run_regimes

    res = run_regimes(_config(args), args.out, fresh=args.fresh, **_executor(args))
    print(describe_regimes(res, args.out))
    return EXIT_OK


def _cmd_bench(args) -> int:
    from .bench import run_from_args

    return run_from_args(args)


def _executor_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("serial", "processes", "dask"), default="serial",
                   help="how sweep tasks run (default serial)")
    p.add_argument("--workers", type=int, default=None, help="parallel workers")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of an existing Dask scheduler (with --executor dask)")


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
