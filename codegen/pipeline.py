"""Compile a whole pipeline Graph into fused native kernels plus host stages.

    cp = compile_pipeline(mloc_ir.parse(predict))
    cp(**columns)              # == predict(**columns) == mloc_ir.interpret(graph, **columns)
    print(cp.explain())        # the stages, what each materialises, why nodes run on the host
    cp.save("pipe.mloc");  cp2 = load_pipeline("pipe.mloc")

Native stages are emitted into one LLVM module (``pipeline_emit``), optimised and turned into
object code once (``codegen.target``), and linked with the runtime's loader.  A call binds the
arguments like the interpreter (``bind_inputs``), then runs the stages in order: host stages
with the interpreter's node rules, native stages over all rows, split into chunks on a
persistent thread pool for large batches (ctypes releases the GIL during each call).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import pickle
import threading
import time
from pathlib import Path

import llvmlite.ir as ir
import numpy as np

from mloc_ir.errors import InputError, MlocError
from mloc_ir.interpreter import InputBinder, run_node
from mloc_ir.types import numpy_dtype
from mloc_ir.verify import verify

from . import pipeline_plan
from .pipeline_emit import emit_stage
from .pipeline_ops import Unsupported
from .pipeline_strkeys import string_inputs
from runtime import cache as runtime_cache
from runtime.host import run_host_stage
from runtime.loader import ArrayCall
from runtime.pool import get_pool

STAGE_PROTO = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int64,
                               ctypes.c_int64)
#: A batch is split over threads only when each part is expected to take at least this long:
#: handing a part to a pool thread costs ~20-50 us.  The expectation comes from the stage's own
#: measured time per row (a 500-tree stage is worth splitting at 100 rows, a few arithmetic ops
#: not below ~10^5 rows), so no per-op cost model is needed.
MIN_NS_PER_THREAD = 250_000
#: Calls of up to this many rows may skip argument binding (see ``_unbound_path``); larger ones
#: take the general path, which times the stage and splits it over threads.
UNBOUND_MAX_ROWS = 63
#: Until a stage has been timed, a batch is split only from this many rows on.
UNTIMED_MIN_ROWS_PER_THREAD = 16384
#: Calls of at most this many rows run on a stage's preallocated argument buffers (``_Staging``)
#: when those take at most ``MAX_STAGED_BYTES``.
MAX_STAGED_ROWS = 64
MAX_STAGED_BYTES = 1 << 16
FORMAT_VERSION = 1
_ERRORS = {1: "Integers to negative integer powers are not allowed."}


class PipelineLoadError(MlocError):
    """A saved pipeline could not be loaded."""


# ---------------------------------------------------------------------------------------------
# Compilation


def _build(graph, plan, block_rows=None):
    """LLVM IR text and per-stage block sizes of the plan's native stages."""
    module = ir.Module(name=f"mloc.{graph.name}")
    blocks = {}
    for st in plan.native_stages:
        em = emit_stage(module, graph, plan, st, f"mloc_{st.name}", block_rows)
        blocks[st.index] = em.block_rows
    return str(module), blocks


def _plan_and_emit(graph, block_rows=None):
    """Plan, emit; a node the emitter rejects moves to the host and the graph is planned again."""
    forced: dict[int, str] = {}
    while True:
        p = pipeline_plan.plan(graph, forced)
        try:
            text, blocks = _build(graph, p, block_rows)
            return p, text, blocks
        except Unsupported as exc:
            nid = getattr(exc, "node", None)
            if nid is None or nid in forced:
                raise
            forced[nid] = str(exc)


def compile_pipeline(graph, *, threads: int | None = None, block_rows: int | None = None,
                     speed_level: int = 3, cache: bool = True) -> "CompiledPipeline":
    """Compile a verified ``mloc_ir.Graph``; the result is called like the original function.

    With ``cache`` (the default), object code is looked up in the on-disk compile cache under a
    hash of the emitted LLVM IR (which holds every table, threshold and leaf) plus the optimizer
    level and the host CPU, so recompiling an unchanged pipeline skips LLVM entirely.
    """
    from . import target
    verify(graph)
    from .text_rewrite import lower_text
    # text regions -> native text kernels (codegen/text_*.py), split over the same threads
    graph = lower_text(graph, threads=threads)
    p, text, blocks = _plan_and_emit(graph, block_rows)
    obj = b""
    if p.native_stages:
        key = hashlib.sha256(f"pipeline|{speed_level}|{target.cpu_key()}|".encode()
                             + text.encode()).hexdigest()[:32]
        hit = runtime_cache.get(key) if cache else None
        if hit is not None:
            obj = hit[0]
        else:
            obj = target.compile_ir(text, speed_level=speed_level)
            if cache:
                runtime_cache.put(key, obj, {"kind": "pipeline", "name": graph.name})
    return CompiledPipeline(graph, p, obj, blocks, threads=threads)


