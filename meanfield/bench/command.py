"""``meanfield bench``: the engine's cost per step beside NumPy, PyTorch and JAX loops.

:func:`run_bench` pins the process, measures (:mod:`.harness`) and writes the report
(:mod:`.report`); :func:`add_arguments` and :func:`run_from_args` are the subcommand of
``meanfield``, :func:`main` the entry point of ``scripts/bench.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from .comparators import available_comparators
from .harness import measure, pinned
from .report import write_report
from .workloads import Plan, make_plan


def run_bench(out, *, plan: Plan, threads: int | None = None, quiet: bool = False) -> dict:
    """Run the benchmark of ``plan`` and write bench.json, bench.md, manifest.json to out.

    Parameters
    ----------
    out : path-like
        Output directory (created if missing; earlier bench files are overwritten).
    plan : Plan
        What to measure (:func:`make_plan`).
    threads : int, optional
        Threads (and pinned CPUs) for every loop; default: all CPUs this process may use.
    quiet : bool
        No progress lines on stderr.

    Returns
    -------
    dict
        The content of bench.json.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        msg = f"--out must be a directory, got the file {out}"
        raise ConfigError(msg)
    out.mkdir(parents=True, exist_ok=True)
    comps = available_comparators(plan.comparators)
    use_torch = "torch_manual" in comps or "torch_autograd" in comps
    with pinned(threads, use_torch) as (threads, cpus):
        result = measure(plan, comps, threads, cpus, quiet)
        write_report(out, result, threads=threads, cpus=cpus)
    return result


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Add ``[--quick] --out DIR`` (and the hidden ``--tiny``, ``--threads``) to ``ap``."""
    ap.add_argument("--quick", action="store_true",
                    help="fewer sizes and repeats, no cold-compile probe (about 1–2 minutes)")
    ap.add_argument("--out", required=True, metavar="DIR", help="output directory")
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)


def run_from_args(args) -> int:
    """Run the bench for parsed arguments; return the exit code (0)."""
    if args.threads is not None and args.threads < 1:
        msg = f"--threads must be >= 1, got {args.threads}"
        raise ConfigError(msg)
    plan = make_plan("tiny" if args.tiny else "quick" if args.quick else "full")
    result = run_bench(args.out, plan=plan, threads=args.threads)
    fails = [t for t in result["targets"] if t["pass"] is False]
    print(f"{args.out}: bench.json, bench.md ({len(result['rows'])} timings, "
          f"{len(fails)} of {len(result['targets'])} target checks failing) in "
          f"{result['elapsed_s']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scripts/bench.py``: the same as ``meanfield bench``."""
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        return run_from_args(args)
    except ConfigError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
