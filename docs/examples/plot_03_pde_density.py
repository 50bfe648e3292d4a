"""
The grid-PDE limit against the particles
========================================

As N → ∞ the empirical law of the neurons follows the McKean–Vlasov equation. For a neuron
with two parameters (the toy model: w = (a, b), F(w, x) = a tanh(b x)) meanfield solves it
as a PDE for the density on a grid (``limit.method = "pde"``). Here the limit density at T
is drawn under the neurons of finite-N runs of the particle SDE with the same config.
"""

# %%
# Config, limit and particles
# ---------------------------
# The toy model of the rate studies (as in ``rate_quick``: a 4-unit teacher on 32 atoms,
# the particle SDE with independent noise at β = 1), with 2000 neurons, 2 replicas and
# T = 2. :func:`meanfield.solve_limit` returns a :class:`~meanfield.Limit` whose
# ``density`` (snapshot, a-cell, b-cell) lives on the cell centres ``centres``.
import matplotlib.pyplot as plt
import numpy as np

import meanfield as mf

cfg = mf.parse_config({
    "model": {"layers": "both", "activation": "tanh"},
    "data": {"kind": "teacher", "n": 32},
    "schedule": {"gamma": 0.1, "beta": 1.0, "batch": 10},
    "dynamics": {"mode": "sde", "noise": "independent", "T": 2.0, "snapshots": 3},
    "run": {"N": 2000, "seeds": 2},
    "limit": {"method": "pde", "grid": 96},
})
lim = mf.solve_limit(cfg)
traj = mf.simulate(cfg)
print(f"limit by {lim.method}: density {lim.density.shape} at t = {lim.times}")
print(f"particles: W {traj.W.shape} at t = {traj.times}")

# %%
# The density at T under the neurons
# ----------------------------------
# Left: the neurons of replica 0 at T (grey) under the contour lines of the limit density.
# Right: the marginal densities of a and b, summed from the grid, against histograms of both
# replicas' neurons. The PDE grid covers a much wider box than the neurons reach (the
# solver sizes it from the initial law and the drift), so the plots are cropped.
c_a, c_b = lim.centres
dens = lim.density[-1]  # (a cells, b cells), integrates to 1 with the cell area
da, db = c_a[1] - c_a[0], c_b[1] - c_b[0]
W_T = traj.W[:, -1]  # (replica, neuron, parameter)
lo, hi = np.quantile(W_T, [0.0005, 0.9995], axis=(0, 1))  # per parameter
lo, hi = lo - 0.5, hi + 0.5

fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
axes[0].scatter(W_T[0, :, 0], W_T[0, :, 1], s=3, color="0.6", alpha=0.6, label="neurons")
cs = axes[0].contour(c_a, c_b, dens.T, levels=8, cmap="viridis")
fig.colorbar(cs, ax=axes[0], label="limit density")
axes[0].set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel="a (output weight)",
            ylabel="b (input weight)",
            title=f"{cfg.run.N} neurons and the limit at t = {lim.times[-1]:g}")
axes[0].legend(loc="upper right")
for ax, centres, marginal, q, name in ((axes[1], c_a, dens.sum(axis=1) * db, 0, "a"),
                                       (axes[2], c_b, dens.sum(axis=0) * da, 1, "b")):
    ax.hist(W_T[:, :, q].ravel(), bins=50, range=(lo[q], hi[q]), density=True, alpha=0.5,
            label=f"{traj.W.shape[0]} × {cfg.run.N} neurons")
    ax.plot(centres, marginal, "k", lw=1.5, label="limit (PDE)")
    ax.set(xlim=(lo[q], hi[q]), xlabel=name, ylabel="density", title=f"marginal of {name} at T")
    ax.legend()

# %%
# How close? W2 against the limit
# -------------------------------
# :func:`meanfield.w2` compares weighted point sets; the limit is the set of cell centres
# weighted by their mass. The exact 1-D distance of each marginal is set beside its
# sampling floor: N exact draws of the limit against the limit.
grid_a, grid_b = np.meshgrid(c_a, c_b, indexing="ij")
pts = np.column_stack([grid_a.ravel(), grid_b.ravel()])
mass = dens.ravel() * da * db
keep = mass > 1e-12
pts, mass = pts[keep], mass[keep] / mass[keep].sum()
rng = np.random.default_rng(0)
draws = pts[rng.choice(len(pts), size=cfg.run.N, p=mass)]
for q, name in enumerate("ab"):
    d = mf.w2(W_T[0, :, q:q + 1], pts[:, q:q + 1], None, mass)
    f = mf.w2(draws[:, q:q + 1], pts[:, q:q + 1], None, mass)
    print(f"W2 of the {name}-marginal: {d:.4f} (floor of {cfg.run.N} exact draws: {f:.4f})")
plt.show()
