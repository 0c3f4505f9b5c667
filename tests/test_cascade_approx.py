"""How the planner trains approximate models (``passes.planner.approx``) and measures costs:
soft-label rows, the variants tried, the choice among them on fit rows only, CPU-time costs,
and that calibration rows never train anything."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import scipy.sparse
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

import mloc_ir
from passes.planner import approx
from passes.planner.models import PlanError, task_of


def test_soft_rows_weight_each_class_by_its_probability():
    X = np.arange(6.0).reshape(3, 2)
    p = np.array([0.25, 1.0, 0.5])  # binary: P(class 1)
    Xs, ys, ws = approx.soft_rows(X, p, np.array(["no", "yes"]))
    # row 1 is certainly "yes": its "no" copy (weight 0) is dropped
    assert len(ys) == 5 and list(ys).count("no") == 2 and list(ys).count("yes") == 3
    for i, row in enumerate(X):
        mine = np.all(Xs == row, axis=1)
        assert ws[mine].sum() == pytest.approx(1.0)
    Xsp, _, _ = approx.soft_rows(scipy.sparse.csr_matrix(X), np.c_[1 - p, p], [0, 1])
    assert scipy.sparse.issparse(Xsp) and Xsp.shape == (5, 2)


def test_coverage_counts_rows_before_the_allowed_disagreements():
    conf = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.9, 0.8, 0.7, 0.6, 0.55])
    agree = np.ones(10, bool)
    assert approx.coverage(conf, agree, 0.999) == 1.0
    agree[3] = False  # the 4th most confident row disagrees; target 0.999 allows none of 10
    assert approx.coverage(conf, agree, 0.999) == 0.3
    assert approx.coverage(conf, agree, 0.9) == 1.0  # 0.9 allows one of 10
    assert approx.coverage(np.array([]), np.array([], bool), 0.9) == 0.0


def test_variants_per_model_family():
    X, y = np.random.default_rng(0).normal(size=(60, 2)), np.arange(60) % 2
    lr = LogisticRegression(C=2.0).fit(X, y)
    names = [v.name for v in approx.variants(lr)]
    assert names == ["refit on labels", "distilled", "distilled, C x16", "distilled, C x256"]
    knn = KNeighborsClassifier(3).fit(X, y)  # its fit takes no sample_weight
    assert [v.name for v in approx.variants(knn)] == ["refit on labels"]
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, lgb.Dataset(X, y), 3)
    assert [v.name for v in approx.variants(booster)] == ["refit on labels", "distilled"]
    assert [v.name for v in approx.variants(lr, lambda X, y: lr)] == ["approximate_trainer"]


def test_distilled_variants_fit_the_models_own_family():
    r = np.random.default_rng(1)
    X = r.normal(size=(400, 3))
    p = 1 / (1 + np.exp(-2 * X[:, 0]))
    y = (r.random(400) < p).astype(int)
    lr = LogisticRegression(C=0.5).fit(X, y)
    fitted = approx.variants(lr)[3].fit(X, y, np.c_[1 - p, p])
    assert isinstance(fitted, LogisticRegression) and fitted.C == 0.5 * 256
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, lgb.Dataset(X, y), 5)
    distilled = approx.variants(booster)[1].fit(X, y, p)
    assert task_of(distilled)[0] == "binary" and distilled.current_iteration() == 5
    assert approx.probabilities(distilled, X).shape == (400, 2)


class _Const:
    """A 'model' answering class ``cls`` with probability ``q`` for every row."""

    def __init__(self, cls, q):
        self.cls, self.q = cls, q

    def predict_proba(self, X):
        out = np.full((X.shape[0], 2), 1 - self.q)
        out[:, self.cls] = self.q
        return out


def test_choose_keeps_the_best_on_validation_and_refits_it_on_all_fit_rows():
    n = 1000
    X = np.zeros((n, 1))
    full_class = np.ones(n, int)
    proba = np.c_[np.zeros(n), np.ones(n)]
    calls = []

    def make(name, cls):
        def fit(Xf, y, p):
            calls.append((name, Xf.shape[0]))
            return _Const(cls, 0.9)
        return approx.Variant(name, fit)
    choice = approx.choose([make("wrong", 0), make("right", 1)], X, np.ones(n), proba,
                           full_class, 0.999)
    assert choice.name == "right" and choice.model.cls == 1
    assert choice.scores == {"wrong": 0.0, "right": 1.0}
    n_val = int(n * approx.VALIDATION_FRACTION)
    assert calls == [("wrong", n - n_val), ("right", n - n_val), ("right", n)]


def test_choose_skips_a_failing_variant_but_not_a_failing_refit():
    X, proba, cls = np.zeros((800, 1)), np.c_[np.zeros(800), np.ones(800)], np.ones(800, int)
    ok = approx.Variant("ok", lambda X, y, p: _Const(1, 0.9))

    def broken(X, y, p):
        raise ValueError("nope")
    choice = approx.choose([ok, approx.Variant("broken", broken)], X, np.ones(800), proba, cls,
                           0.99)
    assert choice.name == "ok" and "broken" not in choice.scores
    with pytest.raises(PlanError, match=r"\(broken\) failed: ValueError: nope"):
        approx.choose([approx.Variant("broken", broken), ok], X, np.ones(800), proba, cls, 0.99)


def test_costs_are_cpu_time_not_waiting():
    """Sleeping costs nothing, burning CPU costs its time.  Run in a fresh process: costs are
    process CPU time (they must count the kernels' pool threads), so a thread another test
    left spinning in this process would be charged to the sleeper."""
    code = textwrap.dedent("""
        import time
        from passes.planner.cost import seconds_per_row
        rows = 100

        def sleeps(**kw):
            time.sleep(0.01)

        def burns(**kw):
            t = time.process_time()
            while time.process_time() - t < 0.005:
                pass
        assert seconds_per_row(sleeps, {}, rows, repeats=2, min_seconds=0.0) < 0.002 / rows
        assert seconds_per_row(burns, {}, rows, repeats=2, min_seconds=0.0) >= 0.004 / rows
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr


# -- the planner: calibration rows train nothing -----------------------------------------------

def _data(n, seed):
    r = np.random.default_rng(seed)
    cols = {"a": r.normal(size=n), "b": r.normal(size=n)}
    y = (r.random(n) < 1 / (1 + np.exp(-(3 * cols["a"] + cols["b"])))).astype(int)
    return cols, y


_c, _y = _data(2000, 1)
MODEL = LogisticRegression().fit(np.column_stack([_c["a"] * 1.0, np.exp(_c["b"])]), _y)


def pipeline(a, b):
    return MODEL.predict_proba(np.column_stack([a * 1.0, np.exp(b)]))[:, 1]


def test_fit_rows_are_all_rows_but_the_calibration_rows():
    seen = []

    def trainer(X, y):
        seen.append(X.shape[0])
        return LogisticRegression().fit(X, y)
    cols, y = _data(3000, 2)
    cp = mloc_ir.compile(pipeline, train=(cols, y), cascades=True, accuracy_target=0.99,
                         approximate_trainer=trainer, backend="interpreted", min_speedup=0.0,
                         budgets=(0.5,), calibration_fraction=0.6)
    r = cp.report
    assert r.n_calibration == 1800 and r.n_fit == 1200
    assert seen and all(s == r.n_fit for s in seen)
    assert r.candidates[0].approx_model == "approximate_trainer"


def test_distilled_cascade_meets_its_target_on_fresh_rows():
    cols, y = _data(8000, 3)
    cp = mloc_ir.compile(pipeline, train=(cols, y), cascades=True, accuracy_target=0.99,
                         backend="interpreted", min_speedup=0.0, budgets=(0.5,))
    cand = cp.report.candidates[0]
    assert cand.approx_model in cand.approx_scores and len(cand.approx_scores) == 4
    assert cand.approx_model in cp.explain()
    if cp.approx is None:
        pytest.skip(cp.report.no_cascade)
    test, _ = _data(20000, 4)
    ref = pipeline(**test)
    assert np.mean((cp(**test) > 0.5) == (ref > 0.5)) >= 0.99


def test_unlabeled_rows_fit_only_and_the_guarantee_holds_on_fresh_rows(monkeypatch):
    """``unlabeled=`` rows are appended to the fit rows for distilling: they train the
    approximate model, never validate it (validation is on planning rows, like the calibration
    rows) and never calibrate; the cascade still meets its target on fresh rows, and the
    never-approximate threshold gives the full pipeline's results."""
    from runtime.cascade import NEVER
    cols, y = _data(4000, 5)
    extra, _ = _data(3000, 6)
    extra_ids = set(extra["a"].tolist())
    cal = np.sort(np.random.default_rng(0).permutation(4000)[:2000])
    cal_ids = set(cols["a"][cal].tolist())
    fitted, judged = [], []
    real_choose = approx.choose

    def choose(options, X, *args, assess=None, **kw):
        fitted.append(X[:, 0].copy())

        def spy(v, model, val, cov):
            judged.append(X[val, 0].copy())
            return assess(v, model, val, cov)
        return real_choose(options, X, *args, assess=spy, **kw)
    from passes.planner import core
    monkeypatch.setattr(core.approx_mod, "choose", choose)
    cp = mloc_ir.compile(pipeline, train=(cols, y), cascades=True, accuracy_target=0.99,
                         backend="interpreted", min_speedup=0.0, budgets=(0.5,),
                         unlabeled=extra, progress=False)
    r = cp.report
    assert r.n_unlabeled == 3000 and r.n_fit == 2000 and r.n_calibration == 2000
    assert fitted and judged
    assert len(fitted[0]) == 5000 and extra_ids <= set(fitted[0].tolist())
    for values in fitted + judged:
        assert not cal_ids.intersection(values.tolist())
    for values in judged:
        assert not extra_ids.intersection(values.tolist())
    assert "3000 unlabelled rows" in cp.explain()
    if cp.approx is None:
        pytest.skip(cp.report.no_cascade)
    test, _ = _data(20000, 7)
    ref = pipeline(**test)
    assert np.mean((cp(**test) > 0.5) == (ref > 0.5)) >= 0.99
    np.testing.assert_array_equal(cp.with_threshold(NEVER)(**test), cp.full(**test))


def test_unlabeled_must_be_columns():
    cols, y = _data(3000, 2)
    with pytest.raises(PlanError, match="unlabeled"):
        mloc_ir.compile(pipeline, train=(cols, y), cascades=True, accuracy_target=0.99,
                        backend="interpreted", budgets=(0.5,), unlabeled=[1, 2, 3])


def test_calibration_share_with_enough_unlabeled_rows():
    """With at least as many unlabelled rows as planning rows, the planning rows' fit share
    only validates: calibration takes MAX_CALIBRATION_SHARE of them unless the user set a
    share."""
    from passes.planner.core import MAX_CALIBRATION_SHARE
    cols, y = _data(3000, 8)
    extra, _ = _data(3000, 9)
    kw = dict(train=(cols, y), cascades=True, accuracy_target=0.99, backend="interpreted",
              min_speedup=0.0, budgets=(0.5,), unlabeled=extra, progress=False)
    cp = mloc_ir.compile(pipeline, **kw)
    assert cp.report.n_calibration == int(MAX_CALIBRATION_SHARE * 3000)
    assert cp.report.n_fit == 3000 - cp.report.n_calibration
    cp = mloc_ir.compile(pipeline, calibration_fraction=0.5, **kw)
    assert cp.report.n_calibration == 1500
