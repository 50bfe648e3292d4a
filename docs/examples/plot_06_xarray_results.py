"""
Results as xarray datasets
==========================

meanfield stores results as labelled arrays: a run's ``trajectory.nc`` and a sweep's
``results.nc`` are netCDF files of ``xarray.Dataset`` objects, with named dimensions
(replica, time, neuron, param, and one per sweep axis). This example reads a trajectory
with :func:`meanfield.trajectory_dataset` and a sweep over N with
:func:`meanfield.load_results`, then selects, averages over replicas and plots.
"""

# %%
# One trajectory as a Dataset
# ---------------------------
# The shipped ``quickstart`` config (particle SDE, a 4-unit teacher, 4 replicas) with 300
# neurons. :func:`meanfield.trajectory_dataset` gives the :class:`~meanfield.Trajectory` the
# names and dimensions of ``trajectory.nc``.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import meanfield as mf
from meanfield.shipped import find_config

cfg = mf.load_config(find_config("quickstart"), ["run.N=300"])
ds = mf.trajectory_dataset(mf.simulate(cfg))
print(ds)

# %%
# Select by name, reduce over replicas
# ------------------------------------
# ``sel`` picks by coordinate value (``time`` holds the actual step times), ``isel`` by
# position; reductions name their dimension. Parameters are ordered (a_0, b_0) for this
# model, so ``param=1`` is the input weight.
risk = ds["risk"]
print("mean risk at t = 5:", float(risk.sel(time=5.0, method="nearest").mean("replica")))
b_T = ds["W"].isel(time=-1, param=1)  # (replica, neuron)
print("std of b across neurons at T, per replica:", b_T.std("neuron").values.round(3))

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for r in risk["replica"].values:
    axes[0].plot(risk["time"], risk.sel(replica=r), color="0.7", lw=1)
risk.mean("replica").plot(ax=axes[0], color="C0", lw=2, label="mean over replicas")
axes[0].set(yscale="log", ylabel="risk", title="risk: replicas (grey) and their mean")
axes[0].legend()
for t in (0.0, float(ds["time"][-1])):
    ds["W"].sel(time=t).isel(param=1).plot.hist(ax=axes[1], bins=40, density=True,
                                                alpha=0.5, label=f"t = {t:g}")
axes[1].set(xlabel="b (input weight)", ylabel="density", title="b across all neurons")
axes[1].legend()

# %%
# A sweep over N, on disk
# -----------------------
# A ``[sweep]`` table turns :func:`meanfield.run_simulation` into one task per point; the
# gathered ``results.nc`` gets a dimension per sweep axis (``run.N`` becomes ``N``).
# Output goes into a temporary directory.
sweep_cfg = mf.load_config(find_config("quickstart"), ["sweep.run.N=[100, 300, 1000]"])
tmp = tempfile.TemporaryDirectory(prefix="meanfield-sweep-")
out = Path(tmp.name) / "sweep"
mf.run_simulation(sweep_cfg, out)
res = mf.load_results(out)
print(res)

# %%
# Padded dimensions and per-task variables
# ----------------------------------------
# Tasks of different widths share one ``neuron`` dimension, padded with NaN past each
# task's N; each task's snapshot times are the variable ``t`` (N, time), and its scalar
# attributes (``dt``, ``n_steps``, ...) variables over N.
W_100 = res["W"].sel(N=100).dropna("neuron", how="all")
print("W at N = 100:", dict(W_100.sizes), "  n_steps per N:", res["n_steps"].values)

# %%
# Average over replicas, compare widths
# -------------------------------------
# The final risk and the replica-to-replica spread of the mean field u at the atoms: the
# network's output fluctuates less across replicas as N grows.
final = res["risk"].isel(time=-1)
spread = res["u"].isel(time=-1).std("replica").mean(["atom", "output"])
for n in res["N"].values:
    print(f"N = {n:4d}: final risk {float(final.sel(N=n).mean('replica')):.3g} "
          f"± {float(final.sel(N=n).std('replica')):.2g}, replica spread of u "
          f"{float(spread.sel(N=n)):.3g}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for n in res["N"].values:
    axes[0].plot(res["t"].sel(N=n), res["risk"].sel(N=n).mean("replica"), label=f"N = {n}")
axes[0].set(yscale="log", xlabel="time t", ylabel="risk (mean over replicas)",
            title="risk against time per width")
axes[0].legend()
spread.plot(ax=axes[1], marker="o", xscale="log", yscale="log")
axes[1].set(ylabel="std of u across replicas at T", title="output fluctuation against N")
tmp.cleanup()  # the temporary directory and everything in it
plt.show()
