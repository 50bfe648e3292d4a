"""Data laws: finite weighted sets of atoms (x_j, y_j, p_j) (docs/theory.rst §1).

Every law is a pure function of ``cfg.data`` (and ``cfg.model`` for the target encoding);
all randomness comes from ``default_rng(SeedSequence(data.seed))``, independent of the
simulation seeds. Targets are stored in the loss's encoding:

- squared: real targets; class data one-hot (J, K), or ±1 with C = 1 when K = 2 and
  ``model.layers = 'first'``;
- logistic: C = 1, y ∈ {−1, +1} (class 0 → −1, class 1 → +1; needs 2 classes);
- cross_entropy: one-hot (J, K).

Choices: the teacher is f*(x) = m^{−1/2} Σ_i a_i σ(⟨b_i, x⟩) with a_i ~ N(0, 1) and
b_i ~ N(0, I_p / p): ⟨b_i, x⟩ has variance |b_i|² ≈ 1 for every p, and averaged over the
teacher draw E f*(x)² = E σ(⟨b, x⟩)² is O(1) for every width m and activation (at p = 1,
b_i ~ N(0, 1)). Gauss–Hermite quadrature is capped at n = 300 atoms (float64 overflow).
Digits are standardised with the mean and std of all 1797 images, before subsampling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NoReturn
from zipfile import BadZipFile

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from .errors import ConfigError
from .shipped import dataset_path, resolve_data_path

DIGITS_FILE = dataset_path("digits.npz")
_DEFAULT_N = 64
_QUAD_MAX = 300  # beyond this hermegauss overflows in float64
_MAX_CLASSES = 10_000
_ACT = {"tanh": np.tanh, "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
        "relu": lambda z: np.maximum(z, 0.0), "linear": lambda z: z}


@dataclass(frozen=True)
class DataLaw:
    """A data law: J training atoms with weights, plus held-out atoms.

    Attributes
    ----------
    x : (J, p) ndarray of float64
        Training inputs.
    y : (J, C) ndarray of float64
        Targets in the loss's encoding (module docstring).
    p : (J,) ndarray of float64
        Weights, > 0, normalised to sum to 1.
    labels : (J,) ndarray of int64 or None
        Class indices for classification data, else None.
    x_test, y_test, labels_test
        The same for the J_test held-out atoms (J_test may be 0), uniformly weighted.
    name : str
        Short description, e.g. ``"teacher(width=4, p=1, n=64)"``.
    """

    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    labels: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    labels_test: np.ndarray | None
    name: str

    @property
    def n_atoms(self) -> int:
        """J, the number of training atoms."""
        return int(self.x.shape[0])

    @property
    def input_dim(self) -> int:
        """P, the input dimension."""
        return int(self.x.shape[1])

    @property
    def outputs(self) -> int:
        """C, the output dimension."""
        return int(self.y.shape[1])

    @property
    def uniform(self) -> bool:
        """Whether all training weights are equal."""
        return bool(np.all(self.p == self.p[0]))


def _encode(labels: np.ndarray, classes: int, cfg) -> np.ndarray:
    """Encode class indices for ``cfg.model.loss`` as a (J, C) float64 array."""
    loss, layers = cfg.model.loss, cfg.model.layers
    if loss == "logistic" or (loss == "squared" and classes == 2 and layers == "first"):
        if classes != 2:
            msg = f"model.loss = 'logistic' needs data with 2 classes, got {classes}"
            raise ConfigError(msg)
        return np.where(labels == 1, 1.0, -1.0)[:, None]
    return np.eye(classes)[labels]


def _teacher(cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Draw x ~ N(0, I_p) (or take Gauss–Hermite nodes) and y = f*(x) + noise·ε."""
    d, P, m = cfg.data, cfg.data.input_dim, cfg.data.teacher_width
    if cfg.model.loss == "cross_entropy":
        msg = "model.loss = 'cross_entropy' needs class data, not data.kind = 'teacher'"
        raise ConfigError(msg)
    a, b = rng.standard_normal(m), rng.standard_normal((m, P)) / np.sqrt(P)
    n = _DEFAULT_N if d.n is None else d.n
    if d.quadrature:
        if P != 1 or not 1 <= n <= _QUAD_MAX:
            msg = (f"data.quadrature = true needs data.input_dim = 1 and data.n in "
                   f"[1, {_QUAD_MAX}], got input_dim = {P}, n = {n}")
            raise ConfigError(msg)
        nodes, w = hermegauss(n)
        x, p = nodes[:, None], w / w.sum()
    else:
        x, p = rng.standard_normal((n, P)), np.full(n, 1.0 / n)
    y = _ACT[cfg.model.activation](x @ b.T) @ a / np.sqrt(m) + d.noise * rng.standard_normal(n)
    quad = "-quadrature" if d.quadrature else ""
    return x, y, p, f"teacher{quad}(width={m}, p={P}, n={n})"


