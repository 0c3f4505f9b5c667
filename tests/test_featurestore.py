"""Feature-store tables in the embedded memory:// store: the front end, the interpreter and
compiled pipelines against local tables and plain Python; publish errors; faults on a server
that is down or never answers (no redis-server needed). Redis itself: test_featurestore_redis."""
from __future__ import annotations

import pickle
import socket
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import mloc_ir
from mloc_ir import featurestore as fs
from mloc_ir.errors import UnsupportedConstruct
from runtime.host import run_host_stage

WEATHER_FRAME = pd.DataFrame({"wkey": [1, 2, 3, 4, 7], "temp": [10.0, 20.5, np.nan, -3.0, 0.0],
                              "gust": [1, 2, 3, 4, 5], "sky": ["sun", "rain", None, "fog", "sun"]})
RATE_DICT = {"x": 0.25, "y": 0.5, "z": -1.0}
CODE_DICT = {1: 3, 2: 4, 3.5: 9}

# module-level tables the pipelines below read (set by the `tables` fixture)
WEATHER = RATE = CODE = None


def local_predict(df):
    df = df.merge(WEATHER_FRAME, on="wkey", how="left")
    rate = np.array([RATE_DICT.get(c, 0.1) for c in df["cat"]])
    code = df["n"].map(CODE_DICT).fillna(-1)
    return df["temp"].fillna(0) * 2 + df["gust"] + rate + code


def remote_predict(df):
    df = df.merge(WEATHER.fetch(df["wkey"]), on="wkey", how="left")
    rate = np.array([RATE.get(c, 0.1) for c in df["cat"]])
    code = df["n"].map(CODE).fillna(-1)
    return df["temp"].fillna(0) * 2 + df["gust"] + rate + code


def sky_of(df):
    df = df.merge(WEATHER.fetch(df["wkey"]), on="wkey", how="left")
    return df["sky"].map(SKY_CODE)


SKY_CODE = {"sun": 1.0, "rain": 2.0, "fog": 3.0}


@pytest.fixture(autouse=True)
def tables():
    g = globals()
    g["WEATHER"] = fs.publish(WEATHER_FRAME, key="wkey", url="memory://tests", name="weather")
    g["RATE"] = fs.publish(RATE_DICT, url="memory://tests", name="rate")
    g["CODE"] = fs.publish(CODE_DICT, url="memory://tests", name="code")
    yield


def frame(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"wkey": rng.choice([1, 2, 3, 4, 5, 7, 9], n).astype(float),
                         "cat": rng.choice(["x", "y", "z", "w"], n).astype(object),
                         "n": rng.choice([1.0, 2.0, 3.0, 3.5, np.nan], n)})


def test_remote_pipeline_equals_local_tables_and_plain_python():
    df = frame(500)
    expected = local_predict(df).to_numpy()
    assert np.array_equal(remote_predict(df).to_numpy(), expected, equal_nan=True)
    g = mloc_ir.parse(remote_predict)
    assert np.array_equal(mloc_ir.interpret(g, df), expected, equal_nan=True)
    cp = mloc_ir.compile(remote_predict)
    assert np.array_equal(cp(df), expected, equal_nan=True)
    assert np.array_equal(cp(df.iloc[:1]), expected[:1], equal_nan=True)
    assert len(cp(df.iloc[:0])) == 0
    text = cp.explain()
    assert "in the feature store at memory://tests" in text


def test_ir_names_store_tables_and_types_them_like_local_ones():
    remote, local = mloc_ir.parse(remote_predict), mloc_ir.parse(local_predict)
    types = lambda g: [(n.op, str(n.type)) for n in g.nodes() if n.op in ("join", "lookup")]
    assert types(remote) == types(local)
    assert "table=WEATHER:mloc_ir.StoreTable" in str(remote)


def test_string_fields_and_missing_keys():
    df = frame(300, seed=1)
    expected = df.merge(WEATHER_FRAME, on="wkey", how="left")["sky"].map(SKY_CODE).to_numpy()
    assert np.array_equal(sky_of(df).to_numpy(), expected, equal_nan=True)
    assert np.array_equal(mloc_ir.compile(sky_of)(df), expected, equal_nan=True)


