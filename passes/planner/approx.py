"""Training the approximate model: a few ways to fit it, and a choice among them by expected
cost that never looks at the calibration rows.

A cascade is judged by *agreement with the full pipeline*, not by accuracy against labels, and
its speed comes from how many rows the approximate model answers confidently without
disagreeing -- and from how little the approximate model itself costs. Three levers matter:

* **Distillation.** The full model's class probabilities on the fit rows are the targets
  ("soft labels"): each fit row appears once per class, weighted by that class's probability,
  so the approximate model learns where the full model is unsure instead of where the labels
  are noisy. Needs a ``fit`` taking ``sample_weight`` (scikit-learn) or a LightGBM Booster.
  (Measured on tweets, word TF-IDF as the cheap group: the user's logistic regression refitted
  on labels answered 49% of held-out rows at a certified 0.999; distilled with 64x weaker
  regularization, 66%.)
* **Regularization.** A model on fewer features can afford weaker regularization (larger
  ``C`` for scikit-learn's linear models); the user's setting was tuned for the full set.
* **Size.** On tabular pipelines the features cost next to nothing and a tree ensemble is the
  whole cost: an approximate model with as many trees as the user's can never pay. Tree
  ensembles (LightGBM Booster and scikit-learn API, scikit-learn forests and boosting) also
  get distilled variants with ``TREE_FRACTIONS`` of the user's trees; boosting's learning rate
  is scaled up by the same factor (capped at ``MAX_LEARNING_RATE``) so the fewer trees still
  reach the fit. A distilled model needs far fewer trees than one fit on labels: its targets
  are already smooth.

``variants`` lists the trainers tried; ``choose`` fits each on part of the fit rows and judges
it on the rest (the *validation* rows): its *coverage* (the share of validation rows answered
before disagreements exceed the target's allowance) and, through the caller's ``assess``, what
it costs -- the caller compiles the approximate pipeline around it and times it on the backend
that will run it, so the expected cost per row of a cascade is
``stage 1 + (1 - coverage) x full pipeline`` and that of a top-K query
``rows x stage 1 + K' x full pipeline``. The cheapest variant per use is refitted on all fit
rows. Variants are tried smallest first and a larger one is skipped when even a lower bound
of its cost (``prune``) cannot beat the best so far, which bounds planning time: the
full-size fits are skipped exactly when small models already pay. The calibration rows, which
certify the threshold, are not touched, so the certificate stays honest.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .models import PlanError, as_probabilities, confidence, default_trainer, \
    fit_on_one_thread, is_booster, task_of

#: Multipliers of a scikit-learn linear model's ``C`` tried with distillation.
C_FACTORS = (16.0, 256.0)
#: Share of the fit rows that validate each variant while choosing (the rest train it).
VALIDATION_FRACTION = 0.25
#: Fewest validation rows for a choice among variants to mean anything.
MIN_VALIDATION_ROWS = 200
#: Fractions of the user's number of trees tried for tree ensembles (distilled).
TREE_FRACTIONS = (1 / 20, 1 / 8, 1 / 3)
#: Fewest trees of a smaller variant (fewer hardly fit anything).
MIN_TREES = 4
#: Learning rates are scaled up with fewer trees, to at most this.
MAX_LEARNING_RATE = 0.5
#: LightGBM parameter aliases of the number of rounds (they would override ``num_boost_round``)
_ROUND_ALIASES = ("num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees",
                  "num_round", "num_rounds", "nrounds", "num_boost_round", "n_estimators",
                  "max_iter")
#: ... and of the learning rate
_RATE_ALIASES = ("learning_rate", "shrinkage_rate", "eta")


@dataclass
class Variant:
    """One way to train the approximate model: ``fit(X, labels, probabilities) -> model``.

    ``size`` is a tree ensemble's number of trees relative to the user's (None for other
    models, whose cost the variant does not set): trials run smallest first, and ``prune``
    may bound a tree variant's cost from it before fitting it."""

    name: str
    fit: Callable
    size: float | None = None


@dataclass
class Assessment:
    """What the caller measured for one fitted variant (seconds; None: not asked)."""

    stage1_cost: float | None = None  # per row, the approximate pipeline on its backend
    cascade_cost: float | None = None  # expected per row of a cascade with it
    topk_cost: float | None = None  # expected per top-K query with it as the filter
    topk_ratio: float | None = None  # K'/K it needs on the validation rows


@dataclass
class Trial:
    """One variant's validation result (for the report)."""

    name: str
    size: float | None
    coverage: float | None = None
    stage1_cost: float | None = None
    cascade_cost: float | None = None
    topk_cost: float | None = None
    topk_ratio: float | None = None
    note: str = ""  # why it was skipped


