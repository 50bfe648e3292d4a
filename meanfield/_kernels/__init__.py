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
