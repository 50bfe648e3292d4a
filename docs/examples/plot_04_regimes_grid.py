"""
A small stepsize-regimes grid
=============================

How fast the N-neuron system approaches its limit depends on how the stepsize scales with
N: γ_{α,N} = (γ N^(β−1))^(1/(1−α)). For β < 1 the limit is the deterministic
McKean–Vlasov ODE and the coupling error falls like N^(−(1−β)/2) (for α = 0), while at
β = 1 the SGD noise survives in the limit (a McKean–Vlasov SDE) and E_N falls like
N^(−1/2). :func:`meanfield.run_regimes` runs one rate study per (β, α, γ, M) cell and
also measures the limit type from the across-seed spread of runs sharing their initial
weights. This grid has two cells, β = 1/2 and β = 1, on widths 16 … 506.
"""

# %%
# The grid
# --------
# The ``[regimes]`` section lists β and α values and (γ, M) pairs; every combination is a
# cell. Each cell's widths run from ``N_min`` over at least ``decades`` decades (1.5 by
# default), wider while one run costs at most ``budget`` particle-steps; the small budget
# here keeps both cells at 16 … 506 neurons. The limit-type study runs ``spread_seeds``
# one-replica simulations per width.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

import meanfield as mf
from meanfield.plotting import plot_regime_exponents, plot_regime_limit_types

cfg = mf.parse_config({
    "model": {"layers": "both", "activation": "tanh"},
    "data": {"kind": "teacher", "n": 8, "noise": 1.0},
    "dynamics": {"mode": "sde", "noise": "independent", "T": 0.5, "snapshots": 2},
    "run": {"seeds": 16},
    "limit": {"method": "pde", "grid": 32},
    "regimes": {"beta": [0.5, 1.0], "alpha": [0.0], "gamma": [0.5], "batch": [1],
                "N_min": 16, "points": 3, "budget": 500, "spread_seeds": 16,
                "ratios": [1.0, 0.1, 0.01]},
})
tmp = tempfile.TemporaryDirectory(prefix="meanfield-regimes-")
out = Path(tmp.name) / "regimes"
res = mf.run_regimes(cfg, out)
print(f"{len(res['cells'])} cells in {res['seconds']:.1f} s")
for c in res["cells"]:
    lo, hi = c["exponent_ci"]
    print(f"β = {c['beta']:g}, α = {c['alpha']:g}, N = {c['N']}: exponent "
          f"{c['exponent']:.3f} [{lo:.3f}, {hi:.3f}], theory {c['theory']:.3f}; limit type "
          f"{c['limit_type']} (theory: {c['limit_type_theory']})")

# %%
# Exponents
# ---------
# :func:`meanfield.plotting.plot_regime_exponents` draws ``regimes_exponent.png``: the
# measured exponent of E_N per cell with its 95 % interval, and its difference to the
# theory. With 16 replicas and three widths the intervals are wide; the shipped
# ``regimes_quick`` config (32 replicas, ten cells, wider N) takes a few minutes.
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), layout="constrained")
plot_regime_exponents(res["cells"], axes=axes)

# %%
# Limit types
# -----------
# From one fixed initial draw, runs that differ only in their noise seed end apart by a
# variance that falls like N^(−(1−β)) when the limit is deterministic, and stays put when
# it is stochastic (β = 1): ``regimes_limit_type.png``.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
plot_regime_limit_types(res["cells"], axes=axes)
axes[0].xaxis.set_minor_formatter(NullFormatter())  # N spans 1.5 decades: no minor labels

# %%
# The β = 1 limits approach the β < 1 limit
# -----------------------------------------
# The noise of the β = 1 limit scales with γ_α/M: as γ_α/M → 0 its law at T approaches the
# deterministic limit of β < 1 (``limits.json``; the W2 is sliced, between the two limits).
# :func:`meanfield.run_regimes` returns the distances but not the laws that
# :func:`meanfield.plotting.plot_limits` draws, so we show the ``limits.png`` it wrote.
for d in res["noisy_limits"]:
    print(f"γ_α/M = {d['gamma_alpha_over_M']:g}: W2 to the β < 1 limit "
          f"{d['w2_to_beta_lt_1_limit']:.4f}")
image = plt.imread(out / "limits.png")
fig, ax = plt.subplots(figsize=(image.shape[1] / 110, image.shape[0] / 110))
ax.imshow(image)
ax.set_axis_off()
tmp.cleanup()  # the temporary directory and everything in it
plt.show()
