"""The engine's random stream: Philox4x32-10 and the layout of its counters.

Checked against references that do not use the engine's code:

- Random123's known-answer vectors (``kat_vectors``) for the jitted generator and for
  a pure-NumPy Philox4x32-10 written here (vectorised uint64 arithmetic);
- the NumPy Philox, with the counter layout of ``meanfield._kernels.rng`` written out
  from its docstring, recomputes ``noise_draws`` (through exact Box–Muller, and bit for bit
  through the engine's Box–Muller on the reference bits) and ``batch_draws`` (iid and
  epochs, bit for bit);
- sample statistics of the normals: moments and the correlations between the places the
  layout puts side by side (pairs, blocks, neurons, steps, replicas).
"""

import math

import numba as nb
import numpy as np
import pytest

from meanfield._kernels.rng import _block, _normal_pair, _particle_block, _philox, _stream
from meanfield.engine import batch_draws, noise_draws

# Random123 1.14, tests/kat_vectors (github.com/DEShawResearch/random123, commit
# 9545ff6413f258be2f04c1d319d99aaef7521150, lines 27–29): "philox4x32 10" with
# counter (4 words), key (2 words), expected output (4 words); all zeros, all ones, and
# the hexadecimal digits of pi.
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
KAT_IDS = ["zeros", "ones", "pi"]

_LO = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
TAG_NOISE, TAG_BATCH, TAG_EPOCH = 0, 1, 2


# ---------------------------------------------------------------- the NumPy reference
def philox_ref(ctr, key):
    """Philox4x32-10 (Salmon et al. 2011, Random123's philox.h) on arrays of counters.

    ctr: 4 arrays (or ints) of 32-bit counter words, key: 2 ints.  Each round multiplies
    words 0 and 2 by the round constants (32 × 32 → 64 bits, exact in uint64), and the
    output is (hi₁ ⊕ c₁ ⊕ k₀, lo₁, hi₀ ⊕ c₃ ⊕ k₁, lo₀); the key gets the Weyl increments
    0x9E3779B9, 0xBB67AE85 between rounds.
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in ctr)
    k0, k1 = int(key[0]), int(key[1])
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> _32) ^ c1 ^ np.uint64(k0), p1 & _LO,
                          (p0 >> _32) ^ c3 ^ np.uint64(k1), p0 & _LO)
    return c0, c1, c2, c3


def words_ref(key, tag, n, j):
    """The two 64-bit words of blocks j (array) of stream (tag, n) of the replica key.

    Counter (j mod 2³², j div 2³², n mod 2³², n div 2³² + tag 2³⁰), key (key mod 2³²,
    key div 2³²); words x₀ + 2³² x₁ and x₂ + 2³² x₃.
    """
    j = np.asarray(j, dtype=np.uint64)
    key, n = int(key), int(n)
    ctr = (j & _LO, j >> _32, np.full_like(j, n & 0xFFFFFFFF),
           np.full_like(j, (n >> 32) | (tag << 30)))
    x0, x1, x2, x3 = philox_ref(ctr, (key & 0xFFFFFFFF, key >> 32))
    return x0 | (x1 << _32), x2 | (x3 << _32)


def box_muller_exact(b):
    """Box–Muller of 64-bit words with np.log, np.sqrt, np.cos, np.sin: (N, 2) normals.

    r = (−2 log u₁)^{1/2}, u₁ = (h + ½) 2⁻³² from the high 32 bits; φ = θ + q π/2,
    θ = ((l + ½) 2⁻³⁰ − ½) π/2 from the low 30 bits, q from bits 30–31.
    """
    u1 = ((b >> _32).astype(np.float64) + 0.5) * 2.0**-32
    low = (b & np.uint64((1 << 30) - 1)).astype(np.float64)
    q = ((b >> np.uint64(30)) & np.uint64(3)).astype(np.float64)
    phi = ((low + 0.5) * 2.0**-30 - 0.5) * (math.pi / 2) + q * (math.pi / 2)
    r = np.sqrt(-2.0 * np.log(u1))
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=-1)


def noise_words_ref(key, step, N, J):
    """(N, 2⌈J/4⌉) words: particle k's blocks k⌈J/4⌉ + q, each (word 0, word 1)."""
    nq = (J + 3) // 4
    j = np.arange(N * nq, dtype=np.uint64)
    w0, w1 = words_ref(key, TAG_NOISE, step, j)
    return np.stack([w0, w1], axis=1).reshape(N, 2 * nq)


