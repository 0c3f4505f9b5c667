"""Top-K filter: how many candidates the approximate model must keep.

A top-K query returns the K rows with the highest scores of the full pipeline. The filter
scores every row with a cascade's approximate graph (see ``passes.cascade``; same rewrite,
without the confidence output), keeps the K' = ceil(r * K) rows it ranks highest, scores only
those with the full pipeline and returns their top K.

The returned set holds exactly the true top-K rows that survived the filter (any true top-K
row among the candidates outranks every other candidate), so precision@K is the share of true
top-K rows whose approximate rank is below K'. The ratio ``r`` is chosen on held-out rows for the query's own K and batch size N: bootstrap
batches of N rows are drawn from the held-out rows, and in each the smallest K' reaching the
precision target is read off the approximate ranks of the true top K. Those K' scatter like a
fresh batch's would if the held-out rows were the whole population; they are only a sample of
it, which adds the held-out estimate's own error (variance N/n times a batch's for n held-out
rows). Measured on synthetic data, the plain 95% quantile covered fresh batches far less often
than 95%, so the spread above the median is widened by sqrt(1 + N/n) (a normal-approximation
prediction bound): K' = median + sqrt(1 + N/n) * (q - median), q the ``confidence``
quantile. This is an approximation, not a guarantee: precision@K of a batch hinges on a few
rows, and its distribution has a heavy tail.

The runtime keeps the held-out scores and computes the ratio for each (K, N) it is asked.

Ties are broken by row position in both rankings, the same rule the runtime uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class RatioChoice:
    ratio: float  # K' / K
    k: int
    n: int  # batch size the ratio is for
    precision: float  # target
    confidence: float  # share of resamples meeting it
    achieved: float  # share of bootstrap batches meeting it at the chosen ratio
    heldout_precision: float  # precision@K on all held-out rows at the chosen ratio


def descending_order(scores) -> np.ndarray:
    """Row positions by score, highest first; ties by position; NaN last."""
    s = np.asarray(scores, dtype=np.float64)
    key = np.where(np.isnan(s), np.inf, -s)
    return np.argsort(key, kind="stable")


def top_candidates(scores, kp: int) -> np.ndarray:
    """Positions of the ``kp`` highest ``scores`` (ties by position), in ascending position."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    if kp >= n:
        return np.arange(n)
    key = np.where(np.isnan(s), np.inf, -s)
    # argpartition is O(n); the boundary's ties are settled by position below
    part = np.argpartition(key, kp - 1)
    cut = key[part[kp - 1]]
    strict = np.flatnonzero(key < cut)
    tied = np.flatnonzero(key == cut)[: kp - len(strict)]
    return np.sort(np.concatenate([strict, tied]))


def needed_candidates(full, approx, k: int, precision: float) -> int:
    """The fewest approximate top rows that contain ``ceil(precision * k)`` of the true top k.

    One sort per call (this runs once per bootstrap batch): a row's approximate rank is the
    number of rows with a higher score plus the tied ones at earlier positions."""
    n = len(full)
    k = min(k, n)
    hits = math.ceil(precision * k - 1e-12)
    if hits <= 0:
        return 0
    true_top = top_candidates(full, k)
    a = np.asarray(approx, dtype=np.float64)
    key = np.where(np.isnan(a), np.inf, -a)  # ascending key: best first, NaN last
    ordered = np.sort(key)
    mine = key[true_top]
    rank = np.searchsorted(ordered, mine, "left")
    tied = np.flatnonzero(np.searchsorted(ordered, mine, "right") - rank > 1)
    for j in tied:  # ties go to the earlier row
        rank[j] += np.count_nonzero(key[: true_top[j]] == mine[j])
    return int(np.partition(rank, hits - 1)[hits - 1]) + 1


def choose_ratio(full_scores, approx_scores, k: int, *, batch: int | None = None,
                 precision: float = 0.95, confidence: float = 0.95, resamples: int = 200,
                 seed: int = 0) -> RatioChoice:
    """The candidate ratio r for top-``k`` of ``batch``-row batches (default: as many rows as
    the held-out scores), from held-out scores (see the module docstring)."""
    full = np.asarray(full_scores, dtype=np.float64)
    approx = np.asarray(approx_scores, dtype=np.float64)
    n = len(full)
    if n == 0 or k <= 0:
        raise ValueError("choose_ratio needs held-out rows and k >= 1")
    batch = n if batch is None else int(batch)
    k = min(k, batch)
    rng = np.random.default_rng(seed)
    need = np.empty(resamples, dtype=np.int64)
    for b in range(resamples):
        rows = rng.integers(0, n, batch)
        need[b] = needed_candidates(full[rows], approx[rows], k, precision)
    mid = float(np.median(need))
    q = float(np.quantile(need, confidence, method="higher"))
    kp = math.ceil(mid + math.sqrt(1.0 + batch / n) * (q - mid))
    kp = min(max(kp, k), batch)
    achieved = float(np.mean(need <= kp))
    held = precision_at(full, approx, min(k, n), min(n, math.ceil(kp / k * min(k, n))))
    return RatioChoice(kp / k, k, batch, precision, confidence, achieved, held)


def precision_at(full, approx, k: int, kp: int) -> float:
    """precision@k of the filter keeping the ``kp`` rows ``approx`` ranks highest."""
    true_top = set(descending_order(full)[:k].tolist())
    cand = top_candidates(approx, kp)
    return len(true_top.intersection(cand.tolist())) / k
