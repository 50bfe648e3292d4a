"""Stopping a run: the engine's snapshot segments run as bounded compiled calls.

Signals reach Python between the engine's compiled calls, which split each snapshot
segment into bounded pieces of work (``engine.CALL_WORK``) without moving a bit.
"""

import numpy as np
import pytest

from meanfield import engine
from meanfield.config import parse_config
from meanfield.limit import solve_limit

# ---------------------------------------------------------------- splitting segments
BIT_CASES = {
    "sgd_epochs_replicas": ({"dynamics": {"mode": "sgd", "T": 1.5, "snapshots": 3,
                                          "sampling": "epochs"},
                             "schedule": {"gamma": 0.05, "batch": 5},
                             "run": {"N": 60, "seeds": 2}}, False, False),
    "sde_atoms_2d_f32_record_u": ({"dynamics": {"mode": "sde", "T": 1.0, "snapshots": 3},
                                   "data": {"input_dim": 2},
                                   "schedule": {"gamma": 0.05, "batch": 2},
                                   "run": {"N": 50, "seeds": 3, "dtype": "float32"}},
                                  False, True),
    "sde_block_path_record_u": ({"data": {"n": 128},
                                 "dynamics": {"mode": "sde", "T": 0.2, "snapshots": 3},
                                 "schedule": {"gamma": 0.01, "batch": 2},
                                 "run": {"N": 600, "seeds": 1}}, False, True),
    "coupled_ode_record_u": ({"dynamics": {"mode": "ode", "T": 1.0, "snapshots": 3},
                              "schedule": {"gamma": 0.05}, "limit": {"method": "quadrature"},
                              "run": {"N": 40, "seeds": 2}}, True, True),
}


@pytest.mark.parametrize("per_call", [1, 7])
@pytest.mark.parametrize("name", sorted(BIT_CASES))
def test_split_segments_move_no_bit(monkeypatch, name, per_call):
    """A run whose every compiled call does 1 (or 7) steps equals the default run bitwise:
    W, u, metrics, coupling and the mean field of every step (record_u)."""
    table, couple, record_u = BIT_CASES[name]
    cfg = parse_config({**table, "data": {"n": 24, "seed": 3, **table.get("data", {})}})
    limit = solve_limit(cfg) if couple else None
    whole = engine.simulate(cfg, limit=limit, record_u=record_u)
    steps = np.diff(whole.steps)
    assert steps.min() > per_call  # the default does each segment in one call; this does not
    if per_call == 1:
        monkeypatch.setattr(engine, "CALL_WORK", 1)
        assert engine.call_steps(cfg.run.seeds, cfg.run.N, 30, 3, coupled=couple) == 1
    else:
        monkeypatch.setattr(engine, "call_steps", lambda *a, **k: per_call)
    split = engine.simulate(cfg, limit=limit, record_u=record_u)
    for field in ("W", "u", "risk", "coupling_sq", "coupling_rms", "output_error", "u_steps"):
        a, b = getattr(whole, field), getattr(split, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert a.tobytes() == b.tobytes(), field


def test_call_budget_bounds_work_per_call():
    work, pad_n, pad_a = engine.CALL_WORK, engine.CALL_PAD_N, engine.CALL_PAD_A
    assert engine.call_steps(1, 10**5, 16, 2) == work // (10**5 * (16 + pad_a) * 2)
    assert engine.call_steps(1, 10**9, 300, 65) == 1  # at least one step
    assert engine.call_steps(2, 10, 8, 2) == work // (2 * pad_n * (8 + pad_a) * 2)
    assert engine.call_steps(3, 1000, 10, 3, coupled=True) == work // (2 * 3000 * 18 * 3)