def test_one_request_per_table_per_batch():
    cp = mloc_ir.compile(remote_predict)
    df = frame(5000, seed=2)
    before = {t.name: t.requests for t in (WEATHER, RATE, CODE)}
    cp(df)
    assert {t.name: t.requests - before[t.name] for t in (WEATHER, RATE, CODE)} == \
        {"weather": 1, "rate": 1, "code": 1}
    assert WEATHER.keys_requested >= 5000


def test_python_key_equality_and_empty_batches():
    t = fs.publish({1: 0.5, 2.5: 1.5, True if False else 7: 2.0}, url="memory://tests", name="k")
    keys = np.array([1.0, 1, 2.5, np.nan, 3, -0.0, 7])
    expected = np.array([{1: 0.5, 2.5: 1.5, 7: 2.0}.get(k, -1.0) for k in keys])
    assert np.array_equal(t.lookup(keys, -1.0, "f64"), expected)
    assert np.array_equal(t.lookup(np.array([True, False]), -1.0, "f64"), [0.5, -1.0])
    assert t.lookup(np.zeros(0), -1.0, "f64").shape == (0,)
    assert t.lookup(np.array(["1"], dtype=object), -1.0, "f64").tolist() == [-1.0]  # "1" != 1
    assert t.get(1.0) == 0.5 and t.get(99, "no") == "no" and 2.5 in t and 3 not in t


class LoudKey(str):
    """A str subclass whose own equality would merge keys the store tells apart."""

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


def test_long_object_key_columns_match_like_a_dict_row_by_row():
    """Past 32 rows an object column is canonicalized once per distinct object: rows sharing
    an object, equal keys held by different objects or types (1, 1.0, True, np.int64), NaN
    objects, None, unhashable keys and a str subclass with its own __eq__ each get what a
    per-row dict lookup gets (unhashable keys: the default)."""
    def reference(table, k):
        try:
            return table.get(k, -1.0)
        except TypeError:
            return -1.0

    strings = {"x": 1.5, "y": 2.5}
    numbers = {1: 0.5, 2.5: 3.0}
    pools = {
        "s": (strings, ["x", "".join(["", "x"]), "y", np.str_("y"), LoudKey("z"), LoudKey("x"),
                        "q", None, float("nan"), 1, [1]]),
        "n": (numbers, [1, 1.0, True, np.int64(1), np.float64(1.0), 2.5, np.float32(2.5),
                        float("nan"), np.nan, None, "1", 3, -0.0, [2.5]]),
    }
    rng = np.random.default_rng(0)
    for name, (table, pool) in pools.items():
        t = fs.publish(table, url="memory://tests", name=f"objkeys-{name}")
        keys = np.empty(400, dtype=object)
        keys[:] = [pool[i] for i in rng.integers(0, len(pool), 400)]
        got = t.lookup(keys, -1.0, "f64").tolist()
        assert got == [reference(table, k) for k in keys.tolist()], name
        assert got[:20] == t.lookup(keys[:20], -1.0, "f64").tolist()  # the short path agrees
        codes, _ = fs._encode_keys(keys)
        assert len(codes) == len(set(codes))  # equal keys: one request key


def test_int_values_stay_ints_in_plain_python_and_the_ir():
    assert CODE.get(1, 0) == 3 and isinstance(CODE.get(1, 0), int)

    def codes(n):
        return np.array([CODE.get(v, 0) for v in n])
    g = mloc_ir.parse(codes)
    assert str(g.nodes()[-1].type) == "i64"
    x = np.array([1.0, 2, 5])
    assert np.array_equal(mloc_ir.interpret(g, x), codes(x))
    assert mloc_ir.interpret(g, x).dtype == codes(x).dtype


