"""The loops the engine is timed against: NumPy, PyTorch and JAX.

Each runs only when its package imports (torch and jax are the optional extra ``bench``,
imported when a loop is built): the paper's stack (PyTorch autograd + ``torch.optim.SGD``
with lr = η N on the 1/N-scaled network), PyTorch with hand-written gradients under
``no_grad``, a vectorised NumPy loop and a JAX ``jax.lax.scan`` loop (one jit of the whole
scan, x64 enabled). They do one shared-minibatch SGD step of the engine's ``sgd`` mode: with
batch atoms (x_i, y_i), u_i = (1/N) Σ_k a_k σ(b_k·x_i), g_i = ∂ℓ(u_i, y_i),
a_k ← a_k − η (1/M) Σ_i σ(b_k·x_i) g_i, b_k ← b_k − η (1/M) Σ_i (a_k·g_i) σ'(b_k·x_i) x_i.
Comparators get their batch indices precomputed (:class:`IndexPool`; their random draws are
not timed, the engine's are). Each comparator is checked once against the engine
(:func:`check_loops`): fed the engine's initial particles and the engine's own batch draws,
its weight increments over ``CHECK_STEPS`` steps must match the engine's.

A loop is built as ``cls(W0, X, Y, eta, shape)``; ``loop.prepare(idx)`` returns ``go``, a
callable running the len(idx) steps from W0 (compiling, if needed, happens in ``prepare``,
untimed), and ``loop.result(go())`` the particles (N, D) as a NumPy array.
"""

from __future__ import annotations

import numpy as np

from .reference import activation, loss_grad

COMPARATORS = ("jax", "torch_manual", "numpy", "torch_autograd")
LABELS = {
    "meanfield": "meanfield",
    "jax": "JAX lax.scan",
    "torch_manual": "torch manual grads",
    "numpy": "NumPy",
    "torch_autograd": "paper's stack (torch autograd + SGD)",
}
CHECK_STEPS = 8
CHECK_TOL = 1e-6  # relative error of the weight increments (float64 loops)


# ---------------------------------------------------------------- NumPy
def numpy_sgd(W0: np.ndarray, X: np.ndarray, Y: np.ndarray, idx: np.ndarray, eta: float,
              act: str, loss: str) -> np.ndarray:
    """Run len(idx) shared-batch SGD steps of the two-layer network in vectorised NumPy.

    The batch gradient is taken in matrix products, (1/M) Σ_i H(w_k, z_i) without the
    per-atom (M, N, D) array of :func:`meanfield.bench.reference.sgd_step`: the same step,
    in the form a NumPy user would time.

    Parameters
    ----------
    W0 : (N, D) ndarray
        Initial particles, parameters ordered (a_0 … a_{C−1}, b_0 … b_{p−1}).
    X, Y : (J, p), (J, C) ndarray
        Atoms and targets (one-hot for cross-entropy).
    idx : (n, M) int ndarray
        Batch atoms of every step.
    eta : float
        Per-neuron step η.
    act, loss : str
        ``tanh`` / ``relu`` and ``squared`` / ``cross_entropy``.

    Returns
    -------
    (N, D) ndarray
        The particles after the n steps.
    """
    N, C = W0.shape[0], Y.shape[1]
    A, B = W0[:, :C].copy(), W0[:, C:].copy()
    M = idx.shape[1]
    for rows in idx:
        x, y = X[rows], Y[rows]
        T, dT = activation(act, x @ B.T)  # (M, N)
        g = loss_grad((T @ A) * (1.0 / N), y, loss)  # (M, C)
        GA = T.T @ g
        E = (g @ A.T) * dT
        GB = E.T @ x
        A -= (eta / M) * GA
        B -= (eta / M) * GB
    return np.concatenate([A, B], axis=1)


class NumpyLoop:
    """:func:`numpy_sgd`."""

    name = "numpy"

    def __init__(self, W0, X, Y, eta, shape):
        self.W0, self.X, self.Y, self.eta, self.shape = W0, X, Y, eta, shape

    def prepare(self, idx):
        """Return ``go`` running the steps of ``idx``."""
        s = self.shape
        return lambda: numpy_sgd(self.W0, self.X, self.Y, idx, self.eta, s["act"], s["loss"])

    def result(self, out):
        """Particles (N, D) from what ``go`` returned."""
        return np.asarray(out)


