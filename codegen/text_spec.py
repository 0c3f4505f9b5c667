"""What a fitted scikit-learn vectorizer does, in the terms the native text kernel needs.

:func:`vectorizer_spec` reads a fitted ``CountVectorizer``, ``TfidfVectorizer`` or
``HashingVectorizer`` and returns a :class:`VectorizerSpec`, or raises :class:`HostOnly`
saying why its ``transform`` stays in scikit-learn (a callable analyzer, a custom
preprocessor, a token pattern not proven equivalent to a run of word characters, ...).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class HostOnly(ValueError):
    """The vectorizer (or model) runs in scikit-learn: the message says why."""


#: Token patterns equal to "maximal runs of >= n word characters" for ``str`` documents.
#: ``\b\w\w+\b`` matches a run only from its first character (``\b``) and greedily to its end;
#: without ``\b`` the greedy ``\w\w+`` still starts at the first character of a run (the
#: match is tried left to right and the run's first position matches) and takes the whole
#: run; ``(?u)`` is the default for ``str`` patterns.  Tested against ``re.findall``.
TOKEN_PATTERNS = {
    r"(?u)\b\w\w+\b": 2, r"\b\w\w+\b": 2, r"(?u)\w\w+": 2, r"\w\w+": 2,
    r"(?u)\b\w+\b": 1, r"\b\w+\b": 1, r"(?u)\w+": 1, r"\w+": 1,
}
#: Largest count whose ``log`` comes from a table computed with NumPy (rows with a larger
#: count of one term go to the host).
LOG_TABLE_SIZE = 4096
_COUNT_DTYPES = (np.int64, np.int32, np.float64, np.float32)


@dataclass
class VectorizerSpec:
    """One fitted vectorizer's ``transform`` as the kernel computes it."""

    kind: str  # "count" | "tfidf" | "hashing"
    analyzer: str  # "word" | "char" | "char_wb"
    ngram_range: tuple[int, int]
    lowercase: bool
    strip_accents: str | None  # None | "ascii" | "unicode"
    min_token: int  # word analyzer: shortest token (1 or 2)
    stop_words: frozenset | None
    vocabulary: dict | None  # term -> column (count/tfidf)
    n_features: int
    binary: bool
    dtype: np.dtype  # the output matrix's dtype
    sublinear_tf: bool = False
    idf: np.ndarray | None = None  # tfidf with use_idf
    norm: str | None = None
    alternate_sign: bool = True  # hashing


def _exact_type(v, names):
    from sklearn.feature_extraction import text
    for name in names:
        if type(v) is getattr(text, name):
            return name
    return None


