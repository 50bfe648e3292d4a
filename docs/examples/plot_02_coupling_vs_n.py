"""
Coupling error and W2 against N
===============================

Propagation of chaos, measured: every neuron of an N-neuron network trained by the particle
SDE is coupled to a twin driven by the N → ∞ McKean–Vlasov limit (same initial weight, same
noise). The coupling error E_N (root mean square over neurons and replicas of the largest
distance to the twin) should fall like N^(-1/2) at β = 1. This is the shipped ``rate_quick``
study shrunk to three widths and T = 2, run by :func:`meanfield.run_rate` into
a temporary directory.
"""

# %%
# A tiny rate study
# -----------------
# ``rate_quick`` lists its widths in a ``[sweep]`` table; overrides, as on the command line
# (``--set 'sweep.run.N=[100, 300, 1000]'``), shrink it. :func:`meanfield.load_config`
# validates the result.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import meanfield as mf
from meanfield.plotting import plot_rates
from meanfield.shipped import find_config

cfg = mf.load_config(find_config("rate_quick"), ["sweep.run.N=[100, 300, 1000]", "run.seeds=64",
                                                  "dynamics.T=2.0", "limit.grid=64"])

tmp = tempfile.TemporaryDirectory(prefix="meanfield-rate-")
out = Path(tmp.name) / "rate"
summary = mf.run_rate(cfg, out)  # the content of rate.json
print(sorted(p.name for p in out.iterdir()))

# %%
# The fitted slope
# ----------------
# ``summary["coupling"]`` holds E_N per N with a bootstrap interval over replicas, the
# least-squares slope of log E_N against log N with its interval, and the predicted
# exponent (−1/2 at β = 1).
c = summary["coupling"]
for n, m, (lo, hi) in zip(summary["N"], c["mean"], c["ci"], strict=True):
    print(f"N = {n:5d}: E_N = {m:.4f}  [{lo:.4f}, {hi:.4f}]")
lo, hi = c["slope_ci"]
print(f"fitted slope {c['slope']:.3f} [{lo:.3f}, {hi:.3f}], predicted {c['theory']:g}, "
      f"agrees: {c['agrees']}")
w = summary["w2"]
print(f"law-level W2 ({w['estimator']}): slope {w['slope']:.3f}, "
      f"floor {w['floor'][0]:.3g} … {w['floor'][-1]:.3g}")

# %%
# The rate figure
# ---------------
# :func:`meanfield.plotting.plot_rates` draws ``w2_vs_n.png``: E_N and the law-level W2 of
# the neurons' empirical law against the limit's, with their fits, the theory slope and
# each estimator's floor (N exact draws of the limit against the limit). In D = 2 the W2
# estimators sit near their floors: the coupling error is what resolves the rate.
fig, ax = plt.subplots(figsize=(10, 5.5), layout="constrained")
plot_rates([("", summary)], ax=ax)

# %%
# E_N from the raw results
# ------------------------
# The same numbers from ``results.nc``: ``coupling`` holds, per width and replica, the mean
# over neurons of :math:`\sup_t |W^k_t - W^{k,\star}_t|^2`, so E_N is the square root of
# its mean over replicas. Its slope is fitted here by plain least squares.
res = mf.load_results(out)
ns = res["N"].values
e_n = np.sqrt(res["coupling"].mean("replica").values)
slope, intercept = np.polyfit(np.log(ns), np.log(e_n), 1)
print(f"least-squares slope {slope:.3f} (predicted -0.5)")
fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
for n in ns:
    per_replica = np.sqrt(res["coupling"].sel(N=n).values)
    ax.plot(np.full(per_replica.shape, n), per_replica, ".", color="0.6")
ax.plot(ns, e_n, "o", label="E_N")
ax.plot(ns, np.exp(intercept) * ns**slope, "-", label=f"fit: slope {slope:.2f}")
ax.plot(ns, e_n[0] * (ns / ns[0]) ** -0.5, ":k", label="slope −1/2")
ax.set(xscale="log", yscale="log", xlabel="N (neurons)", ylabel="coupling error",
       title="E_N (dots: single replicas)")
ax.legend()
tmp.cleanup()  # the temporary directory and everything in it
plt.show()
