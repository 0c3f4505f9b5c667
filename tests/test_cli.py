"""The mloc command line: explain and compile, and their errors."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mloc_ir.cli import main

PIPELINE = textwrap.dedent('''
    import numpy as np
    from sklearn.linear_model import LinearRegression

    _X = np.arange(20.0).reshape(10, 2)
    MODEL = LinearRegression().fit(_X, _X[:, 0] * 2 + 1)
    SCALE = {1.0: 2.0, 2.0: 3.0}

    def predict(a, b):
        s = np.array([SCALE.get(v, 1.0) for v in b])
        X = np.column_stack([a * s, np.log1p(np.abs(b))])
        return MODEL.predict(X)

    def broken(a):
        for v in a:
            pass
        return a
''')


@pytest.fixture
def pipeline_file(tmp_path):
    p = tmp_path / "cli_pipeline.py"
    p.write_text(PIPELINE)
    return p


def test_explain_prints_ir_models_and_groups(pipeline_file, capsys):
    assert main(["explain", f"{pipeline_file}:predict"]) == 0
    out = capsys.readouterr().out
    assert "pipeline predict(a, b) {" in out
    assert "lookup(%b) {default=1.0, table=SCALE[2 keys]}" in out
    assert "model %pred: MODEL:sklearn.LinearRegression.predict on %X : f64[2] -> f64" in out
    assert "2 feature group(s)" in out


def test_explain_writes_dot(pipeline_file, tmp_path, capsys):
    dot = tmp_path / "g.dot"
    assert main(["explain", f"{pipeline_file}:predict", "--dot", str(dot)]) == 0
    text = dot.read_text()
    assert text.startswith('digraph "predict" {') and "->" in text and text.rstrip().endswith("}")


def test_explain_unsupported_construct_is_a_clear_error(pipeline_file, capsys):
    assert main(["explain", f"{pipeline_file}:broken"]) == 1
    err = capsys.readouterr().err
    assert "cli_pipeline.py:15: unsupported construct: a Python loop over rows" in err
    assert "supported instead" in err


def test_explain_missing_file_and_function(tmp_path, pipeline_file, capsys):
    assert main(["explain", str(tmp_path / "nope.py")]) == 1
    assert "no such pipeline file" in capsys.readouterr().err
    assert main(["explain", f"{pipeline_file}:nothing"]) == 1
    assert "has no function 'nothing'" in capsys.readouterr().err


def test_bad_dtype_flag(pipeline_file, capsys):
    assert main(["explain", f"{pipeline_file}:predict", "--dtype", "a"]) == 1
    assert "--dtype takes NAME=DTYPE" in capsys.readouterr().err


def test_console_entry_point_runs(pipeline_file):
    r = subprocess.run([sys.executable, "-m", "mloc_ir", "explain", f"{pipeline_file}:predict"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "feature group" in r.stdout


# ---------------------------------------------------------------------------------------------
# compile --train: the statistical plan from a CSV file

CLASSIFIER_PIPELINE = textwrap.dedent('''
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    _rng = np.random.default_rng(0)
    _X = _rng.normal(size=(400, 3))
    MODEL = LogisticRegression().fit(_X, (_X[:, 0] + 0.1 * _X[:, 2] > 0).astype(int))

    def predict(a, b, c):
        X = np.column_stack([a, np.abs(b) * 0.5, np.log1p(np.abs(c))])
        return MODEL.predict_proba(X)[:, 1]

    def frame_predict(df):
        X = np.column_stack([df["a"], np.abs(df["b"]) * 0.5, np.log1p(np.abs(df["c"]))])
        return MODEL.predict_proba(X)[:, 1]
''')


@pytest.fixture
def train_files(tmp_path):
    import pandas as pd
    p = tmp_path / "cli_classifier.py"
    p.write_text(CLASSIFIER_PIPELINE)
    rng = np.random.default_rng(1)
    n = 1500
    a, b, c = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    csv = tmp_path / "rows.csv"
    pd.DataFrame({"a": a, "b_col": b, "c": c,
                  "kind": np.where(a > 0, "yes", "no")}).to_csv(csv, index=False)
    return p, csv


def test_compile_with_training_csv_plans_and_saves(train_files, tmp_path, capsys):
    p, csv = train_files
    out = tmp_path / "build" / "fast"
    argv = ["compile", f"{p}:predict", "--train", str(csv), "--label", "kind", "--positive",
            "yes", "--column", "b=b_col", "--top-k", "20", "--accuracy-target", "0.99",
            "--rows", "1200", "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "plan for predict: binary (2 classes)" in text
    assert "top-20" in text or "top-K" in text
    assert f"wrote {out}" in text
    # the output is a module: importing it in a fresh process loads the plan, no retraining
    script = textwrap.dedent(f'''
        import sys
        import numpy as np
        import pandas as pd
        sys.path[:0] = [{str(tmp_path)!r}, {str(tmp_path / "build")!r}]
        import fast
        rows = pd.read_csv({str(csv)!r})
        cols = dict(a=rows["a"].to_numpy(), b=rows["b_col"].to_numpy(), c=rows["c"].to_numpy())
        y = fast.predict(**cols)
        assert y.shape == (len(rows),)
        top = fast.top_k(20, **cols)
        print("top", len(top[0]) if isinstance(top, tuple) else len(top))
        print(fast.explain().splitlines()[0])
    ''')
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "top 20" in r.stdout and "cascaded pipeline predict" in r.stdout


def test_training_csv_gives_a_frame_parameter_the_whole_table(train_files):
    from mloc_ir.frontend import parse
    from mloc_ir.training_data import read_training_csv
    p, csv = train_files
    graph = parse(f"{p}:frame_predict")
    kwargs, labels = read_training_csv(graph, csv, "kind", positive=["yes"], rows=100)
    assert list(kwargs) == ["df"] and "kind" not in kwargs["df"].columns
    assert len(kwargs["df"]) == len(labels) == 100
    assert set(np.unique(labels)) <= {0, 1}
    assert np.array_equal(labels, (kwargs["df"]["a"] > 0).astype(int).to_numpy())


@pytest.mark.parametrize("extra, message", [
    (["--cascades"], "--cascades and --top-k plan on labelled rows"),
    (["--train", "x.csv", "--cascades"], "--train needs --label COLUMN"),
    (["--train", "x.csv", "--label", "kind"], "--train is only used by --cascades"),
    (["--label", "kind"], "give --train too"),
    (["--train", "missing.csv", "--label", "kind", "--top-k", "5"], "does not exist"),
    (["--train", "{csv}", "--label", "nope", "--top-k", "5"], "has no label column 'nope'"),
    (["--train", "{csv}", "--label", "kind", "--top-k", "5"],
     "no column 'b' for parameter 'b' of predict(); name the column with --column b=COLUMN"),
    (["--train", "{csv}", "--label", "kind", "--positive", "maybe", "--column", "b=b_col",
      "--top-k", "5"], "no row of 'kind' has a positive value ['maybe']"),
    (["--train", "{csv}", "--label", "kind", "--column", "q=b_col", "--top-k", "5"],
     "are not parameters of predict(a, b, c)"),
    (["--train", "{csv}", "--label", "kind", "--column", "b", "--top-k", "5"],
     "--column takes PARAM=COLUMN"),
])
def test_compile_training_options_errors(train_files, capsys, extra, message):
    p, csv = train_files
    argv = ["compile", f"{p}:predict"] + [a.replace("{csv}", str(csv)) for a in extra]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
