"""What the planner measured and decided, in a form that prints, saves as JSON and loads back.

Costs are seconds per row; ``explain`` prints them in microseconds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class GroupStat:
    name: str
    n_columns: int
    cost: float  # seconds per row, on the planning backend
    importance: float  # mean permutation importance (loss increase)
    importance_std: float


@dataclass
class Candidate:
    groups: list[str]
    budget: float  # fraction of the total group cost the knapsack was allowed
    importance: float  # total importance of the chosen groups
    stage1_cost: float | None = None  # seconds per row of the approximate graph
    threshold: float | None = None  # None: no threshold certifies the target
    confident_fraction: float = 0.0
    agreement: float | None = None  # point estimate on the calibration rows
    agreement_bound: float | None = None  # one-sided 95% Clopper-Pearson lower bound
    expected_cost: float | None = None  # seconds per row of the cascade
    speedup: float | None = None  # full cost / expected cost
    accuracy_full: float | None = None  # user's metric (accuracy) of the full pipeline
    accuracy_cascade: float | None = None  # ... and of the cascade, on the same rows
    topk_ratio: float | None = None  # K' / K certified on held-out rows
    topk_precision: float | None = None  # precision@K on all held-out rows at that ratio
    topk_speedup: float | None = None
    approx_model: str = ""  # how the approximate model was trained (``approx.variants``)
    approx_scores: dict = field(default_factory=dict)  # variant -> coverage on fit rows
    # per variant tried (``approx.Trial`` as a dict): coverage, costs, or why it was skipped
    approx_trials: list = field(default_factory=list)
    topk_model: str = ""  # how the top-K filter's model was trained
    topk_stage1_cost: float | None = None  # seconds per row of the top-K filter
    note: str = ""


@dataclass
class PlanReport:
    pipeline: str
    task: str
    n_classes: int
    accuracy_target: float
    alpha: float
    seed: int
    backend: str
    n_fit: int = 0
    n_importance: int = 0
    n_calibration: int = 0
    full_cost: float = 0.0
    groups: list[GroupStat] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    cascade: int | None = None  # index of the chosen candidate
    threshold: float | None = None
    expected_speedup: float | None = None
    no_cascade: str | None = None  # why no cascade is used (None when one is, or not asked)
    top_k: int | None = None
    topk_candidate: int | None = None
    topk_ratio: float | None = None
    topk_speedup: float | None = None
    no_topk: str | None = None
    planning_seconds: float = 0.0  # wall
    planning_cpu_seconds: float = 0.0  # CPU of this process (all its threads)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PlanReport":
        d = dict(d)
        d["groups"] = [GroupStat(**g) for g in d.get("groups", [])]
        d["candidates"] = [Candidate(**c) for c in d.get("candidates", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    # -- text ---------------------------------------------------------------------------------
    def explain(self) -> str:
        us = 1e6
        lines = [f"plan for {self.pipeline}: {self.task}"
                 + (f" ({self.n_classes} classes)" if self.n_classes else "")
                 + f"; costs measured on the {self.backend} backend, seed {self.seed}",
                 f"  rows: {self.n_fit} fit the approximate models, {self.n_importance} measure "
                 f"importance, {self.n_calibration} calibrate thresholds",
                 f"  full pipeline: {self.full_cost * us:.3f} us/row",
                 "  feature groups (cost us/row, permutation importance +- std over repeats):"]
        width = max([len(g.name) for g in self.groups] + [5])
        for g in self.groups:
            lines.append(f"    {g.name:<{width}}  {g.n_columns:>6} col  {g.cost * us:10.3f} us  "
                         f"{g.importance:+.5f} +- {g.importance_std:.5f}")
        if self.candidates:
            lines.append("  candidates (knapsack on importance under cost budgets):")
        for i, c in enumerate(self.candidates):
            mark = "*" if i == self.cascade else ("k" if i == self.topk_candidate else " ")
            desc = f"   {mark}[{i}] budget {c.budget:.0%}: {{{', '.join(c.groups)}}}"
            if c.approx_model:
                desc += f"; model {c.approx_model}"
                if len(c.approx_scores) > 1 and not c.approx_trials:
                    desc += " (validation coverage " + ", ".join(
                        f"{k} {v:.1%}" for k, v in c.approx_scores.items()) + ")"
            if c.stage1_cost is not None:
                desc += f"; stage 1 {c.stage1_cost * us:.3f} us/row"
            if c.threshold is not None:
                desc += (f"; threshold {c.threshold:.6g}, {c.confident_fraction:.1%} rows confident,"
                         f" agreement {c.agreement:.5f} (95% lower bound {c.agreement_bound:.5f})")
            if c.expected_cost is not None:
                desc += f"; expected {c.expected_cost * us:.3f} us/row ({c.speedup:.2f}x)"
            if c.accuracy_full is not None and c.threshold is not None:
                desc += (f"; accuracy {c.accuracy_full:.4f} full -> {c.accuracy_cascade:.4f} "
                         "cascade")
            if c.topk_ratio is not None:
                if c.topk_model and c.topk_model != c.approx_model:
                    desc += f"; top-K filter model {c.topk_model}"
                    if c.topk_stage1_cost is not None:
                        desc += f" ({c.topk_stage1_cost * us:.3f} us/row)"
                desc += (f"; top-K ratio {c.topk_ratio:.2f} (held-out precision "
                         f"{c.topk_precision:.3f}, {c.topk_speedup:.2f}x)")
            if c.note:
                desc += f"; {c.note}"
            lines.append(desc)
            if c.approx_trials:
                lines.append("        models tried (validation rows): " + "; ".join(
                    _trial(t) for t in c.approx_trials))
        if self.cascade is not None:
            c = self.candidates[self.cascade]
            lines.append(f"  cascade: groups {{{', '.join(c.groups)}}}, threshold "
                         f"{self.threshold:.6g}, expected speedup {self.expected_speedup:.2f}x; "
                         f"agreement >= {self.accuracy_target} with 95% confidence")
        elif self.no_cascade:
            lines.append(f"  no cascade: {self.no_cascade}")
        if self.top_k is not None:
            if self.topk_candidate is not None:
                c = self.candidates[self.topk_candidate]
                lines.append(f"  top-{self.top_k}: filter on {{{', '.join(c.groups)}}}, keeps "
                             f"{self.topk_ratio:.2f} x K candidates, expected speedup "
                             f"{self.topk_speedup:.2f}x on {self.n_calibration}-row batches")
            else:
                lines.append(f"  top-{self.top_k}: exact (no filter: {self.no_topk})")
        lines.append(f"  planned in {self.planning_seconds:.1f} s "
                     f"({self.planning_cpu_seconds:.1f} s CPU)")
        return "\n".join(lines)


def _trial(t: dict) -> str:
    """One line's worth of an ``approx.Trial`` (as a dict)."""
    us = 1e6
    if t.get("note"):
        return f"{t['name']}: {t['note']}"
    bits = []
    if t.get("coverage") is not None:
        bits.append(f"coverage {t['coverage']:.1%}")
    if t.get("stage1_cost") is not None:
        bits.append(f"stage 1 {t['stage1_cost'] * us:.3f} us/row")
    if t.get("cascade_cost") is not None:
        bits.append(f"cascade {t['cascade_cost'] * us:.3f} us/row")
    if t.get("topk_cost") is not None:
        bits.append(f"top-K ratio {t['topk_ratio']:.2f}, {t['topk_cost'] * 1e3:.2f} ms/query")
    return f"{t['name']}: " + ", ".join(bits)
