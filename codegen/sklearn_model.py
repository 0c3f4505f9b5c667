"""scikit-learn models -> mloc's model data models (tree :class:`Ensemble`, linear model).

Entry points:

* :func:`convert_sklearn(model) <convert_sklearn>` -> :class:`SklearnModel`: preprocessing
  steps (scalers of a ``Pipeline``, the ordinal encoding of ``HistGradientBoosting``'s
  categorical features), a *core* computing raw scores (an
  :class:`~codegen.ensemble.Ensemble` or a :class:`~codegen.sklearn_linear.LinearModel`), and
  a :class:`~codegen.sklearn_heads.Head` mapping raw scores to ``predict`` /
  ``predict_proba`` / ``decision_function`` (class labels included).
* :func:`ensemble_from_sklearn(model) <ensemble_from_sklearn>` -> the ``Ensemble`` of a tree
  model that needs no preprocessing.
* :meth:`SklearnModel.reference` -- the NumPy reference evaluator (steps, then
  :func:`codegen.ensemble.reference_predict` or the linear reference, then the head).

Tree semantics mirrored from scikit-learn 1.9 (``sklearn/tree/_tree.pyx``,
``ensemble/_forest.py``, ``ensemble/_gb.py``, ``ensemble/_gradient_boosting.pyx``,
``ensemble/_hist_gradient_boosting/_predictor.pyx``):

* ``DecisionTree*``, ``RandomForest*``, ``ExtraTree(s)*``: ``X`` is cast to float32, compared
  as ``x <= threshold`` (float64); NaN goes ``missing_go_to_left`` (``input_cast="float32"``,
  missing type NAN).  A tree's output is its leaf's ``tree_.value`` row (class fractions for a
  classifier).  Forests start from 0.0, add the trees in ``estimators_`` order and divide by
  the number of trees (``average=True``) -- with ``n_jobs`` 1/None; with several jobs
  scikit-learn adds trees in a nondeterministic order and only agrees to rounding.
* ``GradientBoosting*``: raw = init estimator's constant raw prediction, then stage by stage,
  output by output, ``raw[k] += learning_rate * value`` (the product is computed once per
  leaf here, exactly as scikit-learn computes it per row).  Its Cython predictor ignores
  ``missing_go_to_left``: NaN fails ``x <= thr`` and goes right (scikit-learn rejects NaN
  before that, so this only matters to callers that skip validation).
* ``HistGradientBoosting*``: float64 inputs, raw = ``0.0 + baseline`` plus every predictor's
  leaf value in iteration order; NaN goes ``missing_go_to_left``.  Categorical features are
  first ordinal-encoded (unknown -> NaN) and split by bitset; unknown and NaN categories go
  ``missing_go_to_left``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ensemble import DecisionKind, Ensemble, MissingType, Tree, reference_predict
from .sklearn_heads import Head
from .sklearn_linear import LinearModel, linear_from_sklearn
from .sklearn_linear import reference_raw as linear_reference_raw
from .sklearn_preprocess import Ordinal, apply_steps, step_from_sklearn


class UnsupportedModelError(ValueError):
    """The scikit-learn model (or one of its options) cannot be compiled."""


@dataclass
class SklearnModel:
    """A converted scikit-learn model: ``head(core(steps(X)))``."""

    core: object  # Ensemble | LinearModel
    head: Head
    n_features: int
    steps: list = field(default_factory=list)
    source: str = ""

    @property
    def n_outputs(self) -> int:
        return self.core.n_outputs

    def methods(self) -> tuple:
        return self.head.methods()

    def reference_raw(self, X) -> np.ndarray:
        """Raw scores by the NumPy reference evaluators (slow for tree ensembles)."""
        X = np.asarray(X, np.float64).reshape(-1, self.n_features)
        if self.steps:
            X = apply_steps(self.steps, X)
        if isinstance(self.core, Ensemble):
            with np.errstate(over="ignore"):  # float32 cast of huge values gives +-inf
                return reference_predict(self.core, X, raw_score=True)
        return linear_reference_raw(self.core, X)

    def reference(self, method: str, X):
        """``method``'s result by the reference evaluators."""
        return self.head.apply(method, self.reference_raw(X))


# ---------------------------------------------------------------------------------------------
# Trees


