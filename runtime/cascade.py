"""The staged executor of cascades and top-K filters.

    cp = mloc_ir.compile(predict, train=(columns, labels), cascades=True, top_k=100)
    cp(**columns)                   # stage 1 on every row; unconfident rows through the full pipeline
    idx, scores = cp.top_k(100, **columns)
    print(cp.explain()); cp.save("build/fast"); cp2 = load_cascade("build/fast")

Stage 1 runs the approximate pipeline (compiled like any other) on all rows; its last output
is the approximate model's class probabilities. Rows whose top-class probability is at least
the threshold keep the approximate answer; the others are a *row selection*: the caller's
arguments restricted to those rows (every op is row-wise, so a row's result does not depend
on the other rows) run through the full compiled pipeline, and the results are written back in
row order. With no confident row the call is exactly the full pipeline's; with every row
confident (a single confident row, say) stage 2 is skipped.

Stage 2 recomputes the cheap groups for its rows rather than receiving them from stage 1: the
compiled pipelines are closed units that take the user's arguments, and the planner counts
that cost (cheap groups are cheap by construction).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mloc_ir.errors import InputError, MlocError
from mloc_ir.interpreter import bind_inputs

FORMAT_VERSION = 1
NEVER = math.inf  # the threshold that never approximates


class CascadeLoadError(MlocError):
    """A saved cascade could not be loaded."""


def take_rows(value, rows: np.ndarray):
    """The rows ``rows`` of one argument: a column (array, list, Series), a DataFrame or a dict
    of columns (a DataFrame parameter); scalars pass through unchanged."""
    if hasattr(value, "iloc"):
        return value.iloc[rows]
    if isinstance(value, dict):
        return {k: take_rows(v, rows) for k, v in value.items()}
    if np.ndim(value) == 0:
        return value
    return np.asarray(value)[rows]


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _merge(first, second, rows: np.ndarray, n: int):
    """``first`` with rows ``rows`` replaced by ``second`` (one pipeline output)."""
    a = np.asarray(first)
    b = np.asarray(second)
    if a.ndim == 0 or a.shape[0] != n:
        return second  # not row-wise (a constant output): both stages agree
    out = np.empty(a.shape, dtype=np.result_type(a, b))
    out[...] = a
    out[rows] = b
    return out


class CascadedPipeline:
    """A compiled pipeline with a cascade and/or a top-K filter in front of it.

    ``full``: the exact compiled pipeline; ``approx``: the compiled approximate pipeline (None:
    no cascade) whose output ``confidence_output`` holds class probabilities; ``threshold``:
    rows at least this confident keep the approximate answer (``NEVER``: none do);
    ``topk_approx``: the top-K filter's first stage (None: exact top-K); ``topk_scores``: the
    (full, approximate) scores of the held-out rows, from which the candidate ratio for each
    (k, batch size) is computed (``passes.topk.choose_ratio``); ``topk_ratio``: the ratio the
    planner reported for its own K and held-out batch; ``report``: the planner's
    ``PlanReport``.
    """

    def __init__(self, full, approx=None, *, threshold: float = NEVER,
                 confidence_output: int | None = None, topk_approx=None,
                 topk_ratio: float | None = None, topk_scores=None,
                 topk_precision: float = 0.95, seed: int = 0, report=None):
        if approx is not None and confidence_output is None:
            raise ValueError("a cascade needs the position of its confidence output")
        self.full = full
        self.approx = approx
        self.threshold = float(threshold)
        self.confidence_output = confidence_output
        self.topk_approx = topk_approx
        self.topk_ratio = topk_ratio
        if topk_approx is not None and topk_scores is None:
            raise ValueError("a top-K filter needs the held-out scores it is calibrated on")
        self.topk_scores = topk_scores
        self.topk_precision = topk_precision
        self.seed = seed
        self._ratios: dict = {}
        self.report = report
        self.graph = full.graph
        self.__name__ = getattr(full, "__name__", self.graph.name)
        self.last_stats: dict = {}

    def with_threshold(self, threshold: float) -> "CascadedPipeline":
        """The same cascade with another threshold (``NEVER``: always the full pipeline)."""
        return CascadedPipeline(self.full, self.approx, threshold=threshold,
                                confidence_output=self.confidence_output,
                                topk_approx=self.topk_approx, topk_ratio=self.topk_ratio,
                                topk_scores=self.topk_scores,
                                topk_precision=self.topk_precision, seed=self.seed,
                                report=self.report)

    def _rows(self, args, kwargs) -> int:
        bound = bind_inputs(self.graph, args, kwargs)  # validates like the full pipeline
        return len(next(iter(bound.values()))) if bound else 0

    # -- cascade --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if self.approx is None:
            return self.full(*args, **kwargs)
        n = self._rows(args, kwargs)
        stage1 = _as_tuple(self.approx(*args, **kwargs))
        from passes.planner.models import confidence
        conf = confidence(stage1[self.confidence_output])
        outs = stage1[: len(self.graph.outputs)]
        unsure = np.flatnonzero(~(conf >= self.threshold))  # NaN confidence is unsure
        self.last_stats = {"rows": n, "stage2_rows": int(unsure.size)}
        if unsure.size == 0:
            return outs[0] if len(outs) == 1 else tuple(outs)
        if unsure.size == n:
            return self.full(*args, **kwargs)
        sub = self.full(*[take_rows(a, unsure) for a in args],
                        **{k: take_rows(v, unsure) for k, v in kwargs.items()})
        merged = tuple(_merge(a, b, unsure, n) for a, b in zip(outs, _as_tuple(sub)))
        return merged[0] if len(merged) == 1 else merged

    # -- top-K ----------------------------------------------------------------------------------
    def top_k(self, k: int, *args, **kwargs):
        """(row indices, full-pipeline scores) of the ``k`` highest-scoring rows, best first.

        With a planned filter, the approximate pipeline scores every row and only the
        ``ceil(ratio * k)`` it ranks highest are scored by the full pipeline; without one, every
        row is scored exactly. Ties go to the earlier row.
        """
        from passes.topk import descending_order, top_candidates
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"top_k needs a positive integer k, got {k!r}")
        if len(self.graph.outputs) != 1:
            raise InputError(f"top_k needs a pipeline returning one score per row; "
                             f"{self.graph.name} returns {len(self.graph.outputs)} values")
        n = self._rows(args, kwargs)
        k = min(int(k), n)
        kp = n if self.topk_approx is None or n == 0 else min(n, math.ceil(self.ratio(k, n) * k))
        if kp >= n:
            scores = np.asarray(self.full(*args, **kwargs))
            self._check_scores(scores, n)
            order = descending_order(scores)[:k]
            self.last_stats = {"rows": n, "stage2_rows": n}
            return order, scores[order]
        approx = _as_tuple(self.topk_approx(*args, **kwargs))[0]
        cand = top_candidates(approx, kp)
        scores = np.asarray(self.full(*[take_rows(a, cand) for a in args],
                                      **{key: take_rows(v, cand) for key, v in kwargs.items()}))
        self._check_scores(scores, len(cand))
        order = descending_order(scores)[:k]
        self.last_stats = {"rows": n, "stage2_rows": int(len(cand))}
        return cand[order], scores[order]

    def ratio(self, k: int, n: int) -> float:
        """K'/K of the filter for top-``k`` of ``n`` rows (computed once per (k, n))."""
        from passes.topk import choose_ratio
        key = (int(k), int(n))
        if key not in self._ratios:
            full, approx = self.topk_scores
            self._ratios[key] = choose_ratio(full, approx, k, batch=n,
                                             precision=self.topk_precision, seed=self.seed).ratio
        return self._ratios[key]

    def _check_scores(self, scores, n):
        if scores.ndim != 1 or len(scores) != n:
            raise InputError(f"top_k needs one score per row; {self.graph.name} returned shape "
                             f"{scores.shape}")

    # -- reporting and artifacts ------------------------------------------------------------------
    def explain(self) -> str:
        """Groups, measured cost, importance, chosen set, threshold, expected speedup."""
        head = (f"cascaded pipeline {self.graph.name}: "
                + (f"cascade at threshold {self.threshold:.6g}" if self.approx is not None
                   else "no cascade")
                + (f", top-K filter keeping {self.topk_ratio:.2f} x K" if self.topk_approx
                   is not None else ""))
        body = self.report.explain() if self.report is not None else "(no plan report)"
        return head + "\n" + body

    def save(self, path) -> Path:
        """Write ``path/`` with the full and approximate pipelines and ``cascade.json``; loading
        it back (``load_cascade``) needs no retraining."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.full.save(path / "full")
        if self.approx is not None:
            self.approx.save(path / "approx")
        topk_dir = None
        if self.topk_approx is not None:
            topk_dir = "approx" if self.topk_approx is self.approx else "topk"
            if topk_dir == "topk":
                self.topk_approx.save(path / "topk")
        meta = {
            "format": FORMAT_VERSION,
            "threshold": None if math.isinf(self.threshold) else self.threshold,
            "confidence_output": self.confidence_output,
            "approx": self.approx is not None,
            "topk": topk_dir, "topk_ratio": self.topk_ratio,
            "topk_precision": self.topk_precision, "seed": self.seed,
            "report": self.report.to_dict() if self.report is not None else None,
        }
        if self.topk_scores is not None:
            np.savez(path / "topk_scores.npz", full=self.topk_scores[0],
                     approx=self.topk_scores[1])
        (path / "cascade.json").write_text(json.dumps(meta, indent=1))
        (path / "__init__.py").write_text(_MODULE_TEMPLATE.format(
            name=self.graph.name, source=self.graph.meta.get("source", "?")))
        return path


# The saved folder is an importable module: importing it loads the plan and the object code of
# its pipelines (no LLVM, no planning, no retraining).
_MODULE_TEMPLATE = '''"""{name} with its statistical plan, compiled by mloc from {source}.

