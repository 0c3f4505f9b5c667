"""Credit card default: a tabular pipeline over raw account columns, scored by LightGBM.

Data: UCI "default of credit card clients" (``credit/credit.csv`` under ``$MLOC_DATA_DIR``;
https://archive.ics.uci.edu/dataset/350, or pycaret/datasets ``data/common/credit.csv``).

The features are what an analyst would build: credit utilisation, how much of last month's
bill was paid, the trend of the bill, counts of late payments, and the training-split default
rate of the client's education level and marital status (a module-level lookup table). The
model is a LightGBM ``Booster`` with 1000 trees, trained at import and cached.

    from examples import credit_pipeline as cp
    p = cp.predict(**cp.columns(cp.TEST))
"""
from __future__ import annotations

import os
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script (python examples/x.py): find the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples._support import (  # noqa: E402
    cached_model, data_file, fast_mode, feature_matrix, planning_split,
    random_split)

SOURCE_URL = "https://archive.ics.uci.edu/dataset/350/default+of+credit+card+clients"

# raw CSV column -> predict() parameter
RAW_COLUMNS = {
    "LIMIT_BAL": "limit_bal", "SEX": "sex", "EDUCATION": "education", "MARRIAGE": "marriage",
    "AGE": "age", "PAY_1": "pay_1", "PAY_2": "pay_2", "PAY_3": "pay_3",
    "BILL_AMT1": "bill_1", "BILL_AMT2": "bill_2", "BILL_AMT3": "bill_3",
    "PAY_AMT1": "pay_amt_1", "PAY_AMT2": "pay_amt_2", "PAY_AMT3": "pay_amt_3",
}
LABEL = "default"


def load_credit() -> pd.DataFrame:
    return pd.read_csv(data_file("credit/credit.csv", SOURCE_URL))


DATA = load_credit()
TRAIN, TEST = random_split(DATA)
FIT, PLANNING = planning_split(TRAIN)  # the model and its lookup tables see FIT only

# Target encoding of two categoricals, from the fitting rows only.
BASE_RATE = float(FIT[LABEL].mean())
EDUCATION_RATE = FIT.groupby("EDUCATION")[LABEL].mean().to_dict()
MARRIAGE_RATE = FIT.groupby("MARRIAGE")[LABEL].mean().to_dict()


def columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """predict()'s keyword arguments for the rows of a raw credit frame."""
    return {param: frame[col].to_numpy() for col, param in RAW_COLUMNS.items()}


def predict(limit_bal, sex, education, marriage, age, pay_1, pay_2, pay_3,
            bill_1, bill_2, bill_3, pay_amt_1, pay_amt_2, pay_amt_3):
    """Probability of default next month, one row per account."""
    utilisation = bill_1 / limit_bal
    mean_utilisation = (bill_1 + bill_2 + bill_3) / (3 * limit_bal)
    # share of the previous statement that was paid; no bill means nothing was owed
    paid_ratio_1 = np.where(bill_2 > 0, pay_amt_1 / np.maximum(bill_2, 1), 1.0)
    paid_ratio_2 = np.where(bill_3 > 0, pay_amt_2 / np.maximum(bill_3, 1), 1.0)
    bill_trend = (bill_1 - bill_3) / (np.abs(bill_3) + 1)
    months_late = (pay_1 > 0).astype(int) + (pay_2 > 0).astype(int) + (pay_3 > 0).astype(int)
    worst_delay = np.maximum(np.maximum(pay_1, pay_2), pay_3)
    education_rate = np.array([EDUCATION_RATE.get(e, BASE_RATE) for e in education])
    marriage_rate = np.array([MARRIAGE_RATE.get(m, BASE_RATE) for m in marriage])
    total_paid = np.log1p(pay_amt_1 + pay_amt_2 + pay_amt_3)
    X = np.column_stack([
        np.log1p(limit_bal), age, sex, pay_1, utilisation, mean_utilisation, paid_ratio_1,
        paid_ratio_2, bill_trend, months_late, worst_delay, education_rate, marriage_rate,
        total_paid,
    ])
    return BOOSTER.predict(X)


def train_booster(num_trees: int, learning_rate: float) -> lgb.Booster:
    X = feature_matrix(predict, "BOOSTER", **columns(FIT))
    # one training thread: two OpenMP threads on a shared 2-core machine were 10-20x slower;
    # Booster.predict still uses every core (it takes no thread count from training)
    params = {"objective": "binary", "learning_rate": learning_rate, "num_leaves": 31,
              "min_data_in_leaf": 40, "feature_fraction": 0.8, "bagging_fraction": 0.8,
              "bagging_freq": 1, "seed": 0, "num_threads": 1, "verbosity": -1,
              "deterministic": True}
    return lgb.train(params, lgb.Dataset(X, FIT[LABEL].to_numpy()), num_boost_round=num_trees)


NUM_TREES = 100 if fast_mode() else 1000
BOOSTER = cached_model("credit", train_booster, depends_on=(predict,),
                       data_path=data_file("credit/credit.csv", SOURCE_URL), num_trees=NUM_TREES,
                       learning_rate=0.02 if NUM_TREES >= 1000 else 0.1)


def main() -> None:
    from sklearn.metrics import roc_auc_score

    import mloc_ir
    graph = mloc_ir.parse(predict)
    print(graph)
    for group in mloc_ir.feature_groups(graph, graph.find("model")[0].id):
        print(" ", group)
    p = predict(**columns(TEST))
    assert np.array_equal(mloc_ir.interpret(graph, **columns(TEST)), p)
    print(f"{NUM_TREES} trees, held-out AUC {roc_auc_score(TEST[LABEL], p):.4f}")


if __name__ == "__main__":
    main()
