"""One jit policy for every kernel, the integer codes they take, and the block layout.

Kernels take the model and the dynamics as integer codes (runtime arguments), so that one
compilation per dtype serves every model; :mod:`meanfield.model` maps names to codes.

Two kinds of compiled function.  Per-element helpers called inside vectorised loops (σ,
σ', tanh, the Philox rounds, a tile's products) take ``inline="always"``: Numba copies
their IR into the caller, which the loop vectoriser needs.  Everything from a tile of atoms
up (``_KERNEL``) is compiled once per signature and called, by the replica path, the block
path and the limit solvers alike.  Copying whole block kernels into the step loops made a
cold compile take many minutes (Numba deep-copies the IR at every inlined call site); a
call per tile or block is cheap next to its loops, and the arithmetic, hence the bits, is the
same either way.  ``_KERNEL`` functions allocate nothing, so they run without NRT
reference counting.
"""

from __future__ import annotations

import numpy as np
from numba.core import types
from numba.extending import overload

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_KERNEL = {**_JIT, "_nrt": False}  # tile and block kernels: compiled once, called

# model codes (``meanfield.model.LAYERS``, ``ACTIVATIONS``, ``LOSSES``)
_BOTH, _FIRST = 0, 1
_TANH, _SIGMOID, _RELU, _LINEAR = 0, 1, 2, 3
_SQUARED, _LOGISTIC, _CROSS_ENTROPY = 0, 1, 2
# dynamics codes
_SGD, _SDE, _ODE = 0, 1, 2
_SHARED, _ATOMS, _ROOT = 0, 1, 2  # noise: shared g_j; own g^k_j per atom; own ξ^k times Σ^{1/2}

BLOCK = 512  # neurons per block: the unit of vectorised and parallel work, and of summation order
TILE = 4  # atoms per tile (a tile's 4 normals of a neuron are one Philox block); each
# input-weight row of a block is read from memory once per tile of atoms, not per atom


def _like(a, c):
    """Return c in the dtype of a, an array or a scalar (a Numba overload; float64 default)."""
    msg = "_like is a Numba kernel"
    raise NotImplementedError(msg)  # pragma: no cover


@overload(_like, inline="always", jit_options=_JIT)
def _like_overload(a, c):
    if a == types.float32 or (isinstance(a, types.Array) and a.dtype == types.float32):
        return lambda a, c: np.float32(c)
    return lambda a, c: np.float64(c)
