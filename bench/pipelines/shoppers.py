"""Online shoppers: does a session end in a purchase (Willump's "Purchase")? Session ratios,
month and visitor-type lookups, a LightGBM classifier.

Data: UCI Online Shoppers Purchasing Intention (``shoppers/online_shoppers_intention.csv``
under ``$MLOC_DATA_DIR``; https://archive.ics.uci.edu/dataset/468).
"""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from examples._support import (cached_model, data_file, fast_mode, feature_matrix, planning_split,
                                random_split, serving_threads)

SOURCE_URL = "https://archive.ics.uci.edu/dataset/468/online+shoppers+purchasing+intention+dataset"
LABEL = "Revenue"


def load_shoppers() -> pd.DataFrame:
    frame = pd.read_csv(data_file("shoppers/online_shoppers_intention.csv", SOURCE_URL))
    frame[LABEL] = frame[LABEL].astype(int)
    frame["Weekend"] = frame["Weekend"].astype(float)
    return frame


DATA = load_shoppers()
TRAIN, TEST = random_split(DATA)
FIT, PLANNING = planning_split(TRAIN)  # the model and its lookup tables see FIT only

BASE_RATE = float(FIT[LABEL].mean())
MONTH_RATE = FIT.groupby("Month")[LABEL].mean().to_dict()
VISITOR_RATE = FIT.groupby("VisitorType")[LABEL].mean().to_dict()
TRAFFIC_RATE = FIT.groupby("TrafficType")[LABEL].mean().to_dict()


def predict(df):
    """Probability that each session (a row of the shoppers CSV) buys."""
    pages = df["Administrative"] + df["Informational"] + df["ProductRelated"]
    seconds = df["Administrative_Duration"] + df["Informational_Duration"] \
        + df["ProductRelated_Duration"]
    seconds_per_page = seconds / np.maximum(pages, 1)
    product_share = df["ProductRelated"] / np.maximum(pages, 1)
    product_seconds = np.log1p(df["ProductRelated_Duration"])
    value_per_page = df["PageValues"] / np.maximum(df["ProductRelated"], 1)
    month_rate = df["Month"].map(MONTH_RATE).fillna(BASE_RATE)
    visitor_rate = np.array([VISITOR_RATE.get(v, BASE_RATE) for v in df["VisitorType"]])
    traffic_rate = df["TrafficType"].map(TRAFFIC_RATE).fillna(BASE_RATE)
    X = np.column_stack([
        pages, seconds_per_page, product_share, product_seconds, df["BounceRates"],
        df["ExitRates"], df["PageValues"], value_per_page, df["SpecialDay"], month_rate,
        visitor_rate, traffic_rate, df["Weekend"], df["Region"],
    ])
    return MODEL.predict_proba(X)[:, 1]


def train_model(n_trees: int) -> lgb.LGBMClassifier:
    X = feature_matrix(predict, "MODEL", FIT)
    model = lgb.LGBMClassifier(n_estimators=n_trees, learning_rate=0.03, num_leaves=15,
                               min_child_samples=30, subsample=0.8, subsample_freq=1,
                               colsample_bytree=0.8, random_state=0, n_jobs=1, verbose=-1)
    model.fit(X, FIT[LABEL].to_numpy())  # one thread: see examples._support.serving_threads
    return serving_threads(model)


MODEL = cached_model("shoppers", train_model, depends_on=(predict,),
                     data_path=data_file("shoppers/online_shoppers_intention.csv", SOURCE_URL),
                     n_trees=50 if fast_mode() else 400)