@nb.njit(cache=True, error_model="numpy")
def _engine_box_muller(words, out):
    for i in range(words.shape[0]):
        out[i, 0], out[i, 1] = _normal_pair(words[i])


# ---------------------------------------------------------------- known answers
@pytest.mark.parametrize(("ctr", "key", "want"), KAT, ids=KAT_IDS)
def test_numpy_reference_known_answers(ctr, key, want):
    got = philox_ref(ctr, key)
    assert [int(x) for x in got] == list(want)


@pytest.mark.parametrize(("ctr", "key", "want"), KAT, ids=KAT_IDS)
def test_kernel_known_answers(ctr, key, want):
    u = np.uint64
    got = _philox(*(u(c) for c in ctr), u(key[0]), u(key[1]))
    assert [int(x) for x in got] == list(want)


def test_kernel_matches_reference_on_random_counters():
    rng = np.random.default_rng(5)
    ctr = rng.integers(0, 2**32, (4, 200), dtype=np.uint64)
    key = [int(k) for k in rng.integers(0, 2**32, 2, dtype=np.uint64)]
    want = np.stack(philox_ref(ctr, key))
    u = np.uint64
    got = np.array([_philox(*(u(c) for c in ctr[:, i]), u(key[0]), u(key[1]))
                    for i in range(200)], dtype=np.uint64).T
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- the counter layout
@pytest.mark.parametrize(("key", "tag", "n", "j"), [
    (0x0123_4567_89AB_CDEF, TAG_NOISE, 7, 3),
    (0xFEDC_BA98_7654_3210, TAG_BATCH, 2**32 + 5, 2**32 + 9),  # high words of n and j
    (2**64 - 1, TAG_EPOCH, 2**62 - 1, 2**64 - 1),  # the largest n and j
])
def test_block_is_philox_of_the_documented_counter(key, tag, n, j):
    s = tuple(np.uint64(w) for w in _stream(np.uint64(key), tag, n))
    got = _block(s, np.uint64(j))
    want = words_ref(key, tag, n, [j])
    assert [int(x) for x in got] == [int(w[0]) for w in want]


def test_particle_block_index_beyond_32_bits():
    key, n, k, nq, q = 0x5EED_0000_0000_0001, 11, 2**31 + 3, 5, 2
    s = tuple(np.uint64(w) for w in _stream(np.uint64(key), TAG_NOISE, n))
    got = _particle_block(s, k, nq, q)
    want = words_ref(key, TAG_NOISE, n, [k * nq + q])
    assert [int(x) for x in got] == [int(w[0]) for w in want]


@pytest.mark.parametrize("J", [1, 2, 3, 4, 5, 7, 8, 10])
def test_noise_draws_are_box_muller_of_the_reference_bits(J):
    key, step, N = 0x0DDB_A11C_AFEF_00D5, 5, 1001
    z = noise_draws(key, step, N, J)
    b = noise_words_ref(key, step, N, J)  # (N, 2 nq) words, 2 normals each
    # the bits fed: bitwise equal to the engine's Box–Muller of the reference words
    bm = np.empty((b.size, 2))
    _engine_box_muller(b.ravel(), bm)
    np.testing.assert_array_equal(z, bm.reshape(N, -1)[:, :J])
    # and those are Box–Muller pairs (to the accuracy of the fast log, sin, cos)
    want = box_muller_exact(b).reshape(N, -1)[:, :J]
    err = np.abs(z - want) / (1.0 + np.abs(want))
    assert err.max() <= 2e-8, err.max()


def test_noise_draws_use_the_high_words_of_key_and_step():
    key, N, J = 0x0000_0001_0000_0002, 64, 4
    for k2, s2 in ((key + 2**32, 9), (key, 9 + 2**32)):
        b = noise_words_ref(k2, s2, N, J)
        want = box_muller_exact(b).reshape(N, -1)
        got = noise_draws(k2, s2, N, J)
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-8 * (1 + np.abs(want).max()))
        assert not np.array_equal(got, noise_draws(key, 9, N, J))