Call {name}(...) exactly like the original function (confident rows are answered by the
cascade's approximate model); top_k(k, ...) ranks rows; explain() shows the plan.
"""
from pathlib import Path as _Path

from runtime.cascade import load_cascade as _load_cascade

pipeline = _load_cascade(_Path(__file__).parent)
{name} = pipeline
top_k = pipeline.top_k
explain = pipeline.explain
'''


def load_cascade(path, *, threads: int | None = None) -> CascadedPipeline:
    """Load a cascade written by ``CascadedPipeline.save`` (no planning, no retraining)."""
    from codegen.pipeline import load_pipeline
    from passes.planner.report import PlanReport
    path = Path(path)
    meta_file = path / "cascade.json"
    if not meta_file.is_file():
        raise CascadeLoadError(f"{path} is not a saved cascade: missing cascade.json")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as exc:
        raise CascadeLoadError(f"{meta_file} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CascadeLoadError(f"{path} has format {meta.get('format')!r}; this mloc reads "
                               f"format {FORMAT_VERSION}")
    full = load_pipeline(path / "full", threads=threads)
    approx = load_pipeline(path / "approx", threads=threads) if meta.get("approx") else None
    topk = None
    if meta.get("topk") == "approx":
        topk = approx
    elif meta.get("topk"):
        topk = load_pipeline(path / meta["topk"], threads=threads)
    report = PlanReport.from_dict(meta["report"]) if meta.get("report") else None
    scores = None
    if topk is not None:
        try:
            with np.load(path / "topk_scores.npz") as z:
                scores = (z["full"], z["approx"])
        except (OSError, KeyError, ValueError) as exc:
            raise CascadeLoadError(f"cannot read {path / 'topk_scores.npz'}: {exc}") from None
    threshold = NEVER if meta.get("threshold") is None else float(meta["threshold"])
    return CascadedPipeline(full, approx, threshold=threshold,
                            confidence_output=meta.get("confidence_output"), topk_approx=topk,
                            topk_ratio=meta.get("topk_ratio"), topk_scores=scores,
                            topk_precision=meta.get("topk_precision", 0.95),
                            seed=meta.get("seed", 0), report=report)