def test_saved_pipeline_reads_the_store_again(tmp_path):
    cp = mloc_ir.compile(remote_predict)
    df = frame(50, seed=3)
    path = cp.save(tmp_path / "remote")
    from codegen.pipeline import load_pipeline
    assert np.array_equal(load_pipeline(path)(df), cp(df), equal_nan=True)
    t = pickle.loads(pickle.dumps(WEATHER))
    assert t.name == "weather" and t._backend is None


def test_republished_with_other_columns_is_an_error():
    old = WEATHER
    fs.publish(WEATHER_FRAME[["wkey", "temp"]], key="wkey", url="memory://tests", name="weather")
    with pytest.raises(fs.FeatureStoreError, match="republished with other columns"):
        old.fetch([1])
    again = fs.connect("weather", "memory://tests")
    assert again.fetch([1]).columns.tolist() == ["wkey", "temp"]


@pytest.mark.parametrize("table, kwargs, match", [
    (pd.DataFrame({"k": [1, 1], "v": [1.0, 2.0]}), {"key": "k"}, "not unique"),
    (pd.DataFrame({"k": [1.0, np.nan], "v": [1.0, 2.0]}), {"key": "k"}, "NaN or missing keys"),
    (pd.DataFrame({"k": [1, 2], "v": [1.0, 2.0]}), {"key": "z"}, "key= naming one of"),
    (pd.DataFrame({"k": [1, 2], "v": [1.0, 2.0]}), {}, "key= naming one of"),
    (pd.DataFrame({"k": [1, "a"], "v": [1.0, 2.0]}), {"key": "k"}, "mixes number and str keys"),
    (pd.DataFrame({"k": [1, 2], "v": ["a", 3]}), {"key": "k"}, "mixes strings with int"),
    ({1: None}, {}, "holds None"),
    ({1: 2}, {"key": "k"}, "a dict is keyed already"),
    ([1, 2], {}, "takes a DataFrame"),
    ({1: 2}, {"url": "http://x"}, "unknown feature store URL"),
    ({1: 2}, {"on_error": "ignore"}, "on_error must be one of"),
    ({1: 2}, {"timeout": 0}, "timeout must be a positive"),
    ({1: 2}, {"name": "a:b"}, "without ':'"),
])
def test_publish_errors(table, kwargs, match):
    with pytest.raises(fs.FeatureStoreError, match=match):
        fs.publish(table, **kwargs)


def test_connect_to_a_missing_table():
    with pytest.raises(fs.FeatureStoreError, match="'nope' is not in the store at memory://tests"):
        fs.connect("nope", "memory://tests")


def merge_store_itself(df):
    return df.merge(WEATHER, on="wkey", how="left")["temp"]


def merge_other_column(df):
    return df.merge(WEATHER.fetch(df["a"]), on="wkey", how="left")["temp"]


def get_without_default(x):
    return np.array([RATE.get(v) for v in x])


def map_frame_table(s):
    return s.map(WEATHER)


def frame_get(x):
    return np.array([WEATHER.get(v, 0) for v in x])


@pytest.mark.parametrize("fn, match", [
    (merge_store_itself, r"merging the feature store table WEATHER itself.*\n.*WEATHER.fetch"),
    (merge_other_column, r"merging WEATHER.fetch\(x\) on the column 'wkey', which is not x"),
    (get_without_default, r"RATE.get with 1 argument.*\n.*RATE.get\(key, default\)"),
    (map_frame_table, r"\.map\(\) of the feature store frame table WEATHER"),
    (frame_get, r"WEATHER.get\(\) of a feature store frame table"),
])
def test_front_end_errors(fn, match):
    with pytest.raises(UnsupportedConstruct, match=match):
        mloc_ir.parse(fn)


# -- faults (no server needed) ------------------------------------------------------------------

