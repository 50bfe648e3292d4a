"""Time one SGD step of the toy model: meanfield's engine beside NumPy (and PyTorch) loops.

Toy: layers = both, tanh, input_dim = 1, 64 atoms, M = 10, float64, one replica. Each
loop runs the same math; the engine's time per step is the difference of two runs with
different step counts (so compile, init and snapshots cancel). Ratios in parentheses are
comparator time / meanfield time (> 1: meanfield is faster).

    python scripts/bench.py [--sizes 100 10000 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _toy_config(N, steps, mode="sgd", dtype="float64"):
    import meanfield as mf

    return mf.parse_config({
        "data": {"n": 64, "input_dim": 1},
        "schedule": {"gamma": 1.0, "beta": 1.0, "batch": 10},
        "dynamics": {"mode": mode, "T": float(steps) * 1e-3, "snapshots": 2},
        "run": {"N": N, "dtype": dtype},
    }), 1e-3


def time_engine(N, steps, mode="sgd", dtype="float64"):
    """Seconds per step of meanfield.simulate (difference of a long and a short run)."""
    import meanfield as mf

    # γ = 1e-3 at β = 1 makes γ_{α,N} = 1e-3: T = steps · 1e-3 gives `steps` steps.
    def run(n):
        cfg, _ = _toy_config(N, n, mode, dtype)
        cfg = mf.with_values(cfg, {"schedule.gamma": 1e-3})
        t0 = time.perf_counter()
        mf.simulate(cfg, save_weights=False)
        return time.perf_counter() - t0

    run(2)  # compile / warm cache
    short = float(np.median([run(steps // 10) for _ in range(3)]))
    long_ = float(np.median([run(steps) for _ in range(3)]))
    return (long_ - short) / (steps - steps // 10)


def time_numpy(N, steps, seed=0):
    """Seconds per step of a vectorised NumPy SGD loop on the same model."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal(64), np.tanh(2 * rng.standard_normal(64))
    a, b = rng.standard_normal(N), rng.standard_normal(N)
    eta, M = 1e-3, 10
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = rng.integers(0, 64, M)
        x, y = X[idx], Y[idx]
        t = np.tanh(np.outer(b, x))
        g = (a @ t) / N - y
        ga = t @ g / M
        gb = a * (((1.0 - t * t) * x) @ g) / M
        a -= eta * ga
        b -= eta * gb
    return (time.perf_counter() - t0) / steps


def time_torch(N, steps, seed=0):
    """Seconds per step of the paper's stack: torch autograd + torch.optim.SGD."""
    import torch

    torch.manual_seed(seed)
    X, Y = torch.randn(64, 1, dtype=torch.float64), torch.tanh(2 * torch.randn(64, 1,
                                                                         dtype=torch.float64))
    b = torch.randn(N, 1, dtype=torch.float64, requires_grad=True)
    a = torch.randn(N, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([a, b], lr=1e-3 * N)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, 64, (10,))
        out = torch.tanh(X[idx] @ b.T) @ a / N
        loss = 0.5 * ((out - Y[idx, 0]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def time_torch_manual(N, steps, seed=0):
    """Seconds per step of a PyTorch loop with hand-written gradients under no_grad."""
    import torch

    g = torch.Generator().manual_seed(seed)
    X = torch.randn(64, dtype=torch.float64, generator=g)
    Y = torch.tanh(2 * torch.randn(64, dtype=torch.float64, generator=g))
    a = torch.randn(N, dtype=torch.float64, generator=g)
    b = torch.randn(N, dtype=torch.float64, generator=g)
    eta, M = 1e-3, 10
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            idx = torch.randint(0, 64, (M,), generator=g)
            x, y = X[idx], Y[idx]
            t = torch.tanh(torch.outer(b, x))
            r = (a @ t) / N - y
            ga = t @ r / M
            gb = a * (((1.0 - t * t) * x) @ r) / M
            a -= eta * ga
            b -= eta * gb
    return (time.perf_counter() - t0) / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000, 1_000_000])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(numba.get_num_threads())
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"threads = {numba.get_num_threads()}; seconds per SGD step (toy, float64)")
    print("| N | meanfield | meanfield f32 | NumPy | torch autograd + SGD | torch manual |")
    print("|---:|---:|---:|---:|---:|---:|")
    for N in args.sizes:
        steps = max(50, min(20000, int(5e7 / N)))
        mf64 = time_engine(N, steps)
        mf32 = time_engine(N, steps, dtype="float32")
        npy = time_numpy(N, max(5, steps // 4))
        tch = time_torch(N, max(5, steps // 4)) if have_torch else float("nan")
        tman = time_torch_manual(N, max(5, steps // 4)) if have_torch else float("nan")
        cells = [f"{t:.2e} ({t / mf64:.1f}×)" for t in (npy, tch, tman)]
        print(f"| {N} | {mf64:.2e} | {mf32:.2e} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
