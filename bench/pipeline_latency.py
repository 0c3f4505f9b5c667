"""Batch-1 latency of a whole compiled pipeline (features + a 100-tree LightGBM model) against
the original Python pipeline and against lleaves running the model alone.

    python bench/pipeline_latency.py [--reps 20000] [--rounds 20]

The pipeline is credit-style (ratios, a clipped difference, a per-category rate lookup, a log)
feeding a 100-tree, 31-leaf binary model trained on credit data (``$MLOC_DATA_DIR/credit``) or,
when that is absent, on synthetic data. lleaves runs in its own virtual environment
(``$MLOC_LLEAVES_PYTHON``, default ``/tmp/lleaves-venv/bin/python``; skipped when missing) on
the same model file and the same feature rows. lleaves runs as a worker process that takes
its calls in rounds, interleaved with the mloc pipeline's rounds, so both see the same load on
a shared machine. Reports, per call, the median and p99 of wall time and the median of the
calling thread's CPU time (``time.thread_time``; on a loaded machine the wall time also counts
waiting for a core), in microseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LLEAVES_PYTHON = os.environ.get("MLOC_LLEAVES_PYTHON", "/tmp/lleaves-venv/bin/python")

PIPELINE = '''
import numpy as np
import lightgbm as lgb

MODEL = lgb.Booster(model_file={model_file!r})
RATE = {rate!r}


def predict(limit_bal, bill_1, bill_2, pay_1, education):
    util = bill_1 / np.maximum(limit_bal, 1.0)
    trend = np.clip(bill_1 - bill_2, -1e5, 1e5) / 1000.0
    paid = np.where(bill_1 > 0, pay_1 / bill_1, 1.0)
    rate = np.array([RATE.get(e, 0.22) for e in education])
    X = np.column_stack([util, trend, paid, rate, np.log1p(np.maximum(limit_bal, 0.0))])
    return MODEL.predict(X)
'''

LLEAVES_WORKER = '''
import json, sys, time
import numpy as np, lleaves
model_file, rows_file = sys.argv[1], sys.argv[2]
t = time.perf_counter()
m = lleaves.Model(model_file=model_file)
m.compile()
print(json.dumps({"compile_s": time.perf_counter() - t}), flush=True)
rows = np.load(rows_file)
i = 0
for line in sys.stdin:  # one round per line: the number of calls to time
    wall, cpu = [], []
    for _ in range(int(line)):
        x = rows[i % len(rows)][None, :]
        i += 1
        t, c = time.perf_counter(), time.thread_time()
        m.predict(x, n_jobs=1)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)
'''


def training_data():
    path = Path(os.environ.get("MLOC_DATA_DIR", REPO.parent / "shared" / "datasets")) / "credit" / "credit.csv"
    if path.is_file():
        import pandas as pd
        df = pd.read_csv(path)
        cols = {"limit_bal": df["LIMIT_BAL"], "bill_1": df["BILL_AMT1"], "bill_2": df["BILL_AMT2"],
                "pay_1": df["PAY_AMT1"], "education": df["EDUCATION"]}
        return {k: v.to_numpy(np.float64) for k, v in cols.items()}, df["default"].to_numpy(), "credit.csv"
    rng = np.random.default_rng(0)
    n = 20_000
    cols = {"limit_bal": rng.lognormal(11, 1, n), "bill_1": rng.normal(5e4, 3e4, n),
            "bill_2": rng.normal(5e4, 3e4, n), "pay_1": rng.lognormal(8, 1, n),
            "education": rng.integers(0, 7, n).astype(float)}
    y = (cols["bill_1"] / cols["limit_bal"] + rng.normal(0, 0.3, n) > 0.8).astype(int)
    return cols, y, "synthetic"


class Timer:
    """Per-call wall and thread CPU times of ``fn(**row)`` over rounds of calls."""

    def __init__(self, fn, rows: list[dict]):
        self.fn, self.rows, self.i = fn, rows, 0
        self.wall: list[float] = []
        self.cpu: list[float] = []
        fn(**rows[0])

    def round(self, calls: int) -> None:
        fn, rows = self.fn, self.rows
        for _ in range(calls):
            r = rows[self.i % len(rows)]
            self.i += 1
            t, c = time.perf_counter(), time.thread_time()
            fn(**r)
            self.cpu.append(time.thread_time() - c)
            self.wall.append(time.perf_counter() - t)


class LleavesTimer:
    """The same rounds, run by lleaves in its own interpreter (see ``LLEAVES_WORKER``)."""

    def __init__(self, python: str, work: Path, model_file: Path, feats: np.ndarray):
        np.save(work / "rows.npy", feats)
        (work / "lleaves_worker.py").write_text(textwrap.dedent(LLEAVES_WORKER))
        self.proc = subprocess.Popen([python, str(work / "lleaves_worker.py"), str(model_file),
                                      str(work / "rows.npy")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.compile_s = json.loads(self._line())["compile_s"]
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.round(20)  # warm-up, dropped below
        self.wall, self.cpu = [], []

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"lleaves worker exited with status {self.proc.wait()}")
        return line

    def round(self, calls: int) -> None:
        self.proc.stdin.write(f"{calls}\n")
        self.proc.stdin.flush()
        got = json.loads(self._line())
        self.wall += got["wall"]
        self.cpu += got["cpu"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def summary(timer) -> dict:
    """Median and p99 wall time and median thread CPU time per call, in microseconds."""
    return {"median": statistics.median(timer.wall) * 1e6,
            "p99": float(np.percentile(timer.wall, 99)) * 1e6,
            "cpu_median": statistics.median(timer.cpu) * 1e6, "calls": len(timer.wall)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20000,
                    help="timed calls per tool (the Python pipeline: 1/50 of them)")
    ap.add_argument("--rounds", type=int, default=20,
                    help="interleaved rounds the calls are cut into")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import lightgbm as lgb

    import mloc_ir

    cols, y, source = training_data()
    work = Path(tempfile.mkdtemp(prefix="mloc-latency-"))
    rate = {float(k): float(v) for k, v in
            zip(*np.unique(cols["education"], return_counts=True))}
    rate = {k: float(np.mean(y[cols["education"] == k])) for k in rate}
    # train on the pipeline's own features: write the module with a placeholder model first
    model_file = work / "model.txt"
    feats = np.column_stack([
        cols["bill_1"] / np.maximum(cols["limit_bal"], 1.0),
        np.clip(cols["bill_1"] - cols["bill_2"], -1e5, 1e5) / 1000.0,
        np.where(cols["bill_1"] > 0, cols["pay_1"] / np.where(cols["bill_1"] == 0, 1, cols["bill_1"]), 1.0),
        np.array([rate.get(e, 0.22) for e in cols["education"]]),
        np.log1p(np.maximum(cols["limit_bal"], 0.0))])
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 0},
                        lgb.Dataset(feats, y), 100)
    booster.save_model(str(model_file))
    (work / "latency_pipeline.py").write_text(PIPELINE.format(model_file=str(model_file), rate=rate))
    sys.path.insert(0, str(work))
    import latency_pipeline

    t = time.perf_counter()
    cp = mloc_ir.compile(latency_pipeline.predict, threads=1)
    compile_s = time.perf_counter() - t
    n = min(2000, len(y))
    rows = [{k: v[i:i + 1] for k, v in cols.items()} for i in range(n)]
    for r in rows[:200]:
        np.testing.assert_array_equal(cp(**r), latency_pipeline.predict(**r))

    lleaves = None
    if Path(LLEAVES_PYTHON).exists():
        try:
            lleaves = LleavesTimer(LLEAVES_PYTHON, work, model_file, feats[:n])
        except (OSError, RuntimeError, ValueError) as exc:
            print(f"lleaves failed: {exc}", file=sys.stderr)
    else:
        print(f"lleaves skipped: no interpreter at {LLEAVES_PYTHON}", file=sys.stderr)
    python, mloc = Timer(latency_pipeline.predict, rows), Timer(cp, rows)
    rounds = max(1, args.rounds)
    with np.errstate(all="ignore"):
        for _ in range(rounds):  # interleaved: every tool sees the same machine load
            python.round(max(1, args.reps // 50 // rounds))
            mloc.round(max(1, args.reps // rounds))
            if lleaves is not None:
                lleaves.round(max(1, args.reps // rounds))
    result = {"data": source, "trees": 100, "compile_s": compile_s, "rounds": rounds,
              "python_us": summary(python), "mloc_pipeline_us": summary(mloc)}
    if lleaves is not None:
        lleaves.close()
        result["lleaves_model_only_us"] = {**summary(lleaves), "compile_s": lleaves.compile_s}

    print(json.dumps(result, indent=1))
    py, ml = result["python_us"], result["mloc_pipeline_us"]
    print(f"\nbatch-1 median wall (CPU): Python pipeline {py['median']:.1f} "
          f"({py['cpu_median']:.1f}) us, mloc pipeline {ml['median']:.1f} ({ml['cpu_median']:.1f}) "
          f"us ({py['median'] / ml['median']:.0f}x)")
    if lleaves is not None:
        ll = result["lleaves_model_only_us"]
        print(f"lleaves, model alone: {ll['median']:.1f} ({ll['cpu_median']:.1f}) us "
              f"(mloc whole pipeline / lleaves model = {ml['median'] / ll['median']:.2f} wall, "
              f"{ml['cpu_median'] / ll['cpu_median']:.2f} CPU)")
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pipeline_latency.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
