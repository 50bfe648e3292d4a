"""Refit the float64 tanh polynomial of ``meanfield._kernels.fastmath._tanh64`` (needs ``mpmath``).

expm1(2h) = h (2 + h T(h)) on |h| ≤ ln2/4 with T of degree 9.  Lawson's iteratively
reweighted least squares on 160 Chebyshev nodes approaches the minimax fit of the relative
error, in 50-digit arithmetic; each coefficient is rounded to float64 in turn and the
remaining ones are refitted around it, so the rounding error of one is absorbed by the next.
Prints the coefficients (``fastmath._T64``) and the maximum relative error in float64 ulp of
the rounded polynomial evaluated exactly (the float64 evaluation adds its own rounding).

    pip install mpmath && python scripts/fit_tanh.py
"""

import mpmath as mp

mp.mp.dps = 50
DEG = 9
H = mp.log(2) / 4
NODES = [H * mp.cos(mp.pi * (i + 0.5) / 160) for i in range(160)]
EXACT = [mp.expm1(2 * h) for h in NODES]


def _poly(c, h):
    return h * (2 + h * sum(c[j] * h**j for j in range(len(c))))


def _refit(fixed, weights):
    """Least squares for the free coefficients of T, relative error weighted by ``weights``."""
    m = DEG + 1 - len(fixed)
    A, b = mp.matrix(len(NODES), m), mp.matrix(len(NODES), 1)
    for i, (h, e) in enumerate(zip(NODES, EXACT, strict=True)):
        w = mp.sqrt(weights[i]) / e
        known = sum(fixed[j] * h**j for j in range(len(fixed)))
        for j in range(m):
            A[i, j] = w * h ** (2 + len(fixed) + j)
        b[i] = w * (e - 2 * h - h * h * known)
    return list(mp.lu_solve(A.T * A, A.T * b))


def fit():
    fixed = [mp.mpf(2)]  # T(0) = 2 makes the h^2 term of expm1(2h) exact
    while len(fixed) < DEG + 1:
        weights = [mp.mpf(1)] * len(NODES)
        for _ in range(25):  # Lawson: weight ∝ weight · error, converging to equioscillation
            c = fixed + _refit(fixed, weights)
            err = [abs(_poly(c, h) / e - 1) for h, e in zip(NODES, EXACT, strict=True)]
            total = sum(w * r for w, r in zip(weights, err, strict=True))
            weights = [w * r / total for w, r in zip(weights, err, strict=True)]
        fixed.append(mp.mpf(float(c[len(fixed)])))
    return [float(x) for x in fixed]


if __name__ == "__main__":
    c = fit()
    print("_T64 =", tuple(c))
    grid = [h for h in mp.linspace(-H, H, 4001) if h != 0]
    worst = max(abs(_poly([mp.mpf(x) for x in c], h) / mp.expm1(2 * h) - 1) for h in grid)
    print("max relative error", mp.nstr(worst / mp.mpf(2) ** -53, 3), "ulp")
