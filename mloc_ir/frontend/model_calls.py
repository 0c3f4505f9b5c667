"""Calls on module-level objects: models (``predict``, ``predict_proba``,
``decision_function``), fitted transformers and text vectorizers (``transform``), dict
``get``, and other bound methods as opaque calls.
"""
from __future__ import annotations

import numpy as np

from ..featurestore import is_store_table
from ..printer import Ref
from ..types import Type, dtype_from_numpy
from .values import Frame, ParamRef, Py, Val, _MODEL_METHODS


class ModelCalls:
    """Lowering of model, transformer and vectorizer calls (a ``Lowering`` mixin)."""

    def call_object_method(self, target: Py, name, node):
        obj = target.obj
        args, kwargs = self.args_kwargs(node)
        label = target.name or type(obj).__name__
        if is_store_table(obj):
            return self.store_method(target, name, args, kwargs)
        if isinstance(obj, dict) and name == "get":
            if len(args) not in (1, 2) or kwargs:
                self.fail(f"{label}.get with {len(args)} arguments", hint=f"{label}.get(key, default)")
            key = args[0]
            default = args[1] if len(args) > 1 else Py(None)
            if isinstance(key, Py):
                return Py(obj.get(key.obj, default.obj))
            if isinstance(default, Py) and default.obj is None:
                self.fail(f"{label}.get(key) without a default (missing keys give None)",
                          hint=f"{label}.get(key, default)")
            return self.lookup(self.as_val(key), Ref(label, obj), default)
        if isinstance(obj, str) and isinstance(args[0] if args else None, Val):
            self.fail(f"the string method {label}.{name} on a column")
        if name in _MODEL_METHODS and hasattr(obj, name):
            return self.model_call(target, name, args, kwargs)
        if name == "transform" and hasattr(obj, "transform"):
            return self.transform_call(target, args, kwargs)
        if name == "merge" and hasattr(obj, "merge"):
            self.fail("merging into a module-level table", hint="df.merge(TABLE, on=key, how='left')")
        bound = getattr(obj, name)
        if callable(bound):
            return self.opaque_call(Py(bound, f"{label}.{name}"), node)
        self.fail(f"{label}.{name}()")

    def transform_call(self, target: Py, args, kwargs):
        obj = target.obj
        label = target.name or type(obj).__name__
        if len(args) != 1 or kwargs:
            self.fail(f"{label}.transform with other than one argument")
        x = args[0]
        if isinstance(x, ParamRef):
            x = self.column_param(x, "str")
        if not isinstance(x, Val):
            self.fail(f"{label}.transform of {self.describe(x)}")
        if _is_text_vectorizer(obj):
            self.want_str(x, f"{label}.transform")
            width = _vectorizer_width(obj)
            if width is None:
                self.fail(f"{label} is not fitted", hint="fit vectorizers before compiling")
            # CountVectorizer/HashingVectorizer default to int64/float64 counts, TF-IDF to float64
            out_dtype = dtype_from_numpy(getattr(obj, "dtype", np.float64))
            return self.emit("vectorize", [x], {"vectorizer": Ref(label, obj)},
                             Type.sparse(width, out_dtype),
                             name=label.lower())
        t = self.type_of(x)
        if t.shape not in ("row", "sparse"):
            self.fail(f"{label}.transform of a 1-D column", hint="a 2-D feature matrix")
        n_in = getattr(obj, "n_features_in_", None)
        if n_in is not None and n_in != t.width:
            self.type_error(f"{label} expects {n_in} features, the pipeline gives it {t.width}")
        with np.errstate(all="ignore"):
            try:
                out = obj.transform(np.ones((1, t.width)))
            except Exception as exc:  # noqa: BLE001
                self.fail(f"{label}.transform cannot run on a {t} value: {exc}")
        return self.emit("transform", [x], {"transformer": Ref(label, obj)},
                         Type.row(np.asarray(out).shape[1]), name=label.lower())

    def model_call(self, target: Py, method, args, kwargs):
        model = target.obj
        label = target.name or type(model).__name__
        if len(args) != 1:
            self.fail(f"{label}.{method} with {len(args)} positional arguments",
                      hint=f"{label}.{method}(X)")
        x = args[0]
        if isinstance(x, Frame):
            self.fail(f"{label}.{method} of a whole DataFrame", hint="df[[col, ...]]")
        x = self.as_val(x)
        t = self.type_of(x)
        if t.shape == "any":
            why = self.node(x).attrs.get("not_inlined")
            self.fail(f"{label}.{method} of the result of the opaque call "
                      f"{self.node(x).attrs.get('qualname', self.node(x).name)}() " +
                      (f"(it is not inlined: {why})" if why else
                       "(mloc does not look inside the functions a pipeline calls)"),
                      hint="a helper in the pipeline language (it is inlined), or build the "
                           "model's input in the pipeline function itself, e.g. "
                           "X = np.column_stack([...])")
        if t.shape not in ("row", "sparse"):
            self.fail(f"{label}.{method} of a 1-D column (models take a 2-D matrix)",
                      hint="np.column_stack([...]) or x[:, None]")
        library = _library_of(model)
        kw = {}
        for k, val in kwargs.items():
            if not isinstance(val, Py):
                self.fail(f"a non-constant {k}= in {label}.{method}")
            kw[k] = val.obj
        if library == "lightgbm" and hasattr(model, "num_feature") and not hasattr(model, "booster_"):
            allowed = ("raw_score", "num_iteration", "start_iteration")
            extra = set(kw) - set(allowed)
            if extra:
                self.fail(f"{label}.predict({', '.join(sorted(extra))}=...)",
                          hint="raw_score, num_iteration, start_iteration")
            n_in = model.num_feature()
            k = model.num_model_per_iteration()
            out = Type.col("f64") if k == 1 else Type.row(k)
        else:
            if kw:
                allowed = ("raw_score", "num_iteration", "start_iteration") if library == "lightgbm" else ()
                extra = set(kw) - set(allowed)
                if extra:
                    self.fail(f"{label}.{method}({', '.join(sorted(extra))}=...)")
            n_in = getattr(model, "n_features_in_", None)
            classes = getattr(model, "classes_", None)
            if method == "predict":
                if classes is not None and not kw.get("raw_score"):
                    out = Type.col(dtype_from_numpy(np.asarray(classes).dtype))
                else:
                    out = Type.col("f64")
            elif method == "predict_proba":
                if classes is None:
                    self.fail(f"{label}.predict_proba on a model without classes")
                out = Type.row(len(classes))
            else:
                n_classes = len(classes) if classes is not None else 2
                out = Type.col("f64") if n_classes <= 2 else Type.row(n_classes)
        if n_in is not None and n_in != t.width:
            self.type_error(f"{label} expects {n_in} features, the pipeline gives it {t.width}")
        return self.emit("model", [x], {"model": Ref(label, model), "method": method,
                                        "kwargs": kw, "library": library}, out,
                         name=method if method != "predict" else "pred")


def _library_of(obj) -> str:
    mod = type(obj).__module__.split(".")[0]
    return mod if mod in ("lightgbm", "sklearn", "xgboost") else "python"


def _is_text_vectorizer(obj) -> bool:
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
    return isinstance(obj, (CountVectorizer, HashingVectorizer, TfidfVectorizer))


def _vectorizer_width(obj) -> int | None:
    from sklearn.feature_extraction.text import HashingVectorizer
    if isinstance(obj, HashingVectorizer):
        return int(obj.n_features)
    vocab = getattr(obj, "vocabulary_", None)
    return None if vocab is None else len(vocab)
