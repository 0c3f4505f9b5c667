"""Text pipelines the native kernels cannot take whole: what does not compile stays with
scikit-learn (same predictions) and ``explain()`` says which part and why; what does compile
(a supported vectorizer next to it) still runs natively."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

import mloc_ir
from codegen.text_cpython import layout

pytestmark = pytest.mark.skipif(layout() is None, reason="str layout of this Python not readable")

DOCS = np.array(["the cat sat", "a dog ran", "the dog sat", "cat and Dog", "Ünïcödé dog",
                 "", "cat cat cat"] * 4, dtype=object)
Y = np.array([0, 1, 0, 1, 1, 0, 0] * 4)
WORDS = TfidfVectorizer().fit(DOCS)
CUSTOM = TfidfVectorizer(analyzer=str.split).fit(DOCS)  # a callable analyzer: host only
ACCENTS = TfidfVectorizer(strip_accents=lambda s: s.lower()).fit(DOCS)  # callable: host only
HASHED = HashingVectorizer(n_features=64, analyzer="char_wb", ngram_range=(2, 3))
MIXED = LogisticRegression().fit(scipy.sparse.hstack([WORDS.transform(DOCS),
                                                      CUSTOM.transform(DOCS)]), Y)
STRIPPED = LogisticRegression().fit(scipy.sparse.hstack([ACCENTS.transform(DOCS),
                                                         HASHED.transform(DOCS)]), Y)


def mixed(texts):
    X = scipy.sparse.hstack([WORDS.transform(texts), CUSTOM.transform(texts)])
    return MIXED.predict_proba(X)[:, 1]


def stripped(texts):
    X = scipy.sparse.hstack([ACCENTS.transform(texts), HASHED.transform(texts)])
    return STRIPPED.decision_function(X)


def test_callable_analyzer_stays_on_the_host():
    cp = mloc_ir.compile(mixed, threads=1)
    assert np.array_equal(cp(DOCS), mixed(DOCS))
    explain = cp.explain()
    assert "%words: native text kernel: TfidfVectorizer(word 1-grams" in explain
    assert "%custom on the host: vectorize always runs in Python (no native text kernel: a " \
           "callable analyzer)" in explain
    assert "%predict_proba on the host" in explain and "callable analyzer" in explain


def test_callable_strip_accents_stays_on_the_host():
    cp = mloc_ir.compile(stripped, threads=1)
    assert np.array_equal(cp(DOCS), stripped(DOCS))
    explain = cp.explain()
    assert "(no native text kernel: strip_accents=" in explain
    assert "HashingVectorizer(char_wb 2-3-grams, 64 MurmurHash3 buckets, signed" in explain
