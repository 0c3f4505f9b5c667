"""The reference interpreter: runs a Graph with NumPy, one op at a time.

It is the oracle every later stage is checked against, so it is written for obviousness, not
speed: each op calls the NumPy (or Python, or library) function the original program would.
"""
from __future__ import annotations

import re
import sys
from typing import Any

import numpy as np

from .errors import InputError
from .featurestore import is_store_table
from .ops import OPS
from .types import numpy_dtype


def _column(value, name: str, dtype: str) -> np.ndarray:
    arr = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value)
    if arr.ndim != 1:
        raise InputError(f"input {name!r} must be a 1-D column, got shape {arr.shape}")
    if dtype == "str":
        if arr.dtype.kind not in "OUS" and arr.size:
            raise InputError(f"input {name!r} must hold strings, got dtype {arr.dtype}")
        return arr.astype(object, copy=False)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"input {name!r} must be numeric or bool, got dtype {arr.dtype}")
    return arr.astype(numpy_dtype(dtype), copy=False)


class InputBinder:
    """``bind_inputs`` for one graph, with everything it reads of the graph computed once.

    ``Graph.input_nodes()`` sorts the whole graph, and a compiled pipeline's one-row call costs
    a few microseconds, so a compiled pipeline keeps one binder.  Results, errors and the order
    in which errors are found are those of ``bind_inputs``; two fast paths skip work that cannot
    change the result: a NumPy array that already is a 1-D column of the input's dtype is used as
    it is (``_column`` would return the same object), and a DataFrame column stored as such an
    array is read without building a Series (``_frame_column``).
    """

    def __init__(self, graph):
        self.name = graph.name
        self.names = [p.name for p in graph.params]
        self._params = frozenset(self.names)
        self.joined = graph.meta.get("frame_joined_columns", {})
        # (node id, param, column, IR dtype, NumPy dtype or None for str, label, node name)
        self.inputs = [
            (node.id, node.attrs["param"], node.attrs["column"], node.type.dtype,
             None if node.type.dtype == "str" else np.dtype(numpy_dtype(node.type.dtype)),
             f"{node.attrs['param']}.{node.attrs['column']}" if node.attrs["column"]
             else node.attrs["param"], node.name)
            for node in graph.input_nodes()]

    def _bound(self, args: tuple, kwargs: dict) -> dict:
        """Parameter name -> argument, with the original function's call errors."""
        names = self.names
        if len(args) > len(names):
            raise InputError(f"{self.name}() takes {len(names)} arguments, got {len(args)}")
        if not args and self._params.issuperset(kwargs):
            return kwargs  # keywords only, all known: nothing to merge (and it is not mutated)
        bound = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in self._params:
                raise InputError(f"{self.name}() has no parameter {k!r}; parameters: "
                                 f"{', '.join(names)}")
            if k in bound:
                raise InputError(f"{self.name}() got two values for {k!r}")
            bound[k] = v
        return bound

    def __call__(self, args: tuple, kwargs: dict) -> dict[int, np.ndarray]:
        bound = self._bound(args, kwargs)
        for param, joined in self.joined.items():
            columns = getattr(bound.get(param), "columns", None)
            clash = sorted(c for c in joined if columns is not None and c in columns)
            if clash:
                tables = sorted({joined[c] for c in clash})
                raise InputError(f"input frame {param!r} already has column(s) {clash} that the "
                                 f"merge with {', '.join(tables)} adds (pandas would rename both "
                                 "to *_x/*_y); drop them from the frame or the table")
        values: dict[int, np.ndarray] = {}
        n = None
        same = True
        for nid, param, col, dtype, want, label, _ in self.inputs:
            try:
                src = bound[param]
            except KeyError:
                raise InputError(f"{self.name}() is missing the input {param!r}") from None
            if col is not None:
                arr = _frame_column(src, col, want)
                if arr is not None:
                    src = arr
                else:
                    try:
                        src = src[col]
                    except (KeyError, IndexError, TypeError):
                        raise InputError(f"input {param!r} has no column {col!r}") from None
            if type(src) is np.ndarray and src.dtype is want and src.ndim == 1:
                values[nid] = src  # what _column returns for it, without its calls
            else:
                values[nid] = src = _column(src, label, dtype)
            if n is None:
                n = len(src)
            elif len(src) != n:
                same = False
        if not same:
            name = {nid: node_name for nid, *_, node_name in self.inputs}
            detail = ", ".join(f"{name[i]}={len(v)}" for i, v in values.items())
            raise InputError(f"input columns have different lengths: {detail}")
        return values


