"""Every compiled function of meanfield: private, grouped by what it computes.

- :mod:`.jit`: the jit options, the integer codes the kernels take and the block layout;
- :mod:`.fastmath`: vectorisable tanh, log, sin/cos, fma and bit casts;
- :mod:`.simd`: 8-lane LLVM vector intrinsics (fixed-order dots, register tiles);
- :mod:`.rng`: the counter-based generator, normals, batch and epoch draws;
- :mod:`.forward`: preactivations, activations and the blocked mean field u;
- :mod:`.backward`: loss gradients, per-neuron gradients H, drift, noise and covariance;
- :mod:`.step`: one step of the particles (and their limit twins), the step loops.

The Python-facing wrappers live in :mod:`meanfield.model` and :mod:`meanfield.engine`.
"""

import os

# The block path's threads meet at a barrier twice per step.  libgomp (Numba's "omp"
# threading layer) spins there by default, so with another process on one core the waiting
# thread burns the time its partner needs and two threads ran up to 1.5x slower than one
# (CHANGELOG.md, "Threads on a busy machine").  Passive waiting yields the core.  Set before
# Numba starts its threads; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
