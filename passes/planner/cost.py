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

A cascade's stage 2 runs the full pipeline on the unsure rows only, and its cost is not the
full pipeline's cost per row times their share: a call has fixed costs (binding, and one round
trip per feature store it reads, whatever the number of rows), and a lookup pays per *distinct*
key, and a few rows repeat fewer keys than many. ``SelectionCost`` therefore times the full
pipeline on a row selection of the size stage 2 gets, out of the timing rows.
"""
from __future__ import annotations

import math
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


class SelectionCost:
    """Seconds per row of a batch (the ``n`` timing rows ``kwargs``) that running ``runner`` on
    a random ``fraction`` of its rows costs: ``runner`` timed on such a selection (seeded),
    divided by ``n``. Fractions are rounded up to whole ``step`` shares of the rows so nearby
    fractions share a measurement; ``fraction`` 0 costs nothing, 1 costs ``full``."""

    def __init__(self, runner, kwargs: dict, n: int, full: float, *, seed: int = 0,
                 step: float = 0.01):
        self.runner, self.kwargs, self.n, self.full = runner, kwargs, n, full
        self.seed, self.step = seed, step
        self._memo: dict[int, float] = {}

    def rows(self, fraction: float) -> int:
        """The size of the selection timed for ``fraction`` (0 when no row goes to stage 2)."""
        if not fraction > 0:
            return 0
        quantum = max(1, int(math.ceil(self.step * self.n)))
        m = int(math.ceil(min(fraction, 1.0) * self.n / quantum - 1e-9)) * quantum
        return min(max(m, 1), self.n)

    def __call__(self, fraction: float) -> float:
        m = self.rows(fraction)
        if m == 0:
            return 0.0
        if m >= self.n:
            return self.full
        if m not in self._memo:
            from runtime.cascade import take_rows
            rng = np.random.default_rng([self.seed, m])
            idx = np.sort(rng.choice(self.n, size=m, replace=False))
            sub = {k: take_rows(v, idx) for k, v in self.kwargs.items()}
            per_row = seconds_per_row(self.runner, sub, m)
            self._memo[m] = positive(per_row * m / self.n)
        return self._memo[m]


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
