"""Three-way equivalence of fused native pipelines: original Python == interpreter == native.

Each targeted pipeline covers one family of ops for one combination of operand dtypes and
returns every valid op as a tuple, so one compilation serves many ops; hypothesis then draws
inputs (NaN, +-inf, 0, -0.0, huge/tiny values, extreme ints, empty, one row, lengths that are
not a multiple of the block size).  Kernels here use 8-row blocks, so short batches already
cross block boundaries and leave partial blocks.

Comparison is stricter than IEEE equality: values must be bit-identical (so -0.0 != 0.0), any
NaN equals any NaN, and dtypes and shapes must match.  The one documented exception is float32
``log``/``exp`` (see ``codegen/pipeline_ops.py``): NumPy uses its own SIMD approximations
there, so those results may differ by up to 3 ulp.
"""
from __future__ import annotations

import itertools
import os
import sys
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.pipeline import compile_pipeline
from mloc_ir import interpret, parse
from mloc_ir.errors import MlocError
from mloc_ir.source import load_function

_DIR = tempfile.mkdtemp(prefix="mloc_codegen_")
_COUNTER = itertools.count()
HEADER = "import numpy as np\nimport pandas as pd\n"
DTYPES = ("bool", "i64", "f32", "f64")
NP = {"bool": np.bool_, "i64": np.int64, "f32": np.float32, "f64": np.float64}
BLOCK = 8
LENGTHS = [0, 1, 2, 7, 8, 9, 17, 31]
FAST = settings(max_examples=int(os.environ.get("MLOC_HYPOTHESIS_EXAMPLES", "15")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                deadline=None)


def load_source(body: str, header: str = HEADER):
    """Write a pipeline module and import its ``predict``."""
    name = f"mloc_codegen_{os.getpid()}_{next(_COUNTER)}"
    path = os.path.join(_DIR, name + ".py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(header + "\n\n" + body)
    try:
        return load_function(path, "predict")
    finally:
        sys.modules.pop(name, None)


def quietly(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _bits_equal(a: np.ndarray, e: np.ndarray, ulps: int = 0) -> np.ndarray:
    if a.dtype.kind != "f":
        return a == e
    both_nan = np.isnan(a) & np.isnan(e)
    ia = a.view(np.int32 if a.dtype == np.float32 else np.int64).astype(object)
    ie = e.view(np.int32 if e.dtype == np.float32 else np.int64).astype(object)
    if ulps == 0:
        return both_nan | (ia == ie)
    # distance in ulps for same-signed finite values; otherwise exact
    same_sign = np.signbit(a) == np.signbit(e)
    close = same_sign & (np.abs((ia - ie).astype(np.float64)) <= ulps)
    return both_nan | (ia == ie) | close


def assert_exact(actual, expected, *, ulps: dict[int, int] | None = None, where: str = ""):
    """Same outputs, shapes, dtypes, and bit-identical values (NaN == NaN)."""
    a_items = list(actual) if isinstance(actual, tuple) else [actual]
    e_items = list(expected) if isinstance(expected, tuple) else [expected]
    assert len(a_items) == len(e_items), f"{where}: {len(a_items)} outputs != {len(e_items)}"
    for k, (a, e) in enumerate(zip(a_items, e_items)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"{where} output {k}: shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"{where} output {k}: dtype {a.dtype} != {e.dtype}"
        same = _bits_equal(a, e, (ulps or {}).get(k, 0))
        bad = np.flatnonzero(~np.asarray(same, bool).ravel())
        if len(bad):
            i = bad[0]
            raise AssertionError(f"{where} output {k}: {len(bad)} of {a.size} differ; first at "
                                 f"{i}: {a.ravel()[i]!r} != {e.ravel()[i]!r}")


def three_way(fn, graph, compiled, inputs: dict, ulps=None):
    """Run all three; they must agree exactly (or all raise the same exception type)."""
    results = []
    for run in (lambda: fn(**inputs), lambda: interpret(graph, **inputs),
                lambda: compiled(**inputs)):
        try:
            results.append(("ok", quietly(run)))
        except Exception as exc:  # noqa: BLE001 -- compared below
            results.append(("raise", exc))
    kinds = [k for k, _ in results]
    if "raise" in kinds:
        assert kinds == ["raise"] * 3, f"only some raised: {results}"
        assert len({type(v) for _, v in results}) == 1, results
        return
    assert_exact(results[1][1], results[0][1], ulps=ulps, where="interpreter vs python")
    assert_exact(results[2][1], results[1][1], ulps=ulps, where="native vs interpreter")


# ---------------------------------------------------------------------------------------------
# Input strategies

SPECIAL_F = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5,
             1e308, -1e308, 5e-324, 1e-300, 9.3e18, -9.3e18, 2.0 ** 63, -(2.0 ** 63), 3.0, 7.0]
SPECIAL_I = [0, 1, -1, 2, 3, -3, 7, 100, 2 ** 31, -(2 ** 63), 2 ** 63 - 1, 2 ** 62, -(2 ** 62)]


def elements(dtype: str):
    if dtype == "bool":
        return st.booleans()
    if dtype == "i64":
        return st.one_of(st.sampled_from(SPECIAL_I), st.integers(-10, 10),
                         st.integers(-(2 ** 63), 2 ** 63 - 1))
    width = 32 if dtype == "f32" else 64
    special = [float(np.float32(v)) if width == 32 else v for v in SPECIAL_F if width == 64 or abs(v) < 3e38]
    return st.one_of(st.sampled_from(special), st.floats(width=width),
                     st.floats(-10, 10, width=width))


@st.composite
def columns(draw, dtypes: dict[str, str], lengths=LENGTHS):
    n = draw(st.sampled_from(lengths))
    return {name: np.array(draw(st.lists(elements(dt), min_size=n, max_size=n)), dtype=NP[dt])
            for name, dt in dtypes.items()}


class Case:
    """A compiled targeted pipeline."""

    def __init__(self, body: str, dtypes: dict[str, str], header: str = HEADER, ulps=None,
                 threads: int = 1, host_ok=()):
        self.fn = load_source(body, header)
        self.dtypes = dtypes
        self.graph = parse(self.fn, dtypes=dtypes)
        self.compiled = compile_pipeline(self.graph, block_rows=BLOCK, threads=threads)
        self.ulps = ulps
        # targeted pipelines must really run natively (a silent host fallback proves nothing)
        # (the compiled graph: text ops may have been rewritten into native kernels)
        host = {self.compiled.graph[i].op: r for i, r in self.compiled.plan.host_reasons.items()}
        assert set(host) <= set(host_ok), f"unexpected host nodes: {host}"

    def check(self, inputs):
        three_way(self.fn, self.graph, self.compiled, inputs, self.ulps)


_CASES: dict = {}


def case(key, build):
    if key not in _CASES:
        _CASES[key] = build()
    return _CASES[key]


def _valid(fn, *probes) -> bool:
    """NumPy accepts the operands and computes in a dtype the IR has (bool // bool runs in
    int8, which the front end rejects with a cast hint: see test_frontend_regressions)."""
    try:
        with np.errstate(all="ignore"):
            out = fn(*probes)
    except (TypeError, ValueError):
        return False
    return np.asarray(out).dtype in (np.bool_, np.int64, np.float32, np.float64)


def _probe(dt, const=None):
    return const if const is not None else np.ones(2, dtype=NP[dt])


# ---------------------------------------------------------------------------------------------
# Binary ops, every pair of column dtypes and column-constant pairs

BINARY = ["add", "subtract", "multiply", "true_divide", "floor_divide", "remainder", "power",
          "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
          "bitwise_and", "bitwise_or", "bitwise_xor", "minimum", "maximum"]
CONSTS = {"int": "3", "negint": "-2", "float": "0.1", "negzero": "-0.0", "nan": "np.nan",
          "big": "1e300", "f32": "np.float32(0.1)", "true": "True"}


def _binary_body(da: str, db: str | None, const: str | None):
    outs = []
    for name in BINARY:
        pa = _probe(da)
        pb = _probe(db) if db else eval(const, {"np": np})  # noqa: S307 -- our own constants
        if not _valid(getattr(np, name), pa, pb):
            continue
        if name == "power" and np.result_type(pa, pb).kind in "iub":
            continue  # negative int exponents raise: tested in test_int_power_errors
        rhs = "b" if db else const
        outs.append(f"np.{name}(a, {rhs})")
        if not db:
            outs.append(f"np.{name}({rhs}, a)" if _valid(getattr(np, name), pb, pa) else None)
    outs = [o for o in outs if o]
    params = "a, b" if db else "a"
    return f"def predict({params}):\n    return ({', '.join(outs)},)\n"


@pytest.mark.parametrize("da,db", list(itertools.product(DTYPES, DTYPES)))
@FAST
@given(data=st.data())
def test_binary_ops_on_two_columns(da, db, data):
    c = case(("bin", da, db), lambda: Case(_binary_body(da, db, None), {"a": da, "b": db}))
    c.check(data.draw(columns({"a": da, "b": db})))


@pytest.mark.parametrize("da,const", list(itertools.product(DTYPES, CONSTS)))
@FAST
@given(data=st.data())
def test_binary_ops_with_a_constant(da, const, data):
    c = case(("binc", da, const), lambda: Case(_binary_body(da, None, CONSTS[const]), {"a": da}))
    c.check(data.draw(columns({"a": da})))


@FAST
@given(data=st.data())
def test_int_power_errors(data):
    """int ** int: wrap-around like NumPy; a negative exponent raises ValueError everywhere."""
    c = case("ipow", lambda: Case("def predict(a, b):\n    return np.power(a, b)\n",
                                  {"a": "i64", "b": "i64"}))
    inputs = data.draw(columns({"a": "i64", "b": "i64"}))
    inputs["b"] = inputs["b"] % data.draw(st.sampled_from([5, 70]))  # mostly non-negative
    if len(inputs["b"]) and data.draw(st.booleans()):
        inputs["b"][0] = -1
    c.check(inputs)


def test_negative_int_power_raises_numpys_error():
    c = case("ipow", lambda: Case("def predict(a, b):\n    return np.power(a, b)\n",
                                  {"a": "i64", "b": "i64"}))
    with pytest.raises(ValueError, match="negative integer powers"):
        c.compiled(a=np.array([2, 3]), b=np.array([1, -1]))


# ---------------------------------------------------------------------------------------------
# Unary ops, rounding, nan_to_num, casts, where

UNARY = ["negative", "invert", "log", "log1p", "exp", "sqrt", "abs", "floor", "ceil", "sign",
         "isnan", "log10", "log2", "expm1", "square"]


def _unary_body(dt):
    outs = [f"np.{u}(a)" for u in UNARY if _valid(getattr(np, u), _probe(dt))
            and getattr(np, u)(_probe(dt)).dtype in (np.bool_, np.int64, np.float32, np.float64)]
    ulps = {}  # NumPy's own loops are called: exact in float32 too (codegen.numpy_loops)
    if dt != "bool":
        outs += [f"np.round(a, {d})" for d in (-2, -1, 0, 1, 3)]
        outs += ["np.nan_to_num(a)", "np.nan_to_num(a, nan=-1.5, posinf=1e300, neginf=-7)"]
    for target in ("bool", "int64", "float32", "float64"):
        outs.append(f"a.astype(np.{target})" if target != "bool" else "a.astype(bool)")
    outs.append("np.where(a > 0, a, 0.5)" if dt != "bool" else "np.where(a, 1, 2)")
    outs.append("np.where(a != 0, 1.5, a)")
    return f"def predict(a):\n    return ({', '.join(outs)},)\n", ulps


@pytest.mark.parametrize("dt", DTYPES)
@FAST
@given(data=st.data())
def test_unary_ops_round_casts_where(dt, data):
    def build():
        body, ulps = _unary_body(dt)
        return Case(body, {"a": dt}, ulps=ulps)
    case(("un", dt), build).check(data.draw(columns({"a": dt})))


@pytest.mark.parametrize("dc,da,db", [("bool", "f32", "i64"), ("f64", "bool", "f32"),
                                      ("i64", "i64", "f64"), ("bool", "bool", "bool")])
@FAST
@given(data=st.data())
def test_where_promotes_branches(dc, da, db, data):
    cond = "c" if dc == "bool" else "c > 0"
    c = case(("where", dc, da, db), lambda: Case(
        f"def predict(c, a, b):\n    return np.where({cond}, a, b), np.where({cond}, a, 2)\n",
        {"c": dc, "a": da, "b": db}))
    c.check(data.draw(columns({"c": dc, "a": da, "b": db})))


# ---------------------------------------------------------------------------------------------
# Lookups, joins, feature assembly

LOOKUP_HEADER = HEADER + """
T_INT = {1: 0.5, 2: -1.5, -7: np.nan, 2 ** 62: 3.0, 0: -0.0}
T_FLOAT = {0.5: 1, -0.0: 2, 1.0: 3, np.nan: 4, 1e300: 5, 2.0 ** 70: 6, 0.1: 7}
T_MIXED = {True: 10, 2.0: 20, "a": 30, 3: 40, 2 ** 70: 50, 0.25: 60}
T_BOOL = {False: True, 1: False}
S_SET = {1, 2.5, True, -0.0}
RATES = pd.DataFrame({"key": np.array([1, 3, -7, 0], dtype=np.int64),
                      "rate": [0.25, np.nan, -1.0, 2.5], "count": [1.0, 2.0, -0.0, 4.0]})
"""


@pytest.mark.parametrize("dt", DTYPES)
@FAST
@given(data=st.data())
def test_lookups_follow_python_key_equality(dt, data):
    body = ("def predict(a):\n"
            "    x = np.array([T_INT.get(v, 9.5) for v in a])\n"
            "    y = np.array([T_FLOAT.get(v, -1) for v in a])\n"
            "    z = np.array([T_MIXED.get(v, 0) for v in a])\n"
            "    w = np.array([T_BOOL.get(v, False) for v in a])\n"
            "    m = np.array([v in S_SET for v in a])\n"
            "    return x, y, z, w, m\n")
    c = case(("lookup", dt), lambda: Case(body, {"a": dt}, header=LOOKUP_HEADER))
    inputs = data.draw(columns({"a": dt}, lengths=[1, 2, 7, 9, 17]))
    keys = [1, 2, -7, 0, 0.5, -0.0, 1.0, 0.1, 2.0, 3, 0.25, 2 ** 62, 1e300, np.nan, True]
    picks = data.draw(st.lists(st.sampled_from(keys), min_size=len(inputs["a"]),
                               max_size=len(inputs["a"])))
    a = inputs["a"].copy()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (use, key) in enumerate(zip(data.draw(st.lists(st.booleans(), min_size=len(a),
                                                              max_size=len(a))), picks)):
            if use and (dt != "i64" or isinstance(key, (int, bool)) or float(key).is_integer()):
                try:
                    a[i] = np.array([key]).astype(NP[dt])[0]
                except (OverflowError, ValueError):
                    pass
    c.check({"a": a})


@FAST
@given(data=st.data())
def test_join_fields(data):
    body = ("def predict(df):\n"
            "    m = df.merge(RATES, on='key', how='left')\n"
            "    return (m['rate'] * 2 + m['amt']).to_numpy(), m['count'].to_numpy()\n")
    c = case("join", lambda: Case(body, {"df.key": "i64", "df.amt": "f64"}, header=LOOKUP_HEADER))
    import pandas as pd
    n = data.draw(st.sampled_from(LENGTHS))
    keys = data.draw(st.lists(st.sampled_from([1, 3, -7, 0, 5, 2 ** 62]), min_size=n, max_size=n))
    amt = data.draw(st.lists(elements("f64"), min_size=n, max_size=n))
    c.check({"df": pd.DataFrame({"key": np.array(keys, dtype=np.int64),
                                 "amt": np.array(amt, dtype=np.float64)})})


@FAST
@given(data=st.data())
def test_stack_and_column_convert_like_column_stack(data):
    body = ("def predict(a, b, c, d):\n"
            "    X = np.column_stack([a, b, c, d])\n"
            "    Y = np.column_stack([a, b])\n"
            "    Z = np.column_stack([c, d])\n"
            "    W = np.hstack([Y, Z])\n"
            "    return X[:, 0] + X[:, 3], Y[:, 1], X, W[:, 2], Y\n")
    dts = {"a": "i64", "b": "bool", "c": "f32", "d": "f64"}
    c = case("stack", lambda: Case(body, dts))
    c.check(data.draw(columns(dts)))


# ---------------------------------------------------------------------------------------------
# Whole pipelines: threads, large batches, errors


def test_threaded_large_batch_matches_interpreter():
    body = ("def predict(a, b):\n"
            "    r = a / (np.abs(b) + 1)\n"
            "    s = np.where(r > 0.5, np.log1p(r), r // 0.3)\n"
            "    return s, (a > b) & (r < 2)\n")
    c = Case(body, {"a": "f64", "b": "f64"}, threads=2)
    rng = np.random.default_rng(1)
    n = 100_003
    inputs = {"a": rng.normal(size=n) * 10, "b": rng.normal(size=n)}
    inputs["a"][::97] = np.nan
    c.check(inputs)


def test_split_follows_the_measured_cost_per_row():
    """A stage timed as expensive splits mid-size batches; parts write disjoint rows, and an
    error status from any part (here: the second half's negative integer power) is raised."""
    c = Case("def predict(a, b):\n    return np.power(a, b)\n", {"a": "i64", "b": "i64"},
             threads=2)
    stage = next(iter(c.compiled._native.values()))
    assert stage._parts(5000, 2) == 1  # untimed: only very large batches split
    a, b = np.arange(5000) % 7, np.arange(5000) % 3
    c.check({"a": a, "b": b})
    assert stage.ns_per_row is not None
    stage.ns_per_row = 1e4  # as if each row cost 10 us
    assert stage._parts(5000, 2) == 2 and stage._parts(10, 2) == 1
    c.check({"a": a, "b": b})  # split run, same values as the interpreter
    b_bad = b.copy()
    b_bad[-1] = -1
    with pytest.raises(ValueError, match="negative integer powers"):
        c.compiled(a, b_bad)


def test_compiled_pipeline_rejects_bad_inputs_like_the_interpreter():
    c = case("ipow", lambda: Case("def predict(a, b):\n    return np.power(a, b)\n",
                                  {"a": "i64", "b": "i64"}))
    with pytest.raises(MlocError, match="different lengths"):
        c.compiled(np.arange(3), np.arange(4))
    with pytest.raises(MlocError, match="missing the input 'b'"):
        c.compiled(np.arange(3))
    with pytest.raises(MlocError, match="no parameter 'q'"):
        c.compiled(np.arange(3), np.arange(3), q=1)
    with pytest.raises(MlocError, match="1-D column"):
        c.compiled(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


def test_one_row_and_python_lists():
    c = case(("bin", "f64", "f64"),
             lambda: Case(_binary_body("f64", "f64", None), {"a": "f64", "b": "f64"}))
    assert_exact(c.compiled(a=[1.5], b=[-0.0]), interpret(c.graph, a=[1.5], b=[-0.0]))
