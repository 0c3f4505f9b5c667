"""The benchmark suite: each pipeline's original Python beside mloc's variants, in one run.

    python -m bench [NAME ...] [--quick]        (or: mloc bench ...)

For every benchmark: the model is trained on a training split (at import of its pipeline
module, cached); mloc's cascade planner gets labelled rows of that split; everything is
measured on held-out rows. Variants:

* ``python``   the pipeline as written, run by Python/NumPy/pandas/LightGBM;
* ``mloc``     ``mloc_ir.compile(predict)``: exact (checked identical to ``python``);
* ``cascade``  ``mloc_ir.compile(predict, train=..., cascades=True, top_k=100)``: confident
  rows answered by an approximate model on cheap feature groups;
* top-K (K=100): ``python`` scores every row and sorts; ``mloc`` runs ``cp.top_k(100, ...)``.

Reported per variant: batch throughput (median of repetitions, the variants timed in turns on
the same rows, each warmed up first: ``interleaved_seconds``), single-row latency p50/p99,
the task metric (AUC / RMSE) and agreement with ``python``; compile and planning time; for
flights-remote, how many rows' keys went to the store. Results: ``bench/results/<name>.json``,
``summary.md`` and PNG plots (``bench.report``).
"""
from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

BENCHMARKS = ("credit", "bank", "tweets", "shoppers", "taxi", "flights", "flights-remote")
K = 100


@dataclass
class Sizes:
    plan_rows: int
    test_rows: int
    reps: int
    latency_calls: int
    accuracy_target: float
    planner: dict = field(default_factory=dict)


QUICK = Sizes(plan_rows=2000, test_rows=600, reps=2, latency_calls=10, accuracy_target=0.99,
              planner=dict(importance_rows=300, timing_rows=300, repeats=1, budgets=(0.3,),
                           backend="interpreted"))
# planning compiles one approximate pipeline per budget (a 1000-tree refit is ~1 min of LLVM):
# three budgets keep a full run near half an hour on two cores
FULL = Sizes(plan_rows=12_000, test_rows=20_000, reps=5, latency_calls=200,
             accuracy_target=0.999, planner=dict(budgets=(0.1, 0.2, 0.35), timing_rows=1000))


@dataclass
class Spec:
    """One benchmark: the pipeline, its planning and held-out rows, and how to score it."""

    name: str
    predict: Callable
    plan: tuple[dict, np.ndarray]  # (kwargs, labels) of training-split rows for the planner
    test: dict  # kwargs of the held-out rows
    labels: dict  # output index -> held-out labels
    tasks: dict  # output index -> "binary" | "regression"
    dtypes: dict | None = None
    stores: list = field(default_factory=list)  # feature-store tables the pipeline reads
    notes: list = field(default_factory=list)
    accuracy_target: float | None = None  # the planner's target, when not the run's
    # kwargs of unlabelled rows the planner may distil its approximate models on (the model's
    # own training rows: they never calibrate, so the guarantee is untouched)
    unlabeled: dict | None = None


class Skip(Exception):
    """A benchmark that cannot run here (its data or a server is missing)."""


# ---------------------------------------------------------------------------------------------
# Loading


def _rows(frame, n, seed):
    return frame.sample(n=min(n, len(frame)), random_state=seed).reset_index(drop=True)


