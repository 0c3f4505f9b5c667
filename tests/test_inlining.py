"""Calls to the user's own functions are inlined: their bodies become IR nodes (parameters bound
to the argument values, keyword arguments and defaults, helpers calling helpers), with the
helper's file:line on its nodes.  A helper outside the pipeline language, a recursive one or one
without source stays an opaque ``pycall`` whose ``not_inlined`` attribute (in the IR dump,
``explain()`` and error messages) names the construct and its file:line; the graph keeps no
trace of the failed attempt.  Results equal the original Python's either way."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pandas as pd
import pytest

import mloc_ir
from mloc_ir import PipelineTypeError, UnsupportedConstruct, interpret, parse
from tests.pipeline_strategies import assert_same_results
from tests.pipelines._train import booster

BOOSTER = booster(3)
RATE = {1.0: 0.5, 2.0: 0.25}


def _line(fn, marker="# <-"):
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if marker in line)


# -- helpers ---------------------------------------------------------------------------------

def ratio(a, b, floor=1.0, *, scale=1.0):
    """A docstring is fine."""
    return a / np.maximum(b, floor) * scale


def log_ratio(a, b, floor=1.0):
    r = ratio(a, b, floor=floor)      # a helper calling a helper
    r = np.sqrt(np.abs(r))
    return r


def features(df):
    df = df.copy()
    df["r"] = ratio(df["a"], df["b"])
    return np.column_stack([df["r"], log_ratio(df["a"], df["b"], 2.0), df["a"]])


def rate(codes):
    return np.array([RATE.get(c, 0.1) for c in codes])


def two(a):
    return a + 1, a * 2


def batch_clip(x):
    lo, hi = np.percentile(x, [1, 99])  # <- not row-wise: stays opaque
    return np.clip(x, lo, hi)


def countdown(x, n):
    return countdown(x, n - 1) if n > 0 else x  # <-


def early_return(x):
    if x.sum() > 0:  # <-
        return x
    return -x


def no_return(x):
    y = x * 2  # noqa: F841


# -- pipelines --------------------------------------------------------------------------------

def pipe_nested(a, b):
    return log_ratio(a, b) + ratio(a, b, 0.5, scale=2.0) + ratio(b=a, a=b)


def pipe_frame(df):
    return BOOSTER.predict(features(df))


def pipe_tuple(a, codes):
    p, q = two(a)
    return p - q + rate(codes)


def pipe_opaque(x):
    return batch_clip(x) * 2


def pipe_recursive(x):
    return countdown(x, 2) + 1


def pipe_mixed(x):
    return early_return(x) + no_return(x) if False else early_return(x) + ratio(x, x)


def pipe_model_on_opaque(x):
    X = stacked_with_loop(x)
    return BOOSTER.predict(X)


def stacked_with_loop(x):
    parts = []
    for k in range(3):  # <-
        parts.append(x * k)
    return np.column_stack(parts)


def pipe_bad_call(a):
    return ratio(a, a, 1.0, 2.0)  # <- too many positional arguments


def pipe_df_to_opaque(df):
    a = df["a"]
    return frame_loop(df) + a


def frame_loop(df):
    while False:  # <-
        pass
    return df["a"]


def add_ratio(df):
    df["r"] = df["a"] / df["b"]  # <- mutates the caller's frame
    return df["a"]


def add_ratio_copy(df):
    df = df.copy()
    df["r"] = df["a"] / df["b"]
    return df


def pipe_mutating(df):
    a = df["a"]
    return add_ratio(df) + df["r"] + a


def pipe_copying(df):
    out = add_ratio_copy(df)
    return out["r"] * 2


def half(v):
    return v / 2 if v > 0 else 0.0


def pipe_apply(x):
    return pd.Series(x).apply(half).to_numpy() + pd.Series(x).map(half).to_numpy() + \
        np.array([half(t) for t in x])


def pipe_apply_opaque(x):
    return pd.Series(x).apply(batch_clip).to_numpy()  # <-


def scaled(x, how="log", clip=None):
    if clip is not None:
        x = np.clip(x, clip[0], clip[1])
    if how == "log":
        return np.log1p(np.abs(x))
    elif how == "sqrt":
        y = np.sqrt(np.abs(x))
        return y
    return x * 1.0


def pipe_flags(x):
    return scaled(x) + scaled(x, how="sqrt", clip=(0.0, 2.0)) + scaled(x, "none")


def may_fall_off(x, flag):
    if flag:
        return x


def pipe_falls_off(x):
    return may_fall_off(x, False)


# -- tests -----------------------------------------------------------------------------------

def _data(n=50, seed=0):
    r = np.random.default_rng(seed)
    a, b = r.normal(size=n), r.normal(size=n)
    a[:3] = [np.nan, 0.0, -0.0]
    return a, b


def test_nested_helpers_keywords_and_defaults_are_inlined():
    g = parse(pipe_nested)
    assert not g.find("pycall")
    a, b = _data()
    with np.errstate(all="ignore"):
        expected = pipe_nested(a, b)
    assert_same_results(interpret(g, a, b), expected)
    assert_same_results(mloc_ir.compile(pipe_nested)(a, b), expected)
    # the inlined nodes point at the helpers' lines
    locs = {n.loc.line for n in g.nodes() if n.op == "sqrt"}
    assert locs == {_line(log_ratio, "np.sqrt")}
    assert all("test_inlining.py" in str(n.loc) for n in g.nodes() if n.loc)


def test_dataframe_helpers_and_tuple_results():
    a, b = _data()
    df = pd.DataFrame({"a": a, "b": b})
    g = parse(pipe_frame)
    assert not g.find("pycall") and g.find("model")
    assert_same_results(interpret(g, df), pipe_frame(df))
    assert_same_results(mloc_ir.compile(pipe_frame)(df), pipe_frame(df))
    codes = np.array([1.0, 2.0, 3.0, np.nan] * 5)
    x = np.arange(20.0)
    g = parse(pipe_tuple)
    assert g.find("lookup") and not g.find("pycall")
    assert_same_results(interpret(g, x, codes), pipe_tuple(x, codes))


def test_unsupported_helper_stays_opaque_and_says_why():
    g = parse(pipe_opaque)
    (call,) = g.find("pycall")
    reason = call.attrs["not_inlined"]
    assert reason.startswith(f"tests/test_inlining.py:{_line(batch_clip)}: ")
    assert "np.percentile" in reason
    assert f"not_inlined='tests/test_inlining.py:{_line(batch_clip)}" in str(g)
    # nothing of the attempt is left: one input, the call, the constant and the product
    assert sorted(n.op for n in g.nodes()) == ["const", "input", "mul", "pycall"]
    x = np.random.default_rng(1).normal(size=200)
    assert_same_results(interpret(g, x), pipe_opaque(x))
    cp = mloc_ir.compile(pipe_opaque)
    assert_same_results(cp(x), pipe_opaque(x))
    assert f"not inlined: tests/test_inlining.py:{_line(batch_clip)}" in cp.explain()


def test_recursion_and_early_return_stay_opaque():
    g = parse(pipe_recursive)
    (call,) = g.find("pycall")
    assert "recursive call of countdown()" in call.attrs["not_inlined"]
    # the outer call was inlined: only the recursive inner one is opaque, with its arguments
    assert call.attrs["qualname"] == "countdown"
    x = np.arange(5.0)
    assert_same_results(interpret(g, x), pipe_recursive(x))
    g = parse(pipe_mixed)
    calls = g.find("pycall")
    assert [c.attrs["qualname"] for c in calls] == ["early_return"]
    assert f"test_inlining.py:{_line(early_return)}: unsupported construct: an if statement" \
        in calls[0].attrs["not_inlined"]
    assert_same_results(interpret(g, x), pipe_mixed(x))


def test_model_on_an_opaque_helper_names_the_helper_line():
    with pytest.raises(UnsupportedConstruct) as info:
        parse(pipe_model_on_opaque)
    msg = str(info.value)
    assert "opaque call stacked_with_loop()" in msg
    assert f"tests/test_inlining.py:{_line(stacked_with_loop)}: unsupported construct: a Python " \
           "loop over rows" in msg
    assert info.value.line == _line(pipe_model_on_opaque, "BOOSTER.predict")


def test_a_call_that_does_not_fit_the_signature():
    with pytest.raises(PipelineTypeError) as info:
        parse(pipe_bad_call)
    assert info.value.line == _line(pipe_bad_call)
    assert "ratio(...) does not fit its signature" in str(info.value)
    assert "too many positional arguments" in str(info.value)


def test_frame_passed_to_a_helper_that_is_not_inlined():
    with pytest.raises(UnsupportedConstruct) as info:
        parse(pipe_df_to_opaque)
    msg = str(info.value)
    assert "passing" in msg and "frame_loop()" in msg
    assert f"it is not inlined: tests/test_inlining.py:{_line(frame_loop)}: unsupported " \
           "construct: a Python loop over rows" in msg


def test_taxi_helpers_are_inlined():
    """The benchmark's helpers (pd.to_datetime, .dt fields, total_seconds) inline entirely."""
    src = inspect.getsource(features)  # noqa: F841 -- the module is importable without data
    from tests.test_datetimes import clock, minutes
    for fn in (clock, minutes):
        assert not parse(fn, dtypes={"ts": "str", "start": "str", "end": "str"}).find("pycall")


