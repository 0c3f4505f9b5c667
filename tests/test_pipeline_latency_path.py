"""The lean small-call path of a compiled pipeline (issue #3).

A one-row call binds its inputs with ``InputBinder`` (array and DataFrame-column fast paths),
then runs each native stage through ``runtime.loader.ArrayCall`` (a native trampoline that
checks the arrays and reads their data pointers), or, when that cannot take the arrays, through
preallocated argument buffers (``_Staging``) or the general path.  Every path must give the
interpreter's results, never hand out a buffer the next call overwrites, and keep every input
error.
"""
from __future__ import annotations

import threading

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from codegen import pipeline as cpipe
from mloc_ir import interpret
from mloc_ir.errors import InputError, MlocError
from mloc_ir.interpreter import InputBinder, bind_inputs
from runtime import loader
from tests.test_pipeline_codegen import Case, assert_exact, case, quietly

RNG = np.random.default_rng(7)
X_TRAIN = RNG.normal(size=(400, 3))
MODEL = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 0},
                  lgb.Dataset(X_TRAIN, (X_TRAIN[:, 0] + X_TRAIN[:, 1] ** 2 > 0.5).astype(int)),
                  10)
HEADER = "import numpy as np\nimport pandas as pd\nfrom tests.test_pipeline_latency_path import MODEL\n"

COLUMNS = ("def predict(a, b, k):\n"
           "    r = a / np.maximum(np.abs(b), 1.0)\n"
           "    X = np.column_stack([r, np.log1p(np.abs(b)), k * 0.5])\n"
           "    return MODEL.predict(X), r > 0.2\n")
FRAME = ("def predict(df):\n"
         "    X = np.column_stack([df['a'] - df['b'], df['b'] * 2.0, df['k'] + 1.0])\n"
         "    return MODEL.predict(X)\n")


def columns_case():
    return case("latency-columns", lambda: Case(COLUMNS, {"a": "f64", "b": "f64", "k": "i64"},
                                                header=HEADER))


def frame_case():
    return case("latency-frame", lambda: Case(FRAME, {"df.a": "f64", "df.b": "f64",
                                                      "df.k": "i64"}, header=HEADER))


def rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=n), "b": rng.normal(size=n) * 3,
            "k": rng.integers(-5, 5, size=n)}


def stage_of(c):
    (stage,) = c.compiled._native.values()
    return stage


def same_as_interpreter(c, inputs):
    expected = quietly(interpret, c.graph, **inputs)
    actual = quietly(c.compiled, **inputs)
    assert_exact(actual, expected, where="native vs interpreter")
    return actual


def test_trampoline_is_available_and_used_here():
    """On this CPython/NumPy the object layout checks pass, so the fast path is what runs."""
    assert loader._layout_matches()
    c = columns_case()
    st = stage_of(c)
    assert st.array_call is not None
    calls = []
    real = st._run_arrays
    st._run_arrays = lambda env, n: calls.append(n) or real(env, n)
    try:
        same_as_interpreter(c, rows(1))
    finally:
        del st._run_arrays
    assert calls == [1]


@pytest.mark.parametrize("path", ["arrays", "staged", "direct"])
@pytest.mark.parametrize("n", [0, 1, 2, 63, 64, 65, 300])
def test_every_path_matches_the_interpreter(path, n, monkeypatch):
    c = columns_case()
    st = stage_of(c)
    if path != "arrays":
        monkeypatch.setattr(st, "array_call", None)
    if path == "direct":
        monkeypatch.setattr(st, "staging", None)
    same_as_interpreter(c, rows(n, seed=n))


@pytest.mark.parametrize("path", ["arrays", "staged", "direct"])
def test_results_of_reused_calls_are_not_aliased(path, monkeypatch):
    """The staged path reuses its buffers: what a call returned must survive the next call."""
    c = columns_case()
    st = stage_of(c)
    if path != "arrays":
        monkeypatch.setattr(st, "array_call", None)
    if path == "direct":
        monkeypatch.setattr(st, "staging", None)
    first = quietly(c.compiled, **rows(1, seed=1))
    kept = tuple(x.copy() for x in first)
    second = quietly(c.compiled, **rows(1, seed=2))
    for x, y, k in zip(first, second, kept):
        assert not np.shares_memory(x, y)
        np.testing.assert_array_equal(x, k)  # not overwritten by the second call
    assert first[0][0] != second[0][0]
    if st.staging is not None:
        assert not any(np.shares_memory(x, b) for x in first + second
                       for b in st.staging.buffers if b is not None)


def test_inputs_the_trampoline_rejects_take_the_checked_path():
    """Strided, read-only, other-dtype and list inputs: the trampoline answers -1 and the
    Python path converts them; results stay the interpreter's."""
    c = columns_case()
    base = rows(8, seed=3)
    strided = {"a": base["a"][::2], "b": base["b"][::2], "k": base["k"][::2]}
    same_as_interpreter(c, strided)
    ro = {k: v[:1].copy() for k, v in base.items()}
    for v in ro.values():
        v.flags.writeable = False
    same_as_interpreter(c, ro)  # inputs need not be writeable
    same_as_interpreter(c, {"a": base["a"][:1].astype(np.float32), "b": [2.5], "k": [True]})
    same_as_interpreter(c, {"a": base["a"][:1], "b": base["b"][:1],
                            "k": base["k"][:1].astype(np.int32)})