@pytest.fixture
def silent_server():
    """A loopback port that accepts connections and never answers (a stalled server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    conns = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(sock.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    sock.close()


def dead_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # nothing listens there now


def remote_table(url, **options):
    pytest.importorskip("redis")
    schema = {"kind": "dict", "key": "key", "key_kind": "str", "columns": [["value", "f64"]]}
    return fs.StoreTable("rate", url, schema, **options)


def test_server_down_is_a_clear_error_naming_table_and_url():
    url = dead_url()
    t = remote_table(url, timeout=0.5)
    t0 = time.perf_counter()
    with pytest.raises(fs.FeatureStoreError, match=f"table 'rate' at {url}: cannot reach the server"):
        t.lookup(np.array(["x"], dtype=object), 0.0, "f64")
    assert time.perf_counter() - t0 < 2.0
    with pytest.raises(fs.FeatureStoreError, match=f"at {url}"):
        fs.publish(RATE_DICT, url=url, timeout=0.5)


def test_stalled_server_times_out(silent_server):
    t = remote_table(silent_server, timeout=0.3)
    t0 = time.perf_counter()
    with pytest.raises(fs.FeatureStoreError, match="no answer within the timeout of 0.3 s"):
        t.lookup(np.array(["x", "y"], dtype=object), 0.0, "f64")
    assert time.perf_counter() - t0 < 2.0


def test_opt_in_defaults_count_failures(silent_server):
    t = remote_table(silent_server, timeout=0.2, on_error="default")
    keys = np.array(["x", "y", "x"], dtype=object)
    for i in (1, 2):
        with pytest.warns(fs.FeatureStoreWarning, match=rf"3 row\(s\) take their defaults \({i} "
                                                        r"failed request\(s\) so far\)"):
            assert t.lookup(keys, 0.5, "f64").tolist() == [0.5, 0.5, 0.5]
    assert t.stats()["errors"] == 2 and t.stats()["defaulted_rows"] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fs.FeatureStoreWarning)
        assert t.with_options(on_error="default").get("x", 7.0) == 7.0
    with pytest.raises(fs.FeatureStoreError, match="timeout"):
        t.with_options(on_error="raise").lookup(keys, 0.5, "f64")


class _SlowBackend:
    """Wraps a backend: every request waits ``delay`` seconds first."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay
        self.round_trips = 0

    def mget(self, keys):
        time.sleep(self.delay)
        return self.inner.mget(keys)


def test_lookups_in_different_stores_overlap():
    a = fs.publish(RATE_DICT, url="memory://a", name="ra")
    b = fs.publish(RATE_DICT, url="memory://b", name="rb")
    a._backend = _SlowBackend(a.backend, 0.3)
    b._backend = _SlowBackend(b.backend, 0.3)
    globals().update(RA=a, RB=b)

    def two_stores(cat):
        return np.array([RA.get(c, 0.0) for c in cat]) + np.array([RB.get(c, 0.0) for c in cat])
    g = mloc_ir.parse(two_stores)
    env = {g.input_nodes()[0].id: np.array(["x", "y", "q"], dtype=object)}
    host = [n.id for n in g.nodes() if n.op == "lookup"]
    t0 = time.perf_counter()
    run_host_stage(g, host, env)
    assert time.perf_counter() - t0 < 0.55  # both 0.3 s requests at once
    assert env[host[0]].tolist() == [0.25, 0.5, 0.0] == env[host[1]].tolist()


# -- the cascade planner measures remote groups like any other --------------------------------

SLOW = None
CASCADE_MODEL = None


def cascade_predict(df):
    df = df.merge(SLOW.fetch(df["key"]), on="key", how="left")
    a = df["a"] * 2
    b = np.log1p(np.abs(df["b"]))
    X = np.column_stack([a, b, df["r1"] + df["r2"]])
    return CASCADE_MODEL.predict_proba(X)[:, 1]


