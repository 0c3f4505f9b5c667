"""The closed set of IR operations.

Each op is row-wise: row ``i`` of its result depends only on row ``i`` of its arguments (and on
constants). That is what makes fusion, cascades and top-K filters legal, since any subset of
rows can be computed on its own. The one exception is ``pycall``, an opaque call into user
Python that runs on the whole batch.

Semantics are NumPy's (the reference interpreter runs each op with the NumPy function named
in its ``numpy`` field), so the IR computes exactly what the original program computes.

``attrs`` each op uses are listed in its spec; ``verify`` checks arity and attrs.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpSpec:
    name: str
    family: str
    arity: tuple[int, int | None]  # (min, max); max None = variadic
    doc: str
    attrs: tuple[str, ...] = ()  # required attribute names
    numpy: str | None = None  # NumPy function implementing the op element-wise
    host_only: bool = False  # never compiled natively (runs in Python between kernels)
    row_wise: bool = True
    extra: dict = field(default_factory=dict)


OPS: dict[str, OpSpec] = {}


def _op(name, family, arity, doc, attrs=(), numpy=None, host_only=False, row_wise=True):
    if isinstance(arity, int):
        arity = (arity, arity)
    OPS[name] = OpSpec(name, family, arity, doc, tuple(attrs), numpy, host_only, row_wise)


# -- sources ---------------------------------------------------------------------------------
_op("input", "source", 0, "A column of the pipeline's input: a parameter, or one column of a "
    "DataFrame parameter.", attrs=("param", "column"))
_op("const", "source", 0, "A scalar constant broadcast to every row.", attrs=("value",))

# -- arithmetic, comparison, logic (NumPy ufuncs, NumPy type promotion) ------------------------
for _name, _np, _doc in [
    ("add", "add", "a + b"), ("sub", "subtract", "a - b"), ("mul", "multiply", "a * b"),
    ("div", "true_divide", "a / b (true division)"),
    ("floordiv", "floor_divide", "a // b"), ("mod", "remainder", "a % b (sign of b)"),
    ("pow", "power", "a ** b"),
    ("lt", "less", "a < b"), ("le", "less_equal", "a <= b"), ("gt", "greater", "a > b"),
    ("ge", "greater_equal", "a >= b"), ("eq", "equal", "a == b"), ("ne", "not_equal", "a != b"),
    ("bitand", "bitwise_and", "a & b"), ("bitor", "bitwise_or", "a | b"),
    ("bitxor", "bitwise_xor", "a ^ b"),
    ("minimum", "minimum", "np.minimum(a, b) (NaN propagates)"),
    ("maximum", "maximum", "np.maximum(a, b) (NaN propagates)"),
]:
    _op(_name, "binary", 2, _doc, numpy=_np)

for _name, _np, _doc in [
    ("neg", "negative", "-a"), ("invert", "invert", "~a (logical not on bool)"),
    ("log", "log", "natural log"), ("log1p", "log1p", "log(1 + a)"), ("exp", "exp", "e ** a"),
    ("log10", "log10", "base-10 log"), ("log2", "log2", "base-2 log"),
    ("expm1", "expm1", "e ** a - 1"),
    ("sqrt", "sqrt", "square root"), ("abs", "absolute", "|a|"), ("floor", "floor", "floor"),
    ("ceil", "ceil", "ceiling"), ("sign", "sign", "-1, 0 or 1 (NaN stays NaN)"),
    ("isnan", "isnan", "a is NaN"),
]:
    _op(_name, "unary", 1, _doc, numpy=_np)

for _name, _doc in [("c_log", "math.log(a)"), ("c_log1p", "math.log1p(a)"),
                   ("c_exp", "math.exp(a)")]:
    # Python's math module calls the C library, whose last bits differ from NumPy's loops on
    # some CPUs (AVX-512): per-element comprehension code keeps the C library's values. Where
    # math raises (log of 0 or a negative, exp overflow) the C value (-inf, NaN, inf) is given.
    _op(_name, "unary", 1, _doc + ": the C library's function on float64 (Python's math)")

_op("c_pow", "binary", 2, "a ** b on Python/NumPy float scalars in per-element code: the C "
    "library's pow on float64 (NumPy's array loop differs from it on some CPUs)")

_op("round", "unary", 1, "np.round(a, decimals) (half to even)", attrs=("decimals",))
_op("nan_to_num", "unary", 1, "np.nan_to_num(a, nan=, posinf=, neginf=)",
    attrs=("nan", "posinf", "neginf"))
_op("where", "ternary", 3, "np.where(cond, a, b)")
_op("cast", "unary", 1, "a.astype(dtype)", attrs=("dtype",))

# -- lookups ---------------------------------------------------------------------------------
_op("lookup", "lookup", 1, "table.get(key, default) for each row's key; the table is a Python "
    "dict known at compile time (Python's key equality: 1 == 1.0, NaN matches nothing), or a "
    "dict table of a feature store (mloc_ir.featurestore), read at run time with every key of "
    "the batch in one round trip (such nodes run on the host).",
    attrs=("table", "default"))
_op("join", "lookup", 1, "Left join of each row's key against a keyed table; a record of the "
    "table's value columns, each missing key giving its column's default (NaN for pandas). The "
    "table is a DataFrame known at compile time, or a frame table of a feature store, read at "
    "run time in one round trip per batch (on the host).",
    attrs=("table", "defaults"))
_op("field", "lookup", 1, "One named field of a record.", attrs=("name",))

# -- strings ---------------------------------------------------------------------------------
_op("str_len", "string", 1, "len(s)")
_op("str_lower", "string", 1, "s.lower()")
_op("str_upper", "string", 1, "s.upper()")
_op("str_strip", "string", 1, "s.strip()")
_op("str_count", "string", 1, "s.count(sub) (regex=False) or len(re.findall(sub, s)) (regex=True)",
    attrs=("sub", "regex"))
_op("str_contains", "string", 1, "sub in s (regex=False) or re.search(sub, s) is not None; "
    "case=False folds case first", attrs=("sub", "regex", "case"))
_op("str_startswith", "string", 1, "s.startswith(prefix)", attrs=("prefix",))
_op("str_endswith", "string", 1, "s.endswith(suffix)", attrs=("suffix",))
_op("str_replace", "string", 1, "s.replace(pat, repl) (regex=False) or re.sub(pat, repl, s) "
    "(regex=True)", attrs=("pat", "repl", "regex"))
_op("str_fillna", "string", 1, "Series.fillna(value) of a string column: missing elements "
    "(NaN, None, pd.NA: a left join's unmatched rows) become value", attrs=("value",))
_op("str_word_count", "string", 1, "len(s.split()): whitespace-separated words")

# -- datetimes (pandas' semantics: the interpreter runs pandas itself) ----------------------------
_op("to_datetime", "datetime", 1, "pd.to_datetime(strings) with pandas' format inference (from "
    "the first non-null string; mixed formats raise as in pandas); None/NaN give NaT. Host "
    "stages parse strict ISO batches ('YYYY-MM-DD HH:MM:SS[.ffffff]', ' ' or 'T') without "
    "pandas (runtime.datetimes) and give any other batch to pandas.", host_only=True)
_op("dt_field", "datetime", 1, "Series.dt.<field> (hour, minute, second, microsecond, day, "
    "month, year, dayofweek, dayofyear, quarter) as float64: pandas' int32 values, NaN where "
    "the datetime is NaT (pandas' float64 result then).", attrs=("field",), host_only=True)
_op("dt_sub", "datetime", 2, "a - b of two datetimes: a timedelta (NaT if either is NaT).",
    host_only=True)
_op("td_seconds", "datetime", 1, "timedelta.total_seconds() / .dt.total_seconds(): float64 "
    "seconds, NaN for NaT.", host_only=True)

# -- feature assembly, vectorizers, models ---------------------------------------------------------
_op("vectorize", "text", 1, "A fitted scikit-learn vectorizer's .transform(texts): a sparse row "
    "of its vocabulary.", attrs=("vectorizer",), host_only=True)
_op("stack", "assembly", (1, None), "Columns and rows side by side: np.column_stack, "
    "scipy.sparse.hstack, df[[...]]. Sparse when any argument is sparse.")
_op("column", "assembly", 1, "One column of a row value: X[:, index].", attrs=("index",))
_op("transform", "model", 1, "A fitted scikit-learn transformer's .transform(X) on a row "
    "(StandardScaler, MinMaxScaler, ...).", attrs=("transformer",))
_op("model", "model", 1, "A model call: model.<method>(X, **kwargs) on a row of features.",
    attrs=("model", "method", "kwargs", "library"))
_op("pycall", "opaque", (0, None), "An opaque Python call on whole columns; runs on the batch "
    "as a whole, never cascaded.", attrs=("fn", "qualname"), host_only=True, row_wise=False)

ELEMENTWISE_FAMILIES = ("binary", "unary", "ternary")


def spec(op: str) -> OpSpec:
    try:
        return OPS[op]
    except KeyError:
        raise KeyError(f"unknown IR op {op!r}; the op set is: {', '.join(sorted(OPS))}") from None
