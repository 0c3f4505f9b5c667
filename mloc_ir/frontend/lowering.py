"""The core of the front end: ``Lowering`` walks one function body and builds its Graph.

It owns the environment, error reporting (``file:line`` of the pipeline source), node
emission, typing by running NumPy on one-element probes, statements, expressions and the
dispatch of calls; the call families live in the mixins it inherits from.
"""
from __future__ import annotations

import ast
import math
from typing import Any

import numpy as np

from ..errors import PipelineTypeError, UnsupportedConstruct
from ..graph import Graph, Loc, Param
from ..printer import Ref
from ..source import PipelineSource
from ..types import Type, dtype_from_numpy, numpy_dtype
from ..verify import verify
from .comprehensions import Comprehensions
from .helpers import (_as_load, _is_dataframe_method, _is_full_slice, _is_literal, _is_none,
                      _is_pandas_function, _is_sparse_hstack, _snippet)
from .inlining import Inlining, is_user_function
from .model_calls import ModelCalls
from .numpy_calls import NumpyCalls
from .pandas_calls import PandasCalls
from .store_calls import StoreCalls
from .values import (DATETIME_DTYPES, Attr, DtAccessor, Frame, LOOP_HINT, Lambda, ParamRef, Py,
                     StrAccessor, Val, _BINOPS, _CMPOPS, _NUMPY_OF_OP, _OP_SYMBOL, _PY_EVAL,
                     _SCALAR_TYPES, _SERIES_METHODS)


