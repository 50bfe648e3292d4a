"""Re-plot finished `meanfield rate` directories, several studies on one figure.

    python scripts/plot_w2_vs_n.py DIR [DIR ...] --out FIGURE.png [--labels A B ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from meanfield.plotting import plot_rates, save


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="finished rate directories")
    ap.add_argument("--out", required=True, type=Path, help="PNG to write")
    ap.add_argument("--labels", nargs="*", default=None, help="one label per directory")
    args = ap.parse_args(argv)
    labels = args.labels or [d.name for d in args.dirs]
    if len(labels) != len(args.dirs):
        print("plot_w2_vs_n: give one label per directory", file=sys.stderr)
        return 2
    summaries = []
    for label, d in zip(labels, args.dirs, strict=True):
        path = d / "rate.json"
        if not path.exists():
            print(f"plot_w2_vs_n: {path} not found (is {d} a finished rate study?)",
                  file=sys.stderr)
            return 2
        summaries.append((label, json.loads(path.read_text())))
    save(plot_rates(summaries), args.out, bbox_inches="tight")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
