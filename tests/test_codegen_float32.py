"""float32 mode (``compile_model(..., dtype="float32")``).

What is exact and what is not:

* For float32 inputs, decisions are exact (every slot holds a float32 value, and a float32
  ``x`` satisfies ``x <= t`` exactly when ``x <= round_down_f32(t)``) and leaf values are
  summed in float64 in LightGBM's order, so raw scores and predictions are **bit-identical**
  to ``Booster.predict`` on the same values (as float64).  Tolerance: 0.
* float64 inputs are rounded to the nearest float32 first.  Results are then bit-identical
  to LightGBM on ``X.astype(np.float32)``; they equal LightGBM on the float64 values
  bit for bit in every row where no value rounds across one of the model's thresholds (or
  across LightGBM's zero threshold, or changes its category); other rows may take other
  leaves, and no bound on their difference exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

lgb = pytest.importorskip("lightgbm")

import runtime  # noqa: E402
from codegen import compile_model  # noqa: E402
from codegen.emit_trees import NODE, Lowered, pack_float32, round_down_f32  # noqa: E402
from codegen.ensemble import LIGHTGBM_ZERO_THRESHOLD, DecisionKind, reference_predict  # noqa: E402
from codegen.lightgbm_model import from_lightgbm  # noqa: E402
from tests.test_codegen_ensemble import VALUES, random_ensemble  # noqa: E402
from tests.test_codegen_lightgbm import rows_strategy, special_values  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("MLOC_MODELS_DIR") or REPO.parent / "shared" / "models")
MODEL_FILES = sorted(p.name for p in MODELS_DIR.glob("*.txt")) if MODELS_DIR.is_dir() else []


def f32(X) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(X, np.float64).astype(np.float32)


_compiled: dict = {}


def compiled32(booster):
    """float32 model of ``booster``, compiled once per session (compiling is the slow part)."""
    if id(booster) not in _compiled:
        _compiled[id(booster)] = (booster, compile_model(booster, cache=False, dtype="float32"))
    return _compiled[id(booster)][1]


def check_exact(booster, model, X32, **kw):
    """float32 rows: bit-identical to LightGBM on the same values."""
    assert X32.dtype == np.float32
    got_raw, got = model.predict(X32, raw_score=True), model.predict(X32)
    if len(X32) == 0:
        assert got.shape[0] == 0 and got_raw.shape[0] == 0
        return
    X64 = X32.astype(np.float64)
    np.testing.assert_array_equal(got_raw, booster.predict(X64, raw_score=True, **kw))
    np.testing.assert_array_equal(got, booster.predict(X64, **kw))


# ------------------------------------------------------------------ rounding of thresholds

@pytest.mark.filterwarnings("ignore:overflow")
def test_round_down_f32_is_the_largest_float32_not_above():
    rng = np.random.default_rng(0)
    t = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-40, 40, 2000),
                        [0.0, -0.0, 0.3, 1e-46, -1e-46, 3.5e38, -3.5e38, 1e300, -1e300,
                         np.inf, -np.inf, float(np.finfo(np.float32).max)]])
    r = round_down_f32(t)
    assert r.dtype == np.float32
    assert np.all(r.astype(np.float64) <= t)
    up = np.nextafter(r, np.float32(np.inf)).astype(np.float64)
    assert np.all((up > t) | (r == np.inf))
    # the property the kernels rely on, on float32 values around every threshold
    xs = np.unique(np.concatenate([r, np.nextafter(r, np.float32(np.inf)),
                                   np.nextafter(r, np.float32(-np.inf)), f32(t)]))
    for x in xs[:: max(1, len(xs) // 500)]:
        np.testing.assert_array_equal(np.float64(x) <= t, x <= r)


# ------------------------------------------------------------------- LightGBM model files

@pytest.mark.skipif(not MODEL_FILES, reason=f"no LightGBM model files in {MODELS_DIR} "
                    "(set MLOC_MODELS_DIR)")
@pytest.mark.parametrize("name", MODEL_FILES)
def test_model_file_float32_matches_lightgbm(name):
    path = MODELS_DIR / name
    booster = lgb.Booster(model_file=str(path))
    model = compile_model(path, cache=False, dtype="float32")
    assert model.dtype == "float32"
    values = special_values(booster)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(rows_strategy(model.n_features, values, max_rows=20))
    def check(rows):
        check_exact(booster, model, f32(np.asarray(rows, np.float64).reshape(-1, model.n_features)))

    check()
    rng = np.random.default_rng(1)
    X = rng.choice(np.array(values, dtype=np.float64), size=(2000, model.n_features))
    X[::5] = rng.normal(0, 50, size=X[::5].shape)
    X32 = f32(X)
    check_exact(booster, model, X32)
    check_exact(booster, model, X32[:1])  # one row (the lanes-over-trees path)
    check_exact(booster, model, X32[:0])


# ------------------------------------------------------------------- freshly trained

def _data(n=3000, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    X[:, 5] = rng.integers(0, 12, size=n)  # categorical
    X[rng.random(X.shape) < 0.05] = np.nan
    X[rng.random(X.shape) < 0.05] = 0.0
    y = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 1]) ** 2 + (np.nan_to_num(X[:, 5]) % 3)
    return X, y + rng.normal(scale=0.1, size=n)


def _rows(X, seed=2):
    rng = np.random.default_rng(seed)
    extra = rng.choice([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-40, -1e-40, 1e300, 3.0, 11.0,
                        -1.0, 12.0, 2.0 ** 31], size=(200, X.shape[1]))
    return np.vstack([X, extra])


@pytest.fixture(scope="module")
def fresh_models():
    X, y = _data()
    params = dict(verbose=-1, num_leaves=31, learning_rate=0.2, num_threads=1, min_data_in_leaf=5)
    binary = lgb.train(dict(params, objective="binary"), lgb.Dataset(X, (y > np.median(y)) * 1.0,
                       categorical_feature=[5]), 60)
    label = np.digitize(y, np.quantile(y, [0.33, 0.66]))
    multi = lgb.train(dict(params, objective="multiclass", num_class=3),
                      lgb.Dataset(X, label, categorical_feature=[5]), 20)
    return X, {"binary": binary, "multiclass": multi}


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_fresh_model_float32_inputs_are_exact(fresh_models, kind):
    X, models = fresh_models
    booster = models[kind]
    model = compiled32(booster)
    X32 = f32(_rows(X))
    check_exact(booster, model, X32)
    for n in (0, 1, 7, 9, 100):
        check_exact(booster, model, X32[:n])
    # a batch big enough to be split over two threads
    big = np.tile(X32, (3, 1))
    threaded = compile_model(booster, dtype="float32", threads=2, cache=False)
    np.testing.assert_array_equal(threaded.predict(big, raw_score=True),
                                  model.predict(big, raw_score=True))
    check_exact(booster, threaded, big)
    # rows that are not contiguous in memory (a column slice of a wider array)
    wide = np.zeros((len(X32), X32.shape[1] + 3), np.float32)
    wide[:, 2:2 + X32.shape[1]] = X32
    check_exact(booster, model, wide[:, 2:2 + X32.shape[1]])


def _crosses_a_split(ens, X64) -> np.ndarray:
    """Rows where rounding a value to float32 can change one of the model's decisions."""
    X32 = f32(X64).astype(np.float64)
    z = ens.zero_threshold
    bad = np.zeros(len(X64), bool)
    for t in ens.trees:
        for f, thr, kind in zip(t.feature, t.threshold, t.kind):
            a, b = X64[:, f], X32[:, f]
            if kind == DecisionKind.CATEGORICAL:
                with np.errstate(invalid="ignore"):
                    bad |= np.trunc(a) != np.trunc(b)
            else:
                bad |= (a <= thr) != (b <= thr)
        for f in np.unique(t.feature):
            a, b = X64[:, f], X32[:, f]
            bad |= (np.abs(a) <= z) != (np.abs(b) <= z)
    return bad


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_fresh_model_float64_inputs_round_to_float32(fresh_models, kind):
    X, models = fresh_models
    booster = models[kind]
    model = compiled32(booster)
    rng = np.random.default_rng(3)
    X64 = _rows(X)
    # values one float64 ulp around the thresholds: many of them round across a split
    ens = from_lightgbm(booster)
    thr = np.concatenate([t.threshold[t.kind == 0] for t in ens.trees])
    near = rng.choice(np.concatenate([thr, np.nextafter(thr, np.inf), np.nextafter(thr, -np.inf)]),
                      size=(500, X.shape[1]))
    near[:, 5] = X64[:500, 5]
    X64 = np.vstack([X64, near])
    got_raw = model.predict(X64, raw_score=True)
    got = model.predict(X64)
    # exactly LightGBM on the float32 values ...
    np.testing.assert_array_equal(got_raw, booster.predict(f32(X64).astype(np.float64),
                                                           raw_score=True))
    np.testing.assert_array_equal(got, booster.predict(f32(X64).astype(np.float64)))
    # ... and LightGBM on the float64 values wherever no value rounds across a split
    want_raw = booster.predict(X64, raw_score=True)
    same = ~_crosses_a_split(ens, X64)
    assert 0 < same.sum() < len(X64), "test needs rows on both sides"
    np.testing.assert_array_equal(got_raw[same], want_raw[same])
    assert not np.array_equal(got_raw, want_raw), "rows near thresholds should differ somewhere"


