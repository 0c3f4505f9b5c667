"""String-keyed lookups and joins in fused native kernels: Python == interpreter == native.

Keys are drawn from full Unicode (lone surrogates included), empty strings, keys that differ only
in case or by a combining character, keys holding NUL (anywhere, also trailing, which NumPy's
fixed-width ``U`` arrays would drop), very long keys, keys absent from the table, and elements
that are not strings at all (None, NaN, numbers, bytes, ``np.str_``, an unhashable list).  Every
targeted pipeline must really run natively (``Case`` asserts that no node runs on the host).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen import pipeline_strings as ps
from codegen.pipeline import compile_pipeline, load_pipeline
from codegen.pipeline_strkeys import encode_column
from mloc_ir import parse

from .test_pipeline_codegen import (BLOCK, FAST, HEADER, Case, assert_exact, case, load_source,
                                    three_way)

LONG = "k" * 3000
#: keys of the tables, chosen to be near one another
KEYS = ["a", "A", "b", "ab", "aB", "", " ", "\u00e9", "e\u0301", "x\0", "\0", "\0x", "a\0b",
        "\u00df", "SS", "ss", "\U0001F600", "\ud800", "\udfff", "\u65e5\u672c", LONG,
        LONG + "!", "DL", "UA", "N12345"]
#: strings that are not keys but close to some
NEAR = ["x", "x\0\0", "\0\0", "e", "\u0301", "\U0001F601", "\ud801", LONG[:-1], LONG + "?",
        "aa", "a ", " a", "ABC", "n12345"]
NAN = float("nan")
#: row elements that are not str (NAN is also a key of D: same object, so Python finds it)
ODD = [None, NAN, np.nan, float("nan"), 3, 3.0, True, 0, b"a", np.str_("a"), np.str_("zz"),
       (1, 2), 2 ** 70]

STR_HEADER = HEADER + f"""
LONG = "k" * 3000
NAN = float("nan")
KEYS = {KEYS!r}
D = {{k: float(i) - 0.5 for i, k in enumerate(KEYS)}}
D.update({{3: 30.0, None: 31.0, NAN: 32.0, b"a": 33.0, (1, 2): 34.0}})
DI = {{k: i * 7 - 20 for i, k in enumerate(KEYS[::2])}}
DB = {{k: i % 3 == 0 for i, k in enumerate(KEYS)}}
DS = {{k: float(i) * 0.25 for i, k in enumerate(KEYS) if i % 2}}
DF = {{k: np.float32(i) / np.float32(3) for i, k in enumerate(KEYS)}}
ENC = {{"Turbo-fan": 1.0, "Turbo-jet": 2.0, "": 3.0, "\\0": 4.0, "\\u00e9": 5.0}}
T = pd.DataFrame({{"key": pd.Series(KEYS[::-1], dtype=object),
                   "v": np.linspace(-3.0, 4.0, len(KEYS)),
                   "n": np.arange(len(KEYS), dtype=np.int64) - 5,
                   "e": pd.Series(["Turbo-fan", None, "", "\\0", "\\u00e9", "x"] * 4 + ["a"],
                                  dtype=object)}})