def _renumber(left: np.ndarray, right: np.ndarray, is_leaf: np.ndarray):
    """Map a library's node ids (internal and leaf nodes in one array, root 0) to the data
    model's encoding: internal nodes 0.., leaves ``~leaf_index``."""
    internal = np.flatnonzero(~is_leaf)
    leaves = np.flatnonzero(is_leaf)
    code = np.empty(len(is_leaf), np.int64)
    code[internal] = np.arange(len(internal))
    code[leaves] = ~np.arange(len(leaves))
    return internal, leaves, code[left[internal]], code[right[internal]]


def _tree(left, right, is_leaf, feature, threshold, default_left, values, output=0,
          cat_words=None) -> Tree:
    """A :class:`Tree` from node arrays indexed by the library's node id (root 0).

    ``values`` has one row per library node (only leaf rows are used); ``cat_words`` maps a
    categorical node's library id to its uint32 bitset words."""
    internal, leaves, l_code, r_code = _renumber(np.asarray(left), np.asarray(right),
                                                 np.asarray(is_leaf, bool))
    n = len(internal)
    kind = np.zeros(n, np.uint8)
    begin = np.zeros(n, np.int32)
    end = np.zeros(n, np.int32)
    words = []
    for i, node in enumerate(internal.tolist()):
        if cat_words and node in cat_words:
            kind[i] = DecisionKind.CATEGORICAL
            begin[i] = len(words)
            words.extend(cat_words[node])
            end[i] = len(words)
    return Tree(
        feature=np.asarray(feature)[internal],
        threshold=np.asarray(threshold, np.float64)[internal],
        kind=kind,
        missing_type=np.full(n, MissingType.NAN, np.uint8),
        default_left=np.asarray(default_left, bool)[internal],
        left=l_code, right=r_code,
        leaf_value=np.asarray(values, np.float64)[leaves],
        output=output,
        cat_begin=begin, cat_end=end, cat_words=np.asarray(words, np.uint32),
    )


def _sk_tree(t, values, output=0, missing=True) -> Tree:
    """Tree of a fitted ``sklearn.tree._tree.Tree``; ``missing=False``: NaN always right."""
    left = t.children_left
    is_leaf = left == -1
    dl = (np.asarray(t.missing_go_to_left, bool) if missing
          else np.zeros(t.node_count, bool))
    return _tree(left, t.children_right, is_leaf, t.feature, t.threshold, dl, values, output)


def _check_fitted(model, attr):
    if not hasattr(model, attr):
        raise UnsupportedModelError(f"{type(model).__name__} is not fitted yet; call fit() first")


def _single_output_classifier(model):
    if getattr(model, "n_outputs_", 1) != 1:
        raise UnsupportedModelError(
            f"{type(model).__name__} was fitted on {model.n_outputs_} targets; mloc compiles "
            "single-output classifiers only")


def _forest_or_tree(model) -> tuple[Ensemble, Head]:
    from sklearn.base import is_classifier

    name = type(model).__name__
    estimators = getattr(model, "estimators_", None)
    trees = [model] if estimators is None else list(estimators)
    _check_fitted(trees[0] if trees else model, "tree_")
    classifier = is_classifier(model)
    out = []
    for est in trees:
        t = est.tree_
        if classifier:
            _single_output_classifier(model)
            values = t.value[:, 0, :int(np.atleast_1d(model.n_classes_)[0])]
        else:
            values = t.value[:, :, 0]
        out.append(_sk_tree(t, values))
    width = out[0].leaf_width
    ens = Ensemble(trees=out, n_features=int(model.n_features_in_), n_outputs=width,
                   average=estimators is not None, input_cast="float32", source=name)
    if classifier:
        return ens, Head("proba", name, np.asarray(model.classes_), decision=False)
    return ens, Head("values", name)


