"""Models inside fused kernels: which model nodes compile, and how a block of rows is scored.

LightGBM tree ensembles go through ``codegen.lightgbm_model.from_lightgbm`` and
``codegen.emit_trees.emit_ensemble``; the fused kernel calls the emitted ensemble function on
its per-block feature buffer.  Supported here:

* ``lightgbm.Booster.predict(X, raw_score=, num_iteration=, start_iteration=)``;
* ``LGBMRegressor.predict(X)`` and ``LGBMClassifier.predict_proba(X)`` (no keyword arguments).

LightGBM reads a float32 or float64 matrix as is and converts any other dtype to float32 first
(``lightgbm.basic._np2d_to_np1d``); :func:`feature_cast` reproduces that.

scikit-learn estimators and ``Pipeline``s of scalers + estimator go through
``codegen.sklearn_model.convert_sklearn``: preprocessing ``steps``, a raw-score ``core``
(tree ``Ensemble`` or ``LinearModel``) and a ``Head``.  Steps and core always run inside the
fused kernel; the head (raw scores -> ``predict`` / ``predict_proba`` /
``decision_function``) is emitted natively by ``codegen.pipeline_heads`` when that is
bit-exact with scikit-learn (:func:`native_head_reason`), else it runs on the host on the
materialised raw scores (:class:`codegen.pipeline_heads.HostHead`).  scikit-learn's input
conversion is reproduced by :func:`sklearn_feature_cast`.

Every other model node runs on the host.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mloc_ir.types import numpy_dtype

_LGB_KWARGS = ("raw_score", "num_iteration", "start_iteration")
NUMERIC = ("bool", "i64", "f32", "f64")


@dataclass
class ModelSpec:
    """How one model node is evaluated natively."""

    kind: str  # "booster" | "lgbm_regressor" | "lgbm_proba" | "sklearn"
    model: object
    kwargs: dict
    n_features: int
    width: int  # values per row of the node's result (1 for a column)
    method: str = "predict"
    converted: object = None  # kind "sklearn": the codegen.sklearn_model.SklearnModel
    head_reason: str | None = None  # kind "sklearn": why the head runs on the host (None: native)

    @property
    def host_head(self) -> bool:
        return self.kind == "sklearn" and self.head_reason is not None


def _lightgbm_kind(node):
    try:
        import lightgbm as lgb
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        return None
    model = node.attrs["model"].obj
    method = node.attrs["method"]
    if isinstance(model, lgb.Booster):
        return "booster" if method == "predict" else None
    if isinstance(model, lgb.LGBMClassifier) and method == "predict_proba":
        return "lgbm_proba"
    if isinstance(model, lgb.LGBMRegressor) and method == "predict":
        return "lgbm_regressor"
    return None


def _is_sklearn(model) -> bool:
    from .sklearn_model import is_sklearn_model
    return is_sklearn_model(model)


def model_spec(graph, node) -> ModelSpec:
    """The :class:`ModelSpec` of a model node, or ValueError saying why it does not compile."""
    if _is_sklearn(node.attrs["model"].obj):
        return _sklearn_spec(graph, node)
    kind = _lightgbm_kind(node)
    if kind is None:
        raise ValueError(f"{node.attrs['library']} model {node.attrs['model'].name}."
                         f"{node.attrs['method']} is not compiled natively yet")
    kwargs = dict(node.attrs.get("kwargs") or {})
    if kind != "booster" and kwargs:
        raise ValueError(f"keyword arguments {sorted(kwargs)} of the scikit-learn API")
    extra = set(kwargs) - set(_LGB_KWARGS)
    if extra:
        raise ValueError(f"keyword arguments {sorted(extra)}")
    x = graph[node.args[0]].type
    if x.shape != "row":
        raise ValueError(f"input is a {x} value")
    t = node.type
    width = 1 if t.shape == "col" else t.width
    return ModelSpec(kind, node.attrs["model"].obj, kwargs, x.width, width,
                     method=node.attrs["method"])


def model_support(graph, node) -> str | None:
    """None when ``node``'s model compiles natively (its head possibly on the host), else why
    the whole model runs on the host."""
    try:
        spec = model_spec(graph, node)
        if spec.kind != "sklearn":
            ensemble(spec)
    except Exception as exc:  # noqa: BLE001 -- any failure to convert means: run on the host
        if _is_sklearn(node.attrs["model"].obj):
            return (f"{node.attrs['model'].name}.{node.attrs['method']} is not compiled "
                    f"natively: {exc}")
        return str(exc)
    return None


# ---------------------------------------------------------------------------------------------
# scikit-learn


def _fitted_state(model, out: list) -> None:
    out.append(model)
    for k, v in sorted(vars(model).items()):
        if (k.endswith("_") and not k.startswith("_")) or k == "_predictors":
            out.append(v)  # coef_, estimators_, tree_, ...; HistGradientBoosting's trees
    for _, step in getattr(model, "steps", None) or []:
        if hasattr(step, "__dict__"):
            _fitted_state(step, out)


def fitted_signature(model) -> tuple:
    """Identity of a fitted estimator's learned state: the ids of the estimator and of its
    fitted attributes (``coef_``, ``estimators_``, ``tree_``...; refitting replaces them),
    recursively through a ``Pipeline``'s steps."""
    state: list = []
    _fitted_state(model, state)
    return tuple(id(v) for v in state)