def test_remote_group_is_costed_and_lands_behind_the_cascade():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    n = 4000
    table = pd.DataFrame({"key": np.arange(200), "r1": rng.normal(size=200),
                          "r2": rng.normal(size=200)})
    slow = fs.publish(table, key="key", url="memory://slow", name="slow")
    slow._backend = _SlowBackend(slow.backend, 0.01)  # a 10 ms round trip
    globals()["SLOW"] = slow
    df = pd.DataFrame({"key": rng.integers(0, 250, n).astype(float), "a": rng.normal(size=n),
                       "b": rng.normal(size=n)})
    merged = df.merge(table, on="key", how="left")
    y = (3 * merged["a"] + 0.2 * merged["r1"].fillna(0) > 0).astype(int).to_numpy()
    X = np.column_stack([merged["a"] * 2, np.log1p(np.abs(merged["b"])),
                         merged["r1"] + merged["r2"]])
    globals()["CASCADE_MODEL"] = lgb.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1,
                                                    random_state=0).fit(X, y)
    cp = mloc_ir.compile(cascade_predict, train=({"df": df}, y), cascades=True,
                         accuracy_target=0.99, progress=False, timing_rows=500, repeats=1,
                         backend="interpreted")
    costs = {g.name: g.cost for g in cp.report.groups}
    local = [costs["a_1"], costs["b_1"]]  # a * 2 and log1p(|b|)
    assert costs["add"] > 10 * max(local), costs  # r1 + r2: the remote join's group
    assert cp.approx is not None, cp.explain()
    test = df.iloc[:2000]
    before = slow.keys_requested
    out = cp(test)
    sent = slow.keys_requested - before
    assert sent == cp.last_stats["stage2_rows"] < len(test)  # only unsure rows read the store
    agree = np.mean((out >= 0.5) == (cascade_predict(test) >= 0.5))
    assert agree >= 0.98


# -- the fast read path: reply parsing, key encoding, decoding, reads sent together -----------