def _constant_init(model) -> np.ndarray:
    """The init estimator's raw prediction (constant for the supported inits)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    if isinstance(init, str) and init == "zero":
        return np.zeros(model.n_trees_per_iteration_)
    constant = (isinstance(init, DummyRegressor)
                or (isinstance(init, DummyClassifier)
                    and init.strategy in ("prior", "most_frequent", "constant")))
    if not constant:
        raise UnsupportedModelError(
            f"{type(model).__name__}(init={type(init).__name__}(...)): the init estimator's "
            "prediction depends on the input; mloc compiles init=None (the default) and "
            "init='zero' only")
    # scikit-learn's own code computes the constant, so it is the very same float64 value
    row = np.zeros((1, model.n_features_in_), np.float32)
    return np.asarray(model._raw_predict_init(row), np.float64)[0]


def _gradient_boosting(model) -> tuple[Ensemble, Head]:
    from sklearn.base import is_classifier

    name = type(model).__name__
    _check_fitted(model, "estimators_")
    lr = float(model.learning_rate)
    K = model.estimators_.shape[1]
    trees = []
    for stage in model.estimators_:
        for k, est in enumerate(stage):
            t = est.tree_
            trees.append(_sk_tree(t, lr * t.value[:, 0, 0], output=k, missing=False))
    base = _constant_init(model)
    ens = Ensemble(trees=trees, n_features=int(model.n_features_in_), n_outputs=K,
                   base_score=base, input_cast="float32", source=name)
    if not is_classifier(model):
        return ens, Head("values", name)
    classes = np.asarray(model.classes_)
    if K > 1:
        ens.transform, ens.numpy_exp = "softmax", True
        return ens, Head("multinomial", name, classes)
    scale = 2.0 if model.loss == "exponential" else 1.0
    ens.transform, ens.transform_param = "sigmoid", scale
    return ens, Head("logit", name, classes, scale=scale, predict_ge=True)


def _hist_link(model) -> str:
    from sklearn._loss.link import IdentityLink, LogLink

    link = model._loss.link
    if isinstance(link, IdentityLink):
        return "identity"
    if isinstance(link, LogLink):
        return "exp"
    raise UnsupportedModelError(f"{type(model).__name__}(loss={model.loss!r}): link "
                                f"{type(link).__name__} is not supported")


def _hist_categorical(model):
    """(feature permutation, Ordinal step or None) of a HistGradientBoosting model."""
    n = int(model.n_features_in_)
    is_cat = getattr(model, "is_categorical_", None)
    if is_cat is None or not np.any(is_cat):
        return np.arange(n), None
    is_cat = np.asarray(is_cat, bool)
    # its ColumnTransformer puts the ordinal-encoded categorical columns first
    perm = np.concatenate([np.flatnonzero(is_cat), np.flatnonzero(~is_cat)])
    encoder = model._preprocessor.named_transformers_["encoder"]
    cats = {}
    for f, values in zip(np.flatnonzero(is_cat).tolist(), encoder.categories_):
        values = np.asarray(values)
        if values.dtype.kind not in "biuf":
            raise UnsupportedModelError(
                f"{type(model).__name__}: categorical feature {f} has non-numeric categories "
                f"({values.dtype}); mloc compiles numeric category values only")
        values = values.astype(np.float64)
        cats[f] = values[~np.isnan(values)]
    return perm, Ordinal(cats)


def _hist_gradient_boosting(model) -> tuple[Ensemble, Head, list]:
    from sklearn.base import is_classifier

    name = type(model).__name__
    _check_fitted(model, "_predictors")
    perm, ordinal = _hist_categorical(model)
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    trees = []
    for iteration in model._predictors:
        for k, pred in enumerate(iteration):
            nodes = pred.nodes
            cat_words = {}
            for node in np.flatnonzero(nodes["is_categorical"] & ~nodes["is_leaf"].astype(bool)):
                rec = nodes[node]
                left_set = pred.raw_left_cat_bitsets[rec["bitset_idx"]].astype(np.uint32)
                if rec["missing_go_to_left"]:
                    # categories the model never saw are treated as missing: send them left too
                    left_set = left_set | ~known[f_idx_map[rec["feature_idx"]]].astype(np.uint32)
                cat_words[int(node)] = left_set.tolist()
            feature = perm[nodes["feature_idx"]]
            trees.append(_tree(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64),
                               nodes["is_leaf"].astype(bool), feature, nodes["num_threshold"],
                               nodes["missing_go_to_left"].astype(bool), nodes["value"],
                               output=k, cat_words=cat_words))
    K = int(model.n_trees_per_iteration_)
    base = np.zeros(K) + np.asarray(model._baseline_prediction, np.float64).reshape(K)
    ens = Ensemble(trees=trees, n_features=int(model.n_features_in_), n_outputs=K,
                   base_score=base, input_cast="float64", source=name)
    steps = [ordinal] if ordinal is not None else []
    if not is_classifier(model):
        link = _hist_link(model)
        ens.transform = "exp" if link == "exp" else "identity"
        ens.numpy_exp = True
        return ens, Head("values", name, link=link), steps
    classes = np.asarray(model.classes_)
    if K > 1:
        ens.transform, ens.numpy_exp = "softmax", True
        return ens, Head("multinomial", name, classes), steps
    ens.transform = "sigmoid"
    return ens, Head("logit", name, classes), steps


# ---------------------------------------------------------------------------------------------
# Dispatch


def _core(model) -> tuple[object, Head, list]:
    from sklearn import ensemble as ske
    from sklearn import tree as skt

    if isinstance(model, (skt.DecisionTreeClassifier, skt.DecisionTreeRegressor,
                          ske.RandomForestClassifier, ske.RandomForestRegressor,
                          ske.ExtraTreesClassifier, ske.ExtraTreesRegressor)):
        return (*_forest_or_tree(model), [])
    if isinstance(model, (ske.GradientBoostingClassifier, ske.GradientBoostingRegressor)):
        return (*_gradient_boosting(model), [])
    if isinstance(model, (ske.HistGradientBoostingClassifier, ske.HistGradientBoostingRegressor)):
        return _hist_gradient_boosting(model)
    try:
        lin, head = linear_from_sklearn(model)
    except ValueError as err:
        if "not a supported linear model" not in str(err):
            raise UnsupportedModelError(str(err)) from None
        raise UnsupportedModelError(
            f"{type(model).__name__} is not supported; mloc compiles scikit-learn "
            "DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting*, "
            "HistGradientBoosting*, linear models (LinearRegression, Ridge, Lasso, ElasticNet, "
            "SGD*, LogisticRegression, RidgeClassifier, LinearSVC, SVC(kernel='linear')) and "
            "Pipelines of StandardScaler/MinMaxScaler/MaxAbsScaler ending in one") from None
    return lin, head, []


def is_sklearn_model(model) -> bool:
    """Whether ``model`` is a scikit-learn estimator (the dispatch test for converters).

    Estimators of other libraries that merely follow scikit-learn's API (LightGBM's
    ``LGBM*`` derive from ``BaseEstimator``) are not: they have their own converters."""
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(model, BaseEstimator) and type(model).__module__.startswith("sklearn.")


def convert_sklearn(model) -> SklearnModel:
    """Convert a fitted scikit-learn estimator or ``Pipeline`` (see the module docstring)."""
    from sklearn.pipeline import Pipeline

    if not is_sklearn_model(model):
        raise UnsupportedModelError(f"expected a scikit-learn estimator, got "
                                    f"{type(model).__name__}")
    pre = []
    if isinstance(model, Pipeline):
        *pre, (_, model) = [(n, s) for n, s in model.steps if s not in (None, "passthrough")]
        pre = [s for _, s in pre]
    if getattr(model, "n_features_in_", None) is None:
        raise UnsupportedModelError(f"{type(model).__name__} is not fitted yet; call fit() first")
    n = int(model.n_features_in_)
    try:
        steps = [step_from_sklearn(s, n) for s in pre]
    except ValueError as err:
        raise UnsupportedModelError(str(err)) from None
    core, head, own = _core(model)
    return SklearnModel(core=core, head=head, n_features=n, steps=steps + own,
                        source=type(model).__name__)


def ensemble_from_sklearn(model) -> Ensemble:
    """The :class:`Ensemble` of a fitted scikit-learn tree model.

    Its raw scores are ``decision_function`` (gradient boosting), the class probabilities
    (tree/forest classifiers) or the prediction before the link (regressors); its
    ``transform`` gives the positive-class probability (binary), the class probabilities
    (multiclass) or the prediction.  Use :func:`convert_sklearn` for the class labels and for
    models that need preprocessing.
    """
    conv = convert_sklearn(model)
    if not isinstance(conv.core, Ensemble):
        raise UnsupportedModelError(f"{conv.source} is not a tree model; use convert_sklearn")
    if conv.steps:
        raise UnsupportedModelError(
            f"{conv.source} needs preprocessing before its trees (pipeline scalers or "
            "categorical features); use convert_sklearn, whose steps come first")
    return conv.core


__all__ = ["SklearnModel", "UnsupportedModelError", "convert_sklearn", "ensemble_from_sklearn",
           "is_sklearn_model", "LinearModel"]