# ---------------------------------------------------------------------------------------------
# Running


def _address(a: np.ndarray) -> int:
    """The data address of an array (~2 us: NumPy builds the whole interface dict)."""
    return a.__array_interface__["data"][0]


class _Staging:
    """Argument buffers of a native stage, allocated once, for calls of at most ``rows`` rows.

    Reading an array's data address from Python costs ~2 us, more than copying a few rows, so a
    small call copies its inputs into these buffers (whose addresses, and the kernel's pointer
    array, are computed once), runs the kernel on them and copies the outputs out into fresh
    arrays: what the caller gets is never a view of a buffer the next call overwrites.  The
    buffers are shared by every thread calling the pipeline, so a call uses them only while
    holding ``lock`` (taken without waiting; a concurrent call uses fresh arrays instead).
    """

    def __init__(self, layouts: list, n_ptrs: int, ptr_type, rows: int):
        self.rows = rows
        self.lock = threading.Lock()
        self.buffers = [None if lay is None else
                        np.zeros((rows,) if lay[1] is None else (rows, lay[1]), dtype=lay[0])
                        for lay in layouts]  # None: a str key column (its address is per call)
        self.ptrs = ptr_type(*[0 if b is None else _address(b) for b in self.buffers])
        assert len(self.buffers) == n_ptrs
        self._views: dict[int, list] = {}

    def views(self, n: int) -> list:
        """``buffer[:n]`` of every argument (made once per ``n``)."""
        v = self._views.get(n)
        if v is None:
            v = self._views[n] = [None if b is None else b[:n] for b in self.buffers]
        return v


