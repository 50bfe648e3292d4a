"""The paper's digits experiment (De Bortoli et al. 2020) and the studies beyond it.

    python scripts/reproduce_paper.py --out DIR [--full]

The same as ``meanfield paper --out DIR [--full]``.  Writes into DIR:
histograms_beta*.png (weights across neurons at T against the limit density),
w2_vs_n.png, accuracy_vs_n.png, fixed_init.png, paper.json and manifest.json.  The
default widths keep the run short; ``--full`` uses the paper's widths N = 500, 5000,
50000 (plus 1000, 2000, 10000 for the W2 fits).
"""

from __future__ import annotations

import sys

from meanfield.cli import main

if __name__ == "__main__":
    sys.exit(main(["paper", *sys.argv[1:]]))
