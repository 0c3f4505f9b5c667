"""Every construct outside mloc's pipeline language is rejected with an ``UnsupportedConstruct``
(or its subclass ``PipelineTypeError``) naming the file and line, the construct, and what is
supported instead; bad inputs to ``interpret`` raise ``InputError``.

The offending line of each pipeline below carries the marker comment ``# <-``; the tests check
that the error points at exactly that line.
"""
from __future__ import annotations

import inspect
import os

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from mloc_ir import InputError, MlocError, PipelineTypeError, UnsupportedConstruct, interpret, parse

_rng = np.random.default_rng(0)
_X3 = _rng.normal(size=(200, 3))
BOOSTER3 = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 4, "num_threads": 1,
                      "min_data_in_leaf": 10}, lgb.Dataset(_X3, (_X3[:, 0] > 0).astype(int)), 3)
RATE = {1: 0.1, 2: 0.2}
TABLE = pd.DataFrame({"key": [1, 2, 3], "value": [0.5, 0.25, 0.125]})
DUPLICATED = pd.DataFrame({"key": [1, 1, 2], "value": [0.5, 0.6, 0.7]})
UNFITTED = TfidfVectorizer()


def helper(x):
    return x * 2


def make_features(a, b):
    assert len(a) == len(b)  # an assert statement: the helper is not inlined
    return np.column_stack([a / b, a, b])


# -- the pipelines, one unsupported construct each ---------------------------------------------

def for_loop(x):
    out = x * 0
    for i in range(len(x)):  # <-
        out = out + 1
    return out


def if_on_column(x):
    if x > 0:  # <-
        return x
    return -x


def while_loop(x):
    while x > 0:  # <-
        x = x - 1
    return x


def and_on_columns(a, b):
    return (a > 0) and (b > 0)  # <-


def or_on_columns(a, b):
    return (a > 0) or (b > 0)  # <-


def not_on_column(a):
    return not a  # <-


def chained_comparison(x):
    return 0 < x < 1  # <-


def row_filter(x):
    return x[x > 0]  # <-


def frame_row_filter(df):
    df = df[df["amount"] > 0]  # <-
    return df["amount"]


def comprehension_filter(x):
    return np.array([v for v in x if v > 0])  # <-


def inner_merge(df):
    df = df.merge(TABLE, on="key", how="inner")  # <-
    return df["value"]


def default_merge(df):
    df = df.merge(TABLE, on="key")  # <-
    return df["value"]


def non_unique_merge(df):
    df = df.merge(DUPLICATED, on="key", how="left")  # <-
    return df["value"]


def hstack_of_columns(a, b):
    X = np.hstack([a, b])  # <-
    return BOOSTER3.predict(X)


def stack_axis0(a, b, c):
    X = np.stack([a, b, c], axis=0)  # <-
    return BOOSTER3.predict(X)


def fillna_inplace_statement(df):
    df["a"].fillna(0, inplace=True)  # <-
    return df["a"]


def fillna_inplace_assigned(df):
    a = df["a"].fillna(0, inplace=True)  # <-
    return a


def model_on_column(x):
    return BOOSTER3.predict(x)  # <-


def wrong_feature_count(a, b):
    X = np.column_stack([a, b])
    return BOOSTER3.predict(X)  # <-


def string_in_column_stack(df):
    X = np.column_stack([df["a"], df["name"].str.lower(), df["b"]])  # <-
    return BOOSTER3.predict(X)


def unfitted_vectorizer(texts):
    X = UNFITTED.transform(texts)  # <-
    return X


def unknown_numpy_function(x):
    return np.cumsum(x)  # <-


def no_return(x):
    y = x + 1  # <-


def return_nothing(x):
    return  # <-


def statements_after_return(x):
    return x  # <-
    y = x + 1  # noqa: F841


def nested_def(x):
    def twice(v):  # <-
        return v * 2
    return twice(x)


def try_block(x):
    try:  # <-
        y = np.log(x)
    except ValueError:
        y = x
    return y


def star_args(*cols):  # <-
    return cols[0]


def dict_subscript(k):
    return RATE[k]  # <-


def dict_get_without_default(k):
    return np.array([RATE.get(v) for v in k])  # <-


def string_arithmetic(df):
    return df["name"].str.lower() + 1  # <-