class _NativeStage:
    """A loaded native stage: its callable and the array layout of its arguments."""

    def __init__(self, graph, stage, fn, address: int | None = None):
        self.stage = stage
        self.fn = fn
        self.strkeys = string_inputs(graph, stage)  # str key columns, encoded per call
        self.n_ptrs = len(stage.inputs) + len(stage.outputs)
        self.ptr_type = ctypes.c_void_p * max(self.n_ptrs, 1)
        self.ns_per_row = None  # measured on single-thread calls; decides splitting
        self.layout = {}
        for nid in list(stage.inputs) + list(stage.outputs):
            dt, width = pipeline_plan.value_layout(graph, stage, nid)
            self.layout[nid] = (numpy_dtype(dt), width)
        # per call: (node, dtype, width, str key encoder or None), in argument order
        self._inputs = [(nid, *self.layout[nid], self.strkeys.get(nid)) for nid in stage.inputs]
        self._outputs = [(nid, *self.layout[nid]) for nid in stage.outputs]
        self.finish = list(getattr(stage, "finish", {}).items())
        self.staging = self._make_staging()
        # one native call that checks the arrays and reads their addresses (runtime.loader);
        # str key columns need their per-call encoding, so those stages take the Python path
        self.array_call = None
        if address is not None and not self.strkeys and self.n_ptrs:
            self.array_call = ArrayCall.create(
                address, [(dt, w, False) for _, dt, w, _ in self._inputs]
                + [(dt, w, True) for _, dt, w in self._outputs])
        self._input_ids = [nid for nid, *_ in self._inputs]

    def _make_staging(self) -> _Staging | None:
        row_bytes = sum(np.dtype(dt).itemsize * (w or 1) for nid, (dt, w) in self.layout.items()
                        if nid not in self.strkeys)
        rows = min(MAX_STAGED_ROWS, MAX_STAGED_BYTES // max(row_bytes, 1))
        if rows < 1 or self.n_ptrs == 0:
            return None
        layouts = [None if enc is not None else (dt, w) for _, dt, w, enc in self._inputs]
        layouts += [(dt, w) for _, dt, w in self._outputs]
        return _Staging(layouts, self.n_ptrs, self.ptr_type, rows)

    def _parts(self, n: int, threads: int) -> int:
        """How many threads a batch of ``n`` rows is worth."""
        if threads <= 1:
            return 1
        if self.ns_per_row is None:
            return max(1, min(threads, n // UNTIMED_MIN_ROWS_PER_THREAD))
        return max(1, min(threads, int(self.ns_per_row * n // MIN_NS_PER_THREAD)))

    def run(self, env, n, threads):
        """Compute the stage's outputs into ``env`` for ``n`` rows of its inputs."""
        if self.array_call is not None and n > 0 and self._parts(n, threads) == 1 \
                and self._run_arrays(env, n):
            pass
        elif (st := self.staging) is not None and 0 < n <= st.rows and st.lock.acquire(False):
            try:
                self._run_staged(env, n, threads, st)
            finally:
                st.lock.release()
        else:
            self._run_direct(env, n, threads)
        for nid, finish in self.finish:
            env[nid] = finish(env[nid])  # a model's head on its fused raw scores

    def _run_arrays(self, env, n) -> bool:
        """Run through ``array_call`` on fresh output arrays; False (nothing ran, ``env``
        untouched) when an input is not already a C-contiguous array of its layout."""
        outs = [np.empty(n if w is None else (n, w), dtype=dt) for _, dt, w in self._outputs]
        arrays = tuple([env[nid] for nid in self._input_ids] + outs)
        if n < 64:  # smaller calls would time the call overhead, not the rows
            status = self.array_call(arrays, n)
        else:
            t0 = time.perf_counter_ns()
            status = self.array_call(arrays, n)
            self.ns_per_row = (time.perf_counter_ns() - t0) / n
        if status < 0:
            return False
        if status:
            raise ValueError(_ERRORS.get(status, f"native stage failed with status {status}"))
        for (nid, _, _), out in zip(self._outputs, outs):
            env[nid] = out
        return True

    @staticmethod
    def _input(env, nid, dt):
        """``env[nid]`` as a C-contiguous array of ``dt`` (converted once, kept in ``env``)."""
        a = env[nid]
        if not (isinstance(a, np.ndarray) and a.dtype == dt and a.flags.c_contiguous):
            a = env[nid] = np.ascontiguousarray(a, dtype=dt)
        return a

    def _run_staged(self, env, n, threads, st: _Staging):
        views = st.views(n)
        keep = []  # what the str columns' pointers point to, alive until the call returns
        for i, (nid, dt, width, enc) in enumerate(self._inputs):
            if enc is not None:
                st.ptrs[i] = enc.address(env, n, keep)
                continue
            a = env[nid]
            view = views[i]
            if not (isinstance(a, np.ndarray) and a.dtype == dt):
                a = self._input(env, nid, dt)  # the copy below needs no contiguity
            if a.shape != view.shape:
                raise InputError(f"stage input %{nid} has shape {a.shape}, expected {view.shape}")
            view[...] = a
        self._call(st.ptrs, n, threads)
        for (nid, _, _), view in zip(self._outputs, views[len(self._inputs):]):
            env[nid] = view.copy()  # the caller's own array: the buffer is reused next call

    def _run_direct(self, env, n, threads):
        addresses = []
        keep = []  # what the str columns' pointers point to, alive until the call returns
        for nid, dt, width, enc in self._inputs:
            if enc is not None:
                addresses.append(enc.address(env, n, keep))
                continue
            a = self._input(env, nid, dt)
            shape = (n,) if width is None else (n, width)
            if a.shape != shape:
                raise InputError(f"stage input %{nid} has shape {a.shape}, expected {shape}")
            addresses.append(_address(a))
        for nid, dt, width in self._outputs:
            out = env[nid] = np.empty((n,) if width is None else (n, width), dtype=dt)
            addresses.append(_address(out))
        if n == 0:
            return
        self._call(self.ptr_type(*addresses), n, threads)

    def _call(self, ptrs, n, threads):
        """Run the kernel over rows ``[0, n)``, split over threads when the batch is worth it."""
        parts = self._parts(n, threads)
        if parts <= 1:
            t0 = time.perf_counter_ns()
            status = self.fn(ptrs, 0, n)
            if n >= 64:  # smaller calls time the call overhead, not the rows
                self.ns_per_row = (time.perf_counter_ns() - t0) / n
        else:
            statuses = [0] * parts
            bounds = [n * i // parts for i in range(parts + 1)]

            def part(i):
                statuses[i] = self.fn(ptrs, bounds[i], bounds[i + 1])

            pool = get_pool(threads)
            futures = [pool.submit(part, i) for i in range(1, parts)]
            part(0)  # the calling thread takes a share instead of idling
            for f in futures:
                f.result()
            status = max(statuses)
        if status:
            raise ValueError(_ERRORS.get(status, f"native stage failed with status {status}"))


class CompiledPipeline:
    """A compiled pipeline: call it with the original function's arguments."""

    def __init__(self, graph, plan, object_code: bytes, block_rows: dict, *, threads=None):
        self.graph = graph
        self.plan = plan
        self.object_code = object_code
        self.block_rows = block_rows
        self.threads = max(1, int(threads if threads is not None else (os.cpu_count() or 1)))
        self._native = {}
        if plan.native_stages:
            from runtime.loader import load
            names = [f"mloc_{s.name}" for s in plan.native_stages]
            self._library = load(object_code, names)
            for s in plan.native_stages:
                fn = self._library.function(f"mloc_{s.name}", STAGE_PROTO)
                self._native[s.index] = _NativeStage(
                    graph, s, fn, self._library.addresses[f"mloc_{s.name}"])
        self.__name__ = graph.name
        # what a call needs of the graph, computed once: a one-row call takes microseconds
        self._bind = InputBinder(graph)
        self._order = graph.nodes()
        self._steps = [(st, self._native.get(st.index)) for st in plan.stages]
        self._outputs = list(graph.outputs)
        # constants are read from ``env`` only by host stages, the empty-batch interpreter and
        # returned values; native stages have them compiled in
        self._consts = plan.consts if plan.consts and (
            len(plan.native_stages) < len(plan.stages)
            or any(o in plan.consts for o in graph.outputs)) else None
        self._unbound = self._unbound_path()

    def _unbound_path(self):
        """For the common one-stage pipeline over plain column parameters: (parameter names in
        the stage's input order, the stage).  A small call then hands the caller's arrays
        straight to the native trampoline, which checks each one (exact ndarray, dtype, 1-D,
        length, contiguity) and runs nothing on a mismatch; the general path then converts or
        raises the usual error.  None when the pipeline is not of that shape."""
        if len(self._steps) != 1 or self._steps[0][1] is None or self._consts is not None:
            return None
        st, native = self._steps[0]
        if native.array_call is None or native.finish or len(native._outputs) != 1 \
                or list(self._outputs) != [native._outputs[0][0]]:
            return None
        by_node = {nid: (param, col) for nid, param, col, *_ in self._bind.inputs}
        if self._bind.joined or any(col is not None for _, col in by_node.values()):
            return None
        if sorted(native._input_ids) != sorted(by_node) \
                or len({by_node[i][0] for i in native._input_ids}) != len(self._bind.names):
            return None
        params = tuple(by_node[i][0] for i in native._input_ids)
        if sorted(params) != sorted(self._bind.names):
            return None
        positions = tuple(self._bind.names.index(p) for p in params)
        return params, positions, native

    def __call__(self, *args, **kwargs):
        if self._unbound is not None:
            out = self._call_unbound(args, kwargs)
            if out is not None:
                return out
        env = self._bind(args, kwargs)
        n = len(next(iter(env.values()))) if env else None
        if self._consts is not None:
            env.update(self._consts)
        if n == 0:
            # nothing to compute; libraries have their own empty-batch quirks (LightGBM returns
            # shape (0,) for a multi-output model), so the interpreter's rules decide
            env.update(self.plan.consts)
            return self._interpret(env)
        for st, native in self._steps:
            if native is None:
                run_host_stage(self.graph, st.nodes, env)  # stores queried concurrently
                continue
            if n is None:
                n = len(env[st.inputs[0]]) if st.inputs else 0
            native.run(env, n, self.threads)
        outs = self._outputs
        return env[outs[0]] if len(outs) == 1 else tuple(env[o] for o in outs)

    def _call_unbound(self, args, kwargs):
        """The result of a small call through the trampoline, or None (use the general path)."""
        params, positions, native = self._unbound
        if native.array_call is None:
            return None
        try:
            if args:
                if kwargs or len(args) != len(positions):
                    return None
                arrays = [args[i] for i in positions]
            else:
                if len(kwargs) != len(params):
                    return None
                arrays = [kwargs[p] for p in params]
            n = len(arrays[0])
        except (KeyError, TypeError):
            return None
        if not 0 < n <= UNBOUND_MAX_ROWS:
            return None
        _, dt, w = native._outputs[0]
        out = np.empty(n if w is None else (n, w), dtype=dt)
        arrays.append(out)
        status = native.array_call(tuple(arrays), n)
        if status < 0:
            return None
        if status:
            raise ValueError(_ERRORS.get(status, f"native stage failed with status {status}"))
        return out

    def _interpret(self, env):
        with np.errstate(all="ignore"):
            for node in self._order:
                if node.id not in env:
                    env[node.id] = run_node(node, [env[a] for a in node.args])
        outs = [env[o] for o in self.graph.outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def explain(self) -> str:
        """The stages: which nodes are fused natively, which run on the host and why."""
        head = (f"pipeline {self.graph.name}: {len(self.plan.native_stages)} native stage(s), "
                f"{len(self.plan.stages) - len(self.plan.native_stages)} host stage(s)")
        body = pipeline_plan.describe(self.graph, self.plan)
        blocks = "".join(f"\nstage{i}: {b} rows per block" for i, b in sorted(self.block_rows.items()))
        return head + "\n" + body + blocks

    # -- artifacts ------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write ``path/`` with ``kernels.o`` (object code), ``plan.json`` (readable metadata)
        and ``pipeline.pkl`` (the graph, its plan and the host objects it references)."""
        from . import target
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "kernels.o").write_bytes(self.object_code)
        meta = {
            "format": FORMAT_VERSION, "name": self.graph.name, "cpu": target.cpu_key(),
            "block_rows": {str(k): v for k, v in self.block_rows.items()},
            "stages": [{"index": s.index, "kind": s.kind, "symbol": f"mloc_{s.name}",
                        "nodes": [self.graph[i].name for i in s.nodes],
                        "inputs": [self.graph[i].name for i in s.inputs],
                        "outputs": [self.graph[i].name for i in s.outputs]}
                       for s in self.plan.stages],
        }
        (path / "plan.json").write_text(json.dumps(meta, indent=1))
        with open(path / "pipeline.pkl", "wb") as f:
            pickle.dump({"graph": self.graph, "plan": self.plan}, f)
        (path / "__init__.py").write_text(_MODULE_TEMPLATE.format(
            name=self.graph.name, source=self.graph.meta.get("source", "?")))
        return path


# The saved folder is an importable module: importing it loads the object code (no LLVM).
_MODULE_TEMPLATE = '''"""{name}, compiled by mloc from {source}.

Call {name}(...) exactly like the original function; explain() lists the compiled stages.
"""
from pathlib import Path as _Path

from codegen.pipeline import load_pipeline as _load_pipeline

pipeline = _load_pipeline(_Path(__file__).parent)
{name} = pipeline
explain = pipeline.explain
'''


def load_pipeline(path, *, threads: int | None = None) -> CompiledPipeline:
    """Load a pipeline written by ``CompiledPipeline.save`` without recompiling.

    Object code built for another CPU (or LLVM) is not trusted: the pipeline is recompiled from
    the saved graph instead.
    """
    from . import target
    path = Path(path)
    files = [path / "plan.json", path / "pipeline.pkl", path / "kernels.o"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise PipelineLoadError(f"{path} is not a saved pipeline: missing {', '.join(missing)}")
    try:
        meta = json.loads(files[0].read_text())
    except ValueError as exc:
        raise PipelineLoadError(f"{files[0]} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT_VERSION:
        raise PipelineLoadError(f"{path} has format {meta.get('format')!r}; this mloc reads "
                                f"format {FORMAT_VERSION}")
    try:
        with open(files[1], "rb") as f:
            saved = pickle.load(f)
    except Exception as exc:  # noqa: BLE001 -- a truncated file or a missing class
        raise PipelineLoadError(f"cannot read {files[1]}: {exc}") from exc
    if meta.get("cpu") != target.cpu_key():
        return compile_pipeline(saved["graph"], threads=threads)
    blocks = {int(k): v for k, v in meta.get("block_rows", {}).items()}
    return CompiledPipeline(saved["graph"], saved["plan"], files[2].read_bytes(), blocks,
                            threads=threads)
