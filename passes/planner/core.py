"""The planner: from the user's graph and labelled rows to a cascade and a top-K filter.

Steps (each measured, each reported by ``PlanReport.explain``):

1. Rows are split once, seeded: *calibration* rows choose thresholds and top-K ratios and
   are used for nothing else, so the agreement bound holds for them; every other row is a
   *fit* row (approximate models, ``approx.choose``'s validation), and some of those also
   measure group importance (of the user's model, which no fit row trained).
   The bound holds for rows like the calibration rows: they must not be rows the user's
   model was trained on (its answers there are surer than on the rows it will serve).
2. Feature groups (``mloc_ir.groups``) and their cost per row on the backend that will run
   them; the full pipeline's cost on the same rows.
3. Permutation importance of each group for the user's model.
4. Candidate sets: knapsack on importance under several cost budgets.
5. Per candidate: an approximate model on the chosen groups (the user's family, refit on
   labels or distilled from the full model's probabilities, chosen on fit rows by
   ``approx.choose``; or ``approximate_trainer``), its approximate graph
   (``passes.cascade``), the lowest confidence threshold certifying ``accuracy_target`` (``threshold``; alpha split
   over candidates), its measured stage-1 cost, and the expected cost per row counting
   everything a row pays: stage 1 for all rows, the full pipeline again for unconfident rows.
   With ``top_k``, the candidate ratio K'/K (``passes.topk``) and the expected cost of a query.
6. The cheapest candidate wins when it beats the full pipeline by ``min_speedup``; otherwise
   no cascade (no filter).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from mloc_ir.graph import Node
from mloc_ir.groups import feature_groups, model_input_parts
from mloc_ir.interpreter import run_node
from mloc_ir.ops import OPS

from .. import topk as topk_mod
from ..cascade import approximate_graph, chosen_parts, stack_type, subgraph, transform_chain, \
    with_confidence
from . import approx as approx_mod
from . import cost as cost_mod
from .evaluate import bind, evaluate, take, unbind
from .importance import permutation_importance
from .knapsack import DEFAULT_BUDGETS, candidate_sets
from .models import PlanError, as_probabilities, confidence, find_model, predicted_class, \
    task_of
from .report import Candidate, GroupStat, PlanReport
from .threshold import allowed_rate, choose_threshold, rows_needed

ALPHA = 0.05  # 95% confidence, for the agreement bound
#: A tree variant with ``size`` x the user's trees is taken to cost at least this share of
#: ``size`` x the user's model's cost per row (a lower bound used to skip fitting it; trees of
#: the same number of leaves on fewer features are about as deep, so about as costly)
TREE_COST_FLOOR = 0.5
#: ... and this share of the cost per tree measured between two smaller variants
TREE_COST_FLOOR_MEASURED = 0.8


@dataclass
class Planned:
    """The planner's result: the report and the approximate graphs the runtime needs."""

    report: PlanReport
    cascade_graph: Any = None  # approximate graph of the chosen cascade
    cascade_runner: Any = None  # its compiled pipeline (when costs were measured compiled)
    confidence_output: int | None = None
    threshold: float | None = None
    topk_graph: Any = None
    topk_runner: Any = None
    topk_ratio: float | None = None
    topk_scores: tuple | None = None  # (full, approximate) scores of the calibration rows


#: The largest share of the planning rows taken for calibration when the configured share is
#: too small to certify the accuracy target (the rest fit the approximate models).
MAX_CALIBRATION_SHARE = 0.7


@dataclass
class Settings:
    cascades: bool = True
    accuracy_target: float = 0.999
    top_k: int | None = None
    approximate_trainer: Callable | None = None
    seed: int = 0
    backend: str = "compiled"
    threads: int | None = None
    calibration_fraction: float = 0.5
    importance_rows: int = 2000
    repeats: int = 5
    budgets: tuple = DEFAULT_BUDGETS
    min_speedup: float = 1.05
    timing_rows: int = 2000
    tree_fractions: tuple = approx_mod.TREE_FRACTIONS
    topk_precision: float = 0.95
    progress: bool | None = None


