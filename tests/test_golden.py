"""Golden digests: sha256 of the engine's output bits on small configs.

Not a correctness test (the engine is checked against the NumPy oracle, closed forms and
POT elsewhere): these pin the exact bits, so that a refactor can prove it moved none.
A change that is meant to move bits updates these digests in the same commit and says why
in the message (cached task results keyed by the old bits must then be invalidated too).

The table records the ``meanfield._version.RESULTS_FORMAT`` it belongs to
(``GOLDEN_FORMAT``), and a test asserts the two are equal, so new digests come with the
bump that keeps cached results of the old bits apart.

Regenerate (after an intended change): bump RESULTS_FORMAT, then
``python tests/test_golden.py`` prints ``GOLDEN_FORMAT`` and the ``GOLDEN`` table to paste
here; it refuses (exit status 1) when digests changed but RESULTS_FORMAT was not bumped.
"""

import hashlib
import sys

import numpy as np
import pytest

import meanfield as mf
from meanfield._version import RESULTS_FORMAT

TOY = {"data": {"kind": "teacher", "n": 24, "seed": 3}}


def _merge(*tables):
    out = {}
    for t in tables:
        for sec, vals in t.items():
            out.setdefault(sec, {}).update(vals)
    return out


# name -> (config mapping, couple with the limit)
CASES = {
    "sgd_tanh_both_f64_r1": ({"dynamics": {"mode": "sgd", "T": 1.0, "snapshots": 3},
                              "schedule": {"gamma": 0.05, "batch": 5},
                              "run": {"N": 100, "seeds": 1}}, False),
    "sgd_tanh_both_f32_r3": ({"dynamics": {"mode": "sgd", "T": 1.0, "snapshots": 3},
                              "schedule": {"gamma": 0.05, "batch": 7},
                              "run": {"N": 130, "seeds": 3, "dtype": "float32"}}, False),
    "sgd_epochs_l2": ({"dynamics": {"mode": "sgd", "T": 1.0, "snapshots": 3,
                                    "sampling": "epochs"},
                       "schedule": {"gamma": 0.05, "batch": 4, "alpha": 0.25},
                       "model": {"l2": 0.01}, "run": {"N": 60, "seeds": 1}}, False),
    "sde_indep_root_r3": ({"dynamics": {"mode": "sde", "T": 0.5, "snapshots": 3},
                           "schedule": {"gamma": 0.05, "batch": 2},
                           "run": {"N": 100, "seeds": 3}}, False),
    "sde_shared_sigmoid_r1": ({"dynamics": {"mode": "sde", "noise": "shared", "T": 0.5,
                                            "snapshots": 3},
                               "model": {"activation": "sigmoid"},
                               "schedule": {"gamma": 0.05, "batch": 2},
                               "run": {"N": 100, "seeds": 1}}, False),
    "sde_indep_atoms_2d_f32": ({"dynamics": {"mode": "sde", "T": 0.5, "snapshots": 3},
                                "data": {"input_dim": 2},
                                "schedule": {"gamma": 0.05, "batch": 2},
                                "run": {"N": 90, "seeds": 3, "dtype": "float32"}}, False),
    "ode_relu_first_3d": ({"dynamics": {"mode": "ode", "T": 0.5, "snapshots": 3},
                           "model": {"layers": "first", "activation": "relu"},
                           "data": {"input_dim": 3},
                           "schedule": {"gamma": 0.05}, "run": {"N": 70, "seeds": 1}}, False),
    "sgd_linear_mixture_ce": ({"dynamics": {"mode": "sgd", "T": 1.0, "snapshots": 3},
                               "model": {"activation": "linear", "loss": "cross_entropy"},
                               "data": {"kind": "gaussian_mixture", "classes": 3,
                                        "input_dim": 2, "n": 30},
                               "init": {"kind": "uniform", "scale": 0.5},
                               "schedule": {"gamma": 0.05, "batch": 6},
                               "run": {"N": 80, "seeds": 3}}, False),
    "sgd_logistic_first": ({"dynamics": {"mode": "sgd", "T": 1.0, "snapshots": 3},
                            "model": {"layers": "first", "activation": "sigmoid",
                                      "loss": "logistic"},
                            "data": {"kind": "gaussian_mixture", "classes": 2,
                                     "input_dim": 2, "n": 30},
                            "schedule": {"gamma": 0.05, "batch": 6},
                            "run": {"N": 50, "seeds": 1}}, False),
    "sgd_block_path": ({"dynamics": {"mode": "sgd", "T": 0.2, "snapshots": 2},
                        "schedule": {"gamma": 0.02, "batch": 5},
                        "run": {"N": 9000, "seeds": 1}}, False),
    "sde_block_path_2d": ({"dynamics": {"mode": "sde", "T": 0.1, "snapshots": 2},
                           "data": {"input_dim": 2},
                           "schedule": {"gamma": 0.02, "batch": 2},
                           "run": {"N": 9000, "seeds": 1}}, False),
    "digits_relu_ce": ({"dynamics": {"mode": "sgd", "T": 0.2, "snapshots": 2},
                        "model": {"activation": "relu", "loss": "cross_entropy"},
                        "data": {"kind": "digits", "n": 300},
                        "init": {"kind": "torch_default"},
                        "schedule": {"gamma": 0.01, "batch": 100},
                        "run": {"N": 1000, "seeds": 1}}, False),
    "coupled_sde_indep_pde": ({"dynamics": {"mode": "sde", "T": 0.3, "snapshots": 3},
                               "schedule": {"gamma": 0.05, "batch": 2},
                               "limit": {"method": "pde", "grid": 32},
                               "run": {"N": 100, "seeds": 3}}, True),
    "coupled_ode_quadrature": ({"dynamics": {"mode": "ode", "T": 0.3, "snapshots": 3},
                                "schedule": {"gamma": 0.05},
                                "limit": {"method": "quadrature"},
                                "run": {"N": 100, "seeds": 1}}, True),
    "coupled_sgd_beta_half_blocks": ({"dynamics": {"mode": "sgd", "T": 0.05, "snapshots": 2},
                                      "schedule": {"gamma": 0.05, "beta": 0.5, "batch": 5},
                                      "limit": {"method": "quadrature"},
                                      "run": {"N": 9000, "seeds": 1}}, True),
}


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:20]


