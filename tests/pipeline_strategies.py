"""Hypothesis strategies that draw random pipelines as Python source, and a result comparison.

``pipelines()`` draws a :class:`DrawnPipeline`: the source of a module defining ``predict``
over the front end's grammar (NumPy arithmetic and math, masks, ``np.where``/``np.clip``,
lookups, per-element comprehensions, pandas Series spellings on a DataFrame parameter, a
left merge, reassigned variables, tuple returns, a LightGBM / scikit-learn model), the inputs
to call it with (NaN, +-inf, 0, -0.0, huge and tiny values, empty and one-row batches, bool /
int64 / float64 and unicode string columns) and the ``dtypes`` to declare to ``parse``.

How it stays inside the language: every expression is evaluated as it is drawn on small
*probe* inputs of the drawn dtypes (NumPy arrays or pandas Series, as the pipeline will see
them), so operand types follow NumPy's and pandas' own rules and a combination they reject is
never emitted. What probes cannot see -- value-dependent behaviour -- is ruled out by the
construction rules below; each rule names the divergence it avoids (see ``DIVERGENCES``).

``assert_same_results(actual, expected)`` compares two pipeline results exactly: same number
of outputs, shapes, dtypes (strings in object and unicode arrays count as the same dtype) and
values, NaN equal to NaN. -0.0 and 0.0 compare equal: see the comment in ``_assert_column``.

Both are meant to be reused to check native code against the original function.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import pickle
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from hypothesis import strategies as st

# ------------------------------------------------------------------------------------------
# Divergences between the original Python and the IR's NumPy semantics that the generator
# keeps out on purpose (the original raises, or pandas' result depends on the data).
# ------------------------------------------------------------------------------------------
DIVERGENCES = {
    "pandas-int-div-zero": "pandas int Series // 0 and % 0 give inf / NaN (float64), NumPy "
                           "gives 0 (int64): // and % of pandas ints only by nonzero constants",
    "pandas-clip-swap": "pandas .clip / np.clip(Series) swap lower > upper; NumPy returns upper: "
                        "clip bounds are drawn with lower <= upper",
    "pandas-data-dtype": "pandas picks int64 or float64 by the data (map with every key found, "
                         "clip/where of int Series by float bounds): map tables hold floats, "
                         "pandas clip of ints takes int bounds",
    "python-scalar-raise": "per-element Python ints/floats raise on / // % by 0 and overflow in "
                           "**; NumPy gives inf/NaN: element arithmetic on Python scalars "
                           "divides only by nonzero constants and has no **",
    "empty-comprehension-dtype": "np.array([...]) of an empty batch is float64 whatever the "
                                 "element type: comprehensions without dtype= need one row",
    "model-empty-batch": "scikit-learn models (and LightGBM's sklearn wrappers) raise on 0 "
                         "rows, scikit-learn's on NaN/inf: they get at least one row, "
                         "scikit-learn's get np.nan_to_num features",
    "lgb-empty-frame": "LightGBM's Booster.predict raises on an empty DataFrame (an empty "
                       "NumPy matrix is fine): model(df[[...]]) gets at least one row",
    "small-dtype": "NumPy computes np.log/exp/sqrt/round of bool in float16 and bool // % ** "
                   "bool in int8; the front end rejects these (cast first): not drawn",
    "int-pow-negative": "int ** negative int raises (NumPy) or gives a float (Python): "
                        "exponents of ints are 0..3",
    "float-to-int-cast": "astype(int64) of NaN/inf raises in pandas and is undefined in NumPy: "
                         "float -> int casts go through np.nan_to_num(np.clip(x, -1e9, 1e9))",
}

# ------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324,
                  1e-300, 2.2250738585072014e-308, 1.5, -2.25, 3.0, 1.0, -1.0, 0.5, 7.0]
SPECIAL_INTS = [0, 1, -1, 2, 3, -7, 100, 2**31, -(2**63), 2**63 - 1, 2**62]
KEY_INTS = [0, 1, 2, 3, -7, 5]
TEXT_ALPHABET = "abAB .,İßΣσςé😀\tx"
KEY_STRINGS = ["a", "ab", "B", "", "İ", "straße", " x ", "ΣΑΣ", "😀a", "A.B"]

floats = st.one_of(st.sampled_from(SPECIAL_FLOATS),
                   st.floats(allow_nan=True, allow_infinity=True, width=64))
ints = st.one_of(st.sampled_from(SPECIAL_INTS), st.integers(-(2**63), 2**63 - 1),
                 st.integers(-10, 10))
texts = st.one_of(st.sampled_from(KEY_STRINGS), st.text(TEXT_ALPHABET, max_size=6))

# Constants a pipeline may mention (as literals, or as module-level names, see _HEADER).
FLOAT_CONSTS = ["0.5", "-1.5", "2.0", "0.0", "-0.0", "1e300", "1e-300", "3.25", "np.nan",
                "np.inf", "-np.inf", "K_SCALE", "K_BIG", "K_ZERO"]
INT_CONSTS = ["0", "1", "2", "3", "-1", "7", "1000000", "K_INT"]
NONZERO_INTS = ["1", "2", "3", "-1", "7", "K_INT"]
NONZERO_FLOATS = ["0.5", "-1.5", "2.0", "3.25", "1e300", "K_SCALE"]
PATTERNS = ["a", "b", "A", ".", " ", "İ", "ß", "ab", "σ"]
REGEX_PATTERNS = ["a", "b", "A", ".", "[ab]", "a+", r"\s", "İ", "ß"]

_HEADER = '''"""A pipeline drawn by tests/pipeline_strategies.py."""
import numpy as np
import pandas as pd

K_SCALE = 2.5
K_BIG = 1e300
K_ZERO = -0.0
K_INT = 3
D_STR = {"a": 1.5, "ab": -2.0, "İ": 3.25, "straße": np.nan, "": np.inf, "ΣΑΣ": -0.0}
D_STR_I = {"a": 1, "ab": 2, "B": -3, "😀a": 7}
D_INT = {0: 0.5, 1: -1.0, 3: 2.5, -7: 1e300, 2: np.nan}
D_INT_I = {0: 10, 1: 20, 3: -30, 5: 0}
'''
DICTS = {  # name -> (key sort, value sort, default literals of the same Python type)
    "D_STR": ("str", "float", ["0.0", "-1.0", "np.nan"]),
    "D_STR_I": ("str", "int", ["0", "-1", "99"]),
    "D_INT": ("int", "float", ["0.0", "-1.0", "np.nan"]),
    "D_INT_I": ("int", "int", ["0", "-1", "99"]),
}
MAP_DICTS = ["D_STR", "D_INT"]  # float values: Series.map's dtype does not depend on the data

PROBES = {"float": [1.5, -2.0], "int": [3, -2], "bool": [True, False], "str": ["ab", "B"]}
NUMPY_DTYPES = {"float": np.float64, "int": np.int64, "bool": np.bool_, "str": object}
IR_DTYPES = {"float": "f64", "int": "i64", "bool": "bool", "str": "str"}


class DrawnPipeline(NamedTuple):
    """A drawn pipeline: module source defining ``predict``, its inputs, its declared dtypes."""

    source: str
    inputs: dict[str, Any]
    dtypes: dict[str, str]

    def fresh_inputs(self) -> dict[str, Any]:
        """Deep copies of the inputs (the original may update arrays in place: ``x += 1``)."""
        return {k: copy.deepcopy(v) for k, v in self.inputs.items()}


# ------------------------------------------------------------------------------------------
# Models: trained once per process on seeded data, saved to files the drawn module loads.
# ------------------------------------------------------------------------------------------
_MODEL_DIR: str | None = None
_MODEL_FILES: dict[tuple[str, int], str] = {}
MODEL_KINDS = ("lgb_booster", "lgb_classifier", "sk_linear", "sk_logistic")


def model_file(kind: str, width: int) -> str:
    """Path of a small fitted model of ``kind`` taking ``width`` features (made on first use)."""
    global _MODEL_DIR
    key = (kind, width)
    if key in _MODEL_FILES:
        return _MODEL_FILES[key]
    import lightgbm as lgb
    from sklearn.linear_model import LinearRegression, LogisticRegression
    if _MODEL_DIR is None:
        _MODEL_DIR = tempfile.mkdtemp(prefix="mloc_models_")
    rng = np.random.default_rng(width)
    X = rng.normal(size=(300, width)) * [10.0 ** i for i in range(width)]
    y = X[:, 0] - 0.5 * X[:, -1] + rng.normal(size=300)
    path = os.path.join(_MODEL_DIR, f"{kind}_{width}")
    if kind == "lgb_booster":
        # one thread: OpenMP start-up dominates at these sizes, and CI has 2 busy cores
        params = {"verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5, "seed": 1,
                  "num_threads": 1}
        lgb.train(params, lgb.Dataset(X, y), 6).save_model(path + ".txt")
        path += ".txt"
    else:
        if kind == "lgb_classifier":
            model = lgb.LGBMClassifier(n_estimators=5, num_leaves=5, min_child_samples=5,
                                       verbose=-1, n_jobs=1).fit(X, y > 0)
        elif kind == "sk_linear":
            model = LinearRegression().fit(X, y)
        else:
            model = LogisticRegression().fit(X, y > 0)
        path += ".pkl"
        with open(path, "wb") as f:
            pickle.dump(model, f)
    _MODEL_FILES[key] = path
    return path


def _model_header(kind: str, width: int) -> str:
    path = model_file(kind, width)
    if kind == "lgb_booster":
        return f"import lightgbm as lgb\nMODEL = lgb.Booster(model_file={path!r})\n"
    return f"import pickle\nwith open({path!r}, 'rb') as _f:\n    MODEL = pickle.load(_f)\n"


# ------------------------------------------------------------------------------------------
# Drawing choices with a few cached strategies (a fresh st.sampled_from per choice made
# hypothesis spend more time validating strategies than drawing)
# ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _ints(lo: int, hi: int):
    return st.integers(lo, hi)


def _pick(draw, options):
    options = list(options)
    return options[draw(_ints(0, len(options) - 1))]


# ------------------------------------------------------------------------------------------
# Expressions, typed by evaluating them on probe inputs
# ------------------------------------------------------------------------------------------
@dataclass
class Expr:
    code: str
    sort: str  # "float" | "int" | "bool" | "str"
    kind: str  # "np" (ndarray), "pd" (Series) or "const" (a Python scalar)
    root: str | None = None  # the input column it is ("s", "df.txt"), if it is one


def _sort_of(dtype) -> str:
    dtype = np.dtype(dtype) if not isinstance(dtype, pd.api.extensions.ExtensionDtype) else dtype
    if dtype == np.bool_:
        return "bool"
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    return "str"


class _Builder:
    """Draws one pipeline: its parameters, statements and return, typed by probing."""

    def __init__(self, draw):
        self.draw = draw
        self.ns: dict[str, Any] = {}
        exec(_HEADER, self.ns)  # noqa: S102 -- our own fixed header, to probe against
        self.scope: dict[str, Expr] = {}  # variables (parameters and assigned names)
        self.frames: dict[str, dict[str, str]] = {}  # frame variable -> column -> sort
        self.params: dict[str, str] = {}  # column parameter -> sort
        self.frame_param: dict[str, str] = {}  # DataFrame parameter columns -> sort
        self.header: list[str] = []
        self.lines: list[str] = []
        self.needs_rows = False  # a construct the original cannot run on an empty batch
        # names bound to an array no other name shares: only these may be updated in place
        # (``a = x; a += 1`` would change x too in the original, never in the IR's SSA form)
        self.unshared: set[str] = set()
        # string inputs some text op reads: only these may go undeclared (the front end infers
        # str from text use; an input never used as text is f64 unless declared)
        self.text_uses: list[tuple[str, str]] = []  # (root, code of the text op)
        # ... and uses that do not tell a string column (s == t of two columns): the front end
        # types an undeclared input at its first use, so these keep their declaration
        self.plain_uses: list[tuple[str, str]] = []
        self.counter = 0
        self.merge_spelling: str | None = None

    # -- probing --------------------------------------------------------------------------
    def probe(self, code: str):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                value = eval(code, self.ns)  # noqa: S307 -- code we generated
            except Exception:  # noqa: BLE001 -- any error means: not a valid combination
                return None
        return value

    def typed(self, code: str) -> Expr | None:
        """``code`` as an Expr when it evaluates to a 1-D column on the probes, else None."""
        value = self.probe(code)
        if isinstance(value, pd.Series):
            kind = "pd"
        elif isinstance(value, np.ndarray):
            kind = "np"
        else:
            return None
        if value.ndim != 1 or len(value) != 2:
            return None
        if value.dtype.kind in "biuf" and value.dtype not in (np.bool_, np.int64, np.float64):
            return None  # small-dtype: NumPy's float16 / int8 results the IR rejects
        return Expr(code, _sort_of(value.dtype), kind)

    def pick(self, options):
        return _pick(self.draw, options)

    # -- leaves ---------------------------------------------------------------------------
    def columns(self, sorts) -> list[Expr]:
        out = [e for e in self.scope.values() if e.sort in sorts]
        for frame, cols in self.frames.items():
            for col, sort in cols.items():
                if sort in sorts:
                    root = f"df.{col}" if col in self.frame_param else None
                    out.append(Expr(f"{frame}[{col!r}]", sort, "pd", root))
                    if col.isidentifier():
                        out.append(Expr(f"{frame}.{col}", sort, "pd", root))
        return out

    def leaf(self, sorts) -> Expr | None:
        cands = self.columns(sorts)
        if not cands:
            return None
        return self.pick(cands)

    def const(self, sort: str = "num") -> Expr:
        pool = {"float": FLOAT_CONSTS, "int": INT_CONSTS}.get(sort, FLOAT_CONSTS + INT_CONSTS)
        code = self.pick(pool)
        return Expr(code, "float" if code in FLOAT_CONSTS else "int", "const")

    # -- numeric --------------------------------------------------------------------------
    def num(self, depth: int) -> Expr:
        if depth <= 0 or self.draw(_ints(0, 4)) == 0:
            return self.leaf(("float", "int")) or self.leaf(("bool",))
        makers = [self.arith, self.arith, self.unary_numpy, self.minmax, self.clip, self.where,
                  self.neg, self.cast, self.series_method, self.from_str, self.lookup,
                  self.comprehension_num, self.leaf_num]
        for _ in range(4):
            maker = self.pick(makers)
            e = maker(depth - 1)
            if e is not None and e.sort in ("float", "int"):
                return e
        return self.leaf(("float", "int")) or self.leaf(("bool",))

    def leaf_num(self, depth):
        return self.leaf(("float", "int", "bool"))

    def operand(self, depth) -> Expr:
        """A column, or (one time in three) a constant."""
        if self.draw(_ints(0, 2)) == 0:
            return self.const()
        return self.num(depth)

    def arith(self, depth):
        op = self.pick(["+", "-", "*", "/", "//", "%", "**"])
        a = self.num(depth)
        if op == "**":
            if a.sort in ("int", "bool"):  # int-pow-negative
                b = Expr(self.pick(["0", "1", "2", "3", "2.0", "0.5"]), "int", "const")
            else:
                b = self.pick([Expr(c, "float", "const") for c in
                                               ["2", "3", "0.5", "-1.0", "2.0", "0", "-0.5", "K_INT"]]
                                              + [self.num(depth)])
        else:
            b = self.operand(depth)
        if self.draw(st.booleans()) and op != "**":
            a, b = b, a
        if a.kind == "const" and b.kind == "const":
            return None
        ufunc = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "//": "floor_divide",
                 "%": "mod", "**": "power"}[op]
        functional = self.draw(_ints(0, 4)) == 0
        e = self.typed(f"np.{ufunc}({a.code}, {b.code})" if functional else f"({a.code} {op} {b.code})")
        if e is None:
            return None
        # pandas-int-div-zero: pandas int // 0 and % 0 are inf / NaN, not NumPy's 0
        if op in ("//", "%") and e.kind == "pd" and a.sort in ("int", "bool") \
                and b.sort in ("int", "bool"):
            if a.kind == "const":
                return None
            b = Expr(self.pick(NONZERO_INTS), "int", "const")
            e = self.typed(f"np.{ufunc}({a.code}, {b.code})" if functional else f"({a.code} {op} {b.code})")
        return e

    def neg(self, depth):
        a = self.num(depth)
        return self.typed(f"(-{a.code})")

    def unary_numpy(self, depth):
        fn = self.pick(["log", "log1p", "exp", "sqrt", "abs", "floor", "ceil", "log10", "log2",
                        "expm1", "square",
                                        "round", "sign", "nan_to_num", "absolute", "negative",
                                        "builtin_abs", "builtin_round"])
        a = self.num(depth)
        if fn == "builtin_abs":
            return self.typed(f"abs({a.code})")
        if fn == "builtin_round":
            return self.typed(f"round({a.code}, {self.pick(['0', '1', '2'])})")
        if fn == "round":
            d = self.pick(["", ", 1", ", 2", ", -1", ", decimals=1"])
            return self.typed(f"np.round({a.code}{d})")
        if fn == "nan_to_num":
            kw = self.pick(["", ", nan=-1.0", ", nan=0.0, posinf=1e6, neginf=-1e6",
                                            ", posinf=9.0"])
            return self.typed(f"np.nan_to_num({a.code}{kw})")
        return self.typed(f"np.{fn}({a.code})")

    def minmax(self, depth):
        fn = self.pick(["minimum", "maximum"])
        a, b = self.num(depth), self.operand(depth)
        if self.draw(st.booleans()):
            a, b = b, a
        return self.typed(f"np.{fn}({a.code}, {b.code})")

    def bounds(self, a: Expr):
        """Clip bounds, lower <= upper (pandas-clip-swap); ints for pandas ints (pandas-data-dtype)."""
        if a.sort == "int" and a.kind == "pd":
            lo, hi = sorted(self.draw(st.lists(st.sampled_from([-7, -1, 0, 1, 3, 100]), min_size=2, max_size=2)))
            return repr(lo), repr(hi)
        values = sorted(self.draw(st.lists(st.sampled_from(
            [-1e300, -7.0, -1.0, -0.5, 0, -0.0, 0.0, 0.5, 1, 2.5, 1e300, 3]), min_size=2, max_size=2)))
        return repr(values[0]), repr(values[1])

    def clip(self, depth):
        a = self.num(depth)
        if a.sort == "bool":
            return None
        lo, hi = self.bounds(a)
        form = self.draw(_ints(0, 5))
        if form == 0:
            return self.typed(f"np.clip({a.code}, {lo}, {hi})")
        if form == 4:
            return self.typed(f"np.clip({a.code}, a_min={lo}, a_max={hi})")
        if form == 5:
            return self.typed(f"{a.code}.clip({lo}, {hi})")
        if form == 1 and a.kind == "pd":
            return self.typed(f"{a.code}.clip(lower={lo}, upper={hi})")
        if form == 2 and a.kind == "pd":
            return self.typed(f"{a.code}.clip(lower={lo})")
        if form == 3 and a.kind == "pd":
            return self.typed(f"{a.code}.clip(upper={hi})")
        return self.typed(f"np.clip({a.code}, {lo}, {hi})")

    def where(self, depth):
        c = self.boolean(depth)
        a, b = self.operand(depth), self.operand(depth)
        return self.typed(f"np.where({c.code}, {a.code}, {b.code})")

    def cast(self, depth):
        a = self.num(depth) if self.draw(st.booleans()) else self.boolean(depth)
        if a.sort == "float":
            # float-to-int-cast: NaN/inf made finite first
            target = self.pick(["np.int64", "np.float64", "float"])
            if target == "np.int64":
                return self.typed(f"np.nan_to_num(np.clip({a.code}, -1e9, 1e9)).astype(np.int64)")
            if self.draw(_ints(0, 3)) == 0:
                return self.typed(f"{a.code}.astype(bool)")
            return self.typed(f"{a.code}.astype({target})")
        target = self.pick(["np.float64", "np.int64", "float", "int", "'float64'",
                                            "bool", "np.float64()"])
        if target == "np.float64()":
            return self.typed(f"np.float64({a.code})")
        return self.typed(f"{a.code}.astype({target})")

    def series_method(self, depth):
        a = self.num(depth)
        if a.kind != "pd":
            return None
        m = self.pick(["abs", "fillna", "round", "clip", "values", "apply"])
        if m == "values":
            return self.typed(f"{a.code}.{self.pick(['values', 'to_numpy()'])}")
        if m == "apply":  # elements are Python scalars
            elt = self.element("v", a.sort, True, depth=1)
            if elt is None:
                return None
            self.needs_rows = True  # an empty Series' apply keeps the Series' dtype
            return self.typed(f"{a.code}.{self.pick(['apply', 'map'])}(lambda v: {elt})")
        if m == "abs":
            return self.typed(f"{a.code}.abs()")
        if m == "fillna":
            return self.typed(f"{a.code}.fillna({self.pick(['0.0', '-1.5', '0', 'K_SCALE'])})")
        if m == "round":
            return self.typed(f"{a.code}.round({self.pick(['', '1', '2'])})")
        return self.clip(depth)

    def from_str(self, depth):
        s = self.string(depth)
        if s is None:
            return None
        if s.kind == "pd":
            m = self.pick(["len", "count", "apply"])
            if m == "apply":  # the lambda's element is a Python str
                elt = self.element("t", "str", True, depth=1)
                if elt is None:
                    return None
                self.needs_rows = True  # an empty Series' apply keeps the str dtype
                return self.text_use(s, self.typed(f"{s.code}.apply(lambda t: {elt})"))
            if m == "len":
                return self.text_use(s, self.typed(f"{s.code}.str.len()"))
            pat = self.pick(REGEX_PATTERNS)
            return self.text_use(s, self.typed(f"{s.code}.str.count({pat!r})"))
        return self.comprehension_over(s, depth)

    def lookup(self, depth):
        name = self.pick(sorted(DICTS))
        key_sort, _, defaults = DICTS[name]
        if key_sort == "str":
            key = self.string(depth)
        else:  # int keys, and (one time in three) float or bool keys: 1.0 and True find 1
            key = (self.draw(_ints(0, 2)) and self.leaf(("int",))) or \
                self.leaf(("int", "float", "bool"))
        if key is None:
            return None
        default = self.pick(defaults)
        if key.kind == "pd" and name in MAP_DICTS and self.draw(st.booleans()):
            e = self.typed(f"{key.code}.map({name}).fillna({default})")
            return self.text_use(key, e) if key.sort == "str" else e
        var = self.fresh("k")
        code = f"np.array([{name}.get({var}, {default}) for {var} in {key.code}])"
        e = self.dtype_or_rows(code, key)
        return self.text_use(key, e) if key.sort == "str" else e

    def dtype_or_rows(self, code: str, over: Expr):
        """``np.array([...])``: with dtype= (float64 for numbers) or needing a row."""
        e = self.typed(code)
        if e is None:
            return None
        if e.sort != "str" and self.draw(st.booleans()):
            dt = "np.float64" if e.sort != "bool" else "bool"
            return self.typed(code[:-1] + f", dtype={dt})")
        self.needs_rows = True  # empty-comprehension-dtype
        return e

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- comprehensions -------------------------------------------------------------------
    def comprehension_num(self, depth):
        if self.draw(_ints(0, 3)) == 0:
            return self.comprehension_zip()
        src = self.leaf(("float", "int", "bool", "str"))
        if src is None:
            return None
        return self.comprehension_over(src, depth)

    def comprehension_zip(self):
        """``np.array([a op b for a, b in zip(x, y)])`` over NumPy columns (NumPy scalars)."""
        cols = [e for e in self.columns(("float", "int", "bool")) if e.kind == "np"]
        if len(cols) < 2:
            return None
        x, y = self.pick(cols), self.pick(cols)
        a, b = self.fresh("a"), self.fresh("b")
        elts = [f"({a} + {b})", f"({a} * {b})", f"({a} / {b})", f"({a} - {b} * 2)"]
        if x.sort == y.sort:  # a per-row choice of an int or a bool: data-dependent dtype
            elts += [f"min({a}, {b})", f"max({a}, {b})", f"({a} if {a} > {b} else {b})"]
        elt = self.pick(elts)
        return self.dtype_or_rows(f"np.array([{elt} for {a}, {b} in zip({x.code}, {y.code})])", x)

    def comprehension_over(self, src: Expr, depth):
        var = self.fresh("t" if src.sort == "str" else "v")
        # elements of a NumPy array are NumPy scalars; of a Series (or from len(...)), Python
        # scalars, which raise on division by zero (python-scalar-raise)
        python = src.kind == "pd" or src.sort == "str"
        if src.kind == "pd" and src.sort != "str" and self.draw(st.booleans()):
            src = Expr(f"{src.code}.to_numpy()", src.sort, "np")
            python = False
        elt = self.element(var, src.sort, python, depth=2)
        if elt is None:
            return None
        return self.text_use(src, self.dtype_or_rows(f"np.array([{elt} for {var} in {src.code}])", src))

    def element(self, var: str, sort: str, python: bool, depth: int) -> str | None:
        """A per-element expression of ``var`` (a str or a number), or None."""
        out = self.typed_element(var, sort, python, depth)
        return None if out is None else out[0]

    def typed_element(self, var: str, sort: str, python: bool, depth: int):
        """``(code, cls)``: an element expression and the class of its values (int, float,
        bool). np.array([...]) and Series.apply pick their dtype from the values they get, so
        the two sides of a per-row choice (min, max, x if c else y) have one class: a mix
        would make the original's dtype depend on which side the rows took."""
        pat = lambda: repr(self.pick(PATTERNS))  # noqa: E731
        atoms: list[tuple[str, str]]
        if sort == "str":
            name = self.pick(["D_STR", "D_STR_I"])
            d = self.pick(DICTS[name][2])
            cls = DICTS[name][1]
            atoms = [(f"len({var})", "int"), (f"{var}.count({pat()})", "int"),
                     (f"len({var}.lower())", "int"), (f"{var}.lower().count({pat()})", "int"),
                     (f"{name}.get({var}, {d})", cls), (f"{name}.get({var}.lower(), {d})", cls),
                     (f"len({var}.split())", "int"),
                     (f"len({var}.{self.pick(['upper', 'strip'])}())", "int")]
            conds = [f"{var}.startswith({pat()})", f"{var}.endswith({pat()})", f"({pat()} in {var})",
                     f"({var} == {self.pick(KEY_STRINGS)!r})",
                     f"({var}.lower() != {self.pick(KEY_STRINGS)!r})",
                     f"({var} in {{'a', 'ab', 'İ', ''}})", f"({var} not in ('B', 'x'))"]
        else:
            atoms = [(var, sort)] if sort == "bool" else [(var, sort), (f"abs({var})", sort)]
            if sort == "int":  # (abs(True) is an int: no abs of bools)
                name = self.pick(["D_INT", "D_INT_I"])
                d = self.pick(DICTS[name][2])
                atoms.append((f"{name}.get({var}, {d})", DICTS[name][1]))
            c = self.pick(["0", "1", "-0.5", "2.5", "K_INT"])
            conds = [f"({var} > {c})", f"({var} <= {c})", f"({var} != {c})",
                     f"({var} in {{0, 1, 3}})", f"({var} not in [2, -7])"]
            if sort == "bool":
                conds.append(var)
        atom, cls = self.pick(atoms)
        consts = {"int": ["0", "-1", "K_INT"], "float": ["0.0", "1.5", "-1.0", "np.inf"],
                  "bool": ["True", "False"]}
        # Python ints (from a Series of ints) never overflow where NumPy's wrap: no arithmetic
        arithmetic = not (python and sort in ("int", "bool"))
        form = self.draw(_ints(0, 6 if depth > 0 else 0))
        if form in (1, 2) and not arithmetic:
            form = 4
        if form == 0:
            return atom, cls
        if form == 1:  # arithmetic with a constant
            op = self.pick(["+", "-", "*", "/", "//", "%"])
            if python and op in ("/", "//", "%"):  # python-scalar-raise
                c = self.pick(NONZERO_INTS + NONZERO_FLOATS)
            else:
                c = self.pick(INT_CONSTS + ["0.5", "-1.5", "0.0", "np.inf"])
            if cls == "bool" and op in ("+", "-", "*"):
                return None  # Python's True + 1 is 2, NumPy's bool + bool is a bool
            floaty = cls == "float" or op == "/" or c in FLOAT_CONSTS or "." in c or "inf" in c
            return f"({atom} {op} {c})", "float" if floaty else "int"
        if form == 2:
            other = self.typed_element(var, sort, python, depth - 1)
            op = self.pick(["+", "-", "*"] + ([] if python else ["/"]))
            if other is None or "bool" in (cls, other[1]):
                return None
            floaty = "float" in (cls, other[1]) or op == "/"
            return f"({atom} {op} {other[0]})", "float" if floaty else "int"
        if form in (3, 4):
            other = self.typed_element(var, sort, python, depth - 1) if self.draw(st.booleans()) \
                else (self.pick(consts[cls]), cls)
            if other is None or other[1] != cls:
                return None
            if form == 3:
                fn = self.pick(["min", "max"])
                return f"{fn}({atom}, {other[0]})", cls
            return f"({atom} if {self.pick(conds)} else {other[0]})", cls
        return self.pick(conds), "bool"  # a bool element

    # -- booleans -------------------------------------------------------------------------
    def boolean(self, depth) -> Expr:
        makers = [self.compare, self.compare, self.logic, self.invert, self.isnan,
                  self.str_bool, self.comprehension_bool, self.membership]
        if depth > 0:
            for _ in range(4):
                e = self.pick(makers)(depth - 1)
                if e is not None and e.sort == "bool":
                    return e
        return self.leaf(("bool",)) or self.compare(0)

    def compare(self, depth):
        op = self.pick(["<", "<=", ">", ">=", "==", "!="])
        a, b = self.num(depth), self.operand(depth)
        if self.draw(st.booleans()):
            a, b = b, a
        e = self.typed(f"({a.code} {op} {b.code})")
        return e

    def logic(self, depth):
        op = self.pick(["&", "|", "&", "|", "^", "np.logical_and", "np.logical_or"])
        a, b = self.boolean(depth), self.boolean(depth)
        if op.startswith("np."):
            return self.typed(f"{op}({a.code}, {b.code})")
        return self.typed(f"({a.code} {op} {b.code})")

    def membership(self, depth):
        """Series.isin / np.isin / Series.between on numbers."""
        a = self.num(depth)
        if a.sort == "bool":
            return None
        values = self.pick(["[1, 2.5]", "[0, -0.0, 3]", "[np.nan, 1]", "[]", "[True, 7]"])
        form = self.draw(_ints(0, 2))
        if form == 0 and a.kind == "pd":
            return self.typed(f"{a.code}.isin({values})")
        if form == 1 and a.kind == "pd":
            lo, hi = self.bounds(a)
            inclusive = self.pick(["", ", inclusive='neither'", ", inclusive='left'",
                                   ", inclusive='right'", ", inclusive='both'"])
            return self.typed(f"{a.code}.between({lo}, {hi}{inclusive})")
        values = values.replace("True", "1")  # np.isin([True, ...]) would be a bool array
        return self.typed(f"np.isin({a.code}, {values})")

    def invert(self, depth):
        a = self.boolean(depth)
        if self.draw(_ints(0, 3)) == 0:
            return self.typed(f"np.logical_not({a.code})")
        return self.typed(f"(~{a.code})")

    def isnan(self, depth):
        a = self.num(depth)
        if a.kind == "pd" and self.draw(st.booleans()):
            return self.typed(f"{a.code}.{self.pick(['isna', 'notna'])}()")
        fn = self.pick(["isnan", "isnan", "isinf", "isfinite"])
        return self.typed(f"np.{fn}({a.code})")

    def str_bool(self, depth):
        s = self.string(depth)
        if s is None:
            return None
        form = self.draw(_ints(0, 2))
        if form == 0 and s.kind == "pd":
            pat = self.pick(REGEX_PATTERNS)
            kw = self.pick(["", ", case=False", ", regex=False",
                                            ", case=False, regex=False"])
            return self.text_use(s, self.typed(f"{s.code}.str.contains({pat!r}{kw})"))
        op = self.pick(["==", "!="])
        if form == 1:  # two string columns
            other = self.leaf(("str",))
            e = self.typed(f"({s.code} {op} {other.code})")
            if e is not None:
                self.plain_uses += [(r, e.code) for r in (s.root, other.root) if r]
            return e
        return self.text_use(s, self.typed(f"({s.code} {op} {self.pick(KEY_STRINGS)!r})"))

    def comprehension_bool(self, depth):
        src = self.leaf(("str", "float", "int"))
        if src is None:
            return None
        e = self.comprehension_over(src, depth)
        return e if e is not None and e.sort == "bool" else None

    # -- strings --------------------------------------------------------------------------
    def string(self, depth) -> Expr | None:
        s = self.leaf(("str",))
        if s is None or depth <= 0:
            return s
        form = self.draw(_ints(0, 3))
        if form == 1 and s.kind == "pd":
            return self.text_use(s, self.typed(f"{s.code}.str.lower()")) or s
        if form == 2:
            var = self.fresh("t")
            e = self.typed(f"np.array([{var}.lower() for {var} in {s.code}], dtype=object)")
            return self.text_use(s, e) or s
        return s

    # -- statements -----------------------------------------------------------------------
    def run(self, code: str) -> bool:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                exec(code, self.ns)  # noqa: S102 -- code we generated
            except Exception:  # noqa: BLE001
                return False
        return True

    def value(self, depth) -> Expr:
        choice = self.draw(_ints(0, 5))
        if choice == 0:
            return self.boolean(depth)
        if choice == 1 and self.columns(("str",)):
            s = self.string(depth)
            if s is not None:
                return s
        return self.num(depth)

    def text_use(self, e: Expr | None, result: Expr | None) -> Expr | None:
        """Note that ``result`` reads input ``e`` as text; counts if ``result`` is emitted."""
        if e is not None and e.root is not None and e.sort == "str" and result is not None:
            self.text_uses.append((e.root, result.code))
        return result

    def bind(self, name: str, e: Expr) -> None:
        """Record that ``name`` now holds the value of ``e`` (already run)."""
        self.unshared.discard(name)
        if e.code.isidentifier():
            self.unshared.discard(e.code)
        else:
            self.unshared.add(name)
        got = self.typed(name)
        if got is not None:
            got.root = e.root
            self.scope[name] = got
        else:
            self.scope.pop(name, None)

    def assign(self, name: str, e: Expr) -> None:
        line = f"{name} = {e.code}"
        if self.run(line):
            self.lines.append(line)
            self.bind(name, e)

    def statement(self, i: int):
        kind = self.draw(_ints(0, 10 if self.merge_spelling else 9))
        assigned = sorted(n for n in self.scope if n in self.unshared)
        if kind <= 4 or not self.scope:
            self.assign(f"f{i}", self.value(3))
        elif kind == 5:  # SSA: rebind an existing name (a parameter too) to a new value
            # (to a value of the same sort, so a numeric column always stays in scope)
            name = self.pick(sorted(self.scope))
            e = self.value(3)
            if e is not None and e.sort == self.scope[name].sort:
                self.assign(name, e)
        elif kind == 6 and assigned:  # x op= e, when in-place keeps the dtype
            name = self.pick(assigned)
            target = self.scope[name]
            op = self.pick(["+=", "-=", "*="])
            b = self.operand(2)
            full = self.typed(f"({name} {op[0]} {b.code})")
            if target.sort in ("float", "int") and full is not None and full.sort == target.sort \
                    and (full.kind == target.kind or b.kind == "const"):
                line = f"{name} {op} {b.code}"
                if self.run(line):
                    self.lines.append(line)
        elif kind == 7 and self.frames.get("df") is not None:  # df["new"] = column
            e = self.num(2)
            cols = [c for c in self.frames["df"] if c != "key"]
            col = self.pick(cols) if self.draw(_ints(0, 2)) == 0 else self.fresh("new")
            line = f"df[{col!r}] = {e.code}"
            if col in self.frames["df"] and self.draw(st.booleans()):
                # df[col] op= e, when in-place keeps the dtype
                op = self.pick(["+=", "-=", "*="])
                full = self.typed(f"(df[{col!r}] {op[0]} {e.code})")
                if full is None or full.sort != self.frames["df"][col] \
                        or full.sort not in ("float", "int"):  # str * int repeats strings
                    return
                line = f"df[{col!r}] {op} {e.code}"
            if self.run(line):
                self.lines.append(line)
                self.frames["df"][col] = _sort_of(self.ns["df"][col].dtype)
        elif kind == 9 and self.merge_spelling and "m" not in self.frames:
            line = f"m = {self.merge_spelling}"
            if self.run(line):
                self.lines.append(line)
                self.frames["m"] = {**self.frames["df"], "rate": "float", "bonus": "float"}
        elif kind == 8:  # tuple assignment
            a, b = self.value(2), self.value(2)
            line = f"f{i}a, f{i}b = {a.code}, {b.code}"
            if self.run(line):
                self.lines.append(line)
                self.bind(f"f{i}a", a)
                self.bind(f"f{i}b", b)
        elif kind == 10:
            self.statement(i)  # a merge once done: another statement
        else:
            self.assign(f"f{i}", self.value(2))


