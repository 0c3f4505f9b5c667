"""Per-row cost, measured on the backend that will run the graph.

``"compiled"`` compiles the graph with ``codegen.pipeline.compile_pipeline`` (native kernels
plus host stages, exactly what ``mloc_ir.compile`` runs) and times calls of it;
``"interpreted"`` times the reference interpreter. Times are CPU seconds of this process (all
its threads: a split batch counts every part), the minimum over repeated calls on the same rows,
divided by the row count. Wall time was the first choice and misled: on two cores shared with
other work, the tweets plan measured its full pipeline at 63 us/row and one of its groups at
97 us/row while both ran at ~24 us/row of CPU.

A feature group's cost is the time of the subgraph computing only that group's columns minus
the time of a call that does nothing (binding inputs, call overhead), so cheap groups are not
all dominated by the same fixed overhead.
"""
from __future__ import annotations

import time

import numpy as np

BACKENDS = ("compiled", "interpreted")


def runner(graph, backend: str, threads: int | None = None):
    """A callable taking the pipeline's keyword arguments, on ``backend``."""
    if backend == "compiled":
        from codegen.pipeline import compile_pipeline
        return compile_pipeline(graph, threads=threads)
    if backend == "interpreted":
        from mloc_ir.interpreter import interpret

        def run(**kwargs):
            return interpret(graph, **kwargs)
        return run
    raise ValueError(f"unknown cost backend {backend!r}; one of {', '.join(BACKENDS)}")


def settle(max_seconds: float = 1.0, step: float = 0.005) -> None:
    """Wait (at most ``max_seconds``) until no thread of this process burns CPU: OpenMP
    workers spin-wait for a while after a multi-threaded fit (measured here: ~0.1-0.5 s at
    one full core), and process time would charge their spinning to whatever is timed next."""
    deadline = time.perf_counter() + max_seconds
    while time.perf_counter() < deadline:
        c0 = time.process_time()
        time.sleep(step)
        if time.process_time() - c0 < 0.1 * step:
            return


def seconds_per_row(fn, kwargs: dict, n_rows: int, *, repeats: int = 5,
                    min_seconds: float = 0.02, max_seconds: float = 2.0) -> float:
    """Minimum over calls of ``fn(**kwargs)`` of its CPU time, divided by ``n_rows``.

    One warm-up call first (lazy loading, caches); then at least ``repeats`` timed calls and
    enough for ``min_seconds`` in total, stopping early after ``max_seconds``.
    """
    settle()
    fn(**kwargs)
    best = float("inf")
    spent, calls = 0.0, 0
    while calls < repeats or spent < min_seconds:
        t0 = time.process_time()
        fn(**kwargs)
        dt = time.process_time() - t0
        best = min(best, dt)
        spent += dt
        calls += 1
        if spent > max_seconds and calls >= 2:
            break
    return best / max(n_rows, 1)


def overhead_graph(graph):
    """A graph returning one of ``graph``'s inputs: the cost of a call that computes nothing."""
    from ..cascade import subgraph
    inputs = graph.input_nodes()
    return subgraph(graph, [inputs[0].id]) if inputs else None


def measure(graph, kwargs: dict, n_rows: int, backend: str, threads: int | None = None) -> float:
    """Seconds per row of running ``graph`` on ``kwargs`` on ``backend``."""
    return seconds_per_row(runner(graph, backend, threads), kwargs, n_rows)


def positive(x: float, floor: float = 1e-12) -> float:
    """Measured differences can dip below zero on noise; costs stay positive."""
    return float(max(x, floor)) if np.isfinite(x) else floor