# ---------------------------------------------------------------- PyTorch
class TorchManualLoop:
    """The NumPy loop's matrix products in PyTorch, under ``no_grad``."""

    name = "torch_manual"

    def __init__(self, W0, X, Y, eta, shape):
        import torch

        self.torch = torch
        self.W0 = torch.from_numpy(np.ascontiguousarray(W0))
        self.X, self.Y = torch.from_numpy(X), torch.from_numpy(Y)
        self.eta, self.shape = eta, shape

    def prepare(self, idx):
        """Return ``go`` running the steps of ``idx``."""
        torch = self.torch
        idx_t = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        X, Y, eta, act, loss = self.X, self.Y, self.eta, self.shape["act"], self.shape["loss"]
        N, C, M = self.W0.shape[0], Y.shape[1], idx.shape[1]

        def go():
            with torch.no_grad():
                A, B = self.W0[:, :C].clone(), self.W0[:, C:].clone()
                for rows in idx_t:
                    x, y = X[rows], Y[rows]
                    S = x @ B.T
                    if act == "tanh":
                        T = torch.tanh(S)
                        dT = 1.0 - T * T
                    else:
                        T = torch.relu(S)
                        dT = (S > 0.0).to(S.dtype)
                    u = (T @ A) * (1.0 / N)
                    g = u - y if loss == "squared" else torch.softmax(u, dim=1) - y
                    GA = T.T @ g
                    GB = ((g @ A.T) * dT).T @ x
                    A.sub_(GA, alpha=eta / M)
                    B.sub_(GB, alpha=eta / M)
                return torch.cat([A, B], dim=1)
        return go

    def result(self, out):
        """Particles (N, D) from what ``go`` returned."""
        return out.numpy()