@contextlib.contextmanager
def load(name: str, sizes: Sizes):
    """The ``Spec`` of benchmark ``name`` (a context: flights-remote runs a Redis server)."""
    from examples._support import DataMissing
    try:
        if name == "flights-remote":
            from .redis_local import RedisUnavailable, redis_url
            try:
                with redis_url() as url:
                    from .pipelines import flights_remote as m
                    m.connect_tables(url)
                    yield _frame_spec(name, m, "delayed", sizes, stores=[m.WEATHER_STORE,
                                                                         m.PLANES_STORE],
                                      notes=["weather and planes tables in a Redis server on "
                                             "this machine (loopback)"])
            except RedisUnavailable as exc:
                raise Skip(str(exc)) from None
            return
        if name == "credit":
            from examples import credit_pipeline as m
            plan = _rows(m.PLANNING, sizes.plan_rows, 1)  # rows the model never saw
            test = _rows(m.TEST, sizes.test_rows, 2)
            yield Spec(name, m.predict, (m.columns(plan), plan[m.LABEL].to_numpy()),
                       m.columns(test), {0: test[m.LABEL].to_numpy()}, {0: "binary"})
        elif name == "tweets":
            from examples import tweets_pipeline as m
            plan = _rows(m.PLANNING, sizes.plan_rows, 1)  # rows the model never saw
            test = _rows(m.TEST, sizes.test_rows, 2)
            yield Spec(name, m.predict, ({"tweets": plan["tweet"].to_numpy()},
                                         plan["offensive"].to_numpy()),
                       {"tweets": test["tweet"].to_numpy()}, {0: test["offensive"].to_numpy()},
                       {0: "binary"},
                       unlabeled={"tweets": m.MODEL_ROWS["tweet"].to_numpy()},
                       notes=[f"the planner also distilled on the model's {len(m.MODEL_ROWS)} "
                              "training rows (unlabelled; calibration rows are planning rows "
                              "the model never saw)"])
        elif name == "flights":
            from examples import flights_pipeline as m
            yield _frame_spec(name, m, "delayed", sizes)
        elif name == "bank":
            from .pipelines import bank as m
            yield _frame_spec(name, m, m.LABEL, sizes)
        elif name == "shoppers":
            from .pipelines import shoppers as m
            yield _frame_spec(name, m, m.LABEL, sizes)
        elif name == "taxi":
            from .pipelines import taxi as m
            spec = _frame_spec(name, m, m.TIP_LABEL, sizes, dtypes=m.DTYPES)
            test = spec.test["df"]
            spec.labels = {0: test[m.LABEL].to_numpy(), 1: test[m.TIP_LABEL].to_numpy()}
            spec.tasks = {0: "regression", 1: "binary"}
            yield spec
        else:
            raise ValueError(f"unknown benchmark {name!r}; one of {', '.join(BENCHMARKS)}")
    except (DataMissing, ImportError) as exc:
        raise Skip(f"{type(exc).__name__}: {exc}") from None


def _frame_spec(name, m, label, sizes, dtypes=None, stores=(), notes=()):
    """Planning rows are rows the model never saw and distributed like the measured ones: the
    planner's agreement bound holds for rows like its calibration rows.  Random splits keep
    them apart from the model's rows (``m.PLANNING``); the flights data is split by time
    (trained on January-October), so its planning rows are other November-December rows than
    the measured ones (planning on January-October rows, the cascade certified 0.999 and
    measured 0.9976 on November-December)."""
    notes = list(notes)
    if hasattr(m, "PLANNING"):
        plan = _rows(m.PLANNING, sizes.plan_rows, 1)
        test = _rows(m.TEST, sizes.test_rows, 2)
    elif not name.startswith("flights"):  # taxi: two outputs, nothing is planned
        plan = _rows(m.TRAIN, sizes.plan_rows, 1)
        test = _rows(m.TEST, sizes.test_rows, 2)
    else:
        pool = m.TEST.sample(frac=1.0, random_state=2).reset_index(drop=True)
        test = pool.iloc[:sizes.test_rows].reset_index(drop=True)
        plan = pool.iloc[sizes.test_rows:sizes.test_rows + sizes.plan_rows].reset_index(drop=True)
        notes.append(f"planned on {len(plan)} November-December rows other than the "
                     f"{len(test)} measured (the model was trained on January-October)")
    return Spec(name, m.predict, ({"df": plan}, plan[label].to_numpy()), {"df": test},
                {0: test[label].to_numpy()}, {0: "binary"}, dtypes=dtypes, stores=list(stores),
                notes=notes)


# ---------------------------------------------------------------------------------------------
# Measuring


def _outputs(out) -> tuple:
    return tuple(np.asarray(o) for o in (out if isinstance(out, tuple) else (out,)))


