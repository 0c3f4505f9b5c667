"""Native kernels call NumPy's own float loops (``codegen.numpy_loops``), so transcendental
ops equal NumPy bit for bit whatever loop NumPy picked for this CPU (its SIMD code, SVML on
AVX-512), including on values where the C library gives other last bits."""
from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mloc_ir
from codegen import numpy_loops

UNARY = ["log", "exp", "log1p", "log10", "log2", "expm1"]


def test_every_loop_of_the_table_is_found_and_checked_here():
    for key in numpy_loops.LOOPS:
        assert numpy_loops.available(*key), key


def test_unknown_loops_are_not_available():
    assert not numpy_loops.available("numpy", "sin", "d")
    assert not numpy_loops.available("numpy", "log", "g")


def _pipeline(tmp_path, body, name="p"):
    path = tmp_path / f"{name}.py"
    path.write_text("import numpy as np\n\n\ndef predict(a, b):\n" + body)
    return mloc_ir.compile(f"{path}:predict", dtypes={"a": "f64", "b": "f64"})


FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-800, 800), st.floats(-1.0, 1.0), st.floats(-1e-9, 1e-9),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 5e-324]))


@pytest.fixture(scope="module")
def transcendental(tmp_path_factory):
    outs = ", ".join(f"np.{u}(a)" for u in UNARY)
    body = f"    return ({outs}, a ** b, np.float32(a) ** np.float32(b))\n"
    return _pipeline(tmp_path_factory.mktemp("loops"), body, "transcendental")


@settings(max_examples=60, deadline=None)
@given(a=hnp.arrays(np.float64, st.integers(0, 40), elements=FLOATS),
       data=st.data())
def test_transcendental_ops_equal_numpy_bit_for_bit(transcendental, a, data):
    b = data.draw(hnp.arrays(np.float64, len(a), elements=st.floats(-6, 6) | FLOATS))
    got = transcendental(a=a, b=b)
    with np.errstate(all="ignore"):
        want = [getattr(np, u)(a) for u in UNARY] + [a ** b, a.astype(np.float32) ** b.astype(
            np.float32)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        assert g.tobytes() == w.tobytes()


def test_values_where_the_c_library_differs_from_numpy_are_numpy_s(transcendental):
    """On many inputs the C library and NumPy's loop differ in the last bit on some CPUs;
    whatever this machine does, the kernel gives NumPy's value."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    rng = np.random.default_rng(5)
    a = np.concatenate([rng.uniform(0, 5000, 20000), rng.normal(0, 3, 20000)])
    b = rng.uniform(-3, 3, len(a))
    got = transcendental(a=a, b=b)
    with np.errstate(all="ignore"):
        for u, g in zip(UNARY, got):
            assert g.tobytes() == getattr(np, u)(a).tobytes(), u
        c_fn = getattr(libm, "log1p")
        c_fn.restype, c_fn.argtypes = ctypes.c_double, [ctypes.c_double]
        differs = sum(c_fn(float(v)) != w for v, w in zip(a[:2000], np.log1p(a[:2000])))
    print(f"C library log1p differs from NumPy's on {differs} of 2000 values here")


def test_one_row_and_empty_batches(transcendental):
    for n in (0, 1):
        a = np.full(n, 0.7)
        got = transcendental(a=a, b=a)
        assert all(len(g) == n for g in got)
        if n:
            assert got[2][0] == np.log1p(0.7)


def test_a_saved_pipeline_calling_numpy_loops_loads_in_a_fresh_process(tmp_path):
    cp = _pipeline(tmp_path, "    return np.log1p(np.abs(a)) + np.exp(-np.abs(b))\n", "saved")
    out = tmp_path / "saved_fast"
    cp.save(out)
    code = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import saved_fast\n"
        "a = np.linspace(-50, 50, 1001); b = a[::-1].copy()\n"
        "got = saved_fast.predict(a=a, b=b)\n"
        "want = np.log1p(np.abs(a)) + np.exp(-np.abs(b))\n"
        "assert got.tobytes() == want.tobytes()\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_loop_that_fails_its_check_keeps_the_op_on_the_host(tmp_path, monkeypatch):
    monkeypatch.setitem(numpy_loops._available, ("numpy", "log1p", "d"), False)
    cp = _pipeline(tmp_path, "    return np.log1p(a) + b\n", "hosted")
    a = np.linspace(0, 9, 50)
    assert cp(a=a, b=a).tobytes() == (np.log1p(a) + a).tobytes()
    assert "%log1p on the host: numpy.log1p on f64: NumPy's loop could not be checked" \
        in cp.explain()


def test_loading_object_code_whose_loop_is_missing_is_a_clear_error(tmp_path, monkeypatch):
    from runtime import loader
    cp = _pipeline(tmp_path, "    return np.expm1(a) * b\n", "missing")
    cp.save(tmp_path / "missing_fast")
    objects = sorted((tmp_path / "missing_fast").rglob("*.o"))
    assert objects, list((tmp_path / "missing_fast").rglob("*"))
    obj = objects[0]
    monkeypatch.setitem(numpy_loops._available, ("numpy", "expm1", "d"), False)
    with pytest.raises(loader.LoadError, match=r"numpy\.expm1\(d\)"):
        loader.load(obj.read_bytes(), [])


COMPREHENSION = (
    "import math\n\nimport numpy as np\n\n\n"
    "def predict(a, b):\n"
    "    c = np.array([math.log1p(x) + math.exp(-y) + math.log(x + 1.5) for x, y in zip(a, b)])\n"
    "    d = np.array([x ** 2 + x ** 2.5 - y ** 3 for x, y in zip(a, b)])\n"
    "    return c, d, np.log1p(a) + np.exp(-b), a ** 2 + a ** 2.5\n")


@pytest.fixture(scope="module")
def math_pipeline(tmp_path_factory):
    path = tmp_path_factory.mktemp("cmath") / "cmath_pipeline.py"
    path.write_text(COMPREHENSION)
    import importlib.util
    spec = importlib.util.spec_from_file_location("cmath_pipeline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    graph = mloc_ir.parse(f"{path}:predict")
    return mod.predict, graph, mloc_ir.compile(f"{path}:predict")


@settings(max_examples=60, deadline=None)
@given(a=hnp.arrays(np.float64, st.integers(0, 30),
                    elements=st.floats(0, 1e6) | st.sampled_from([0.0, -0.0, 1e-300, 5e-324])),
       data=st.data())
def test_math_functions_in_comprehensions_are_the_c_librarys(math_pipeline, a, data):
    """math.log/log1p/exp and float ** in per-element code compute with the C library (so does
    Python: LLVM must not turn pow(x, 2.0) into x * x either): three-way equal, while
    np.log1p/np.exp and array ** in the same pipeline stay NumPy's."""
    fn, graph, compiled = math_pipeline
    b = data.draw(hnp.arrays(np.float64, len(a), elements=st.floats(-700, 700)))
    want = fn(a, b)
    for got in (mloc_ir.interpret(graph, a, b), compiled(a, b)):
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.tobytes() == w.tobytes()


def test_math_functions_in_comprehensions_on_many_values(math_pipeline):
    fn, graph, compiled = math_pipeline
    rng = np.random.default_rng(9)
    a, b = rng.uniform(0, 1000, 20000), rng.normal(0, 20, 20000)
    want = fn(a, b)
    assert "c_log1p" in str(graph) and "= log1p(" in str(graph) and "c_pow(" in str(graph)
    for got in (mloc_ir.interpret(graph, a, b), compiled(a, b)):
        for g, w in zip(got, want):
            assert g.tobytes() == w.tobytes()
