"""Evaluating graphs at training time, reusing values already computed.

The planner evaluates many graphs that share most of their nodes with the user's graph: the
approximate graphs (copies keep node ids), the same graph with one group's rows permuted. The
reference interpreter's node rules are used (the oracle's semantics), and every value already
in ``cache`` (bound inputs, feature values) is taken as is instead of being recomputed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mloc_ir.interpreter import bind_inputs, run_node


def bind(graph, columns: dict) -> dict[int, np.ndarray]:
    """The graph's inputs bound from the original function's keyword arguments."""
    return bind_inputs(graph, (), dict(columns))


def evaluate(graph, targets: list[int], cache: dict[int, Any]) -> list[Any]:
    """Values of ``targets``; ``cache`` (node id -> value) must hold every input they read.

    ``cache`` is not modified; nodes not needed by ``targets`` are not run.
    """
    needed = set(targets)
    for t in targets:
        needed |= graph.ancestors(t)
    env = {nid: v for nid, v in cache.items() if nid in needed}
    with np.errstate(all="ignore"):
        for node in graph.nodes():
            if node.id in env or node.id not in needed:
                continue
            if node.op == "input":
                raise KeyError(f"input %{node.name} is not bound")
            env[node.id] = run_node(node, [env[a] for a in node.args])
    return [env[t] for t in targets]


def take(value, rows: np.ndarray):
    """Rows ``rows`` of a row-wise value (column, matrix, sparse matrix, record); scalars as is."""
    if isinstance(value, dict):
        return {k: take(v, rows) for k, v in value.items()}
    if np.ndim(value) == 0 and not hasattr(value, "shape"):
        return value
    if hasattr(value, "tocsr") and not isinstance(value, np.ndarray):
        return value.tocsr()[rows]
    return np.asarray(value)[rows]


def concat(a, b):
    """Rows of ``a`` then rows of ``b`` (two values of the same node, as ``take`` gives them)."""
    if isinstance(a, dict):
        return {k: concat(a[k], b[k]) for k in a}
    if np.ndim(a) == 0 and not hasattr(a, "shape"):
        return a
    if hasattr(a, "tocsr") and not isinstance(a, np.ndarray):
        import scipy.sparse
        return scipy.sparse.vstack([a.tocsr(), b.tocsr()]).tocsr()
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object or b.dtype == object:
        out = np.empty((len(a) + len(b),) + a.shape[1:], dtype=object)
        out[:len(a)], out[len(a):] = a, b
        return out
    return np.concatenate([a, b])


def unbind(graph, bound: dict[int, np.ndarray]) -> dict[str, Any]:
    """Keyword arguments (columns, and dicts of columns for DataFrame parameters) giving
    ``bound`` when bound again: how the planner calls compiled pipelines on a row subset."""
    kwargs: dict[str, Any] = {}
    for node in graph.input_nodes():
        param, col = node.attrs["param"], node.attrs["column"]
        if node.id not in bound:
            continue
        if col is None:
            kwargs[param] = bound[node.id]
        else:
            kwargs.setdefault(param, {})[col] = bound[node.id]
    return kwargs