def _take(kwargs: dict, rows) -> dict:
    from runtime.cascade import take_rows
    return {k: take_rows(v, np.asarray(rows)) for k, v in kwargs.items()}


def interleaved_seconds(fns: dict, kwargs, reps) -> dict[str, list[float]]:
    """Batch times of several variants on the same rows, taken in turns: each is warmed up,
    then every repetition times each variant once (the order reversed every other round), so
    a change in the load of the shared machine reaches all of them alike."""
    for fn in fns.values():
        fn(**kwargs)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[name](**kwargs)
            times[name].append(time.perf_counter() - t0)
    return times


def latencies(fn, kwargs, n_rows, calls, seed=0) -> list[float]:
    rng = np.random.default_rng(seed)
    singles = [_take(kwargs, [i]) for i in rng.integers(0, n_rows, size=calls)]
    fn(**singles[0])
    out = []
    for kw in singles:
        t0 = time.perf_counter()
        fn(**kw)
        out.append(time.perf_counter() - t0)
    return out


def metrics(outs: tuple, spec: Spec) -> dict:
    from sklearn.metrics import roc_auc_score
    res = {}
    for i, task in spec.tasks.items():
        y, p = spec.labels[i], np.asarray(outs[i], dtype=np.float64)
        if task == "binary":
            ok = np.isfinite(p)
            res[f"auc[{i}]" if len(spec.tasks) > 1 else "auc"] = \
                float(roc_auc_score(y[ok], p[ok])) if len(set(y[ok])) > 1 else None
        else:
            res[f"rmse[{i}]" if len(spec.tasks) > 1 else "rmse"] = \
                float(np.sqrt(np.nanmean((p - y) ** 2)))
    return res


def agreement(outs: tuple, ref: tuple, spec: Spec) -> float:
    """Rows on which a variant answers as ``python`` does: the same class for classifiers,
    the same value (to 1e-9 relative) for regressions; the minimum over outputs."""
    fractions = []
    for i, task in spec.tasks.items():
        a, b = np.asarray(outs[i], np.float64), np.asarray(ref[i], np.float64)
        same = (a >= 0.5) == (b >= 0.5) if task == "binary" else \
            np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)
        fractions.append(float(np.mean(same)))
    return min(fractions)


def _summary(times):
    return {"median": statistics.median(times), "all": times}


def measure_variant(fn, spec: Spec, sizes: Sizes, n: int, ref, progress) -> dict:
    """Outputs, single-row latencies, metrics and agreement of one variant (batch times are
    taken for all variants together: ``interleaved_seconds``)."""
    outs = _outputs(fn(**spec.test))
    progress()
    lat = latencies(fn, spec.test, n, sizes.latency_calls)
    progress()
    res = {"latency_us": {"p50": float(np.percentile(lat, 50)) * 1e6,
                          "p99": float(np.percentile(lat, 99)) * 1e6,
                          "all": [t * 1e6 for t in lat]},
           "metrics": metrics(outs, spec)}
    if ref is not None:
        res["identical"] = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(outs, ref))
        res["agreement"] = agreement(outs, ref, spec)
    return res, outs


def _topk_python(predict, spec: Spec, k: int):
    from passes.topk import descending_order

    def run(**kwargs):
        scores = _outputs(predict(**kwargs))[0].astype(np.float64)
        order = descending_order(scores)[:k]
        return order, scores[order]
    return run


def _store_keys(spec) -> int:
    return sum(t.keys_requested for t in spec.stores)


class _Phases:
    """Wall and CPU seconds per phase of one benchmark (where a run's time goes)."""

    def __init__(self):
        self.seconds: dict[str, dict] = {}
        self._at = (time.perf_counter(), time.process_time())

    def done(self, phase: str):
        now = (time.perf_counter(), time.process_time())
        prev = self.seconds.get(phase, {"wall": 0.0, "cpu": 0.0})
        self.seconds[phase] = {"wall": prev["wall"] + now[0] - self._at[0],
                               "cpu": prev["cpu"] + now[1] - self._at[1]}
        self._at = now


