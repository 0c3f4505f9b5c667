"""More pandas/NumPy idioms: np.log10/log2/expm1/square, np.select, np.isin and Series.isin,
Series.between/where/mask, pd.Series(column), string concatenation.

Each runs three ways (the Python as written, the interpreter on the IR, the native kernel) on
drawn inputs with NaN, +-inf, +-0.0, empty and one-row batches, and must agree bit for bit.
"""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mloc_ir
from mloc_ir.errors import MlocError
from mloc_ir.frontend import parse
from mloc_ir.interpreter import interpret
from tests.test_pipeline_codegen import FAST, HEADER, Case, case, columns

HEADER_WITH_TABLES = HEADER + ("CODES = {1, 3.0, float('nan')}\nCODE_LIST = [1, 3.0, np.nan]\n"
                               "WORDS = ['b', 'zz']\n")

NUMERIC_BODIES = {
    "logs": ("def predict(a, b):\n"
             "    return np.log10(a) + np.log2(b) * np.expm1(a / 64) - np.square(b)\n",
             {"a": "f64", "b": "f64"}),
    "logs32": ("def predict(a, b):\n"
               "    return np.log10(np.abs(a)) + np.square(b) + np.expm1(b)\n",
               {"a": "f32", "b": "f32"}),
    "square_int": ("def predict(a, b):\n    return np.square(a) + np.square(b)\n",
                   {"a": "i64", "b": "bool"}),
    "select": ("def predict(a, b):\n"
               "    return np.select([a > 1, b < 0, a == b], [a, b * 2, 7], default=-1.5)\n",
               {"a": "f64", "b": "f64"}),
    "select32": ("def predict(a, b):\n"  # np.select makes the default 0 int64: f32 -> f64
                 "    return np.select([a > 0], [a])\n", {"a": "f32", "b": "f32"}),
    "select_int": ("def predict(a, b):\n"
                   "    return np.select([a > 2, b], [a * 3, 1], default=0)\n",
                   {"a": "i64", "b": "bool"}),
    "isin": ("def predict(a, b):\n"
             "    s = pd.Series(a)\n"
             "    return (s.isin([0.5, 2, -0.0]).to_numpy() | np.isin(b, CODE_LIST)\n"
             "            | s.isin([]).to_numpy() | pd.Series(b).isin(CODES).to_numpy())\n",
             {"a": "f64", "b": "f64"}),
    "isin_int": ("def predict(a, b):\n"
                 "    return pd.Series(a).isin([1, 2.0, True, 'x']).to_numpy() & b\n",
                 {"a": "i64", "b": "bool"}),
    "between": ("def predict(a, b):\n"
                "    s = pd.Series(a)\n"
                "    return (s.between(-1, 2).to_numpy() ^ s.between(b, 3, inclusive='neither')"
                ".to_numpy()) | s.between(0, 1, inclusive='left').to_numpy()"
                " | s.between(0, 1, inclusive='right').to_numpy()\n",
                {"a": "f64", "b": "f64"}),
    "where_mask": ("def predict(a, b):\n"
                   "    s = pd.Series(a)\n"
                   "    return s.where(a > 0).to_numpy() + s.mask(b > 1, -2.0).to_numpy()"
                   " + s.where(b < 0, other=b).to_numpy()\n", {"a": "f64", "b": "f64"}),
    "where_int": ("def predict(a, b):\n"
                  "    return pd.Series(a).where(b, -3).to_numpy() + pd.Series(b).mask(b, False)"
                  ".to_numpy()\n", {"a": "i64", "b": "bool"}),
}


@pytest.mark.parametrize("name", sorted(NUMERIC_BODIES))
@FAST
@given(data=st.data())
def test_idiom_three_way(name, data):
    body, dtypes = NUMERIC_BODIES[name]
    c = case(("idiom", name), lambda: Case(body, dtypes, header=HEADER_WITH_TABLES))
    c.check(data.draw(columns(dtypes)))


def _load(src: str, tmp_path, name="predict"):
    path = tmp_path / "idiom_pipeline.py"
    path.write_text(HEADER_WITH_TABLES + src)
    return f"{path}:{name}"


def test_string_concatenation_keys_a_lookup(tmp_path):
    src = ("PAIR = {'JFK_LAX': 1.5, 'LGA_ORD': 2.5, '_': 9.0}\n"
           "def predict(df):\n"
           "    key = df['origin'] + '_' + df['dest']\n"
           "    return key.map(PAIR).fillna(0.0) * df['x'] + (df['origin'] + df['dest']).str.len()\n")
    target = _load(src, tmp_path)
    dtypes = {"df.origin": "str", "df.dest": "str"}
    graph = parse(target, dtypes=dtypes)
    cp = mloc_ir.compile(target, dtypes=dtypes)
    ns = {}
    exec(HEADER_WITH_TABLES + src, ns)
    for df in (pd.DataFrame({"origin": ["JFK", "LGA", "", "é"], "dest": ["LAX", "ORD", "", "ü"],
                             "x": [1.0, 2.0, -0.0, np.nan]}),
               pd.DataFrame({"origin": ["JFK"], "dest": ["LAX"], "x": [3.0]}),
               pd.DataFrame({"origin": pd.Series([], dtype=object),
                             "dest": pd.Series([], dtype=object), "x": np.zeros(0)})):
        want = ns["predict"](df).to_numpy()
        np.testing.assert_array_equal(interpret(graph, df), want)
        np.testing.assert_array_equal(cp(df), want)