def _frame_column(frame, col, want):
    """``frame[col]`` as ``_column`` would return it, when ``frame`` is a DataFrame whose column
    ``col`` is stored as a 1-D NumPy array of numbers (``want``: the input's NumPy dtype) or as
    strings (``want`` None); ``None`` otherwise: the caller takes the general path.

    ``frame[col]`` builds a Series (~10-20 us in pandas 3, more than a compiled one-row
    pipeline takes); the stored array is reached through the frame's column position instead.
    An array already of dtype ``want`` is returned as a read-only view, as
    ``Series.to_numpy()`` returns under copy-on-write; other numbers are cast as ``_column``
    casts them; a pandas string array gives its object array, as ``Series.to_numpy()`` does.
    """
    pd = sys.modules.get("pandas")
    if pd is None or type(frame) is not pd.DataFrame:
        return None
    get = getattr(frame, "_get_column_array", None)  # pandas internal: guarded, checked below
    if get is None:
        return None
    try:
        loc = frame.columns.get_loc(col)
    except (KeyError, TypeError, pd.errors.InvalidIndexError):
        return None
    if type(loc) is not int:  # duplicate labels: frame[col] is a DataFrame
        return None
    arr = get(loc)
    if want is None:  # a string input
        if isinstance(getattr(arr, "dtype", None), pd.StringDtype):
            out = arr.to_numpy()
            return out if type(out) is np.ndarray and out.dtype == object and out.ndim == 1 \
                else None
        if type(arr) is np.ndarray and arr.dtype == object and arr.ndim == 1:
            view = arr.view()
            view.flags.writeable = False
            return view
        return None
    if type(arr) is not np.ndarray or arr.ndim != 1:
        return None
    if arr.dtype is want:
        view = arr.view()
        view.flags.writeable = False
        return view
    if arr.dtype.kind in "biuf" and arr.dtype.isnative:
        return arr.astype(want)
    return None


def bind_inputs(graph, args: tuple, kwargs: dict) -> dict[int, np.ndarray]:
    """Match call arguments to the graph's parameters; one array per input node."""
    return InputBinder(graph)(args, kwargs)


def _str_op(fn, dtype):
    def run(x, **attrs):
        return np.fromiter((fn(s, **attrs) for s in x), dtype=dtype, count=len(x)) \
            if dtype != object else np.array([fn(s, **attrs) for s in x] or [], dtype=object)
    return run


def _str_count(s, sub, regex):
    return len(re.findall(sub, s)) if regex else s.count(sub)


def _str_contains(s, sub, regex, case):
    if regex:
        return re.search(sub, s, 0 if case else re.IGNORECASE) is not None
    return sub in s if case else sub.upper() in s.upper()


def _str_replace(s, pat, repl, regex):
    return re.sub(pat, repl, s) if regex else s.replace(pat, repl)


def _missing(s) -> bool:
    """pandas' idea of a missing element of an object column."""
    return s is None or (isinstance(s, float) and s != s) or type(s).__name__ == "NAType"


def _str_fillna(x, value):
    return np.array([value if _missing(s) else s for s in x] or [], dtype=object)