def run_one(name: str, sizes: Sizes, bar) -> dict:
    import mloc_ir
    from mloc_ir.errors import MlocError
    result: dict[str, Any] = {"name": name, "sizes": sizes.__dict__, "variants": {}}
    phases = _Phases()
    result["phase_seconds"] = phases.seconds
    result["machine"] = {"cores": os.cpu_count(), "load_average_start": _load_average()}
    with load(name, sizes) as spec:
        phases.done("load")
        n = len(spec.labels[0])
        result.update(rows={"plan": len(spec.plan[1]), "test": n}, tasks=spec.tasks,
                      notes=list(spec.notes))
        step = lambda: bar.update(1)  # noqa: E731
        py, ref = measure_variant(spec.predict, spec, sizes, n, None, step)
        result["variants"]["python"] = py
        phases.done("python")

        t0 = time.perf_counter()
        exact = mloc_ir.compile(spec.predict, dtypes=spec.dtypes)
        result["compile_seconds"] = time.perf_counter() - t0
        result["explain"] = exact.explain()
        phases.done("compile")
        res, _ = measure_variant(exact, spec, sizes, n, ref, step)
        result["variants"]["mloc"] = res
        phases.done("mloc")

        single = len(spec.tasks) == 1
        classifier = spec.tasks.get(0) == "binary" and single
        cascade = None
        t0 = time.perf_counter()
        if not single:
            result["cascade_error"] = (f"the pipeline returns {len(spec.tasks)} values; cascades "
                                       "and top-K need one score per row")
        else:
            try:
                cascade = mloc_ir.compile(spec.predict, dtypes=spec.dtypes, train=spec.plan,
                                          cascades=classifier, top_k=K,
                                          accuracy_target=spec.accuracy_target or
                                          sizes.accuracy_target, progress=False,
                                          **({"unlabeled": spec.unlabeled} if spec.unlabeled
                                             is not None else {}),
                                          **sizes.planner)
            except MlocError as exc:
                result["cascade_error"] = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 -- a planner bug: report it, keep the rest
                result["cascade_error"] = f"planner failed: {type(exc).__name__}: {exc}"
                result["cascade_traceback"] = traceback.format_exc()
                result["cascade_traceback"] = traceback.format_exc()
        result["planning_seconds"] = time.perf_counter() - t0
        phases.done("plan")
        step()
        if cascade is not None:
            result["plan"] = cascade.explain()
            if cascade.approx is not None:
                keys0 = _store_keys(spec)
                res, outs = measure_variant(cascade, spec, sizes, n, ref, step)
                cascade(**spec.test)
                res["stage2_fraction"] = cascade.last_stats.get("stage2_rows", n) / max(n, 1)
                result["variants"]["cascade"] = res
                if spec.stores:
                    keys1 = _store_keys(spec)
                    exact(**spec.test)
                    keys2 = _store_keys(spec)
                    cascade(**spec.test)
                    keys3 = _store_keys(spec)
                    result["remote"] = {
                        "keys_per_call_exact": keys2 - keys1, "keys_per_call_cascade": keys3 - keys2,
                        "skipped_fraction": 1.0 - (keys3 - keys2) / max(keys2 - keys1, 1)}
                    del keys0
            else:
                result["cascade_error"] = "planner chose no cascade: " + str(
                    cascade.report.no_cascade if cascade.report else "")
            phases.done("cascade")
        timed = {"python": spec.predict, "mloc": exact}
        if "cascade" in result["variants"]:
            timed["cascade"] = cascade
        for variant, batch in interleaved_seconds(timed, spec.test, sizes.reps).items():
            result["variants"][variant].update(batch_seconds=_summary(batch),
                                               rows_per_second=n / statistics.median(batch))
        phases.done("batch")
        if single and cascade is not None:
            py_top = _topk_python(spec.predict, spec, K)
            ml_top = lambda **kw: cascade.top_k(K, **kw)  # noqa: E731
            both = interleaved_seconds({"python": py_top, "mloc": ml_top}, spec.test, sizes.reps)
            t_py, t_m = both["python"], both["mloc"]
            idx_py, _ = py_top(**spec.test)
            top = {"python_seconds": _summary(t_py)}
            idx_m, _ = cascade.top_k(K, **spec.test)
            top.update(mloc_seconds=_summary(t_m),
                       speedup=statistics.median(t_py) / statistics.median(t_m),
                       precision=len(set(idx_m.tolist()) & set(idx_py.tolist())) / len(idx_py),
                       filtered=cascade.topk_approx is not None,
                       stage2_rows=cascade.last_stats.get("stage2_rows"))
            result["topk"] = top
            phases.done("topk")
        step()
    result["machine"]["load_average_end"] = _load_average()
    return result