def test_string_isin(tmp_path):
    src = ("def predict(s, x):\n"
           "    return np.where(pd.Series(s).isin(WORDS), x, -x) + np.isin(s, ['a', 'B'])\n")
    target = _load(src, tmp_path)
    graph = parse(target, dtypes={"s": "str"})
    cp = mloc_ir.compile(target, dtypes={"s": "str"})
    ns = {}
    exec(HEADER_WITH_TABLES + src, ns)
    s = np.array(["a", "b", "zz", "", "B", "ä"], dtype=object)
    x = np.arange(6.0)
    want = ns["predict"](s, x)
    np.testing.assert_array_equal(interpret(graph, s, x), want)
    np.testing.assert_array_equal(cp(s, x), want)


def test_string_replace_literal_regex_and_element(tmp_path):
    src = ("T = {'ab': 1.0, 'b-b': 2.0, '#y': 4.0}\n"
           "def predict(df):\n"
           "    a = df['s'].str.replace('-', '').str.replace(r'\\d+', '#', regex=True)\n"
           "    b = np.array([T.get(t.replace('x', ''), 0.5) for t in df['s']])\n"
           "    c = df['s'].str.replace('.', '!')\n"  # literal: '.' is not a regex here
           "    return a.str.len() + a.map(T).fillna(0.0) + b + c.str.count('!')\n")
    target = _load(src, tmp_path)
    dtypes = {"df.s": "str"}
    graph = parse(target, dtypes=dtypes)
    cp = mloc_ir.compile(target, dtypes=dtypes)
    ns = {}
    exec(HEADER_WITH_TABLES + src, ns)
    for rows in (["a-b", "b-b", "x12y", "", "abx", "1.2.3", "é-ü"], ["x"], []):
        df = pd.DataFrame({"s": pd.Series(rows, dtype=object)})
        want = ns["predict"](df).to_numpy()
        np.testing.assert_array_equal(interpret(graph, df), want)
        np.testing.assert_array_equal(cp(df), want)


@pytest.mark.parametrize("body, message", [
    ("    return s.str.replace(s, 'x').str.len()\n", ".str.replace() with a non-constant"),
    ("    return s.str.replace('a', 'b', n=1).str.len()\n", ".str.replace(n=, case=, flags=)"),
    ("    return s.str.replace('(', 'b', regex=True).str.len()\n", "an invalid regex '('"),
    ("    return np.array([len(t.replace('a')) for t in s])\n",
     ".replace() with other than two constant strings"),
    ("    return pd.Series(a).isin(a)\n", ".isin of something other than a constant list"),
    ("    return pd.Series(a).between(0)\n", ".between() without both bounds"),
    ("    return pd.Series(a).between(0, 1, inclusive='all')\n", ".between(inclusive='all')"),
    ("    return np.select([a > 0], [a, a])\n", "np.select with 1 condition(s) and 2 choice(s)"),
    ("    return np.select([a], [a])\n", "np.select with a condition that is not boolean"),
    ("    return np.select(a > 0, [a])\n", "conditions or choices that are not literal lists"),
    ("    return pd.Series(a).where(a)\n", ".where() with a condition that is not boolean"),
    ("    return pd.Series(a, index=a)\n", "pd.Series(...) with an index or dtype"),
    ("    return np.square(a, a)\n", "np.square with 2 arguments"),
    ("    return pd.Series(a > 0).where(a > 1)\n", "pandas' result dtype would depend on the data"),
    ("    return np.isin(a, CODES)\n", "np.isin of a set"),
    ("    return np.isin(a, [1, 'x'])\n", "np.isin of a list mixing strings and numbers"),
    ("    return s + a\n", "add applied to a string value"),
])
def test_idiom_errors_name_the_construct(tmp_path, body, message):
    target = _load("def predict(a, s):\n" + body, tmp_path)
    with pytest.raises(MlocError, match="idiom_pipeline.py:") as info:
        parse(target, dtypes={"a": "f64", "s": "str"})
    assert message in str(info.value)


JOIN_HEADER = ("PLANES = pd.DataFrame({'tail': ['N1', 'N2'], 'maker': ['BOEING', 'AIRBUS'], "
               "'seats': [150.0, 180.0]})\n")


def test_string_column_of_a_left_join_needs_fillna(tmp_path):
    bad = ("def predict(df):\n"
           "    df = df.merge(PLANES, on='tail', how='left')\n"
           "    return df['maker'].str.len()\n")
    with pytest.raises(MlocError, match=r"idiom_pipeline.py:\d+: unsupported construct: "
                       r"\.str\.len\(\) on %maker, which is NaN where the left join with "
                       r"PLANES finds no row") as info:
        parse(_load(JOIN_HEADER + bad, tmp_path), dtypes={"df.tail": "str"})
    assert "fillna('')" in str(info.value)
    concat = bad.replace("df['maker'].str.len()", "(df['maker'] + '!').str.len()")
    with pytest.raises(MlocError, match="string concatenation on %maker"):
        parse(_load(JOIN_HEADER + concat, tmp_path), dtypes={"df.tail": "str"})


def test_filled_string_column_of_a_left_join(tmp_path):
    src = JOIN_HEADER + (
        "def predict(df):\n"
        "    df = df.merge(PLANES, on='tail', how='left')\n"
        "    maker = df['maker'].fillna('unknown')\n"
        "    return maker.str.len() + maker.str.contains('BO').astype(float) + df['seats']"
        ".fillna(0.0)\n")
    target = _load(src, tmp_path)
    dtypes = {"df.tail": "str"}
    graph = parse(target, dtypes=dtypes)
    cp = mloc_ir.compile(target, dtypes=dtypes)
    ns = {}
    exec(HEADER_WITH_TABLES + src, ns)
    for tails in (["N1", "N3", "N2", ""], ["N9"], []):
        df = pd.DataFrame({"tail": pd.Series(tails, dtype=object)})
        want = ns["predict"](df).to_numpy()
        np.testing.assert_array_equal(interpret(graph, df), want)
        np.testing.assert_array_equal(cp(df), want)