# ------------------------------------------------------------------------------------------
# The pipeline strategy
# ------------------------------------------------------------------------------------------
def _column_values(sort: str, n: int):
    elements = {"float": floats, "int": ints, "bool": st.booleans(), "str": texts}[sort]
    return st.lists(elements, min_size=n, max_size=n)


def _as_array(values, sort: str) -> np.ndarray:
    if sort == "str":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.array(values, dtype=NUMPY_DTYPES[sort])


@st.composite
def pipelines(draw, max_statements: int = 6, models: bool = True) -> DrawnPipeline:
    """Draw a pipeline module's source, inputs for its ``predict`` and its declared dtypes."""
    b = _Builder(draw)
    # -- parameters: 0-3 columns and maybe a string column, maybe a DataFrame ---------------
    for name in draw(st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True)):
        b.params[name] = _pick(draw, ["float", "float", "int", "bool"])
    if draw(st.booleans()):
        b.params["s"] = "str"
    use_df = draw(st.booleans()) or not any(v != "str" for v in b.params.values())
    merge_key = None
    if use_df:
        cols = {"amt": "float"}
        for col, sorts in (("qty", ["int", "float"]), ("flag", ["bool"]), ("txt", ["str"])):
            if draw(st.booleans()):
                cols[col] = _pick(draw, sorts)
        if draw(st.booleans()):
            merge_key = _pick(draw, ["int", "str"])
            cols["key"] = merge_key
        b.frame_param = cols
    for name, sort in b.params.items():
        b.ns[name] = _as_array(PROBES[sort], sort)
        b.scope[name] = Expr(name, sort, "np", name)
    if use_df:
        b.ns["df"] = pd.DataFrame({c: _as_array(PROBES[s], s) for c, s in b.frame_param.items()})
        b.frames["df"] = dict(b.frame_param)

    # -- module-level table for df.merge(TABLE, on="key", how="left") ----------------------
    table_src = ""
    if merge_key is not None:
        keys = KEY_INTS if merge_key == "int" else KEY_STRINGS
        keys = draw(st.lists(st.sampled_from(keys), min_size=0, max_size=5, unique=True))
        rates = draw(st.lists(floats, min_size=len(keys), max_size=len(keys)))
        bonus = draw(st.lists(floats, min_size=len(keys), max_size=len(keys)))
        ktype = "np.int64" if merge_key == "int" else "str"
        table_src = (f"TABLE = pd.DataFrame({{'key': np.array({keys!r}, dtype={ktype}), "
                     f"'rate': np.array({rates!r}, dtype=np.float64), "
                     f"'bonus': np.array({bonus!r}, dtype=np.float64)}})\n")
        table_src = table_src.replace("nan", "np.nan").replace("inf", "np.inf")
        b.run(table_src)
        # the merge is a statement (kind 9); columns assigned to df later are not in m
        b.merge_spelling = _pick(draw, ["df.merge(TABLE, on='key', how='left')",
                                        "pd.merge(df, TABLE, on='key', how='left')"])

    # -- body ------------------------------------------------------------------------------
    for i in range(draw(_ints(1, max_statements))):
        b.statement(i)

    # -- return: values, a tuple of them, or a model's prediction --------------------------
    model_kind = _pick(draw, (None,) * 3 + MODEL_KINDS) if models else None
    outs: list[str] = []
    if model_kind is not None:
        width = draw(_ints(1, 3))
        feats = [b.num(1) if draw(_ints(0, 3)) else b.boolean(1) for _ in range(width)]
        if model_kind.startswith("sk"):  # model-empty-batch: sklearn rejects NaN/inf
            feats = [Expr(f"np.nan_to_num({f.code})", f.sort, f.kind) for f in feats]
        b.needs_rows |= model_kind != "lgb_booster"  # sklearn's checks reject 0 rows
        b.header.append(_model_header(model_kind, width))
        b.run(b.header[-1])
        parts = ", ".join(f.code for f in feats)
        X = _pick(draw, [f"np.column_stack([{parts}])", f"np.column_stack(({parts},))",
                                  f"np.stack([{parts}], axis=1)"])
        numeric_df = [c for c, sort in b.frame_param.items() if sort != "str"]
        if width == 1 and feats[0].kind == "np" and draw(st.booleans()):
            X = _pick(draw, [f"{feats[0].code}[:, None]", f"{feats[0].code}.reshape(-1, 1)"])
        elif model_kind == "lgb_booster" and len(numeric_df) >= width and draw(st.booleans()):
            X = f"df[{numeric_df[:width]!r}]"  # raw columns, NaN and inf included
            b.needs_rows = True  # lgb-empty-frame
        if model_kind in ("lgb_classifier", "sk_logistic") and draw(st.booleans()):
            call = f"MODEL.predict_proba({X})[:, 1]"
        else:
            call = f"MODEL.predict({X})"
        if b.probe(call) is not None:
            b.lines.append(f"pred = {call}")
            outs.append("pred")
    extra = draw(_ints(0 if outs else 1, 2))
    for _ in range(extra):
        names = [n for n, e in b.scope.items() if e.sort != "str" or draw(st.booleans())]
        if names and draw(st.booleans()):
            outs.append(_pick(draw, names))
        else:
            outs.append(b.value(2).code)
    body = "\n".join(f"    {line}" for line in b.lines)
    params = list(b.params) + (["df"] if use_df else [])
    ret = ", ".join(outs) if len(outs) > 1 else outs[0]
    source = (_HEADER + table_src + "".join(b.header) +
              f"\n\ndef predict({', '.join(params)}):\n" + (body + "\n" if body else "") +
              f"    return {ret}\n")

    # -- inputs ----------------------------------------------------------------------------
    n = _pick(draw, [0, 1, 1, 2, 3, 5, 17, 65])
    if b.needs_rows and n == 0:
        n = 1
    inputs: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    for name, sort in b.params.items():
        inputs[name] = _as_array(draw(_column_values(sort, n)), sort)
        dtypes[name] = IR_DTYPES[sort]
    if use_df:
        data = {}
        for col, sort in b.frame_param.items():
            if col == "key":
                pool = KEY_INTS + [99] if sort == "int" else KEY_STRINGS + ["zz"]
                values = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
            else:
                values = draw(_column_values(sort, n))
            data[col] = _as_array(values, sort)
            dtypes[f"df.{col}"] = IR_DTYPES[sort]
        inputs["df"] = pd.DataFrame(data)
    # undeclared columns default to f64, or str where the pipeline uses them as text: leave
    # some out to exercise that inference
    text_roots = {root for root, code in b.text_uses if code in source} - \
        {root for root, code in b.plain_uses if code in source}
    for key in list(dtypes):
        if (dtypes[key] == "f64" or key in text_roots) and draw(_ints(0, 3)) == 0:
            del dtypes[key]
    return DrawnPipeline(source, inputs, dtypes)


