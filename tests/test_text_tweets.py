"""The tweets pipeline (``examples/tweets_pipeline.py``: word 1-2-gram + char 2-6-gram TF-IDF,
text statistics, logistic regression) compiled with native text kernels: identical predictions
to the Python pipeline, the plan fuses both vectorizers with the model, ``explain()`` says so,
and threads give the same predictions.  Skips when the data is absent (small models via
``MLOC_FAST_EXAMPLES=1``)."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MLOC_FAST_EXAMPLES", "1")

import mloc_ir  # noqa: E402


def test_tweets_native_identical(tweets):
    assert tweets.CHAR_TFIDF.ngram_range == (2, 6) and tweets.CHAR_TFIDF.analyzer == "char"
    texts = tweets.TEST["tweet"].to_numpy()[:1500]
    cp = mloc_ir.compile(tweets.predict, threads=1)
    explain = cp.explain()
    assert "%predict_proba_native" in explain and "%tweets_stats" in explain
    for sparse in ("%words", "%chars", "%X"):  # no sparse matrix is built
        assert sparse not in explain
    assert np.array_equal(cp(texts), tweets.predict(texts))
    assert np.array_equal(cp(texts[:1]), tweets.predict(texts[:1]))


def test_tweets_explain_names_the_text_kernels(tweets):
    explain = mloc_ir.compile(tweets.predict, threads=1).explain()
    assert "always runs in Python" not in explain  # the kernels are not opaque host calls
    assert ("%predict_proba_native: native text kernel: LogisticRegression.predict_proba fused "
            "with TfidfVectorizer(word 1-2-grams") in explain
    assert "TfidfVectorizer(char 2-6-grams" in explain
    assert "+ 5 dense column(s)" in explain
    assert ("%tweets_stats: native text kernel: string statistics len, count('!'), "
            "count('@'), word_count, upper_eq") in explain


def test_tweets_threads_identical(tweets, monkeypatch):
    """The lowered graph with 2 threads per kernel (batches split from 16 rows per thread)."""
    import codegen.text_runtime as tr
    from codegen.text_rewrite import lower_text
    monkeypatch.setattr(tr, "MIN_ROWS_PER_THREAD", 16)
    monkeypatch.setattr(tr, "MIN_STATS_ROWS_PER_THREAD", 16)
    texts = tweets.TEST["tweet"].to_numpy()[:600]
    graph = lower_text(mloc_ir.parse(tweets.predict), threads=2)
    kernels = [n.attrs["fn"].obj for n in graph.nodes() if n.op == "pycall"]
    assert len(kernels) == 2 and all(k.threads == 2 for k in kernels)
    assert np.array_equal(mloc_ir.interpret(graph, texts), tweets.predict(texts))


def test_compile_passes_threads_to_text_kernels(tweets):
    cp = mloc_ir.compile(tweets.predict, threads=2)
    kernels = [n.attrs["fn"].obj for n in cp.graph.nodes() if n.op == "pycall"]
    assert kernels and all(k.threads == 2 for k in kernels)
