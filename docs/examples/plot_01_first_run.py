"""
A first training run
====================

Train a wide two-layer network in the mean-field regime: the shipped ``quickstart``
config (tanh neurons, both layers trained, learning a 4-unit teacher on 64 atoms by the
particle SDE with independent noise, 4 replicas), here with 500 neurons instead of 1000.
We plot the risk over time and the neurons' weights at the start and at the end of
training.
"""

# %%
# Load the shipped config
# -----------------------
# :func:`meanfield.shipped.find_config` returns the path of a shipped config and
# :func:`meanfield.load_config` reads it; ``"key=value"`` overrides work as ``--set``
# does on the command line.
import matplotlib.pyplot as plt

import meanfield as mf
from meanfield.plotting import plot_run
from meanfield.shipped import find_config

cfg = mf.load_config(find_config("quickstart"), ["run.N=500", "run.seeds=4"])
print(mf.to_toml(cfg))

# %%
# Train
# -----
# :func:`meanfield.simulate` runs every replica and returns a
# :class:`~meanfield.Trajectory`: the particles ``W`` (replica, snapshot, neuron,
# parameter), the mean field ``u`` at the data atoms and the training ``risk`` at the
# snapshot times.
traj = mf.simulate(cfg)
print("W:", traj.W.shape, " risk:", traj.risk.shape)
print(f"{traj.schedule.n_total} steps of dt = {traj.schedule.dt:g}")
print("risk at t = 0 and T, per replica:", traj.risk[:, [0, -1]].round(4).tolist())

# %%
# Risk and weights
# ----------------
# :func:`meanfield.plotting.plot_run` draws ``run.png`` of ``meanfield run``: the risk
# of each replica against time and the histogram of the input weight ``b_0`` across
# neurons at t = 0 and at T. Like every figure function of meanfield it draws into the
# axes it is given; a third panel shows the neurons of replica 0 in the plane of their
# two parameters (output weight ``a_0``, input weight ``b_0``).
data = mf.make_data(cfg)
model = mf.make_model(cfg, data)
fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
plot_run(traj, model, axes=axes[:2])
for si, label in ((0, "t = 0"), (-1, f"t = {traj.times[-1]:g}")):
    axes[2].scatter(traj.W[0, si, :, 0], traj.W[0, si, :, 1], s=4, alpha=0.5, label=label)
axes[2].set_xlabel("a_0 (output weight)")
axes[2].set_ylabel("b_0 (input weight)")
axes[2].set_title("neurons of replica 0")
axes[2].legend()
plt.show()
