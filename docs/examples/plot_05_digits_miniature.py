"""
The digits experiment in miniature
==================================

The paper's experiment (De Bortoli et al. 2020, §5): a two-layer ReLU network with both
layers trained, f_N(x) = (1/N) Σ_k a^k relu(⟨b^k, x⟩), learns scikit-learn's 8×8 digits
(64 standardised inputs, 10 classes, 20 % held out) by minibatch SGD with cross-entropy
and PyTorch's default initialisation. As N grows, the weights across neurons at T settle
on a limit law. :mod:`meanfield.studies.paper` runs it; here with widths 50, 150 and 500
and T = 30 instead of the paper's 500 … 50 000 and T = 100.
"""

# %%
# Settings and data
# -----------------
# :class:`~meanfield.studies.paper.PaperSettings` holds every setting of the reproduction;
# :func:`~meanfield.studies.paper.base_config` turns it into the config of one run.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

import meanfield as mf
from meanfield.plotting import plot_accuracy, plot_histograms
from meanfield.studies.paper import PaperSettings, base_config, constant_inputs, width_study

settings = PaperSettings(sizes=(50, 150, 500), hist_sizes=(50, 500), betas=(0.75,),
                         T=30.0, replicas=2)
beta = settings.betas[0]
data = mf.make_data(base_config(settings, beta=beta, N=settings.sizes[-1]))
const = constant_inputs(data)
print(f"{data.name}: {data.n_atoms} training and {len(data.x_test)} test images, "
      f"{data.input_dim} inputs, {data.outputs} classes; constant inputs: {const}")

# %%
# The width study
# ---------------
# :func:`~meanfield.studies.paper.width_study` trains twice at the widest N (the reference
# and a second draw for the floor) and ``replicas`` times at every other N. All runs share
# the batch sequence and differ in their initial draw.
study = width_study(settings, data, beta)
for run in study["runs"]:
    acc = ", ".join(f"{a:.3f}" for a in run["test_accuracy_T"])
    print(f"N = {run['N']:4d} ({run['steps']} steps): test accuracy at T {acc}")

# %%
# Weight marginals at two widths
# ------------------------------
# The output weight ``a_0`` (to class 0), the input weight that moved most, and ``b_0``,
# the weight from pixel 0, which is 0 in every image: it never moves and keeps its initial
# law. The black line is a kernel density estimate of the widest run.
fig = plt.figure(figsize=(10, 7.5), layout="constrained")
plot_histograms(study, sizes=settings.hist_sizes, constant=const, fig=fig)

# %%
# Accuracy and risk against N
# ---------------------------
# Test and training accuracy and risk at T against N, and the test risk during training.
fig = plt.figure(figsize=(11, 8), layout="constrained")
plot_accuracy([study], fig=fig)
for ax in fig.axes[:2]:  # N spans one decade: label the major ticks only
    ax.xaxis.set_minor_formatter(NullFormatter())

# %%
# W2 of the marginals
# -------------------
# ``study["w2"]`` holds, per marginal, the 1-D W2 of each run at T against the widest run
# (printed here as the root mean square over the initial draws) and three floors: what W2
# between two samples of the limit would be.
# :func:`meanfield.plotting.plot_w2` draws them against N.
for name, blk in study["w2"].items():
    rms = [float(np.sqrt(np.mean(np.square(v)))) for v in blk["per_replica"]]
    print(f"{name}: W2 at N = {blk['fit_N']}: {[round(r, 4) for r in rms]}; "
          f"two widest runs {blk['floor_two_widest_runs']:.4f}")
plt.show()
