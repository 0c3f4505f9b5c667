"""The approximate model's cost in the planner's choice (``passes.planner.approx``, ``core``):
smaller tree variants are offered, the choice weighs measured cost against coverage, larger
variants are skipped when they cannot win, the top-K filter takes the cheapest model that meets
its precision, and the calibration rows train, time and choose nothing."""
from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, \
    RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

import mloc_ir
from passes.planner import approx, core
from passes.planner.threshold import allowed_rate, lower_bound
from passes.topk import descending_order

ONE_THREAD = {"verbosity": -1, "num_threads": 1, "seed": 0, "deterministic": True}


def _xy(n=400, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-2 * X[:, 0] - X[:, 1]))
    return X, (r.random(n) < p).astype(int), p


# -- variants ---------------------------------------------------------------------------------

def test_smaller_sizes_and_scaled_rates():
    assert approx.smaller_sizes(1000) == [50, 125, 333]
    assert approx.smaller_sizes(60) == [4, 8, 20]  # at least MIN_TREES
    assert approx.smaller_sizes(5) == [4] and approx.smaller_sizes(4) == []
    assert approx.scaled_rate(0.02, 1000, 50) == pytest.approx(0.4)
    assert approx.scaled_rate(0.05, 500, 25) == approx.MAX_LEARNING_RATE  # capped
    assert approx.scaled_rate(0.8, 100, 10) == 0.8  # never below the user's own


def test_booster_variants_with_fewer_trees():
    X, y, p = _xy()
    booster = lgb.train({"objective": "binary", "learning_rate": 0.05, **ONE_THREAD},
                        lgb.Dataset(X, y), 100)
    vs = approx.variants(booster)
    assert [v.name for v in vs] == ["refit on labels", "distilled", "distilled, 5 of 100 trees",
                                    "distilled, 12 of 100 trees", "distilled, 33 of 100 trees"]
    assert [v.size for v in vs] == [1.0, 1.0, 0.05, 0.12, 0.33]
    small = vs[2].fit(X, y, p)
    assert small.current_iteration() == 5 and small.params["learning_rate"] == 0.5
    assert approx.probabilities(small, X).shape == (400, 2)
    # a Booster loaded from a file carries num_iterations in its params: it must not win
    loaded = lgb.Booster(model_str=booster.model_to_string())
    assert loaded.params.get("num_iterations") == 100
    assert approx.variants(loaded)[2].fit(X, y, p).current_iteration() == 5
    assert [v.name for v in approx.variants(booster, tree_fractions=())] == \
        ["refit on labels", "distilled"]


def test_sklearn_tree_ensembles_get_fewer_estimators():
    X, y, p = _xy()
    rf = RandomForestClassifier(n_estimators=40, random_state=0).fit(X, y)
    v = [v for v in approx.variants(rf) if v.name == "distilled, 5 of 40 trees"][0]
    assert len(v.fit(X, y, p).estimators_) == 5
    gb = GradientBoostingClassifier(n_estimators=40, learning_rate=0.1).fit(X, y)
    small = approx.variants(gb)[2].fit(X, y, p)
    assert small.n_estimators_ == 4 and small.learning_rate == pytest.approx(0.5)
    with threadpool_limits(1):  # OpenMP threads crawl on a busy machine
        hgb = HistGradientBoostingClassifier(max_iter=40, early_stopping=False).fit(X, y)
        assert approx.variants(hgb)[2].fit(X, y, p).n_iter_ == 4
    lgbm = lgb.LGBMClassifier(n_estimators=80, n_jobs=1, verbose=-1).fit(X, y)
    names = [v.name for v in approx.variants(lgbm)]
    assert names[:3] == ["refit on labels", "distilled", "distilled, 4 of 80 trees"]
    assert approx.variants(lgbm)[2].fit(X, y, p).booster_.current_iteration() == 4
    lr = LogisticRegression().fit(X, y)  # cost set by the columns, not the variant
    assert all(v.size is None for v in approx.variants(lr))


# -- the choice -------------------------------------------------------------------------------

class _Const:
    """Answers class 1 with probability ``q`` on every row; ``tag`` names the variant."""

    def __init__(self, tag, q=0.9):
        self.tag, self.q = tag, q

    def predict_proba(self, X):
        return np.column_stack([np.full(X.shape[0], 1 - self.q), np.full(X.shape[0], self.q)])


def _setup(n=1000):
    X = np.zeros((n, 1))
    return X, np.ones(n), np.c_[np.zeros(n), np.ones(n)], np.ones(n, int)


