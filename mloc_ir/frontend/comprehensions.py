"""Per-element code: ``np.array([expr for v in column])`` comprehensions, lambdas of
``.map``/``.apply``, and dict lookups keyed by a column.
"""
from __future__ import annotations

import ast

import numpy as np

from ..featurestore import is_store_table, type_probe
from ..printer import Ref
from ..types import Type, dtype_from_numpy
from .values import Frame, ParamRef, Py, Val, _SCALAR_TYPES


class Comprehensions:
    """Lowering of comprehensions, lambdas and table lookups (a ``Lowering`` mixin)."""

    def np_array(self, node):
        kwargs = {k.arg: self.expr(k.value) for k in node.keywords}
        self.check_kwargs(kwargs, ("dtype", "count"), "np.array")
        dtype = self.kw_const(kwargs, "dtype")
        if len(node.args) == 2 and dtype is None:
            dtype = self.const_value(node.args[1])
        if not node.args:
            self.fail("np.array() without data")
        src = node.args[0]
        if isinstance(src, (ast.ListComp, ast.GeneratorExp)):
            out = self.comprehension(src)
        else:
            out = self.expr(src)
            if isinstance(out, Py):
                self.fail("building an array from a constant", hint="a scalar constant")
        v = self.as_val(out) if not isinstance(out, Val) else out
        if dtype is not None:
            v = self.cast(v, self.dtype_arg(dtype))
        return v

    def comprehension(self, comp):
        self.line = comp.lineno
        if len(comp.generators) != 1:
            self.fail("a comprehension with several for clauses")
        gen = comp.generators[0]
        if gen.ifs:
            self.fail("a comprehension with an if filter (it drops rows)",
                      hint="np.where(cond, a, b) keeps every row")
        if gen.is_async:
            self.fail("an async comprehension")
        iterable = gen.iter
        saved = dict(self.env)
        try:
            if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and \
                    iterable.func.id == "zip" and "zip" not in self.env:
                cols = [self.expr(a) for a in iterable.args]
                if not isinstance(gen.target, ast.Tuple) or len(gen.target.elts) != len(cols):
                    self.fail("zip(...) unpacked into a different number of names")
                for t, c in zip(gen.target.elts, cols):
                    self.bind_element(t, c)
            else:
                self.bind_element(gen.target, self.expr(iterable))
            self.element_depth += 1
            try:
                return self.element_expr(comp.elt)
            finally:
                self.element_depth -= 1
        finally:
            self.env = saved

    def bind_element(self, target, col):
        if not isinstance(target, ast.Name):
            self.fail("a comprehension target other than a name", hint="for v in column")
        if isinstance(col, ParamRef):
            col = self.column_param(col)
        if isinstance(col, Frame):
            self.fail("iterating over a DataFrame (that yields its column names)",
                      hint="for v in df['col']")
        if not isinstance(col, Val) or self.type_of(col).shape != "col":
            self.fail(f"iterating over {self.describe(col)}", hint="for v in column")
        self.env[target.id] = col

    def element_expr(self, node):
        out = self.expr(node)
        if isinstance(out, Py):
            self.fail("a comprehension whose value does not depend on the row")
        return out

    def lookup(self, key: Val, table: Ref, default) -> Val:
        if isinstance(default, Py):
            default = default.obj
        if not isinstance(default, _SCALAR_TYPES) and default is not None:
            self.fail("a lookup default that is not a scalar constant")
        if is_store_table(table.obj):  # remote: typed from its schema, never read here
            values, key_types = type_probe(table.obj)
        else:
            values = list(table.obj.values())
            key_types = {type(k) for k in table.obj}
        n = self.node(key)
        if n.meta.get("pending_dtype"):
            if key_types and all(issubclass(t, str) for t in key_types):
                self.want_str(key, "lookup")
            else:
                self.want_numeric(key, "lookup")
        sample = values + [default]
        if any(v is None for v in sample):
            self.fail(f"the lookup table {table.name} holds None", hint="numbers, strings or NaN")
        try:
            dtype = dtype_from_numpy(np.array(sample).dtype)
        except TypeError:
            self.fail(f"the values of {table.name} are not all numbers or all strings")
        return self.emit("lookup", [key], {"table": table, "default": default}, Type.col(dtype),
                         name=table.name.lower() if table.name else "lookup")

    def apply_lambda(self, v: Val, lam: ast.Lambda):
        if len(lam.args.args) != 1:
            self.fail("a lambda of other than one argument")
        saved = dict(self.env)
        try:
            self.env[lam.args.args[0].arg] = v
            self.element_depth += 1
            return self.element_expr(lam.body)
        finally:
            self.element_depth -= 1
            self.env = saved
