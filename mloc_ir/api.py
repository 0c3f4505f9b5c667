"""The whole chain in one place: parse -> verify -> passes -> plan -> emit -> load.

    cp = mloc_ir.compile(credit_pipeline.predict)   # exact: same results as the Python
    y = cp(limit_bal=..., bill_1=..., ...)
    cp.save("build/credit_fast")                    # an importable module

    cp = mloc_ir.compile(tweets_pipeline.predict, train=(columns, labels), cascades=True,
                         accuracy_target=0.999, top_k=100)   # + statistical plan
    cp.explain(); cp(**columns); cp.top_k(100, **columns)
"""
from __future__ import annotations

from .frontend import parse
from .verify import verify


def compile(target, name: str | None = None, *, dtypes: dict[str, str] | None = None,
            passes=None, threads: int | None = None, train=None, cascades: bool = False,
            accuracy_target: float = 0.999, top_k: int | None = None,
            approximate_trainer=None, **plan_options):
    """Compile a pipeline function (or ``"file.py:function"``) into native code.

    ``dtypes`` declares input dtypes as for ``parse``; ``passes`` overrides the exact pass
    pipeline (``()`` for none); ``threads`` is the number of threads large batches are split
    over (default: all cores). The result is called like the original function.

    Statistical optimizations need ``train=(columns, labels)`` (the function's keyword
    arguments and one label per row): ``cascades=True`` answers confident rows with an
    approximate model on cheap feature groups, agreeing with the exact pipeline on at least
    ``accuracy_target`` of rows with 95% confidence; ``top_k=K`` plans a filter for
    ``.top_k(K, ...)`` queries; ``approximate_trainer=(X, y) -> model`` replaces refitting
    (or distilling) the user's model family. The guarantee holds for rows like the ``train``
    rows, so they must be rows the model was *not* trained on: on its own training rows a
    model is surer than on new ones, and a threshold certified there can fall short. ``plan_options`` go to the planner (``passes.planner.Settings``).
    The result is then a ``runtime.cascade.CascadedPipeline``.
    """
    from codegen.pipeline import compile_pipeline
    from passes import EXACT_PIPELINE, run_passes

    graph = parse(target, name, dtypes=dtypes)          # front end; verified on the way out
    run_passes(graph, EXACT_PIPELINE if passes is None else passes)  # exact rewrites
    verify(graph)                                         # before codegen, always
    if not cascades and top_k is None and train is None and not plan_options:
        return compile_pipeline(graph, threads=threads)  # plan, emit, JIT-load
    from passes.planner import build_cascade              # statistical plan (needs labels)
    return build_cascade(graph, None, train, cascades=cascades, accuracy_target=accuracy_target,
                         top_k=top_k, approximate_trainer=approximate_trainer, threads=threads,
                         **plan_options)                  # checks the request, then compiles
