"""Native text kernels (``codegen/text_*.py``) against scikit-learn and Python, the oracles.

* transforms: ``NativeVectorizer(v).transform(docs)`` equals ``v.transform(docs)``: same sparse
  class and dtype, ``(A != B).nnz == 0``, and the same indices and data arrays (bit for bit);
* fused: ``FusedTextLinear`` equals the model's method on ``scipy.sparse.hstack`` of the parts
  bit for bit (tolerance 0: the kernel sums in scipy's ``csr_matvec`` order);
* statistics: ``TextStats`` equals Python's ``len`` / ``count`` / ``split`` / ``upper``;
* documents are drawn by hypothesis from all of Unicode plus the hard cases (empty strings,
  whitespace runs, combining marks, emoji, 'İ', 'ß', capital sigma, digits, underscores).
"""
from __future__ import annotations

import pickle
import random
import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.svm import LinearSVC

from codegen import text_unicode as tu
from codegen.text_cpython import layout
from codegen.text_runtime import FusedTextLinear, NativeVectorizer, TextStats
from codegen.text_spec import LOG_TABLE_SIZE, TOKEN_PATTERNS, HostOnly

pytestmark = pytest.mark.skipif(layout() is None, reason="str layout of this Python not readable")

HARD = ["İ", "ß", "Σ", "σ", "ς", "\u0301", "e\u0301", "😀", "👍🏽", "_", "0", "٣", "  ", "\t", "\n",
        "\u00a0", "\u2003", "ǅ", "ﬁ", "Å", "ﷺ", "\ud800", "a", "B", "Ab", "éÉ", " ", "x_y", "12"]
ALPHABET = "abcdeABCDE _-!@#.,'" + "".join(HARD)


def _corpus(n=300, seed=0):
    rng = random.Random(seed)
    words = ["the", "cat", "ΣΟΦΟΣ", "σοφός", "İstanbul", "straße", "naïve", "café", "😀😀",
             "hello_world", "x1", "ok", "OK", "Ünïcödé", "ǅemal", "ﬁne", "٣٤٥", "a", "ab"]
    docs = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 12)):
            parts.append(rng.choice(words) if rng.random() < 0.7
                         else "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 5))))
            parts.append(rng.choice([" ", " ", "  ", "\t", "\n ", ", "]))
        docs.append("".join(parts))
    return docs


CORPUS = [d for d in _corpus() if "\ud800" not in d]  # scikit-learn's fit is fine, but keep it tidy

CONFIGS = {
    "count_word": lambda: CountVectorizer(),
    "count_word13_stop_binary": lambda: CountVectorizer(ngram_range=(1, 3), stop_words=["the", "ok"],
                                                        binary=True, dtype=np.int32),
    "count_word_nolower_pattern": lambda: CountVectorizer(lowercase=False, token_pattern=r"\w+"),
    "tfidf_word12_sublinear": lambda: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                                      min_df=2, max_features=150),
    "tfidf_char14_l1": lambda: TfidfVectorizer(analyzer="char", ngram_range=(1, 4), norm="l1",
                                               smooth_idf=False),
    "tfidf_charwb25_noidf": lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5),
                                                    use_idf=False, norm=None),
    "tfidf_strip_unicode": lambda: TfidfVectorizer(strip_accents="unicode"),
    "count_strip_ascii_char": lambda: CountVectorizer(strip_accents="ascii", analyzer="char",
                                                      ngram_range=(2, 3), dtype=np.float32),
    "hashing_word": lambda: HashingVectorizer(n_features=2 ** 8, ngram_range=(1, 2)),
    "hashing_char_nosign": lambda: HashingVectorizer(analyzer="char_wb", n_features=2 ** 12,
                                                     alternate_sign=False, norm="l1", binary=True),
    "tfidf_binary_english": lambda: TfidfVectorizer(binary=True, stop_words="english",
                                                    ngram_range=(1, 2)),
    # 3 buckets: collisions everywhere, signs cancel into stored zeros; n_features not 2**k
    "hashing_tiny_nonorm": lambda: HashingVectorizer(n_features=3, analyzer="char",
                                                     ngram_range=(1, 2), norm=None),
    # fixed vocabularies: terms absent from the documents, word 2-grams, columns out of order
    "count_vocabulary_subset": lambda: CountVectorizer(
        ngram_range=(1, 2), vocabulary={"cat": 3, "the cat": 0, "σοφός": 1, "missing": 2,
                                        "ok": 4, "straße": 5}),
    "tfidf_vocabulary_list": lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4),
                                                     vocabulary=["ab", " ok", "😀😀", "zzz", "ca"]),
    "count_char_nolower_strip": lambda: CountVectorizer(analyzer="char", lowercase=False,
                                                        strip_accents="unicode",
                                                        ngram_range=(1, 2)),
}

