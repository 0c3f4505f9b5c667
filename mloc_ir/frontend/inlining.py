"""Inlining calls to the user's own functions.

A call ``helper(a, b=c)`` of a plain Python function (one the user wrote, not a library's) is
lowered by walking the helper's body with its parameters bound to the argument values, so its
computations become ordinary IR nodes that fuse, fold and compile like the pipeline's own.
The body must be in the pipeline language and return a value; an ``if`` whose test is known
at compile time (a flag argument, a module constant) runs the branch Python runs, returns in
it included; helpers may call helpers.
Errors raised while lowering a helper name the helper's file and line.

When the helper cannot be inlined (a construct outside the language, a recursive call, no
source, ``*args``), the graph is rolled back to what it was before the attempt and the call
becomes an opaque ``pycall`` node, as before inlining existed, whose ``not_inlined`` attribute
says why (``file:line: construct``); ``explain()`` and the IR dump show it.
"""
from __future__ import annotations

import ast
import inspect

from ..errors import MlocError, UnsupportedConstruct
from ..source import function_source
from .values import Frame, ParamRef, Py

#: top-level packages whose functions are library calls, never inlined
_LIBRARIES = {"numpy", "pandas", "scipy", "sklearn", "lightgbm", "math", "builtins", "mloc_ir",
              "codegen", "runtime", "passes", "functools", "operator", "xgboost", "re"}


def is_user_function(obj) -> bool:
    """A plain Python function the user wrote (not a lambda, a builtin or a library's)."""
    if not inspect.isfunction(obj) or obj.__name__ == "<lambda>":
        return False
    module = (getattr(obj, "__module__", None) or "").split(".")[0]
    return module not in _LIBRARIES


class _Refused(Exception):
    """The helper is not inlined; ``reason`` says why."""

    def __init__(self, reason: str, frames=()):
        super().__init__(reason)
        self.reason = reason
        self.frames = set(frames)  # caller parameters the helper uses as DataFrames


