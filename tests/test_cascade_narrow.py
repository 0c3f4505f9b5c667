"""Narrowed vectorizers as cheaper stage-1 candidates: a text vectorizer over a range of n-grams
gets a twin candidate with half the range, refitted on the fit rows only.

Checked: the narrower parameters; the rewrite (the approximate graph reads the text through the
narrowed copy and verifies); the planner tries the twin, fits it on no calibration row, and
the plan meets its target on fresh rows; "never approximate" is the exact pipeline bit for bit;
save/load keeps the narrowed stage 1.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

import mloc_ir
from passes.cascade import approximate_graph, narrower_vectorizer
from runtime.cascade import NEVER, load_cascade

VOCAB = [f"w{i}" for i in range(60)]
TARGET = 0.99


def synth(n, seed):
    """Text (strong, cheap next to the long noise column's character n-grams) and noise."""
    rng = np.random.default_rng(seed)
    words = rng.choice(len(VOCAB), size=(n, 6))
    text = np.array([" ".join(VOCAB[j] for j in row) for row in words], dtype=object)
    noise = np.array(["".join(rng.choice(list("abcdefgh"), size=40)) for _ in range(n)],
                     dtype=object)
    signal = ((words < 10).sum(1) - (words >= 50).sum(1)).astype(float)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-1.5 * signal))).astype(int)
    return {"text": text, "noise": noise}, y


_cols, _y = synth(3000, 1)
WORDS = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(_cols["text"])
CHARS = TfidfVectorizer(analyzer="char", ngram_range=(3, 5), max_features=3000).fit(
    _cols["noise"])
MODEL = LogisticRegression(max_iter=1000).fit(
    scipy.sparse.hstack([WORDS.transform(_cols["text"]),
                         CHARS.transform(_cols["noise"])]).tocsr(), _y)


def predict(text, noise):
    X = scipy.sparse.hstack([WORDS.transform(text), CHARS.transform(noise)])
    return MODEL.predict_proba(X)[:, 1]


def test_narrower_parameters():
    assert narrower_vectorizer(TfidfVectorizer(ngram_range=(1, 2))) == {"ngram_range": (1, 1)}
    assert narrower_vectorizer(TfidfVectorizer(analyzer="char", ngram_range=(2, 6))) == \
        {"ngram_range": (2, 4)}
    assert narrower_vectorizer(TfidfVectorizer()) is None
    assert narrower_vectorizer(CountVectorizer(ngram_range=(1, 2), vocabulary=["a b"])) is None
    assert narrower_vectorizer(CountVectorizer(ngram_range=(1, 2), analyzer=str.split)) is None


def test_rewrite_reads_the_text_through_the_narrowed_copy():
    g = mloc_ir.parse(predict)
    from mloc_ir.groups import feature_groups
    from passes.planner.models import find_model
    info = find_model(g)
    groups = feature_groups(g, info.nodes[0])
    words = [grp for grp in groups if "words" in grp.name or "text" in grp.name]
    assert words, [grp.name for grp in groups]
    wid = [n.id for n in g.nodes() if n.op == "vectorize" and n.attrs["vectorizer"].obj is WORDS][0]
    narrow = TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True).fit(_cols["text"])
    X = narrow.transform(_cols["text"])
    approx = LogisticRegression(max_iter=500).fit(X, _y)
    ag = approximate_graph(g, words, approx, replace={wid: narrow})
    vecs = [n for n in ag.nodes() if n.op == "vectorize"]
    assert len(vecs) == 1 and vecs[0].attrs["vectorizer"].obj is narrow
    assert vecs[0].type.width == X.shape[1]
    out = mloc_ir.interpret(ag, text=_cols["text"][:50], noise=_cols["noise"][:50])
    np.testing.assert_allclose(out[0], approx.predict_proba(X[:50])[:, 1])


@pytest.fixture(scope="module")
def planned():
    cols, y = synth(6000, 2)
    return mloc_ir.compile(predict, train=(cols, y), cascades=True, accuracy_target=TARGET,
                           timing_rows=500, progress=False, min_speedup=0.0)


def test_planner_tries_the_narrowed_twin_and_keeps_the_guarantee(planned):
    r = planned.report
    twins = [c for c in r.candidates if c.narrowed]
    assert twins, planned.explain()
    assert all(v == "(1, 2) -> (1, 1)" for c in twins for v in c.narrowed.values())
    assert "narrowed" in planned.explain()
    fresh, _ = synth(8000, 3)
    ref = planned.full(**fresh)
    np.testing.assert_array_equal(planned.with_threshold(NEVER)(**fresh), ref)
    if planned.approx is None:
        pytest.skip(r.no_cascade)
    out = planned(**fresh)
    assert np.mean((out > 0.5) == (ref > 0.5)) >= TARGET


def test_narrowed_vectorizer_fits_no_calibration_row(monkeypatch):
    """The narrowed copy is refitted on the fit rows: texts only calibration rows hold never
    enter its vocabulary."""
    from passes.planner import core
    cols, y = synth(4000, 4)
    # a word only calibration rows hold: appended to their texts
    cal = np.sort(np.random.default_rng(0).permutation(4000)[:2000])
    text = cols["text"].copy()
    for i in cal:
        text[i] = text[i] + " calonly"
    cols = {**cols, "text": text}
    seen = []
    real = core._narrowed

    def spy(ctx, narrow):
        replace, values = real(ctx, narrow)
        seen.extend(replace.values())
        return replace, values
    monkeypatch.setattr(core, "_narrowed", spy)
    mloc_ir.compile(predict, train=(cols, y), cascades=True, accuracy_target=TARGET,
                    timing_rows=300, progress=False, min_speedup=0.0, backend="interpreted",
                    calibration_fraction=0.5)
    assert seen
    for vec in seen:
        assert "calonly" not in vec.vocabulary_


def test_save_and_load_keep_the_narrowed_stage(planned, tmp_path):
    if planned.approx is None:
        pytest.skip(planned.report.no_cascade)
    planned.save(tmp_path / "c")
    loaded = load_cascade(tmp_path / "c")
    fresh, _ = synth(2000, 5)
    np.testing.assert_array_equal(loaded(**fresh), planned(**fresh))