class Lowering(NumpyCalls, PandasCalls, StoreCalls, ModelCalls, Comprehensions, Inlining):
    """Walks one function body and builds its Graph."""

    def __init__(self, src: PipelineSource, dtypes: dict[str, str] | None = None):
        self.src = src
        self.graph = Graph(src.fn.__name__)
        self.graph.meta["source"] = f"{src.file}:{src.line_offset + src.tree.lineno}"
        self.dtypes = dict(dtypes or {})
        self.env: dict[str, Any] = {}
        self.line = src.tree.lineno
        self._const_cache: dict[tuple, int] = {}
        self.element_depth = 0  # > 0 inside per-element code (comprehensions, lambdas)
        args = src.tree.args
        if args.vararg or args.kwarg or args.posonlyargs:
            self.fail("*args/**kwargs/positional-only parameters", hint="named parameters, one "
                      "per input column or DataFrame")
        all_args = args.args + args.kwonlyargs
        defaults = [None] * (len(args.args) - len(args.defaults)) + list(args.defaults) + list(args.kw_defaults)
        self.param_defaults = {}
        for a, d in zip(all_args, defaults):
            self.env[a.arg] = ParamRef(a.arg)
            self.param_defaults[a.arg] = d
        self.param_order = [a.arg for a in all_args]
        self.param_kind: dict[str, str] = {}
        # one input node per (parameter, column): a parameter read twice in one expression
        # (x * x), or again after a comprehension restored the environment, reuses its node
        self._inputs: dict[tuple[str, str | None], Val] = {}

    # -- errors ---------------------------------------------------------------------------
    def loc(self) -> Loc:
        return Loc(self.src.file, self.src.line_offset + self.line)

    def fail(self, what: str, hint: str | None = None, cls=UnsupportedConstruct):
        raise cls(f"unsupported construct: {what}", self.src.file,
                  self.src.line_offset + self.line, hint)

    def type_error(self, what: str, hint: str | None = None):
        raise PipelineTypeError(what, self.src.file, self.src.line_offset + self.line, hint)

    # -- node helpers ---------------------------------------------------------------------
    def node(self, v: Val):
        return self.graph[v.nid]

    def type_of(self, v: Val) -> Type:
        return self.graph[v.nid].type

    def emit(self, op, args=(), attrs=None, type=None, name=None) -> Val:
        n = self.graph.add(op, [a.nid for a in args], attrs, type, name, self.loc())
        return Val(n.id)

    def const(self, value) -> Val:
        if isinstance(value, (np.generic,)):
            value = value if value.dtype == np.float32 else value.item()
        # repr, not the value: 0.0 == -0.0 (and hash alike) but 1/x tells them apart; NaN != NaN
        key = (type(value), repr(value))
        if key in self._const_cache:
            return Val(self._const_cache[key])
        v = self.emit("const", attrs={"value": value},
                      type=Type.scalar(dtype_from_numpy(np.asarray(value).dtype)),
                      name="c")
        self._const_cache[key] = v.nid
        return v

    # -- parameters -----------------------------------------------------------------------
    def column_param(self, p: ParamRef, hint_dtype: str | None = None) -> Val:
        kind = self.param_kind.get(p.name)
        if kind == "frame":
            self.fail(f"parameter {p.name!r} is used both as a DataFrame and as a column")
        self.param_kind[p.name] = "column"
        if (p.name, None) in self._inputs:
            v = self._inputs[(p.name, None)]
            self.env_replace(p, v)
            return v
        dtype = self.dtypes.get(p.name, hint_dtype or "f64")
        v = self.emit("input", attrs={"param": p.name, "column": None}, type=Type.col(dtype),
                      name=p.name)
        if p.name not in self.dtypes:
            self.node(v).meta["pending_dtype"] = True
        self._inputs[(p.name, None)] = v
        self.env_replace(p, v)
        return v

    def frame_param(self, p: ParamRef) -> Frame:
        if self.param_kind.get(p.name) == "column":
            self.fail(f"parameter {p.name!r} is used both as a column and as a DataFrame")
        self.param_kind[p.name] = "frame"
        f = Frame(p.name)
        self.env_replace(p, f)
        return f

    def env_replace(self, old, new):
        for k, v in list(self.env.items()):
            if v is old:
                self.env[k] = new

    def frame_column(self, f: Frame, col: str) -> Val:
        if col in f.columns:
            return f.columns[col]
        if f.param is None:
            self.fail(f"column {col!r} is not in this DataFrame")
        if (f.param, col) in self._inputs:
            f.columns[col] = self._inputs[(f.param, col)]
            return f.columns[col]
        key = f"{f.param}.{col}"
        dtype = self.dtypes.get(key, self.dtypes.get(col, "f64"))
        v = self.emit("input", attrs={"param": f.param, "column": col}, type=Type.col(dtype),
                      name=col)
        if key not in self.dtypes and col not in self.dtypes:
            self.node(v).meta["pending_dtype"] = True
        self._inputs[(f.param, col)] = v
        f.columns[col] = v
        return v

    def as_val(self, x, what="value") -> Val:
        """Coerce a symbolic value to an IR value (creating constants and input columns)."""
        if isinstance(x, Val):
            return x
        if isinstance(x, ParamRef):
            return self.column_param(x)
        if isinstance(x, Py) and isinstance(x.obj, _SCALAR_TYPES) and not isinstance(x.obj, str):
            return self.const(x.obj)
        if isinstance(x, Py) and isinstance(x.obj, str):
            return self.const(x.obj)
        if isinstance(x, Frame):
            self.fail(f"a DataFrame used as a {what}", hint="select a column: df['col']")
        if isinstance(x, Py):
            self.fail(f"{self.describe(x)} used as a {what}",
                      hint="columns, scalar constants, and calls of supported functions")
        self.fail(f"{type(x).__name__} used as a {what}")

    def describe(self, x) -> str:
        if isinstance(x, Py):
            return f"{x.name or 'object'} ({type(x.obj).__name__})"
        return type(x).__name__

    def want_numeric(self, v: Val, what: str):
        n = self.node(v)
        if n.meta.get("pending_dtype"):
            del n.meta["pending_dtype"]
        if n.type.dtype in DATETIME_DTYPES:
            self.type_error(f"{what} applied to a {n.type.dtype} column %{n.name}",
                            hint=".dt.<field> (hour, minute, dayofweek, ...) of datetimes, "
                                 ".total_seconds() of a difference of two datetimes")
        if n.type.dtype == "str":
            self.type_error(f"{what} applied to a string column %{n.name}",
                            hint="string methods: len, .lower(), .count(...), .str.contains(...), "
                                 "vectorizers, lookups")

    def want_str(self, v: Val, what: str):
        n = self.node(v)
        if n.meta.get("pending_dtype"):
            n.type = Type.col("str")
            del n.meta["pending_dtype"]
        if n.type.dtype != "str":
            self.type_error(f"{what} needs a string column, got %{n.name} : {n.type}")

    # -- typing by probing NumPy ----------------------------------------------------------
    def probe(self, v: Val):
        t = self.type_of(v)
        if t.shape == "scalar":
            return self.node(v).attrs["value"]
        if t.dtype == "str":
            return np.array(["a"], dtype=object)
        return np.ones(1, dtype=numpy_dtype(t.dtype or "f64"))

    def numpy_result(self, fn, vals, what, **kwargs) -> str:
        with np.errstate(all="ignore"):
            try:
                res = fn(*[self.probe(v) for v in vals], **kwargs)
            except (TypeError, ValueError) as exc:
                types = ", ".join(str(self.type_of(v)) for v in vals)
                self.type_error(f"{what} is not defined for ({types}): NumPy says: {exc}")
        dt = np.asarray(res).dtype
        if dt.kind in "biuf" and dt not in (np.bool_, np.int64, np.float32, np.float64):
            # np.log(bool) is float16 and bool // bool int8 in NumPy; labelled f64/i64, the
            # interpreter would compute in float16/int8 but native code in f64/i64, and a cast
            # to f64 would be dropped as a no-op
            types = ", ".join(str(self.type_of(v)) for v in vals)
            self.type_error(f"{what} of ({types}) computes in NumPy's {dt}, which mloc does not "
                            "represent", hint="cast bool columns first: x.astype(np.float64) "
                                              "or x.astype(np.int64)")
        return dtype_from_numpy(dt)

    def elementwise(self, op: str, vals: list[Val], attrs=None, numpy_fn=None, kwargs=None) -> Val:
        if any(self.type_of(v).dtype in DATETIME_DTYPES for v in vals):
            return self.datetime_arith(op, vals)
        for v in vals:
            t = self.type_of(v)
            if t.shape == "any":
                continue
            if not t.is_elementwise:
                self.type_error(f"{op} applied to a {t} value; element-wise ops take columns")
        strs = [v for v in vals if self.type_of(v).dtype == "str"]
        if op == "add" and strs and len(strs) == len(vals):
            # string concatenation (a + "_" + b): NumPy's add on object arrays is Python's +
            for v in vals:
                self.want_present_str(v, "string concatenation")
            shape = "scalar" if all(self.type_of(v).shape == "scalar" for v in vals) else "col"
            return self.emit(op, vals, attrs, Type(shape, "str"))
        if strs and op not in ("eq", "ne"):
            self.type_error(f"{op} applied to a string value",
                            hint="string columns support ==, !=, + (concatenation), string methods and "
                                 "lookups")
        for v in vals:  # an undeclared column compared with a string is a string column
            if strs and self.node(v).meta.get("pending_dtype"):
                self.want_str(v, op)
        if not strs:
            for v in vals:
                if self.type_of(v).shape == "col":
                    self.want_numeric(v, op)
        if any(self.type_of(v).shape == "any" for v in vals):
            return self.emit(op, vals, attrs, Type.any())
        fn = numpy_fn or _NUMPY_OF_OP[op]
        dtype = self.numpy_result(fn, vals, op, **(kwargs or {}))
        shape = "scalar" if all(self.type_of(v).shape == "scalar" for v in vals) else "col"
        return self.emit(op, vals, attrs, Type(shape, dtype))

    def py_or_node(self, op: str, xs: list, attrs=None) -> Any:
        """Compute on Python scalars directly (as Python would); otherwise emit a node."""
        if all(isinstance(x, Py) and isinstance(x.obj, _SCALAR_TYPES) for x in xs):
            with np.errstate(all="ignore"):
                try:
                    return Py(_PY_EVAL[op](*[x.obj for x in xs]))
                except Exception as exc:  # noqa: BLE001 -- what Python would raise, raised now
                    self.fail(f"constant expression raised {type(exc).__name__}: {exc}")
        vals = [self.as_val(x) for x in xs]
        if op == "pow" and self.element_depth and \
                self.numpy_result(np.power, vals, op) == "f64":
            # per-element float ** is scalar code: the C library's pow, not NumPy's array loop
            return self.elementwise("c_pow", vals, attrs, numpy_fn=_float64_pow)
        return self.elementwise(op, vals, attrs)

    # -- statements -----------------------------------------------------------------------
    def run(self) -> Graph:
        body = self.src.tree.body
        for i, stmt in enumerate(body):
            self.line = stmt.lineno
            if isinstance(stmt, ast.Return):
                if i != len(body) - 1:
                    self.fail("statements after return")
                self.do_return(stmt)
                break
            self.statement(stmt)
        else:
            self.line = body[-1].lineno
            self.fail("a pipeline without a return statement", hint="return the prediction")
        self.finish()
        return self.graph

    def statement(self, stmt):
        if isinstance(stmt, ast.Assign):
            value = self.expr(stmt.value)
            for target in stmt.targets:
                self.assign(target, value, stmt.value)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is None:
                return
            self.assign(stmt.target, self.expr(stmt.value), stmt.value)
        elif isinstance(stmt, ast.AugAssign):
            load = ast.copy_location(_as_load(stmt.target), stmt.target)
            value = self.binop(stmt.op, self.expr(load), self.expr(stmt.value))
            self.assign(stmt.target, value, stmt.value)
        elif isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Constant):
                return  # docstring
            self.fail("an expression statement (in-place mutation or a call for its effect)",
                      hint="assign results to variables: x = f(...)")
        elif isinstance(stmt, ast.Pass):
            return
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            self.do_import(stmt)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            self.fail("a Python loop over rows", hint=LOOP_HINT)
        elif isinstance(stmt, ast.If):
            self.fail("an if statement", hint="np.where(condition, a, b) to choose per row")
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.fail("a nested function or class definition",
                      hint="define helpers at module level; calls to them are inlined")
        elif isinstance(stmt, (ast.Try, ast.With, ast.AsyncWith, ast.Raise, ast.Assert,
                               ast.Delete, ast.Global, ast.Nonlocal)):
            self.fail(f"a {type(stmt).__name__.lower()} statement",
                      hint="straight-line assignments and a final return")
        else:
            self.fail(f"a {type(stmt).__name__} statement")

    def do_import(self, stmt):
        import importlib
        for alias in stmt.names:
            if isinstance(stmt, ast.Import):
                mod = importlib.import_module(alias.name)
                if alias.asname:
                    self.env[alias.asname] = Py(mod, alias.asname)
                else:
                    top = alias.name.split(".")[0]
                    self.env[top] = Py(importlib.import_module(top), top)
            else:
                mod = importlib.import_module(stmt.module)
                obj = getattr(mod, alias.name, None)
                if obj is None:
                    obj = importlib.import_module(f"{stmt.module}.{alias.name}")
                self.env[alias.asname or alias.name] = Py(obj, alias.asname or alias.name)

    def assign(self, target, value, value_node):
        if isinstance(target, ast.Name):
            if isinstance(value, Val):
                n = self.node(value)
                if n.op not in ("input", "const") and not n.meta.get("named"):
                    self.graph.rename(value.nid, target.id)
                    n.meta["named"] = True
            self.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, tuple) and len(value) == len(target.elts):
                for t, v in zip(target.elts, value):
                    self.assign(t, v, value_node)
            else:
                self.fail("tuple unpacking of a value that is not a tuple of the same length")
        elif isinstance(target, ast.Subscript):
            base = self.expr(target.value)
            if isinstance(base, ParamRef):
                base = self.frame_param(base)
            key = self.const_value(target.slice)
            if isinstance(base, Frame) and isinstance(key, str):
                if not isinstance(target.value, ast.Name):
                    self.fail("assignment into a nested DataFrame expression")
                self.env[target.value.id] = base.with_column(key, self.as_val(value))
                if isinstance(value, Val) and not self.node(value).meta.get("named") and \
                        self.node(value).op not in ("input", "const"):
                    self.graph.rename(value.nid, key)
                    self.node(value).meta["named"] = True
            else:
                self.fail("assignment into part of an array",
                          hint="np.where(mask, new, old) to replace values per row")
        elif isinstance(target, ast.Attribute):
            self.fail("attribute assignment", hint="df['col'] = ... or a new variable")
        else:
            self.fail(f"assignment to {type(target).__name__}")

    def do_return(self, stmt):
        if stmt.value is None:
            self.fail("return without a value")
        value = self.expr(stmt.value)
        items = list(value) if isinstance(value, tuple) else [value]
        outs = []
        for item in items:
            if isinstance(item, Frame):
                self.fail("returning a DataFrame", hint="return columns or model outputs")
            v = self.as_val(item, "return value")
            if self.type_of(v).shape == "scalar":
                self.fail("returning a constant", hint="return a per-row value")
            if self.type_of(v).shape == "record":
                self.fail("returning a joined record", hint="return its columns")
            outs.append(v.nid)
        self.graph.outputs = outs

    def finish(self):
        g = self.graph
        for name in self.param_order:
            kind = self.param_kind.get(name, "column")
            d = self.param_defaults.get(name)
            g.params.append(Param(name, kind, None if d is None else ast.literal_eval(d)
                                  if _is_literal(d) else None, d is not None))
        for n in g.nodes():
            n.meta.pop("pending_dtype", None)
            n.meta.pop("named", None)
        verify(g)

    # -- expressions ----------------------------------------------------------------------
    def expr(self, node):
        prev = self.line
        self.line = getattr(node, "lineno", self.line)
        try:
            method = getattr(self, "expr_" + type(node).__name__, None)
            if method is None:
                self.fail(f"the expression {type(node).__name__}" + _snippet(node))
            return method(node)
        finally:
            self.line = prev

    def expr_Constant(self, node):
        if node.value is None or isinstance(node.value, (bytes, type(Ellipsis))):
            return Py(node.value)
        return Py(node.value)

    def expr_Name(self, node):
        if node.id in self.env:
            return self.env[node.id]
        if node.id in self.src.scope:
            return Py(self.src.scope[node.id], node.id)
        self.fail(f"the name {node.id!r} is not defined")

    def expr_Tuple(self, node):
        return tuple(self.expr(e) for e in node.elts)

    expr_List = expr_Tuple

    def expr_Set(self, node):
        items = [self.expr(e) for e in node.elts]
        if not all(isinstance(x, Py) for x in items):
            self.fail("a set of non-constant values", hint="x in {constant, ...}")
        return Py({x.obj for x in items})

    def expr_Lambda(self, node):
        return Lambda(node)

    def expr_Attribute(self, node):
        base = self.expr(node.value)
        name = node.attr
        if isinstance(base, Py):
            try:
                obj = getattr(base.obj, name)
            except AttributeError:
                self.fail(f"{base.name}.{name} does not exist")
            label = f"{base.name}.{name}" if base.name else name
            if isinstance(base.obj, type(np)) or not callable(obj):
                return Py(obj, label)
            return Attr(base, name)  # a method of a compile-time object (model, dict, ...)
        if isinstance(base, ParamRef):
            # df.col reads a column; anything else on a bare parameter is a column method
            if name in _SERIES_METHODS or name in ("str", "values"):
                base = self.column_param(base)
            else:
                base = self.frame_param(base)
        if isinstance(base, Frame):
            if name == "merge":
                return Attr(base, name)
            if name in ("values", "to_numpy"):
                self.fail("a whole DataFrame as an array", hint="df[[col, ...]].values")
            if name not in base.columns and _is_dataframe_method(name):
                return Attr(base, name)  # as in pandas, df.<method> is the method, not a column
            return self.frame_column(base, name)
        if isinstance(base, Val) and self.type_of(base).dtype in DATETIME_DTYPES:
            return self.datetime_attribute(base, name)
        if isinstance(base, DtAccessor):
            return self.datetime_attribute(base.val, name, accessor=True)
        if isinstance(base, Val):
            if name == "str":
                return StrAccessor(base)
            if name == "values":
                return base
            if name == "T":
                self.fail("transposing a feature matrix", hint="np.column_stack([...])")
            return Attr(base, name)
        if isinstance(base, StrAccessor):
            return Attr(base, name)
        self.fail(f"attribute .{name} of {self.describe(base)}")

    def expr_Subscript(self, node):
        base = self.expr(node.value)
        sl = node.slice
        if isinstance(base, ParamRef):
            base = self.subscripted_param(base, sl)
        if isinstance(base, Frame):
            key = self.const_value(sl)
            if isinstance(key, str):
                return self.frame_column(base, key)
            if isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key):
                return self.stack([self.frame_column(base, k) for k in key], "df[[...]]")
            self.fail("DataFrame indexing other than df['col'] or df[['a', 'b']]",
                      hint="df['col'] or df[['a', 'b']] (row filters change the row count)")
        if isinstance(base, Py) and isinstance(base.obj, dict):
            self.fail(f"{base.name}[key] on a column of keys", hint=f"{base.name}.get(key, default)")
        if isinstance(base, Val):
            return self.index_value(base, sl)
        if isinstance(base, Py):
            try:
                return Py(base.obj[self.const_value(sl)])
            except Exception:  # noqa: BLE001
                self.fail(f"indexing {self.describe(base)}")
        self.fail(f"indexing {self.describe(base)}")

    def subscripted_param(self, p: ParamRef, sl):
        """A parameter first used by indexing: ``df['col']``, ``df[['a', 'b']]`` or
        ``df[NAMES]`` make it a DataFrame; ``x[:, None]`` or ``x[mask]`` a column."""
        slices = sl.elts if isinstance(sl, ast.Tuple) else [sl]
        if any(isinstance(e, ast.Slice) for e in slices):
            return self.column_param(p)
        if self.param_kind.get(p.name) is None:
            key = self.const_value(sl)  # x[x > 0] makes x a column while evaluating the key
            if self.param_kind.get(p.name) is None:
                names = isinstance(key, str) or (isinstance(key, (list, tuple)) and
                                                 all(isinstance(k, str) for k in key))
                self.param_kind[p.name] = "frame" if names else "column"
        return self.frame_param(p) if self.param_kind[p.name] == "frame" else self.column_param(p)

    def index_value(self, v: Val, sl):
        t = self.type_of(v)
        if isinstance(sl, ast.Tuple) and len(sl.elts) == 2 and _is_full_slice(sl.elts[0]):
            second = sl.elts[1]
            if _is_none(second, self) and t.shape == "col":
                return self.stack([v], "x[:, None]")
            idx = self.const_value(second)
            if isinstance(idx, (int, np.integer)) and not isinstance(idx, bool) and t.shape in ("row", "sparse"):
                i = int(idx) + (t.width if idx < 0 else 0)
                if not 0 <= i < t.width:
                    self.type_error(f"column index {idx} out of range for a {t} value")
                dtype = t.dtype or "f64"
                return self.emit("column", [v], {"index": i}, Type.col(dtype))
        self.fail("this indexing of a column or matrix" + _snippet(sl),
                  hint="X[:, i] to pick a column of a matrix, x[:, None] to make a column 2-D "
                       "(row filters change the row count and are not row-wise)")

    def const_value(self, node):
        v = self.expr(node)
        if isinstance(v, Py):
            return v.obj
        if isinstance(v, tuple) and all(isinstance(x, Py) for x in v):
            return tuple(x.obj for x in v)
        return v

    def expr_BinOp(self, node):
        return self.binop(node.op, self.expr(node.left), self.expr(node.right))

    def binop(self, op, left, right):
        name = _BINOPS.get(type(op))
        if name is None:
            self.fail(f"the operator {type(op).__name__}")
        if name in ("bitand", "bitor", "bitxor"):
            left, right = (self.as_val(x) if isinstance(x, ParamRef) else x for x in (left, right))
            for x in (left, right):
                if isinstance(x, Val) and self.type_of(x).dtype in ("f64", "f32"):
                    self.type_error(f"'{_OP_SYMBOL[name]}' on a float column %{self.node(x).name}",
                                    hint="& | ^ combine boolean masks (comparisons); declare "
                                         "bool or integer inputs with parse(..., dtypes={name: "
                                         "'bool'}) (undeclared inputs are f64)")
        return self.py_or_node(name, [left, right])

    def expr_UnaryOp(self, node):
        x = self.expr(node.operand)
        if isinstance(node.op, ast.USub):
            return self.py_or_node("neg", [x])
        if isinstance(node.op, ast.UAdd):
            return x
        if isinstance(node.op, ast.Invert):
            if isinstance(x, Val) and self.type_of(x).dtype in ("f64", "f32"):
                self.type_error("'~' on a float column", hint="~ negates a boolean mask")
            return self.py_or_node("invert", [x])
        if isinstance(x, Py):
            return Py(not x.obj)
        self.fail("'not' on a column", hint="~mask (element-wise not)")

    def expr_Compare(self, node):
        if len(node.ops) != 1:
            self.fail("a chained comparison (a < b < c) on columns",
                      hint="(a < b) & (b < c)")
        op = node.ops[0]
        left, right = self.expr(node.left), self.expr(node.comparators[0])
        if isinstance(op, (ast.In, ast.NotIn)):
            return self.membership(left, right, negate=isinstance(op, ast.NotIn))
        if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(left, Py) and isinstance(right, Py):
            return Py((left.obj is right.obj) == isinstance(op, ast.Is))  # compile-time values
        name = _CMPOPS.get(type(op))
        if name is None:
            self.fail(f"the comparison {type(op).__name__}", hint="< <= > >= == !=")
        return self.py_or_node(name, [left, right])

    def membership(self, left, right, negate):
        # "sub" in text, in element-wise context
        if isinstance(left, Py) and isinstance(left.obj, str) and isinstance(right, Val):
            self.want_str(right, "'in'")
            v = self.emit("str_contains", [right], {"sub": left.obj, "regex": False, "case": True},
                          Type.col("bool"))
            return self.emit("invert", [v], type=Type.col("bool")) if negate else v
        if isinstance(left, Val) and isinstance(right, (Py, tuple)):
            values = right.obj if isinstance(right, Py) else tuple(x.obj for x in right)
            if isinstance(values, (set, frozenset, list, tuple, dict)):
                # x in {a, b}: a lookup into a set, exactly Python's membership
                table = {k: True for k in values}
                v = self.lookup(left, Ref(getattr(right, "name", None) or "set", table), False)
                return self.emit("invert", [v], type=Type.col("bool")) if negate else v
        self.fail("this 'in' test", hint="'sub' in text (inside a comprehension), or "
                                        "x in {constants}")

    def expr_BoolOp(self, node):
        vals = [self.expr(v) for v in node.values]
        if all(isinstance(v, Py) for v in vals):
            out = vals[0].obj
            for v in vals[1:]:
                out = (out and v.obj) if isinstance(node.op, ast.And) else (out or v.obj)
            return Py(out)
        sym = "&" if isinstance(node.op, ast.And) else "|"
        self.fail(f"'{'and' if sym == '&' else 'or'}' on columns",
                  hint=f"(a) {sym} (b) for element-wise logic")

    def expr_IfExp(self, node):
        cond = self.expr(node.test)
        if isinstance(cond, Py):
            return self.expr(node.body) if cond.obj else self.expr(node.orelse)
        return self.where(cond, self.expr(node.body), self.expr(node.orelse))

    def where(self, cond, a, b):
        c = self.as_val(cond)
        if self.type_of(c).dtype != "bool" and self.type_of(c).shape != "any":
            c = self.elementwise("ne", [c, self.const(0)])
        return self.elementwise("where", [c, self.as_val(a), self.as_val(b)], numpy_fn=np.where)

    def expr_ListComp(self, node):
        self.fail("a list comprehension outside np.array(...)",
                  hint="np.array([expr for v in column])")

    expr_GeneratorExp = expr_ListComp

    def expr_JoinedStr(self, node):
        self.fail("an f-string on columns")

    # -- calls ----------------------------------------------------------------------------
    def expr_Call(self, node):
        callee = self.expr(node.func)
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            self.fail("*args or **kwargs in a call")
        if isinstance(callee, Attr):
            return self.call_method(callee, node)
        if isinstance(callee, Py):
            return self.call_python(callee, node)
        self.fail(f"calling {self.describe(callee)}")

    def args_kwargs(self, node):
        return [self.expr(a) for a in node.args], {k.arg: self.expr(k.value) for k in node.keywords}

    def kw_const(self, kwargs, name, default=None):
        if name not in kwargs:
            return default
        v = kwargs[name]
        if isinstance(v, tuple) and all(isinstance(x, Py) for x in v):  # a literal list
            return tuple(x.obj for x in v)
        if not isinstance(v, Py):
            self.fail(f"a non-constant {name}= argument", hint=f"{name}=<constant>")
        return v.obj

    def check_kwargs(self, kwargs, allowed, what):
        extra = set(kwargs) - set(allowed)
        if extra:
            self.fail(f"{what} with {', '.join(sorted(extra))}=",
                      hint=f"{what} with {', '.join(allowed) or 'no keyword arguments'}")

    def call_python(self, callee: Py, node):
        obj = callee.obj
        # numpy / math / builtins functions
        module = getattr(obj, "__module__", None) or ""
        fname = getattr(obj, "__name__", "")
        if isinstance(obj, np.ufunc) or module.startswith("numpy") or (
                callable(obj) and getattr(np, fname, None) is obj):
            return self.call_numpy(fname, obj, node)
        if module == "math" or getattr(obj, "__self__", None) is math:
            return self.call_math(fname, node)
        if obj is len:
            args, kwargs = self.args_kwargs(node)
            return self.call_len(args)
        if obj in (float, int, bool, str):
            args, kwargs = self.args_kwargs(node)
            if len(args) != 1 or kwargs:
                self.fail(f"{obj.__name__}() with {len(args)} arguments")
            if isinstance(args[0], Py):
                return Py(obj(args[0].obj))
            if obj is str:
                self.fail("str() of a column", hint="string columns as inputs")
            return self.cast(self.as_val(args[0]), {float: "f64", int: "i64", bool: "bool"}[obj])
        if obj is abs:
            args, _ = self.args_kwargs(node)
            return self.py_or_node("abs", args)
        if obj in (min, max):
            args, kwargs = self.args_kwargs(node)
            if len(args) != 2 or kwargs:
                self.fail(f"{obj.__name__}() of other than two values",
                          hint=f"{obj.__name__}(a, b) or np.{'minimum' if obj is min else 'maximum'}")
            if all(isinstance(a, Py) for a in args):
                return Py(obj(args[0].obj, args[1].obj))
            a, b = self.as_val(args[0]), self.as_val(args[1])
            # Python's min(a, b) is `b if b < a else a` (NaN-order dependent): keep exactly that
            cmp = self.elementwise("lt" if obj is min else "gt", [b, a])
            return self.elementwise("where", [cmp, b, a], numpy_fn=np.where)
        if obj is round:
            args, kwargs = self.args_kwargs(node)
            return self.do_round(args[0], args[1].obj if len(args) > 1 else 0)
        if _is_pandas_function(obj):
            return self.call_pandas(fname, node)
        if _is_sparse_hstack(obj):
            args, kwargs = self.args_kwargs(node)
            return self.stack(self.sequence(args[0]), "scipy.sparse.hstack")
        if isinstance(obj, type):
            self.fail(f"constructing {obj.__name__} inside the pipeline",
                      hint="build models, tables and vectorizers at module level")
        if is_user_function(obj):
            return self.call_user_function(callee, node)
        if callable(obj):
            return self.opaque_call(callee, node)
        self.fail(f"calling {self.describe(callee)}")

    def opaque_call(self, callee: Py, node, args=None):
        if args is None:
            args, kwargs = self.args_kwargs(node)
        else:
            kwargs = {}
        if kwargs:
            self.fail(f"keyword arguments to the opaque call {callee.name}()",
                      hint="positional arguments")
        vals = []
        for a in args:
            if isinstance(a, (Frame, Lambda)) or (isinstance(a, Py) and not isinstance(a.obj, _SCALAR_TYPES)):
                self.fail(f"passing {self.describe(a)} to the opaque call {callee.name}()",
                          hint="columns and scalar constants")
            vals.append(self.as_val(a))
        return self.emit("pycall", vals, {"fn": Ref(callee.name or "fn", callee.obj),
                                          "qualname": getattr(callee.obj, "__qualname__", callee.name)},
                         Type.any(), name=callee.name or "pycall")

    # -- methods --------------------------------------------------------------------------
    def call_method(self, callee: Attr, node):
        target, name = callee.target, callee.name
        if isinstance(target, Py):
            return self.call_object_method(target, name, node)
        if isinstance(target, StrAccessor):
            return self.call_str_accessor(target.val, name, node)
        if isinstance(target, DtAccessor) or (isinstance(target, Val) and
                                              self.type_of(target).dtype in DATETIME_DTYPES):
            return self.call_datetime_method(target, name, node)
        if isinstance(target, Frame):
            args, kwargs = self.args_kwargs(node)
            if name == "merge":
                return self.merge(target, args[0] if args else kwargs.pop("right"), kwargs)
            if name == "copy":  # the pipeline never mutates its input, so a copy is the frame
                return target
            self.fail(f"the DataFrame method .{name}()",
                      hint="df['new'] = expr to add a column, df['col'] or df[['a', 'b']] to "
                           "read, df.merge(TABLE, on='key', how='left') to join")
        if isinstance(target, Val):
            return self.call_value_method(target, name, node)
        self.fail(f".{name}() on {self.describe(target)}")


def _float64_pow(a, b):
    """The dtype probe of per-element float ``**``: float64."""
    return np.asarray(a, dtype=np.float64) ** np.asarray(b, dtype=np.float64)
