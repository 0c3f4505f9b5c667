"""scikit-learn models fused into native pipeline kernels (``codegen.pipeline_models``).

Each pipeline computes a few element-wise features, stacks them and calls one fitted model's
methods; it is compiled with ``mloc_ir.compile`` and must run as ONE native stage (features,
scalers, model core and head fused), except where a test says the head stays on the host.

Three-way equivalence on hypothesis-drawn inputs: the original Python, ``mloc_ir.interpret``
(which calls scikit-learn) and the compiled pipeline.  Inputs are finite (scikit-learn refuses
NaN and inf for most models: it raises, while native code would compute on), except for
HistGradientBoosting, which handles NaN itself and gets NaN features.  Batches are empty (all
three raise scikit-learn's ValueError), one row, and lengths around the kernel's block size.

* Tree models: bit-identical results (dtypes and shapes too).
* Linear models: scikit-learn uses BLAS, whose summation order is not reproducible, so native
  results equal the converted model's NumPy reference (``SklearnModel.reference``, the kernel's
  own order) bit for bit, and scikit-learn's within the documented rounding bound
  ``codegen.sklearn_linear.decision_tolerance`` carried through the head
  (``tests/linear_tolerance.py``; labels must agree wherever the decision is farther than the
  bound from a class boundary).
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mloc_ir
from codegen.pipeline_models import converted, exp_matches
from codegen.sklearn_linear import LinearModel
from tests.linear_tolerance import assert_linear_close
from tests.test_pipeline_codegen import FAST, assert_exact, load_source

HEADER = ("import numpy as np\n"
          "from tests.test_pipeline_codegen_sklearn import model, scaler\n")
N_FEATURES = 4


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    """HistGradientBoosting predicts with OpenMP, whose thread team dominates tiny batches."""
    import sklearn.ensemble  # noqa: F401 -- loads the OpenMP runtime, so the limit reaches it
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


# ---------------------------------------------------------------------------------------------
# Features (the same formula in the pipelines and for the training data) and models

FEATURES = ("np.column_stack([a * 2.0 - b, np.log1p(np.abs(b)), np.where(c > 0.0, c, a), "
            "np.floor(c)])")


def features(a, b, c):
    with np.errstate(all="ignore"):
        return np.column_stack([a * 2.0 - b, np.log1p(np.abs(b)), np.where(c > 0.0, c, a),
                                np.floor(c)])


@functools.lru_cache(maxsize=None)
def _data():
    rng = np.random.default_rng(3)
    a, b, c = (rng.normal(scale=3.0, size=400) for _ in range(3))
    X = features(a, b, c)
    y = X[:, 0] + np.sin(X[:, 1]) * 2 + 0.5 * X[:, 3]
    Xn = X.copy()
    Xn[rng.random(X.shape) < 0.1] = np.nan
    return X, Xn, y


def _classes(y, k):
    return np.digitize(y, np.quantile(y, np.linspace(0, 1, k + 1)[1:-1]))


def _build(name):  # noqa: C901 -- one line per model
    from sklearn import ensemble as E
    from sklearn import linear_model as L
    from sklearn import tree as T
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC, LinearSVC
    X, Xn, y = _data()
    y2, y3, y9 = _classes(y, 2), _classes(y, 3), _classes(y, 9)
    rs = {"random_state": 0}
    small = {"max_depth": 5, **rs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the linear models
        return {
            "dt_clf": lambda: T.DecisionTreeClassifier(**small).fit(X, y3),
            "dt_reg": lambda: T.DecisionTreeRegressor(**small).fit(X, y),
            "rf_clf": lambda: E.RandomForestClassifier(n_estimators=6, **small).fit(X, y2),
            "rf_reg": lambda: E.RandomForestRegressor(n_estimators=6, **small).fit(X, y),
            "et_clf": lambda: E.ExtraTreesClassifier(n_estimators=6, **small).fit(X, y3),
            "et_reg": lambda: E.ExtraTreesRegressor(n_estimators=6, **small).fit(X, y),
            "gb_clf": lambda: E.GradientBoostingClassifier(n_estimators=8, max_depth=3,
                                                           **rs).fit(X, y2),
            "gb_exp": lambda: E.GradientBoostingClassifier(n_estimators=8, max_depth=3,
                                                           loss="exponential", **rs).fit(X, y2),
            "gb_multi9": lambda: E.GradientBoostingClassifier(n_estimators=3, max_depth=2,
                                                              **rs).fit(X, y9),
            "gb_reg": lambda: E.GradientBoostingRegressor(n_estimators=8, max_depth=3,
                                                          **rs).fit(X, y),
            "hgb_clf": lambda: E.HistGradientBoostingClassifier(max_iter=8, max_leaf_nodes=7,
                                                                **rs).fit(Xn, y2),
            "hgb_multi": lambda: E.HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=7,
                                                                  **rs).fit(Xn, y3),
            "hgb_reg": lambda: E.HistGradientBoostingRegressor(max_iter=8, max_leaf_nodes=7,
                                                               **rs).fit(Xn, y),
            "hgb_poisson": lambda: E.HistGradientBoostingRegressor(
                loss="poisson", max_iter=8, max_leaf_nodes=7, **rs).fit(Xn, np.abs(y)),
            "pipe_minmax_rf": lambda: make_pipeline(
                MinMaxScaler(clip=True), E.RandomForestClassifier(n_estimators=4, **small)
            ).fit(X, y3),
            "rf_str": lambda: E.RandomForestClassifier(n_estimators=4, **small).fit(
                X, np.array(["low", "mid", "high"])[y3]),
            # linear models
            "logreg": lambda: L.LogisticRegression().fit(X, y2),
            "logreg_multi9": lambda: L.LogisticRegression(max_iter=300).fit(X, y9),
            "linreg": lambda: L.LinearRegression().fit(X, y),
            "ridge": lambda: L.Ridge(alpha=0.5).fit(X, y),
            "linsvc": lambda: LinearSVC(**rs).fit(X, y3),
            "sgd_log": lambda: L.SGDClassifier(loss="log_loss", **rs).fit(X, y3),
            "sgd_huber": lambda: L.SGDClassifier(loss="modified_huber", **rs).fit(X, y2),
            "sgd_reg": lambda: L.SGDRegressor(**rs).fit(X / 10, y),
            "pipe_std_logreg": lambda: make_pipeline(StandardScaler(), L.LogisticRegression()
                                                     ).fit(X, y3),
            "svc_multi": lambda: SVC(kernel="linear").fit(X[:150], y3[:150]),
            "knn": lambda: KNeighborsClassifier(3).fit(X, y2),
            "ridge32": lambda: L.Ridge().fit(X.astype(np.float32), y),
            # models after a transform node (trained on the scaled features)
            "gb_scaled": lambda: E.GradientBoostingRegressor(n_estimators=5, **small).fit(
                scaler("std").transform(X), y),
            "ridge_scaled": lambda: L.Ridge().fit(scaler("maxabs").transform(X), y),
            "_std": lambda: StandardScaler().fit(X),
            "_maxabs": lambda: MaxAbsScaler(clip=True).fit(X[:50]),
        }[name]()


@functools.lru_cache(maxsize=None)
def model(name):
    return _build(name)


def scaler(kind):
    return model("_" + kind)


# ---------------------------------------------------------------------------------------------
# Pipelines and inputs

_FINITE = st.one_of(st.floats(-50, 50), st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 3.0]))
_WITH_NAN = st.one_of(_FINITE, st.just(np.nan))


@functools.lru_cache(maxsize=None)
def pipeline(name: str, outputs: tuple, transform: str | None = None):
    """Compile ``predict(a, b, c)`` returning ``outputs`` (Python expressions of ``M`` and
    ``X``); returns ``(fn, compiled)``."""
    pre = head = ""
    if transform:
        head = f"S = scaler({transform!r})\n"
        pre = "    X = S.transform(X)\n"
    body = (f"M = model({name!r})\n" + head + "\n\n"
            "def predict(a, b, c):\n"
            f"    X = {FEATURES}\n" + pre +
            f"    return {', '.join(outputs)}\n")
    fn = load_source(body, HEADER)
    return fn, mloc_ir.compile(fn)


@st.composite
def batches(draw, block: int, nan: bool = False):
    """Columns a, b, c of a drawn length: seeded random values (normal, at a drawn scale, some
    rounded to integers so they tie with split thresholds) with a few drawn values (zeros,
    -0.0, NaN for ``nan``...) planted at random rows.  Drawing long lists element by element
    made hypothesis the bottleneck."""
    n = draw(st.sampled_from([0, 1, 2, 7, block - 1, block + 1, 2 * block + 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    out = {}
    for k in "abc":
        col = rng.normal(scale=draw(st.sampled_from([0.5, 3.0, 50.0])), size=n)
        ints = rng.random(n) < 0.2
        col[ints] = np.round(col[ints])
        planted = draw(st.lists(_WITH_NAN if nan else _FINITE, max_size=4))
        if n and planted:
            col[rng.integers(0, n, size=len(planted))] = planted
        if nan:
            col[rng.random(n) < 0.1] = np.nan
        out[k] = col
    return out


def _run(fn, *args, **kwargs):
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return "ok", fn(*args, **kwargs)
    except ValueError as exc:  # scikit-learn's refusal of empty batches
        return "raise", exc


def _three(fn, cp, inputs):
    results = [_run(fn, **inputs), _run(mloc_ir.interpret, cp.graph, **inputs),
               _run(cp, **inputs)]
    kinds = [k for k, _ in results]
    assert kinds in (["ok"] * 3, ["raise"] * 3), results
    return [v for _, v in results] if kinds[0] == "ok" else None


def _assert_one_native_stage(cp):
    assert [s.kind for s in cp.plan.stages] == ["native"], cp.explain()
    assert not cp.plan.host_reasons, cp.explain()
    assert not cp.plan.stages[0].finish, cp.explain()


def _block(cp):
    return max(cp.block_rows.values())


def check_exact(name, outputs, data, transform=None, nan=False, one_stage=True):
    fn, cp = pipeline(name, outputs, transform)
    if one_stage:
        _assert_one_native_stage(cp)
    res = _three(fn, cp, data.draw(batches(_block(cp), nan)))
    if res is not None:
        python, interpreted, native = res
        assert_exact(interpreted, python, where="interpreter vs python")
        assert_exact(native, interpreted, where="native vs interpreter")
    return cp


def check_linear(name, methods, data, transform=None, one_stage=True):
    """Linear models: each method's result and the features X are returned; see the module
    docstring for what is compared."""
    outputs = tuple(f"M.{m}(X)" for m in methods) + ("X",)
    fn, cp = pipeline(name, outputs, transform)
    if one_stage:
        _assert_one_native_stage(cp)
    res = _three(fn, cp, data.draw(batches(_block(cp))))
    if res is None:
        return cp
    python, interpreted, native = res
    assert_exact(interpreted, python, where="interpreter vs python")
    X = native[-1]
    assert_exact(X, python[-1], where="features")
    conv = converted(model(name))
    assert isinstance(conv.core, LinearModel)
    for k, m in enumerate(methods):
        # native == the converted model's NumPy reference in the kernel's order, bit for bit
        with np.errstate(all="ignore"):
            assert_exact(native[k], conv.reference(m, X), where=f"{m}: native vs reference")
        assert_linear_close(native[k], python[k], conv, m, X, where=f"{m}: native vs sklearn",
                            estimator=model(name))
    return cp


# ---------------------------------------------------------------------------------------------
# Tree models: bit for bit

CLASSIFIER = ("M.predict(X)", "M.predict_proba(X)", "M.predict_proba(X)[:, 1]")
BOOSTED = CLASSIFIER + ("M.decision_function(X)",)
REGRESSOR = ("M.predict(X)", "M.predict(X) * 2.0 + a")


@pytest.mark.parametrize("name", ["dt_clf", "rf_clf", "et_clf", "pipe_minmax_rf"])
@FAST
@given(data=st.data())
def test_tree_classifiers(name, data):
    check_exact(name, CLASSIFIER, data)


@pytest.mark.parametrize("name", ["dt_reg", "rf_reg", "et_reg", "gb_reg"])
@FAST
@given(data=st.data())
def test_tree_regressors(name, data):
    check_exact(name, REGRESSOR, data)


@pytest.mark.parametrize("name", ["gb_clf", "gb_exp", "gb_multi9"])
@FAST
@given(data=st.data())
def test_gradient_boosting_classifiers(name, data):
    """Binary heads use expit (scale 2 for the exponential loss); nine classes use softmax,
    whose row sum follows NumPy's pairwise order (8 partial sums from 8 terms on)."""
    check_exact(name, BOOSTED if name != "gb_multi9" else
                ("M.predict(X)", "M.predict_proba(X)", "M.decision_function(X)"), data)


