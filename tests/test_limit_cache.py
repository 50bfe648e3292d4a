"""LimitCache: one solve per distinct limit problem; copies sent to workers start empty."""

import pickle

from meanfield.config import parse_config, with_values
from meanfield.limit.cache import LimitCache


def test_key_ignores_the_run_and_for_a_deterministic_limit_the_noise():
    det = parse_config({"schedule": {"beta": 0.5, "gamma": 0.1}, "run": {"N": 10}})
    other = with_values(det, {"run.N": 100, "run.seed": 3, "run.seeds": 5,
                              "schedule.gamma": 0.2, "schedule.beta": 0.25})
    assert LimitCache.key(det) == LimitCache.key(other)
    sto = parse_config({"dynamics": {"mode": "sde"}, "schedule": {"beta": 1.0, "gamma": 0.1}})
    assert LimitCache.key(sto) == LimitCache.key(with_values(sto, {"run.N": 7}))
    assert LimitCache.key(sto) != LimitCache.key(with_values(sto, {"schedule.gamma": 0.2}))


def test_get_solves_once_keeps_maxsize_and_pickles_empty(monkeypatch):
    solved = []

    def fake_solve(config, data=None):
        solved.append(config)
        return object()

    monkeypatch.setattr("meanfield.limit.solve_limit", fake_solve)
    cache = LimitCache(maxsize=2)
    cfg = parse_config({"dynamics": {"mode": "sde"}, "schedule": {"gamma": 0.1}})
    first = cache.get(cfg)
    assert cache.get(with_values(cfg, {"run.N": 50})) is first
    assert len(solved) == 1
    cache.get(with_values(cfg, {"schedule.gamma": 0.2}))
    cache.get(with_values(cfg, {"schedule.gamma": 0.3}))
    assert len(cache) == 2          # the oldest was dropped
    assert cache.get(cfg) is not first
    copy = pickle.loads(pickle.dumps(cache))
    assert len(copy) == 0
    assert copy.maxsize == 2
