"""Front-end behaviours fixed after review: opaque results in arithmetic, merge clashes."""
import numpy as np
import pandas as pd
import pytest

import mloc_ir
from mloc_ir import InputError

SOURCE = '''
import numpy as np
import pandas as pd

TABLE = pd.DataFrame({"key": [1, 2, 3], "value": [0.5, 1.5, 2.5]})


def helper(a, b):
    out = a / b
    if len(out) == 0:  # an if statement: not inlined, an opaque call
        return out
    return out


def opaque_then_arith(a, b):
    f = helper(a, b)
    return f * 2 + a


def joined(df):
    m = df.merge(TABLE, on="key", how="left")
    return m["value"] * 2
'''


@pytest.fixture
def mod(tmp_path, monkeypatch):
    (tmp_path / "fixes_pipeline.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import fixes_pipeline
    return fixes_pipeline


def test_opaque_result_in_arithmetic_parses_and_runs(mod):
    g = mloc_ir.parse(mod.opaque_then_arith)
    assert [n.type.shape for n in g.nodes() if n.op in ("pycall", "mul", "add")] == ["any"] * 3
    a = np.array([1.0, -2.0, np.nan, 0.0])
    b = np.array([2.0, 0.0, 1.0, -0.0])
    with np.errstate(all="ignore"):
        expected = mod.opaque_then_arith(a, b)
    np.testing.assert_array_equal(mloc_ir.interpret(g, a, b), expected)
    cp = mloc_ir.compile(mod.opaque_then_arith)  # runs on the host, same answer
    np.testing.assert_array_equal(cp(a, b), expected)


def test_merge_with_a_clashing_frame_column_is_an_input_error(mod):
    g = mloc_ir.parse(mod.joined)
    ok = pd.DataFrame({"key": [1, 4, 2]})
    np.testing.assert_array_equal(mloc_ir.interpret(g, ok), mod.joined(ok).to_numpy())
    clash = pd.DataFrame({"key": [1, 4], "value": [9.0, 9.0]})
    with pytest.raises(KeyError):
        mod.joined(clash)  # pandas renamed the columns value_x / value_y
    with pytest.raises(InputError, match=r"already has column\(s\) \['value'\] that the merge with TABLE adds"):
        mloc_ir.interpret(g, clash)


FINITE_SOURCE = '''
import numpy as np

def finiteness(i, x):
    return np.isfinite(i), np.isinf(i), np.isposinf(i), np.isfinite(x), np.isinf(x), np.isneginf(x)
'''


def test_isfinite_family_on_integer_and_float_columns(tmp_path, monkeypatch):
    (tmp_path / "finite_pipeline.py").write_text(FINITE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import finite_pipeline
    i = np.array([1, -5, 0, 2**62], dtype=np.int64)
    x = np.array([np.inf, -np.inf, np.nan, -0.0])
    expected = finite_pipeline.finiteness(i, x)
    g = mloc_ir.parse(finite_pipeline.finiteness, dtypes={"i": "i64"})
    for got in (mloc_ir.interpret(g, i, x),
                mloc_ir.compile(finite_pipeline.finiteness, dtypes={"i": "i64"})(i, x)):
        for e, o in zip(expected, got):
            assert o.dtype == e.dtype
            np.testing.assert_array_equal(o, e)
