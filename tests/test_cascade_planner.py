"""The planner's statistical pieces, each on its own, and the planner on a LightGBM pipeline
with a scaler (refitted transforms, Booster probabilities, the interpreted cost backend)."""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import mloc_ir
from passes.planner.knapsack import candidate_sets, knapsack
from passes.planner.models import confidence, find_model, predicted_class
from passes.planner.threshold import choose_threshold, lower_bound, rows_needed
from runtime.cascade import NEVER


def test_clopper_pearson_lower_bound():
    # the bound is the p at which seeing >= k successes has probability alpha
    for k, n in [(95, 100), (999, 1000), (5000, 5000), (1, 10)]:
        p = lower_bound(k, n, 0.05)
        assert binom.sf(k - 1, n, p) == pytest.approx(0.05, abs=1e-6)
    assert lower_bound(0, 10, 0.05) == 0.0
    assert lower_bound(3000, 3000, 0.05) == pytest.approx(0.05 ** (1 / 3000))
    n = rows_needed(0.999, 0.05)
    assert lower_bound(n, n, 0.05) >= 0.999 > lower_bound(n - 1, n - 1, 0.05)


def test_threshold_is_fixed_sequence_and_certified():
    rng = np.random.default_rng(0)
    n = 20000
    conf = rng.uniform(0.5, 1.0, n)
    # disagreements only among low-confidence rows
    agree = ~((conf < 0.7) & (rng.random(n) < 0.3))
    choice = choose_threshold(conf, agree, 0.999, 0.05, 2)
    assert choice.threshold is not None
    confident = conf >= choice.threshold
    d = np.count_nonzero(confident & ~agree)
    assert lower_bound(n - d, n, 0.05) >= 0.999
    assert choice.lower_bound >= 0.999 and choice.confident_fraction == confident.mean()
    # the next threshold down in the grid would break the target, or there is none
    assert choice.threshold >= 0.7 - 0.01


def test_threshold_none_when_too_few_rows():
    conf = np.ones(100)
    choice = choose_threshold(conf, np.ones(100, bool), 0.999, 0.05, 2)
    assert choice.threshold is None and choice.lower_bound < 0.999


def test_threshold_stops_at_the_first_failure():
    # disagreements at high confidence block every lower threshold, however many rows agree there
    conf = np.full(10000, 0.6)
    conf[:20] = 0.995
    agree = np.ones(10000, bool)
    agree[:20] = False
    choice = choose_threshold(conf, agree, 0.999, 0.05, 2)
    assert choice.threshold > 0.995 and choice.confident_fraction == 0.0


def test_knapsack_is_optimal_on_small_cases():
    rng = np.random.default_rng(1)
    for _ in range(30):
        g = int(rng.integers(1, 8))
        costs, values = rng.uniform(0.1, 1, g), rng.normal(0.5, 0.5, g)
        budget = float(rng.uniform(0.1, 3))
        chosen = knapsack(costs, values, budget)
        assert costs[chosen].sum() <= budget + 1e-9
        best = 0.0
        for mask in range(1 << g):
            idx = [i for i in range(g) if mask >> i & 1]
            if costs[idx].sum() <= budget * (1 - 1.0 / 400 * g):  # rounding slack
                best = max(best, values[idx][values[idx] > 0].sum())
        assert values[chosen].sum() >= best - 1e-9
        assert all(values[i] > 0 for i in chosen)


def test_candidate_sets_are_distinct_proper_subsets():
    sets = candidate_sets([1.0, 1.0, 8.0, 0.001], [0.5, 0.1, 2.0, 0.0])
    assert sets and all(0 < len(c) < 4 for _, c in sets)
    assert len({tuple(c) for _, c in sets}) == len(sets)
    assert [0] in [c for _, c in sets]
    assert all(3 not in c for _, c in sets)  # no importance: never chosen


def test_confidence_and_classes():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_array_equal(confidence(p), [0.9, 0.5, 0.9])
    np.testing.assert_array_equal(predicted_class(p), [0, 0, 1])
    m = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    np.testing.assert_array_equal(confidence(m), [0.5, 0.6])
    np.testing.assert_array_equal(predicted_class(m), [1, 0])


# -- a LightGBM pipeline through a scaler ------------------------------------------------------

def data(n, seed):
    r = np.random.default_rng(seed)
    cols = {k: r.normal(size=n) for k in ("a", "b", "c")}
    cols["zone"] = r.integers(0, 5, n)
    logit = 2.5 * cols["a"] + 0.5 * np.abs(cols["b"]) * cols["b"] + 0.3 * cols["c"]
    y = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return cols, y


RISK = {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4}


def features(cols):
    risk = np.array([RISK.get(z, 0.5) for z in cols["zone"]])
    return np.column_stack([cols["a"] * 1.0, np.abs(cols["b"]) * cols["b"], np.exp(cols["c"]) - 1.0, risk])


_c, _yy = data(3000, 1)
SCALER = StandardScaler().fit(features(_c))
BOOSTER = lgb.train({"objective": "binary", "num_leaves": 8, "verbosity": -1, "num_threads": 1,
                     "seed": 0, "deterministic": True},
                    lgb.Dataset(SCALER.transform(features(_c)), _yy), num_boost_round=30)


