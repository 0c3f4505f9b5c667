"""Permutation importance of feature groups (seeded, repeated).

A group's importance is how much the user's model gets worse when that group's columns are
shuffled across rows (all of the group's columns with the same permutation, so values that
belong together stay together) while every other column keeps its row: the increase of log
loss against the labels for a classifier, of mean squared error for a regressor. Each group is
shuffled ``repeats`` times with permutations drawn from one seeded generator; the mean and the
standard deviation over repeats are reported.

The model is evaluated on the stacked row through the graph's own nodes (stack, transforms,
model), with the feature values computed once and reused.
"""
from __future__ import annotations

import numpy as np

from .evaluate import evaluate, take
from .models import as_probabilities


def loss(info, output, labels) -> float:
    """Log loss (classifier, ``labels`` as class positions) or mean squared error."""
    if info.is_classifier:
        p = as_probabilities(output)
        picked = p[np.arange(len(labels)), labels]
        return float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0))))
    err = np.asarray(output, dtype=np.float64).ravel() - np.asarray(labels, dtype=np.float64)
    return float(np.mean(err * err))


def permutation_importance(graph, target: int, group_parts: list[list[int]], cache: dict,
                           info, labels, *, repeats: int = 5, seed: int = 0, progress=None):
    """(mean, std) arrays of each group's importance; ``cache`` holds inputs and part values.

    ``target`` is the node whose value the loss is taken of (class probabilities for a
    classifier, the prediction for a regressor); ``group_parts[i]`` are the stacked values of
    group ``i``; ``labels`` are class positions (classifier) or targets (regressor).
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    base = loss(info, evaluate(graph, [target], cache)[0], labels)
    means, stds = [], []
    for parts in group_parts:
        increases = []
        for _ in range(repeats):
            perm = rng.permutation(n)
            shuffled = dict(cache)
            for p in parts:
                if p in cache:  # a const part (a column the model never reads, replaced by
                    shuffled[p] = take(cache[p], perm)  # dead feature elimination) has no rows
            increases.append(loss(info, evaluate(graph, [target], shuffled)[0], labels) - base)
        means.append(float(np.mean(increases)))
        stds.append(float(np.std(increases)))
        if progress is not None:
            progress.update(1)
    return np.array(means), np.array(stds)