def _variant(name, size, calls, model_q=0.9):
    def fit(X, y, p):
        calls.append((name, X.shape[0]))
        return _Const(name, model_q)
    return approx.Variant(name, fit, size)


def test_cost_aware_choice_takes_the_cheaper_model_at_similar_coverage():
    X, y, proba, cls = _setup()
    calls = []
    cost = {"big": 10e-6, "small": 1e-6}
    full = 20e-6

    def assess(v, model, val, cov):
        return approx.Assessment(cost[v.name], cost[v.name] + (1 - cov) * full,
                                 len(val) * cost[v.name], 2.0)
    choice = approx.choose([_variant("big", 1.0, calls), _variant("small", 0.1, calls)], X, y,
                           proba, cls, 0.99, assess=assess, want_topk=True)
    assert choice.name == "small" and choice.model.tag == "small"
    assert choice.topk_name == "small" and choice.topk_model is choice.model
    assert [t.name for t in choice.trials] == ["small", "big"]  # smallest first
    assert choice.scores == {"small": 1.0, "big": 1.0}
    n_val = int(1000 * approx.VALIDATION_FRACTION)
    assert calls == [("small", 1000 - n_val), ("big", 1000 - n_val), ("small", 1000)]
    # without costs the tie on coverage goes to the first variant tried
    plain = approx.choose([_variant("big", 1.0, []), _variant("small", 0.1, [])], X, y,
                          proba, cls, 0.99)
    assert plain.name == "small"


def test_cascade_and_filter_may_pick_different_models():
    X, y, proba, cls = _setup()
    calls = []

    def assess(v, model, val, cov):  # big answers more rows, small ranks more cheaply
        return {"big": approx.Assessment(5e-6, 6e-6, 9.0, 3.0),
                "small": approx.Assessment(1e-6, 8e-6, 2.0, 9.0)}[v.name]
    choice = approx.choose([_variant("big", 1.0, calls), _variant("small", 0.1, calls)], X, y,
                           proba, cls, 0.99, assess=assess, want_topk=True)
    assert (choice.name, choice.topk_name) == ("big", "small")
    assert [c for c in calls if c[1] == 1000] == [("big", 1000), ("small", 1000)]


def test_prune_skips_a_variant_before_fitting_it():
    X, y, proba, cls = _setup()
    calls = []
    seen = []

    def prune(v, done):
        seen.append((v.name, [t.name for t in done]))
        return "skipped: too big" if v.size == 1.0 else None

    def assess(v, model, val, cov):
        return approx.Assessment(1e-6, 1e-6, None, None)
    choice = approx.choose([_variant("big", 1.0, calls), _variant("small", 0.1, calls)], X, y,
                           proba, cls, 0.99, assess=assess, prune=prune)
    assert choice.name == "small" and ("big", 750) not in calls
    assert seen == [("small", []), ("big", ["small"])]
    assert choice.trials[1].note == "skipped: too big"


def test_coverage_at_the_rate_the_certificate_allows():
    conf = np.linspace(1.0, 0.5, 1000)
    agree = np.ones(1000, bool)
    agree[[100, 300]] = False
    assert approx.coverage(conf, agree, 0.999) == 0.3  # one disagreement allowed
    assert approx.coverage(conf, agree, 0.999, allowed_rate=0.0) == 0.1
    for n in (4800, 30000):
        r = allowed_rate(0.999, n, 0.05)
        d = round(r * n)
        assert lower_bound(n - d, n, 0.05) >= 0.999 > lower_bound(n - d - 1, n, 0.05)
    assert allowed_rate(0.999, 30000, 0.05) > 0
    assert allowed_rate(0.999, 1000, 0.05) == 0.0  # too few rows to certify anything


# -- the planner on a LightGBM pipeline whose model is the whole cost ---------------------------