def test_array_call_checks_every_array_before_running():
    c = columns_case()
    st = stage_of(c)
    call = st.array_call
    n = 3
    ins = [np.ones(n), np.ones(n), np.ones(n, dtype=np.int64)]
    outs = [np.zeros(n), np.zeros(n, dtype=bool)]
    assert len(st._inputs) == 3 and len(st._outputs) == 2
    assert [dt for _, dt, _, _ in st._inputs] == [np.float64, np.float64, np.int64]
    assert call(tuple(ins + outs), n) == 0
    assert outs[0].any()
    for bad in ([np.ones(n), np.ones(n), np.ones(n)],                     # dtype
                [np.ones(n + 1), np.ones(n), np.ones(n, dtype=np.int64)],  # rows
                [np.ones((n, 1)), np.ones(n), np.ones(n, dtype=np.int64)],  # ndim
                [np.ones(2 * n)[::2], np.ones(n), np.ones(n, dtype=np.int64)],  # strides
                [np.ma.ones(n), np.ones(n), np.ones(n, dtype=np.int64)],  # subclass
                [np.ones(n), np.ones(n)]):                                 # argument count
        fresh = [np.zeros(n), np.zeros(n, dtype=bool)]
        assert call(tuple(bad + fresh), n) == -1
        assert not fresh[0].any()  # nothing ran
    frozen = [np.zeros(n), np.zeros(n, dtype=bool)]
    frozen[0].flags.writeable = False
    assert call(tuple(ins + frozen), n) == -1  # outputs must be writeable


def test_staged_call_while_the_buffers_are_busy_uses_fresh_arrays(monkeypatch):
    c = columns_case()
    st = stage_of(c)
    monkeypatch.setattr(st, "array_call", None)
    assert st.staging is not None
    with st.staging.lock:  # as if another thread were inside a staged call
        same_as_interpreter(c, rows(1, seed=5))


def test_concurrent_one_row_calls(monkeypatch):
    """Threads calling one pipeline at once (kernels release the GIL) all get their own rows'
    results, on the trampoline and on the shared staging buffers."""
    c = columns_case()
    inputs = [rows(1, seed=100 + i) for i in range(40)]
    expected = [quietly(interpret, c.graph, **r) for r in inputs]
    for path in ("arrays", "staged"):
        if path == "staged":
            monkeypatch.setattr(stage_of(c), "array_call", None)
        errors = []

        def work(offset):
            try:
                for rep in range(30):
                    i = (offset + rep) % len(inputs)
                    got = quietly(c.compiled, **inputs[i])
                    for g, e in zip(got, expected[i]):
                        np.testing.assert_array_equal(g, e)
            except Exception as exc:  # noqa: BLE001 -- reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]


@pytest.mark.parametrize("n", [0, 1, 5])
def test_dataframe_input_matches_the_interpreter(n):
    c = frame_case()
    r = rows(n, seed=n)
    df = pd.DataFrame({"k": r["k"], "a": r["a"], "b": r["b"], "other": ["x"] * n})
    out = same_as_interpreter(c, {"df": df})
    assert out.shape == (n,)
    # an int column where the graph reads f64, an extension dtype: the general path converts
    df2 = pd.DataFrame({"a": r["a"].astype(np.float32), "b": pd.array(r["b"], dtype="Float64"),
                        "k": r["k"]})
    same_as_interpreter(c, {"df": df2})


def test_frame_column_fast_path_is_what_pandas_returns():
    from mloc_ir.interpreter import _frame_column
    df = pd.DataFrame({"a": [1.0, 2.0], "k": [1, 2], "s": ["x", "y"]})
    got = _frame_column(df, "a", np.dtype(np.float64))
    np.testing.assert_array_equal(got, df["a"].to_numpy())
    assert not got.flags.writeable  # like Series.to_numpy() under copy-on-write
    with pytest.raises(ValueError):
        got[0] = 5.0
    assert df["a"].iloc[0] == 1.0
    # other numbers are cast as _column casts them; strings come as Series.to_numpy() gives them
    from mloc_ir.interpreter import _column
    for col, want, ir in (("k", np.float64, "f64"), ("a", np.int64, "i64"), ("k", bool, "bool")):
        got = _frame_column(df, col, np.dtype(want))
        ref = _column(df[col], col, ir)
        assert got.dtype == ref.dtype and np.array_equal(got, ref)
    strs = pd.DataFrame({"s": pd.Series(["x", None, "é"], dtype="str"),
                         "o": pd.Series(["x", np.nan, "é"], dtype=object)})
    for col in ("s", "o"):
        got = _frame_column(strs, col, None)
        ref = strs[col].to_numpy()
        assert got.dtype == object and len(got) == 3
        assert [g if isinstance(g, str) else "NaN" for g in got] == \
            [r if isinstance(r, str) else "NaN" for r in ref]
    assert _frame_column(df, "missing", np.dtype(np.float64)) is None
    dup = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    assert _frame_column(dup, "a", np.dtype(np.float64)) is None  # df['a'] is a frame
    assert _frame_column({"a": np.ones(2)}, "a", np.dtype(np.float64)) is None