def bitand_on_floats(a, b):
    return a & b  # <-


def where_one_argument(x):
    return np.where(x > 0)  # <-


def two_for_clauses(a, b):
    return np.array([u * v for u in a for v in b])  # <-


def array_item_assignment(x):
    y = x * 1
    y[0] = 1.0  # <-
    return y


def return_frame(df):
    df["double"] = df["a"] * 2
    return df  # <-


def list_comprehension_bare(x):
    return [v + 1 for v in x]  # <-


def element_helper_with_loop(v):
    for _ in range(2):
        v = v + 1
    return v


def apply_named_function(df):
    return df["a"].apply(element_helper_with_loop)  # <-


def str_split_column(df):
    return df["name"].str.split()  # <-


def merge_several_keys(df):
    df = df.merge(TABLE, on=["key", "value"], how="left")  # <-
    return df["value"]


def whole_frame_values(df):
    df["ratio"] = df["a"] / df["b"]
    X = df.values  # <-
    return BOOSTER3.predict(X)


def undefined_name(x):
    return x + not_defined_anywhere  # noqa: F821  # <-


def column_and_frame(x):
    a = x * 2
    b = x["col"]  # <-
    return a + b


def frame_assign(df):
    df = df.assign(ratio=df["a"] / df["b"])  # <-
    return df["ratio"]


def model_on_helper_result(a, b):
    X = make_features(a, b)
    return BOOSTER3.predict(X)  # <-


def sparse_hstack_of_constant(texts):
    X = scipy.sparse.hstack([1.0, texts])  # <-
    return X


# construct -> (pipeline, exception class, words the message must contain)
CASES = {
    "for loop": (for_loop, UnsupportedConstruct, ["loop"]),
    "if on a column": (if_on_column, UnsupportedConstruct, ["if statement", "np.where"]),
    "while loop": (while_loop, UnsupportedConstruct, ["loop"]),
    "and on columns": (and_on_columns, UnsupportedConstruct, ["'and' on columns", "&"]),
    "or on columns": (or_on_columns, UnsupportedConstruct, ["'or' on columns", "|"]),
    "not on a column": (not_on_column, UnsupportedConstruct, ["'not' on a column", "~"]),
    "chained comparison": (chained_comparison, UnsupportedConstruct, ["chained comparison"]),
    "row filter": (row_filter, UnsupportedConstruct, ["indexing", "row filter"]),
    "DataFrame row filter": (frame_row_filter, UnsupportedConstruct,
        ["DataFrame indexing", "row filter"]),
    "comprehension with if": (comprehension_filter, UnsupportedConstruct,
        ["if filter", "np.where"]),
    "inner merge": (inner_merge, UnsupportedConstruct, ["how='inner'", "how='left'"]),
    "merge without how": (default_merge, UnsupportedConstruct, ["how='inner'", "how='left'"]),
    "merge on non-unique keys": (non_unique_merge, UnsupportedConstruct,
        ["not unique", "DUPLICATED"]),
    "np.hstack of 1-D columns": (hstack_of_columns, UnsupportedConstruct,
        ["np.hstack of a 1-D column", "column_stack"]),
    "np.stack axis=0": (stack_axis0, UnsupportedConstruct, ["axis=0", "axis=1"]),
    "fillna inplace statement": (fillna_inplace_statement, UnsupportedConstruct,
        ["expression statement"]),
    "fillna inplace assigned": (fillna_inplace_assigned, UnsupportedConstruct,
        [".fillna(inplace=True)", "x = x.fillna(...)"]),
    "model on a 1-D column": (model_on_column, UnsupportedConstruct,
        ["1-D column", "column_stack"]),
    "wrong feature count": (wrong_feature_count, PipelineTypeError,
        ["BOOSTER3 expects 3 features", "gives it 2"]),
    "string column in column_stack": (string_in_column_stack, PipelineTypeError,
        ["string column", "np.column_stack"]),
    "unfitted vectorizer": (unfitted_vectorizer, UnsupportedConstruct, ["UNFITTED is not fitted"]),
    "unknown numpy function": (unknown_numpy_function, UnsupportedConstruct, ["np.cumsum"]),
    "no return": (no_return, UnsupportedConstruct, ["without a return"]),
    "return without a value": (return_nothing, UnsupportedConstruct, ["return without a value"]),
    "statements after return": (statements_after_return, UnsupportedConstruct, ["after return"]),
    "nested def": (nested_def, UnsupportedConstruct, ["nested function"]),
    "try block": (try_block, UnsupportedConstruct, ["try statement"]),
    "*args": (star_args, UnsupportedConstruct, ["*args"]),
    "dict[column]": (dict_subscript, UnsupportedConstruct, ["RATE[key]", "RATE.get(key, default)"]),
    "dict.get without default": (dict_get_without_default, UnsupportedConstruct,
        ["without a default"]),
    "string arithmetic": (string_arithmetic, PipelineTypeError, ["string"]),
    "& on floats": (bitand_on_floats, PipelineTypeError, ["'&' on a float column %a", "dtypes="]),
    "np.where one argument": (where_one_argument, UnsupportedConstruct,
        ["np.where with one argument"]),
    "two for clauses": (two_for_clauses, UnsupportedConstruct, ["several for clauses"]),
    "item assignment": (array_item_assignment, UnsupportedConstruct,
        ["assignment into part of an array", "np.where"]),
    "return a DataFrame": (return_frame, UnsupportedConstruct, ["returning a DataFrame"]),
    "bare list comprehension": (list_comprehension_bare, UnsupportedConstruct,
        ["list comprehension", "np.array"]),
    "apply of a named function": (apply_named_function, UnsupportedConstruct,
        [".apply(element_helper_with_loop) of a function that is not inlined", "a Python loop",
         "lambda"]),
    ".str.split()": (str_split_column, UnsupportedConstruct, [".str.split()"]),
    "merge on several keys": (merge_several_keys, UnsupportedConstruct, ["several keys"]),
    "whole frame .values": (whole_frame_values, UnsupportedConstruct,
        ["whole DataFrame", "df[[col, ...]].values"]),
    "undefined name": (undefined_name, UnsupportedConstruct,
        ["not_defined_anywhere", "not defined"]),
    "column indexed by name": (column_and_frame, UnsupportedConstruct,
        ["indexing of a column", "'col'"]),
    "DataFrame method": (frame_assign, UnsupportedConstruct,
        ["the DataFrame method .assign()", "df['new'] = expr"]),
    "model on an opaque call's result": (model_on_helper_result, UnsupportedConstruct,
        ["result of the opaque call make_features()", "np.column_stack",
         "not inlined: tests/test_frontend_errors.py:37: unsupported construct: a assert"]),
    "constant in sparse hstack": (sparse_hstack_of_constant, UnsupportedConstruct,
        ["constant inside scipy.sparse.hstack"]),
}

