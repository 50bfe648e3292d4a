"""Model kernels (docs/theory.rst §1, §3) against the NumPy oracle of conftest.py and closed forms.

- u, ℓ, g, the drift h and the noise Σ_j √p_j G_j ξ_j against an independent NumPy twin;
- the drift against central finite differences of the risk: with
  R(W) = Σ_j p_j ℓ((1/N) Σ_k F(w_k, x_j), y_j) + (λ / 2N) Σ_k |w_k|²,
  N ∇_{w_k} R = Σ_j p_j J_w F(w_k, x_j)ᵀ ∂₁ℓ(u_j, y_j) + λ w_k = h(w_k, ν^N);
- the covariance of ``noise_sample`` over many ξ against Σ = Cov_z H.
"""

import numba as nb
import numpy as np
import pytest

from meanfield import model as models
from meanfield._kernels.backward import _input_grads_tile
from meanfield._kernels.forward import _preact_tile
from meanfield._kernels.jit import BLOCK
from meanfield._kernels.simd import _lane_dot
from meanfield.config import parse_config

ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear"]
# every valid (layers, loss, C): logistic needs C = 1, cross-entropy layers = both, C ≥ 2
HEADS = [("both", "squared", 1), ("both", "squared", 3), ("first", "squared", 1),
         ("both", "logistic", 1), ("first", "logistic", 1), ("both", "cross_entropy", 3)]
COMBOS = [(a, *h) for a in ACTIVATIONS for h in HEADS]
IDS = [f"{a}-{layers}-{loss}-C{C}" for a, layers, loss, C in COMBOS]
P_DIM = 3


def build(act, layers, loss, C, l2, data):
    """The engine's Model for this combination (through the config, as simulate does)."""
    kind = "gaussian_mixture" if loss == "cross_entropy" else "teacher"
    cfg = parse_config({"model": {"layers": layers, "activation": act, "loss": loss, "l2": l2},
                        "data": {"kind": kind, "classes": max(C, 2)}})
    model = models.make_model(cfg, data)
    assert model.outputs == C
    assert model.input_dim == data.x.shape[1]
    assert model.dim == (C if layers == "both" else 0) + data.x.shape[1]
    return model


def particles(rng, N, D, data, act, layers, C, margin=0.05):
    """Random particles; for relu, preactivations kept ≥ margin away from the kink."""
    for _ in range(1000):
        W = rng.normal(0.0, 0.8, (N, D))
        b = W[:, C:] if layers == "both" else W
        if act != "relu" or np.min(np.abs(data.x @ b.T)) > margin:
            return W
    msg = "no relu-safe draw"
    raise RuntimeError(msg)


