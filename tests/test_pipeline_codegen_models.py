"""Models inside fused pipelines, host stages around them, plans, artifacts and errors."""
from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from hypothesis import given
from hypothesis import strategies as st

from codegen.pipeline import PipelineLoadError, compile_pipeline, load_pipeline
from codegen.pipeline_plan import plan
from mloc_ir import parse
from tests.test_pipeline_codegen import FAST, Case, assert_exact, case, columns

# Models trained once here; the generated pipeline modules import them from this module.
_rng = np.random.default_rng(0)
_X = _rng.normal(size=(600, 4))
_X[::13, 1] = np.nan
_y = (_X[:, 0] + np.nan_to_num(_X[:, 1]) ** 2 > 0.5)
BOOSTER = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15,
                     "min_data_in_leaf": 5, "seed": 1, "num_threads": 1}, lgb.Dataset(_X, _y), 20)
MULTI = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 7,
                   "seed": 1, "num_threads": 1}, lgb.Dataset(_X, np.argmax(_X[:, :3], axis=1)), 8)
CLF = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1, n_jobs=1).fit(_X, _y)
# a scikit-learn model mloc does not compile: it runs as a host stage
KNN = KNeighborsClassifier(5).fit(np.nan_to_num(_X), _y)
RATE = {0: 0.1, 1: 0.2, 2: 0.3, 3.5: 0.4}


def shout(x):
    return np.asarray(list(x)) * 2.0  # list(...): not inlined, an opaque call


MODEL_HEADER = ("import numpy as np\n"
                "from tests.test_pipeline_codegen_models import BOOSTER, MULTI, CLF, KNN, RATE, "
                "shout\n")

CREDIT = ("def predict(a, b, c, k):\n"
          "    r = a / (np.abs(b) + 1)\n"
          "    t = np.array([RATE.get(v, 0.0) for v in k])\n"
          "    X = np.column_stack([r, b, c * 2, t])\n"
          "    p = BOOSTER.predict(X)\n"
          "    return p, p > 0.5, BOOSTER.predict(X, raw_score=True), MULTI.predict(X)\n")
CREDIT_DTYPES = {"a": "f64", "b": "f64", "c": "f32", "k": "i64"}


def credit_case():
    return case("credit", lambda: Case(CREDIT, CREDIT_DTYPES, header=MODEL_HEADER))


@FAST
@given(data=st.data())
def test_lightgbm_models_fused_with_features(data):
    credit_case().check(data.draw(columns(CREDIT_DTYPES)))


@FAST
@given(data=st.data())
def test_lightgbm_on_int_and_bool_features_reads_them_as_float32(data):
    body = ("def predict(a, b, c):\n"
            "    X = np.column_stack([a, b, a * 3, b & (a > 0)])\n"
            "    return BOOSTER.predict(X), CLF.predict_proba(X)\n")
    dts = {"a": "i64", "b": "bool", "c": "f64"}
    c = case("lgb_int", lambda: Case(body, dts, header=MODEL_HEADER))
    c.check(data.draw(columns(dts)))


@FAST
@given(data=st.data())
def test_host_model_between_native_stages(data):
    """KNeighborsClassifier runs on the host; the features before and the ops after are native."""
    body = ("def predict(a, b):\n"
            "    X = np.column_stack([np.nan_to_num(a), np.nan_to_num(b), a * 0, b * 0 + 1])\n"
            "    p = KNN.predict_proba(X)\n"
            "    q = p[:, 1] * 2 + a\n"
            "    return q, BOOSTER.predict(np.column_stack([q, a, b, p[:, 0]]))\n")
    dts = {"a": "f64", "b": "f64"}
    c = case("host_model", lambda: Case(body, dts, header=MODEL_HEADER, host_ok=("model",)))
    kinds = [s.kind for s in c.compiled.plan.stages]
    assert kinds == ["native", "host", "native"]
    inputs = data.draw(columns(dts, lengths=[1, 2, 9, 17]))
    c.check(inputs)


def test_plan_materialises_only_values_crossing_stages():
    c = case("host_model", lambda: Case(
        "def predict(a, b):\n"
        "    X = np.column_stack([np.nan_to_num(a), np.nan_to_num(b), a * 0, b * 0 + 1])\n"
        "    p = KNN.predict_proba(X)\n"
        "    q = p[:, 1] * 2 + a\n"
        "    return q, BOOSTER.predict(np.column_stack([q, a, b, p[:, 0]]))\n",
        {"a": "f64", "b": "f64"}, header=MODEL_HEADER, host_ok=("model",)))
    g, p = c.graph, c.compiled.plan
    first, host, last = p.stages
    assert [g[i].name for i in first.outputs] == ["X"]  # only the host model's input
    assert [g[i].op for i in host.nodes] == ["model"]
    assert "not compiled natively" in p.host_reasons[host.nodes[0]]
    assert {g[i].name for i in last.inputs} == {"a", "b", "p"}
    assert {g[i].name for i in last.outputs} == {"q", "pred"}  # the returned values
    text = c.compiled.explain()
    assert "stage1_host" in text and "KNeighborsClassifier" in text or "model" in text