def check_settings(s: Settings) -> None:
    """Every user-causable mistake in the settings, with a clear message."""
    if not (0.0 < s.accuracy_target < 1.0):
        raise PlanError(f"accuracy_target must be between 0 and 1 (exclusive), got "
                        f"{s.accuracy_target!r}")
    if s.top_k is not None and (isinstance(s.top_k, bool) or not isinstance(s.top_k, (int, np.integer))
                                or s.top_k < 1):
        raise PlanError(f"top_k must be a positive integer or None, got {s.top_k!r}")
    if s.approximate_trainer is not None and not callable(s.approximate_trainer):
        raise PlanError("approximate_trainer must be a function (X, y) -> fitted model, got "
                        f"{type(s.approximate_trainer).__name__}")
    if s.backend not in cost_mod.BACKENDS:
        raise PlanError(f"unknown cost backend {s.backend!r}; one of {', '.join(cost_mod.BACKENDS)}")
    if not (0.0 < s.calibration_fraction < 1.0):
        raise PlanError("calibration_fraction must be between 0 and 1")
    fr = s.tree_fractions
    if not isinstance(fr, (tuple, list)) or not all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and 0.0 < f < 1.0
            for f in fr):
        raise PlanError("tree_fractions must be a tuple of fractions of the model's trees, each "
                        f"between 0 and 1 (exclusive; () for none), got {fr!r}")


def _check_train(graph, train):
    if not isinstance(train, tuple) or len(train) != 2:
        raise PlanError("train must be a pair (columns, labels): columns a dict of the "
                        f"pipeline's arguments ({', '.join(p.name for p in graph.params)}), labels "
                        "one per row")
    columns, labels = train
    if not hasattr(columns, "keys"):
        raise PlanError(f"train[0] must be a dict of the pipeline's arguments, got "
                        f"{type(columns).__name__}")
    labels = np.asarray(labels.to_numpy() if hasattr(labels, "to_numpy") else labels)
    if labels.ndim != 1:
        raise PlanError(f"labels must be one value per row, got shape {labels.shape}")
    bound = bind(graph, {k: columns[k] for k in columns.keys()})
    n = len(next(iter(bound.values()))) if bound else 0
    if len(labels) != n:
        raise PlanError(f"train has {n} rows of inputs but {len(labels)} labels")
    return bound, labels, n


def _check_graph(graph, s: Settings, info) -> None:
    opaque = [n.name + (f" (not inlined: {n.attrs['not_inlined']})"
                        if n.attrs.get("not_inlined") else "")
              for n in graph.nodes() if not OPS[n.op].row_wise]
    if opaque:
        raise PlanError(f"{graph.name} has opaque Python calls ({', '.join(opaque)}) that run on "
                        "the whole batch, so rows cannot be split between stages")
    if s.cascades:
        if not info.is_classifier:
            raise PlanError(f"cascades need a classifier; {info.name} "
                            f"({type(info.model).__name__}) is a regression model (top_k= "
                            "works for score pipelines)")
        for o in graph.outputs:
            if graph[o].type.shape not in ("col", "row", "scalar"):
                raise PlanError(f"{graph.name} returns %{graph[o].name}, a {graph[o].type} value; "
                                "cascades merge dense columns and rows only")
    if s.top_k is not None:
        if len(graph.outputs) != 1 or graph[graph.outputs[0]].type.shape != "col" or \
                graph[graph.outputs[0]].type.dtype not in ("f64", "f32", "i64", "bool"):
            raise PlanError(f"top_k needs a pipeline returning one numeric score per row; "
                            f"{graph.name} returns "
                            + ", ".join(str(graph[o].type) for o in graph.outputs))