class _ChunkedSocket:
    """A socket stand-in that hands out ``data`` ``step`` bytes per recv."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step, self.pos = data, step, 0

    def recv(self, n):
        chunk = self.data[self.pos:self.pos + min(n, self.step)]
        self.pos += len(chunk)
        return chunk


@pytest.mark.parametrize("step", [1, 3, 7, 1 << 20])
def test_reply_reader_parses_arrays_in_any_chunking(step):
    from runtime.stores import ReplyReader
    values = [b"abc", None, b"", b"\r\n$3\r\n*1\r\n", None, bytes(range(256))]
    body = b""
    for i, v in enumerate(values):
        body += (b"$-1\r\n" if i % 2 else b"_\r\n") if v is None else b"$%d\r\n%s\r\n" % (len(v), v)
    second = b"*2\r\n$1\r\nx\r\n_\r\n"
    reader = ReplyReader(_ChunkedSocket(b"*%d\r\n" % len(values) + body + second + b"*0\r\n",
                                        step))
    assert reader.array() == values
    assert reader.array() == [b"x", None]
    assert reader.array() == []


def test_reply_reader_errors():
    from runtime.stores import ReplyReader, StoreReplyError
    with pytest.raises(StoreReplyError, match="WRONGTYPE Operation"):
        ReplyReader(_ChunkedSocket(b"-WRONGTYPE Operation against a key\r\n", 4)).array()
    with pytest.raises(StoreReplyError, match="blob failure"):
        ReplyReader(_ChunkedSocket(b"!12\r\nblob failure\r\n", 2)).array()
    with pytest.raises(StoreReplyError, match="unexpected reply"):
        ReplyReader(_ChunkedSocket(b"*1\r\n:5\r\n", 64)).array()
    with pytest.raises(ConnectionError, match="closed"):
        ReplyReader(_ChunkedSocket(b"*2\r\n$3\r\nab", 64)).array()  # cut off mid-reply


def test_pack_command_is_resp():
    from runtime.stores import pack_command
    assert pack_command(b"MGET", [b"a", b"\r\n"]) == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$2\r\n\r\n\r\n"


def _reference_codes(values):
    """Distinct canonical keys and per-row indices, one key at a time (the definition)."""
    index, codes, inverse = {}, [], []
    for v in np.asarray(values).tolist():
        c = fs._canonical(v)
        if c not in index:
            index[c] = len(codes)
            codes.append(c)
        inverse.append(index[c])
    return codes, inverse


@pytest.mark.parametrize("values", [
    np.array([1.0, -0.0, 0.0, np.nan, 2.5, 1e300, 2.0 ** 60, -3.0, np.inf, -np.inf, 1.0, np.nan]),
    np.array([3, 1, 3, -7, 2 ** 62], dtype=np.int64),
    np.array([5, 1, 5], dtype=np.uint64),
    np.array([True, False, True]),
    np.array([1.5, 2.5], dtype=np.float32),
    np.array(["b", "a", "b", "é", "\ud800x"] * 20, dtype=object),
    np.array(["x", 1, 1.0, True, None, np.nan, "x", np.int64(1), 2.5] * 5, dtype=object),
])
def test_encoded_keys_match_python_equality(values):
    codes, inverse = fs._encode_keys(values)
    ref_codes, ref_inverse = _reference_codes(values)
    assert sorted(map(repr, codes)) == sorted(map(repr, ref_codes))
    assert len(set(codes)) == len(codes)
    # rows share a code exactly when the definition says they do
    assert [codes[i] for i in inverse] == [ref_codes[i] for i in ref_inverse]


def test_string_fields_decode_none_nan_and_repeats():
    frame = pd.DataFrame({"k": [1, 2, 3, 4], "a": ["x", None, "é" * 3, "x"],
                          "b": [np.nan, "y", "", "x"], "v": [1.0, 2.0, 3.0, 4.0]})
    t = fs.publish(frame, key="k", url="memory://tests", name="strings")
    out = t.join(np.array([4, 3, 2, 1, 9.0]), [("a", "str"), ("b", "str"), ("v", "f64")],
                 (None, None, np.nan))
    held = frame["a"].tolist()[1]  # None, or NaN in pandas' string dtype: kept as held
    assert out["a"][[0, 1, 3, 4]].tolist() == ["x", "ééé", "x", None]
    assert out["a"][2] is held or (np.isnan(out["a"][2]) and np.isnan(held))
    assert out["b"][:3].tolist() == ["x", "", "y"] and np.isnan(out["b"][3])
    assert np.array_equal(out["v"], [4.0, 3.0, 2.0, 1.0, np.nan], equal_nan=True)


def test_reads_of_one_store_go_in_one_round_trip():
    a = fs.publish(RATE_DICT, url="memory://together", name="ta")
    b = fs.publish({"x": 1, "q": 2}, url="memory://together", name="tb")
    c = fs.publish(RATE_DICT, url="memory://elsewhere", name="tc")
    keys = np.array(["x", "y", "q", "x"], dtype=object)
    trips = a.backend.round_trips, c.backend.round_trips
    out = fs.read_together([a.lookup_read(keys, 0.0, "f64"), b.lookup_read(keys, -1, "i64"),
                            c.lookup_read(keys, 0.5, "f64")])
    assert a.backend.round_trips - trips[0] == 1 and c.backend.round_trips - trips[1] == 1
    assert out[0].tolist() == a.lookup(keys, 0.0, "f64").tolist() == [0.25, 0.5, 0.0, 0.25]
    assert out[1].tolist() == [1, -1, 2, 1] and out[1].dtype == np.int64
    assert out[2].tolist() == [0.25, 0.5, 0.5, 0.25]
    assert (a.requests, b.requests, c.requests) == (2, 1, 1)  # a.lookup above: one more


def test_failed_round_trip_applies_each_tables_policy(silent_server):
    soft = remote_table(silent_server, timeout=0.2, on_error="default")
    schema = {"kind": "dict", "key": "key", "key_kind": "str", "columns": [["value", "f64"]]}
    hard = fs.StoreTable("other", silent_server, schema, timeout=0.2)
    keys = np.array(["x"], dtype=object)
    with pytest.warns(fs.FeatureStoreWarning):
        with pytest.raises(fs.FeatureStoreError, match="table 'other'.*timeout of 0.2 s"):
            fs.read_together([soft.lookup_read(keys, 1.5, "f64"), hard.lookup_read(keys, 0, "f64")])
    assert soft.stats()["errors"] == 1 and soft.backend.round_trips >= 1