@dataclass
class Choice:
    model: object  # the cascade's approximate model (refitted on all fit rows)
    name: str
    scores: dict = field(default_factory=dict)  # variant name -> validation coverage
    topk_model: object = None  # the top-K filter's model (may be ``model`` itself)
    topk_name: str = ""
    trials: list = field(default_factory=list)  # Trial per variant, in the order tried


def probabilities(model, X) -> np.ndarray:
    """Class probabilities ``(n, k)`` of a fitted approximate model on its input matrix."""
    if is_booster(model):
        return as_probabilities(model.predict(X))
    return as_probabilities(model.predict_proba(X))


def _accepts_weights(model) -> bool:
    try:
        return "sample_weight" in inspect.signature(model.fit).parameters
    except (TypeError, ValueError):
        return False


def soft_rows(X, proba: np.ndarray, classes):
    """(X repeated once per class, that class as label, its probability as weight); rows of
    weight 0 are dropped (some fitters reject them, and they carry nothing)."""
    import scipy.sparse
    proba = as_probabilities(proba)
    n, k = proba.shape
    reps, ys, ws = [], [], []
    for j in range(k):
        keep = np.flatnonzero(proba[:, j] > 0)
        reps.append(X[keep])
        ys.append(np.full(len(keep), classes[j]))
        ws.append(proba[keep, j])
    stack = scipy.sparse.vstack if scipy.sparse.issparse(X) else np.concatenate
    Xs = stack(reps)
    if scipy.sparse.issparse(Xs):
        Xs = Xs.tocsr()
    return Xs, np.concatenate(ys), np.concatenate(ws)


# -- tree ensembles: how many trees, and at what learning rate -----------------------------------

def _sklearn_tree_params(model) -> tuple[str, int, str | None] | None:
    """(parameter holding the number of trees, trees fitted, learning-rate parameter or None)
    of a scikit-learn-API tree ensemble; None for any other model."""
    name = type(model).__name__
    module = type(model).__module__.split(".")[0]
    params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
    if module == "lightgbm" and "n_estimators" in params:
        booster = getattr(model, "booster_", None)
        n = booster.current_iteration() if booster is not None else params["n_estimators"]
        return "n_estimators", int(n), "learning_rate"
    if module != "sklearn":
        return None
    if name.startswith("HistGradientBoosting"):
        return "max_iter", int(getattr(model, "n_iter_", params["max_iter"])), "learning_rate"
    if name.startswith("GradientBoosting"):
        return "n_estimators", int(getattr(model, "n_estimators_", params["n_estimators"])), \
            "learning_rate"
    if name.startswith(("RandomForest", "ExtraTrees")):
        return "n_estimators", len(getattr(model, "estimators_", ())) or params["n_estimators"], \
            None
    return None


def smaller_sizes(trees: int, fractions=TREE_FRACTIONS) -> list[int]:
    """Distinct tree counts below ``trees`` for ``fractions`` of it (at least ``MIN_TREES``)."""
    out = []
    for f in sorted(fractions):
        n = max(MIN_TREES, int(round(trees * f)))
        if n < trees and n not in out:
            out.append(n)
    return out


def scaled_rate(rate: float, trees: int, fewer: int) -> float:
    """The learning rate for ``fewer`` trees doing the work of ``trees`` at ``rate``: scaled
    by ``trees / fewer``, capped at ``MAX_LEARNING_RATE`` (never below the user's own)."""
    if rate <= 0:
        return float(rate)
    return float(min(rate * trees / fewer, max(rate, MAX_LEARNING_RATE)))


def _booster_rate(params: dict) -> float:
    for key in _RATE_ALIASES:
        if key in params:
            return float(params[key])
    return 0.1  # LightGBM's default


# -- trainers --------------------------------------------------------------------------------------

def _sklearn_distilled(model, **params):
    from sklearn.base import clone

    def fit(X, labels, proba):
        est = clone(model).set_params(**params)
        classes = np.asarray(model.classes_)
        Xs, ys, ws = soft_rows(X, proba, classes)
        return fit_on_one_thread(est, Xs, ys, sample_weight=ws)
    return fit


def _booster_distilled(model, rounds: int | None = None):
    """Distillation into a Booster with the user's parameters and ``rounds`` trees (default:
    as many as the user's, at the user's learning rate; fewer at a scaled-up rate)."""
    import lightgbm as lgb
    base = default_trainer(model)
    params = {k: v for k, v in base.params.items() if k not in _ROUND_ALIASES}
    if rounds is not None and rounds != base.rounds:
        rate = _booster_rate(params)
        for key in _RATE_ALIASES:
            params.pop(key, None)
        params["learning_rate"] = scaled_rate(rate, base.rounds, rounds)
    rounds = base.rounds if rounds is None else rounds

    def fit(X, labels, proba):
        Xs, ys, ws = soft_rows(X, proba, np.arange(as_probabilities(proba).shape[1]))
        return lgb.train(params, lgb.Dataset(Xs, ys, weight=ws), num_boost_round=rounds)
    return fit