_NATIVE: dict = {}


def native(name):
    if name not in _NATIVE:
        v = CONFIGS[name]().fit(CORPUS)
        _NATIVE[name] = (v, NativeVectorizer(v))
    return _NATIVE[name]


def assert_same_matrix(A, B):
    assert type(A) is type(B)
    assert A.dtype == B.dtype and A.shape == B.shape
    assert (A != B).nnz == 0
    A, B = sp.csr_array(A), sp.csr_array(B)
    assert np.array_equal(A.indptr, B.indptr)
    assert np.array_equal(A.indices, B.indices)
    assert np.array_equal(A.data.view(np.uint8), B.data.view(np.uint8))  # bit for bit


texts = st.lists(st.one_of(st.sampled_from(HARD), st.sampled_from(ALPHABET),
                           st.characters(blacklist_categories=("Cs",))), max_size=25).map("".join)
docs_strategy = st.lists(st.one_of(texts, st.sampled_from(CORPUS[:40])), min_size=0, max_size=8)


# -- Unicode tables --------------------------------------------------------------------------------

def test_unicode_flags_match_python():
    flags = tu.tables()["flags"]
    word = re.compile(r"\w")
    rng = random.Random(1)
    cps = list(range(0x3000)) + [rng.randrange(0x110000) for _ in range(20000)]
    for cp in cps:
        c = chr(cp)
        assert bool(flags[cp] & tu.WORD) == bool(word.match(c)) == (c.isalnum() or c == "_")
        assert bool(flags[cp] & tu.SPACE) == c.isspace()
        assert bool(flags[cp] & tu.UPPER_FIXED) == (c.upper() == c)


def test_lower_table_matches_str_lower():
    m, pool = tu.mapping(True, None)
    for cp in list(range(0x800)) + [0x130, 0x1E9E, 0x10400, 0x1F600]:
        v = int(m[cp])
        if v & tu.MULTI:
            n, off = (v >> 24) & 0x7F, v & 0xFFFFFF
            got = "".join(chr(c) for c in pool[off:off + n])
        else:
            got = chr(cp + v - tu.DELTA_BIAS)
        if cp != tu.CAPITAL_SIGMA:
            assert got == chr(cp).lower()


# -- transforms -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_transform_corpus(name):
    v, nv = native(name)
    assert_same_matrix(v.transform(CORPUS), nv.transform(CORPUS))


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=40)
@given(docs=docs_strategy)
def test_transform_drawn(name, docs):
    v, nv = native(name)
    try:
        expected = v.transform(docs)
    except Exception as exc:  # noqa: BLE001 -- HashingVectorizer on a lone surrogate
        # (UnicodeEncodeError) or on no documents (StopIteration): the same error natively
        with pytest.raises(type(exc)):
            nv.transform(docs)
        return
    assert_same_matrix(expected, nv.transform(docs))


