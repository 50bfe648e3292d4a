"""The three limit solvers agree on a nonlinear model (docs/theory.rst §4), within the reference's
Monte Carlo error, and the PDE converges under grid refinement."""

import numpy as np
import pytest

import meanfield as mf
from meanfield.limit import choose_method, solve_limit
from meanfield.limit.reference import reference_schedule


@pytest.mark.parametrize("mode", ["ode", "sde"])
def test_pde_quadrature_reference_agree_nonlinear(mode):
    """tanh, both layers, D = 2, teacher data.  Reference: 16 independent runs of 25 000
    particles (the reference solver's engine and step); their mean u_T has standard error
    se (per atom, from their spread).  pde (128²) and, for ode, quadrature must lie within
    5 se (t with 15 dof: P(|t| > 5) ≈ 2e-4 per atom).  The pde on 64², 128², 256² converges:
    successive differences shrink."""
    cfg = mf.parse_config({"data": {"n": 16},
                           "dynamics": {"mode": mode, "T": 1.0, "snapshots": 3},
                           "schedule": {"gamma": 0.1, "batch": 4},
                           "limit": {"method": "pde", "grid": 128, "dt": 0.005}})
    sched = reference_schedule(cfg if mode == "ode" else mf.with_values(cfg, {"limit.dt": None}))
    refs = mf.simulate(mf.with_values(cfg, {"run.N": 25_000, "run.seeds": 16}),
                       schedule=sched, save_weights=False)
    uT = refs.u[:, -1]
    mean, se = uT.mean(axis=0), uT.std(axis=0, ddof=1) / np.sqrt(len(uT))
    pde = {g: solve_limit(mf.with_values(cfg, {"limit.grid": g})).u[-1] for g in (64, 128, 256)}
    assert np.all(np.abs(pde[128] - mean) <= 5 * se)
    d1 = np.abs(pde[64] - pde[256]).max()
    d2 = np.abs(pde[128] - pde[256]).max()
    assert d2 < 0.5 * d1, (d1, d2)
    if mode == "ode":
        q = solve_limit(mf.with_values(cfg, {"limit.method": "quadrature"}))
        assert np.all(np.abs(q.u[-1] - mean) <= 5 * se)
        assert np.abs(q.u[-1] - pde[256]).max() < 5 * se.max()


def test_auto_method_choice():
    cfg = mf.parse_config({"dynamics": {"mode": "sde"}})
    assert choose_method(cfg, 2) == "pde"
    assert choose_method(cfg, 3) == "reference"
    assert choose_method(mf.with_values(cfg, {"schedule.beta": 0.5}), 3) == "quadrature"
    assert choose_method(mf.with_values(cfg, {"init.kind": "torch_default"}), 2) == "reference"