_STRING = {
    "str_len": _str_op(lambda s: len(s), np.int64),
    "str_lower": _str_op(lambda s: s.lower(), object),
    "str_upper": _str_op(lambda s: s.upper(), object),
    "str_strip": _str_op(lambda s: s.strip(), object),
    "str_word_count": _str_op(lambda s: len(s.split()), np.int64),
    "str_count": _str_op(_str_count, np.int64),
    "str_contains": _str_op(_str_contains, bool),
    "str_startswith": _str_op(lambda s, prefix: s.startswith(prefix), bool),
    "str_endswith": _str_op(lambda s, suffix: s.endswith(suffix), bool),
    "str_replace": _str_op(_str_replace, object),
    "str_fillna": _str_fillna,
}


def store_read(node, args):
    """The feature-store read of a ``lookup`` / ``join`` node on a ``StoreTable``, prepared
    (``featurestore.read_together`` sends it, with other reads, and returns the node's value);
    None for a node of another kind."""
    table = getattr(node.attrs.get("table"), "obj", None) if node.op in ("lookup", "join") \
        else None
    if not is_store_table(table):
        return None
    if node.op == "lookup":
        return table.lookup_read(args[0], node.attrs["default"], node.type.dtype)
    return table.join_read(args[0], node.type.fields, node.attrs["defaults"])


def _lookup(keys, table, default, dtype):
    if is_store_table(table):  # a feature store: every key of the batch in one round trip
        return table.lookup(keys, default, dtype)
    values = [table.get(k, default) for k in keys]
    return np.array(values, dtype=numpy_dtype(dtype)) if values else np.zeros(0, numpy_dtype(dtype))


def _join(keys, node):
    table = node.attrs["table"].obj
    if is_store_table(table):  # a feature store: every key of the batch in one round trip
        return table.join(keys, node.type.fields, node.attrs["defaults"])
    on = node.attrs["on"]
    cols = [name for name, _ in node.type.fields]
    index = {k: i for i, k in enumerate(table[on].tolist())}
    rows = [index.get(k, -1) for k in keys]
    out = {}
    for (name, dtype), default in zip(node.type.fields, node.attrs["defaults"]):
        column = table[name].to_numpy()
        out[name] = np.array([column[r] if r >= 0 else default for r in rows],
                             dtype=numpy_dtype(dtype))
    return out


def _stack(parts, sparse: bool):
    n = next(p.shape[0] for p in parts if np.ndim(p) > 0)
    # scalar parts are constant columns (e.g. features the model never reads)
    parts = [np.full(n, p) if np.ndim(p) == 0 else p for p in parts]
    if sparse:
        import scipy.sparse as sp
        blocks = [p if sp.issparse(p) else sp.csr_matrix(p.reshape(len(p), -1)) for p in parts]
        return sp.hstack(blocks, format="csr")
    return np.column_stack(parts)


C_MATH = ("c_log", "c_log1p", "c_exp", "c_pow")
_LIBM: dict = {}


def c_math(name: str, *xs):
    """The C library's ``name`` (what Python's ``math.name`` and float ``**`` compute) on
    float64 values, element by element (operands broadcast)."""
    fn = _LIBM.get(name)
    if fn is None:
        import ctypes
        import ctypes.util
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        fn = _LIBM[name] = getattr(libm, name)
        fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_double] * len(xs)
    arrays = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in xs])
    shape = arrays[0].shape
    flat = [a.ravel().tolist() for a in arrays]
    out = np.fromiter((fn(*v) for v in zip(*flat)), np.float64, arrays[0].size)
    return out.reshape(shape) if shape else np.float64(out[0])


def with_location(node, fn, *args):
    """``fn(*args)``; an exception it raises (pandas' own, unchanged) gets a note naming the
    node and where it comes from in the pipeline source (an inlined helper's file:line)."""
    try:
        return fn(*args)
    except Exception as exc:
        exc.add_note(f"mloc: raised by %{node.name} = {node.op}(...) from {node.loc}")
        raise


def to_datetime(strings) -> np.ndarray:
    """``pd.to_datetime(strings)`` as a datetime64 array (pandas' resolution, NaT kept)."""
    import pandas as pd
    out = pd.to_datetime(np.asarray(strings, dtype=object))
    if getattr(out, "tz", None) is not None:
        from .errors import InputError
        raise InputError("pd.to_datetime gave timezone-aware timestamps (the strings carry a UTC "
                         "offset); mloc's datetime columns are timezone-naive")
    return np.asarray(out)


