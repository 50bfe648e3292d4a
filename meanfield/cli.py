"""meanfield: mean-field SGD in wide two-layer networks, its N → ∞ limit and convergence rates.

Commands, the rules of the output DIR and the exit codes: docs/guide/outputs.rst.

Each command is one call of a Python function (:mod:`meanfield.studies`); this module
parses arguments, prints that function's summary and maps exceptions to exit codes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import warnings

from .errors import ConfigError, EnvironmentFailure, NumericalError, Terminated

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_NUMERIC, EXIT_INTERRUPT = 0, 1, 2, 3, 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


def _config(args):
    from .config import load_config
    from .shipped import find_config

    return load_config(find_config(args.config, args.command), args.set)


def _executor(args) -> dict:
    return {"executor": args.executor, "workers": args.workers, "scheduler": args.scheduler}


def _cmd_run(args) -> int:
    from .studies.run import describe_run, run_simulation

    config = _config(args)
    print(describe_run(config, run_simulation(config, args.out, couple=args.couple,
                                              fresh=args.fresh, wait=args.wait,
                                              **_executor(args))))
    return EXIT_OK


def _cmd_limit(args) -> int:
    from .studies.run import describe_limit, run_limit

    print(describe_limit(run_limit(_config(args), args.out, fresh=args.fresh,
                                   wait=args.wait)))
    return EXIT_OK


def _cmd_rate(args) -> int:
    from .studies.rate import describe_rate, run_rate

    start = time.perf_counter()
    summary = run_rate(_config(args), args.out, fresh=args.fresh, wait=args.wait,
                       **_executor(args))
    print(describe_rate(summary, args.out, time.perf_counter() - start))
    return EXIT_OK


def _cmd_regimes(args) -> int:
    from .studies.regimes import describe_regimes, run_regimes

    res = run_regimes(_config(args), args.out, fresh=args.fresh, wait=args.wait,
                      **_executor(args))
    print(describe_regimes(res, args.out))
    return EXIT_OK


def _cmd_configs(args) -> int:
    from .shipped import config_command, config_names, config_path, config_summary

    if args.name is None:
        for name in config_names():
            print(f"{name:18s} meanfield {config_command(name)} {name} --out DIR")
            print(f"{'':18s} {config_summary(name)}")
        return EXIT_OK
    sys.stdout.write(config_path(args.name).read_text(encoding="utf-8"))
    return EXIT_OK


def _cmd_paper(args) -> int:
    from dataclasses import replace

    from .studies.paper import FULL, PaperSettings, reproduce

    for name in ("sizes", "fixed_sizes"):
        v = getattr(args, name)
        if v is not None and (len(set(v)) < 2 or min(v) < 2):
            msg = f"--{name.replace('_', '-')} needs at least two distinct widths >= 2"
            raise ConfigError(msg)
    s = FULL if args.full else PaperSettings()
    changes = {k: getattr(args, k) for k in ("sizes", "fixed_sizes", "betas", "T", "fixed_T",
                                             "replicas", "fixed_replicas")
               if getattr(args, k) is not None}
    if args.sizes is not None:
        changes["hist_sizes"] = args.sizes
    if args.fixed_sizes is not None:
        changes["fixed_sde_max"] = max(args.fixed_sizes)
    s = replace(s, **{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})
    start = time.perf_counter()
    res = reproduce(args.out, s)
    for st in res["width_study"]:
        acc = [round(sum(r["test_accuracy_T"]) / len(r["test_accuracy_T"]), 3)
               for r in st["runs"]]
        print(f"beta={st['beta']:g}: N={st['N']} test accuracy={acc}")
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return EXIT_OK


def _paper_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory DIR")
    p.add_argument("--full", action="store_true", help="the paper's widths (slow)")
    hidden = argparse.SUPPRESS  # small settings for tests and quick looks
    p.add_argument("--sizes", type=_positive, nargs="+", help=hidden)
    p.add_argument("--fixed-sizes", type=_positive, nargs="+", help=hidden)
    p.add_argument("--betas", type=float, nargs="+", help=hidden)
    p.add_argument("--T", type=float, help=hidden)
    p.add_argument("--fixed-T", type=float, help=hidden)
    p.add_argument("--replicas", type=_positive, help=hidden)
    p.add_argument("--fixed-replicas", type=_positive, help=hidden)
    p.set_defaults(func=_cmd_paper)


def _cmd_bench(args) -> int:
    from .bench import run_from_args

    return run_from_args(args)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"must be an integer >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _executor_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("serial", "processes", "dask"), default="serial",
                   help="how sweep tasks run (default serial)")
    p.add_argument("--workers", type=_positive, default=None, metavar="K",
                   help="parallel workers (an integer >= 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of an existing Dask scheduler (with --executor dask)")


def _command(sub, name: str, func, help_text: str) -> argparse.ArgumentParser:
    """Add a subcommand with the arguments every command shares: CONFIG --out --set --fresh."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("config", help="TOML config file, or the name of a shipped config "
                   "(see meanfield configs)")
    p.add_argument("--out", required=True, help="output directory DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (value parsed as TOML), repeatable")
    p.add_argument("--fresh", action="store_true",
                   help="delete what meanfield wrote in DIR and start over (other files stay)")
    p.add_argument("--wait", action="store_true",
                   help="if another meanfield command holds DIR, wait for it (default: stop)")
    p.set_defaults(func=func)
    return p


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (no usage block)."""

    def error(self, message: str):
        """Print one line naming the problem and exit with code 2."""
        self.exit(EXIT_INPUT, f"meanfield: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="meanfield", description=__doc__.split("\n")[0])
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
    _paper_arguments(sub.add_parser(
        "paper", help="the paper's digits experiment: trained neurons against N, and beyond"))
    configs = sub.add_parser("configs", help="list the shipped configs, or print one")
    configs.add_argument("name", nargs="?", help="a shipped config to print (copy it to edit)")
    configs.set_defaults(func=_cmd_configs)
    bench = sub.add_parser("bench", help="time the engine against NumPy / PyTorch / JAX loops")
    from .bench import add_arguments as _bench_arguments

    _bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)
    return ap


def _say(text: str) -> None:
    """Print one line on stderr (a message never spans lines)."""
    print(" ".join(str(text).split()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code.

    0 ok; 2 invalid input; 3 numerical failure; 130 interrupted (Ctrl-C); 143 terminated
    (SIGTERM, what a cluster scheduler sends); 1 anything else (the environment: a
    directory that cannot be written, a full disk, memory, a worker or a scheduler).
    Every failure prints one line on stderr; set ``MEANFIELD_DEBUG=1`` to see the
    traceback of an unexpected error.  SIGTERM unwinds like Ctrl-C (``Terminated``):
    finished tasks are kept and the manifest written.
    """
    from .outdir import os_error_hint

    args = _parser().parse_args(argv)
    import numpy as np

    # a warning is one line too; NumPy's floating-point warnings on the way to a numerical
    # failure are not raised (the failure itself is reported, naming where)
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.showwarning = _warning_line
            return _dispatch(args, os_error_hint)
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


