from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from meanfield.config import Config, DataConfig, ModelConfig
from meanfield.data import DIGITS_FILE, make_data
from meanfield.errors import ConfigError


def cfg(layers="both", loss="squared", activation="tanh", **data):
    return Config(model=ModelConfig(layers=layers, loss=loss, activation=activation),
                  data=DataConfig(**data))


def raw(data=None, **model):
    """A config that skips Config's cross-field rules, to test make_data's own checks."""
    return SimpleNamespace(model=ModelConfig(**model), data=data or DataConfig())


def check_law(d, J, C, p_dim):
    assert d.x.shape == (J, p_dim)
    assert d.x.dtype == np.float64
    assert d.y.shape == (J, C)
    assert d.y.dtype == np.float64
    assert d.p.shape == (J,)
    assert np.all(d.p > 0)
    assert abs(d.p.sum() - 1.0) < 1e-14
    assert (d.n_atoms, d.outputs, d.input_dim) == (J, C, p_dim)
    assert np.all(np.isfinite(d.x))
    assert np.all(np.isfinite(d.y))
    if d.labels is not None:
        assert d.labels.shape == (J,)
        assert d.labels.dtype == np.int64


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
@pytest.mark.parametrize("layers", ["both", "first"])
def test_teacher_squared(activation, layers):
    d = make_data(cfg(layers, activation=activation, input_dim=3, n=200))
    check_law(d, 200, 1, 3)
    assert d.labels is None
    assert d.uniform
    assert d.name.startswith("teacher(")
    assert 0.01 < np.mean(d.y**2) < 5  # O(1) targets
    assert d.x_test.shape == (0, 3)
    assert d.y_test.shape == (0, 1)


