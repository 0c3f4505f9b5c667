"""Tree-model benchmark: LightGBM predict vs mloc vs lleaves vs treelite/tl2cgen, side by side.

    python bench/models.py [--quick]

Models: NYC_taxi.txt and mtpl2.txt from the shared model directory (``$MLOC_MODELS_DIR``,
default ``../shared/models``) and a freshly trained 300-tree, 63-leaf binary model on 30
features.  Batch sizes 1, 100, 10k, 100k; 1 and 2 threads.  Reports ns per tree per row
(median of several repetitions, wall clock), speedups of mloc over each peer, batch-1
latency and compile time; writes ``bench/results/models.{json,md,png}``.

Peers run in their own virtual environments through a worker mode of this script
(``--worker lleaves|treelite``), because lleaves needs llvmlite < 0.45:

    python -m venv /tmp/lleaves-venv && /tmp/lleaves-venv/bin/pip install lleaves "llvmlite<0.45"
    python -m venv /tmp/tl-venv && /tmp/tl-venv/bin/pip install treelite tl2cgen lightgbm

Interpreters: ``$MLOC_LLEAVES_PYTHON`` / ``$MLOC_TREELITE_PYTHON`` (defaults above); a peer
whose interpreter or package is missing is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PEER_PYTHON = {
    "lleaves": os.environ.get("MLOC_LLEAVES_PYTHON", "/tmp/lleaves-venv/bin/python"),
    "treelite": os.environ.get("MLOC_TREELITE_PYTHON", "/tmp/tl-venv/bin/python"),
}
ENGINES = ["lightgbm", "lleaves", "treelite", "mloc", "mloc-f32"]
#: Engines mloc's speedup is reported against ("mloc-f32" is mloc's opt-in float32 mode,
#: timed on the same rows as float32; its raw scores are LightGBM's on those values).
PEERS = ["lightgbm", "lleaves", "treelite"]
#: Engines timed on the second input distribution (near the model's thresholds; batch 10k,
#: 1 thread).  treelite is left out there: it recompiles for every run (minutes for mtpl2).
NEAR_ENGINES = ["lightgbm", "lleaves", "mloc", "mloc-f32"]


# ------------------------------------------------------------------------------ timing

def time_calls(fn, X, reps: int) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of ``fn(X)``; small batches are timed in loops.

    The CPU time of single-threaded runs is the robust number on a shared machine (other
    processes inflate wall time); with several threads, wall time is what counts.
    """
    n = len(X)
    inner = 1 if n >= 10_000 else min(500, max(1, 20_000 // max(n, 1)))
    fn(X)  # warm up (first-call allocations, page faults)
    walls, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(inner):
            fn(X)
        walls.append((time.perf_counter() - t) / inner)
        cpus.append((time.process_time() - c) / inner)
    return statistics.median(walls), statistics.median(cpus)


def run_grid(make_predict, X, batches, threads_list, reps) -> tuple[dict, dict]:
    """({"batch,threads": wall s}, {...: cpu s}) for one engine; ``make_predict(threads)``."""
    wall, cpu = {}, {}
    for threads in threads_list:
        predict = make_predict(threads)
        for b in batches:
            key = f"{b},{threads}"
            wall[key], cpu[key] = time_calls(predict, X[:b], reps)
    return wall, cpu


# ------------------------------------------------------------------------- peer workers

def worker(args) -> None:
    """Runs inside a peer's virtual environment; prints one JSON object."""
    import numpy as np

    X = np.load(args.data)
    batches = [int(b) for b in args.batches.split(",")]
    threads_list = [int(t) for t in args.threads.split(",")]
    result = {}
    if args.worker == "lleaves":
        import lleaves

        model = lleaves.Model(model_file=args.model)
        cache = Path(args.cache) if args.cache else None
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        model.compile(cache=str(cache) if cache else None)
        result["compile_s"] = time.perf_counter() - t
        result["compile_cached"] = bool(cache and cache.exists() and result["compile_s"] < 5)

        def make(threads):
            return lambda A: model.predict(A, n_jobs=threads)
    elif args.worker == "treelite":
        import tl2cgen
        import treelite

        tmp = Path(tempfile.mkdtemp(prefix="mloc-bench-tl-"))
        t = time.perf_counter()
        tl_model = treelite.frontend.load_lightgbm_model(args.model)
        lib = tmp / "model.so"
        tl2cgen.export_lib(tl_model, toolchain="gcc", libpath=str(lib),
                           params={"parallel_comp": 8}, nthread=2)
        result["compile_s"] = time.perf_counter() - t
        predictors = {}

        def make(threads):
            predictors[threads] = p = tl2cgen.Predictor(str(lib), nthread=threads)
            return lambda A: p.predict(tl2cgen.DMatrix(A))
    else:
        raise SystemExit(f"unknown worker {args.worker}")
    result["first_rows"] = np.asarray(make(1)(X[:1000])).reshape(1000, -1).tolist()
    result["times"], result["cpu_times"] = run_grid(make, X, batches, threads_list, args.reps)
    print("MLOC-RESULT " + json.dumps(result))


def run_peer(name, model_path, data_path, batches, threads_list, reps, cache_dir):
    python = PEER_PYTHON[name]
    if not Path(python).exists():
        return None, f"{name}: interpreter {python} not found (see this script's docstring)"
    cmd = [python, str(Path(__file__).resolve()), "--worker", name, "--model", str(model_path),
           "--data", str(data_path), "--batches", ",".join(map(str, batches)),
           "--threads", ",".join(map(str, threads_list)), "--reps", str(reps)]
    if name == "lleaves":
        cmd += ["--cache", str(cache_dir / f"lleaves-{Path(model_path).stem}.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MLOC-RESULT "):
            return json.loads(line[len("MLOC-RESULT "):]), None
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return None, f"{name}: worker failed: {' | '.join(tail)}"


# ---------------------------------------------------------------------------- models/data

def models_dir() -> Path:
    return Path(os.environ.get("MLOC_MODELS_DIR") or REPO.parent / "shared" / "models")


def train_binary_300(path: Path) -> None:
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(42)
    X = rng.normal(size=(20_000, 30))
    y = (X[:, 0] * X[:, 1] + np.sin(3 * X[:, 2]) + 0.3 * X[:, 3:10].sum(1)
         + rng.normal(size=len(X)) > 0).astype(int)
    params = dict(objective="binary", num_leaves=63, learning_rate=0.1, verbose=-1,
                  min_data_in_leaf=5, num_threads=2)
    lgb.train(params, lgb.Dataset(X, y), 300).save_model(str(path))


def draw_near_thresholds(model_text: str, n: int, seed: int = 1):
    """Second input distribution: each numeric value is one of the model's split thresholds
    of that feature (chosen uniformly), moved by a small relative jitter or left on it;
    features without numeric splits and categorical ones follow :func:`draw_inputs`.  Far
    less predictable for branches than uniform draws over wide feature ranges."""
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(seed)
    X = draw_inputs(model_text, n, seed)
    dump = lgb.Booster(model_str=model_text).trees_to_dataframe()
    numeric = dump[(dump["decision_type"] == "<=") & dump["split_feature"].notna()]
    names = lgb.Booster(model_str=model_text).feature_name()
    for f, name in enumerate(names):
        thr = numeric.loc[numeric["split_feature"] == name, "threshold"].to_numpy(float)
        if len(thr) == 0:
            continue
        base = rng.choice(thr, n)
        jitter = rng.choice([-1e-3, -1e-6, 0.0, 1e-6, 1e-3], n) * np.maximum(np.abs(base), 1.0)
        X[:, f] = base + jitter
    return np.ascontiguousarray(X)


def draw_inputs(model_text: str, n: int, seed: int = 0):
    """Rows that follow the model's ``feature_infos`` (ranges / category lists)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    infos = next(line.split("=", 1)[1].split() for line in model_text.splitlines()
                 if line.startswith("feature_infos="))
    cols = []
    for info in infos:
        if info.startswith("["):
            lo, hi = (float(v) for v in info.strip("[]").split(":"))
            cols.append(rng.uniform(lo, hi, n))
        elif info == "none":
            cols.append(np.zeros(n))
        else:
            cats = np.array([float(c) for c in info.split(":")])
            cols.append(rng.choice(cats, n))
    return np.ascontiguousarray(np.column_stack(cols))


# ----------------------------------------------------------------------------- reporting

#: Stem of the report files in RESULTS (``--out`` changes it for restricted runs).
STEM = ["models"]


def write_reports(results: dict, quick: bool) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{STEM[0]}.json").write_text(json.dumps(results, indent=1))
    lines = ["# Tree-model benchmark", "",
             f"Machine: {results['machine']}. Wall-clock medians; ns per tree per row "
             f"(lower is better); speedup = peer time / mloc time.{' Quick run.' if quick else ''}",
             ""]
    for mname, m in results["models"].items():
        lines += [f"## {mname} ({m['n_trees']} trees, {m['n_features']} features)", "",
                  "| batch | threads | " + " | ".join(f"{e} ns/tree/row" for e in ENGINES)
                  + " | mloc speedup vs " + " / ".join(PEERS) + " |",
                  "|---" * (3 + len(ENGINES)) + "|"]
        for key in m["engines"]["mloc"]["times"]:
            b, t = key.split(",")
            cells, speed = [], []
            for e in ENGINES:
                sec = m["engines"].get(e, {}).get("times", {}).get(key)
                cells.append(f"{sec / int(b) / m['n_trees'] * 1e9:.1f}" if sec else "—")
                if e in PEERS:
                    speed.append(f"{sec / m['engines']['mloc']['times'][key]:.2f}x" if sec else "—")
            lines.append(f"| {b} | {t} | " + " | ".join(cells) + " | " + " / ".join(speed) + " |")
        lines += ["", "Single thread, process CPU time (robust to other load on the machine):", "",
                  "| batch | " + " | ".join(f"{e} ns/tree/row" for e in ENGINES)
                  + " | mloc speedup vs " + " / ".join(PEERS) + " |",
                  "|---" * (2 + len(ENGINES)) + "|"]
        for key in m["engines"]["mloc"]["cpu_times"]:
            b, t = key.split(",")
            if t != "1":
                continue
            cells, speed = [], []
            for e in ENGINES:
                sec = m["engines"].get(e, {}).get("cpu_times", {}).get(key)
                cells.append(f"{sec / int(b) / m['n_trees'] * 1e9:.1f}" if sec else "—")
                if e in PEERS:
                    speed.append(f"{sec / m['engines']['mloc']['cpu_times'][key]:.2f}x" if sec else "—")
            lines.append(f"| {b} | " + " | ".join(cells) + " | " + " / ".join(speed) + " |")
        lines += ["", "Batch-1 latency (1 thread, wall): " + ", ".join(
            f"{e} {m['engines'][e]['times']['1,1'] * 1e6:.1f} us" for e in ENGINES
            if e in m["engines"] and "1,1" in m["engines"][e].get("times", {})),
            "Compile time: " + ", ".join(
                f"{e} {m['engines'][e]['compile_s']:.2f} s"
                + (" (from its cache; first compile not timed here)"
                   if m['engines'][e].get('compile_cached') else "")
                for e in ENGINES if e in m["engines"] and "compile_s" in m["engines"][e]),
            "Max |difference| vs LightGBM on 1000 rows: " + ", ".join(
                f"{e} {m['engines'][e]['max_abs_diff']:.3g}" for e in ENGINES
                if e in m["engines"] and "max_abs_diff" in m["engines"][e])
            + " (mloc-f32: on the rows rounded to float32; its raw scores equal LightGBM's on "
              "those float32 values: "
            + str(m["engines"].get("mloc-f32", {}).get("raw_scores_bit_exact_on_float32_values"))
            + ")", ""]
        near = m.get("near_thresholds")
        if near:
            lines += ["Second input distribution, values at and next to the model's split "
                      "thresholds (`draw_near_thresholds`), batch 10k, 1 thread, process CPU "
                      "time, ns/tree/row: " + ", ".join(
                          f"{e} {near[e]['cpu_times']['10000,1'] / 10_000 / m['n_trees'] * 1e9:.1f}"
                          for e in NEAR_ENGINES if e in near)
                      + f" (mloc raw scores bit-exact: {near.get('mloc_raw_scores_bit_exact')})", ""]
    if results["skipped"]:
        lines += ["Skipped: " + "; ".join(results["skipped"]), ""]
    (RESULTS / f"{STEM[0]}.md").write_text("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(results["models"]), figsize=(5 * len(results["models"]), 4))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, (mname, m) in zip(axes, results["models"].items()):
        keys = [k for k in m["engines"]["mloc"]["times"] if k.split(",")[0] != "1"]
        width = 0.8 / len(ENGINES)
        for i, e in enumerate(ENGINES):
            times = m["engines"].get(e, {}).get("times", {})
            vals = [times[k] / int(k.split(",")[0]) / m["n_trees"] * 1e9 if k in times else 0
                    for k in keys]
            ax.bar([j + i * width for j in range(len(keys))], vals, width, label=e)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
        ax.set_xticklabels([f"b={k.split(',')[0]}\nt={k.split(',')[1]}" for k in keys], fontsize=7)
        ax.set_title(mname)
        ax.set_ylabel("ns per tree per row")
        ax.set_yscale("log")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{STEM[0]}.png", dpi=120)


# ---------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, no 100k batch")
    ap.add_argument("--report-only", action="store_true",
                    help="re-render models.md/png from an existing models.json")
    ap.add_argument("--models", help="comma-separated substrings: only the models whose name "
                    "contains one (e.g. 'mtpl2,NYC'); default all")
    ap.add_argument("--peers", help="comma-separated peers to run (lleaves,treelite); default both")
    ap.add_argument("--no-near", action="store_true",
                    help="skip the second input distribution (near thresholds)")
    ap.add_argument("--no-f32", action="store_true", help="skip mloc's float32 mode")
    ap.add_argument("--out", default="models",
                    help="report file stem in bench/results (default: models)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--batches", help="comma-separated batch sizes (default 1,100,10000,100000)")
    ap.add_argument("--threads", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--reps", type=int, default=5, help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    STEM[0] = args.out
    if args.report_only:
        results = json.loads((RESULTS / f"{STEM[0]}.json").read_text())
        write_reports(results, results.get("quick", False))
        return

    sys.path.insert(0, str(REPO))
    import lightgbm as lgb
    import numpy as np
    from tqdm import tqdm

    from codegen import compile_model
    from codegen import target

    batches = [1, 100, 10_000] if args.quick else [1, 100, 10_000, 100_000]
    threads_list = [1, 2]
    if args.batches:
        batches = [int(v) for v in args.batches.split(",")]
    if args.threads:
        threads_list = [int(v) for v in args.threads.split(",")]
    peers = args.peers.split(",") if args.peers else ["lleaves", "treelite"]
    reps = 3 if args.quick else 5
    work = Path(tempfile.mkdtemp(prefix="mloc-bench-"))
    peer_cache = Path(os.environ.get("MLOC_BENCH_PEER_CACHE", "/tmp/mloc-bench-peer-cache"))
    peer_cache.mkdir(parents=True, exist_ok=True)
    skipped = []
    model_paths = {}
    for name in ("NYC_taxi.txt", "mtpl2.txt"):
        p = models_dir() / name
        if p.is_file():
            model_paths[name] = p
        else:
            skipped.append(f"{name}: not found in {models_dir()} (set MLOC_MODELS_DIR)")
    binary = peer_cache / "binary_300x63.txt"
    if not binary.exists():
        train_binary_300(binary)
    model_paths["binary_300x63 (fresh)"] = binary
    if args.models:
        wanted = args.models.split(",")
        model_paths = {k: v for k, v in model_paths.items() if any(w in k for w in wanted)}

    results = {"machine": f"{target.host_cpu()[0]}, {os.cpu_count()} CPUs", "quick": args.quick,
               "batches": batches, "threads": threads_list, "models": {}, "skipped": skipped}
    steps = tqdm(total=len(model_paths) * (len(ENGINES) + 1), desc="benchmark", unit="engine")
    for mname, path in model_paths.items():
        text = path.read_text()
        booster = lgb.Booster(model_str=text)
        X = draw_inputs(text, max(batches))
        data_path = work / f"{path.stem}.npy"
        np.save(data_path, X)
        want = booster.predict(X[:1000])
        entry = {"n_trees": booster.num_trees(), "n_features": booster.num_feature(), "engines": {}}
        results["models"][mname] = entry

        steps.set_postfix_str(f"{mname}: lightgbm")
        wall, cpu = run_grid(lambda t: (lambda A: booster.predict(A, num_threads=t)),
                             X, batches, threads_list, reps)
        entry["engines"]["lightgbm"] = {"times": wall, "cpu_times": cpu}
        steps.update()

        for peer in peers:
            steps.set_postfix_str(f"{mname}: {peer} (compiling)")
            res, why = run_peer(peer, path, data_path, batches, threads_list, reps, peer_cache)
            if res is None:
                skipped.append(f"{mname}: {why}")
                tqdm.write(f"skipping {why}")
            else:
                got = np.asarray(res.pop("first_rows")).reshape(want.shape)
                res["max_abs_diff"] = float(np.max(np.abs(got - want)))
                entry["engines"][peer] = res
            steps.update()

        steps.set_postfix_str(f"{mname}: mloc")
        t = time.perf_counter()
        compiled = compile_model(booster, cache=False)
        compile_s = time.perf_counter() - t
        exact = bool(np.array_equal(compiled.predict(X[:1000], raw_score=True),
                                    booster.predict(X[:1000], raw_score=True)))
        models = {th: compile_model(booster, threads=th) for th in threads_list}  # cache hits
        wall, cpu = run_grid(lambda th: models[th].predict, X, batches, threads_list, reps)
        entry["engines"]["mloc"] = {
            "compile_s": compile_s, "raw_scores_bit_exact": exact,
            "max_abs_diff": float(np.max(np.abs(compiled.predict(X[:1000]) - want))),
            "times": wall, "cpu_times": cpu}
        steps.update()

        models32 = None
        if not args.no_f32:
            steps.set_postfix_str(f"{mname}: mloc-f32")
            X32 = X.astype(np.float32)
            t = time.perf_counter()
            compiled32 = compile_model(booster, cache=False, dtype="float32")
            compile_s = time.perf_counter() - t
            exact32 = bool(np.array_equal(compiled32.predict(X32[:1000], raw_score=True),
                                          booster.predict(X32[:1000].astype(np.float64), raw_score=True)))
            models32 = {th: compile_model(booster, threads=th, dtype="float32") for th in threads_list}
            wall, cpu = run_grid(lambda th: models32[th].predict, X32, batches, threads_list, reps)
            entry["engines"]["mloc-f32"] = {
                "compile_s": compile_s, "raw_scores_bit_exact_on_float32_values": exact32,
                "max_abs_diff": float(np.max(np.abs(compiled32.predict(X32[:1000]) - want))),
                "times": wall, "cpu_times": cpu}
            steps.update()

        if args.no_near:
            steps.update()
            continue
        steps.set_postfix_str(f"{mname}: near thresholds")
        Xn = draw_near_thresholds(text, 10_000)
        near_path = work / f"{path.stem}-near.npy"
        np.save(near_path, Xn)
        near = entry["near_thresholds"] = {}
        grids = {"lightgbm": (lambda t: (lambda A: booster.predict(A, num_threads=t)), Xn),
                 "mloc": (lambda th: models[th].predict, Xn),
                 "mloc-f32": (lambda th: models32[th].predict, Xn.astype(np.float32))}
        if models32 is None:
            del grids["mloc-f32"]
        for e in NEAR_ENGINES:
            if e == "lleaves":
                if "lleaves" not in peers:
                    continue
                res, why = run_peer("lleaves", path, near_path, [10_000], [1], reps, peer_cache)
                if res is not None:
                    near[e] = {"times": res["times"], "cpu_times": res["cpu_times"]}
                continue
            if e not in grids:
                continue
            make, data = grids[e]
            wall, cpu = run_grid(make, data, [10_000], [1], reps)
            near[e] = {"times": wall, "cpu_times": cpu}
        near["mloc_raw_scores_bit_exact"] = bool(np.array_equal(
            models[1].predict(Xn[:2000], raw_score=True), booster.predict(Xn[:2000], raw_score=True)))
        steps.update()
    steps.close()
    write_reports(results, args.quick)
    print((RESULTS / f"{STEM[0]}.md").read_text())


if __name__ == "__main__":
    main()