def _booster_refit(model, rounds: int):
    """Refit on labels with ``rounds`` trees at a scaled-up learning rate (regressors)."""
    import lightgbm as lgb
    base = default_trainer(model)
    params = {k: v for k, v in base.params.items()
              if k not in _ROUND_ALIASES and k not in _RATE_ALIASES}
    params["learning_rate"] = scaled_rate(_booster_rate(base.params), base.rounds, rounds)

    def fit(X, labels, proba):
        return lgb.train(params, lgb.Dataset(X, np.asarray(labels)), num_boost_round=rounds)
    return fit


def _sklearn_refit(model, **params):
    from sklearn.base import clone

    def fit(X, labels, proba):
        return fit_on_one_thread(clone(model).set_params(**params), X, np.asarray(labels))
    return fit


def _size_params(model, count_param: str, trees: int, rate_param: str | None, n: int) -> dict:
    params = {count_param: n}
    if rate_param is not None:
        params[rate_param] = scaled_rate(model.get_params()[rate_param], trees, n)
    return params


def _tree_label(n: int, trees: int) -> str:
    return f"{n} of {trees} trees"


def variants(model, user_trainer=None, tree_fractions=TREE_FRACTIONS) -> list[Variant]:
    """The trainers tried for ``model``'s approximate model (the user's alone when given).

    The first is always the plain refit on labels with the user's settings."""
    if user_trainer is not None:
        return [Variant("approximate_trainer", lambda X, y, p: user_trainer(X, y))]
    labels = default_trainer(model)
    regression = task_of(model)[0] == "regression"
    trees = labels.rounds if is_booster(model) else _sklearn_tree_params(model)
    full = None if trees is None else 1.0  # a tree ensemble's variants have sizes
    out = [Variant("refit on labels", lambda X, y, p: labels(X, y), full)]
    if is_booster(model):
        trees = labels.rounds
        if regression:  # nothing to distil; smaller refits still make cheaper top-K filters
            out += [Variant(f"refit on labels, {_tree_label(n, trees)}", _booster_refit(model, n),
                            n / trees) for n in smaller_sizes(trees, tree_fractions)]
            return out
        out.append(Variant("distilled", _booster_distilled(model), full))
        out += [Variant(f"distilled, {_tree_label(n, trees)}", _booster_distilled(model, n),
                        n / trees) for n in smaller_sizes(trees, tree_fractions)]
        return out
    if regression:
        if trees is not None:
            param, count, rate = trees
            out += [Variant(f"refit on labels, {_tree_label(n, count)}",
                            _sklearn_refit(model, **_size_params(model, param, count, rate, n)),
                            n / count) for n in smaller_sizes(count, tree_fractions)]
        return out
    if not _accepts_weights(model) or getattr(model, "classes_", None) is None:
        return out
    out.append(Variant("distilled", _sklearn_distilled(model), full))
    if trees is not None:
        param, count, rate = trees
        out += [Variant(f"distilled, {_tree_label(n, count)}",
                        _sklearn_distilled(model, **_size_params(model, param, count, rate, n)),
                        n / count) for n in smaller_sizes(count, tree_fractions)]
    c = model.get_params().get("C") if hasattr(model, "get_params") else None
    if isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0:
        for f in C_FACTORS:
            out.append(Variant(f"distilled, C x{f:g}", _sklearn_distilled(model, C=c * f)))
    return out


# -- the choice ------------------------------------------------------------------------------------

def coverage(conf, agree, target: float, allowed_rate: float | None = None) -> float:
    """Share of rows answered, most confident first, before the disagreements exceed what
    ``target`` allows on these rows (the point-estimate analogue of the certified threshold).

    ``allowed_rate``: the share of rows that may disagree (default ``1 - target``); the
    certificate tolerates fewer than ``1 - target`` on a finite number of calibration rows
    (``threshold.allowed_rate``), and coverage at that rate predicts the certified one."""
    n = len(conf)
    if n == 0:
        return 0.0
    rate = 1.0 - target if allowed_rate is None else allowed_rate
    allowed = int(math.floor(rate * n + 1e-9))  # (1 - 0.9) * 10 is 0.999...98
    order = np.argsort(-np.where(np.isnan(conf), -np.inf, conf), kind="stable")
    bad = np.flatnonzero(~np.asarray(agree, bool)[order])
    return (bad[allowed] if len(bad) > allowed else n) / n


