"""What the planner needs to know about the pipeline's model: which nodes call it, whether it
classifies (and how many classes), how to get class probabilities from it, and how to refit one
of the same family on fewer features.

Supported families: LightGBM ``Booster`` (its objective decides the task), scikit-learn
estimators and LightGBM's scikit-learn wrappers (``is_classifier`` / ``classes_`` decide).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mloc_ir.errors import MlocError
from mloc_ir.types import Type


class PlanError(MlocError):
    """The statistical optimizer cannot plan for this pipeline or these inputs."""


#: LightGBM objectives (and aliases) whose ``predict`` returns class probabilities.
_BINARY_OBJECTIVES = ("binary",)
_MULTICLASS_OBJECTIVES = ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova",
                          "ovr")
#: Booster.predict keyword arguments that change its output away from probabilities.
_NOT_PROBABILITY_KWARGS = ("raw_score", "pred_leaf", "pred_contrib")


def is_booster(model) -> bool:
    try:
        import lightgbm as lgb
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        return False
    return isinstance(model, lgb.Booster)


def _booster_objective(booster) -> str:
    objective = (getattr(booster, "params", None) or {}).get("objective")
    if objective is None:
        # a Booster loaded from a model file: the objective is in the file's header
        for line in booster.model_to_string(num_iteration=0).splitlines()[:40]:
            if line.startswith("objective="):
                objective = line.split("=", 1)[1]
                break
    if callable(objective):
        return "custom"
    return str(objective or "regression").split()[0]


@dataclass
class ModelInfo:
    """The pipeline's one model and its task."""

    model: object
    name: str  # how the pipeline calls it
    nodes: list[int]  # model nodes that call it (all on the same input row)
    task: str  # "binary" | "multiclass" | "regression"
    n_classes: int  # 0 for regression
    classes: np.ndarray | None  # the labels class i stands for (None: 0..n_classes-1)

    @property
    def is_classifier(self) -> bool:
        return self.task in ("binary", "multiclass")

    def label_index(self, labels) -> np.ndarray:
        """Each label's class position (for log loss); PlanError on a label the model lacks."""
        labels = np.asarray(labels)
        classes = self.classes if self.classes is not None else np.arange(self.n_classes)
        order = np.argsort(classes, kind="stable")
        pos = np.searchsorted(classes[order], labels)
        pos = np.clip(pos, 0, len(classes) - 1)
        found = classes[order][pos] == labels
        if not np.all(found):
            bad = np.unique(labels[~found])[:5].tolist()
            raise PlanError(f"labels {bad} are not classes of {self.name} "
                            f"(classes: {classes.tolist()})")
        return order[pos]


def task_of(model) -> tuple[str, int, np.ndarray | None]:
    """(task, number of classes, class labels) of a fitted model."""
    if is_booster(model):
        objective = _booster_objective(model)
        k = model.num_model_per_iteration()
        if objective in _BINARY_OBJECTIVES:
            return "binary", 2, None
        if objective in _MULTICLASS_OBJECTIVES:
            return "multiclass", k, None
        return "regression", 0, None
    classes = getattr(model, "classes_", None)
    try:
        from sklearn.base import is_classifier
        classifier = is_classifier(model) or classes is not None
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        classifier = classes is not None
    if classifier and classes is not None:
        k = len(classes)
        return ("binary" if k == 2 else "multiclass"), k, np.asarray(classes)
    return "regression", 0, None


def find_model(graph) -> ModelInfo:
    """The one model the pipeline calls (possibly through several methods on one input row)."""
    calls = graph.find("model")
    if not calls:
        raise PlanError(f"{graph.name} calls no model: there is nothing to approximate")
    distinct = {(id(n.attrs["model"].obj), n.args[0]) for n in calls}
    if len(distinct) > 1:
        names = sorted({f"{n.attrs['model'].name}.{n.attrs['method']}" for n in calls})
        raise PlanError(f"{graph.name} calls more than one model ({', '.join(names)}); cascades "
                        "and top-K filters plan for a pipeline with one model")
    model = calls[0].attrs["model"].obj
    task, k, classes = task_of(model)
    return ModelInfo(model, calls[0].attrs["model"].name, [n.id for n in calls], task, k,
                     classes)