def _mixture(cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """K equiprobable classes, N(μ_k, I_p), means at radius 2, well separated.

    p = 1: means evenly spaced on [−2, 2]; K ≤ 2p: ±2 q_i for a random orthonormal frame
    (q_i); otherwise random directions.
    """
    K, P = cfg.data.classes, cfg.data.input_dim
    n = _DEFAULT_N if cfg.data.n is None else cfg.data.n
    if P == 1:
        mu = np.linspace(-2.0, 2.0, K)[:, None]
    elif K <= 2 * P:
        q, r = np.linalg.qr(rng.standard_normal((P, P)))
        q = q * np.sign(np.diag(r))
        mu = 2.0 * np.concatenate([q.T, -q.T], axis=1).reshape(2 * P, P)[:K]
    else:
        g = rng.standard_normal((K, P))
        mu = 2.0 * g / np.linalg.norm(g, axis=1, keepdims=True)
    labels = rng.integers(K, size=n)
    x = mu[labels] + rng.standard_normal((n, P))
    return x, labels, f"gaussian_mixture(classes={K}, p={P}, n={n})"


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Raw 8×8 digits (1797, 64) and labels: scikit-learn's copy, else the shipped one."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        with np.load(DIGITS_FILE, allow_pickle=False) as f:
            return f["x"].astype(np.float64), f["y"].astype(np.int64)
    bunch = load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


def _digits(cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Standardised digits, optionally a seeded subset of ``data.n`` images."""
    x, labels = _load_digits()
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    n = cfg.data.n
    if n is not None:
        if n > len(x):
            msg = f"data.n must be at most {len(x)} for data.kind = 'digits', got {n}"
            raise ConfigError(msg)
        keep = np.sort(rng.choice(len(x), size=n, replace=False))
        x, labels = x[keep], labels[keep]
    return x, labels, f"digits(n={len(x)})"


def _bad_file(path: str | None, problem: str) -> NoReturn:
    msg = f"data.path {path!r}: {problem}"
    raise ConfigError(msg)


def _read_file(cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Read and check ``data.path``; return x, y (J, C), labels and unnormalised p.

    Zero-weight atoms are dropped (so every p_j > 0). Logistic labels may be ±1 or 0/1
    (0 → −1); cross-entropy takes (J,) class indices or (J, C) probability rows.
    """
    path = cfg.data.path
    file = None if path is None else resolve_data_path(path)
    if file is None or not file.is_file():
        _bad_file(path, "no such file")
    try:
        with np.load(file, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, EOFError, ValueError, AttributeError, TypeError, BadZipFile) as exc:
        _bad_file(path, f"not a readable .npz archive without pickles ({exc})")
    for key in ("x", "y", "p"):
        if key in ("x", "y") and key not in arrays:
            _bad_file(path, f"missing array {key!r} (has {sorted(arrays)})")
        dtype = arrays.get(key, np.zeros(0)).dtype
        if dtype.kind not in "biuf":
            _bad_file(path, f"array {key!r} must be numeric, got dtype {dtype}")
    x, y = arrays["x"].astype(np.float64), arrays["y"].astype(np.float64)
    J = x.shape[0] if x.ndim else 0
    p = arrays.get("p", np.ones(J)).astype(np.float64)
    if x.ndim != 2 or min(x.shape) < 1:
        _bad_file(path, f"'x' must have shape (J, p) with J, p >= 1, got {x.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != J or y.size == 0:
        _bad_file(path, f"'y' must have shape ({J},) or ({J}, C), got {y.shape}")
    if p.shape != (J,):
        _bad_file(path, f"'p' must have shape ({J},), got {p.shape}")
    for key, arr in (("x", x), ("y", y), ("p", p)):
        if not np.all(np.isfinite(arr)):
            _bad_file(path, f"array {key!r} contains NaN or inf")
    if np.any(p < 0) or p.sum() <= 0:
        _bad_file(path, "weights 'p' must be nonnegative with a positive sum")
    loss, labels = cfg.model.loss, None
    if loss == "cross_entropy" and y.ndim == 1:
        if np.any(y != np.round(y)) or y.min() < 0 or y.max() >= _MAX_CLASSES:
            _bad_file(path, f"'y' must hold class indices 0 ... {_MAX_CLASSES - 1}")
        labels = y.astype(np.int64)
        y = np.eye(max(int(y.max()) + 1, 2))[labels]
    elif loss == "cross_entropy":
        if y.shape[1] < 2 or np.any(y < 0) or not np.allclose(y.sum(axis=1), 1.0):
            _bad_file(path, "'y' (J, C) must hold probability rows, C >= 2, for cross_entropy")
        labels = np.argmax(y, axis=1)
    elif loss == "logistic":
        values = set(np.unique(y).tolist())
        if y.size != J or not (values <= {-1.0, 1.0} or values <= {0.0, 1.0}):
            _bad_file(path, "'y' must be (J,) labels in {-1, +1} or {0, 1} for logistic")
        labels = (y.ravel() > 0).astype(np.int64)
        y = np.where(labels == 1, 1.0, -1.0)[:, None]
    y = y.reshape(J, -1)
    keep = p > 0
    return x[keep], y[keep], None if labels is None else labels[keep], p[keep]


def data_digest(cfg) -> str | None:
    """Return the sha256 of the data files ``cfg`` reads (None when it reads none).

    ``data.kind = 'file'``: the bytes of ``data.path`` (None if it cannot be read: reading
    it later says why).  ``'digits'``: the raw images and labels, from whichever copy
    :func:`make_data` loads.  Synthetic laws are functions of the config alone.  Cached
    results are keyed by it, so a changed file is never served from an older run.
    """
    d = cfg.data
    h = hashlib.sha256()
    if d.kind == "file":
        file = None if d.path is None else resolve_data_path(d.path)
        if file is None or not file.is_file():  # not a FIFO or a device
            return None
        try:
            with open(file, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except (OSError, TypeError):
            return None
        return h.hexdigest()
    if d.kind == "digits":
        for a in _load_digits():
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()
    return None


def make_data(cfg) -> DataLaw:
    """Build the data law described by ``cfg.data`` in the encoding of ``cfg.model.loss``.

    Parameters
    ----------
    cfg : Config
        Reads ``cfg.data`` and ``cfg.model.{layers, loss, activation}``.

    Returns
    -------
    DataLaw
        Training atoms with weights summing to 1 and ``round(test_fraction·J)`` held-out
        atoms (at least one training atom is kept).

    Raises
    ------
    ConfigError
        Unknown kind, an encoding the model cannot represent, or an unusable data file.
    """
    d = cfg.data
    rng = np.random.default_rng(np.random.SeedSequence(d.seed))
    labels = None
    if d.quadrature and d.kind != "teacher":
        msg = f"data.quadrature = true requires data.kind = 'teacher', got {d.kind!r}"
        raise ConfigError(msg)
    if d.kind == "teacher":
        x, f, p, name = _teacher(cfg, rng)
        if cfg.model.loss == "logistic":
            labels = (f >= 0).astype(np.int64)
            y = np.where(f >= 0, 1.0, -1.0)[:, None]
        else:
            y = f[:, None]
    elif d.kind in ("gaussian_mixture", "digits"):
        x, labels, name = (_mixture if d.kind != "digits" else _digits)(cfg, rng)
        y = _encode(labels, d.classes if d.kind != "digits" else 10, cfg)
        p = np.full(len(x), 1.0 / len(x))
    elif d.kind == "file":
        x, y, labels, p = _read_file(cfg)  # data.n does not apply (config.py says so)
        name = f"file({d.path}, n={len(x)})"
    else:
        msg = f"data.kind must be one of teacher, gaussian_mixture, digits, file; got {d.kind!r}"
        raise ConfigError(msg)
    if cfg.model.layers == "first" and y.shape[1] > 1:
        msg = (f"model.layers = 'first' has one output, but model.loss = {cfg.model.loss!r} "
               f"on {name} needs {y.shape[1]}; use model.layers = 'both'")
        raise ConfigError(msg)
    n_test = min(round(d.test_fraction * len(x)), len(x) - 1)
    train, test = np.arange(len(x)), np.arange(0)
    if d.test_fraction > 0:
        if d.quadrature or not np.all(p == p[0]):
            msg = ("data.test_fraction > 0 needs equally weighted atoms; not allowed with "
                   "data.quadrature = true or a file with unequal weights 'p'")
            raise ConfigError(msg)
        perm = rng.permutation(len(x))
        train, test = np.sort(perm[n_test:]), np.sort(perm[:n_test])
        name = f"{name[:-1]}, test={n_test})"
    return DataLaw(
        x=x[train], y=y[train], p=p[train] / p[train].sum(),
        labels=None if labels is None else labels[train],
        x_test=x[test], y_test=y[test], labels_test=None if labels is None else labels[test],
        name=name,
    )