def _uniform_ref(key, tag, n, count):
    """Uniforms i < count: the top 53 bits of 64-bit word i (half i mod 2 of block i div 2)."""
    w0, w1 = words_ref(key, tag, n, np.arange((count + 1) // 2))
    w = np.stack([w0, w1], axis=1).ravel()[:count]
    return (w >> np.uint64(11)).astype(np.float64) * 2.0**-53


@pytest.mark.parametrize("uniform", [True, False])
def test_iid_batch_draws_match_reference(uniform):
    key, J, M = 0x9E37_79B9_7F4A_7C15, 13, 9
    rng = np.random.default_rng(2)
    p = np.full(J, 1.0 / J) if uniform else rng.uniform(0.2, 1.0, J)
    p = p / p.sum()
    pcum = np.cumsum(p)
    pcum[-1] = 1.0
    for n in (0, 1, 17, 2**32 + 1):
        v = _uniform_ref(key, TAG_BATCH, n, M)
        if uniform:
            want = np.minimum((v * J).astype(np.int64), J - 1)
        else:
            want = np.searchsorted(pcum, v, side="right")  # first j with pcum[j] > v
        np.testing.assert_array_equal(batch_draws(key, n, M, p), want, err_msg=f"step {n}")


@pytest.mark.parametrize(("J", "M"), [(12, 4), (12, 5), (7, 7), (10, 3)])
def test_epoch_batch_draws_match_reference(J, M):
    key = 0x1357_9BDF_2468_ACE0
    p = np.full(J, 1.0 / J)

    def perm(e):  # Fisher–Yates: swap position i with r = ⌊u_i (i + 1)⌋, i = J − 1 … 1
        u = _uniform_ref(key, TAG_EPOCH, e, J)
        out = np.arange(J)
        for i in range(J - 1, 0, -1):
            r = min(int(u[i] * (i + 1)), i)
            out[i], out[r] = out[r], out[i]
        return out

    perms = [perm(e) for e in range(4 * M + 1)]
    for n in range(4 * J):
        pos = n * M + np.arange(M)
        want = [perms[x // J][x % J] for x in pos]
        np.testing.assert_array_equal(batch_draws(key, n, M, p, sampling="epochs"), want,
                                      err_msg=f"step {n}")


# ---------------------------------------------------------------- statistics
def test_normals_moments_and_correlations():
    # 10⁶ normals; tolerances are 4 standard errors of exact N(0, 1) statistics
    key, step, N, J = 0x2545_F491_4F6C_DD1D, 3, 125_000, 8
    Z = noise_draws(key, step, N, J)
    z = Z.ravel()
    n = z.size
    assert abs(z.mean()) <= 4 / math.sqrt(n)
    assert abs(z.var() - 1.0) <= 4 * math.sqrt(2.0 / n)
    assert abs(np.mean(z**3)) <= 4 * math.sqrt(15.0 / n)  # Var(z³) = 15
    assert abs(np.mean(z**4) - 3.0) <= 4 * math.sqrt(96.0 / n)  # Var(z⁴) = 105 − 9
    lim = 4 / math.sqrt(N)
    pairs = {
        "within a Box–Muller pair": (Z[:, 0], Z[:, 1]),
        "the two words of a block": (Z[:, 0], Z[:, 2]),
        "two blocks of a particle": (Z[:, 0], Z[:, 4]),
        "neighbouring particles": (Z[:-1, 0], Z[1:, 0]),
        "next step": (Z[:, 0], noise_draws(key, step + 1, N, J)[:, 0]),
        "step + 2³²": (Z[:, 0], noise_draws(key, step + 2**32, N, J)[:, 0]),
        "next replica key": (Z[:, 0], noise_draws(key + 1, step, N, J)[:, 0]),
        "key + 2³²": (Z[:, 0], noise_draws(key + 2**32, step, N, J)[:, 0]),
    }
    for name, (a, b) in pairs.items():
        c = np.corrcoef(a, b)[0, 1]
        assert abs(c) <= lim, (name, c)
    # squares too: Box–Muller partners share a radius, anything else is independent
    assert abs(np.corrcoef(Z[:, 0] ** 2, Z[:, 2] ** 2)[0, 1]) <= lim
    assert abs(np.corrcoef(Z[:-1, 0] ** 2, Z[1:, 0] ** 2)[0, 1]) <= lim


def test_batch_uniforms_are_uniform():
    # 2·10⁵ iid draws over 16 atoms: counts within 4σ of the multinomial mean
    key, J, M, steps = 0x7FFF_FFFF_0000_0001, 16, 1000, 200
    p = np.full(J, 1.0 / J)
    atoms = np.concatenate([batch_draws(key, n, M, p) for n in range(steps)])
    n = atoms.size
    counts = np.bincount(atoms, minlength=J)
    assert np.all(np.abs(counts - n / J) <= 4 * math.sqrt(n / J * (1 - 1 / J))), counts
    # successive draws in a step are not correlated
    a = atoms.reshape(steps, M)
    c = np.corrcoef(a[:, :-1].ravel(), a[:, 1:].ravel())[0, 1]
    assert abs(c) <= 4 / math.sqrt(a[:, 1:].size)