def _data(n, seed):
    r = np.random.default_rng(seed)
    cols = {k: r.normal(size=n) for k in ("a", "b", "c", "d")}
    logit = 2.0 * cols["a"] + np.sin(2 * cols["b"]) + 0.3 * cols["c"] * cols["d"]
    return cols, (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


_c, _y = _data(3000, 1)
BOOSTER = lgb.train({"objective": "binary", "learning_rate": 0.05, "num_leaves": 15,
                     **ONE_THREAD},
                    lgb.Dataset(np.column_stack([_c["a"], _c["b"], _c["c"], _c["d"]]), _y), 200)


def trees(a, b, c, d):
    return BOOSTER.predict(np.column_stack([a * 1.0, b * 1.0, c * 1.0, d * 1.0]))


PLAN = dict(backend="interpreted", budgets=(0.6,), importance_rows=500, repeats=1,
            timing_rows=500, progress=False)


@pytest.fixture(scope="module")
def planned():
    cols, y = _data(8000, 2)
    # compiled: the backend that will run it (interpreted, a LightGBM call's fixed cost hides
    # the trees')
    return mloc_ir.compile(trees, train=(cols, y), cascades=True, accuracy_target=0.99,
                           top_k=50, min_speedup=0.0, **{**PLAN, "backend": "compiled"})


def test_planner_offers_and_picks_smaller_tree_models(planned):
    cand = planned.report.candidates[0]
    names = [t["name"] for t in cand.approx_trials]
    assert "distilled, 10 of 200 trees" in names and "refit on labels" in names
    assert cand.approx_model.endswith("of 200 trees"), planned.explain()
    assert cand.topk_model.endswith("of 200 trees")
    measured = [t for t in cand.approx_trials if not t["note"]]
    assert all(t["stage1_cost"] > 0 and t["cascade_cost"] is not None and
               t["topk_cost"] is not None for t in measured)
    chosen = [t for t in measured if t["name"] == cand.approx_model][0]
    assert chosen["cascade_cost"] == min(t["cascade_cost"] for t in measured)
    by_size = sorted(measured, key=lambda t: t["size"])
    assert by_size[0]["name"] == "distilled, 10 of 200 trees"
    assert by_size[0]["stage1_cost"] < by_size[-1]["stage1_cost"]
    assert "models tried (validation rows)" in planned.explain()


def test_smaller_cascade_meets_its_target_on_fresh_rows(planned):
    if planned.approx is None:
        pytest.skip(planned.report.no_cascade)
    test, _ = _data(20000, 3)
    ref = trees(**test)
    assert np.mean((planned(**test) > 0.5) == (ref > 0.5)) >= 0.99


def test_cheap_filter_meets_precision_on_fresh_batches(planned):
    assert planned.topk_approx is not None, planned.report.no_topk
    precisions = []
    for seed in (4, 5, 6):
        test, _ = _data(4000, seed)
        idx, _ = planned.top_k(50, **test)
        # the full pipeline scores only the candidates the plan's ratio keeps (how many that
        # is follows measured costs: a cheap full pipeline makes a generous ratio worth it)
        kept = planned.last_stats["stage2_rows"]
        assert kept == min(4000, math.ceil(planned.ratio(50, 4000) * 50)) and kept < 4000
        true = descending_order(trees(**test))[:50]
        precisions.append(len(set(idx.tolist()) & set(true.tolist())) / 50)
    # the guarantee is per batch with 95% probability: two of three batches failing would have
    # a chance below 1% if it holds
    assert sum(p >= 0.95 for p in precisions) >= 2 and min(precisions) >= 0.9, precisions


def test_calibration_rows_train_time_and_choose_nothing(monkeypatch):
    cols, y = _data(4000, 7)
    ids = cols["a"]  # continuous: a row's value of a names it
    settings = core.Settings(cascades=True, accuracy_target=0.99, top_k=20, min_speedup=0.0,
                             **PLAN)
    cal = np.sort(np.random.default_rng(settings.seed).permutation(4000)[:2000])
    cal_values = set(ids[cal].tolist())
    fitted, timed, judged = [], [], []
    real_choose, real_time = approx.choose, core.cost_mod.seconds_per_row

    def choose(options, X, *args, assess=None, **kw):
        fitted.append(X[:, 0].copy())

        def spy(v, model, val, cov):
            judged.append(X[val, 0].copy())
            return assess(v, model, val, cov)
        return real_choose(options, X, *args, assess=spy, **kw)

    def seconds_per_row(fn, kwargs, n, **kw):
        timed.append(np.asarray(kwargs["a"]).copy())
        return real_time(fn, kwargs, n, **kw)
    monkeypatch.setattr(core.approx_mod, "choose", choose)
    monkeypatch.setattr(core.cost_mod, "seconds_per_row", seconds_per_row)
    graph = mloc_ir.parse(trees)
    out = core.plan(graph, (cols, y), settings)
    assert out.report.n_calibration == 2000
    assert fitted and judged and timed
    for values in fitted + judged + timed:
        assert not cal_values.intersection(values.tolist())
    assert len(fitted[0]) == 2000  # every other row fits