# constructs whose message gives no "supported instead" hint: there is nothing to point at
# instead, or the message itself names the fix
NO_HINT = {"return without a value", "statements after return", "wrong feature count",
           "undefined name", "two for clauses"}


def _marker_line(fn) -> int:
    lines, first = inspect.getsourcelines(fn)
    marked = [first + i for i, text in enumerate(lines) if text.rstrip().endswith("# <-")]
    assert len(marked) == 1, f"{fn.__name__} needs exactly one '# <-' marker"
    return marked[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_unsupported_construct_names_file_line_and_construct(case):
    fn, cls, words = CASES[case]
    with pytest.raises(cls) as info:
        parse(fn)
    err = info.value
    message = str(err)
    assert type(err) is cls or (cls is UnsupportedConstruct and isinstance(err, cls)), type(err)
    assert os.path.basename(err.file) == "test_frontend_errors.py", err.file
    assert err.line == _marker_line(fn), message
    assert message.startswith(f"{err.file}:{err.line}: "), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    if case in NO_HINT:
        assert not err.hint, f"{case} now has a hint: take it out of NO_HINT"
    else:
        assert err.hint and "supported instead: " in message, message


def test_a_lambda_is_not_a_pipeline():
    with pytest.raises(MlocError, match="lambda cannot be a pipeline"):
        parse(lambda x: x + 1)


def test_a_builtin_is_not_a_pipeline():
    with pytest.raises(MlocError, match="not a Python function"):
        parse(np.log)


def test_missing_pipeline_file():
    with pytest.raises(MlocError, match="no such pipeline file"):
        parse("/nonexistent/pipe.py:predict")


# -- InputError from interpret --------------------------------------------------------------------

def two_columns(a, b):
    return np.log1p(np.abs(a)) + b


def text_and_number(texts, x):
    return np.array([len(t) for t in texts]) * x


def frame_pipeline(df):
    return df["a"] * 2 + df["b"]


@pytest.fixture(scope="module")
def g2():
    return parse(two_columns)


def test_missing_input(g2):
    with pytest.raises(InputError, match="missing the input 'b'"):
        interpret(g2, a=np.ones(3))


def test_unknown_keyword(g2):
    with pytest.raises(InputError, match="no parameter 'c'; parameters: a, b"):
        interpret(g2, a=np.ones(3), b=np.ones(3), c=np.ones(3))


def test_too_many_positional(g2):
    with pytest.raises(InputError, match="takes 2 arguments, got 3"):
        interpret(g2, np.ones(3), np.ones(3), np.ones(3))


def test_two_values_for_one_parameter(g2):
    with pytest.raises(InputError, match="two values for 'a'"):
        interpret(g2, np.ones(3), a=np.ones(3), b=np.ones(3))


def test_length_mismatch(g2):
    with pytest.raises(InputError, match="different lengths"):
        interpret(g2, a=np.ones(3), b=np.ones(4))


def test_two_dimensional_input(g2):
    with pytest.raises(InputError, match="1-D column, got shape"):
        interpret(g2, a=np.ones((3, 2)), b=np.ones(3))


def test_strings_for_a_numeric_column(g2):
    with pytest.raises(InputError, match="'a' must be numeric or bool"):
        interpret(g2, a=np.array(["x", "y"], dtype=object), b=np.ones(2))


def test_numbers_for_a_string_column():
    g = parse(text_and_number)
    with pytest.raises(InputError, match="'texts' must hold strings"):
        interpret(g, texts=np.arange(3), x=np.ones(3))
    # the right kinds work
    out = interpret(g, texts=np.array(["ab", "", "xyz"], dtype=object), x=np.full(3, 2.0))
    assert out.tolist() == [4.0, 0.0, 6.0]


def test_frame_without_a_column():
    g = parse(frame_pipeline)
    with pytest.raises(InputError, match="input 'df' has no column 'b'"):
        interpret(g, df=pd.DataFrame({"a": [1.0, 2.0]}))
    assert interpret(g, df=pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 0.5]})).tolist() == [2.5, 4.5]