@pytest.mark.parametrize("name", ["hgb_clf", "hgb_multi"])
@FAST
@given(data=st.data())
def test_hist_gradient_boosting_classifiers_with_nan(name, data):
    outputs = BOOSTED if name == "hgb_clf" else CLASSIFIER[:2] + ("M.decision_function(X)",)
    check_exact(name, outputs, data, nan=True)


@pytest.mark.parametrize("name", ["hgb_reg", "hgb_poisson"])
@FAST
@given(data=st.data())
def test_hist_gradient_boosting_regressors_with_nan(name, data):
    """The Poisson loss predicts exp(raw) (NumPy's exp, the C library's on this machine)."""
    check_exact(name, REGRESSOR, data, nan=True)


@FAST
@given(data=st.data())
def test_scaler_transform_node_then_tree_model(data):
    cp = check_exact("gb_scaled", ("M.predict(X)", "X"), data, transform="std")
    assert "transform" in {cp.graph[i].op for i in cp.plan.stages[0].nodes}


_INT_SPECIALS = [0, 1, -1, 7, 2 ** 24 + 1, 2 ** 53 + 1, 2 ** 60 + 2 ** 36 + 1, -(2 ** 63),
                 2 ** 63 - 1]


@pytest.mark.parametrize("name", ["dt_clf", "gb_clf", "hgb_reg"])
@FAST
@given(data=st.data())
def test_integer_features(name, data):
    """scikit-learn converts int64 features to float32 directly for its trees (one rounding;
    int -> float64 -> float32 can round differently) and to float64 for HistGradientBoosting."""
    outputs = ("M.predict(X)",) + (("M.predict_proba(X)",) if name != "hgb_reg" else ())
    src = (f"M = model({name!r})\n\n\n"
           "def predict(k, a):\n"
           "    X = np.column_stack([k, k * 3, k // 7, a])\n"
           f"    return {', '.join(outputs)}\n")
    key = ("int", name)
    if key not in _INT_CASES:
        fn = load_source(src, HEADER)
        _INT_CASES[key] = fn, mloc_ir.compile(fn, dtypes={"k": "i64", "a": "i64"})
    fn, cp = _INT_CASES[key]
    _assert_one_native_stage(cp)
    n = data.draw(st.sampled_from([1, 2, 9, _block(cp) + 3]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    cols = {}
    for c in "ka":
        col = rng.integers(-12, 12, size=n)
        planted = data.draw(st.lists(st.sampled_from(_INT_SPECIALS), max_size=3))
        if planted:
            col[rng.integers(0, n, size=len(planted))] = planted
        cols[c] = col
    python, interpreted, native = _three(fn, cp, cols)
    assert_exact(interpreted, python)
    assert_exact(native, interpreted)


_INT_CASES: dict = {}


# ---------------------------------------------------------------------------------------------
# Linear models: the reference bit for bit, scikit-learn within the BLAS rounding bound


@pytest.mark.parametrize("name, methods", [
    ("logreg", ("predict", "predict_proba", "decision_function")),
    ("logreg_multi9", ("predict", "predict_proba", "decision_function")),
    ("linreg", ("predict",)),
    ("ridge", ("predict",)),
    ("linsvc", ("predict", "decision_function")),
    ("sgd_log", ("predict", "predict_proba")),
    ("sgd_huber", ("predict", "predict_proba", "decision_function")),
    ("sgd_reg", ("predict",)),
    ("pipe_std_logreg", ("predict", "predict_proba", "decision_function")),
])
@FAST
@given(data=st.data())
def test_linear_models(name, methods, data):
    check_linear(name, methods, data)


@FAST
@given(data=st.data())
def test_maxabs_transform_node_then_ridge(data):
    check_linear("ridge_scaled", ("predict",), data, transform="maxabs")


@FAST
@given(data=st.data())
def test_logistic_regression_positive_class_column(data):
    fn, cp = pipeline("logreg", ("M.predict_proba(X)[:, 1]", "X"))
    _assert_one_native_stage(cp)
    res = _three(fn, cp, data.draw(batches(_block(cp))))
    if res is not None:
        python, _, native = res
        conv = converted(model("logreg"))
        assert_linear_close(native[0], python[0], conv, "predict_proba", native[1])


# ---------------------------------------------------------------------------------------------
# Heads on the host (features and model core still fused)


@FAST
@given(data=st.data())
def test_string_labels_head_runs_on_the_host(data):
    cp = check_exact("rf_str", ("M.predict(X)", "M.predict_proba(X)"), data, one_stage=False)
    (stage,) = cp.plan.stages  # one native stage; the host finishes the labels
    assert stage.kind == "native" and not cp.plan.host_reasons
    (head,) = stage.finish.values()
    assert head.method == "predict" and "<U4 values" in head.reason
    assert "head on the host" in cp.explain()


@FAST
@given(data=st.data())
def test_svc_one_vs_one_vote_runs_on_the_host(data):
    cp = check_linear("svc_multi", ("predict", "decision_function"), data, one_stage=False)
    (stage,) = cp.plan.stages
    assert {h.method for h in stage.finish.values()} == {"predict", "decision_function"}
    assert all("one-vs-one" in h.reason for h in stage.finish.values())


def test_host_head_readers_run_after_it():
    """An op reading a host-finished model value goes to a later stage; the features and the
    model core stay in the first native stage."""
    fn, cp = pipeline("rf_str", ("M.predict(X) == 'mid'", "M.predict_proba(X)[:, 0] + a"))
    kinds = [s.kind for s in cp.plan.stages]
    assert kinds[0] == "native" and cp.plan.stages[0].finish
    assert "host" in kinds  # the string comparison
    rng = np.random.default_rng(0)
    inputs = {k: rng.normal(scale=3, size=37) for k in "abc"}
    python, interpreted, native = _three(fn, cp, inputs)
    assert_exact(native, python)


def test_numpy_exp_and_scipy_expit_loops_are_callable_here():
    """The native softmax / expit / exp-link heads call these loops (checked per process)."""
    assert exp_matches("numpy") and exp_matches("expit")


# ---------------------------------------------------------------------------------------------
# What stays on the host, and why


def test_unsupported_models_run_on_the_host_with_a_reason():
    fn, cp = pipeline("knn", ("M.predict_proba(X)[:, 1] + a",))
    assert [s.kind for s in cp.plan.stages] == ["native", "host", "native"]
    (reason,) = cp.plan.host_reasons.values()
    assert "M.predict_proba is not compiled natively" in reason
    assert "KNeighborsClassifier is not supported" in reason
    rng = np.random.default_rng(1)
    inputs = {k: rng.normal(size=9) for k in "abc"}
    assert_exact(cp(**inputs), fn(**inputs))


def test_float32_features_with_a_scaler_pipeline_run_on_the_host():
    """scikit-learn's scalers keep float32 and round every step to float32; the compiled
    scalers work in float64, so that model is not compiled (its features still are)."""
    fn = load_source("M = model('pipe_std_logreg')\n\n\n"
                     "def predict(a, b, c):\n"
                     f"    X = {FEATURES}\n"
                     "    return M.predict_proba(X)\n", HEADER)
    cp = mloc_ir.compile(fn, dtypes={k: "f32" for k in "abc"})
    (reason,) = cp.plan.host_reasons.values()
    assert "float32" in reason
    rng = np.random.default_rng(2)
    inputs = {k: rng.normal(size=5).astype(np.float32) for k in "abc"}
    assert_exact(cp(**inputs), fn(**inputs))


def test_float32_linear_model_on_float32_features_runs_on_the_host():
    """Ridge fitted on float32 keeps float32 coefficients; on float32 features scikit-learn
    then predicts in float32.  On float64 features it is fused as usual."""
    src = ("M = model('ridge32')\n\n\n"
           "def predict(a, b, c):\n"
           f"    X = {FEATURES}\n"
           "    return M.predict(X)\n")
    fn = load_source(src, HEADER)
    cp = mloc_ir.compile(fn, dtypes={k: "f32" for k in "abc"})
    (reason,) = cp.plan.host_reasons.values()
    assert "float32 coefficients" in reason
    rng = np.random.default_rng(3)
    inputs = {k: rng.normal(size=6).astype(np.float32) for k in "abc"}
    out = cp(**inputs)
    assert out.dtype == np.float32
    assert_exact(out, fn(**inputs))
    _assert_one_native_stage(mloc_ir.compile(fn))


def test_refit_model_is_converted_again():
    """The conversion cache is keyed by the fitted state, not the object alone."""
    from sklearn.tree import DecisionTreeRegressor
    X, _, y = _data()
    m = DecisionTreeRegressor(max_depth=2, random_state=0).fit(X, y)
    first = converted(m)
    assert converted(m) is first
    m.fit(X, -y)
    again = converted(m)
    assert again is not first
    assert np.array_equal(again.reference("predict", X[:5]), m.predict(X[:5]))


def test_saved_pipeline_keeps_fused_models_and_host_heads(tmp_path):
    from codegen.pipeline import load_pipeline
    fn, cp = pipeline("rf_str", ("M.predict(X)", "M.predict_proba(X)"))
    loaded = load_pipeline(cp.save(tmp_path / "rf_str"))
    assert loaded.plan.stages[0].finish
    rng = np.random.default_rng(4)
    inputs = {k: rng.normal(scale=3, size=21) for k in "abc"}
    assert_exact(loaded(**inputs), fn(**inputs))