def _fit_approximate(graph, info, parts, chain, values, labels, fit_full, s: Settings,
                     measure=None, allowed=None):
    """Refitted transforms and the approximate model (``approx.Choice``) on the fit rows'
    chosen columns; ``fit_full``: the full model's (probabilities, classes) there.
    ``measure(transforms) -> (assess, prune)``: the cost measurements ``approx.choose`` uses;
    ``allowed``: the disagreement rate the certificate will tolerate."""
    node = Node(-1, "approx_X", "stack", tuple(parts), {}, stack_type(graph, parts))
    with np.errstate(all="ignore"):
        X = run_node(node, [values[p] for p in parts])
    if hasattr(X, "tocsr") and not isinstance(X, np.ndarray):
        X = X.tocsr()  # row selections while choosing
    fitted = []
    for tid in chain:
        from sklearn.base import clone
        t = clone(graph[tid].attrs["transformer"].obj).fit(X)
        X = t.transform(X)
        fitted.append(t)
    options = approx_mod.variants(info.model, s.approximate_trainer, s.tree_fractions)
    assess, prune = measure(fitted) if measure is not None else (None, None)
    proba, classes = fit_full if fit_full is not None else (None, None)
    choice = approx_mod.choose(options, X, labels, proba, classes, s.accuracy_target,
                               seed=s.seed, assess=assess, prune=prune,
                               want_cascade=s.cascades and fit_full is not None,
                               want_topk=s.top_k is not None, allowed_rate=allowed)
    _check_approx_model(info, choice.model)
    if choice.topk_model is not choice.model:
        _check_approx_model(info, choice.topk_model)
    return choice, fitted


def _check_approx_model(info, model) -> None:
    if not info.is_classifier:
        return
    task, k, classes = task_of(model)
    if task == "regression":
        raise PlanError(f"the approximate model ({type(model).__name__}) is not a classifier")
    if k != info.n_classes or (classes is not None and info.classes is not None
                               and not np.array_equal(classes, info.classes)):
        raise PlanError(f"the approximate model knows classes "
                        f"{classes.tolist() if classes is not None else list(range(k))}, the "
                        f"pipeline's model {info.classes.tolist() if info.classes is not None else list(range(info.n_classes))}"
                        "; every class must appear in the training rows")


def _same_shape(full, approx) -> bool:
    a, b = np.asarray(full), np.asarray(approx)
    return a.shape == b.shape


def check_request(graph, train, s: Settings) -> None:
    """Every check ``plan`` makes before measuring anything (cheap)."""
    check_settings(s)
    info = find_model(graph)
    _check_graph(graph, s, info)
    _bound, labels, n = _check_train(graph, train)
    if n < 20:
        raise PlanError(f"train has {n} rows; planning needs held-out rows (thousands for an "
                        f"accuracy target of {s.accuracy_target})")
    if info.is_classifier:
        info.label_index(labels)