_CONVERTED: dict = {}


def converted(model):
    """``convert_sklearn(model)``, cached per fitted state (see :func:`fitted_signature`);
    the cache keeps the state objects alive, so their ids cannot be reused by a later fit."""
    from .sklearn_model import convert_sklearn
    state: list = []
    _fitted_state(model, state)
    key = tuple(id(v) for v in state)
    hit = _CONVERTED.get(key)
    if hit is not None:
        return hit[1]
    conv = convert_sklearn(model)
    if len(_CONVERTED) >= 64:  # keep the cache from pinning every model ever compiled
        _CONVERTED.clear()
    _CONVERTED[key] = (state, conv)
    return conv


def _float32_coef(model) -> bool:
    """A linear model fitted on float32 data (LinearRegression, Ridge keep that dtype)."""
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    coef = getattr(final, "coef_", None)
    return coef is not None and np.asarray(coef).dtype == np.float32


def _has_scaler(conv) -> bool:
    from .sklearn_preprocess import Ordinal
    return any(not isinstance(s, Ordinal) for s in conv.steps)


def _sklearn_spec(graph, node) -> ModelSpec:
    model = node.attrs["model"].obj
    method = node.attrs["method"]
    label = node.attrs["model"].name or type(model).__name__
    kwargs = dict(node.attrs.get("kwargs") or {})
    if kwargs:
        raise ValueError(f"keyword arguments {sorted(kwargs)} of {label}.{method}")
    x = graph[node.args[0]].type
    if x.shape != "row" or x.dtype not in NUMERIC:
        raise ValueError(f"input is a {x} value")
    conv = converted(model)
    if conv.n_features != x.width:
        raise ValueError(f"{label} expects {conv.n_features} features, the pipeline gives "
                         f"{x.width}")
    if method not in conv.methods():
        raise ValueError(f"{label} has no compiled {method}(); compiled: "
                         f"{', '.join(conv.methods())}")
    if x.dtype == "f32" and _has_scaler(conv):
        raise ValueError("its scalers would run on float32 features, which scikit-learn scales "
                         "in float32 (compiled scalers work in float64)")
    if x.dtype == "f32" and _float32_coef(model):
        raise ValueError("its float32 coefficients meet float32 features, which scikit-learn "
                         "multiplies in float32 (compiled linear models work in float64)")
    t = node.type
    probe = np.asarray(conv.head.apply(method, np.zeros((2, conv.n_outputs))))
    declared = (1,) if t.shape == "col" else (2, t.width)
    got = (probe.ndim,) if probe.ndim == 1 else (probe.ndim, probe.shape[1])
    if got != declared:
        raise ValueError(f"{label}.{method} returns shape (n, {probe.shape[1:]}) but the pipeline "
                         f"declares {t}")
    spec = ModelSpec("sklearn", model, {}, x.width, 1 if t.shape == "col" else t.width,
                     method=method, converted=conv)
    spec.head_reason = native_head_reason(conv, method, probe.dtype, t.dtype)
    return spec


#: Heads that call NumPy's ``exp`` (``softmax``, the ``exp`` link) or SciPy's ``expit``.
_NUMPY_EXP, _EXPIT = "numpy", "expit"
MAX_NATIVE_OUTPUTS = 256  # heads are unrolled over the outputs


def _exp_users(head, method) -> set:
    rule = head.rule
    if rule == "values":
        return {_NUMPY_EXP} if head.link == "exp" and method == "predict" else set()
    if method != "predict_proba":
        return set()
    if rule == "multinomial":
        return {_NUMPY_EXP}
    if rule == "logit" or head.proba == "ovr_logit":
        return {_EXPIT}
    return set()