class Inlining:
    """Inlining of user functions (a ``Lowering`` mixin)."""

    def call_user_function(self, callee: Py, node):
        fn = callee.obj
        label = callee.name or fn.__name__
        args, kwargs = self.args_kwargs(node)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as exc:  # what Python raises at this call
                self.type_error(f"the call {label}(...) does not fit its signature "
                                f"{label}{sig}: {exc}")
            bound.apply_defaults()
        try:
            if sig is None:
                raise _Refused("its signature cannot be read")
            return self._inline(fn, label, bound)
        except _Refused as refused:
            return self.opaque_user_call(callee, node, bound if sig is not None else None,
                                         refused.reason, refused.frames)

    def apply_user_function(self, v, fn: Py, what: str):
        """``s.map(f)`` / ``s.apply(f)`` with the user's function ``f`` of one element: its body
        inlined on the column (as a lambda's is); a body outside the language is an error."""
        label = fn.name or fn.obj.__name__
        try:
            bound = inspect.signature(fn.obj).bind(v)
        except (TypeError, ValueError) as exc:
            self.type_error(f"{what}({label}): {label} does not take one element: {exc}")
        bound.apply_defaults()
        try:
            return self._inline(fn.obj, label, bound)
        except _Refused as refused:
            self.fail(f"{what}({label}) of a function that is not inlined ({refused.reason})",
                      hint="a function whose body is in the pipeline language, or a lambda")

    # -- inlining ---------------------------------------------------------------------------
    def _inline(self, fn, label, bound):
        stack = self.__dict__.setdefault("_inline_stack", [self.src.fn])
        if fn in stack:
            raise _Refused(f"a recursive call of {label}() (recursion is not inlined)")
        try:
            src = function_source(fn)
        except MlocError as exc:
            raise _Refused(str(exc)) from None
        params = src.tree.args
        where = f"{src.file}:{src.line_offset + src.tree.lineno}"
        if params.vararg or params.kwarg:
            raise _Refused(f"{where}: {label}() takes *args/**kwargs")
        if isinstance(src.tree, ast.AsyncFunctionDef) or src.tree.decorator_list:
            raise _Refused(f"{where}: {label}() is async or decorated")
        body = src.tree.body
        mutated = _mutated_parameter(body, [a.arg for a in params.args + params.kwonlyargs])
        if mutated is not None:
            name, line, column_key = mutated
            arg = bound.arguments.get(name)
            frames = [arg.name] if column_key and isinstance(arg, ParamRef) else []
            raise _Refused(f"{src.file}:{src.line_offset + line}: {label}() assigns into its "
                           f"argument {name!r} in place (the caller would see the change)",
                           frames)
        env = {}
        for name, value in bound.arguments.items():
            if isinstance(value, tuple) and value and all(isinstance(v, Py) for v in value):
                value = Py(tuple(v.obj for v in value), name)  # a literal tuple of constants
            env[name] = Py(value, name) if _is_default(value) else value
        snapshot = self._snapshot(bound.arguments.values())
        saved = (self.src, self.env, self.line)
        self.src, self.env = src, env
        stack.append(fn)
        try:
            result = self._block(body)
            if result is None:
                self.line = body[-1].lineno
                self.fail(f"{label}() can end without `return <value>`",
                          hint="a helper that returns a value")
            result = result[0]
        except UnsupportedConstruct as exc:
            self.src, self.env, self.line = saved
            # parameters the attempt read columns of by name, or passed on as DataFrames
            evidence = self.__dict__.setdefault("_frame_evidence", set())
            frames = {p for p, col in self._inputs if col is not None and
                      (p, col) not in snapshot["inputs"]} | (evidence - snapshot["evidence"])
            self._rollback(snapshot)
            raise _Refused(str(exc).split("\n")[0], frames) from None
        finally:
            stack.pop()
            self.src, self.env, self.line = saved
        return result

    def _block(self, stmts):
        """Lower ``stmts`` of a helper; ``(value,)`` once a ``return`` runs, else None.

        An ``if`` whose test is known at compile time (a flag parameter, a module constant)
        runs the branch Python would run, returns in it included; an ``if`` on a column
        cannot be inlined (Python itself would refuse its truth value)."""
        for stmt in stmts:
            self.line = stmt.lineno
            if isinstance(stmt, ast.Return):
                if stmt.value is None:
                    self.fail("return without a value", hint="return <value>")
                return (self.expr(stmt.value),)
            if isinstance(stmt, ast.If):
                try:
                    test = self.expr(stmt.test)
                except UnsupportedConstruct as exc:
                    self.line = stmt.lineno
                    self.fail("an if statement on a value known only at run time (its test: "
                              f"{str(exc).split(chr(10))[0].split('unsupported construct: ')[-1]})",
                              hint="np.where(condition, a, b) to choose per row")
                try:
                    taken = bool(test.obj) if isinstance(test, Py) else None
                except Exception:  # noqa: BLE001 -- no truth value: not a compile-time test
                    taken = None
                if taken is None:
                    self.fail("an if statement on a value known only at run time",
                              hint="np.where(condition, a, b) to choose per row; if on "
                                   "parameters with constant arguments, module constants")
                result = self._block(stmt.body if taken else stmt.orelse)
                if result is not None:
                    return result
                continue
            self.statement(stmt)
        return None

    def _snapshot(self, arguments):
        g = self.graph
        frames = [v for v in list(self.env.values()) + list(arguments) if isinstance(v, Frame)]
        return {
            "next": g._next_id,
            "nodes": {n.id: (n.name, n.type, dict(n.meta)) for n in g.nodes()},
            "const_cache": dict(self._const_cache),
            "inputs": dict(self._inputs),
            "param_kind": dict(self.param_kind),
            "evidence": set(self.__dict__.get("_frame_evidence", ())),
            "meta": {k: ({p: dict(c) for p, c in v.items()} if k == "frame_joined_columns"
                         else v) for k, v in g.meta.items()},
            "frames": [(f, dict(f.columns)) for f in frames],
        }

    def _rollback(self, snap):
        g = self.graph
        for nid in sorted((n.id for n in g.nodes() if n.id >= snap["next"]), reverse=True):
            g.remove(nid)
        for nid, (name, type_, meta) in snap["nodes"].items():
            n = g[nid]
            n.type, n.meta = type_, meta
            if n.name != name:
                g.rename(nid, name)
        self._const_cache = snap["const_cache"]
        self._inputs = snap["inputs"]
        self.param_kind = snap["param_kind"]
        g.meta.clear()
        g.meta.update(snap["meta"])
        for f, columns in snap["frames"]:
            f.columns = columns

    # -- the opaque fallback ----------------------------------------------------------------
    def opaque_user_call(self, callee: Py, node, bound, reason: str, frames=()):
        if bound is not None and bound.kwargs:
            self.fail(f"keyword-only arguments to {callee.name}(), which is not inlined "
                      f"({reason})", hint="a helper in the pipeline language, or positional "
                                          "arguments")
        args = list(bound.args) if bound is not None else self.args_kwargs(node)[0]
        args = [Py(a) if _is_default(a) else a for a in args]
        # a parameter the helper used as a DataFrame is one (the call cannot take it)
        args = [self.frame_param(a) if isinstance(a, ParamRef) and a.name in frames else a
                for a in args]
        self.__dict__.setdefault("_frame_evidence", set()).update(frames)
        try:
            v = self.opaque_call(callee, node, args=args)
        except UnsupportedConstruct as exc:
            raise type(exc)(f"{str(exc).split(chr(10))[0].split(': ', 1)[-1]} "
                            f"(it is not inlined: {reason})", exc.file, exc.line,
                            exc.hint) from None
        self.node(v).attrs["not_inlined"] = reason
        return v


def _mutated_parameter(body, params):
    """``(name, line, string key)`` of the first ``param[...] = ...`` (or ``param.attr = ...``) in ``body``
    while ``param`` still names the caller's object, else None."""
    own = set(params)
    for stmt in body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else \
            [stmt.target] if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            if isinstance(t, (ast.Subscript, ast.Attribute)) and isinstance(t.value, ast.Name) \
                    and t.value.id in own:
                column_key = isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant) \
                    and isinstance(t.slice.value, str)
                return t.value.id, stmt.lineno, column_key
        for t in targets:  # rebound: later assignments into it are to the helper's own object
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    own.discard(n.id)
    return None


def _is_default(value) -> bool:
    """A parameter default (a plain Python object), not a symbolic value of the front end."""
    from .values import Attr, Lambda, ParamRef, StrAccessor, Val
    from . import values
    symbolic = (Py, Frame, Val, ParamRef, Attr, Lambda, StrAccessor, values.RemoteRows,
                values.SplitResult)
    if isinstance(value, tuple):
        return all(_is_default(v) for v in value)
    return not isinstance(value, symbolic)