# -- near misses: constructs next to the errors above that must keep working ---------------------

FEATURES = ["a", "b", "c"]


def column_param_made_2d(x):
    return BOOSTER3.predict(np.column_stack([x[:, None], x * 2, -x]))


def frame_by_name_list(df):
    return BOOSTER3.predict(df[FEATURES].values)


def masks_combined(a, b):
    return (a > 0) & (b < 1) | ~(a == b)


def merge_one_key_list(df):
    df = df.copy()
    df = df.merge(TABLE, on=["key"], how="left")
    return df["value"] * df.a


def test_near_misses_parse_and_run():
    rng = np.random.default_rng(1)
    x = rng.normal(size=20)
    g = parse(column_param_made_2d)
    assert [n.attrs["param"] for n in g.input_nodes()] == ["x"]
    assert np.array_equal(interpret(g, x), column_param_made_2d(x))
    df = pd.DataFrame({"a": x, "b": x[::-1].copy(), "c": x * 3})
    g = parse(frame_by_name_list)
    assert g.params[0].kind == "frame"
    assert np.array_equal(interpret(g, df), frame_by_name_list(df))
    g = parse(masks_combined)
    assert np.array_equal(interpret(g, x, x[::-1].copy()), masks_combined(x, x[::-1]))
    g = parse(bitand_on_floats, dtypes={"a": "bool", "b": "bool"})
    a, b = x > 0, x > 0.5
    assert np.array_equal(interpret(g, a, b), a & b)
    g = parse(merge_one_key_list)
    df = pd.DataFrame({"key": [1.0, 3.0, 7.0], "a": [1.0, 2.0, 3.0]})
    assert [n.op for n in g.find("join")] == ["join"]
    assert np.array_equal(interpret(g, df), merge_one_key_list(df), equal_nan=True)
