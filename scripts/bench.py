"""Time the particle engine against NumPy, PyTorch and JAX loops (same as ``meanfield bench``).

Writes DIR/bench.json, DIR/bench.md and DIR/manifest.json; see ``meanfield.bench`` for the
workloads, the comparators, the timing method and the FLOP / byte models. torch and jax are
optional (``pip install -e ".[bench]"``); a comparator whose package is missing is skipped.

    python scripts/bench.py [--quick] --out DIR
"""

from __future__ import annotations

import sys

from meanfield.bench import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