def test_teacher_default_n_and_logistic_noise():
    clean = make_data(cfg(loss="squared"))
    check_law(clean, 64, 1, 1)
    d = make_data(cfg(loss="logistic", noise=0.5))
    check_law(d, 64, 1, 1)
    assert set(np.unique(d.y)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(d.labels, (d.y[:, 0] > 0).astype(np.int64))
    assert np.mean(np.sign(clean.y[:, 0]) != d.y[:, 0]) > 0  # noise flips some signs
    with pytest.raises(ConfigError, match="cross_entropy"):
        make_data(raw(loss="cross_entropy"))


def test_quadrature_moments():
    d = make_data(cfg(quadrature=True, n=40))
    check_law(d, 40, 1, 1)
    x = d.x[:, 0]
    assert abs(d.p @ x) < 1e-14
    assert abs(d.p @ x**2 - 1.0) < 1e-12
    assert abs(d.p @ x**4 - 3.0) < 1e-12
    assert not d.uniform
    with pytest.raises(ConfigError, match="test_fraction"):
        make_data(cfg(quadrature=True, test_fraction=0.2))
    with pytest.raises(ConfigError, match="data.n"):
        make_data(cfg(quadrature=True, n=1000))


@pytest.mark.parametrize(("layers", "loss", "classes", "C"), [
    ("both", "squared", 2, 2), ("first", "squared", 2, 1), ("both", "squared", 3, 3),
    ("both", "logistic", 2, 1), ("first", "logistic", 2, 1), ("both", "cross_entropy", 4, 4),
])
def test_mixture_encodings(layers, loss, classes, C):
    d = make_data(cfg(layers, loss, kind="gaussian_mixture", classes=classes, input_dim=2))
    check_law(d, 64, C, 2)
    if C == 1:
        np.testing.assert_array_equal(d.y[:, 0], np.where(d.labels == 1, 1.0, -1.0))
    else:
        np.testing.assert_array_equal(d.y, np.eye(classes)[d.labels])
    assert set(d.labels) <= set(range(classes))


def test_mixture_separated_and_errors():
    d = make_data(cfg(kind="gaussian_mixture", classes=3, input_dim=5, n=3000))
    means = np.array([d.x[d.labels == k].mean(axis=0) for k in range(3)])
    assert np.allclose(np.linalg.norm(means, axis=1), 2.0, atol=0.2)
    assert min(np.linalg.norm(means[i] - means[j]) for i, j in [(0, 1), (0, 2), (1, 2)]) > 2.5
    d1 = make_data(cfg(kind="gaussian_mixture", classes=3, input_dim=1))
    assert d1.x.shape == (64, 1)
    mix3 = DataConfig(kind="gaussian_mixture", classes=3)
    with pytest.raises(ConfigError, match="logistic"):
        make_data(raw(mix3, loss="logistic"))
    with pytest.raises(ConfigError, match="model.layers"):
        make_data(raw(mix3, layers="first", loss="squared"))


def test_digits():
    d = make_data(cfg(loss="cross_entropy", kind="digits"))
    check_law(d, 1797, 10, 64)
    sd = d.x.std(axis=0)
    live = sd > 0
    assert np.allclose(d.x.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(sd[live], 1.0)
    assert np.all(d.x[:, ~live] == 0)
    assert (~live).any()
    np.testing.assert_array_equal(d.y.argmax(axis=1), d.labels)
    sub = make_data(cfg(kind="digits", n=100, test_fraction=0.25))
    check_law(sub, 75, 10, 64)
    assert sub.x_test.shape == (25, 64)
    assert sub.labels_test.shape == (25,)
    with pytest.raises(ConfigError, match="model.layers"):
        make_data(cfg("first", kind="digits"))
    with pytest.raises(ConfigError, match="data.n"):
        make_data(cfg(kind="digits", n=5000))


def test_shipped_digits_equal_sklearn():
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (test extra)")
    ref = datasets.load_digits()
    with np.load(DIGITS_FILE, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["x"], ref.data)
        np.testing.assert_array_equal(f["y"], ref.target)
        assert f["x"].shape == (1797, 64)
        assert f["y"].dtype == np.int64


def test_file_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x, p = rng.standard_normal((20, 3)), rng.uniform(0.5, 1.5, 20)
    real, lab = rng.standard_normal(20), rng.integers(3, size=20)
    np.savez(tmp_path / "a.npz", x=x, y=real, p=p)
    d = make_data(cfg(kind="file", path=str(tmp_path / "a.npz")))
    check_law(d, 20, 1, 3)
    np.testing.assert_array_equal(d.x, x)
    np.testing.assert_array_equal(d.y[:, 0], real)
    np.testing.assert_allclose(d.p, p / p.sum(), rtol=1e-14)
    assert d.labels is None
    assert not d.uniform
    np.savez(tmp_path / "b.npz", x=x, y=lab)
    d = make_data(cfg(loss="cross_entropy", kind="file", path=str(tmp_path / "b.npz")))
    check_law(d, 20, 3, 3)
    np.testing.assert_array_equal(d.labels, lab)
    np.testing.assert_array_equal(d.y, np.eye(3)[lab])
    for ys in (lab % 2, 2 * (lab % 2) - 1):
        np.savez(tmp_path / "c.npz", x=x, y=ys)
        d = make_data(cfg(loss="logistic", kind="file", path=str(tmp_path / "c.npz"),
                          test_fraction=0.3))
        check_law(d, 14, 1, 3)
        assert d.x_test.shape == (6, 3)
        np.testing.assert_array_equal(d.y[:, 0], np.where(d.labels == 1, 1.0, -1.0))
    # data.n does not apply to a file (config.py's description says so): all atoms are kept
    assert make_data(cfg(kind="file", path=str(tmp_path / "a.npz"), n=5)).x.shape[0] == \
        make_data(cfg(kind="file", path=str(tmp_path / "a.npz"))).x.shape[0]


@pytest.mark.parametrize("case", ["missing", "not_npz", "no_y", "nan", "shape", "neg_p", "J",
                                  "pickle", "labels"])
def test_bad_files(tmp_path, case):
    path = tmp_path / f"{case}.npz"
    x, y = np.ones((5, 2)), np.arange(5.0)
    loss = "logistic" if case == "labels" else "squared"
    if case == "not_npz":
        path.write_text("hello")
    elif case == "pickle":
        np.savez(path, x=np.array([{}], dtype=object), y=y)
    elif case != "missing":
        arrays = {"no_y": {"x": x}, "nan": {"x": x, "y": np.r_[y[:4], np.nan]},
                  "shape": {"x": np.ones(5), "y": y}, "neg_p": {"x": x, "y": y, "p": -y},
                  "J": {"x": x, "y": y[:4]}, "labels": {"x": x, "y": y}}[case]
        np.savez(path, **arrays)
    with pytest.raises(ConfigError, match="data.path") as err:
        make_data(cfg(loss=loss, kind="file", path=str(path)))
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_seeds():
    for kind in ("teacher", "gaussian_mixture"):
        a, b = (make_data(cfg(kind=kind, seed=3, test_fraction=0.2)) for _ in range(2))
        c = make_data(cfg(kind=kind, seed=4, test_fraction=0.2))
        for f in ("x", "y", "p", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert not np.array_equal(a.x, c.x)
        assert not np.array_equal(a.y, c.y)
    d1, d2 = (make_data(cfg(kind="digits", n=50, seed=s)) for s in (0, 1))
    assert not np.array_equal(d1.labels, d2.labels) or not np.array_equal(d1.x, d2.x)


def test_digits_file_fallback(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    ref = make_data(cfg(kind="digits", n=30))
    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    d = make_data(cfg(kind="digits", n=30))
    np.testing.assert_array_equal(d.x, ref.x)
    np.testing.assert_array_equal(d.labels, ref.labels)
    assert Path(DIGITS_FILE).is_file()