"""

str_chars = st.characters(exclude_categories=())
ANY_STR = st.one_of(st.sampled_from(KEYS + NEAR), st.text(str_chars, max_size=12),
                    st.text(st.sampled_from("aAbB\0\u0301\u00e9\ud800"), max_size=6))


def _obj(items) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@st.composite
def key_column(draw, odd: bool = True, lengths=(1, 2, 7, 8, 9, 17, 40)):
    """An object column of keys: mostly near-miss strings, sometimes not strings at all."""
    n = draw(st.sampled_from(lengths))
    elem = st.one_of(ANY_STR, st.sampled_from(ODD)) if odd else ANY_STR
    return _obj(draw(st.lists(elem, min_size=n, max_size=n)))


# ---------------------------------------------------------------------------------------------
# Comprehension lookups: D.get(t, default)

GET_BODY = ("def predict(s, x):\n"
            "    a = np.array([D.get(t, -1.25) for t in s])\n"
            "    b = np.array([DI.get(t, 99) for t in s])\n"
            "    c = np.array([DB.get(t, False) for t in s])\n"
            "    d = np.array([DS.get(t, np.nan) for t in s])\n"
            "    e = np.array([DF.get(t, np.float32(-0.0)) for t in s])\n"
            "    return a * x + b, c, d, a, e\n")


def get_case():
    return case("str_get", lambda: Case(GET_BODY, {"s": "str", "x": "f64"}, header=STR_HEADER))


@FAST
@given(s=key_column())
def test_dict_get_on_strings(s):
    c = get_case()
    c.check({"s": s, "x": np.linspace(-1.0, 2.0, len(s))})


def test_dict_get_every_key_and_near_miss():
    c = get_case()
    table_nan = c.fn.__globals__["NAN"]  # the NaN object that is a key of D
    s = _obj(KEYS + NEAR + ODD + [table_nan])
    c.check({"s": s, "x": np.ones(len(s))})
    a = c.compiled(s, np.ones(len(s)))[3]
    # a NaN key matches the very same object only, as in Python
    assert a[-1] == 32.0 and a[len(KEYS) + len(NEAR) + 1] == -1.25
    assert a[len(KEYS) + len(NEAR) + 4] == 30.0  # 3 == 3.0 == True... is the key 3


def test_unhashable_element_raises_like_python():
    c = get_case()
    s = _obj(["a", [1, 2], "b"])
    c.check({"s": s, "x": np.ones(3)})  # all three raise TypeError
    with pytest.raises(TypeError, match="unhashable"):
        c.compiled(s, np.ones(3))


def test_bytes_and_unicode_input_arrays():
    c = get_case()
    for s in (np.array([b"a", b"", b"x\0"]), np.array(["a", "\u00e9", "x"]), ["a", "zz", ""]):
        c.check({"s": s, "x": np.ones(len(s))})


# ---------------------------------------------------------------------------------------------
# pandas: Series.map(D) (+ fillna), left merges on str keys, lookups on joined strings

MAP_BODY = ("def predict(df):\n"
            "    r = df['k'].map(DS).fillna(0.5)\n"
            "    q = df['k'].map(DI)\n"
            "    m = df.merge(T, on='key', how='left')\n"
            "    e = m['e'].map(ENC).fillna(-1)\n"
            "    return (r + q).to_numpy(), (m['v'] * 2 + m['n']).to_numpy(), e.to_numpy(), "
            "(m['n'] + 0.0).to_numpy()\n")


def map_case():
    return case("str_map", lambda: Case(MAP_BODY, {"df.k": "str", "df.key": "str"},
                                        header=STR_HEADER))


def _frame(k, key, as_object: bool):
    """Object columns, or the str dtype pandas infers (a column of missing values only would
    infer float64, which the interpreter refuses for a str input: kept as object then)."""
    cols = {}
    for name, values in (("k", list(k)), ("key", list(key))):
        infer = not as_object and any(isinstance(v, str) for v in values)
        cols[name] = pd.Series(values) if infer else pd.Series(values, dtype=object)
    return pd.DataFrame(cols)


ODD_PANDAS = [None, np.nan]  # what pandas' str columns hold for missing values


@FAST
@given(data=st.data())
def test_series_map_and_left_merge(data):
    c = map_case()
    n = data.draw(st.sampled_from([1, 2, 7, 9, 17, 40]))
    elem = st.one_of(ANY_STR, st.sampled_from(ODD_PANDAS))
    k = data.draw(st.lists(elem, min_size=n, max_size=n))
    key = data.draw(st.lists(elem, min_size=n, max_size=n))
    c.check({"df": _frame(k, key, data.draw(st.booleans()))})


def test_merge_every_key():
    c = map_case()
    key = KEYS + NEAR + [None, np.nan]
    k = (KEYS * 2)[:len(key)]
    for as_object in (True, False):
        c.check({"df": _frame(k, key, as_object)})


def test_pandas_programs_compile_to_one_native_stage():
    c = map_case()
    assert [s.kind for s in c.compiled.plan.stages] == ["native"]
    ops = sorted(c.graph[i].op for i in c.compiled.plan.stages[0].nodes)
    assert ops.count("lookup") == 3 and ops.count("join") == 1


NUM_HEADER = STR_HEADER + """
TI = pd.DataFrame({"id": np.array([3, -1, 7, 0, 12], dtype=np.int64),
                   "e": pd.Series(["Turbo-jet", "\\0", None, "Turbo-fan", "zz"], dtype=object),
                   "w": [0.5, -0.0, np.nan, 2.0, 8.0]})
