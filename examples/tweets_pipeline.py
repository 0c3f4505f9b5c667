"""Offensive tweets: word 1-2-gram and character 2-6-gram TF-IDF plus a few text statistics,
scored by a logistic regression.

Data: Davidson et al., "Automated Hate Speech Detection and the Problem of Offensive Language"
(``tweets/labeled_data.csv`` under ``$MLOC_DATA_DIR``;
https://github.com/t-davidson/hate-speech-and-offensive-language, ``data/labeled_data.csv``).
Column ``tweet`` is the raw text; ``class`` is 0 hate speech, 1 offensive, 2 neither. The task
here is binary: hateful or offensive (class 0 or 1) against neither.

    from examples import tweets_pipeline as tp
    p = tp.predict(tp.TEST["tweet"].to_numpy())
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

if __package__ in (None, ""):  # run as a script (python examples/x.py): find the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples._support import (  # noqa: E402
    cached_model, data_file, fast_mode, feature_matrix, random_split)

SOURCE_URL = ("https://github.com/t-davidson/hate-speech-and-offensive-language/raw/master/"
              "data/labeled_data.csv")


def load_tweets() -> pd.DataFrame:
    frame = pd.read_csv(data_file("tweets/labeled_data.csv", SOURCE_URL))
    frame["offensive"] = (frame["class"] != 2).astype(int)
    return frame


DATA = load_tweets()
TRAIN, TEST = random_split(DATA)


def predict(tweets):
    """Probability that each tweet is hateful or offensive."""
    words = WORD_TFIDF.transform(tweets)
    chars = CHAR_TFIDF.transform(tweets)
    length = np.array([len(t) for t in tweets])
    exclamations = np.array([t.count("!") for t in tweets])
    mentions = np.array([t.count("@") for t in tweets])
    n_words = np.array([len(t.split()) for t in tweets])
    shouting = np.array([t.upper() == t for t in tweets])
    stats = np.column_stack([np.log1p(length), exclamations, mentions, n_words / 10, shouting])
    X = scipy.sparse.hstack([words, chars, stats])
    return CLASSIFIER.predict_proba(X)[:, 1]


def train(n_rows: int, max_words: int, max_chars: int, C: float):
    # a subsample keeps training to about a minute of CPU (character 2-6-grams dominate; the
    # fast mode used by the tests takes about 15 s)
    rows = TRAIN.iloc[:n_rows]
    texts = rows["tweet"].to_numpy()
    word_tfidf = TfidfVectorizer(lowercase=True, ngram_range=(1, 2), min_df=2,
                                 max_features=max_words, sublinear_tf=True)
    char_tfidf = TfidfVectorizer(analyzer="char", ngram_range=(2, 6), min_df=3,
                                 max_features=max_chars, sublinear_tf=True)
    word_tfidf.fit(texts)
    char_tfidf.fit(texts)
    # the pipeline reads the vectorizers from module globals: publish them before tapping it
    globals().update(WORD_TFIDF=word_tfidf, CHAR_TFIDF=char_tfidf)
    X = feature_matrix(predict, "CLASSIFIER", texts)
    classifier = LogisticRegression(C=C, max_iter=1000)
    classifier.fit(X, rows["offensive"].to_numpy())
    return word_tfidf, char_tfidf, classifier


_SIZES = (dict(n_rows=4000, max_words=5000, max_chars=5000) if fast_mode() else
          dict(n_rows=12000, max_words=20000, max_chars=30000))
WORD_TFIDF, CHAR_TFIDF, CLASSIFIER = cached_model(
    "tweets", train, depends_on=(predict,),
    data_path=data_file("tweets/labeled_data.csv", SOURCE_URL), C=4.0, **_SIZES)
#: Training rows the model never saw: where mloc's cascade planner certifies its agreement.
PLANNING = TRAIN.iloc[_SIZES["n_rows"]:]
#: The rows the model was trained on (unlabelled, a planner may distil on them).
MODEL_ROWS = TRAIN.iloc[:_SIZES["n_rows"]]


def main() -> None:
    from sklearn.metrics import roc_auc_score

    import mloc_ir
    graph = mloc_ir.parse(predict)
    print(graph)
    for group in mloc_ir.feature_groups(graph, graph.find("model")[0].id):
        print(" ", group)
    texts = TEST["tweet"].to_numpy()
    p = predict(texts)
    assert np.array_equal(mloc_ir.interpret(graph, texts), p)
    print(f"held-out AUC {roc_auc_score(TEST['offensive'], p):.4f}")


if __name__ == "__main__":
    main()
