"""Training the approximate model: a few ways to fit it, and a choice among them that never
looks at the calibration rows.

A cascade is judged by *agreement with the full pipeline*, not by accuracy against labels, and
its speed comes from how many rows the approximate model answers confidently without
disagreeing. Two levers matter (measured on tweets, word TF-IDF as the cheap group: the
user's logistic regression refitted on labels answered 49% of held-out rows at a certified
0.999; fitted on the full model's probabilities with 64x weaker regularization, 66%):

* **Distillation.** The full model's class probabilities on the fit rows are the targets
  ("soft labels"): each fit row appears once per class, weighted by that class's probability,
  so the approximate model learns where the full model is unsure instead of where the labels
  are noisy. Needs a ``fit`` taking ``sample_weight`` (scikit-learn) or a LightGBM Booster.
* **Regularization.** A model on fewer features can afford weaker regularization (larger
  ``C`` for scikit-learn's linear models); the user's setting was tuned for the full set.

``variants`` lists the trainers tried; ``choose`` fits each on part of the fit rows, scores it
on the rest (the *coverage*: the share of validation rows answered before disagreements exceed
the target's allowance) and refits the winner on all fit rows. The calibration rows, which
certify the threshold, are not touched, so the certificate stays honest.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .models import PlanError, as_probabilities, confidence, default_trainer, is_booster, \
    task_of

#: Multipliers of a scikit-learn linear model's ``C`` tried with distillation.
C_FACTORS = (16.0, 256.0)
#: Share of the fit rows that train each variant while choosing (the rest validate it).
VALIDATION_FRACTION = 0.25
#: Fewest validation rows for a choice among variants to mean anything.
MIN_VALIDATION_ROWS = 200


@dataclass
class Variant:
    """One way to train the approximate model: ``fit(X, labels, probabilities) -> model``."""

    name: str
    fit: Callable


@dataclass
class Choice:
    model: object
    name: str
    scores: dict = field(default_factory=dict)  # variant name -> validation coverage


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


def _sklearn_distilled(model, **params):
    from sklearn.base import clone

    def fit(X, labels, proba):
        est = clone(model).set_params(**params)
        classes = np.asarray(model.classes_)
        Xs, ys, ws = soft_rows(X, proba, classes)
        return est.fit(Xs, ys, sample_weight=ws)
    return fit


def _booster_distilled(model):
    import lightgbm as lgb
    base = default_trainer(model)
    params, rounds = base.params, base.rounds

    def fit(X, labels, proba):
        Xs, ys, ws = soft_rows(X, proba, np.arange(as_probabilities(proba).shape[1]))
        return lgb.train(params, lgb.Dataset(Xs, ys, weight=ws), num_boost_round=rounds)
    return fit


def variants(model, user_trainer=None) -> list[Variant]:
    """The trainers tried for ``model``'s approximate model (the user's alone when given)."""
    if user_trainer is not None:
        return [Variant("approximate_trainer", lambda X, y, p: user_trainer(X, y))]
    labels = default_trainer(model)
    out = [Variant("refit on labels", lambda X, y, p: labels(X, y))]
    if task_of(model)[0] == "regression":
        return out
    if is_booster(model):
        out.append(Variant("distilled", _booster_distilled(model)))
        return out
    if not _accepts_weights(model) or getattr(model, "classes_", None) is None:
        return out
    out.append(Variant("distilled", _sklearn_distilled(model)))
    c = model.get_params().get("C") if hasattr(model, "get_params") else None
    if isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0:
        for f in C_FACTORS:
            out.append(Variant(f"distilled, C x{f:g}", _sklearn_distilled(model, C=c * f)))
    return out


def coverage(conf, agree, target: float) -> float:
    """Share of rows answered, most confident first, before the disagreements exceed what
    ``target`` allows on these rows (the point-estimate analogue of the certified threshold)."""
    n = len(conf)
    if n == 0:
        return 0.0
    allowed = int(math.floor((1.0 - target) * n + 1e-9))  # (1 - 0.9) * 10 is 0.999...98
    order = np.argsort(-np.where(np.isnan(conf), -np.inf, conf), kind="stable")
    bad = np.flatnonzero(~np.asarray(agree, bool)[order])
    return (bad[allowed] if len(bad) > allowed else n) / n


def choose(options: list[Variant], X, labels, proba, full_class, target: float,
           seed: int = 0) -> Choice:
    """Fit each variant on part of the fit rows, keep the one answering most validation rows,
    refit it on all of them. ``proba``/``full_class``: the full model's class probabilities and
    class positions on the fit rows."""
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
    n_val = int(n * VALIDATION_FRACTION)
    if len(options) == 1 or n_val < MIN_VALIDATION_ROWS:
        return Choice(fit(options[0], everything), options[0].name)
    perm = np.random.default_rng(seed).permutation(n)
    val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    scores = {}
    for v in options:
        try:
            m = fit(v, tr)
            p = probabilities(m, X[val])
        except PlanError:
            if v is options[0]:
                raise  # the plain refit must work; a variant that cannot is skipped
            continue
        if p.shape[1] != proba.shape[1]:
            continue  # a class missing from this part of the rows
        agree = np.argmax(p, axis=1) == full_class[val]
        scores[v.name] = coverage(confidence(p), agree, target)
    best = max(options, key=lambda v: scores.get(v.name, -1.0))
    return Choice(fit(best, everything), best.name, scores)