def test_dataframe_input_errors_are_the_interpreters():
    c = frame_case()
    good = pd.DataFrame({"a": [1.0], "b": [2.0], "k": [3]})
    for bad, match in ((good.drop(columns="b"), "has no column 'b'"),
                       (pd.DataFrame([[1.0, 2.0, 3, 4.0]], columns=["a", "b", "k", "b"]),
                        "1-D column"),
                       (good.assign(a=["x"]), "numeric or bool")):
        for run in (lambda: interpret(c.graph, df=bad), lambda: c.compiled(df=bad)):
            with pytest.raises(InputError, match=match):
                run()


def test_one_row_input_errors_are_kept():
    c = columns_case()
    one = rows(1)
    cases = [({**one, "b": np.ones(2)}, "different lengths"),
             ({**one, "a": np.array(["x"])}, "numeric or bool"),
             ({**one, "a": np.ones((1, 1))}, "1-D column"),
             ({**one, "a": 1.0}, "1-D column"),
             ({"a": one["a"], "b": one["b"]}, "missing the input 'k'"),
             ({**one, "z": one["a"]}, "no parameter 'z'")]
    for inputs, match in cases:
        for run in (lambda: interpret(c.graph, **inputs), lambda: c.compiled(**inputs)):
            with pytest.raises(MlocError, match=match):
                run()
    with pytest.raises(InputError, match="two values for 'a'"):
        c.compiled(one["a"], a=one["a"], b=one["b"], k=one["k"])
    with pytest.raises(InputError, match="takes 3 arguments, got 4"):
        c.compiled(one["a"], one["b"], one["k"], one["k"])
    same_as_interpreter(c, one)  # positional and keyword binding agree
    np.testing.assert_array_equal(c.compiled(one["a"], one["b"], k=one["k"])[0],
                                  c.compiled(**one)[0])


def test_binder_keeps_bind_inputs_results():
    c = columns_case()
    one = rows(1)
    binder = InputBinder(c.graph)
    got, want = binder((), one), bind_inputs(c.graph, (), one)
    assert got.keys() == want.keys()
    for nid in got:
        assert got[nid] is one[c.graph[nid].attrs["param"]]  # already the right array
    converted = binder((), {**one, "k": one["k"].astype(np.int8)})
    assert converted[c.graph.input_nodes()[2].id].dtype == np.int64


def test_staging_capacity_follows_the_row_size():
    c = columns_case()
    st = stage_of(c)
    assert st.staging.rows == cpipe.MAX_STAGED_ROWS
    assert all(b.shape[0] == st.staging.rows for b in st.staging.buffers if b is not None)


SINGLE = ("def predict(a, b, k):\n"
          "    X = np.column_stack([a / np.maximum(np.abs(b), 1.0), np.log1p(np.abs(b)), k * 0.5])\n"
          "    return MODEL.predict(X)\n")


def single_case():
    return case("latency-single", lambda: Case(SINGLE, {"a": "f64", "b": "f64", "k": "i64"},
                                               header=HEADER))


def test_unbound_small_calls_match_the_interpreter():
    """One native stage over plain columns: small calls skip binding; anything the trampoline
    rejects (lists, other dtypes, unequal lengths) takes the checked path with its errors."""
    c = single_case()
    assert c.compiled._unbound is not None
    used = []
    real = c.compiled._call_unbound
    c.compiled._call_unbound = lambda a, k: used.append(1) or real(a, k)
    try:
        for n in (0, 1, 2, 63, 64, 200):
            same_as_interpreter(c, rows(n, seed=n))
        r = rows(3)
        got = c.compiled(r["a"], r["b"], r["k"])  # positional
        assert_exact(got, interpret(c.graph, **r))
        assert_exact(c.compiled(a=list(r["a"]), b=r["b"], k=r["k"]), interpret(c.graph, **r))
        assert_exact(c.compiled(a=r["a"], b=r["b"], k=r["k"].astype(np.float64)),
                     interpret(c.graph, a=r["a"], b=r["b"], k=r["k"].astype(np.float64)))
        with pytest.raises(InputError, match="different lengths"):
            c.compiled(a=r["a"], b=r["b"][:2], k=r["k"])
        with pytest.raises(InputError, match="missing the input 'k'"):
            c.compiled(a=r["a"], b=r["b"])
        with pytest.raises(InputError, match="no parameter 'q'"):
            c.compiled(a=r["a"], b=r["b"], q=r["k"])
        first = c.compiled(**rows(1, seed=1))
        kept = first.copy()
        c.compiled(**rows(1, seed=2))
        assert_exact(first, kept)  # a fresh output every call
    finally:
        del c.compiled._call_unbound
    assert len(used) >= 6


def test_pipelines_of_other_shapes_take_the_bound_path():
    assert columns_case().compiled._unbound is None  # two outputs
    assert frame_case().compiled._unbound is None  # a DataFrame parameter