def plan(graph, train, settings: Settings, full_runner=None) -> Planned:
    """Plan a cascade and/or a top-K filter for ``graph`` (a verified, optimized Graph).

    ``full_runner`` is the compiled full pipeline when it exists already (its cost is what a
    cascade must beat); it is compiled here otherwise.
    """
    from tqdm.auto import tqdm

    s = settings
    check_settings(s)
    t_start = (time.perf_counter(), time.process_time())
    info = find_model(graph)
    _check_graph(graph, s, info)
    bound, labels, n = _check_train(graph, train)
    report = PlanReport(graph.name, info.task, info.n_classes, s.accuracy_target, ALPHA, s.seed,
                        s.backend, top_k=s.top_k)
    if n < 20:
        raise PlanError(f"train has {n} rows; planning needs held-out rows (thousands for an "
                        f"accuracy target of {s.accuracy_target})")
    label_pos = info.label_index(labels) if info.is_classifier else labels.astype(np.float64)

    # 1. split rows
    rng = np.random.default_rng(s.seed)
    perm = rng.permutation(n)
    n_cal = int(n * s.calibration_fraction)
    # a share too small to certify the target even with no disagreement wastes the plan:
    # take more calibration rows when enough remain to fit on (the bound, not the share,
    # is what keeps the guarantee)
    need = rows_needed(s.accuracy_target, ALPHA / max(len(s.budgets), 1))
    if n_cal < need:
        n_cal = max(n_cal, min(int(1.5 * need), int(MAX_CALIBRATION_SHARE * n)))
    cal, rest = np.sort(perm[:n_cal]), perm[n_cal:]
    n_imp = min(s.importance_rows, len(rest))
    # importance is the user's model's, so its rows may also fit approximate models
    imp, fit = np.sort(rest[:n_imp]), np.sort(rest)
    report.n_fit, report.n_importance, report.n_calibration = len(fit), len(imp), len(cal)

    # 2. groups, part values
    first = info.nodes[0]
    groups = feature_groups(graph, first)
    parts = model_input_parts(graph, first)
    group_parts = [[p for p, cols in parts if set(cols) <= set(g.columns)] for g in groups]
    usable = [i for i, gp in enumerate(group_parts) if any(graph[p].op != "const" for p in gp)]
    part_ids = [p for p, _ in parts if graph[p].op != "const"]
    bar = tqdm(total=len(groups) * 2 + 2, desc=f"mloc plan {graph.name}", unit="step",
               disable=(None if s.progress is None else not s.progress), leave=False)
    try:
        values = dict(zip(part_ids, evaluate(graph, part_ids, bound)))
        cache_all = {**bound, **values}
        bar.update(1)

        def rows_of(idx):
            return {k: take(v, idx) for k, v in cache_all.items()}

        # 3. costs, timed on fit rows (no choice looks at the calibration rows)
        timing = np.sort(rest[: s.timing_rows])
        kw_time = unbind(graph, {k: take(v, timing) for k, v in bound.items()})
        if full_runner is None or s.backend != "compiled":
            full_runner = cost_mod.runner(graph, s.backend, s.threads)
        report.full_cost = cost_mod.positive(
            cost_mod.seconds_per_row(full_runner, kw_time, len(timing)))
        over = cost_mod.overhead_graph(graph)
        overhead = cost_mod.measure(over, kw_time, len(timing), s.backend, s.threads) if over else 0.0
        costs = []
        for g, gp in zip(groups, group_parts):
            c = cost_mod.measure(subgraph(graph, gp), kw_time, len(timing), s.backend, s.threads)
            costs.append(cost_mod.positive(c - overhead))
            bar.update(1)

        # 4. importance (full model, importance rows)
        probe, conf_out = with_confidence(graph) if info.is_classifier else (graph, None)
        target = probe.outputs[conf_out] if info.is_classifier else first
        imp_mean, imp_std = permutation_importance(
            probe, target, group_parts, rows_of(imp), info, label_pos[imp], repeats=s.repeats,
            seed=s.seed, progress=bar)
        report.groups = [GroupStat(g.name, len(g.columns), costs[i], float(imp_mean[i]),
                                   float(imp_std[i])) for i, g in enumerate(groups)]

        if len(usable) < 2:
            reason = (f"the model reads {len(usable)} feature group(s); an approximate model "
                      "needs a proper subset of at least two")
            report.no_cascade = reason if s.cascades else None
            report.no_topk = reason if s.top_k is not None else None
            _finish(report, t_start)
            return Planned(report)

        # 5. candidates
        sub_costs = [costs[i] for i in usable]
        sub_imp = [imp_mean[i] for i in usable]
        cands = [(frac, [usable[j] for j in chosen])
                 for frac, chosen in candidate_sets(sub_costs, sub_imp, s.budgets)]
        bar.total = bar.n + 1 + len(cands)
        bar.refresh()
        cal_cache = rows_of(cal)
        full_cal = evaluate(probe, probe.outputs, cal_cache)
        full_class = predicted_class(full_cal[conf_out]) if info.is_classifier else None
        bar.update(1)
        # the full pipeline's answers on the fit rows: to distil from, to agree with, and the
        # scores a top-K filter is judged against while choosing its model
        fit_cache = rows_of(fit)
        full_fit = evaluate(probe, probe.outputs, fit_cache)
        ctx = _Context(graph=graph, info=info, s=s, chain=transform_chain(graph, first)[0],
                       fit_values={p: take(values[p], fit) for p in part_ids},
                       fit_labels=labels[fit], fit_cache=fit_cache,
                       fit_scores=(np.asarray(full_fit[0], np.float64)
                                   if s.top_k is not None else None),
                       fit_full=((as_probabilities(full_fit[conf_out]),
                                  predicted_class(full_fit[conf_out]))
                                 if info.is_classifier else None),
                       cal_cache=cal_cache, full_cal=full_cal, full_class=full_class,
                       label_pos_cal=label_pos[cal], alpha_each=ALPHA / max(len(cands), 1),
                       report=report, kw_time=kw_time, n_time=len(timing), n_cal=len(cal),
                       model_cost=max(report.full_cost - overhead - float(sum(costs)), 0.0))
        built = []  # per candidate: ((graph, runner) of the cascade, (graph, runner) of top-K)
        for frac, chosen in cands:
            cand = Candidate([groups[i].name for i in chosen], frac,
                             float(sum(imp_mean[i] for i in chosen)))
            report.candidates.append(cand)
            built.append(_evaluate_candidate(ctx, cand, [groups[i] for i in chosen],
                                             float(sum(costs[i] for i in chosen))))
            bar.update(1)
    finally:
        bar.close()

    planned = Planned(report)
    _choose(planned, s, built)
    _finish(report, t_start)
    return planned


