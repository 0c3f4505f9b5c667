"""Tweets pipeline: scikit-learn vs mloc (native text kernels), exact mode.

    python bench/text.py [--repeat 7] [--rows N] [--threads 2] [--json bench/results/text.json]

Word 1-2-gram TF-IDF + char 2-6-gram TF-IDF + five text statistics + ``scipy.sparse.hstack``
+ ``LogisticRegression.predict_proba(X)[:, 1]`` (``examples/tweets_pipeline.py``) on the
held-out tweets.  The machine is shared, so single-thread runs are timed in CPU time
(``time.process_time``, BLAS limited to one thread), scikit-learn and mloc interleaved,
``repeat`` rounds, medians; the speedup is the ratio of the medians.  With ``--threads N``
the compiled pipeline is also run with N threads (wall and CPU medians, and the busiest
thread's CPU time, which bounds the wall time on an idle machine).  Predictions must be
identical bit for bit.  Needs the tweets data (``$MLOC_DATA_DIR``, see
``examples/_support.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def _timed(fn):
    """``(result, cpu seconds, wall seconds)`` of one call."""
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def _busiest_thread(fn):
    """CPU seconds of the busiest thread during ``fn()`` (each thread times itself: the
    calling thread and every pool thread that runs a part)."""
    import runtime.pool as pool
    spent = {}
    run_chunks = pool.run_chunks

    def timed_chunks(chunk, ranges, threads):
        def part(a, b):
            t = time.thread_time()
            chunk(a, b)
            name = threading.current_thread().name
            spent[name] = spent.get(name, 0.0) + time.thread_time() - t
        return run_chunks(part, ranges, threads)
    pool.run_chunks = timed_chunks
    try:
        t = time.thread_time()
        fn()
        total_main = time.thread_time() - t
    finally:
        pool.run_chunks = run_chunks
    # the calling thread's serial work (host code, statistics, head) plus its own parts
    others = [v for k, v in spent.items() if k != threading.current_thread().name]
    return max([total_main] + others)


def _text_kernels(cp):
    from codegen.text_runtime import FusedTextLinear, NativeVectorizer, TextStats
    kinds = (FusedTextLinear, NativeVectorizer, TextStats)
    for node in cp.graph.nodes():
        obj = getattr(node.attrs.get("fn") or node.attrs.get("vectorizer"), "obj", None)
        if isinstance(obj, kinds):
            yield obj


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rows", type=int, default=None, help="rows of the held-out set (all)")
    ap.add_argument("--threads", type=int, default=2, help="also run on this many threads")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args(argv)

    import mloc_ir
    from examples import tweets_pipeline as tp
    texts = tp.TEST["tweet"].to_numpy()[:args.rows]
    n = len(texts)
    _, compile_cpu, compile_wall = _timed(lambda: mloc_ir.compile(tp.predict, threads=1))
    cp = mloc_ir.compile(tp.predict, threads=1)
    cpt = mloc_ir.compile(tp.predict, threads=args.threads)
    for k in _text_kernels(cpt):  # in case compile() does not hand threads to the kernels
        k.threads = args.threads
    for c in (cp, cpt):
        c(texts[:10])  # warm (kernels load lazily)

    sk, ml, mt = [], [], []
    p_sk = p_ml = p_mt = None
    for _ in range(args.repeat):
        p_sk, c, _w = _timed(lambda: tp.predict(texts))
        sk.append(c)
        p_ml, c, _w = _timed(lambda: cp(texts))
        ml.append(c)
        p_mt, c, w = _timed(lambda: cpt(texts))
        mt.append((c, w))
    busiest = float(np.median([_busiest_thread(lambda: cpt(texts)) for _ in range(args.repeat)]))
    t_sk, t_ml = float(np.median(sk)), float(np.median(ml))
    t_mt_cpu = float(np.median([c for c, _ in mt]))
    t_mt_wall = float(np.median([w for _, w in mt]))
    identical = bool(np.array_equal(p_sk, p_ml)) and bool(np.array_equal(p_sk, p_mt))
    print(f"rows {n}; compile {compile_cpu:.2f} s CPU ({compile_wall:.2f} s wall, with the "
          f"on-disk cache as it was); {args.repeat} interleaved rounds, medians")
    print(f"scikit-learn        {t_sk * 1e3:9.2f} ms CPU  {n / t_sk:10.0f} rows/s")
    print(f"mloc, 1 thread      {t_ml * 1e3:9.2f} ms CPU  {n / t_ml:10.0f} rows/s  "
          f"speedup {t_sk / t_ml:6.2f} x")
    print(f"mloc, {args.threads} threads     {t_mt_cpu * 1e3:9.2f} ms CPU  "
          f"{t_mt_wall * 1e3:9.2f} ms wall; busiest thread {busiest * 1e3:.2f} ms CPU "
          f"(bound on an idle machine: {t_sk / busiest:.2f} x scikit-learn)")
    print(f"identical predictions: {identical}")
    print(cp.explain())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": n, "repeat": args.repeat, "clock": "process_time (CPU)",
                       "char_ngram_range": list(tp.CHAR_TFIDF.ngram_range),
                       "word_ngram_range": list(tp.WORD_TFIDF.ngram_range),
                       "sklearn_cpu_s": t_sk, "mloc_1thread_cpu_s": t_ml,
                       "speedup_1thread": t_sk / t_ml, "threads": args.threads,
                       "mloc_threads_cpu_s": t_mt_cpu, "mloc_threads_wall_s": t_mt_wall,
                       "mloc_threads_busiest_thread_cpu_s": busiest,
                       "identical": identical}, f, indent=1)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