def test_hashing_signs_cancel_into_stored_zeros():
    """scikit-learn keeps a bucket whose +1 and -1 terms cancel as a stored 0.0; so does the
    kernel (the corpus test compares the stored entries), and the corpus does hit that case."""
    v, nv = native("hashing_tiny_nonorm")
    X = nv.transform(CORPUS)
    assert (X.data == 0).any() and (X.data < 0).any()
    assert_same_matrix(v.transform(CORPUS), X)


def test_vocabulary_subset_columns():
    v, nv = native("count_vocabulary_subset")
    X = nv.transform(["the cat the cat", "missing", "straße ok OK"])
    assert X.toarray().tolist() == [[2, 0, 0, 2, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 2, 1]]


def test_host_rows_are_exact():
    """Rows the kernel cannot do go to scikit-learn: bytes, str subclasses, sublinear counts
    beyond the log table, lone surrogates under hashing."""
    class S(str):
        pass
    v = TfidfVectorizer(sublinear_tf=True).fit(["aa bb", "bb cc"])
    nv = NativeVectorizer(v)
    docs = np.array(["aa bb", b"bb cc aa", S("cc cc"), " ".join(["bb"] * (LOG_TABLE_SIZE + 3)),
                     "", "aa"], dtype=object)
    assert_same_matrix(v.transform(docs), nv.transform(docs))
    with pytest.raises(ValueError, match="np.nan is an invalid document"):
        nv.transform(np.array(["aa", np.nan], dtype=object))
    with pytest.raises(ValueError, match="Iterable over raw text documents expected"):
        nv.transform("aa bb")


def test_long_documents_grow_buffers():
    v, nv = native("tfidf_char14_l1")
    docs = ["ab" * 5000, "", "ΣΑ " * 3000, "x"]
    assert_same_matrix(v.transform(docs), nv.transform(docs))


def test_unsupported_configurations_say_why():
    cases = [(CountVectorizer(analyzer=str.split), "callable analyzer"),
             (CountVectorizer(token_pattern=r"(?u)\b\w\w\w+\b"), "token_pattern"),
             (CountVectorizer(preprocessor=str.upper), "preprocessor"),
             (TfidfVectorizer(dtype=np.float32), "float64"),
             (CountVectorizer(strip_accents=lambda s: s), "strip_accents")]
    for v, why in cases:
        v.fit(["aaa bbb ccc"])
        with pytest.raises(HostOnly, match=why):
            NativeVectorizer(v)
    with pytest.raises(HostOnly, match="not fitted"):
        NativeVectorizer(CountVectorizer())


@settings(max_examples=200)
@given(st.lists(st.one_of(st.sampled_from("ab_1 \t!"), st.sampled_from(HARD)),
               max_size=30).map("".join))
def test_token_patterns_equivalent(doc):
    """Every accepted token pattern is runs of >= n word characters (the kernel's rule)."""
    runs = re.findall(r"\w+", doc)
    for pattern, n in TOKEN_PATTERNS.items():
        assert re.findall(pattern, doc) == [r for r in runs if len(r) >= n]


def test_pickle_roundtrip():
    v, nv = native("count_word")
    again = pickle.loads(pickle.dumps(nv))
    assert_same_matrix(v.transform(CORPUS[:20]), again.transform(CORPUS[:20]))


# -- fused linear models ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fused_setup():
    word, _ = native("tfidf_word12_sublinear")
    char, _ = native("tfidf_charwb25_noidf")
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(len(CORPUS), 3))
    dense[rng.random(dense.shape) < 0.3] = 0.0
    X = sp.hstack([word.transform(CORPUS), char.transform(CORPUS), dense], format="csr")
    y = np.array([("a" in d) + ("😀" in d) for d in CORPUS])
    models = {
        "logreg_binary": (LogisticRegression(max_iter=500).fit(X, y > 0), "predict_proba"),
        "logreg_multi": (LogisticRegression(max_iter=500).fit(X, y), "predict_proba"),
        "ridge": (Ridge().fit(X, dense[:, 0]), "predict"),
        "linear_svc": (LinearSVC().fit(X, y > 0), "decision_function"),
        "sgd": (SGDClassifier(random_state=0).fit(X, y), "predict"),
    }
    fused = {k: FusedTextLinear([("text", word), ("text", char), ("dense", 3)], m, meth)
             for k, (m, meth) in models.items()}
    return word, char, models, fused


