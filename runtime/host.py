"""Host stages: the nodes of a compiled pipeline that run in Python, between native kernels.

Each node runs with the reference interpreter's rule (``run_node``), in topological order. The
one liberty taken: lookups and joins against feature-store tables whose keys are ready when the
stage starts, and that live in *different* stores, are sent at once on threads, so their round
trips overlap instead of adding up (each is still one batched request; see
``mloc_ir.featurestore``). Lookups into the same store stay sequential: they share the
server, and overlapping them gains little. And ``to_datetime`` nodes parse batches of strict
ISO strings natively (``runtime.datetimes``; any other batch goes to pandas, as in the
interpreter).
"""
from __future__ import annotations

import numpy as np

from mloc_ir.featurestore import fetch_concurrently, is_store_table
from mloc_ir.interpreter import run_node, with_location

from .datetimes import to_datetime


def _store_of(node):
    table = getattr(node.attrs.get("table"), "obj", None) if node.op in ("lookup", "join") else None
    return table.url if is_store_table(table) else None


def run_host_stage(graph, nodes, env) -> None:
    """Compute ``nodes`` (ids, topological order) into ``env``."""
    ready = {}  # store URL -> the first remote node of that store whose keys are ready
    for nid in nodes:
        node = graph[nid]
        url = _store_of(node)
        if url is not None and url not in ready and all(a in env for a in node.args):
            ready[url] = node
    if len(ready) > 1:
        remote = list(ready.values())
        results = fetch_concurrently([
            (lambda n=n: run_node(n, [env[a] for a in n.args])) for n in remote])
        for n, value in zip(remote, results):
            env[n.id] = value
    with np.errstate(all="ignore"):
        for nid in nodes:
            if nid not in env:
                node = graph[nid]
                if node.op == "to_datetime":  # strict ISO strings natively, else pandas
                    env[nid] = with_location(node, to_datetime, env[node.args[0]])
                else:
                    env[nid] = run_node(node, [env[a] for a in node.args])