# ------------------------------------------------------------------ every walk, every feature

@pytest.mark.parametrize("seed", [3, 12, 40, 57])
def test_random_ensembles_every_walk(seed):
    from codegen.compile import PREDICT_SYMBOL, RAW_SYMBOL, build_object
    from codegen.emit_trees import PROBE_BLOCKS
    from runtime.loader import load
    from runtime.model import CompiledModel

    ens = random_ensemble(seed)
    rng = np.random.default_rng(seed)
    n_big = (PROBE_BLOCKS + 2) * 256 + 5  # float32 blocks hold up to 256 rows
    X = rng.choice(VALUES, size=(250, ens.n_features))
    mask = rng.random(X.shape) < 0.2
    X[mask] = rng.normal(scale=3, size=int(mask.sum()))
    X32 = f32(X)
    # the reference evaluator is slow: evaluate 250 rows, repeat them
    want_raw = np.tile(reference_predict(ens, X32, raw_score=True), (7, 1))[:n_big]
    want = np.tile(reference_predict(ens, X32), (7, 1))[:n_big]
    X32 = np.tile(X32, (7, 1))[:n_big]
    for walk in ("lockstep", "branchy", "masks", "auto"):
        lib = load(build_object(ens, walk=walk, dtype="float32"), [RAW_SYMBOL, PREDICT_SYMBOL])
        meta = {"symbols": {"raw": RAW_SYMBOL, "predict": PREDICT_SYMBOL}, "dtype": "float32",
                "n_features": ens.n_features, "n_outputs": ens.n_outputs}
        model = CompiledModel(lib, meta, threads=1)
        for n in (n_big, 0, 1, 7, 70, n_big):
            got_raw = model.predict(X32[:n], raw_score=True).reshape(n, ens.n_outputs)
            np.testing.assert_array_equal(got_raw, want_raw[:n], err_msg=f"walk={walk} n={n}")
            got = model.predict(X32[:n]).reshape(n, ens.n_outputs)
            np.testing.assert_array_equal(got, want[:n], err_msg=f"walk={walk} n={n}")


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1))
def test_random_ensembles_match_reference(model_seed, data_seed):
    ens = random_ensemble(model_seed)
    model = compile_model(ens, cache=False, threads=1, dtype="float32")
    rng = np.random.default_rng(data_seed)
    X = f32(rng.choice(VALUES, size=(int(rng.choice([1, 3, 8, 9, 70])), ens.n_features)))
    np.testing.assert_array_equal(model.predict(X, raw_score=True).reshape(len(X), -1),
                                  reference_predict(ens, X, raw_score=True))


