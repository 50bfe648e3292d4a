"""Convergence-rate study: E_N and law-level W2 against N (thin entry point to `meanfield rate`).

    python scripts/convergence_rate.py [CONFIG] --out DIR [--set key=value ...]

CONFIG defaults to the shipped config rate_quick (the README's main job).
"""

from __future__ import annotations

import sys

from meanfield.cli import main as cli_main

DEFAULT = "rate_quick"  # a config shipped with meanfield (meanfield configs)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, DEFAULT)
    return cli_main(["rate", *argv])


if __name__ == "__main__":
    sys.exit(main())