def split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(training, validation) positions of ``n`` fit rows, or None when too few validate."""
    n_val = int(n * VALIDATION_FRACTION)
    if n_val < MIN_VALIDATION_ROWS:
        return None
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _best(trials: list[Trial], key) -> Trial | None:
    scored = [t for t in trials if key(t) is not None]
    return min(scored, key=key) if scored else None


def choose(options: list[Variant], X, labels, proba, full_class, target: float,
           seed: int = 0, assess: Callable | None = None, prune: Callable | None = None,
           want_cascade: bool = True, want_topk: bool = False,
           allowed_rate: float | None = None, n_validate: int | None = None) -> Choice:
    """Fit each variant on part of the fit rows, judge it on the rest, refit the cheapest on
    all of them. ``proba``/``full_class``: the full model's class probabilities and class
    positions on the fit rows (None for a regressor: no coverage, top-K only).

    ``assess(variant, model, validation_positions, coverage) -> Assessment`` measures a fitted
    variant (costs in seconds); without it the variant answering most validation rows wins.
    ``prune(variant, trials so far) -> str | None`` may skip a variant before it is fitted
    (the reason is reported). ``n_validate``: only the first rows may validate (the rest,
    unlabelled rows, always train). The cascade's model is the one with the
    lowest expected cost per row, the top-K filter's the one with the lowest expected query
    cost (``want_cascade`` / ``want_topk``: which are asked for).
    """
    def fit(v, rows):
        try:
            return v.fit(X[rows], labels[rows], None if proba is None else proba[rows])
        except PlanError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the user's trainer or the model's own fit
            raise PlanError(f"fitting the approximate model on {len(rows)} rows x {X.shape[1]} "
                            f"columns ({v.name}) failed: {type(exc).__name__}: {exc}") from exc

    n = X.shape[0]
    everything = np.arange(n)
    n_val_pool = n if n_validate is None else min(int(n_validate), n)
    parts = split(n_val_pool, seed) if len(options) > 1 else None
    if parts is None:
        m = fit(options[0], everything)
        return Choice(m, options[0].name, topk_model=m, topk_name=options[0].name)
    tr, val = parts
    tr = np.concatenate([tr, np.arange(n_val_pool, n)])
    trials: list[Trial] = []
    # smallest first: they bound the rest (stable: otherwise in the given order)
    order = sorted(options, key=lambda v: 1.0 if v.size is None else v.size)
    for v in order:
        trial = Trial(v.name, v.size)
        trials.append(trial)
        if prune is not None:
            reason = prune(v, [t for t in trials[:-1] if t.note == ""])
            if reason:
                trial.note = reason
                continue
        try:
            m = fit(v, tr)
            p = probabilities(m, X[val]) if proba is not None else None
        except PlanError as exc:
            if v is options[0]:
                raise  # the plain refit must work; a variant that cannot is skipped
            trial.note = f"failed: {exc}"
            continue
        if p is not None:
            if p.shape[1] != as_probabilities(proba).shape[1]:
                trial.note = "a class is missing from its training rows"
                continue
            agree = np.argmax(p, axis=1) == full_class[val]
            trial.coverage = coverage(confidence(p), agree, target, allowed_rate)
        if assess is not None:
            a = assess(v, m, val, trial.coverage)
            trial.stage1_cost, trial.cascade_cost = a.stage1_cost, a.cascade_cost
            trial.topk_cost, trial.topk_ratio = a.topk_cost, a.topk_ratio
    done = [t for t in trials if t.note == ""]
    if not done:  # every variant failed or was skipped (cannot happen with options[0] tried)
        raise PlanError("no way of training the approximate model worked: " +
                        "; ".join(f"{t.name}: {t.note}" for t in trials))
    by_name = {v.name: v for v in options}
    coverage_best = max(done, key=lambda t: -1.0 if t.coverage is None else t.coverage)
    cascade_pick = (_best(done, lambda t: t.cascade_cost) if want_cascade else None) \
        or coverage_best
    topk_pick = (_best(done, lambda t: t.topk_cost) if want_topk else None) or cascade_pick
    refits: dict[str, object] = {}
    for pick in (cascade_pick, topk_pick):
        if pick.name not in refits:
            refits[pick.name] = fit(by_name[pick.name], everything)
    scores = {t.name: t.coverage for t in done if t.coverage is not None}
    return Choice(refits[cascade_pick.name], cascade_pick.name, scores,
                  refits[topk_pick.name], topk_pick.name, trials)