def vectorizer_spec(v) -> VectorizerSpec:
    """The :class:`VectorizerSpec` of a fitted vectorizer, or :class:`HostOnly`."""
    kind_name = _exact_type(v, ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer"))
    if kind_name is None:
        raise HostOnly(f"{type(v).__name__} is not one of CountVectorizer, TfidfVectorizer, "
                       "HashingVectorizer (subclasses may change transform)")
    kind = {"CountVectorizer": "count", "TfidfVectorizer": "tfidf",
            "HashingVectorizer": "hashing"}[kind_name]
    if v.input != "content":
        raise HostOnly(f"input={v.input!r} (only 'content' documents compile)")
    if v.preprocessor is not None:
        raise HostOnly("a custom preprocessor")
    if callable(v.analyzer):
        raise HostOnly("a callable analyzer")
    if v.analyzer not in ("word", "char", "char_wb"):
        raise HostOnly(f"analyzer={v.analyzer!r}")
    strip = v.strip_accents or None
    if strip not in (None, "ascii", "unicode"):
        raise HostOnly(f"strip_accents={v.strip_accents!r} (only 'ascii' and 'unicode' compile)")
    lo, hi = v.ngram_range
    if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer))
            and 1 <= lo <= hi <= 16):
        raise HostOnly(f"ngram_range={v.ngram_range!r} (1 <= min_n <= max_n <= 16 compile)")
    min_token, stop = 0, None
    if v.analyzer == "word":
        if v.tokenizer is not None:
            raise HostOnly("a custom tokenizer")
        if v.token_pattern not in TOKEN_PATTERNS:
            raise HostOnly(f"token_pattern={v.token_pattern!r} is not one proven equivalent to "
                           f"runs of word characters ({', '.join(sorted(TOKEN_PATTERNS))})")
        min_token = TOKEN_PATTERNS[v.token_pattern]
        stop = v.get_stop_words()
        stop = None if stop is None else frozenset(s for s in stop if isinstance(s, str))
    dtype = np.dtype(v.dtype)
    common = dict(analyzer=v.analyzer, ngram_range=(int(lo), int(hi)), lowercase=bool(v.lowercase),
                  strip_accents=strip, min_token=min_token, stop_words=stop, binary=bool(v.binary),
                  dtype=dtype)
    if kind == "hashing":
        if dtype != np.float64:
            raise HostOnly(f"HashingVectorizer(dtype={dtype}) (float64 compiles)")
        if v.norm not in (None, "l1", "l2"):
            raise HostOnly(f"norm={v.norm!r}")
        return VectorizerSpec(kind, vocabulary=None, n_features=int(v.n_features),
                              norm=v.norm, alternate_sign=bool(v.alternate_sign), **common)
    vocab = getattr(v, "vocabulary_", None)
    if vocab is None:
        raise HostOnly(f"{kind_name} is not fitted")
    vocab = {str(k): int(i) for k, i in vocab.items()}
    n_features = max(vocab.values(), default=-1) + 1
    if kind == "count":
        if not any(dtype == d for d in _COUNT_DTYPES):
            raise HostOnly(f"CountVectorizer(dtype={dtype}) (int32/int64/float32/float64 compile)")
        return VectorizerSpec(kind, vocabulary=vocab, n_features=n_features, **common)
    if dtype != np.float64:
        raise HostOnly(f"TfidfVectorizer(dtype={dtype}) (float64 compiles)")
    tf = v._tfidf
    idf = np.asarray(tf.idf_, np.float64) if hasattr(tf, "idf_") else None
    if tf.norm not in (None, "l1", "l2"):
        raise HostOnly(f"norm={tf.norm!r}")
    if idf is not None and len(idf) != n_features:
        raise HostOnly("idf_ does not match the vocabulary")
    return VectorizerSpec(kind, vocabulary=vocab, n_features=n_features,
                          sublinear_tf=bool(tf.sublinear_tf), idf=idf, norm=tf.norm, **common)


def log_table() -> np.ndarray:
    """``np.log(k) + 1.0`` for ``k = 0 .. LOG_TABLE_SIZE`` as scikit-learn computes it
    (``np.log(X.data, X.data); X.data += 1.0``), entry 0 unused."""
    k = np.arange(LOG_TABLE_SIZE + 1, dtype=np.float64)
    k[0] = 1.0
    out = np.log(k)
    out += 1.0
    return out


_KIND_NAMES = {"count": "CountVectorizer", "tfidf": "TfidfVectorizer",
               "hashing": "HashingVectorizer"}


def summary(spec: VectorizerSpec) -> str:
    """One line saying what the kernel computes, e.g. ``TfidfVectorizer(char 2-6-grams, 30000
    terms, lowercase, sublinear tf, idf, l2)`` (for ``explain()``)."""
    lo, hi = spec.ngram_range
    grams = f"{lo}-gram" if lo == hi else f"{lo}-{hi}-gram"
    bits = [f"{spec.analyzer} {grams}s"]
    if spec.kind == "hashing":
        sign = "signed" if spec.alternate_sign else "unsigned"
        bits.append(f"{spec.n_features} MurmurHash3 buckets, {sign}")
    else:
        bits.append(f"{len(spec.vocabulary)} terms")
    if spec.lowercase:
        bits.append("lowercase")
    if spec.strip_accents:
        bits.append(f"strip_accents={spec.strip_accents}")
    if spec.stop_words:
        bits.append(f"{len(spec.stop_words)} stop words")
    if spec.binary:
        bits.append("binary")
    if spec.sublinear_tf:
        bits.append("sublinear tf")
    if spec.idf is not None:
        bits.append("idf")
    if spec.kind != "count":
        bits.append(f"norm={spec.norm}")
    return f"{_KIND_NAMES[spec.kind]}({', '.join(bits)})"
