"""Bank marketing: does a client subscribe a term deposit? String categoricals go through
lookup tables (target rates and codes from the training split), numbers through the usual
transforms; a LightGBM Booster scores the row.

Data: UCI bank marketing (``bank/bank.csv`` under ``$MLOC_DATA_DIR``;
https://archive.ics.uci.edu/dataset/222/bank+marketing).
"""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from examples._support import (cached_model, data_file, fast_mode, feature_matrix, planning_split,
                                random_split)

SOURCE_URL = "https://archive.ics.uci.edu/dataset/222/bank+marketing"
LABEL = "deposit"


def load_bank() -> pd.DataFrame:
    frame = pd.read_csv(data_file("bank/bank.csv", SOURCE_URL))
    frame[LABEL] = (frame[LABEL] == "yes").astype(int)
    return frame


DATA = load_bank()
TRAIN, TEST = random_split(DATA)
FIT, PLANNING = planning_split(TRAIN)  # the model and its lookup tables see FIT only

BASE_RATE = float(FIT[LABEL].mean())
JOB_RATE = FIT.groupby("job")[LABEL].mean().to_dict()
EDUCATION_RATE = FIT.groupby("education")[LABEL].mean().to_dict()
POUTCOME_RATE = FIT.groupby("poutcome")[LABEL].mean().to_dict()
MONTH_NUMBER = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
MARITAL_CODE = {"single": 0, "married": 1, "divorced": 2}
CONTACT_CODE = {"cellular": 0, "telephone": 1, "unknown": 2}
YES = {"yes": 1.0, "no": 0.0}


def predict(df):
    """Probability that each client (a row of bank.csv) subscribes."""
    job_rate = df["job"].map(JOB_RATE).fillna(BASE_RATE)
    education_rate = df["education"].map(EDUCATION_RATE).fillna(BASE_RATE)
    poutcome_rate = np.array([POUTCOME_RATE.get(p, BASE_RATE) for p in df["poutcome"]])
    month = df["month"].map(MONTH_NUMBER).fillna(0)
    marital = df["marital"].map(MARITAL_CODE).fillna(-1)
    contact = df["contact"].map(CONTACT_CODE).fillna(-1)
    housing = df["housing"].map(YES).fillna(0)
    loan = df["loan"].map(YES).fillna(0)
    in_default = df["default"].map(YES).fillna(0)
    balance = np.sign(df["balance"]) * np.log1p(np.abs(df["balance"]))
    minutes = df["duration"] / 60
    never_contacted = (df["pdays"] == -1).astype(float)
    contacts_per_previous = df["campaign"] / (df["previous"] + 1)
    X = np.column_stack([
        df["age"], job_rate, education_rate, poutcome_rate, month, df["day"], marital, contact,
        housing, loan, in_default, balance, minutes, df["campaign"], never_contacted,
        contacts_per_previous,
    ])
    return BOOSTER.predict(X)


def train_booster(num_trees: int) -> lgb.Booster:
    X = feature_matrix(predict, "BOOSTER", FIT)
    # one training thread: two OpenMP threads on a shared 2-core machine were 10-20x slower;
    # Booster.predict still uses every core (it takes no thread count from training)
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31,
              "min_data_in_leaf": 40, "feature_fraction": 0.8, "bagging_fraction": 0.8,
              "bagging_freq": 1, "seed": 0, "num_threads": 1, "verbosity": -1,
              "deterministic": True}
    return lgb.train(params, lgb.Dataset(X, FIT[LABEL].to_numpy()), num_boost_round=num_trees)


BOOSTER = cached_model("bank", train_booster, depends_on=(predict,),
                       data_path=data_file("bank/bank.csv", SOURCE_URL),
                       num_trees=60 if fast_mode() else 500)