# ------------------------------------------------------------------ API, save/load, cache

def test_dtype_is_validated():
    ens = random_ensemble(3)
    with pytest.raises(ValueError, match="dtype must be 'float64'.*or 'float32'"):
        compile_model(ens, cache=False, dtype="float16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        import llvmlite.ir as ir
        from codegen.emit_trees import emit_ensemble
        emit_ensemble(ir.Module("m"), ens, "f", dtype="half")


def test_models_too_big_for_packed_records_are_refused_clearly():
    n = 2 ** 20  # needs 21 bits of record index: 10 bits (1024 slots) left
    nodes = np.zeros(n, NODE)
    low = Lowered(nodes=nodes, roots=np.zeros(1, np.int32), outputs=np.zeros(1, np.int32),
                  widths=np.ones(1, np.int32), leaves=np.zeros(0),
                  slots=[("neg_inf",)] + [("nan_lo", f) for f in range(1024)])
    with pytest.raises(ValueError, match="use dtype='float64'"):
        pack_float32(low)
    low.slots = low.slots[:1024]
    assert pack_float32(low).shift == 21


def test_save_load_and_cache_keep_the_dtype(tmp_path, monkeypatch, fresh_models):
    monkeypatch.setenv("MLOC_CACHE_DIR", str(tmp_path / "cache"))
    X, models = fresh_models
    booster = models["binary"]
    m32 = compile_model(booster, dtype="float32")
    m64 = compile_model(booster)
    assert m32.meta["key"] != m64.meta["key"], "dtype must be part of the cache key"
    again = compile_model(booster, dtype="float32")
    assert again.cache_hit and again.dtype == "float32"
    X32 = f32(_rows(X))
    m32.save(tmp_path / "m.mloc")
    loaded = runtime.load_model(tmp_path / "m.mloc")
    assert loaded.dtype == "float32" and "float32" in repr(loaded)
    want = booster.predict(X32.astype(np.float64), raw_score=True)
    for m in (m32, again, loaded, m64):  # a float64 model converts float32 rows exactly
        np.testing.assert_array_equal(m.predict(X32, raw_score=True), want)


def test_float32_model_input_validation(fresh_models):
    X, models = fresh_models
    model = compiled32(models["binary"])
    with pytest.raises(ValueError, match="features per row"):
        model.predict(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="real numbers"):
        model.predict(np.array([["a"] * 6]))
    # lists and integer arrays are rounded to float32 like float64 arrays
    rows = [[1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 1]]
    np.testing.assert_array_equal(model.predict(rows), model.predict(np.float32(rows)))
    np.testing.assert_array_equal(model.predict(np.array(rows, np.int64)),
                                  model.predict(np.float32(rows)))
    assert LIGHTGBM_ZERO_THRESHOLD == float(np.float32(LIGHTGBM_ZERO_THRESHOLD))


def test_chained_records_that_do_not_fit_fall_back_to_the_plain_walk():
    from codegen.emit_trees import chain_records

    n = 2 ** 19  # pack_float32 needs 20 index bits (11 left), chained states one more
    low = Lowered(nodes=np.zeros(n, NODE), roots=np.zeros(1, np.int32),
                  outputs=np.zeros(1, np.int32), widths=np.ones(1, np.int32),
                  leaves=np.zeros(0), slots=[("neg_inf",)] + [("nan_lo", f) for f in range(2047)])
    assert pack_float32(low).shift == 20
    assert chain_records(low, f32=True) is None