@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_mean_field_and_loss_match_reference(act, layers, loss, C, rng, ref, make_hand_data):
    data = make_hand_data(rng, 6, P_DIM, C, loss)
    model = build(act, layers, loss, C, 0.0, data)
    W = particles(rng, 9, model.dim, data, act, layers, C)
    u = models.mean_field(W, data.x, model)
    assert u.shape == (6, C)
    np.testing.assert_allclose(u, ref.mean_field(W, data.x, layers, act, C),
                               rtol=1e-13, atol=1e-14)
    q = rng.uniform(0.1, 1.0, 9)
    q /= q.sum()
    uq = models.mean_field(W, data.x, model, weights=q)
    np.testing.assert_allclose(uq, np.einsum("k,jkc->jc", q, ref.features(W, data.x, layers,
                                                                          act, C)),
                               rtol=1e-13, atol=1e-14)
    ell, g = models.loss_and_grad(u, data.y, model)
    np.testing.assert_allclose(ell, ref.loss_value(u, data.y, loss), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g, ref.loss_grad(u, data.y, loss), rtol=1e-13, atol=1e-15)
    assert models.risk(u, data.y, data.p, model) == pytest.approx(
        data.p @ ref.loss_value(u, data.y, loss), rel=1e-13)


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_drift_matches_reference(act, layers, loss, C, l2, rng, ref, make_hand_data):
    data = make_hand_data(rng, 5, P_DIM, C, loss)
    model = build(act, layers, loss, C, l2, data)
    W = particles(rng, 7, model.dim, data, act, layers, C)
    u = rng.normal(0.0, 1.0, (5, C))  # any mean field: h depends on μ only through u
    h = models.drift(W, u, data, model)
    assert h.shape == W.shape
    expected = ref.drift(W, u, data.x, data.y, data.p, layers, act, loss, C, l2)
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_drift_is_n_times_risk_gradient(act, layers, loss, C, l2, rng, ref, make_hand_data):
    N, J = 7, 5
    data = make_hand_data(rng, J, P_DIM, C, loss)
    model = build(act, layers, loss, C, l2, data)
    W = particles(rng, N, model.dim, data, act, layers, C)

    def risk(V):
        u = ref.features(V, data.x, layers, act, C).mean(axis=1)
        return data.p @ ref.loss_value(u, data.y, loss) + l2 / (2 * N) * np.sum(V * V)

    # central differences, step e = 1e-6: truncation O(e² R''') ~ 1e-12, roundoff
    # ~ 1e-16 |R| / e ~ 1e-10, both times N after scaling: tolerance 1e-7 is ample and far
    # below any real error (O(1)).
    e = 1e-6
    fd = np.empty_like(W)
    for k in range(N):
        for d in range(model.dim):
            Vp, Vm = W.copy(), W.copy()
            Vp[k, d] += e
            Vm[k, d] -= e
            fd[k, d] = N * (risk(Vp) - risk(Vm)) / (2 * e)
    u = models.mean_field(W, data.x, model)
    np.testing.assert_allclose(models.drift(W, u, data, model), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_noise_sample_matches_reference(act, layers, loss, C, rng, ref, make_hand_data):
    data = make_hand_data(rng, 5, P_DIM, C, loss)
    model = build(act, layers, loss, C, 0.2, data)
    W = particles(rng, 7, model.dim, data, act, layers, C)
    u = models.mean_field(W, data.x, model)
    xi = rng.standard_normal((7, 5))
    nz = models.noise_sample(W, u, data, model, xi)
    expected = ref.noise(W, u, data.x, data.y, data.p, layers, act, loss, C, xi)
    np.testing.assert_allclose(nz, expected, rtol=1e-12, atol=1e-13)
    # shared noise (equal rows of ξ) is just another ξ
    xs = np.tile(xi[:1], (7, 1))
    np.testing.assert_allclose(models.noise_sample(W, u, data, model, xs),
                               ref.noise(W, u, data.x, data.y, data.p, layers, act, loss, C, xs),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_noise_sample_covariance(act, layers, loss, C, rng, ref, make_hand_data):
    J, n = 5, 200_000
    data = make_hand_data(rng, J, P_DIM, C, loss)
    model = build(act, layers, loss, C, 0.2, data)  # the L2 term adds no noise
    w = particles(rng, 1, model.dim, data, act, layers, C)[0]
    u = rng.normal(0.0, 0.7, (J, C))
    W = np.tile(w, (n, 1))  # n copies of one particle: n draws of its noise
    xi = rng.standard_normal((n, J))
    nz = models.noise_sample(W, u, data, model, xi)
    sigma = ref.noise_cov(w, u, data.x, data.y, data.p, layers, act, loss, C)
    # The sample is exactly Gaussian N(0, Σ) (linear in ξ). Standard errors: mean
    # (Σ_ii / n)^{1/2}; sample covariance Var(S_il) ≈ (Σ_ii Σ_ll + Σ_il²) / n. 5σ each.
    diag = np.diag(sigma)
    mean = nz.mean(axis=0)
    assert np.all(np.abs(mean) <= 5 * np.sqrt(diag / n) + 1e-15), (mean, diag)
    S = np.cov(nz, rowvar=False)
    se = np.sqrt((np.outer(diag, diag) + sigma**2) / n)
    assert np.all(np.abs(S - sigma) <= 5 * se + 1e-15), (S, sigma, se)


def test_tanh_and_sigmoid_accuracy():
    # layers = first, N = 1, w = 1, p = 1: u_j = σ(x_j); the engine's own tanh (≤ 4 ulp)
    x = np.concatenate([np.linspace(-25.0, 25.0, 20001), [-1e-300, 0.0, 1e-300, 1e-8, 40, -1e3]])
    data_x = x[:, None]
    for act, exact in (("tanh", np.tanh(x)), ("sigmoid", 0.5 + 0.5 * np.tanh(0.5 * x))):
        model = models.Model(layers=models.LAYERS["first"],
                             activation=models.ACTIVATIONS[act], loss=0, l2=0.0, outputs=1,
                             input_dim=1)
        u = models.mean_field(np.ones((1, 1)), data_x, model)[:, 0]
        np.testing.assert_allclose(u, exact, rtol=0, atol=1e-15)
    model = models.Model(layers=1, activation=models.ACTIVATIONS["tanh"], loss=0, l2=0.0,
                         outputs=1, input_dim=1)
    u = models.mean_field(np.ones((1, 1)), np.array([[30.0], [-30.0], [np.nan]]), model)[:, 0]
    assert u[0] == 1.0
    assert u[1] == -1.0
    assert np.isnan(u[2])


def test_losses_are_stable_at_extreme_outputs():
    lg = models.Model(layers=0, activation=0, loss=models.LOSSES["logistic"], l2=0.0,
                      outputs=1, input_dim=1)
    u = np.array([[-800.0], [800.0], [0.0]])
    y = np.array([[1.0], [1.0], [-1.0]])
    ell, g = models.loss_and_grad(u, y, lg)
    np.testing.assert_allclose(ell, [800.0, 0.0, np.log(2.0)], rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(g[:, 0], [-1.0, 0.0, 0.5], rtol=1e-15, atol=1e-300)
    ce = models.Model(layers=0, activation=0, loss=models.LOSSES["cross_entropy"], l2=0.0,
                      outputs=3, input_dim=1)
    u = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    ell, g = models.loss_and_grad(u, y, ce)
    np.testing.assert_allclose(ell, [1000.0, np.log(3.0)], rtol=1e-15)
    np.testing.assert_allclose(g, [[1.0, -1.0, 0.0], [1 / 3, 1 / 3, -2 / 3]], rtol=1e-15,
                               atol=1e-300)


@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_shared_noise_cross_covariance(act, layers, loss, C, rng, ref, make_hand_data):
    # Shared ξ for two particles w, w' gives them the cross-covariance of SGD's noise,
    # C(w, w') = Σ_j p_j (H_j(w) − h̄(w))(H_j(w') − h̄(w'))ᵀ (docs/theory.rst §3).
    J, n = 5, 100_000
    data = make_hand_data(rng, J, P_DIM, C, loss)
    model = build(act, layers, loss, C, 0.0, data)
    w2 = particles(rng, 2, model.dim, data, act, layers, C)
    u = rng.normal(0.0, 0.7, (J, C))
    xi = np.repeat(rng.standard_normal((n, J)), 2, axis=0)  # rows 2i, 2i + 1 share ξ
    nz = models.noise_sample(np.tile(w2, (n, 1)), u, data, model, xi)
    a, b = nz[0::2], nz[1::2]
    g = [ref.per_atom(w[None], data.x, ref.loss_grad(u, data.y, loss), layers, act, C)[:, 0]
         for w in w2]
    G = [x - data.p @ x for x in g]
    cross = (G[0] * data.p[:, None]).T @ G[1]
    va, vb = np.diag((G[0] * data.p[:, None]).T @ G[0]), np.diag((G[1] * data.p[:, None]).T @ G[1])
    S = (a - a.mean(0)).T @ (b - b.mean(0)) / (n - 1)
    # jointly Gaussian: Var(S_il) ≈ (Σa_ii Σb_ll + C_il²) / n; 5σ each
    se = np.sqrt((np.outer(va, vb) + cross**2) / n)
    assert np.all(np.abs(S - cross) <= 5 * se + 1e-15), (S, cross, se)


@pytest.mark.parametrize(("act", "layers", "loss", "C"), COMBOS, ids=IDS)
def test_noise_covariance_matches_reference(act, layers, loss, C, rng, ref, make_hand_data):
    data = make_hand_data(rng, 13, P_DIM, C, loss)
    model = build(act, layers, loss, C, 0.3, data)  # l2 must not enter Σ
    N = 2 * BLOCK + 37  # several blocks, one partial
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


@nb.njit(cache=True)
def _apply_lane_dot(a, lo, b, n, weighted):
    return _lane_dot(a, lo, b, n, weighted)


def _lane_order_reference(a, lo, b, n, weighted):
    """The documented order in NumPy: lane j sums terms k ≡ j (mod 8) of the first
    n − n mod 8 sequentially (np.cumsum is sequential), the tail goes into lane 0, then
    ((0+1)+(2+3))+((4+5)+(6+7))."""
    terms = a[lo:lo + n] * b[:n] if weighted else b[:n].copy()
    n8 = n - n % 8
    zero = np.zeros(1, terms.dtype)
    lanes = [np.cumsum(np.concatenate([zero, terms[j:n8:8]]))[-1] for j in range(8)]
    lanes[0] = np.cumsum(np.concatenate([[lanes[0]], terms[n8:]]))[-1]
    e = lanes
    return ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lane_dot_is_the_documented_fixed_order(dtype):
    rng = np.random.default_rng(7)
    for n in list(range(0, 20)) + [63, 64, 65, 1000, 1001]:
        lo = int(rng.integers(0, 9))
        a = rng.normal(size=lo + n + 2).astype(dtype)
        b = rng.normal(size=n + 3).astype(dtype)
        for weighted in (True, False):
            got = _apply_lane_dot(a, lo, b, n, weighted)
            assert got == _lane_order_reference(a, lo, b, n, weighted), (n, lo, weighted)


@nb.njit(cache=True)
def _apply_preact_tile(Wt, lo, nk, off, X, atoms, i0, nt, rows, base):
    _preact_tile(Wt, lo, nk, off, X, atoms, i0, nt, rows, base)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_preact_tile_is_the_sequential_input_sum(dtype):
    # rows[base + t, k] = ((W[off, lo+k] x_0 + W[off+1, lo+k] x_1) + …) + W[off+p−1, lo+k] x_{p−1}
    # bitwise, for full tiles (8 × 4 register blocks, one pass or, with rows 1 KiB long,
    # N = 1024 / 2048, passes of 8 inputs), neurons beyond the last multiple of 8 and
    # partial tiles; NumPy's elementwise loop is the independent reference.
    rng = np.random.default_rng(11)
    for N, p, lo, nk, nt in [(1000, 64, 0, 512, 4), (1024, 64, 512, 512, 4),
                             (2048, 20, 8, 37, 4), (300, 9, 3, 61, 4), (300, 9, 0, 300, 3),
                             (130, 2, 1, 7, 4), (130, 1, 0, 130, 4), (1024, 64, 0, 512, 2)]:
        off, J, base = 3, 11, 2
        Wt = rng.normal(size=(off + p, N)).astype(dtype)
        X = rng.normal(size=(J, p)).astype(dtype)
        atoms = rng.permutation(J)[:6].astype(np.int64)
        rows = np.full((base + 4 + 1, 512), np.nan, dtype)
        _apply_preact_tile(Wt, lo, nk, off, X, atoms, 1, nt, rows, base)
        for t in range(nt):
            x = X[atoms[1 + t]]
            want = Wt[off, lo:lo + nk] * x[0]
            for r in range(1, p):
                want = want + Wt[off + r, lo:lo + nk] * x[r]
            np.testing.assert_array_equal(rows[base + t, :nk], want, err_msg=f"{N, p, nk, t}")
        assert np.isnan(rows[base + nt:, :]).all()
        assert np.isnan(rows[:base]).all()


@nb.njit(cache=True)
def _apply_input_grads_tile(X, atoms, i0, nt, cd, off, nk, vec, ebase, GD):
    _input_grads_tile(X, atoms, i0, nt, cd, False, off, nk, vec, ebase, ebase, GD, GD)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_input_grads_tile_adds_the_atoms_in_order(dtype):
    # GD[off + r, k] = (((G + c_0 e_0[k]) + c_1 e_1[k]) + c_2 e_2[k]) + c_3 e_3[k] with
    # c_t = cd_t X[j_t, r], bitwise: 4 rows × 8 neurons in registers (_input_grads4x4), the
    # last p mod 4 rows and nk mod 8 neurons by loops, and partial tiles atom by atom.
    rng = np.random.default_rng(12)
    for p, nk, nt in [(64, 512, 4), (9, 509, 4), (4, 8, 4), (3, 13, 4), (1, 100, 4), (6, 7, 4),
                      (5, 33, 3)]:
        off, J, ebase, i0 = 2, 10, 3, 1
        X = rng.normal(size=(J, p)).astype(dtype)
        atoms = rng.permutation(J)[:6].astype(np.int64)
        cd = rng.uniform(0.1, 1.0, size=6).astype(dtype)
        vec = rng.normal(size=(ebase + 4, 512)).astype(dtype)
        GD = rng.normal(size=(off + p + 1, 512)).astype(dtype)
        want = GD.copy()
        for r in range(p):
            for t in range(nt):
                c = cd[i0 + t] * X[atoms[i0 + t], r]
                want[off + r, :nk] = want[off + r, :nk] + c * vec[ebase + t, :nk]
        _apply_input_grads_tile(X, atoms, i0, nt, cd, off, nk, vec, ebase, GD)
        np.testing.assert_array_equal(GD, want, err_msg=f"p={p}, nk={nk}, nt={nt}")
