"""Symbolic values of the front end and its operator tables.

While walking a function body the environment maps names to these: ``Val`` (an IR value),
``Py`` (a Python object known at compile time), ``Frame`` (a DataFrame of columns),
``ParamRef`` (a parameter not yet used), and the pending forms ``Attr``, ``StrAccessor``,
``Lambda``, ``RemoteRows`` and ``SplitResult`` that a following call or ``len`` resolves. The
tables map Python / NumPy operators and functions to IR ops.
"""
from __future__ import annotations

import ast
import numbers

import numpy as np


class Val:
    """An IR value (a node id)."""

    __slots__ = ("nid",)

    def __init__(self, nid: int):
        self.nid = nid


class Py:
    """A Python object known at compile time (a constant, a table, a model, a module)."""

    __slots__ = ("obj", "name")

    def __init__(self, obj, name: str | None = None):
        self.obj, self.name = obj, name


class Frame:
    """A DataFrame: an ordered mapping of column names to values.

    A parameter frame creates an input node the first time a column is read.
    """

    def __init__(self, param: str | None, columns: dict[str, Val] | None = None):
        self.param = param
        self.columns: dict[str, Val] = dict(columns or {})

    def with_column(self, name: str, val: Val) -> "Frame":
        f = Frame(self.param, self.columns)
        f.columns[name] = val
        return f


class ParamRef:
    """A parameter not yet used: it becomes a column or a frame at its first use."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class Attr:
    """``target.name`` awaiting a call (a method of a value or a Python object)."""

    __slots__ = ("target", "name")

    def __init__(self, target, name: str):
        self.target, self.name = target, name


class StrAccessor:
    """``series.str``."""

    __slots__ = ("val",)

    def __init__(self, val: Val):
        self.val = val


class DtAccessor:
    """``series.dt`` of a datetime or timedelta column."""

    __slots__ = ("val",)

    def __init__(self, val: Val):
        self.val = val


#: Series.dt / DatetimeIndex fields mloc computes (pandas' names; values as float64)
DT_FIELDS = ("year", "month", "day", "hour", "minute", "second", "microsecond", "nanosecond",
             "dayofweek", "day_of_week", "weekday", "dayofyear", "day_of_year", "quarter",
             "days_in_month", "daysinmonth")
DATETIME_DTYPES = ("datetime", "timedelta")


class Lambda:
    __slots__ = ("node",)

    def __init__(self, node: ast.Lambda):
        self.node = node


class RemoteRows:
    """``STORE.fetch(keys)``: a feature-store table's rows for a key column, awaiting a merge."""

    __slots__ = ("table", "key")

    def __init__(self, table: "Py", key: Val):
        self.table, self.key = table, key


_SCALAR_TYPES = (numbers.Number, np.bool_, bool, str)

LOOP_HINT = ("vectorized NumPy/pandas ops on whole columns, or a per-element comprehension "
             "np.array([expr for v in column])")

# NumPy functions of one argument -> IR op
_UNARY_NUMPY = {
    "log": "log", "log1p": "log1p", "exp": "exp", "sqrt": "sqrt", "abs": "abs",
    "log10": "log10", "log2": "log2", "expm1": "expm1", "absolute": "abs", "fabs": "abs", "floor": "floor", "ceil": "ceil", "sign": "sign",
    "isnan": "isnan", "negative": "neg", "invert": "invert",
}

_BINARY_NUMPY = {
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div",
    "true_divide": "div", "floor_divide": "floordiv", "mod": "mod", "remainder": "mod",
    "power": "pow", "minimum": "minimum", "maximum": "maximum", "less": "lt",
    "less_equal": "le", "greater": "gt", "greater_equal": "ge", "equal": "eq",
    "not_equal": "ne", "bitwise_and": "bitand", "bitwise_or": "bitor", "bitwise_xor": "bitxor",
}

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
           ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow", ast.BitAnd: "bitand",
           ast.BitOr: "bitor", ast.BitXor: "bitxor"}

_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}

_NUMPY_OF_OP = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "lt": np.less,
    "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
    "ne": np.not_equal, "bitand": np.bitwise_and, "bitor": np.bitwise_or,
    "bitxor": np.bitwise_xor, "minimum": np.minimum, "maximum": np.maximum,
    "neg": np.negative, "invert": np.invert, "log": np.log, "log1p": np.log1p, "exp": np.exp,
    "log10": np.log10, "log2": np.log2, "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.absolute, "floor": np.floor, "ceil": np.ceil, "sign": np.sign,
    "isnan": np.isnan,
}

_STR_METHODS_ELEMENT = {"lower": "str_lower", "upper": "str_upper", "strip": "str_strip"}

_MODEL_METHODS = ("predict", "predict_proba", "decision_function")

_DTYPE_WORDS = {"float": "f64", "float64": "f64", "double": "f64", "float32": "f32",
                "single": "f32", "int": "i64", "int64": "i64", "int32": "i64", "bool": "bool",
                "str": "str", "object": "str"}


class SplitResult:
    """``s.split()`` awaiting ``len(...)``."""

    def __init__(self, val):
        self.val = val


_SERIES_METHODS = {"abs", "clip", "fillna", "astype", "map", "apply", "round", "isna", "notna",
                   "isnull", "notnull", "to_numpy", "reshape", "lower", "upper", "strip", "count",
                   "startswith", "endswith", "split", "isin", "between", "where", "mask"}

_OP_SYMBOL = {"bitand": "&", "bitor": "|", "bitxor": "^"}

_PY_EVAL = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
    "pow": lambda a, b: a ** b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b, "bitand": lambda a, b: a & b, "bitor": lambda a, b: a | b,
    "bitxor": lambda a, b: a ^ b, "neg": lambda a: -a, "invert": lambda a: ~a,
    "abs": abs, "minimum": np.minimum, "maximum": np.maximum,
    **{k: getattr(np, v) for k, v in _UNARY_NUMPY.items() if k not in ("abs", "negative", "invert")},
}
