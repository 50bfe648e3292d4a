"""Stepsize-regime explorer (thin entry point to `meanfield regimes`).

    python scripts/stepsize_regimes.py [CONFIG] --out DIR [--set key=value ...]
                                       [--executor serial|processes|dask] [--workers K]

CONFIG defaults to the shipped config regimes_quick (β ∈ {0, ¼, ½, ¾, 1} × α ∈ {0, ¼} on
the toy model); the shipped regimes_paper is the paper's grid. Writes
regimes.json, limits.json, results.nc, regimes_exponent.png, regimes_limit_type.png and
limits.png into DIR; a rerun on DIR resumes.
"""

from __future__ import annotations

import sys

from meanfield.cli import main as cli_main

DEFAULT = "regimes_quick"  # a config shipped with meanfield (meanfield configs)


def main(argv: list[str] | None = None) -> int:
    """Run ``meanfield regimes`` with the default config unless one is given first."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, DEFAULT)
    return cli_main(["regimes", *argv])


if __name__ == "__main__":
    sys.exit(main())
