"""Datetimes: ``pd.to_datetime`` of string columns, ``.dt`` fields, differences and
``total_seconds`` -- original Python == interpreter on the IR == compiled pipeline, on drawn
timestamp batches (valid ones across years and leap days with either separator and 0-9
fraction digits, invalid or other-format strings, None/NaN, empty and one-row batches).

Where the original raises, both mloc paths raise the same exception (pandas' own, with a note
naming the IR node and its source line).  The native strict-ISO parser must agree with pandas
bit for bit wherever it answers, and must answer the batches it is meant for.
"""
from __future__ import annotations

import datetime as _dt
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mloc_ir
from codegen.datetime_parse import parse_iso
from codegen.pipeline import compile_pipeline
from mloc_ir import PipelineTypeError, UnsupportedConstruct, interpret, parse
from tests.pipeline_strategies import assert_same_results

EXAMPLES = int(os.environ.get("MLOC_DATETIME_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- pipelines (ordinary Python, as a user writes them) ------------------------------------------

def clock(ts):
    t = pd.Series(pd.to_datetime(ts))
    return ((t.dt.hour + t.dt.minute / 60).to_numpy(dtype=float),
            t.dt.second.to_numpy(dtype=float), t.dt.dayofweek.to_numpy(dtype=float),
            t.dt.weekday.to_numpy(dtype=float))


def calendar(ts):
    t = pd.to_datetime(np.asarray(ts))
    return (np.asarray(t.day, dtype=float), np.asarray(t.month, dtype=float),
            np.asarray(t.year, dtype=float), np.asarray(t.dayofyear, dtype=float),
            np.asarray(t.microsecond, dtype=float))


def minutes(start, end):
    seconds = pd.to_datetime(np.asarray(end)) - pd.to_datetime(np.asarray(start))
    return np.asarray(seconds.total_seconds(), dtype=float) / 60


def series_seconds(start, end):
    d = pd.Series(pd.to_datetime(end)) - pd.Series(pd.to_datetime(start))
    return d.dt.total_seconds().to_numpy(dtype=float) + 0.0


def frame_features(df):
    t = pd.Series(pd.to_datetime(df["pickup"]))
    trip = pd.to_datetime(df["dropoff"]) - pd.to_datetime(df["pickup"])
    return (t.dt.hour + t.dt.minute / 60).to_numpy(dtype=float), \
        np.asarray(trip.dt.total_seconds(), dtype=float)


PIPELINES = {"clock": (clock, 1), "calendar": (calendar, 1), "minutes": (minutes, 2),
             "series_seconds": (series_seconds, 2)}
STR = {"ts": "str", "start": "str", "end": "str", "df.pickup": "str", "df.dropoff": "str"}


@pytest.fixture(scope="module")
def compiled():
    out = {}
    for name, (fn, _) in PIPELINES.items():
        g = parse(fn, dtypes=STR)
        out[name] = (fn, g, compile_pipeline(g, block_rows=8, threads=1))
    g = parse(frame_features, dtypes=STR)
    out["frame"] = (frame_features, g, compile_pipeline(g, block_rows=8, threads=1))
    return out


# -- drawn timestamps --------------------------------------------------------------------------

_VALID = st.datetimes(min_value=_dt.datetime(1000, 1, 1),
                      max_value=_dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
_LEAP = st.sampled_from([_dt.datetime(y, 2, 29, h, 0, 0) for y in (1600, 2000, 2016, 2020, 2024)
                         for h in (0, 23)])


def _fmt(t: _dt.datetime, sep: str, digits: int, extra: str = "") -> str:
    s = f"{t.year:04d}-{t.month:02d}-{t.day:02d}{sep}{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if digits:
        s += "." + (f"{t.microsecond:06d}" + extra)[:digits]
    return s


_BAD = st.sampled_from([
    "2019-02-29 10:00:00", "2100-02-29 00:00:00", "2019-04-31 00:00:00", "2019-13-01 00:00:00",
    "2019-00-10 00:00:00", "2019-01-00 00:00:00", "2019-01-01 24:00:00", "2019-01-01 23:60:00",
    "2019-01-01 23:59:60", "2019/01/02 10:00:00", "01/02/2019 10:00", "2019-01-02",
    "2019-01-02 10:00", "Jan 2 2019", "", "abc", " 2019-01-01 00:00:00",
    "2019-01-01 00:00:00 ", "0999-12-31 00:00:00",
    "2019-01-01 00:00:00.", "2019-01-01 00:00:00.1234567", "2019-1-01 00:00:00",
    "\uff12019-01-01 00:00:00", "2019-01-01\u300000:00:00", "2019-01-01 00:00:0a",
    "2262-04-12 00:00:00", "1677-09-21 00:00:00",
])
_MISSING = st.sampled_from([None, np.nan, pd.NaT])


@st.composite
def batches(draw, max_rows: int = 12) -> np.ndarray:
    n = draw(st.integers(0, max_rows))
    sep = draw(st.sampled_from([" ", "T"]))
    digits = draw(st.sampled_from([0, 0, 0, 1, 3, 6, 7, 9]))
    extra = draw(st.sampled_from(["", "123"]))
    uniform = draw(st.booleans())
    values = []
    for _ in range(n):
        if uniform:
            t = draw(st.one_of(_VALID, _VALID, _LEAP))
            values.append(_fmt(t, sep, digits, extra))
        else:
            kind = draw(st.sampled_from(["valid", "valid", "valid", "other", "bad", "missing"]))
            if kind == "valid":
                values.append(_fmt(draw(_VALID), sep, digits, extra))
            elif kind == "other":
                values.append(_fmt(draw(_VALID), draw(st.sampled_from([" ", "T"])),
                                   draw(st.integers(0, 9)), extra))
            elif kind == "bad":
                values.append(draw(_BAD))
            else:
                values.append(draw(_MISSING))
    arr = np.empty(n, dtype=object)
    arr[:] = values
    return arr


def _outcome(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                return "ok", fn(*args)
            except Exception as exc:  # noqa: BLE001 -- compared between the three runs
                return "raise", (type(exc), str(exc))


def _assert_same_outcome(got, expected, what):
    assert got[0] == expected[0], f"{what}: {got} but the original gives {expected}"
    if expected[0] == "raise":
        assert got[1] == expected[1], what
    else:
        assert_same_results(got[1], expected[1])


def _three_way(entry, *inputs):
    fn, graph, native = entry
    expected = _outcome(fn, *[x.copy() for x in inputs])
    _assert_same_outcome(_outcome(interpret, graph, *[x.copy() for x in inputs]), expected,
                         "interpreter")
    _assert_same_outcome(_outcome(native, *[x.copy() for x in inputs]), expected, "native")
    return expected


# -- the tests ---------------------------------------------------------------------------------

@SETTINGS
@given(batches())
def test_native_parser_is_pandas_where_it_answers(strings):
    got = parse_iso(strings)
    if got is None:
        return
    expected = pd.to_datetime(strings)
    assert got.dtype == expected.dtype
    assert np.array_equal(got.view("i8"), np.asarray(expected).view("i8"))


@SETTINGS
@given(st.lists(st.one_of(_VALID, _LEAP), min_size=1, max_size=30), st.sampled_from([" ", "T"]),
       st.sampled_from([0, 1, 2, 3, 4, 5, 6]))
def test_native_parser_answers_strict_iso_batches(times, sep, digits):
    strings = np.array([_fmt(t, sep, digits) for t in times], dtype=object)
    got = parse_iso(strings)
    assert got is not None, strings
    assert np.array_equal(got.view("i8"), np.asarray(pd.to_datetime(strings)).view("i8"))


@SETTINGS
@given(batches())
def test_fields_three_way(compiled, strings):
    _three_way(compiled["clock"], strings)
    _three_way(compiled["calendar"], strings)


@SETTINGS
@given(st.data())
def test_durations_three_way(compiled, data):
    start = data.draw(batches())
    end = data.draw(st.one_of(batches(max_rows=0), st.just(None))) if len(start) == 0 else None
    if end is None or len(end) != len(start):
        # a second column of the same length: shifted copies of the first or drawn anew
        if data.draw(st.booleans()) and len(start):
            end = np.roll(start, 1)
        else:
            end = data.draw(batches(max_rows=len(start)).filter(lambda b: len(b) == len(start)))
    _three_way(compiled["minutes"], start, end)
    _three_way(compiled["series_seconds"], start, end)


@SETTINGS
@given(batches(max_rows=8))
def test_frame_columns_of_pandas_strings(compiled, strings):
    """A DataFrame with pandas' string dtype, as read_csv gives it."""
    df = pd.DataFrame({"pickup": pd.array(strings, dtype="str"),
                       "dropoff": pd.array(np.roll(strings, 1), dtype="str")})
    fn, graph, native = compiled["frame"]
    expected = _outcome(fn, df.copy())
    _assert_same_outcome(_outcome(interpret, graph, df.copy()), expected, "interpreter")
    _assert_same_outcome(_outcome(native, df.copy()), expected, "native")


def test_examples_and_edge_batches(compiled):
    cases = [
        ["2019-01-01 00:03:04", "2020-02-29 23:59:59"],             # native path
        ["2019-01-01T00:03:04.250", "2019-01-01T10:00:00.125"],     # T and fractions
        ["2019-01-01 00:03:04", None],                             # NaT: NaN fields
        [None, None], [], ["2019-01-01 00:03:04"],
        ["2019-01-01 00:03:04", "2019-01-01T00:03:04"],             # mixed: pandas raises
        ["01/02/2019 10:00", "01/03/2019 11:30"],                   # another format
        ["2019-02-30 00:00:00"],                                   # pandas raises
    ]
    for values in cases:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        _three_way(compiled["clock"], arr)
        _three_way(compiled["minutes"], arr, arr[::-1].copy())
    hours = interpret(compiled["clock"][1], np.array(["2019-01-01 00:03:04", None], dtype=object))
    assert hours[0].dtype == np.float64 and np.isnan(hours[0][1]) and hours[0][0] == 0.05


def test_raised_errors_are_pandas_with_the_source_line(compiled):
    _, graph, native = compiled["clock"]
    bad = np.array(["2019-02-30 00:00:00"], dtype=object)
    with pytest.raises(ValueError) as pandas_error:
        pd.to_datetime(bad)
    for run in (lambda: interpret(graph, bad), lambda: native(bad)):
        with pytest.raises(type(pandas_error.value)) as info:
            run()
        assert str(info.value) == str(pandas_error.value)
        note = "\n".join(getattr(info.value, "__notes__", []))
        assert "to_datetime(...) from tests/test_datetimes.py:" in note, note


def test_timezone_aware_strings_raise_rather_than_differ(compiled):
    """Strings that all carry one UTC offset give pandas timezone-aware values; mloc's datetime
    columns are naive, so it raises (never another value); mixed offsets raise in pandas."""
    _, graph, native = compiled["clock"]
    utc = np.array(["2019-01-01T10:00:00Z", "2019-01-01T11:30:00Z"], dtype=object)
    for run in (lambda: interpret(graph, utc), lambda: native(utc)):
        with pytest.raises(mloc_ir.InputError, match="timezone-aware"):
            run()
    mixed = np.array(["2019-01-01 00:00:00", "2019-01-01T00:00:00Z"], dtype=object)
    _three_way(compiled["clock"], mixed)


def test_ir_and_explain():
    g = parse(minutes, dtypes=STR)
    text = str(g)
    assert "to_datetime(%end)" in text and "dt_sub(" in text and "td_seconds(" in text
    g = parse(clock, dtypes=STR)
    assert [n.attrs["field"] for n in g.find("dt_field")] == ["hour", "minute", "second",
                                                              "dayofweek", "weekday"]
    cp = mloc_ir.compile(clock, dtypes=STR)
    assert "a native kernel parses batches of strict ISO strings" in cp.explain()
    assert len(cp.graph.find("to_datetime")) == 1  # the same column is parsed once


# -- what is refused ------------------------------------------------------------------------

def to_datetime_with_format(ts):
    return pd.Series(pd.to_datetime(ts, format="%Y")).dt.hour.to_numpy(dtype=float)  # <-


def datetime_plus_number(ts):
    return pd.to_datetime(ts) + 1  # <-


def unknown_field(ts):
    return pd.Series(pd.to_datetime(ts)).dt.tz  # <-


def to_datetime_of_numbers(x):
    return pd.Series(pd.to_datetime(x * 2)).dt.hour.to_numpy(dtype=float)  # <-


def datetime_in_matrix(ts, x):
    return np.column_stack([pd.to_datetime(ts), x])  # <-


def datetime_as_float(ts):
    return pd.Series(pd.to_datetime(ts)).astype(float)  # <-


@pytest.mark.parametrize("fn, cls, words", [
    (datetime_in_matrix, PipelineTypeError, ["np.column_stack applied to a datetime column"]),
    (datetime_as_float, UnsupportedConstruct, [".astype() of a datetime column"]),
    (to_datetime_with_format, UnsupportedConstruct, ["pd.to_datetime(...) with format="]),
    (datetime_plus_number, PipelineTypeError, ["add of (datetime, scalar<i64>)"]),
    (unknown_field, UnsupportedConstruct, ["the .dt.tz of a datetime column"]),
    (to_datetime_of_numbers, PipelineTypeError, ["pd.to_datetime needs a string column"]),
])
def test_refused_constructs_name_the_line(fn, cls, words):
    import inspect
    with pytest.raises(cls) as info:
        parse(fn)
    lines, first = inspect.getsourcelines(fn)
    marker = first + next(i for i, line in enumerate(lines) if "# <-" in line)
    assert info.value.line == marker
    for w in words:
        assert w in str(info.value), str(info.value)


def test_native_parser_leaves_other_objects_to_pandas(compiled):
    ok = "2019-01-01 00:00:00"
    for other in (1.5, 7, b"2019-01-01 00:00:00", np.str_(ok), "2019-01-01 00:00:0\u00e9",
                  pd.Timestamp(ok), None):
        for values in ([ok, other], [other, ok], [other]):
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            assert parse_iso(arr) is None, values
            _three_way(compiled["clock"], arr)