def dt_field(values, field: str) -> np.ndarray:
    """``.dt.<field>`` of a datetime64 array as pandas computes it, in float64 (exact: pandas
    gives int32, or float64 with NaN where a value is NaT)."""
    import pandas as pd
    field = _FIELD_ALIASES.get(field, field)
    return np.asarray(getattr(pd.DatetimeIndex(values), field), dtype=np.float64)


#: pandas' deprecated spellings of fields, computed by their current names (same values)
_FIELD_ALIASES = {"dayofweek": "day_of_week", "weekday": "day_of_week",
                  "dayofyear": "day_of_year", "daysinmonth": "days_in_month"}


def dt_sub(a, b) -> np.ndarray:
    import pandas as pd
    return np.asarray(pd.DatetimeIndex(a) - pd.DatetimeIndex(b))


def td_seconds(values) -> np.ndarray:
    import pandas as pd
    return np.asarray(pd.TimedeltaIndex(values).total_seconds(), dtype=np.float64)


def run_node(node, args: list[Any]):
    """Evaluate one node on its argument values."""
    op = node.op
    spec = OPS[op]
    if spec.numpy is not None:
        return getattr(np, spec.numpy)(*args)
    if op == "const":
        return node.attrs["value"]
    if op in C_MATH:
        return c_math(op[2:], *args)
    if op == "where":
        return np.where(*args)
    if op == "round":
        return np.round(args[0], node.attrs["decimals"])
    if op == "nan_to_num":
        return np.nan_to_num(args[0], nan=node.attrs["nan"], posinf=node.attrs["posinf"],
                             neginf=node.attrs["neginf"])
    if op == "cast":
        return np.asarray(args[0]).astype(numpy_dtype(node.attrs["dtype"]))
    if op == "lookup":
        return _lookup(args[0], node.attrs["table"].obj, node.attrs["default"], node.type.dtype)
    if op == "join":
        return _join(args[0], node)
    if op == "field":
        return args[0][node.attrs["name"]]
    if op in _STRING:
        attrs = {k: v for k, v in node.attrs.items()}
        return _STRING[op](args[0], **attrs)
    if op == "vectorize":
        return node.attrs["vectorizer"].obj.transform(args[0])
    if op == "stack":
        return _stack(args, node.type.shape == "sparse")
    if op == "column":
        x = args[0]
        col = x[:, node.attrs["index"]]
        return np.asarray(col.toarray()).ravel() if hasattr(col, "toarray") else col
    if op == "transform":
        return node.attrs["transformer"].obj.transform(args[0])
    if op == "model":
        model = node.attrs["model"].obj
        return np.asarray(getattr(model, node.attrs["method"])(args[0], **node.attrs["kwargs"]))
    if op == "pycall":
        return np.asarray(node.attrs["fn"].obj(*args))
    if op == "to_datetime":
        return with_location(node, to_datetime, args[0])
    if op == "dt_field":
        return with_location(node, dt_field, args[0], node.attrs["field"])
    if op == "dt_sub":
        return with_location(node, dt_sub, args[0], args[1])
    if op == "td_seconds":
        return with_location(node, td_seconds, args[0])
    raise NotImplementedError(f"the interpreter has no rule for op {op!r}")


def interpret(graph, *args, **kwargs):
    """Run ``graph`` on inputs given as the original function's arguments.

    Returns one array, or a tuple when the pipeline returns several values.
    """
    env: dict[int, Any] = bind_inputs(graph, args, kwargs)
    with np.errstate(all="ignore"):
        for node in graph.nodes():
            if node.id in env:
                continue
            env[node.id] = run_node(node, [env[a] for a in node.args])
    outs = [env[o] for o in graph.outputs]
    return outs[0] if len(outs) == 1 else tuple(outs)
