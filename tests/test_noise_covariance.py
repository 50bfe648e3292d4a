"""``models.noise_covariance`` against the NumPy oracle ``ref.noise_cov`` (THEORY.md §1, §3)."""

import numpy as np
import pytest

from meanfield import models
from meanfield.config import parse_config

ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear"]
HEADS = [("both", "squared", 1), ("both", "squared", 3), ("first", "squared", 1),
         ("both", "logistic", 1), ("first", "logistic", 1), ("both", "cross_entropy", 3)]
COMBOS = [(a, *h) for a in ACTIVATIONS for h in HEADS]
IDS = [f"{a}-{layers}-{loss}-C{C}" for a, layers, loss, C in COMBOS]
P_DIM = 3


def build(act, layers, loss, C, l2, data):
    kind = "gaussian_mixture" if loss == "cross_entropy" else "teacher"
    cfg = parse_config({"model": {"layers": layers, "activation": act, "loss": loss, "l2": l2},
                        "data": {"kind": kind, "classes": max(C, 2)}})
    return models.make_model(cfg, data)


@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_noise_covariance_matches_reference(act, layers, loss, C, rng, ref, make_hand_data):
    data = make_hand_data(rng, 13, P_DIM, C, loss)
    model = build(act, layers, loss, C, 0.3, data)  # l2 must not enter Σ
    N = 2 * models.BLOCK + 37  # several blocks, one partial
    W = rng.normal(0.0, 0.8, (N, model.dim))
    u = ref.mean_field(W, data.x, layers, act, C)
    sig = models.noise_covariance(W, u, data, model)
    assert sig.shape == (N, model.dim, model.dim)
    want = np.stack([ref.noise_cov(w, u, data.x, data.y, data.p, layers, act, loss, C)
                     for w in W])
    np.testing.assert_allclose(sig, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(sig, np.swapaxes(sig, 1, 2))
    assert np.all(np.linalg.eigvalsh(sig) > -1e-12)


def test_noise_covariance_single_atom_is_zero(rng, make_hand_data):
    data = make_hand_data(rng, 1, 2, 1, "squared")
    model = build("tanh", "both", "squared", 1, 0.0, data)
    W = rng.normal(size=(5, model.dim))
    u = models.mean_field(W, data.x, model)
    np.testing.assert_array_equal(models.noise_covariance(W, u, data, model), 0.0)