def _on_sigterm(signum, frame):
    """SIGTERM handler: unwind like Ctrl-C (finished tasks kept, manifest written)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the cleanup finish
    raise Terminated


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    _say(f"meanfield: warning: {message}")


def _run(args) -> int:
    """Run the command; an error raised on the way out of Ctrl-C / SIGTERM is that signal."""
    try:
        return args.func(args)
    except Exception as err:
        cause, seen = err.__context__, set()
        while cause is not None and id(cause) not in seen:  # e.g. a lock left mid-release
            if isinstance(cause, KeyboardInterrupt):
                raise cause from None
            seen.add(id(cause))
            cause = cause.__context__
        raise


def _dispatch(args, os_error_hint) -> int:
    try:
        return _run(args)
    except ConfigError as err:
        _say(f"meanfield: error: {err}")
        return EXIT_INPUT
    except NumericalError as err:
        _say(f"meanfield: numerical failure: {err}")
        return EXIT_NUMERIC
    except Terminated:
        _say("meanfield: terminated (SIGTERM); finished work is kept, rerun the same command "
             "to resume")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _say("meanfield: interrupted; finished work is kept, rerun the same command to resume")
        return EXIT_INTERRUPT
    except EnvironmentFailure as err:
        _say(f"meanfield: error: {err}")
        return EXIT_ERROR
    except MemoryError:
        _say("meanfield: error: out of memory; lower run.N, run.seeds, dynamics.snapshots "
             "or limit sizes (finished work is kept)")
        return EXIT_ERROR
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        _say(f"meanfield: error: {err.strerror or err}{where}; {os_error_hint(err)}")
        return EXIT_ERROR
    except Exception as err:
        if os.environ.get("MEANFIELD_DEBUG"):
            raise
        _say(f"meanfield: internal error: {type(err).__name__}: {err} (set MEANFIELD_DEBUG=1 "
             "for the traceback, and please report it)")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
