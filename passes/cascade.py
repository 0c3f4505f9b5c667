"""Cascade split: the graph rewrite that builds a cascade's *approximate graph*.

Given the user's verified graph, the feature groups to keep and an approximate model fitted on
them, the approximate graph is a copy of the pipeline in which

* the model's input row is replaced by a stack of the chosen groups' columns only (through
  refitted copies of any row transforms, such as a scaler, that sat between stack and model);
* every call of the model calls the approximate model instead, with the same method and
  keyword arguments, so everything downstream (``[:, 1]``, a threshold, a second output) means
  what it meant;
* when ``confidence`` is set, one more output is appended: the approximate model's class
  probabilities (an existing ``predict_proba`` call is reused, else one is added);
* dead code elimination removes every op only the other groups needed.

The result computes only the chosen groups (plus whatever the pipeline returns besides the
model's answer) and verifies. The full graph is left untouched. The same rewrite serves the
top-K filter, whose first stage is an approximate graph without the confidence output.

Requires: a verified graph calling one model (see ``planner.models.find_model``).
Preserves: nothing exact; that is the point. Exactness is restored by the runtime, which sends
every row the approximate model is not confident about through the full graph.
"""
from __future__ import annotations

import copy as _copy

import numpy as np

from mloc_ir.groups import FeatureGroup, model_input_parts
from mloc_ir.printer import Ref
from mloc_ir.types import Type, dtype_from_numpy, numpy_dtype
from mloc_ir.verify import verify

from .planner.models import PlanError, find_model, gives_probabilities, probability_call


def _fresh_copy(graph):
    g = graph.copy()
    g.meta = {k: v for k, v in _copy.copy(graph.meta).items() if k != "pass_timings"}
    return g


def _dce(graph) -> None:
    from .manager import run_passes
    run_passes(graph, ["dce"])


def transform_chain(graph, model_id: int) -> tuple[list[int], int]:
    """(transform nodes from the stack outwards, the node they start from) of a model's input."""
    chain = []
    nid = graph[model_id].args[0]
    while graph[nid].op == "transform":
        chain.append(nid)
        nid = graph[nid].args[0]
    return list(reversed(chain)), nid


def stack_type(graph, parts: list[int]) -> Type:
    """The type the front end gives ``np.column_stack`` / ``hstack`` of these parts."""
    types = [graph[p].type for p in parts]
    width = sum(1 if t.shape in ("col", "any", "scalar") else t.width for t in types)
    if any(t.shape == "sparse" for t in types):
        return Type.sparse(width)
    dtypes = [numpy_dtype(t.dtype or "f64") for t in types]
    return Type.row(width, dtype_from_numpy(np.result_type(*dtypes)))


def chosen_parts(graph, model_id: int, groups: list[FeatureGroup]) -> list[int]:
    """The stacked values (in input order) whose columns belong to the chosen groups."""
    cols = set()
    for grp in groups:
        cols.update(grp.columns)
    parts = [nid for nid, pcols in model_input_parts(graph, model_id) if set(pcols) <= cols]
    if not parts:
        raise PlanError("the chosen feature groups contribute no column to the model's input")
    if all(graph[p].op == "const" for p in parts):
        raise PlanError("the chosen feature groups are constants only (features the model "
                        "never reads)")
    return parts


def add_confidence_output(graph, model_ids: list[int]) -> int:
    """Append the model's class probabilities to ``graph.outputs``; return the output position.

    A call among ``model_ids`` that already returns probabilities is reused; otherwise a
    probability call on the same input row is added next to them.
    """
    for mid in model_ids:
        node = graph[mid]
        if gives_probabilities(node.attrs["model"].obj, node.attrs["method"], node.attrs["kwargs"]):
            graph.outputs.append(mid)
            return len(graph.outputs) - 1
    node = graph[model_ids[0]]
    model = node.attrs["model"].obj
    method, kwargs, typ = probability_call(model, node.attrs["kwargs"])
    proba = graph.add("model", [node.args[0]], {"model": node.attrs["model"], "method": method,
                                                "kwargs": kwargs, "library": node.attrs["library"]},
                      typ, name="confidence", loc=node.loc)
    graph.outputs.append(proba.id)
    return len(graph.outputs) - 1