def test_plan_of_string_and_opaque_ops():
    body = ("def predict(s, x):\n"
            "    n = np.array([len(t) for t in s])\n"
            "    y = shout(x)\n"
            "    return n * 2 + x, y\n")
    c = Case(body, {"s": "str", "x": "f64"}, header=MODEL_HEADER, host_ok=("str_len", "pycall"))
    # the compiled graph: len(t) became a native text-statistics kernel (codegen/text_rewrite)
    g, p = c.compiled.graph, c.compiled.plan
    ops = {s.kind: sorted(g[i].op for i in s.nodes) for s in p.stages}
    assert ops["host"] == ["pycall", "pycall"]
    assert ops["native"] == ["add", "column", "mul"]
    shout = [n for n in g.find("pycall") if n.attrs["qualname"] == "shout"][0]
    assert "always runs in Python (not inlined: " in p.host_reasons[shout.id]
    assert "constructing list inside the pipeline" in p.host_reasons[shout.id]
    s = np.array(["ab", "", "xyz"], dtype=object)
    x = np.array([1.0, np.nan, -0.0])
    assert_exact(c.compiled(s, x), c.fn(s, x))


def test_plan_levels_alternate_and_cover_every_node():
    c = credit_case()
    g, p = c.graph, c.compiled.plan
    assert [s.kind for s in p.stages] == ["native"]
    covered = {i for s in p.stages for i in s.nodes}
    assert covered | set(p.consts) | {n.id for n in g.input_nodes()} == {n.id for n in g.nodes()}
    assert not p.host_reasons


def test_forced_host_nodes_move_and_results_stay_exact():
    c = credit_case()
    model = c.graph.find("model")[0].id
    p = plan(c.graph, {model: "forced by the test"})
    assert p.host_reasons[model] == "forced by the test"
    assert [s.kind for s in p.stages] == ["native", "host", "native"]


def test_save_and_load_round_trip(tmp_path):
    c = credit_case()
    rng = np.random.default_rng(3)
    inputs = {"a": rng.normal(size=50), "b": rng.normal(size=50),
              "c": rng.normal(size=50).astype(np.float32), "k": rng.integers(0, 5, 50)}
    path = c.compiled.save(tmp_path / "credit")
    meta = json.loads((path / "plan.json").read_text())
    assert [s["kind"] for s in meta["stages"]] == ["native"]
    loaded = load_pipeline(path)
    assert loaded.object_code == c.compiled.object_code  # linked, not recompiled
    assert_exact(loaded(**inputs), c.compiled(**inputs))


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(PipelineLoadError, match="missing"):
        load_pipeline(tmp_path / "nothing")
    c = credit_case()
    path = c.compiled.save(tmp_path / "p")
    meta = json.loads((path / "plan.json").read_text())
    meta["format"] = 999
    (path / "plan.json").write_text(json.dumps(meta))
    with pytest.raises(PipelineLoadError, match="format 999"):
        load_pipeline(path)
    path = c.compiled.save(tmp_path / "q")
    (path / "pipeline.pkl").write_bytes(b"not a pickle")
    with pytest.raises(PipelineLoadError, match="cannot read"):
        load_pipeline(path)


def test_saved_pipeline_for_another_cpu_is_recompiled(tmp_path):
    c = credit_case()
    path = c.compiled.save(tmp_path / "p")
    meta = json.loads((path / "plan.json").read_text())
    meta["cpu"] = "some-other-cpu"
    (path / "plan.json").write_text(json.dumps(meta))
    loaded = load_pipeline(path)
    x = {"a": np.ones(3), "b": np.zeros(3), "c": np.ones(3, np.float32), "k": np.arange(3)}
    assert_exact(loaded(**x), c.compiled(**x))


def test_compile_rejects_a_broken_graph():
    from mloc_ir.errors import VerificationError
    g = parse(credit_case().fn, dtypes=CREDIT_DTYPES)
    g.outputs = [12345]
    with pytest.raises((VerificationError, KeyError)):
        compile_pipeline(g)
