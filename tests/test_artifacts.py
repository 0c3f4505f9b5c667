"""Saved pipelines are importable modules that load without LLVM; the compile cache."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mloc_ir

SOURCE = textwrap.dedent('''
    import numpy as np
    import lightgbm as lgb

    _rng = np.random.default_rng(5)
    _X = _rng.normal(size=(300, 3))
    MODEL = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 7},
                      lgb.Dataset(_X, _X[:, 0] * 2 - _X[:, 2]), 20)
    RATE = {1.0: 0.5, 2.0: 0.25}

    def score(a, b, k):
        r = np.array([RATE.get(v, 0.1) for v in k])
        X = np.column_stack([a / np.maximum(b, 1.0), np.log1p(np.abs(b)), r])
        return MODEL.predict(X)
''')


@pytest.fixture
def pipeline_module(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "artifact_pipeline.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("MLOC_CACHE_DIR", str(tmp_path / "cache"))
    import artifact_pipeline
    return artifact_pipeline


def _inputs():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=500), rng.normal(size=500)
    a[::9] = np.nan
    k = rng.integers(0, 4, size=500).astype(float)
    return a, b, k


def test_saved_pipeline_imports_in_a_fresh_process_without_llvm(pipeline_module, tmp_path):
    cp = mloc_ir.compile(pipeline_module.score)
    out = tmp_path / "build" / "score_fast"
    cp.save(out)
    a, b, k = _inputs()
    np.save(tmp_path / "inputs.npy", np.stack([a, b, k]))
    expected = pipeline_module.score(a, b, k)
    np.save(tmp_path / "expected.npy", expected)
    script = textwrap.dedent(f'''
        import sys
        import numpy as np
        sys.path[:0] = [{str(tmp_path / "src")!r}, {str(tmp_path)!r}]
        import llvmlite.binding as llvm
        def no_optimizer(*a, **k):
            raise AssertionError("LLVM's optimizer ran while loading a saved pipeline")
        llvm.create_pass_builder = no_optimizer
        llvm.ModulePassManager = no_optimizer
        from build import score_fast
        a, b, k = np.load({str(tmp_path / "inputs.npy")!r})
        y = score_fast.score(a, b, k)
        np.testing.assert_array_equal(y, np.load({str(tmp_path / "expected.npy")!r}))
        print(score_fast.explain().splitlines()[0])
    ''')
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "1 native stage(s), 0 host stage(s)" in r.stdout


def test_compile_cache_hit_skips_llvm(pipeline_module, monkeypatch):
    from codegen import target
    first = mloc_ir.compile(pipeline_module.score)
    calls = []
    real = target.compile_ir
    monkeypatch.setattr(target, "compile_ir", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = mloc_ir.compile(pipeline_module.score)
    assert calls == []
    assert second.object_code == first.object_code
    a, b, k = _inputs()
    np.testing.assert_array_equal(second(a, b, k), pipeline_module.score(a, b, k))
    # a changed table changes the emitted code: a miss, compiled afresh
    pipeline_module.RATE[3.0] = 7.0
    third = mloc_ir.compile(pipeline_module.score)
    assert calls == [1]
    np.testing.assert_array_equal(third(a, b, k), pipeline_module.score(a, b, k))


def test_corrupt_cache_entry_is_rebuilt(pipeline_module, tmp_path):
    mloc_ir.compile(pipeline_module.score)
    for entry in (tmp_path / "cache").iterdir():
        entry.write_bytes(b"garbage")
    cp = mloc_ir.compile(pipeline_module.score)
    a, b, k = _inputs()
    np.testing.assert_array_equal(cp(a, b, k), pipeline_module.score(a, b, k))


TEXT_SOURCE = textwrap.dedent('''
    import numpy as np
    import scipy.sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    _T = np.array(["a b c", "b c d!", "hello world", "x y z!!", "A B", "foo bar"], dtype=object)
    VEC = TfidfVectorizer().fit(_T)
    CLF = LogisticRegression().fit(scipy.sparse.hstack([VEC.transform(_T), np.ones((6, 3))]),
                                   [0, 1, 0, 1, 0, 1])

    def predict(t):
        n = np.array([len(s) for s in t])
        up = np.array([s.upper() == s for s in t])
        ex = np.array([s.count("!") for s in t])
        X = scipy.sparse.hstack([VEC.transform(t), np.column_stack([n, up, ex])])
        return CLF.predict_proba(X)[:, 1]
''')


def test_saved_text_pipeline_reloads_in_a_fresh_process(tmp_path, monkeypatch):
    """Native text kernels (vectorizer + text statistics) pickle with the pipeline."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "text_artifact_pipeline.py").write_text(TEXT_SOURCE)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("MLOC_CACHE_DIR", str(tmp_path / "cache"))
    import text_artifact_pipeline as m
    cp = mloc_ir.compile(m.predict, dtypes={"t": "str"})
    assert "%t_stats" in cp.explain()  # the statistics went to a native text kernel
    texts = ["a b", "HELLO!", "", "c d e!!", "héllo wörld b"]
    expected = m.predict(np.array(texts, dtype=object))
    np.testing.assert_array_equal(cp(np.array(texts, dtype=object)), expected)
    cp.save(tmp_path / "build" / "text_fast")
    np.save(tmp_path / "expected.npy", expected)
    script = textwrap.dedent(f'''
        import sys
        import numpy as np
        sys.path[:0] = [{str(src)!r}, {str(tmp_path)!r}]
        from build import text_fast
        y = text_fast.predict(np.array({texts!r}, dtype=object))
        np.testing.assert_array_equal(y, np.load({str(tmp_path / "expected.npy")!r}))
    ''')
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