class TorchAutogradLoop:
    """The paper's stack: nn.Linear layers, autograd, optim.SGD with lr = η N."""

    name = "torch_autograd"

    def __init__(self, W0, X, Y, eta, shape):
        import torch

        self.torch = torch
        self.W0 = np.ascontiguousarray(W0)
        self.X = torch.from_numpy(X)
        self.Y = torch.from_numpy(Y)
        self.labels = torch.from_numpy(np.argmax(Y, axis=1))
        self.eta, self.shape = eta, shape

    def prepare(self, idx):
        """Return ``go`` running the steps of ``idx``."""
        torch = self.torch
        nn = torch.nn
        idx_t = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        N, D = self.W0.shape
        C = self.Y.shape[1]
        p = D - C
        act = nn.Tanh() if self.shape["act"] == "tanh" else nn.ReLU()
        ce = self.shape["loss"] == "cross_entropy"
        X, Y, labels = self.X, self.Y, self.labels

        def go():
            hidden = nn.Linear(p, N, bias=False, dtype=torch.float64)
            out = nn.Linear(N, C, bias=False, dtype=torch.float64)
            with torch.no_grad():
                hidden.weight.copy_(torch.from_numpy(self.W0[:, C:]))
                out.weight.copy_(torch.from_numpy(self.W0[:, :C].T.copy()))
            net = nn.Sequential(hidden, act, out)
            opt = torch.optim.SGD(net.parameters(), lr=self.eta * N)
            for rows in idx_t:
                u = net(X[rows]) / N
                if ce:
                    loss = nn.functional.cross_entropy(u, labels[rows])
                else:
                    loss = 0.5 * ((u - Y[rows]) ** 2).sum(dim=1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return out.weight.detach().T, hidden.weight.detach()
        return go

    def result(self, out):
        """Particles (N, D) from what ``go`` returned."""
        return np.concatenate([out[0].numpy(), out[1].numpy()], axis=1)


# ---------------------------------------------------------------- JAX
class JaxLoop:
    """The NumPy loop's matrix products as one jitted ``jax.lax.scan`` (x64)."""

    name = "jax"

    def __init__(self, W0, X, Y, eta, shape):
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        N, C = W0.shape[0], Y.shape[1]
        self.A0, self.B0 = jnp.asarray(W0[:, :C]), jnp.asarray(W0[:, C:])
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
        act, loss, M = shape["act"], shape["loss"], shape["M"]

        def step(carry, rows):
            A, B = carry
            x, y = Xj[rows], Yj[rows]
            S = x @ B.T
            if act == "tanh":
                T = jnp.tanh(S)
                dT = 1.0 - T * T
            else:
                T = jnp.maximum(S, 0.0)
                dT = (S > 0.0).astype(S.dtype)
            u = (T @ A) * (1.0 / N)
            g = u - y if loss == "squared" else jax.nn.softmax(u, axis=1) - y
            GA = T.T @ g
            GB = ((g @ A.T) * dT).T @ x
            return (A - (eta / M) * GA, B - (eta / M) * GB), None

        @jax.jit
        def run(A, B, idx):
            (A, B), _ = jax.lax.scan(step, (A, B), idx)
            return A, B

        self.run = run

    def prepare(self, idx):
        """Return ``go`` running the steps of ``idx`` (compiled for this length, and warm)."""
        idx_j = self.jnp.asarray(np.ascontiguousarray(idx, dtype=np.int32))

        def go():
            A, B = self.run(self.A0, self.B0, idx_j)
            A.block_until_ready()
            B.block_until_ready()
            return A, B
        go()  # compile for this length (and warm)
        return go

    def result(self, out):
        """Particles (N, D) from what ``go`` returned."""
        return np.concatenate([np.asarray(out[0]), np.asarray(out[1])], axis=1)


# ---------------------------------------------------------------- the set
LOOPS = {"numpy": NumpyLoop, "torch_manual": TorchManualLoop,
         "torch_autograd": TorchAutogradLoop, "jax": JaxLoop}
_MODULES = {"numpy": "numpy", "torch_manual": "torch", "torch_autograd": "torch",
            "jax": "jax"}


def available_comparators(names) -> list[str]:
    """Return the comparators of ``names`` whose package imports."""
    import importlib.util

    return [n for n in names if importlib.util.find_spec(_MODULES[n]) is not None]


class IndexPool:
    """Precomputed batch indices (n, M) drawn by atom weight, grown on demand."""

    def __init__(self, p, M, seed=0):
        self.p, self.M = p, M
        self.rng = np.random.default_rng(seed)
        self.idx = np.zeros((0, M), np.int64)

    def take(self, n):
        """Return the first n rows of batch indices (n, M)."""
        if n > len(self.idx):
            more = self.rng.choice(len(self.p), size=(n - len(self.idx), self.M), p=self.p)
            self.idx = np.concatenate([self.idx, more])
        return self.idx[:n]


def check_loops(loops: dict, W0, WK, idx, data, eta, shape, *, workload: str,
                reference: str) -> list[dict]:
    """Increment agreement of every loop with a reference run over the steps of ``idx``.

    Parameters
    ----------
    loops : dict
        Name → loop class.
    W0, WK : (N, D) ndarray
        The reference's particles before and after the len(idx) steps.
    idx : (K, M) int ndarray
        The reference's batch atoms.
    data
        The data law (``x``, ``y``).
    eta : float
        Per-neuron step η.
    shape : dict
        The workload's shape (``workloads.workload_shape``).
    workload, reference : str
        Names written into the rows.

    Returns
    -------
    list of dict
        One row per loop: max |Δw − Δw_ref| / max |Δw_ref| and whether it is within
        ``CHECK_TOL``.
    """
    out = []
    N, K = W0.shape[0], idx.shape[0]
    ref = WK - W0
    for name, cls in loops.items():
        loop = cls(W0, data.x, data.y, eta, shape)
        got = loop.result(loop.prepare(idx)()) - W0
        err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))
        out.append({"workload": workload, "N": N, "impl": name, "steps": K,
                    "reference": reference, "max_rel_err": err,
                    "agrees": bool(err <= CHECK_TOL)})
    return out