def _finish(report, t_start) -> None:
    report.planning_seconds = time.perf_counter() - t_start[0]
    report.planning_cpu_seconds = time.process_time() - t_start[1]


@dataclass
class _Context:
    """What every candidate's evaluation shares (rows, the full pipeline's answers, costs)."""

    graph: Any
    info: Any
    s: Settings
    chain: list
    fit_values: dict  # part id -> values on the fit rows
    fit_labels: np.ndarray
    fit_cache: dict  # inputs and part values of the fit rows
    fit_scores: np.ndarray | None  # the full pipeline's score on the fit rows (top-K only)
    fit_full: tuple | None  # (probabilities, class positions) of the full model on fit rows
    cal_cache: dict
    full_cal: list
    full_class: np.ndarray | None
    label_pos_cal: np.ndarray
    alpha_each: float
    report: PlanReport
    kw_time: dict  # keyword arguments of the timing rows (fit rows)
    n_time: int
    n_cal: int
    model_cost: float  # the user's model's share of the full pipeline's cost per row


def _tree_cost_floor(ctx: _Context, done, groups_cost: float, size: float) -> float:
    """A lower bound of the stage-1 cost per row of a tree variant of ``size`` (the user's
    number of trees = 1), before fitting it; the largest of:

    * the cost of any smaller tree variant measured (more trees never cost less);
    * the groups plus ``TREE_COST_FLOOR`` x ``size`` x the user's model's cost per row;
    * with two smaller variants measured, the larger's cost plus ``TREE_COST_FLOOR_MEASURED``
      x the slope between them (cost per tree is about constant; the slope leaves out the
      fixed cost of a call, which a cost per tree read off one variant would count)."""
    measured = sorted((t for t in done if t.size is not None and t.stage1_cost is not None
                       and t.size <= size), key=lambda t: t.size)
    floor = groups_cost + TREE_COST_FLOOR * size * ctx.model_cost
    if measured:
        floor = max(floor, measured[-1].stage1_cost)
    if len(measured) >= 2 and measured[-1].size > measured[-2].size:
        a, b = measured[-2], measured[-1]
        slope = (b.stage1_cost - a.stage1_cost) / (b.size - a.size)
        floor = max(floor, b.stage1_cost + TREE_COST_FLOOR_MEASURED * slope * (size - b.size))
    return floor


def _topk_query_cost(ctx: _Context, stage1: float, ratio: float) -> float:
    """Seconds of a top-K query over a calibration-sized batch with this filter."""
    n = ctx.n_cal
    kp = min(n, math.ceil(ratio * min(ctx.s.top_k, n)))
    return n * stage1 + kp * ctx.report.full_cost