"""
NUM_BODY = ("def predict(df):\n"
            "    m = df.merge(TI, on='id', how='left')\n"
            "    return (m['e'].map(ENC).fillna(-2) * m['w']).to_numpy(), "
            "m['e'].map(DS).to_numpy()\n")


@FAST
@given(ids=st.lists(st.sampled_from([3, -1, 7, 0, 12, 5, 2 ** 40]), min_size=1, max_size=40))
def test_joined_string_of_a_numeric_join_compiles_per_table_row(ids):
    c = case("str_field_num", lambda: Case(NUM_BODY, {"df.id": "i64"}, header=NUM_HEADER))
    assert [s.kind for s in c.compiled.plan.stages] == ["native"]
    c.check({"df": pd.DataFrame({"id": np.array(ids, dtype=np.int64)})})


# ---------------------------------------------------------------------------------------------
# Bigger tables (many slot collisions), threads, stages sharing a column, save/load

BIG_HEADER = HEADER + """
BIG = {f"key{i:05d}" + "\\u00e9" * (i % 3): float(i) for i in range(5000)}
BIGT = pd.DataFrame({"name": [f"key{i:05d}" for i in range(0, 5000, 2)],
                     "w": np.arange(2500, dtype=np.float64) / 8})
"""
BIG_BODY = ("def predict(df):\n"
            "    a = df['name'].map(BIG).fillna(-1.0)\n"
            "    m = df.merge(BIGT, on='name', how='left')\n"
            "    return (a + m['w'].fillna(0.0)).to_numpy()\n")


def _big_names(rng, n):
    i = rng.integers(0, 6000, size=n)
    names = [f"key{j:05d}" + "\u00e9" * (j % 3 if j % 5 else 1) for j in i]
    names[::97] = [None] * len(names[::97])
    return names


def test_big_table_threaded_batch():
    c = Case(BIG_BODY, {"df.name": "str"}, header=BIG_HEADER, threads=2)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"name": _big_names(rng, 70_001)})
    c.check({"df": df})
    got = c.compiled(df)
    assert np.count_nonzero(got > 0) > 10_000  # mostly hits


def test_lookups_of_one_column_share_its_encoding(monkeypatch):
    c = get_case()
    (stage,) = c.compiled.plan.stages
    s_id = c.graph.find("input")[0].id
    assert stage.inputs.count(s_id) == 1
    import codegen.pipeline_strkeys as sk
    calls = []
    real = sk.encode_column
    monkeypatch.setattr(sk, "encode_column", lambda col: calls.append(1) or real(col))
    s = _obj((KEYS + [None, NAN, 3]) * 2)  # more rows than the one-buffer path takes
    c.check({"s": s, "x": np.arange(len(s), dtype=np.float64)})
    assert len(calls) == 1  # five lookups, one encoding


def test_save_and_load_string_tables(tmp_path):
    c = map_case()
    df = _frame(KEYS, KEYS[::-1], True)
    c.compiled.save(tmp_path / "p")
    loaded = load_pipeline(tmp_path / "p")
    assert_exact(loaded(df), c.compiled(df))


# ---------------------------------------------------------------------------------------------
# What stays on the host, and why


ODD_KEYS_HEADER = HEADER + '''
class Shouty(str):
    """A str subclass with its own equality."""

    def __eq__(self, other):
        return str.__eq__(self.upper(), str(other).upper())

    __hash__ = str.__hash__


class AnyKey:
    def __eq__(self, other):
        return other == "secret"

    def __hash__(self):
        return hash("secret")


SHOUTY = {"a": 1.0, Shouty("abc"): 2.0}
ANYKEY = {"a": 1.0, AnyKey(): 2.0}
NAMES = {"a": "x", "b": "yy"}
'''


@pytest.mark.parametrize("table,why", [("SHOUTY", "str subclass Shouty"),
                                       ("ANYKEY", "type AnyKey, which may compare equal")])
def test_tables_with_keys_that_may_equal_strings_stay_on_the_host(table, why):
    body = f"def predict(s):\n    return np.array([{table}.get(t, 0.0) for t in s])\n"
    c = Case(body, {"s": "str"}, header=ODD_KEYS_HEADER, host_ok=("lookup",))
    (reason,) = c.compiled.plan.host_reasons.values()
    assert why in reason
    c.check({"s": _obj(["a", "abc", "ABC", "secret", None])})


def test_string_valued_lookups_stay_on_the_host():
    body = "def predict(s):\n    return np.array([len(NAMES.get(t, '')) for t in s])\n"
    fn = load_source(body, ODD_KEYS_HEADER)
    graph = parse(fn, dtypes={"s": "str"})
    compiled = compile_pipeline(graph, block_rows=BLOCK)
    assert any("values are str" in r for r in compiled.plan.host_reasons.values())
    three_way(fn, graph, compiled, {"s": _obj(["a", "b", "c", None])})


# ---------------------------------------------------------------------------------------------
# The pieces: code units, hash, encoder


def _decode(enc) -> list:
    return [enc.units[a:a + n].tobytes().decode("utf-32-le", "surrogatepass") if n >= 0
            else enc.specials[-1 - n] for a, n in zip(enc.starts.tolist(), enc.lens.tolist())]


@FAST
@given(strings=st.lists(st.one_of(ANY_STR, st.sampled_from(ODD)), min_size=1, max_size=80))
def test_hash_units_matches_the_plain_hash_and_the_encoding_round_trips(strings):
    plain = [s for s in strings if type(s) is str]
    units, starts, lens = ps.code_units(plain)
    assert [ps.str_hash(s) for s in plain] == ps.hash_units(units, starts, lens).tolist()
    enc = encode_column(_obj(strings))  # short columns and long ones take different paths
    back = _decode(enc)
    assert len(back) == len(strings)
    assert all(b is s or (type(s) is str and b == s) for b, s in zip(back, strings))


def test_encoder_marks_rows_that_are_not_str():
    col = _obj(["a\0", None, "", np.str_("b"), 7, "\0"])
    enc = encode_column(col)
    assert enc.lens.tolist() == [2, -1, 0, -2, -3, 1]
    assert enc.specials[0] is None and enc.specials[2] == 7
    assert type(enc.specials[1]) is np.str_


def test_long_columns_encode_each_distinct_object_once():
    """Past ``SMALL`` rows a column is encoded through its distinct objects: rows holding the
    same object share its code units, equal but distinct objects are encoded alike, and a
    ``np.str_`` or NaN stays a special row (one number per object, in order of appearance)."""
    import sys

    import codegen.pipeline_strkeys as sk
    a, b, nan2 = "flight", "".join(["fli", "ght"]), float("nan")
    assert a == b and a is not b
    base = [a, b, None, np.str_("flight"), NAN, "\0x", nan2, 7, a] * 6
    col = _obj(base)
    for pandas_loaded in (True, False):
        saved = sys.modules.pop("pandas") if not pandas_loaded else None
        try:
            enc = encode_column(col)
            strided = encode_column(_obj(base * 2)[::2])  # not contiguous: copied first
        finally:
            if saved is not None:
                sys.modules["pandas"] = saved
        assert len(base) > sk.SMALL
        assert all(x is y or (type(y) is str and x == y) for x, y in zip(_decode(enc), base))
        assert [type(x) for x in enc.specials] == [type(None), np.str_, float, float, int]
        assert enc.specials[2] is NAN and enc.specials[3] is nan2
        lens = enc.lens.tolist()
        assert lens[:9] == [6, 6, -1, -2, -3, 2, -4, -5, 6]
        assert enc.starts[0] == enc.starts[8] != enc.starts[1]  # same object, same units
        back = _decode(strided)
        assert all(x is y or (type(y) is str and x == y) for x, y in zip(back, (base * 2)[::2]))


def _probe(table, s: str) -> int:
    """The kernel's probe, written in Python: the entry of ``s`` or -1."""
    units = np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    h = ps.str_hash(s)
    slot = h & table.mask
    while True:
        hash_, off, entry = table.slots[slot].tolist()
        if entry < 0:
            return -1
        if hash_ == h and table.pool[off] == len(units) and \
                np.array_equal(table.pool[off + 1:off + 1 + len(units)], units):
            return entry
        slot = (slot + 1) & table.mask


