"""NumPy, ``math`` and dtype calls: ``np.<ufunc>``, ``np.where/clip/round/nan_to_num``,
casts, and assembling columns into 2-D inputs (``np.column_stack/hstack/stack``).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..types import Type, dtype_from_numpy, numpy_dtype
from .values import Py, Val, _BINARY_NUMPY, _DTYPE_WORDS, _UNARY_NUMPY


class NumpyCalls:
    """Lowering of NumPy / math functions, casts and column stacking (a ``Lowering`` mixin)."""

    def call_numpy(self, fname, obj, node):
        if fname in ("array", "asarray", "asanyarray", "fromiter"):
            return self.np_array(node)
        args, kwargs = self.args_kwargs(node)
        if fname in _UNARY_NUMPY:
            self.check_kwargs(kwargs, (), f"np.{fname}")
            if len(args) != 1:
                self.fail(f"np.{fname} with {len(args)} arguments")
            return self.py_or_node(_UNARY_NUMPY[fname], args)
        if fname in _BINARY_NUMPY:
            self.check_kwargs(kwargs, (), f"np.{fname}")
            if len(args) != 2:
                self.fail(f"np.{fname} with {len(args)} arguments")
            return self.py_or_node(_BINARY_NUMPY[fname], args)
        if fname == "square":
            self.check_kwargs(kwargs, (), "np.square")
            if len(args) != 1:
                self.fail(f"np.square with {len(args)} arguments")
            return self.py_or_node("mul", [args[0], args[0]])  # x * x, bit for bit
        if fname == "isin":
            self.check_kwargs(kwargs, (), "np.isin")
            if len(args) != 2:
                self.fail("np.isin with other than (column, values)")
            return self.isin(self.as_val(args[0]), args[1], "np.isin", nan_matches=False)
        if fname == "select":
            return self.select(args, kwargs)
        if fname in ("isinf", "isfinite", "isposinf", "isneginf"):
            x = self.as_val(args[0])
            if self.type_of(x).dtype not in ("f64", "f32"):
                # integers and bools are always finite: x == x is all True, x != x all False
                return self.elementwise("eq" if fname == "isfinite" else "ne", [x, x])
            inf = self.const(math.inf)
            if fname == "isfinite":  # NaN < inf is False, as isfinite(NaN) is
                return self.elementwise("lt", [self.elementwise("abs", [x]), inf])
            if fname == "isinf":
                return self.elementwise("eq", [self.elementwise("abs", [x]), inf])
            return self.elementwise("eq", [x, inf if fname == "isposinf" else self.const(-math.inf)])
        if fname in ("logical_and", "logical_or", "logical_xor"):
            a, b = (self.truthy(self.as_val(x)) for x in args)
            return self.elementwise({"logical_and": "bitand", "logical_or": "bitor",
                                     "logical_xor": "bitxor"}[fname], [a, b])
        if fname == "logical_not":
            return self.elementwise("invert", [self.truthy(self.as_val(args[0]))])
        if fname in ("round", "around", "round_"):
            decimals = self.kw_const(kwargs, "decimals", args[1].obj if len(args) > 1 else 0)
            return self.do_round(args[0], decimals)
        if fname == "where":
            if len(args) != 3:
                self.fail("np.where with one argument (it returns row indices)",
                          hint="np.where(condition, a, b)")
            return self.where(*args)
        if fname == "clip":
            lo = args[1] if len(args) > 1 else kwargs.get("a_min", kwargs.get("min", Py(None)))
            hi = args[2] if len(args) > 2 else kwargs.get("a_max", kwargs.get("max", Py(None)))
            return self.clip(args[0], lo, hi)
        if fname == "nan_to_num":
            x = self.as_val(args[0])
            self.check_kwargs(kwargs, ("nan", "posinf", "neginf", "copy"), "np.nan_to_num")
            attrs = {"nan": self.kw_const(kwargs, "nan", 0.0), "posinf": self.kw_const(kwargs, "posinf"),
                     "neginf": self.kw_const(kwargs, "neginf")}
            self.want_numeric(x, "np.nan_to_num")
            dtype = self.numpy_result(np.nan_to_num, [x], "np.nan_to_num",
                                      **{k: v for k, v in attrs.items()})
            return self.emit("nan_to_num", [x], attrs, Type.col(dtype))
        if fname in ("column_stack",):
            return self.stack(self.sequence(args[0]), "np.column_stack")
        if fname == "stack":
            axis = self.kw_const(kwargs, "axis", args[1].obj if len(args) > 1 else 0)
            if axis not in (1, -1):
                self.fail(f"np.stack(..., axis={axis}) (stacks rows, not columns)",
                          hint="np.stack([...], axis=1) or np.column_stack([...])")
            parts = self.sequence(args[0])
            for p in parts:
                if self.type_of(p).shape != "col":
                    self.fail("np.stack(axis=1) of 2-D values", hint="np.hstack([...])")
            return self.stack(parts, "np.stack")
        if fname in ("hstack", "concatenate"):
            if fname == "concatenate":
                axis = self.kw_const(kwargs, "axis", args[1].obj if len(args) > 1 else 0)
                if axis not in (1, -1):
                    self.fail(f"np.concatenate(..., axis={axis}) (joins rows)", hint="axis=1")
            parts = self.sequence(args[0])
            for p in parts:
                if self.type_of(p).shape == "col":
                    self.fail(f"np.{fname} of a 1-D column (it concatenates rows end to end)",
                              hint="np.column_stack([...]), or x[:, None] to make it 2-D")
            return self.stack(parts, f"np.{fname}")
        if fname in ("float64", "float32", "int64", "int32", "bool_", "double"):
            if len(args) == 1 and isinstance(args[0], Py):
                return Py(obj(args[0].obj))
            return self.cast(self.as_val(args[0]), _DTYPE_WORDS.get(fname.rstrip("_"), "f64"))
        self.fail(f"np.{fname}", hint="see the README's pipeline language for the NumPy "
                  "functions mloc compiles; unknown user functions run as opaque Python")

    def isin(self, v: Val, values, what: str, nan_matches: bool = True) -> Val:
        """``x.isin(values)``: a lookup into ``{value: True}`` (Python's key equality, as
        pandas' hash tables use: 1 matches 1.0 and True).  pandas matches NaN to NaN
        (``nan_matches``, done with ``isnan``); ``np.isin`` compares with ``==``, so NaN
        matches nothing there."""
        from ..printer import Ref
        items = values.obj if isinstance(values, Py) else None
        if isinstance(values, tuple) and all(isinstance(x, Py) for x in values):
            items = [x.obj for x in values]  # a literal list
        if isinstance(items, (set, frozenset)) and not nan_matches:
            self.fail("np.isin of a set (NumPy takes a set as one object, so nothing matches)",
                      hint="np.isin(x, list(VALUES)) or np.isin(x, [1, 2, 3])")
        if isinstance(items, (set, frozenset, dict)):
            items = list(items)
        if isinstance(items, np.ndarray):
            items = items.tolist()
        if not isinstance(items, (list, tuple)) or not all(
                isinstance(x, (bool, int, float, str, np.generic)) for x in items):
            self.fail(f"{what} of something other than a constant list of numbers or strings",
                      hint=f"{what}([1, 2, 3]) or a module-level list/set constant")
        items = [x.item() if isinstance(x, np.generic) else x for x in items]
        if not nan_matches and len({isinstance(x, str) for x in items}) > 1:
            self.fail("np.isin of a list mixing strings and numbers (NumPy makes it a string "
                      "array)", hint="only numbers, or only strings")
        strings = [x for x in items if isinstance(x, str)]
        pending = self.node(v).meta.get("pending_dtype")
        if self.type_of(v).dtype == "str" or (pending and strings):
            self.want_str(v, what)
            items = strings  # a string never equals a number
        else:
            self.want_numeric(v, what)
            items = [x for x in items if not isinstance(x, str)]
        is_str = self.type_of(v).dtype == "str"
        has_nan = nan_matches and any(isinstance(x, float) and math.isnan(x) for x in items)
        table = {x: True for x in items if not (isinstance(x, float) and math.isnan(x))}
        if table:
            found = self.lookup(v, Ref("isin", table), False)
        else:  # nothing to match: all False (x < x is False for every number, NaN included)
            found = self.elementwise("ne" if is_str else "lt", [v, v])
        if has_nan and self.type_of(v).dtype in ("f32", "f64"):
            found = self.elementwise("bitor", [found, self.elementwise("isnan", [v])])
        return found

    def select(self, args, kwargs) -> Val:
        """``np.select(conditions, choices, default=0)`` as nested ``where``s, each choice cast
        first to the dtype np.select gives (found by running np.select on typed probes), so
        the nested ``where``s cannot promote differently from np.select."""
        self.check_kwargs(kwargs, ("default",), "np.select")
        if not 2 <= len(args) <= 3:
            self.fail("np.select with other than (conditions, choices[, default])")
        conds = args[0].obj if isinstance(args[0], Py) else args[0]
        choices = args[1].obj if isinstance(args[1], Py) else args[1]
        if isinstance(choices, (tuple, list)):
            choices = [Py(c) if not isinstance(c, (Py, Val)) else c for c in choices]
        if not isinstance(conds, (tuple, list)) or not isinstance(choices, (tuple, list)):
            self.fail("np.select with conditions or choices that are not literal lists",
                      hint="np.select([cond1, cond2], [value1, value2], default)")
        if len(conds) != len(choices) or not conds:
            self.fail(f"np.select with {len(conds)} condition(s) and {len(choices)} choice(s)",
                      hint="one choice per condition")
        default = args[2] if len(args) > 2 else kwargs.get("default", Py(0))
        conds = [self.as_val(c) if not isinstance(c, Val) else c for c in conds]
        for c in conds:
            if self.type_of(c).dtype != "bool":
                self.type_error("np.select with a condition that is not boolean",
                                hint="comparisons such as x > 0")
        parts = [*choices, default]
        probes = []  # np.select's own dtype rule, found by running it (scalars stay Python's)
        for p in parts:
            if isinstance(p, Py):
                if not isinstance(p.obj, numbers.Number) or isinstance(p.obj, complex):
                    self.fail("np.select with a choice that is not a number")
                probes.append(p.obj)
            else:
                p = self.as_val(p)
                self.want_numeric(p, "np.select")
                probes.append(np.zeros(1, numpy_dtype(self.type_of(p).dtype)))
        try:
            found = np.select([np.ones(1, bool)] * len(choices), probes[:-1], default=probes[-1])
            target = dtype_from_numpy(found.dtype)
        except (TypeError, ValueError) as exc:
            self.type_error(f"np.select refuses these choices: {exc}")
        vals = [self.cast(self.as_val(p), target) if not isinstance(p, Py) else
                self.const(np.asarray(p.obj).astype(numpy_dtype(target)).item()) for p in parts]
        out = vals[-1]
        for c, v in reversed(list(zip(conds, vals[:-1]))):
            out = self.elementwise("where", [c, v, out], numpy_fn=np.where)
        if self.type_of(out).dtype != target:
            out = self.cast(out, target)
        return out

    def truthy(self, v: Val) -> Val:
        if self.type_of(v).dtype == "bool":
            return v
        return self.elementwise("ne", [v, self.const(0)])

    def do_round(self, x, decimals):
        if isinstance(x, Py):
            return Py(np.round(x.obj, decimals))
        v = self.as_val(x)
        self.want_numeric(v, "round")
        dtype = self.numpy_result(np.round, [v], "round", decimals=decimals)
        return self.emit("round", [v], {"decimals": int(decimals)}, Type.col(dtype))

    def clip(self, x, lo, hi):
        # np.clip keeps x where it ties a bound (clip(-0.0, 0.0, 1.0) is -0.0); np.maximum and
        # np.minimum return their second argument on ties, so x goes second
        out = x
        if not (isinstance(lo, Py) and lo.obj is None):
            out = self.py_or_node("maximum", [lo, out])
        if not (isinstance(hi, Py) and hi.obj is None):
            out = self.py_or_node("minimum", [hi, out])
        return out

    def cast(self, v: Val, dtype: str) -> Val:
        t = self.type_of(v)
        if dtype == "str":
            self.want_str(v, "astype(str)")
            return v
        if t.dtype == "str":
            self.type_error("casting a string column to a number",
                            hint="a lookup table from strings to numbers")
        self.want_numeric(v, "astype")
        if t.dtype == dtype:
            return v
        return self.emit("cast", [v], {"dtype": dtype}, Type(t.shape, dtype))

    def dtype_arg(self, obj) -> str:
        if isinstance(obj, str):
            word = obj
        elif obj in (float, int, bool, str):
            word = obj.__name__
        else:
            try:
                return dtype_from_numpy(obj)
            except TypeError:
                word = str(obj)
        if word in _DTYPE_WORDS:
            return _DTYPE_WORDS[word]
        try:
            return dtype_from_numpy(np.dtype(word))
        except TypeError:
            self.fail(f"the dtype {obj!r}", hint="float64, float32, int64, bool")

    def call_math(self, fname, node):  # noqa: C901
        args, kwargs = self.args_kwargs(node)
        table = {"log": "log", "log1p": "log1p", "exp": "exp", "sqrt": "sqrt", "fabs": "abs",
                 "floor": "floor", "ceil": "ceil", "isnan": "isnan"}
        if fname not in table or len(args) != 1:
            self.fail(f"math.{fname}", hint="math.log/log1p/exp/sqrt/fabs/floor/ceil/isnan")
        if isinstance(args[0], Py):
            return Py(getattr(math, fname)(args[0].obj))
        if fname in ("log", "log1p", "exp"):  # the C library's, as math computes them
            return self.elementwise(f"c_{fname}", [self.as_val(args[0])],
                                    numpy_fn=_float64_result)
        v = self.elementwise(table[fname], [self.as_val(args[0])])
        if fname in ("floor", "ceil"):  # math.floor returns an int
            return self.cast(v, "i64")
        return v

    def sequence(self, x):
        if isinstance(x, tuple):
            return [self.as_val(p) if not isinstance(p, Val) else p for p in x]
        self.fail("stacking something other than a list of columns",
                  hint="np.column_stack([a, b, ...])")

    def stack(self, parts, what) -> Val:
        vals = []
        for p in parts:
            p = self.as_val(p)
            t = self.type_of(p)
            if t.shape == "scalar":
                self.fail(f"a constant inside {what}", hint="np.full_like(x, c) is not row-wise; "
                          "use x * 0 + c")
            if t.shape == "record":
                self.fail(f"a joined record inside {what}", hint="its columns")
            if t.dtype == "str":
                self.type_error(f"a string column inside {what}",
                                hint="encode strings with a lookup table or a vectorizer")
            if t.shape == "col":
                self.want_numeric(p, what)
            vals.append(p)
        width = sum(1 if self.type_of(p).shape in ("col", "any") else self.type_of(p).width for p in vals)
        dtypes = [self.type_of(p).dtype or "f64" for p in vals]
        dtype = dtype_from_numpy(np.result_type(*[numpy_dtype(d) for d in dtypes]))
        if any(self.type_of(p).shape == "sparse" for p in vals):
            return self.emit("stack", vals, type=Type.sparse(width, dtype), name="X")
        return self.emit("stack", vals, type=Type.row(width, dtype), name="X")


def _float64_result(x):
    """The dtype probe of math.log/log1p/exp: a Python float whatever the operand."""
    return np.asarray(x, dtype=np.float64)