def with_confidence(graph) -> tuple[object, int]:
    """A copy of the full graph that also returns its model's class probabilities."""
    info = find_model(graph)
    g = _fresh_copy(graph)
    return g, add_confidence_output(g, info.nodes)


def _library(model) -> str:
    mod = type(model).__module__.split(".")[0]
    return "lightgbm" if mod == "lightgbm" else mod


def narrower_vectorizer(vectorizer) -> dict | None:
    """Parameters of a cheaper copy of a text vectorizer with an n-gram range (half the range:
    word 1-2-grams -> unigrams, char 2-6-grams -> 2-4-grams), or None when it has none to
    narrow (a single n, a fixed vocabulary, a callable analyzer)."""
    params = vectorizer.get_params() if hasattr(vectorizer, "get_params") else {}
    ngram = params.get("ngram_range")
    if not ngram or params.get("vocabulary") is not None or \
            params.get("analyzer") not in ("word", "char", "char_wb"):
        return None
    lo, hi = ngram
    if hi <= lo:
        return None
    return {"ngram_range": (lo, lo + (hi - lo) // 2)}


def approximate_graph(graph, groups: list[FeatureGroup], approx_model, *,
                      transforms: list = (), confidence: bool = True, replace=None):
    """The approximate graph of a cascade (see the module docstring).

    ``transforms`` are fitted row transforms for the chosen columns, one per transform the
    original pipeline applies between its stack and its model (in the same order).
    ``replace`` maps a chosen ``vectorize`` part to a fitted vectorizer to use instead (a
    cheaper one, ``narrower_vectorizer``; it reads the same text).
    ``graph.meta["cascade"]`` of the result records the chosen groups and, with
    ``confidence``, the position of the probability output.
    """
    info = find_model(graph)
    g = _fresh_copy(graph)
    first = info.nodes[0]
    chain, _start = transform_chain(g, first)
    if len(transforms) != len(chain):
        raise PlanError(f"the pipeline applies {len(chain)} transform(s) before its model; "
                        f"{len(transforms)} refitted transform(s) were given")
    parts = chosen_parts(g, first, groups)
    for pid, vec in (replace or {}).items():
        old = g[pid]
        if old.op != "vectorize" or pid not in parts:
            raise PlanError(f"%{old.name} is not a chosen vectorizer part")
        width = int(vec.transform(np.array([""], dtype=object)).shape[1])
        new = g.add("vectorize", list(old.args),
                    {**old.attrs, "vectorizer": Ref(old.attrs["vectorizer"].name + "_approx",
                                                    vec)},
                    Type.sparse(width, old.type.dtype or "f64"), name=old.name + "_approx",
                    loc=old.loc)
        parts = [new.id if p == pid else p for p in parts]
    x = g.add("stack", parts, {}, stack_type(g, parts), name="approx_X", loc=g[first].loc)
    for old, fitted in zip(chain, transforms):
        width = np.asarray(fitted.transform(np.ones((1, x.type.width)))).shape[1]
        x = g.add("transform", [x.id], {"transformer": Ref(g[old].attrs["transformer"].name + "_approx",
                                                           fitted)},
                  Type.row(width), name=g[old].name + "_approx", loc=g[old].loc)
    ref = Ref(info.name + "_approx", approx_model)
    for mid in info.nodes:
        node = g[mid]
        g.set_args(mid, [x.id])
        node.attrs["model"] = ref
        node.attrs["library"] = _library(approx_model)
    meta = {"groups": [grp.name for grp in groups], "parts": parts}
    if confidence:
        meta["confidence_output"] = add_confidence_output(g, info.nodes)
    g.meta["cascade"] = meta
    _dce(g)
    verify(g)
    return g


def subgraph(graph, outputs: list[int]):
    """A copy of ``graph`` returning ``outputs`` only, with everything else removed."""
    g = _fresh_copy(graph)
    g.outputs = list(outputs)
    _dce(g)
    return g