def gives_probabilities(model, method: str, kwargs: dict) -> bool:
    """Whether ``model.method(X, **kwargs)`` returns class probabilities."""
    if is_booster(model):
        task = task_of(model)[0]
        return method == "predict" and task != "regression" and \
            not any(kwargs.get(k) for k in _NOT_PROBABILITY_KWARGS)
    return method == "predict_proba"


def probability_call(model, kwargs: dict) -> tuple[str, dict, Type]:
    """(method, kwargs, result type) of a call of ``model`` returning class probabilities.

    ``kwargs`` are those of the pipeline's own call; only the ones that keep probabilities
    (a LightGBM ``num_iteration``, say) are carried over.
    """
    task, k, _ = task_of(model)
    if task == "regression":
        raise PlanError(f"{type(model).__name__} is not a classifier: it has no class "
                        "probabilities to take a confidence from")
    if is_booster(model):
        kw = {a: v for a, v in kwargs.items() if a not in _NOT_PROBABILITY_KWARGS}
        return "predict", kw, (Type.col("f64") if k == 1 or task == "binary" else Type.row(k))
    if not hasattr(model, "predict_proba"):
        raise PlanError(f"{type(model).__name__} has no predict_proba: a cascade needs class "
                        "probabilities (pass approximate_trainer= returning a probabilistic "
                        "classifier)")
    return "predict_proba", {}, Type.row(k)


def as_probabilities(value) -> np.ndarray:
    """Class probabilities as an (n, k) matrix; a binary model's 1-D p becomes [1 - p, p]."""
    p = np.asarray(value, dtype=np.float64)
    if p.ndim == 1:
        return np.column_stack([1.0 - p, p])
    return p


def confidence(value) -> np.ndarray:
    """Top-class probability of each row (for a binary 1-D p: max(p, 1 - p))."""
    p = np.asarray(value, dtype=np.float64)
    if p.ndim == 1:
        return np.maximum(p, 1.0 - p)
    return p.max(axis=1) if p.shape[1] else np.zeros(len(p))


def predicted_class(value) -> np.ndarray:
    """Position of each row's top class (a binary 1-D p: p > 0.5, as argmax of [1-p, p])."""
    return np.argmax(as_probabilities(value), axis=1)


def fit_on_one_thread(est, X, y, **fit_kw):
    """``est.fit(X, y)`` with ``n_jobs=1`` for the fit, then the estimator's own setting back.

    The planner's fits are small (thousands of rows), where thread start-up and OpenMP
    barriers cost more than they save: two-thread LightGBM refits spent ~40 of 50 CPU s of a
    plan spinning on a loaded 2-core machine.  Prediction keeps the user's setting."""
    params = est.get_params() if hasattr(est, "get_params") else {}
    if params.get("n_jobs") in (None, 1):  # nothing to change (and some models warn on it)
        return est.fit(X, y, **fit_kw)
    est.set_params(n_jobs=1)
    try:
        est.fit(X, y, **fit_kw)
    finally:
        est.set_params(n_jobs=params["n_jobs"])
    return est


def default_trainer(model):
    """A function ``(X, y) -> model`` refitting ``model``'s family with its parameters."""
    if is_booster(model):
        import lightgbm as lgb
        params = dict(getattr(model, "params", None) or {})
        # column positions of the full input mean nothing on a subset of the columns
        for key in ("categorical_feature", "categorical_column", "cat_feature",
                    "categorical_features", "forcedsplits_filename", "interaction_constraints"):
            params.pop(key, None)
        params.setdefault("objective", _booster_objective(model))
        if params["objective"] in _MULTICLASS_OBJECTIVES:
            params.setdefault("num_class", model.num_model_per_iteration())
        params.setdefault("verbosity", -1)
        rounds = max(1, model.current_iteration())

        def train_booster(X, y):
            return lgb.train(params, lgb.Dataset(X, np.asarray(y)), num_boost_round=rounds)
        train_booster.params, train_booster.rounds = params, rounds  # for distillation
        return train_booster
    try:
        from sklearn.base import clone
        clone(model)
    except Exception as exc:  # noqa: BLE001 -- not a scikit-learn estimator
        raise PlanError(f"cannot refit a {type(model).__name__} on fewer features ({exc}); pass "
                        "approximate_trainer=(X, y) -> fitted model") from None

    def train_sklearn(X, y):
        return fit_on_one_thread(clone(model), X, np.asarray(y))
    return train_sklearn