# ------------------------------------------------------------------------------------------
# Loading and running drawn sources
# ------------------------------------------------------------------------------------------
_SOURCE_DIR: str | None = None
_SOURCE_COUNT = 0


def load_pipeline(source: str, name: str = "predict"):
    """Write ``source`` to a fresh module file (a new name each time) and return ``name`` from it."""
    global _SOURCE_DIR, _SOURCE_COUNT
    from mloc_ir.source import load_function
    if _SOURCE_DIR is None:
        _SOURCE_DIR = tempfile.mkdtemp(prefix="mloc_drawn_")
    _SOURCE_COUNT += 1
    module = f"mloc_drawn_{os.getpid()}_{_SOURCE_COUNT}"
    path = os.path.join(_SOURCE_DIR, module + ".py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    try:
        return load_function(path, name)
    finally:
        sys.modules.pop(module, None)  # import_path registers it; keep sys.modules small


def run_quietly(fn, *args, **kwargs):
    """Call ``fn`` with floating-point warnings silenced (the interpreter silences them too)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------------------------
# Comparing results
# ------------------------------------------------------------------------------------------
def _items(result) -> list:
    return list(result) if isinstance(result, tuple) else [result]


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, (pd.Series, pd.Index)):
        if isinstance(value.dtype, pd.StringDtype) or value.dtype == object:
            return value.to_numpy(dtype=object)
        return value.to_numpy()
    return np.asarray(value)


def _dtype_name(arr: np.ndarray) -> str:
    # strings are Python objects in the IR, '<U..' arrays or pandas str in the original
    return "str" if arr.dtype.kind in "OUS" else str(arr.dtype)


def _assert_column(a: np.ndarray, e: np.ndarray, where: str, check_dtype: bool):
    assert a.shape == e.shape, f"{where}: shape {a.shape} != {e.shape}"
    if check_dtype:
        assert _dtype_name(a) == _dtype_name(e), f"{where}: dtype {a.dtype} != {e.dtype}"
    if a.dtype.kind in "OUS" or e.dtype.kind in "OUS":
        bad = [i for i, (x, y) in enumerate(zip(a.ravel().tolist(), e.ravel().tolist()))
               if not (x == y or (x != x and y != y))]
    else:
        # -0.0 == 0.0 here on purpose: IEEE equality treats them alike, as every comparison,
        # np.where test and model threshold downstream does, and which zero a tie of
        # max/min/clip yields differs between NumPy, pandas and native code (maxsd and LLVM's
        # maxnum pick differently). Where the sign changes a later value (1/x, log, x/0) that
        # later value is compared itself -- that is how the clip(-0.0, 0, ...) bug was found.
        # NaN equals NaN; NaN payloads are not compared.
        with np.errstate(invalid="ignore"):
            same = (a == e)
            if a.dtype.kind in "fc" or e.dtype.kind in "fc":
                same = same | (np.isnan(a.astype(np.float64)) & np.isnan(e.astype(np.float64)))
        bad = np.flatnonzero(~np.asarray(same, dtype=bool).ravel()).tolist()
    if bad:
        i = bad[0]
        raise AssertionError(f"{where}: {len(bad)} of {a.size} values differ; first at flat "
                             f"index {i}: {a.ravel()[i]!r} != {e.ravel()[i]!r}")


def assert_same_results(actual, expected, *, check_dtype: bool = True) -> None:
    """Assert two pipeline results are the same, output by output (see module docstring)."""
    a_items, e_items = _items(actual), _items(expected)
    assert len(a_items) == len(e_items), f"{len(a_items)} outputs != {len(e_items)}"
    for k, (a, e) in enumerate(zip(a_items, e_items)):
        _assert_column(_to_numpy(a), _to_numpy(e), f"output {k}", check_dtype)
