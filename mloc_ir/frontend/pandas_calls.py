"""pandas calls: ``pd.isna/merge``, Series methods (``astype``, ``fillna``, ``map``,
``apply``, ...), string element methods and ``.str``, ``len``, and DataFrame merges with
module-level tables or feature-store rows.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..featurestore import is_store_table
from .inlining import is_user_function
from ..printer import Ref
from ..types import Type
from .values import (DT_FIELDS, Attr, DtAccessor, Frame, Lambda, ParamRef, Py, RemoteRows,
                     SplitResult, Val, _MODEL_METHODS, _STR_METHODS_ELEMENT)


class PandasCalls:
    """Lowering of Series/DataFrame methods, ``.str`` and merges (a ``Lowering`` mixin)."""

    def call_len(self, args):
        if len(args) != 1:
            self.fail("len() with other than one argument")
        x = args[0]
        if isinstance(x, Py):
            return Py(len(x.obj))
        if isinstance(x, SplitResult):
            return self.emit("str_word_count", [x.val], type=Type.col("i64"))
        v = self.as_val(x)
        self.want_str(v, "len()")
        return self.emit("str_len", [v], type=Type.col("i64"))

    def call_pandas(self, fname, node):
        args, kwargs = self.args_kwargs(node)
        if fname == "merge":
            return self.merge(args[0], args[1] if len(args) > 1 else kwargs.pop("right"), kwargs)
        if fname == "Series":
            if len(args) != 1 or set(kwargs) - {"name", "copy"}:
                self.fail("pd.Series(...) with an index or dtype", hint="pd.Series(column)")
            return self.as_val(args[0])  # the same column, to call Series methods on
        if fname == "to_datetime":
            return self.to_datetime(args, kwargs)
        if fname in ("isna", "isnull", "notna", "notnull"):
            v = self.isna(self.as_val(args[0]))
            return self.elementwise("invert", [v]) if fname.startswith("not") else v
        self.fail(f"pd.{fname}", hint="pd.merge(df, TABLE, on=key, how='left'), pd.isna, "
                                      "pd.Series(column), pd.to_datetime(column)")

    # -- datetimes ------------------------------------------------------------------------
    def to_datetime(self, args, kwargs) -> Val:
        if len(args) != 1 or kwargs:
            self.fail("pd.to_datetime(...) with " + (", ".join(f"{k}=" for k in kwargs) or
                                                    f"{len(args)} arguments"),
                      hint="pd.to_datetime(column) of a string column (pandas infers the format)")
        v = self.as_val(args[0])
        if self.type_of(v).dtype == "datetime":
            return v
        if self.type_of(v).shape != "col":
            self.type_error(f"pd.to_datetime of a {self.type_of(v)} value",
                            hint="pd.to_datetime(column) of a string column")
        self.want_str(v, "pd.to_datetime")
        return self.emit("to_datetime", [v], type=Type.col("datetime"), name="datetime")

    def datetime_attribute(self, v: Val, name: str, accessor: bool = False):
        dtype = self.type_of(v).dtype
        if name == "dt" and not accessor:
            return DtAccessor(v)
        if dtype == "datetime" and name in DT_FIELDS:
            return self.emit("dt_field", [v], {"field": name}, Type.col("f64"), name=name)
        if name in ("total_seconds", "to_numpy", "values", "copy", "astype"):
            if name == "values":
                return v
            return Attr(DtAccessor(v) if accessor else v, name)
        fields = ", ".join(f".dt.{f}" for f in DT_FIELDS[:10])
        self.fail(f"the {'.dt.' if accessor else '.'}{name} of a {dtype} column",
                  hint=f"{fields}, (a - b).total_seconds() or .dt.total_seconds()")

    def call_datetime_method(self, target, name: str, node):
        accessor = isinstance(target, DtAccessor)
        v = target.val if accessor else target
        args, kwargs = self.args_kwargs(node)
        dtype = self.type_of(v).dtype
        if name == "total_seconds" and dtype == "timedelta" and not args and not kwargs:
            return self.emit("td_seconds", [v], type=Type.col("f64"), name="seconds")
        if name in ("to_numpy", "copy") and not accessor and not args and not kwargs:
            return v
        self.fail(f"{'.dt.' if accessor else '.'}{name}() of a {dtype} column",
                  hint=".total_seconds() of a difference of datetimes; .dt.<field> of datetimes")

    def datetime_arith(self, op: str, vals) -> Val:
        dtypes = [self.type_of(v).dtype for v in vals]
        if op == "sub" and dtypes == ["datetime", "datetime"] and \
                all(self.type_of(v).shape == "col" for v in vals):
            return self.emit("dt_sub", list(vals), type=Type.col("timedelta"), name="duration")
        self.type_error(f"{op} of ({', '.join(str(self.type_of(v)) for v in vals)}) values",
                        hint="a - b of two datetime columns, then .total_seconds(); "
                             ".dt.<field> of a datetime column")

    def isna(self, v: Val) -> Val:
        if self.type_of(v).dtype in ("f64", "f32"):
            return self.elementwise("isnan", [v])
        if self.type_of(v).dtype in ("i64", "bool"):  # int and bool columns hold no NaN
            return self.elementwise("ne", [v, v])
        self.fail("isna() of a string column", hint="isna of number columns (NaN)")

    def call_value_method(self, v: Val, name, node):
        args, kwargs = self.args_kwargs(node)
        if "inplace" in kwargs:
            self.fail(f".{name}(inplace=True)", hint=f"assign the result: x = x.{name}(...)")
        t = self.type_of(v)
        if t.dtype == "str" or self.node(v).meta.get("pending_dtype"):
            if name in _STR_METHODS_ELEMENT or name in ("count", "startswith", "endswith", "split",
                                                         "replace"):
                return self.string_method(v, name, args, kwargs, element=True)
        if name in ("to_numpy", "ravel", "flatten", "copy", "squeeze"):
            if name == "to_numpy" and "dtype" in kwargs:
                return self.cast(v, self.dtype_arg(kwargs["dtype"].obj))
            return v
        if name == "astype":
            return self.cast(v, self.dtype_arg(args[0].obj if args else kwargs["dtype"].obj))
        if name == "abs":
            return self.elementwise("abs", [v])
        if name == "clip":
            lo = args[0] if args else kwargs.get("lower", Py(None))
            hi = args[1] if len(args) > 1 else kwargs.get("upper", Py(None))
            return self.clip(v, lo, hi)
        if name == "round":
            return self.do_round(v, args[0].obj if args else self.kw_const(kwargs, "decimals", 0))
        if name == "fillna" and t.dtype == "str":
            fill = args[0] if args else kwargs.get("value")
            if not isinstance(fill, Py) or not isinstance(fill.obj, str):
                self.fail("fillna of a string column with other than a constant string",
                          hint="fillna('')")
            return self.emit("str_fillna", [v], {"value": fill.obj}, Type.col("str"))
        if name == "fillna":
            fill = args[0] if args else kwargs.get("value")
            if not isinstance(fill, Py) or not isinstance(fill.obj, numbers.Number):
                self.fail("fillna with a non-constant value", hint="fillna(<number>)")
            if t.dtype not in ("f64", "f32"):
                return v  # only float columns hold NaN
            return self.where(self.isna(v), fill, v)
        if name == "isin":
            if len(args) != 1 or kwargs:
                self.fail(".isin() with other than one list of values", hint=".isin([1, 2, 3])")
            return self.isin(v, args[0], ".isin")
        if name == "between":
            return self.between(v, args, kwargs)
        if name in ("where", "mask"):
            if not args or len(args) > 2 or set(kwargs) - {"other"}:
                self.fail(f".{name}() with other than (cond[, other])",
                          hint=f"x.{name}(cond, other)")
            cond = self.as_val(args[0])
            if self.type_of(cond).dtype != "bool":
                self.type_error(f".{name}() with a condition that is not boolean")
            other = args[1] if len(args) > 1 else kwargs.get("other", Py(math.nan))
            if t.dtype in ("i64", "bool"):
                # pandas keeps an int/bool Series' dtype when no row is replaced and upcasts
                # otherwise: the dtype would depend on the data, so only same-kind fills
                want = bool if t.dtype == "bool" else int
                o = other.obj if isinstance(other, Py) else None
                if not (isinstance(o, want) and (want is bool or not isinstance(o, bool))):
                    self.fail(f".{name}() on an {t.dtype} column with another kind of fill "
                              "value (pandas' result dtype would depend on the data)",
                              hint=f"x.astype(float).{name}(cond, other), or a fill value of "
                                   f"the column's kind")
            if name == "mask":
                cond = self.elementwise("invert", [cond])
            return self.where(cond, v, other)
        if name in ("isna", "isnull"):
            return self.isna(v)
        if name in ("notna", "notnull"):
            return self.elementwise("invert", [self.isna(v)])
        if name == "map":
            mapping = args[0] if args else kwargs.get("arg")
            if isinstance(mapping, Py) and is_store_table(mapping.obj):
                return self.store_map(v, mapping)
            if isinstance(mapping, Py) and isinstance(mapping.obj, dict):
                table = _series_map_table(mapping.obj, self.type_of(v).dtype)
                return self.lookup(v, Ref(mapping.name or "table", table), math.nan)
            if isinstance(mapping, Lambda):
                return self.apply_lambda(v, mapping.node)
            if isinstance(mapping, Py) and is_user_function(mapping.obj):
                return self.apply_user_function(v, mapping, ".map")
            self.fail(".map() of something other than a dict or a lambda",
                      hint="Series.map(DICT) (+ .fillna(default)), or a lambda")
        if name == "apply":
            fn = args[0] if args else None
            if isinstance(fn, Lambda):
                return self.apply_lambda(v, fn.node)
            if isinstance(fn, Py) and is_user_function(fn.obj):
                return self.apply_user_function(v, fn, ".apply")
            self.fail(".apply() of something other than a lambda",
                      hint="a lambda over one element, or call your function on the column")
        if name == "reshape":
            shape = tuple(a.obj for a in args) if len(args) > 1 else args[0].obj
            if t.shape == "col" and tuple(shape) in ((-1, 1), (len(shape) and -1, 1)):
                return self.stack([v], "reshape(-1, 1)")
            self.fail(f"reshape{shape}", hint="x.reshape(-1, 1) to make a column 2-D")
        if name == "get":
            self.fail(".get() on a column")
        if name in _MODEL_METHODS:
            self.fail(f".{name}() on a value; models are module-level objects")
        self.fail(f"the method .{name}() of a {t} value",
                  hint="astype, abs, clip, round, fillna, isna, notna, isin, between, "
                       "where, mask, map, apply, reshape, .str methods, to_numpy")

    def between(self, v: Val, args, kwargs) -> Val:
        """``x.between(left, right, inclusive="both")``: two comparisons (NaN is never between)."""
        self.check_kwargs(kwargs, ("left", "right", "inclusive"), ".between")
        left = args[0] if args else kwargs.get("left")
        right = args[1] if len(args) > 1 else kwargs.get("right")
        inclusive = args[2].obj if len(args) > 2 else self.kw_const(kwargs, "inclusive", "both")
        if left is None or right is None:
            self.fail(".between() without both bounds", hint="x.between(left, right)")
        ops = {"both": ("ge", "le"), "neither": ("gt", "lt"), "left": ("ge", "lt"),
               "right": ("gt", "le")}
        if inclusive not in ops:
            self.fail(f".between(inclusive={inclusive!r})",
                      hint='inclusive="both", "neither", "left" or "right"')
        lo_op, hi_op = ops[inclusive]
        return self.elementwise("bitand", [self.py_or_node(lo_op, [v, left]),
                                           self.py_or_node(hi_op, [v, right])])

    def string_method(self, v: Val, name, args, kwargs, element: bool):
        if name in _STR_METHODS_ELEMENT:
            if args or kwargs:
                self.fail(f".{name}() with arguments", hint=f".{name}()")
            self.want_str(v, f".{name}()")
            return self.emit(_STR_METHODS_ELEMENT[name], [v], type=Type.col("str"))
        if name == "replace":  # str.replace(old, new) on one element
            if len(args) != 2 or kwargs or not all(isinstance(a, Py) and isinstance(a.obj, str)
                                                   for a in args):
                self.fail(".replace() with other than two constant strings",
                          hint="s.replace('old', 'new')")
            self.want_str(v, ".replace()")
            return self.emit("str_replace", [v], {"pat": args[0].obj, "repl": args[1].obj,
                                                  "regex": False}, Type.col("str"))
        if name == "split":
            if args or kwargs:
                self.fail(".split() with a separator", hint="len(s.split()) counts words")
            self.want_str(v, ".split()")
            return SplitResult(v)
        sub = args[0].obj if args and isinstance(args[0], Py) else None
        if not isinstance(sub, str):
            self.fail(f".{name}() needs a constant string argument")
        self.want_str(v, f".{name}()")
        if name == "count":
            return self.emit("str_count", [v], {"sub": sub, "regex": not element}, Type.col("i64"))
        if name == "startswith":
            return self.emit("str_startswith", [v], {"prefix": sub}, Type.col("bool"))
        if name == "endswith":
            return self.emit("str_endswith", [v], {"suffix": sub}, Type.col("bool"))
        self.fail(f".{name}()")

    def want_present_str(self, v: Val, what: str):
        """A string column that holds no missing values: pandas' string methods turn NaN into
        NaN and their result dtype then depends on the data (int64 or float64 for .str.len),
        where mloc's types are fixed at compile time."""
        self.want_str(v, what)
        source = self.node(v).meta.get("may_be_missing")
        if source:
            self.fail(f"{what} on %{self.node(v).name}, which is NaN where {source} finds no "
                      "row (pandas' result dtype would then depend on the data)",
                      hint=f"fill it first: x.fillna('')")

    def call_str_accessor(self, v: Val, name, node):
        args, kwargs = self.args_kwargs(node)
        self.want_present_str(v, f".str.{name}()")
        if name == "len":
            return self.emit("str_len", [v], type=Type.col("i64"))
        if name in _STR_METHODS_ELEMENT or name in ("startswith", "endswith"):
            return self.string_method(v, name, args, kwargs, element=True)
        if name == "count":
            self.check_kwargs(kwargs, ("pat", "flags"), ".str.count")
            if self.kw_const(kwargs, "flags", 0):
                self.fail(".str.count(flags=...)")
            pat = args[0].obj if args else self.kw_const(kwargs, "pat")
            return self.emit("str_count", [v], {"sub": pat, "regex": True}, Type.col("i64"))
        if name == "contains":
            self.check_kwargs(kwargs, ("pat", "case", "regex", "flags", "na"), ".str.contains")
            if self.kw_const(kwargs, "flags", 0):
                self.fail(".str.contains(flags=...)", hint="case=False")
            pat = args[0].obj if args else self.kw_const(kwargs, "pat")
            return self.emit("str_contains", [v], {"sub": pat, "regex": bool(self.kw_const(kwargs, "regex", True)),
                                                   "case": bool(self.kw_const(kwargs, "case", True))},
                             Type.col("bool"))
        if name == "replace":
            self.check_kwargs(kwargs, ("pat", "repl", "regex", "n", "case", "flags"),
                              ".str.replace")
            pat = getattr(args[0], "obj", None) if args else self.kw_const(kwargs, "pat")
            repl = getattr(args[1], "obj", None) if len(args) > 1 else self.kw_const(kwargs, "repl")
            regex = self.kw_const(kwargs, "regex", False)  # pandas >= 2: literal by default
            if not isinstance(pat, str) or not isinstance(repl, str):
                self.fail(".str.replace() with a non-constant or non-string pattern",
                          hint=".str.replace('old', 'new') or a regex with regex=True")
            if self.kw_const(kwargs, "n", -1) != -1 or self.kw_const(kwargs, "flags", 0) \
                    or self.kw_const(kwargs, "case", None) is not None:
                self.fail(".str.replace(n=, case=, flags=)", hint="a regex with inline flags")
            if regex:
                import re
                try:
                    re.compile(pat)
                except re.error as exc:
                    self.fail(f".str.replace() with an invalid regex {pat!r}: {exc}")
            return self.emit("str_replace", [v], {"pat": pat, "repl": repl, "regex": bool(regex)},
                             Type.col("str"))
        if name == "split":
            self.fail(".str.split()", hint=".str.count(r'\\S+') or len(t.split()) in a comprehension")
        self.fail(f".str.{name}()", hint=".str.len/lower/upper/strip/contains/count/startswith/endswith/replace")

    def merge(self, left, right, kwargs):
        if isinstance(left, ParamRef):
            left = self.frame_param(left)
        if not isinstance(left, Frame):
            self.fail("merge of something other than a DataFrame")
        if isinstance(right, Py) and is_store_table(right.obj):
            t = right.obj
            self.fail(f"merging the feature store table {right.name} itself (pandas merges "
                      "DataFrames only)", hint=f"df.merge({right.name}.fetch(df[{t.key!r}]), "
                                               f"on={t.key!r}, how='left')")
        if isinstance(right, RemoteRows):
            return self.remote_merge(left, right, kwargs)
        if not isinstance(right, Py) or not hasattr(right.obj, "columns"):
            self.fail("merge with something other than a module-level DataFrame",
                      hint="df.merge(TABLE, on=key, how='left') with TABLE defined at module level")
        self.check_kwargs(kwargs, ("on", "how", "left_on", "right_on", "validate"), "merge")
        how = self.kw_const(kwargs, "how", "inner")
        if how != "left":
            self.fail(f"a merge with how={how!r} (it can drop or repeat rows)", hint="how='left'")
        on = self.kw_const(kwargs, "on")
        left_on = self.kw_const(kwargs, "left_on", on)
        right_on = self.kw_const(kwargs, "right_on", on)
        # on=['key'] is one key, as in pandas
        left_on, right_on = (k[0] if isinstance(k, tuple) and len(k) == 1 else k
                             for k in (left_on, right_on))
        if not isinstance(left_on, str) or not isinstance(right_on, str):
            self.fail("a merge on several keys or without on=", hint="on='key' (one column)")
        table = right.obj
        if right_on not in table.columns:
            self.fail(f"merge key {right_on!r} is not a column of {right.name}")
        if table[right_on].duplicated().any():
            self.fail(f"merge key {right_on!r} is not unique in {right.name} (rows would repeat)",
                      hint="a table with one row per key")
        key = self.frame_column(left, left_on)
        value_cols = [c for c in table.columns if c != right_on]
        fields = []
        for c in value_cols:
            kind = table[c].dtype.kind
            fields.append((c, "f64" if kind in "biuf" else "str"))
        keys = table[right_on].tolist()
        # an empty table has no keys to look at: its key column's dtype says what they are
        str_keys = all(isinstance(k, str) for k in keys) and table[right_on].dtype.kind not in "biuf"
        return self.join_frame(left, key, left_on, right_on, Ref(right.name or "table", table),
                               fields, str_keys)

    def remote_merge(self, left: Frame, rows: RemoteRows, kwargs):
        """``df.merge(STORE.fetch(df[k]), on=k, how='left')``: a join read from the store."""
        table, label = rows.table.obj, rows.table.name or rows.table.obj.name
        self.check_kwargs(kwargs, ("on", "how", "left_on", "right_on", "validate"), "merge")
        how = self.kw_const(kwargs, "how", "inner")
        if how != "left":
            self.fail(f"a merge with how={how!r} (it can drop or repeat rows)", hint="how='left'")
        on = self.kw_const(kwargs, "on")
        left_on, right_on = (k[0] if isinstance(k, tuple) and len(k) == 1 else k for k in
                             (self.kw_const(kwargs, "left_on", on), self.kw_const(kwargs, "right_on", on)))
        if right_on != table.key or not isinstance(left_on, str):
            self.fail(f"a merge of {label}.fetch(...) on {right_on!r}",
                      hint=f"on={table.key!r} (the table's key), or left_on=<your column>, "
                           f"right_on={table.key!r}")
        key = self.frame_column(left, left_on)
        if key.nid != rows.key.nid:
            self.fail(f"merging {label}.fetch(x) on the column {left_on!r}, which is not x",
                      hint=f"df.merge({label}.fetch(df[{left_on!r}]), left_on={left_on!r}, ...)")
        fields = [(c, "str" if d == "str" else "f64") for c, d in table.columns]
        return self.join_frame(left, key, left_on, table.key, Ref(label, table), fields,
                               table.key_kind == "str")

    def join_frame(self, left: Frame, key: Val, left_on, right_on, table: Ref, fields, str_keys):
        """The frame ``left`` with the fields of a left join of its ``key`` against ``table``."""
        value_cols = [c for c, _ in fields]
        clash = [c for c in value_cols if c in left.columns]
        if clash:
            self.fail(f"merge columns {clash} exist on both sides (pandas would suffix them)",
                      hint="drop or rename them in the table")
        if str_keys:
            self.want_str(key, "merge key")
        else:
            self.want_numeric(key, "merge key")
        right = Py(table.obj, table.name)
        if left.param is not None:
            # pandas suffixes columns present on both sides (value_x, value_y): checked when the
            # caller's frame is bound, since only then are its columns known
            joined = self.graph.meta.setdefault("frame_joined_columns", {})
            joined.setdefault(left.param, {}).update({c: right.name or "table" for c in value_cols})
        rec = self.emit("join", [key], {"table": table, "on": right_on,
                                        "defaults": tuple(math.nan for _ in fields)},
                        Type.record(fields), name=(right.name or "join").lower())
        out = Frame(left.param, left.columns)
        out.columns[left_on] = key
        for name, dtype in fields:
            out.columns[name] = self.emit("field", [rec], {"name": name}, Type.col(dtype), name=name)
            if dtype == "str":  # unmatched rows hold NaN (see want_present_str)
                self.node(out.columns[name]).meta["may_be_missing"] = \
                    f"the left join with {right.name or 'the table'}"
        return out


def _series_map_table(table: dict, dtype: str) -> dict:
    """The entries ``Series.map(table)`` can find in a column of ``dtype``.

    pandas looks keys up in an Index built from the dict, not with Python's ``==``: an index of
    numbers never matches bools and an index of bools never matches numbers (where Python has
    True == 1). Keys of mixed types make an object index, which matches as Python does.
    """
    kinds = {"bool" if isinstance(k, (bool, np.bool_)) else
             "number" if isinstance(k, numbers.Number) else "other" for k in table}
    if (kinds == {"number"} and dtype == "bool") or (kinds == {"bool"} and dtype != "bool"):
        return {}
    return table