def digests(name):
    """Return {array name: digest} of one case's run."""
    table, couple = CASES[name]
    cfg = mf.parse_config(_merge(TOY, table))
    limit = mf.solve_limit(cfg) if couple else None
    traj = mf.simulate(cfg, limit=limit)
    out = {"W": _digest(traj.W), "u": _digest(traj.u)}
    if couple:
        out["coupling_sq"] = _digest(traj.coupling_sq)
    return out


GOLDEN_FORMAT = 2  # the RESULTS_FORMAT whose bits GOLDEN pins
GOLDEN = {
    "sgd_tanh_both_f64_r1": {"W": "6399c68f6bbaab820059", "u": "f49c4e1811f1b059c0b3"},
    "sgd_tanh_both_f32_r3": {"W": "88d6d096ee2ab9e69377", "u": "d63b2b34026dc3dfe300"},
    "sgd_epochs_l2": {"W": "d1cf0ac3a0768cef4fd8", "u": "cd2eb837b181f31967ed"},
    "sde_indep_root_r3": {"W": "c3291089ec7eee4d62dd", "u": "c964a1370702a7674d75"},
    "sde_shared_sigmoid_r1": {"W": "de7483cab175cb2cb1af", "u": "3d36dce96afbf7da7097"},
    "sde_indep_atoms_2d_f32": {"W": "39d19c9d16822be8769a", "u": "20a0447ea3d9d2788282"},
    "ode_relu_first_3d": {"W": "13b05f07391747c49e7e", "u": "b135036ec0bc0e35d2f8"},
    "sgd_linear_mixture_ce": {"W": "abb5bf7653278222f8ab", "u": "002df6eb9ebe46a55d41"},
    "sgd_logistic_first": {"W": "d0d10846e69fbef8c789", "u": "ef62903308ddb83e0637"},
    "sgd_block_path": {"W": "2b26c2c4cf3d50f3d17a", "u": "c1d203da2a5aa1b8f5c7"},
    "sde_block_path_2d": {"W": "9b19e777606cc7eff5c0", "u": "dd71da6f126b35660c83"},
    "digits_relu_ce": {"W": "a58d7078971aa14b7d9a", "u": "43246372f8f0a899fc2e"},
    "coupled_sde_indep_pde": {"W": "00497f74912c57cabf00", "u": "b18ed4c49bfd37b8ee8d",
                              "coupling_sq": "a6416b05579b1c615adc"},
    "coupled_ode_quadrature": {"W": "943cb8e06f89c893f2b2", "u": "4af3a3ab674fdf49e35c",
                               "coupling_sq": "7aecb2f9415bcc8073be"},
    "coupled_sgd_beta_half_blocks": {"W": "62bd3a6f466321b13d94", "u": "e15f48618d2673dcc22a",
                                     "coupling_sq": "72f3498d1df0a7e28f2d"},
}


def test_golden_table_belongs_to_this_results_format():
    assert GOLDEN_FORMAT == RESULTS_FORMAT, (
        "the golden digests and meanfield._version.RESULTS_FORMAT change together")
    assert sorted(GOLDEN) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_digest(name):
    assert digests(name) == GOLDEN[name]


def _regenerate():
    """Print the table for this RESULTS_FORMAT; return 1 if bits moved without a bump."""
    print(f"GOLDEN_FORMAT = {RESULTS_FORMAT}  # the RESULTS_FORMAT whose bits GOLDEN pins")
    moved = []
    for case in CASES:
        d = digests(case)
        if d != GOLDEN.get(case):
            moved.append(case)
        print(f"    {case!r}: {d!r},", flush=True)
    if moved and RESULTS_FORMAT == GOLDEN_FORMAT:
        print(f"error: bits moved ({', '.join(moved)}) but RESULTS_FORMAT is still "
              f"{RESULTS_FORMAT}: bump it in meanfield/_version.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_regenerate())
