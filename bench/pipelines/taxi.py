"""NYC yellow taxi trips: the fare (LightGBM regression) and whether the rider tips (LightGBM
classifier), from pickup time, a location-pair lookup and distance features.

The timestamps are parsed with pandas in three helper functions; mloc inlines them
(``pd.to_datetime``, ``.dt`` fields and ``total_seconds`` become IR ops, the 'YYYY-MM-DD
HH:MM:SS' strings parsed by a native kernel, the fields computed by pandas on the host), so
only the two LightGBM models' work is left in the fused native stage.  The pipeline returns
two values, which cascades and top-K do not take.

Data: NYC TLC yellow trips, monthly 10k-row samples of 2019 (``taxi/*.csv`` under
``$MLOC_DATA_DIR``; great-expectations ``tests/test_sets/taxi_yellow_tripdata_samples``).
"""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from examples._support import (cached_model, data_dir, data_file, fast_mode, feature_matrix,
                                random_split, serving_threads)

SOURCE_URL = ("https://github.com/great-expectations/great_expectations/tree/develop/tests/"
              "test_sets/taxi_yellow_tripdata_samples")
LABEL = "fare_amount"
TIP_LABEL = "tipped"
DTYPES = {"pickup_datetime": "str", "dropoff_datetime": "str"}  # for mloc: text columns


def load_taxi() -> pd.DataFrame:
    data_file("taxi/yellow_tripdata_sample_2019-01.csv", SOURCE_URL)  # a clear error if absent
    files = sorted((data_dir() / "taxi").glob("yellow_tripdata_sample_2019-*.csv"))
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    frame = frame[(frame["fare_amount"] > 0) & (frame["fare_amount"] < 250)]
    frame = frame[frame["payment_type"] == 1].reset_index(drop=True)  # card tips are recorded
    frame[TIP_LABEL] = (frame["tip_amount"] > 0).astype(int)
    return frame


DATA = load_taxi()
TRAIN, TEST = random_split(DATA)

_pairs = TRAIN.assign(pair=TRAIN["pickup_location_id"] * 1000 + TRAIN["dropoff_location_id"])
PAIR_FARE = _pairs.groupby("pair")["fare_amount"].median().to_dict()
PAIR_TIP_RATE = _pairs.groupby("pair")[TIP_LABEL].mean().to_dict()
MEDIAN_FARE = float(TRAIN["fare_amount"].median())
TIP_RATE = float(TRAIN[TIP_LABEL].mean())


def pickup_hour(timestamps):
    """Hour of day plus minutes as a fraction, from 'YYYY-MM-DD HH:MM:SS' strings."""
    t = pd.Series(pd.to_datetime(timestamps))
    return (t.dt.hour + t.dt.minute / 60).to_numpy(dtype=float)


def pickup_weekday(timestamps):
    return pd.Series(pd.to_datetime(timestamps)).dt.dayofweek.to_numpy(dtype=float)


def trip_minutes(pickup, dropoff):
    seconds = pd.to_datetime(np.asarray(dropoff)) - pd.to_datetime(np.asarray(pickup))
    return np.asarray(seconds.total_seconds(), dtype=float) / 60


def predict(df):
    """(fare, probability of a tip) for each trip (a row of the TLC CSV)."""
    hour = pickup_hour(df["pickup_datetime"])
    weekday = pickup_weekday(df["pickup_datetime"])
    minutes = trip_minutes(df["pickup_datetime"], df["dropoff_datetime"])
    pair = df["pickup_location_id"] * 1000 + df["dropoff_location_id"]
    pair_fare = np.array([PAIR_FARE.get(p, MEDIAN_FARE) for p in pair])
    pair_tip = np.array([PAIR_TIP_RATE.get(p, TIP_RATE) for p in pair])
    miles = np.clip(df["trip_distance"], 0, 100)
    speed = miles / np.maximum(minutes / 60, 0.01)
    airport = ((df["rate_code_id"] == 2) | (df["rate_code_id"] == 3)).astype(float)
    X = np.column_stack([miles, np.log1p(miles), minutes, speed, hour, weekday, pair_fare,
                         pair_tip, df["passenger_count"], airport, df["vendor_id"]])
    return FARE_MODEL.predict(X), TIP_MODEL.predict_proba(X)[:, 1]


def train_models(n_trees: int):
    rows = TRAIN.iloc[:40_000]
    globals()["TIP_MODEL"] = None
    X = feature_matrix(predict, "FARE_MODEL", rows)
    # one training thread each: see examples._support.serving_threads
    fare = lgb.LGBMRegressor(n_estimators=n_trees, learning_rate=0.05, num_leaves=31,
                             random_state=0, n_jobs=1, verbose=-1)
    fare.fit(X, rows[LABEL].to_numpy())
    tip = lgb.LGBMClassifier(n_estimators=n_trees, learning_rate=0.05, num_leaves=31,
                             random_state=0, n_jobs=1, verbose=-1)
    tip.fit(X, rows[TIP_LABEL].to_numpy())
    return serving_threads(fare), serving_threads(tip)


FARE_MODEL, TIP_MODEL = cached_model("taxi", train_models, depends_on=(predict,),
                                     data_path=data_file("taxi/yellow_tripdata_sample_2019-01.csv",
                                                         SOURCE_URL),
                                     n_trees=50 if fast_mode() else 300)