def _expected(word, char, model, method, docs, dense):
    X = sp.hstack([word.transform(docs), char.transform(docs), sp.csr_matrix(dense)],
                  format="csr")
    return np.asarray(getattr(model, method)(X))


@pytest.mark.parametrize("name", ["logreg_binary", "logreg_multi", "ridge", "linear_svc", "sgd"])
def test_fused_corpus_bit_exact(fused_setup, name):
    word, char, models, fused = fused_setup
    model, method = models[name]
    dense = np.linspace(-2, 2, 3 * len(CORPUS)).reshape(-1, 3)
    dense[::4, 1] = 0.0
    got = fused[name](CORPUS, CORPUS, dense)
    assert np.array_equal(got, _expected(word, char, model, method, CORPUS, dense))
    raw, rows, _ = fused[name].raw(CORPUS, CORPUS, dense)
    X = sp.hstack([word.transform(CORPUS), char.transform(CORPUS), sp.csr_matrix(dense)],
                  format="csr")
    decision = X @ fused[name].linear.coef.T + fused[name].linear.intercept
    assert len(rows) == 0 and np.array_equal(raw, decision)  # tolerance 0


@settings(max_examples=40)
@given(docs=docs_strategy, seed=st.integers(0, 2 ** 16))
def test_fused_drawn(fused_setup, docs, seed):
    word, char, models, fused = fused_setup
    dense = np.random.default_rng(seed).normal(size=(len(docs), 3))
    dense[:, 2] = 0.0
    if len(docs) and seed % 7 == 0:
        dense[0, 0] = [np.nan, np.inf][seed % 2]
    for name in ("logreg_binary", "ridge"):
        model, method = models[name]
        try:
            expected = _expected(word, char, model, method, docs, dense)
        except ValueError as exc:  # no rows, NaN or infinity: scikit-learn's error
            with pytest.raises(ValueError, match=re.escape(str(exc)[:30])):
                fused[name](docs, docs, dense)
            continue
        assert np.array_equal(fused[name](docs, docs, dense), expected)


def test_fused_host_rows(fused_setup):
    word, char, models, fused = fused_setup
    model, method = models["logreg_binary"]
    docs = np.array(["the cat", b"the cat", "ok ok"], dtype=object)
    dense = np.ones((3, 3))
    assert np.array_equal(fused["logreg_binary"](docs, docs, dense),
                          _expected(word, char, model, method, docs, dense))


# -- statistics ---------------------------------------------------------------------------------------

STATS = [("len", ""), ("count", "!"), ("count", "ab"), ("count", ""), ("word_count", ""),
         ("upper_eq", ""), ("startswith", "İ"), ("endswith", "😀"), ("contains", "ß")]
_STAT_FNS = [len, lambda s: s.count("!"), lambda s: s.count("ab"), lambda s: s.count(""),
             lambda s: len(s.split()), lambda s: s.upper() == s, lambda s: s.startswith("İ"),
             lambda s: s.endswith("😀"), lambda s: "ß" in s]
_STATS_KERNEL = []


def stats_kernel():
    if not _STATS_KERNEL:
        _STATS_KERNEL.append(TextStats(STATS, _STAT_FNS))
    return _STATS_KERNEL[0]


@settings(max_examples=100)
@given(docs=st.lists(st.one_of(texts, st.text(alphabet="ab! İß😀ABC\n", max_size=12)),
                     max_size=10))
def test_stats_drawn(docs):
    got = stats_kernel()(np.array(docs, dtype=object) if docs else np.zeros(0, object))
    expected = np.array([[int(fn(d)) for fn in _STAT_FNS] for d in docs],
                        dtype=np.int64).reshape(len(docs), len(STATS))
    assert np.array_equal(got, expected)