def _measures(ctx: _Context, chosen_groups, groups_cost: float):
    """``measure(transforms) -> (assess, prune)`` for ``approx.choose`` on one candidate."""
    s, report = ctx.s, ctx.report

    def measure(transforms):
        sizeless = []  # the stage-1 cost of a variant whose size the variant does not set

        def assess(variant, model, val, cov):
            ag = approximate_graph(ctx.graph, chosen_groups, model, transforms=transforms,
                                   confidence=False)
            if variant.size is None and sizeless:
                stage1 = sizeless[0]  # same family, same columns: same cost, no compile
            else:
                runner = cost_mod.runner(ag, s.backend, s.threads)
                stage1 = cost_mod.positive(
                    cost_mod.seconds_per_row(runner, ctx.kw_time, ctx.n_time))
                if variant.size is None:
                    sizeless.append(stage1)
            a = approx_mod.Assessment(stage1_cost=stage1)
            if s.cascades and cov is not None:
                a.cascade_cost = stage1 + (1.0 - cov) * report.full_cost
            if s.top_k is not None:
                cache = {k: take(v, val) for k, v in ctx.fit_cache.items()}
                scores = evaluate(ag, [ag.outputs[0]], cache)[0]
                rc = topk_mod.choose_ratio(ctx.fit_scores[val], scores, s.top_k, batch=ctx.n_cal,
                                           precision=s.topk_precision, seed=s.seed)
                a.topk_ratio = rc.ratio
                a.topk_cost = _topk_query_cost(ctx, stage1, rc.ratio)
            return a

        def prune(variant, done):
            # a tree variant costs at least its groups plus its share of the model cost; skip
            # it when even answering every row at that cost would lose to a variant measured
            if variant.size is None:
                return None
            best_c = min((t.cascade_cost for t in done if t.cascade_cost is not None),
                         default=None)
            best_k = min((t.topk_cost for t in done if t.topk_cost is not None), default=None)
            floor = _tree_cost_floor(ctx, done, groups_cost, variant.size)
            lose_c = not s.cascades or (best_c is not None and floor >= best_c)
            lose_k = s.top_k is None or (
                best_k is not None
                and ctx.n_cal * floor + min(s.top_k, ctx.n_cal) * report.full_cost >= best_k)
            if lose_c and lose_k and (best_c is not None or best_k is not None):
                return (f"skipped: costs at least {floor * 1e6:.3f} us/row, no better than the "
                        "best smaller model")
            return None
        return assess, prune
    return measure


def _evaluate_candidate(ctx: _Context, cand, chosen_groups, groups_cost: float):
    """Fit, measure and certify one candidate feature set; ((cascade graph, runner), (top-K
    graph, runner)), each None when that use is not wanted."""
    graph, info, s, report = ctx.graph, ctx.info, ctx.s, ctx.report
    first = info.nodes[0]
    parts = chosen_parts(graph, first, chosen_groups)
    choice, fitted = _fit_approximate(graph, info, parts, ctx.chain, ctx.fit_values,
                                      ctx.fit_labels, ctx.fit_full, s,
                                      measure=_measures(ctx, chosen_groups, groups_cost),
                                      allowed=allowed_rate(s.accuracy_target, ctx.n_cal,
                                                           ctx.alpha_each))
    cand.approx_model = choice.name
    cand.approx_scores = choice.scores
    cand.approx_trials = [asdict(t) for t in choice.trials]
    ag = approximate_graph(graph, chosen_groups, choice.model, transforms=fitted,
                           confidence=info.is_classifier)
    outs = evaluate(ag, ag.outputs, ctx.cal_cache)
    n_user = len(graph.outputs)
    for i in range(n_user):
        if not _same_shape(ctx.full_cal[i], outs[i]):
            raise PlanError(f"the approximate pipeline's output {i} has shape "
                            f"{np.shape(outs[i])}, the full pipeline's "
                            f"{np.shape(ctx.full_cal[i])}: the approximate model must answer "
                            "like the user's model")
    cascade = topk = None
    if s.cascades:
        conf_idx = ag.meta["cascade"]["confidence_output"]
        conf = confidence(outs[conf_idx])
        approx_class = predicted_class(outs[conf_idx])
        tc = choose_threshold(conf, approx_class == ctx.full_class, s.accuracy_target,
                              ctx.alpha_each, info.n_classes)
        cand.agreement_bound = tc.lower_bound
        if tc.threshold is None:
            need = rows_needed(s.accuracy_target, ctx.alpha_each)
            cand.note = ("no threshold certifies the target" if ctx.n_cal >= need else
                         f"{ctx.n_cal} calibration rows cannot certify {s.accuracy_target} "
                         f"(needs >= {need})")
        else:
            cand.threshold = tc.threshold
            cand.confident_fraction = tc.confident_fraction
            cand.agreement = tc.agreement
            confident = np.where(np.isnan(conf), -np.inf, conf) >= tc.threshold
            y = ctx.label_pos_cal
            cascade_class = np.where(confident, approx_class, ctx.full_class)
            cand.accuracy_full = float(np.mean(ctx.full_class == y))
            cand.accuracy_cascade = float(np.mean(cascade_class == y))
            runner = cost_mod.runner(ag, s.backend, s.threads)
            cand.stage1_cost = cost_mod.positive(
                cost_mod.seconds_per_row(runner, ctx.kw_time, ctx.n_time))
            cand.expected_cost = cand.stage1_cost + \
                (1.0 - cand.confident_fraction) * report.full_cost
            cand.speedup = report.full_cost / cand.expected_cost
            cascade = (ag, runner)
    if s.top_k is not None:
        cand.topk_model = choice.topk_name
        if choice.topk_model is choice.model:
            kg, k_outs = ag, outs
            runner = cascade[1] if cascade is not None else None
        else:
            kg = approximate_graph(graph, chosen_groups, choice.topk_model, transforms=fitted,
                                   confidence=False)
            k_outs = evaluate(kg, kg.outputs, ctx.cal_cache)
            runner = None
        if runner is None:
            runner = cost_mod.runner(kg, s.backend, s.threads)
        stage1 = cost_mod.positive(cost_mod.seconds_per_row(runner, ctx.kw_time, ctx.n_time))
        cand.topk_stage1_cost = stage1
        if cand.stage1_cost is None and kg is ag:
            cand.stage1_cost = stage1
        rc = topk_mod.choose_ratio(ctx.full_cal[0], k_outs[0], s.top_k,
                                   precision=s.topk_precision, seed=s.seed)
        cand.topk_ratio = rc.ratio
        cand.topk_precision = rc.heldout_precision
        cand.topk_speedup = ctx.n_cal * report.full_cost / _topk_query_cost(ctx, stage1, rc.ratio)
        topk = (kg, runner, (np.asarray(ctx.full_cal[0], np.float64),
                             np.asarray(k_outs[0], np.float64)))
    return cascade, topk