def _load_average() -> float | None:
    """The 1-minute load average (how busy the shared machine was), where the OS tells."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


#: most expensive first, so parallel workers finish together (measured: CPU seconds of --quick)
_LONGEST_FIRST = ("flights", "flights-remote", "tweets", "credit", "taxi", "bank", "shoppers")
STEPS_PER_BENCHMARK = 9


def default_jobs(quick: bool) -> int:
    """Benchmarks run at once: one for full runs (they measure speed, and a second benchmark
    would share the cores); for ``--quick`` (which checks that everything runs, not speed) one
    per core, at most two."""
    return min(2, os.cpu_count() or 1) if quick else 1


def run_guarded(name: str, sizes: Sizes, bar=None, quick: bool = False) -> dict:
    """``run_one``, with a skipped or failed benchmark as a result instead of an exception."""
    class _NoBar:
        n = 0

        def update(self, k):
            self.n += k

    bar = bar if bar is not None else _NoBar()
    try:
        result = run_one(name, sizes, bar)
    except Skip as exc:
        result = {"name": name, "skipped": str(exc)}
    except Exception as exc:  # noqa: BLE001 -- one broken benchmark must not hide the rest
        result = {"name": name, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
    result["quick"] = quick
    return result


def run(names=None, *, quick=False, out_dir=None, progress=True, jobs=None) -> dict[str, dict]:
    """Run the benchmarks ``names`` (default: all); write the results; return them.

    ``jobs`` > 1 runs that many benchmarks at once, each in its own process (default:
    ``default_jobs(quick)``)."""
    from tqdm.auto import tqdm

    from . import report
    names = list(names or BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(BENCHMARKS)}")
    jobs = default_jobs(quick) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SystemExit(f"jobs must be a positive number of processes, got {jobs!r}")
    sizes = QUICK if quick else FULL
    if quick:
        os.environ.setdefault("MLOC_FAST_EXAMPLES", "1")  # small models (before any import)
        # one OpenMP thread per benchmark process (LightGBM): quick runs two at once, and
        # OpenMP threads waiting at barriers for a descheduled peer were 10-20x slower
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {}
    with tqdm(total=STEPS_PER_BENCHMARK * len(names), desc="mloc bench", unit="step",
              disable=not progress) as bar:
        if jobs == 1 or len(names) == 1:
            for name in names:
                bar.set_postfix_str(name)
                start = bar.n
                results[name] = run_guarded(name, sizes, bar, quick)
                bar.update(max(0, start + STEPS_PER_BENCHMARK - bar.n))
        else:
            results = _run_parallel(names, sizes, quick, jobs, bar)
    report.write(results, out_dir)
    return results


def _run_parallel(names, sizes, quick, jobs, bar) -> dict[str, dict]:
    """Each benchmark in a worker process (spawned: no threads or OpenMP state forked)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    order = sorted(names, key=lambda n: _LONGEST_FIRST.index(n))
    done = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(names)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_guarded, name, sizes, None, quick): name for name in order}
        for f in as_completed(futures):
            name = futures[f]
            try:
                done[name] = f.result()
            except Exception as exc:  # noqa: BLE001 -- a worker that died (e.g. out of memory)
                done[name] = {"name": name, "error": f"worker failed: {type(exc).__name__}: "
                              f"{exc}", "quick": quick}
            bar.set_postfix_str(name)
            bar.update(STEPS_PER_BENCHMARK)
    return {name: done[name] for name in names}


def geometric_mean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None