def test_stats_non_str_rows_use_python():
    class S(str):
        pass
    got = stats_kernel()(np.array(["ab!", S("AB"), "x"], dtype=object))
    assert got[1].tolist() == [int(fn(S("AB"))) for fn in _STAT_FNS]
    with pytest.raises(TypeError):
        stats_kernel()(np.array(["ab", None], dtype=object))


# -- threads ------------------------------------------------------------------------------------------

class _Spy:
    """Stands in for a kernel's ctypes function: records the row ranges and threads of calls."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = []

    def __call__(self, ctx, begin, end):
        import threading
        self.calls.append((begin, end, threading.current_thread().name))
        return self.fn(ctx, begin, end)


def _spied(obj):
    spy = _Spy(obj.kernel.fn)
    obj.kernel.fn = spy
    return spy


@pytest.fixture
def small_split(monkeypatch):
    """Split batches from a few rows on, so a test corpus is split."""
    import codegen.text_runtime as tr
    monkeypatch.setattr(tr, "MIN_ROWS_PER_THREAD", 8)
    monkeypatch.setattr(tr, "MIN_STATS_ROWS_PER_THREAD", 8)


def _threaded_docs():
    """The corpus with rows the kernel hands to scikit-learn, and a long row that makes one
    range grow its buffers, in both halves."""
    docs = list(CORPUS[:120])
    docs[5] = b"bytes row"
    docs[100] = "ΣΑ ab " * 2000
    docs[110] = " ".join(["ok"] * (LOG_TABLE_SIZE + 5))
    return np.array(docs, dtype=object)


@pytest.mark.parametrize("name", ["tfidf_word12_sublinear", "tfidf_char14_l1", "hashing_word"])
def test_transform_threads_identical(small_split, name):
    v, _ = native(name)
    nv = NativeVectorizer(v, threads=2)
    spy = _spied(nv)
    docs = _threaded_docs()
    assert_same_matrix(v.transform(docs), nv.transform(docs))
    assert {(0, 60), (60, 120)} <= {(a, b) for a, b, _ in spy.calls}  # (then restarts)
    assert any(t.startswith("mloc") for *_, t in spy.calls)  # one range ran on the pool
    assert_same_matrix(v.transform(docs[:3]), nv.transform(docs[:3]))  # too few rows: 1 range


def test_fused_threads_identical(fused_setup, small_split):
    word, char, models, _ = fused_setup
    docs = _threaded_docs()
    dense = np.random.default_rng(1).normal(size=(len(docs), 3))
    for name in ("logreg_multi", "ridge"):
        model, method = models[name]
        one = FusedTextLinear([("text", word), ("text", char), ("dense", 3)], model, method)
        two = FusedTextLinear([("text", word), ("text", char), ("dense", 3)], model, method,
                              threads=2)
        spy = _spied(two)
        got = two(docs, docs, dense)
        assert np.array_equal(got, one(docs, docs, dense))
        assert np.array_equal(got, _expected(word, char, model, method, docs, dense))
        assert any(t.startswith("mloc") for *_, t in spy.calls)
        assert "split over 2 threads" in two.describe()


def test_stats_threads_identical(small_split):
    docs = np.array([d for d in CORPUS[:100]] + [np.str_("x")], dtype=object)
    two = TextStats(STATS, _STAT_FNS, threads=2)
    spy = _spied(two)
    assert np.array_equal(two(docs), stats_kernel()(docs))
    assert len({(a, b) for a, b, _ in spy.calls}) == 2


def test_threads_must_be_positive():
    v, _ = native("count_word")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        NativeVectorizer(v, threads=0)
    assert NativeVectorizer(v, threads=None).threads >= 1  # one per core
    again = pickle.loads(pickle.dumps(NativeVectorizer(v, threads=2)))
    assert again.threads == 2