def _choose(planned: Planned, s: Settings, built) -> None:
    report = planned.report
    cands = report.candidates
    if s.cascades:
        ok = [i for i, c in enumerate(cands) if c.expected_cost is not None]
        if not cands:
            report.no_cascade = "no candidate feature set (no group with positive importance " \
                                "fits a budget)"
        elif not ok:
            report.no_cascade = "no candidate certifies the accuracy target: " + \
                "; ".join(f"[{i}] {c.note}" for i, c in enumerate(cands))
        else:
            best = min(ok, key=lambda i: cands[i].expected_cost)
            if cands[best].speedup < s.min_speedup:
                report.no_cascade = (f"the best candidate [{best}] is expected at "
                                     f"{cands[best].speedup:.2f}x, below the {s.min_speedup}x "
                                     "needed to beat the full pipeline")
            else:
                report.cascade = best
                report.threshold = cands[best].threshold
                report.expected_speedup = cands[best].speedup
                ag, runner = built[best][0]
                planned.cascade_graph, planned.cascade_runner = ag, runner
                planned.confidence_output = ag.meta["cascade"]["confidence_output"]
                planned.threshold = cands[best].threshold
    if s.top_k is not None:
        ok = [i for i, c in enumerate(cands) if c.topk_ratio is not None]
        if not ok:
            report.no_topk = "no candidate feature set"
        else:
            best = max(ok, key=lambda i: cands[i].topk_speedup)
            if cands[best].topk_speedup < s.min_speedup:
                report.no_topk = (f"the best filter [{best}] is expected at "
                                  f"{cands[best].topk_speedup:.2f}x")
            else:
                report.topk_candidate = best
                report.topk_ratio = cands[best].topk_ratio
                report.topk_speedup = cands[best].topk_speedup
                planned.topk_graph, planned.topk_runner, planned.topk_scores = built[best][1]
                planned.topk_ratio = cands[best].topk_ratio