def test_helpers_that_assign_into_their_argument_are_not_inlined():
    from mloc_ir.frontend.inlining import _mutated_parameter
    import ast
    tree = ast.parse(inspect.getsource(add_ratio)).body[0]
    assert _mutated_parameter(tree.body, ["df"]) == ("df", tree.body[0].lineno, True)
    tree = ast.parse(inspect.getsource(add_ratio_copy)).body[0]
    assert _mutated_parameter(tree.body, ["df"]) is None
    g = parse(pipe_copying)
    assert not g.find("pycall")
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [4.0, 0.5]})
    assert_same_results(interpret(g, df), pipe_copying(df.copy()))
    with pytest.raises(UnsupportedConstruct) as info:
        parse(pipe_mutating)  # not inlined, and a DataFrame cannot go to an opaque call
    assert (f"it is not inlined: tests/test_inlining.py:{_line(add_ratio)}: add_ratio() assigns "
            "into its argument 'df' in place") in str(info.value)


def test_apply_and_map_of_a_user_function():
    g = parse(pipe_apply)
    assert not g.find("pycall") and len(g.find("where")) == 3
    x = np.array([1.0, -2.0, np.nan, 0.0, 3.5])
    assert_same_results(interpret(g, x), pipe_apply(x))
    with pytest.raises(UnsupportedConstruct) as info:
        parse(pipe_apply_opaque)
    assert info.value.line == _line(pipe_apply_opaque)
    assert ".apply(batch_clip) of a function that is not inlined (tests/test_inlining.py:" \
        f"{_line(batch_clip)}: unsupported construct: np.percentile)" in str(info.value)