def native_head_reason(conv, method: str, out_dtype, declared: str) -> str | None:
    """None when ``conv``'s head for ``method`` is emitted natively, bit-exact with
    scikit-learn; else why it runs on the host."""
    head = conv.head
    if declared not in NUMERIC or np.dtype(out_dtype) != numpy_dtype(declared):
        return (f"it returns {np.dtype(out_dtype)} values (labels of that dtype are not "
                "compiled)")
    if head.rule == "svc_ovo":
        return "libsvm's one-vs-one vote is not compiled"
    if conv.n_outputs > MAX_NATIVE_OUTPUTS:
        return f"{conv.n_outputs} outputs (heads are compiled for at most {MAX_NATIVE_OUTPUTS})"
    for user in sorted(_exp_users(head, method)):
        if not exp_matches(user):
            who = "NumPy's exp" if user == _NUMPY_EXP else "SciPy's expit"
            return f"{who} loop could not be checked in this process, so it is not called natively"
    return None


def exp_matches(which: str) -> bool:
    """Whether native heads can call NumPy's float64 ``exp`` (``which="numpy"``) or SciPy's
    ``expit`` (``which="expit"``) loop in this process (``numpy_loops`` checks each loop
    against its ufunc once)."""
    from . import numpy_loops
    if which == _NUMPY_EXP:
        return numpy_loops.available("numpy", "exp", "d")
    return numpy_loops.available("scipy.special", "expit", "d")


def sklearn_feature_cast(spec: ModelSpec, dtype: str) -> str:
    """The dtype scikit-learn converts a ``dtype`` feature matrix to before the core:
    ``"f32"`` for tree models that cast ``X`` to float32 (integers convert directly to
    float32, as ``ndarray.astype`` does), else ``"f64"`` (scalers, linear models and
    HistGradientBoosting read float64; float32 is widened exactly)."""
    from .ensemble import Ensemble
    conv = spec.converted
    if (isinstance(conv.core, Ensemble) and conv.core.input_cast == "float32"
            and not conv.steps and dtype not in ("f32", "f64")):
        return "f32"
    return "f64"


def transform_step(graph, node):
    """The ``codegen.sklearn_preprocess`` step of a ``transform`` node (a fitted
    StandardScaler / MinMaxScaler / MaxAbsScaler on a dense numeric row), or ValueError."""
    from .sklearn_preprocess import step_from_sklearn
    obj = node.attrs["transformer"].obj
    x = graph[node.args[0]].type
    if x.shape != "row" or x.dtype not in NUMERIC:
        raise ValueError(f"input is a {x} value")
    if x.dtype == "f32":
        raise ValueError("scikit-learn scales float32 features in float32 (compiled scalers "
                         "work in float64)")
    t = node.type
    if t.shape != "row" or t.dtype != "f64" or t.width != x.width:
        raise ValueError(f"result type {t}")
    return step_from_sklearn(obj, x.width)


# ---------------------------------------------------------------------------------------------
# LightGBM


_ENSEMBLES: dict = {}


def ensemble(spec: ModelSpec):
    """The converted ensemble (cached per model object and iteration range)."""
    from .lightgbm_model import from_lightgbm
    key = (id(spec.model), spec.kwargs.get("num_iteration"), spec.kwargs.get("start_iteration", 0))
    hit = _ENSEMBLES.get(key)
    if hit is not None and hit[0] is spec.model:
        return hit[1]
    ens = from_lightgbm(spec.model, num_iteration=spec.kwargs.get("num_iteration"),
                        start_iteration=spec.kwargs.get("start_iteration", 0) or 0)
    if ens.n_features != spec.n_features:
        raise ValueError(f"the model expects {ens.n_features} features, the pipeline gives "
                         f"{spec.n_features}")
    expected = spec.width if spec.kind != "lgbm_proba" or spec.width != 2 else 1
    if ens.n_outputs != expected:
        raise ValueError(f"the model has {ens.n_outputs} outputs, the node expects {spec.width}")
    _ENSEMBLES[key] = (spec.model, ens)
    return ens


def feature_cast(dtype: str) -> str:
    """How LightGBM reads a feature matrix of ``dtype``: ``"f64"`` or via ``"f32"``."""
    return "f64" if dtype == "f64" else "f32"


def raw_score(spec: ModelSpec) -> bool:
    return bool(spec.kwargs.get("raw_score", False))