def predict(a, b, c, zone):
    risk = np.array([RISK.get(z, 0.5) for z in zone])
    X = np.column_stack([a * 1.0, np.abs(b) * b, np.exp(c) - 1.0, risk])
    return BOOSTER.predict(SCALER.transform(X))


def test_booster_behind_a_scaler_interpreted_backend():
    g = mloc_ir.parse(predict)
    info = find_model(g)
    assert info.task == "binary"
    cols, y = data(8000, 2)
    cp = mloc_ir.compile(predict, train=(cols, y), cascades=True, accuracy_target=0.99,
                         backend="interpreted", min_speedup=0.0, budgets=(0.3, 0.6))
    r = cp.report
    assert r.backend == "interpreted" and len(r.groups) == 4
    assert cp.approx is not None, r.no_cascade
    ag = cp.approx.graph
    assert len(ag.find("transform")) == 1  # the scaler, refitted on the chosen columns
    (t,) = ag.find("transform")
    assert t.attrs["transformer"].obj is not SCALER
    assert ag[t.args[0]].op == "stack" and ag[t.args[0]].type.width < 4
    test, _ = data(5000, 3)
    ref = predict(**test)
    np.testing.assert_array_equal(cp.with_threshold(NEVER)(**test), ref)
    agreement = np.mean((cp(**test) > 0.5) == (ref > 0.5))
    assert agreement >= 0.99


_rng_unused = np.random.default_rng(3)
_XU = _rng_unused.normal(size=(2000, 3))
_XU[:, 2] = 1.0  # a constant training column: no tree splits on it
UNUSED_MODEL = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7,
                          "num_threads": 1, "seed": 0},
                         lgb.Dataset(_XU, (_XU[:, 0] + 0.3 * _XU[:, 1] > 0).astype(int)), 20)


def predict_with_unread(a, b, c):
    X = np.column_stack([a * 2.0, np.abs(b), c + 1.0])
    return UNUSED_MODEL.predict(X)


def test_plan_with_a_column_the_model_never_reads():
    """Dead feature elimination turns the unread column into a constant; planning (costs,
    permutation importance, cascade) must take groups with constant parts in stride."""
    rng = np.random.default_rng(4)
    n = 3000
    cols = {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)}
    y = (cols["a"] > 0).astype(int)
    cp = mloc_ir.compile(predict_with_unread, train=(cols, y), cascades=True, top_k=20,
                         accuracy_target=0.99, backend="interpreted", min_speedup=0.0,
                         budgets=(0.5,), progress=False)
    names = {g.name for g in cp.report.groups}
    assert len(names) == 3
    np.testing.assert_array_equal(cp.with_threshold(NEVER)(**cols), predict_with_unread(**cols))


def test_planner_fits_run_on_one_thread_and_keep_the_users_setting():
    from sklearn.base import BaseEstimator

    from passes.planner.models import fit_on_one_thread

    class Recorder(BaseEstimator):
        def __init__(self, n_jobs=-1):
            self.n_jobs = n_jobs

        def fit(self, X, y, sample_weight=None):
            self.fit_jobs_ = self.n_jobs
            return self

    est = fit_on_one_thread(Recorder(n_jobs=-1), np.zeros((3, 1)), np.zeros(3))
    assert est.fit_jobs_ == 1 and est.n_jobs == -1


def test_calibration_share_grows_to_what_the_target_needs():
    """At 0.999 certifying needs ~3,000 calibration rows (one candidate is certified, with all
    of alpha): of 5,000 planning rows the default half could never certify, so the planner
    takes more."""
    from passes.planner.core import ALPHA
    from passes.planner.threshold import rows_needed
    rng = np.random.default_rng(5)
    n = 5000
    cols = {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)}
    y = (cols["a"] > 0).astype(int)
    need = rows_needed(0.999, ALPHA)
    assert n // 2 < need <= int(0.7 * n)
    cp = mloc_ir.compile(predict_with_unread, train=(cols, y), cascades=True,
                         accuracy_target=0.999, backend="interpreted", min_speedup=0.0,
                         budgets=(0.2, 0.4, 0.6), progress=False, importance_rows=300,
                         repeats=1, timing_rows=300)
    assert cp.report.n_calibration >= need


def test_one_candidate_certified_the_one_validation_expects_cheapest():
    """Candidates are compared on the fit rows (validation coverage, measured costs); only the
    cheapest there is certified on the calibration rows, so its test keeps all of alpha."""
    cols, y = data(8000, 6)
    cp = mloc_ir.compile(predict, train=(cols, y), cascades=True, accuracy_target=0.99,
                         backend="interpreted", min_speedup=0.0, budgets=(0.2, 0.4, 0.6, 0.8),
                         progress=False, importance_rows=500, repeats=1, timing_rows=500)
    cands = cp.report.candidates
    assert len(cands) >= 2
    certified = [i for i, c in enumerate(cands) if c.agreement_bound is not None]
    assert len(certified) == 1
    best = min(range(len(cands)), key=lambda i: cands[i].validation_cost)
    assert certified == [best]
    assert all("not certified" in c.note for i, c in enumerate(cands) if i != best)
    if cp.approx is not None:
        assert cp.report.cascade == best
