"""The paper's digits experiment (De Bortoli et al. 2020) and the studies beyond it.

    python scripts/reproduce_paper.py --out DIR [--full]

Writes into DIR: histograms_beta*.png (weights across neurons at T against the limit
density), w2_vs_n.png, accuracy_vs_n.png, fixed_init.png, paper.json and manifest.json.
The default widths keep the run short; ``--full`` uses the paper's widths
N = 500, 5000, 50000 (plus 1000, 2000, 10000 for the W2 fits).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from meanfield.studies.paper import PaperSettings, reproduce

FULL = PaperSettings(sizes=(500, 1000, 2000, 5000, 10000, 50000),
                     hist_sizes=(500, 5000, 50000),
                     fixed_sizes=(10, 100, 1000, 10000), fixed_sde_max=3000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--full", action="store_true", help="the paper's widths (slow)")
    hidden = argparse.SUPPRESS  # small settings for tests and quick looks
    ap.add_argument("--sizes", type=int, nargs="+", help=hidden)
    ap.add_argument("--fixed-sizes", type=int, nargs="+", help=hidden)
    ap.add_argument("--betas", type=float, nargs="+", help=hidden)
    ap.add_argument("--T", type=float, help=hidden)
    ap.add_argument("--fixed-T", type=float, help=hidden)
    ap.add_argument("--replicas", type=int, help=hidden)
    ap.add_argument("--fixed-replicas", type=int, help=hidden)
    args = ap.parse_args(argv)
    for name in ("sizes", "fixed_sizes"):
        v = getattr(args, name)
        if v is not None and (len(set(v)) < 2 or min(v) < 2):
            ap.error(f"--{name.replace('_', '-')} needs at least two distinct widths >= 2")
    s = FULL if args.full else PaperSettings()
    changes = {k: v for k, v in {
        "sizes": args.sizes, "fixed_sizes": args.fixed_sizes, "betas": args.betas,
        "T": args.T, "fixed_T": args.fixed_T, "replicas": args.replicas,
        "fixed_replicas": args.fixed_replicas}.items() if v is not None}
    if args.sizes is not None:
        changes["hist_sizes"] = args.sizes
    if args.fixed_sizes is not None:
        changes["fixed_sde_max"] = max(args.fixed_sizes)
    s = replace(s, **{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})
    t0 = time.perf_counter()
    res = reproduce(args.out, s)
    for st in res["width_study"]:
        acc = [round(sum(r["test_accuracy_T"]) / len(r["test_accuracy_T"]), 3)
               for r in st["runs"]]
        print(f"beta={st['beta']:g}: N={st['N']} test accuracy={acc}")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