def test_if_on_compile_time_values_runs_the_branch_python_runs():
    g = parse(pipe_flags)
    assert not g.find("pycall")
    assert [n.op for n in g.nodes() if n.op in ("log1p", "sqrt")] == ["log1p", "sqrt"]
    assert len(g.find("minimum")) == 1  # the clip of the second call only
    x = np.array([-3.0, -0.5, 0.0, 0.25, 1.5, 4.0, np.nan])
    assert_same_results(interpret(g, x), pipe_flags(x))
    g = parse(pipe_falls_off)  # this call would return None: not inlined
    (call,) = g.find("pycall")
    assert "may_fall_off() can end without `return <value>`" in call.attrs["not_inlined"]


# -- property: any drawn pipeline, moved into a helper, inlines and gives the same results ------

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.pipeline_strategies import load_pipeline, pipelines, run_quietly  # noqa: E402


def _wrapped(source: str, keywords: bool) -> str:
    """The drawn module with ``predict`` renamed ``_body`` and a new ``predict`` calling it."""
    head, sep, rest = source.partition("\n\ndef predict(")
    params = rest[:rest.index(")")]
    names = [p.strip() for p in params.split(",") if p.strip()]
    args = ", ".join(f"{n}={n}" if keywords else n for n in names)
    return (head + "\n\ndef _body(" + rest +
            f"\n\ndef _middle({params}):\n    out = _body({args})\n    return out\n"
            f"\n\ndef predict({params}):\n    return _middle({', '.join(names)})\n")


@settings(max_examples=int(os.environ.get("MLOC_INLINING_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(pipelines(models=False))
def test_drawn_pipelines_moved_into_helpers_inline_exactly(drawn):
    for keywords in (False, True):
        fn = load_pipeline(_wrapped(drawn.source, keywords))
        try:
            graph = parse(fn, dtypes=drawn.dtypes)
        except UnsupportedConstruct as exc:  # df['c'] = ... on the caller's frame
            assert "assigns into its argument 'df' in place" in str(exc)
            assert "passing Frame to the opaque call" in str(exc)
            return
        assert not [n for n in graph.nodes() if n.attrs.get("not_inlined")], str(graph)
        expected = run_quietly(fn, **drawn.fresh_inputs())
        assert_same_results(run_quietly(interpret, graph, **drawn.fresh_inputs()), expected)
