"""Confidence thresholds with a statistical guarantee on agreement.

A cascade answers a row with the approximate model when its top-class probability is at least
the threshold ``t``, and with the full pipeline otherwise. On ``n`` held-out rows, the cascade
disagrees with the full pipeline on ``d(t)`` rows: the confident ones whose approximate class
differs. Agreement is at least ``target`` *with 95% confidence* when the one-sided
Clopper-Pearson lower bound of the agreement rate, from ``n - d(t)`` agreements in ``n``
trials, is at least ``target``.

Many thresholds are tried, so each one's test alone would not hold at 95% for the one picked.
Thresholds are tested as a fixed sequence instead, from the most cautious down, stopping at
the first that fails: d(t) only grows as t falls, the order is fixed before the data is seen,
and fixed-sequence testing keeps the family-wise error at alpha with no correction (the
"learn then test" argument). The lowest threshold that passed is chosen. Across several
candidate feature sets the caller divides alpha among them (Bonferroni).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta


def lower_bound(successes: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower confidence bound of a binomial rate."""
    if n <= 0 or successes <= 0:
        return 0.0
    return float(beta.ppf(alpha, successes, n - successes + 1))


def rows_needed(target: float, alpha: float) -> int:
    """The fewest held-out rows for which full agreement certifies ``target``."""
    # with d = 0 the bound is alpha ** (1 / n)
    return int(np.ceil(np.log(alpha) / np.log(target)))


def allowed_rate(target: float, n: int, alpha: float) -> float:
    """The largest share d/n of ``n`` held-out rows that may disagree while the agreement
    bound still certifies ``target`` (0 when even full agreement cannot)."""
    lo, hi = 0, int(np.floor((1.0 - target) * n))  # the bound is below the point estimate
    if n <= 0 or lower_bound(n, n, alpha) < target:
        return 0.0
    while lo < hi:  # the largest d with lower_bound(n - d, n) >= target (monotone in d)
        mid = (lo + hi + 1) // 2
        if lower_bound(n - mid, n, alpha) >= target:
            lo = mid
        else:
            hi = mid - 1
    return lo / n


def threshold_grid(n_classes: int) -> np.ndarray:
    """Thresholds tried, most cautious first: fine steps near 1, where most cascades live."""
    near_one = 1.0 - np.logspace(-9, -2, 57)
    floor = 1.0 / max(n_classes, 2)
    coarse = np.linspace(0.99, floor, 99 * 2)
    return np.unique(np.concatenate([near_one, coarse]))[::-1]


@dataclass
class ThresholdChoice:
    threshold: float | None  # None: no threshold certifies the target
    confident_fraction: float  # share of rows the approximate model answers
    agreement: float  # point estimate of agreement with the full pipeline
    lower_bound: float  # its one-sided Clopper-Pearson bound
    n: int


def choose_threshold(conf, agree, target: float, alpha: float, n_classes: int) -> ThresholdChoice:
    """The lowest threshold whose agreement bound meets ``target`` (fixed-sequence test).

    ``conf``: approximate top-class probability per held-out row; ``agree``: whether the
    approximate model's class equals the full pipeline's on that row.
    """
    conf = np.asarray(conf, dtype=np.float64)
    agree = np.asarray(agree, dtype=bool)
    n = len(conf)
    conf = np.where(np.isnan(conf), -np.inf, conf)
    best = ThresholdChoice(None, 0.0, 1.0, lower_bound(n, n, alpha), n)
    for t in threshold_grid(n_classes):
        confident = conf >= t
        d = int(np.count_nonzero(confident & ~agree))
        lb = lower_bound(n - d, n, alpha)
        if lb < target:
            break
        best = ThresholdChoice(float(t), float(confident.mean()) if n else 0.0,
                               1.0 - d / n, lb, n)
    return best
