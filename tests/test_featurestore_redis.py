"""Feature-store tables in a real Redis server (started on a free loopback port for this
module; skipped, saying why, only when none can be started): equivalence with the in-memory
store and local tables, one MGET per table per batch (counted by the server's own INFO
commandstats), missing keys, a server that goes away, a paused server, opt-in defaults."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

import mloc_ir
from mloc_ir import featurestore as fs
from tests.redis_server import free_port, redis_server, start_server  # noqa: F401 (fixture)

PLANES_FRAME = pd.DataFrame({"tailnum": ["N1", "N2", "N3", "N4"], "seats": [100, 150, 8, 200],
                             "built": [1999.0, np.nan, 2010.0, 2005.0],
                             "engine": ["Turbo-fan", "Turbo-jet", None, "Turbo-fan"]})
ENGINE_CODE = {"Turbo-fan": 1, "Turbo-jet": 2}

PLANES = MEMORY_PLANES = ENGINES = None


def local_predict(df):
    df = df.merge(PLANES_FRAME, on="tailnum", how="left")
    engine = df["engine"].map(ENGINE_CODE).fillna(0)
    return df["seats"] * 0.01 + (2013 - df["built"]).clip(lower=0) + engine


def remote_predict(df):
    df = df.merge(PLANES.fetch(df["tailnum"]), on="tailnum", how="left")
    engine = df["engine"].map(ENGINES).fillna(0)
    return df["seats"] * 0.01 + (2013 - df["built"]).clip(lower=0) + engine


def memory_predict(df):
    df = df.merge(MEMORY_PLANES.fetch(df["tailnum"]), on="tailnum", how="left")
    engine = df["engine"].map(ENGINE_CODE).fillna(0)
    return df["seats"] * 0.01 + (2013 - df["built"]).clip(lower=0) + engine


@pytest.fixture(scope="module")
def tables(redis_server):
    url, _ = redis_server
    g = globals()
    g["PLANES"] = fs.publish(PLANES_FRAME, key="tailnum", url=url, name="planes", timeout=2.0)
    g["ENGINES"] = fs.publish(ENGINE_CODE, url=url, name="engines", timeout=2.0)
    g["MEMORY_PLANES"] = fs.publish(PLANES_FRAME, key="tailnum", url="memory://redis-tests",
                                    name="planes")
    return url


def flights(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"tailnum": rng.choice(["N1", "N2", "N3", "N4", "N9", "X"], n)
                         .astype(object)})


def mget_calls(client) -> int:
    return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))


def test_published_in_one_pipelined_write(redis_server, tables):
    url, client = redis_server
    assert client.get(b"mloc:planes:schema") is not None
    assert len(client.keys(b"mloc:planes:k:*")) == len(PLANES_FRAME)
    again = fs.connect("planes", url)
    assert again.fetch(["N2"]).equals(PLANES.fetch(["N2"]))


def test_redis_equals_memory_store_local_tables_and_plain_python(tables):
    df = flights(2000)
    expected = local_predict(df).to_numpy()
    assert np.array_equal(remote_predict(df).to_numpy(), expected, equal_nan=True)
    assert np.array_equal(memory_predict(df).to_numpy(), expected, equal_nan=True)
    assert np.array_equal(mloc_ir.interpret(mloc_ir.parse(remote_predict), df), expected,
                          equal_nan=True)
    cp = mloc_ir.compile(remote_predict)
    assert np.array_equal(cp(df), expected, equal_nan=True)
    assert np.array_equal(cp(df.iloc[3:4]), expected[3:4], equal_nan=True)
    assert "in the feature store at redis://127.0.0.1" in cp.explain()


def test_one_mget_per_table_per_batch(redis_server, tables):
    _, client = redis_server
    cp = mloc_ir.compile(remote_predict)
    for n in (1, 1000, 60_000):  # 60k keys still one request (MGETs pipelined)
        df = flights(n, seed=n)
        before, requests = mget_calls(client), PLANES.requests
        cp(df)
        # one request per table, each a single MGET (60k rows hold only 6 distinct keys)
        assert PLANES.requests - requests == 1
        assert mget_calls(client) - before == 2  # planes + engines


def test_missing_keys_take_the_defaults(tables):
    df = pd.DataFrame({"tailnum": ["N9", "X", "N1"]})
    out = mloc_ir.compile(remote_predict)(df)
    assert np.isnan(out[:2]).all() and out[2] == local_predict(df).to_numpy()[2]
    assert ENGINES.get("nope", -1) == -1
    assert ENGINES.lookup(np.array(["Turbo-jet", "x"], dtype=object), -1, "i64").tolist() == [2, -1]


def test_server_down_then_defaults_when_opted_in():
    port = free_port()
    proc, client = start_server(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        t = fs.publish(ENGINE_CODE, url=url, name="gone", timeout=0.5)
        assert t.get("Turbo-fan", 0) == 1
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=5)
    t0 = time.perf_counter()
    with pytest.raises(fs.FeatureStoreError, match=f"table 'gone' at {url}: cannot reach"):
        t.lookup(np.array(["Turbo-fan"], dtype=object), 0, "i64")
    assert time.perf_counter() - t0 < 2.0
    soft = t.with_options(on_error="default")
    with pytest.warns(fs.FeatureStoreWarning, match=r"1 failed request\(s\) so far"):
        assert soft.lookup(np.array(["Turbo-fan", "x"], dtype=object), 0, "i64").tolist() == [0, 0]
    assert soft.stats()["errors"] == 1


def test_paused_server_times_out(redis_server, tables):
    _, client = redis_server
    quick = PLANES.with_options(timeout=0.3)
    quick.fetch(["N1"])  # connected before the pause
    client.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    try:
        t0 = time.perf_counter()
        with pytest.raises(fs.FeatureStoreError, match="no answer within the timeout of 0.3 s"):
            quick.fetch(["N1"])
        assert time.perf_counter() - t0 < 2.0
        with pytest.warns(fs.FeatureStoreWarning):
            out = quick.with_options(on_error="default").join(
                np.array(["N1"], dtype=object), [("seats", "f64")], (np.nan,))
        assert np.isnan(out["seats"]).all()
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
    assert PLANES.fetch(["N1"])["seats"].tolist() == [100.0]  # the table recovers


WEATHER_FRAME = pd.DataFrame({"wkey": [1, 2, 3], "temp": [10.0, np.nan, -2.5]})
WEATHER = None


def two_tables_predict(df):
    df = df.merge(WEATHER.fetch(df["wkey"]), on="wkey", how="left")
    df = df.merge(PLANES.fetch(df["tailnum"]), on="tailnum", how="left")
    return df["temp"].fillna(0) + df["seats"] * 0.01


def test_lookups_of_one_stage_share_one_round_trip(redis_server, tables):
    url, client = redis_server
    globals()["WEATHER"] = fs.publish(WEATHER_FRAME, key="wkey", url=url, name="weather2",
                                      timeout=2.0)
    cp = mloc_ir.compile(two_tables_predict)
    df = flights(5000, seed=3).assign(wkey=np.random.default_rng(3).choice([1, 2, 3, 4.0], 5000))
    expected = two_tables_predict(df).to_numpy()
    trips, mgets = PLANES.backend.round_trips, mget_calls(client)
    assert np.array_equal(cp(df), expected, equal_nan=True)
    assert PLANES.backend.round_trips - trips == 1  # weather and planes: one round trip
    assert mget_calls(client) - mgets == 2  # ... carrying one MGET per table


def test_server_error_reply_names_the_table(redis_server, tables):
    url, client = redis_server
    # a user the server lets connect but not read mloc's keys: MGET answers -NOPERM
    client.execute_command("ACL", "SETUSER", "limited", "on", ">secret", "~other:*", "+@all")
    limited_url = url.replace("redis://", "redis://limited:secret@")
    t = fs.StoreTable("planes", limited_url, json.loads(PLANES._schema_bytes), timeout=2.0,
                      on_error="default")
    with pytest.raises(fs.FeatureStoreError, match="table 'planes' at redis://limited:.*server "
                                                   "answered an error.*NOPERM"):
        t.fetch(["N1"])
    assert PLANES.fetch(["N1"])["seats"].tolist() == [100.0]  # other connections unaffected
    with pytest.raises(fs.FeatureStoreError, match="NOPERM"):
        t.fetch(["N1"])  # the limited connection was dropped and made again
