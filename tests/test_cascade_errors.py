"""Every mistake a user can make when asking for a statistical plan gets a clear error."""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import mloc_ir
from passes.planner import PlanError
from runtime.cascade import CascadeLoadError, load_cascade

rng = np.random.default_rng(0)
_X = rng.normal(size=(400, 2))
_y = (_X[:, 0] > 0).astype(int)
CLF = LogisticRegression().fit(_X, _y)
CLF2 = LogisticRegression(C=0.5).fit(_X, _y)
REG = LinearRegression().fit(_X, _X[:, 0])
BOOSTER_REG = lgb.train({"objective": "regression", "verbosity": -1, "num_threads": 1},
                        lgb.Dataset(_X, _X[:, 0]), num_boost_round=3)


def clf(a, b):
    return CLF.predict_proba(np.column_stack([a * 2.0, b + 1.0]))[:, 1]


def clf_two_outputs(a, b):
    p = CLF.predict_proba(np.column_stack([a * 2.0, b + 1.0]))[:, 1]
    return p, a + b


def reg(a, b):
    return REG.predict(np.column_stack([a * 2.0, b + 1.0]))


def booster_reg(a, b):
    return BOOSTER_REG.predict(np.column_stack([a * 2.0, b + 1.0]))


def two_models(a, b):
    X = np.column_stack([a * 2.0, b + 1.0])
    return CLF.predict_proba(X)[:, 1] + CLF2.predict_proba(X)[:, 1]


def no_model(a, b):
    return a * 2.0 + b


def opaque(a, b):
    c = helper(a)
    return CLF.predict_proba(np.column_stack([c, b + 1.0]))[:, 1]


def helper(x):
    x = np.sort(x)  # not in the pipeline language: an opaque call on the whole batch
    return x * 2.0


def cols(n=200):
    r = np.random.default_rng(1)
    a, b = r.normal(size=n), r.normal(size=n)
    return {"a": a, "b": b}, (a > 0).astype(int)


def test_cascades_without_train_data():
    with pytest.raises(PlanError, match=r"cascades=True need train=\(columns, labels\)"):
        mloc_ir.compile(clf, cascades=True)


def test_top_k_without_train_data():
    with pytest.raises(PlanError, match=r"top_k= need train="):
        mloc_ir.compile(clf, top_k=10)


def test_train_without_anything_to_plan():
    with pytest.raises(PlanError, match="nothing asks for a statistical plan"):
        mloc_ir.compile(clf, train=cols())


def test_regression_model_with_cascades():
    with pytest.raises(PlanError, match="cascades need a classifier.*regression model"):
        mloc_ir.compile(reg, train=cols(), cascades=True)
    with pytest.raises(PlanError, match="cascades need a classifier"):
        mloc_ir.compile(booster_reg, train=cols(), cascades=True)


@pytest.mark.parametrize("target", [0.0, 1.0, 1.5, -0.1])
def test_accuracy_target_out_of_range(target):
    with pytest.raises(PlanError, match="accuracy_target must be between 0 and 1"):
        mloc_ir.compile(clf, train=cols(), cascades=True, accuracy_target=target)


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_bad_top_k(k):
    with pytest.raises(PlanError, match="top_k must be a positive integer"):
        mloc_ir.compile(clf, train=cols(), top_k=k)


def test_top_k_needs_one_score_per_row():
    with pytest.raises(PlanError, match="top_k needs a pipeline returning one numeric score"):
        mloc_ir.compile(clf_two_outputs, train=cols(), top_k=5)


def test_train_shapes():
    c, y = cols()
    with pytest.raises(PlanError, match="train must be a pair"):
        mloc_ir.compile(clf, train=c, cascades=True)
    with pytest.raises(PlanError, match="200 rows of inputs but 199 labels"):
        mloc_ir.compile(clf, train=(c, y[:-1]), cascades=True)
    with pytest.raises(PlanError, match="train\\[0\\] must be a dict"):
        mloc_ir.compile(clf, train=([c["a"], c["b"]], y), cascades=True)
    with pytest.raises(mloc_ir.InputError, match="missing the input 'b'"):
        mloc_ir.compile(clf, train=({"a": c["a"]}, y), cascades=True)