def test_table_layout_finds_every_key_and_only_those():
    keys = [f"k{i}" for i in range(1000)] + KEYS
    table = ps.build_table({k: i for i, k in enumerate(keys)})
    assert table.n_str == len(keys) and len(table.slots) == 4096  # at most half full
    assert [_probe(table, k) for k in keys] == list(range(len(keys)))
    assert [_probe(table, k) for k in NEAR + ["k1000", "k-1"]] == [-1] * (len(NEAR) + 2)


def test_joined_string_looked_up_in_a_feature_store_keeps_the_join_on_the_host():
    header = STR_HEADER + ("\nfrom mloc_ir import featurestore as fs\n"
                           "ENC_STORE = fs.publish(ENC, url='memory://strings', name='enc')\n")
    body = ("def predict(df):\n"
            "    m = df.merge(T, on='key', how='left')\n"
            "    return m['e'].map(ENC_STORE).fillna(-1).to_numpy() + m['v'].to_numpy()\n")
    fn = load_source(body, header)
    graph = parse(fn, dtypes={"df.key": "str"})
    compiled = compile_pipeline(graph, block_rows=BLOCK)
    reasons = compiled.plan.host_reasons
    assert any("feature store" in r for r in reasons.values())
    join = compiled.graph.find("join")[0].id
    assert join in reasons  # its string field feeds a host lookup
    df = _frame(KEYS, KEYS[::-1], True)
    df.loc[3, "key"] = None
    three_way(fn, graph, compiled, {"df": df})
