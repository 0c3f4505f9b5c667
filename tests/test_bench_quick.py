"""The benchmark suite runs end to end (``python -m bench --quick``, small slices and models,
two benchmarks at a time in worker processes), so it cannot rot: every benchmark whose data is
here produces results in which mloc's exact variant reproduces the original pipeline, every
variant ran, and the summary and plots are written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, MLOC_FAST_EXAMPLES="1")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--no-progress",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    return out, proc


def test_quick_benchmarks_run_and_mloc_is_exact(quick_results):
    out, proc = quick_results
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    assert "| benchmark |" in summary
    ran = 0
    for name in ("credit", "bank", "tweets", "shoppers", "taxi", "flights", "flights-remote"):
        r = json.loads((out / f"{name}.json").read_text())
        if "skipped" in r:
            print(f"{name}: {r['skipped']}")  # data or redis-server missing here
            continue
        ran += 1
        assert "error" not in r, r.get("traceback", r.get("error"))
        assert r["variants"]["mloc"]["identical"], name
        assert set(r["phase_seconds"]) >= {"load", "python", "compile", "mloc", "plan"}
        assert r["variants"]["python"]["rows_per_second"] > 0
        assert r["variants"]["mloc"]["latency_us"]["p99"] > 0
        assert r["compile_seconds"] > 0
        if name == "taxi":  # its three datetime helpers are inlined, nothing stays opaque
            assert "pycall" not in r["explain"] and "to_datetime runs on the host" in r["explain"]
        if "cascade" in r["variants"]:
            assert 0.9 <= r["variants"]["cascade"]["agreement"] <= 1.0
    if ran == 0:
        pytest.skip("no benchmark data here (MLOC_DATA_DIR) and no redis-server")
    assert (out / "throughput.png").stat().st_size > 0
    assert (out / "speedup_vs_agreement.png").stat().st_size > 0


def test_unknown_benchmark_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "bench", "nope"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown benchmark(s) nope; choose from credit" in proc.stderr


def test_jobs_must_be_positive():
    proc = subprocess.run([sys.executable, "-m", "bench", "credit", "--jobs", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "jobs must be a positive number of processes, got 0" in proc.stderr