def test_labels_the_model_does_not_know():
    c, y = cols()
    with pytest.raises(PlanError, match=r"labels \[7\] are not classes"):
        mloc_ir.compile(clf, train=(c, np.where(y == 1, 7, 0)), cascades=True)


def test_too_few_rows():
    c, y = cols(10)
    with pytest.raises(PlanError, match="train has 10 rows"):
        mloc_ir.compile(clf, train=(c, y), cascades=True)


def test_pipelines_it_cannot_plan_for():
    with pytest.raises(PlanError, match="calls more than one model"):
        mloc_ir.compile(two_models, train=cols(), cascades=True)
    with pytest.raises(PlanError, match="calls no model"):
        mloc_ir.compile(no_model, train=cols(), cascades=True)
    with pytest.raises(PlanError, match="opaque Python calls"):
        mloc_ir.compile(opaque, train=cols(), cascades=True)


def test_bad_trainer_and_settings():
    with pytest.raises(PlanError, match="approximate_trainer must be a function"):
        mloc_ir.compile(clf, train=cols(), cascades=True, approximate_trainer="lr")
    with pytest.raises(PlanError, match="unknown planner setting"):
        mloc_ir.compile(clf, train=cols(), cascades=True, budget=0.3)
    with pytest.raises(PlanError, match="unknown cost backend 'gpu'"):
        mloc_ir.compile(clf, train=cols(), cascades=True, backend="gpu")
    for bad in ((0.5, 1.0), 0.5, ("a",), (0.0,)):
        with pytest.raises(PlanError, match="tree_fractions must be a tuple of fractions"):
            mloc_ir.compile(clf, train=cols(), cascades=True, tree_fractions=bad)


def test_trainer_returning_a_regressor():
    def trainer(X, y):
        return LinearRegression().fit(X, y)
    with pytest.raises(PlanError, match="approximate model .* is not a classifier"):
        mloc_ir.compile(clf, train=cols(2000), cascades=True, approximate_trainer=trainer,
                        accuracy_target=0.9)


def test_trainer_failing_or_losing_a_class():
    c, _ = cols(2000)
    y = np.digitize(c["a"], [-0.5, 0.5])  # three classes
    global CLF3
    CLF3 = LogisticRegression().fit(np.column_stack([c["a"] * 2.0, c["b"] + 1.0]), y)

    def drops_a_class(X, yy):
        return LogisticRegression().fit(X[yy < 2], yy[yy < 2])
    with pytest.raises(PlanError, match=r"knows classes \[0, 1\].*\[0, 1, 2\].*every class"):
        mloc_ir.compile(clf3, train=(c, y), cascades=True, accuracy_target=0.9,
                        approximate_trainer=drops_a_class)

    def fails(X, yy):
        raise ValueError("no convergence")
    with pytest.raises(PlanError, match="fitting the approximate model on .* failed: "
                                        "ValueError: no convergence"):
        mloc_ir.compile(clf3, train=(c, y), cascades=True, accuracy_target=0.9,
                        approximate_trainer=fails)


CLF3 = None


def clf3(a, b):
    return CLF3.predict(np.column_stack([a * 2.0, b + 1.0]))


def test_runtime_top_k_arguments():
    c, y = cols(2000)
    cp = mloc_ir.compile(clf, train=(c, y), top_k=5)
    with pytest.raises(mloc_ir.InputError, match="positive integer k"):
        cp.top_k(0, **c)
    with pytest.raises(mloc_ir.InputError, match="no parameter 'z'"):
        cp.top_k(3, z=c["a"], **c)


def test_loading_something_else(tmp_path):
    with pytest.raises(CascadeLoadError, match="missing cascade.json"):
        load_cascade(tmp_path)
    (tmp_path / "cascade.json").write_text("{not json")
    with pytest.raises(CascadeLoadError, match="not valid JSON"):
        load_cascade(tmp_path)
    (tmp_path / "cascade.json").write_text('{"format": 99}')
    with pytest.raises(CascadeLoadError, match="format 99"):
        load_cascade(tmp_path)
