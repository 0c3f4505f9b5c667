"""Host stages: the nodes of a compiled pipeline that run in Python, between native kernels.

Each node runs with the reference interpreter's rule (``run_node``), in topological order. The
one liberty taken: lookups and joins against feature-store tables whose keys are ready when the
stage starts are sent together (``featurestore.read_together``): those of one store in a single
round trip (their MGETs written at once on one connection), those of different stores at once
on threads, so round trips overlap or merge instead of adding up. Each table's result is what
its own lookup returns. And ``to_datetime`` nodes parse batches of strict ISO strings natively
(``runtime.datetimes``; any other batch goes to pandas, as in the interpreter).
"""
from __future__ import annotations

import numpy as np

from mloc_ir.featurestore import read_together
from mloc_ir.interpreter import run_node, store_read, with_location

from .datetimes import to_datetime


def run_host_stage(graph, nodes, env) -> None:
    """Compute ``nodes`` (ids, topological order) into ``env``."""
    ready, reads = [], []  # remote nodes whose keys are ready now, and their reads
    for nid in nodes:
        node = graph[nid]
        if node.op in ("lookup", "join") and all(a in env for a in node.args):
            read = store_read(node, [env[a] for a in node.args])
            if read is not None:
                ready.append(nid)
                reads.append(read)
    if reads:
        for nid, value in zip(ready, read_together(reads)):
            env[nid] = value
    with np.errstate(all="ignore"):
        for nid in nodes:
            if nid not in env:
                node = graph[nid]
                if node.op == "to_datetime":  # strict ISO strings natively, else pandas
                    env[nid] = with_location(node, to_datetime, env[node.args[0]])
                else:
                    env[nid] = run_node(node, [env[a] for a in node.args])
