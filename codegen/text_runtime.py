"""Host side of the native text kernels: compiling, buffers, calling, and host rows.

* :class:`NativeVectorizer` is a drop-in ``transform`` for a fitted vectorizer: the kernel
  writes CSR rows, rows it flags are recomputed by the vectorizer itself and spliced in, and
  the result is what scikit-learn returns (same values, column order, dtypes and sparse class).
* :class:`FusedTextLinear` computes a linear model's ``predict`` / ``predict_proba`` /
  ``decision_function`` on a stacked row of vectorizer outputs and dense columns without
  building the sparse matrix: the kernel returns raw scores, the model's
  :class:`~codegen.sklearn_heads.Head` turns them into the method's result, and flagged rows go
  through scikit-learn (vectorizers, ``scipy.sparse.hstack``, the model) on their own.

Kernels are compiled once per object (through the on-disk compile cache, keyed by the LLVM IR)
and called through ctypes, which releases the GIL.  Scratch buffers are reused between calls
(one set per concurrent call); a kernel that finds a buffer too small returns early and is
called again, from the row it stopped at, with a bigger one.

Each object has a ``threads`` count: a batch large enough to be worth it is split into row
ranges run at once on the shared pool (``runtime.pool``), each range with its own scratch
buffers and outputs, joined in row order, so the result does not depend on ``threads``.
"""
from __future__ import annotations

import ctypes
import hashlib
import threading

import llvmlite.ir as ir
import numpy as np

from .text_cpython import layout as str_layout
from .text_kernel import SCRATCH_FIXED, TextEmitter, scratch_sizes
from .text_spec import HostOnly, summary, vectorizer_spec

PROTO = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
INITIAL_CAP = 1024
#: Fewest rows a thread gets of a vectorizer (or fused) kernel: a tweet through two vectorizers
#: takes ~10-30 us of CPU, a hand-off to a pool thread ~20-50 us, so 128 rows (a few ms) make
#: the hand-off negligible.
MIN_ROWS_PER_THREAD = 128
#: The same for the string statistics kernel (~0.1-0.5 us per row).
MIN_STATS_ROWS_PER_THREAD = 32768


def _ranges(n: int, threads: int, min_rows: int) -> list:
    """Row ranges for ``threads`` (one range when called from a pool thread: waiting there
    for other pool threads could wait for ever)."""
    from runtime.pool import split
    if threads <= 1 or threading.current_thread().name.startswith("mloc"):
        return [(0, n)]
    return split(n, threads, min_rows)


def _run(fn, ranges: list, threads: int) -> list:
    """``[fn(start, stop) for each range]``, the ranges run at once on the shared pool."""
    from runtime.pool import run_chunks
    results = [None] * len(ranges)

    def part(start, stop):
        results[ranges.index((start, stop))] = fn(start, stop)
    run_chunks(part, ranges, threads)
    return results


def _on_threads(threads: int) -> str:
    return f"; large batches split over {threads} threads" if threads > 1 else ""


def _threads(threads) -> int:
    """``threads`` as a count: None means one per core (like ``mloc_ir.compile``)."""
    from runtime.pool import default_threads
    n = default_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {threads!r}")
    return n


def _compile(build, symbol: str):
    """Emit with ``build(module)``, compile (or fetch from the cache) and load ``symbol``."""
    from runtime import cache as runtime_cache
    from runtime.loader import load

    module = ir.Module(name=symbol)
    layout = build(module)
    obj = runtime_cache.compiled("text", str(module), symbol)
    lib = load(obj, [symbol])
    return lib, lib.function(symbol, PROTO), layout


def as_objects(texts) -> np.ndarray:
    """The documents as a 1-D object array (no copy when they already are one)."""
    if isinstance(texts, np.ndarray) and texts.dtype == object and texts.ndim == 1:
        return np.ascontiguousarray(texts)
    if hasattr(texts, "to_numpy"):
        texts = texts.to_numpy()
    arr = np.empty(len(texts), dtype=object)
    arr[:] = list(texts) if not isinstance(texts, np.ndarray) else texts
    return arr


class _Scratch:
    """One vectorizer's scratch arrays for a text capacity (code points per row)."""

    def __init__(self, spec, cap: int, fixed=None):
        self.spec = spec
        self.cap = cap
        self.arrays = {}
        for key, (n, dt) in scratch_sizes(spec, cap).items():
            if fixed is not None and key in SCRATCH_FIXED:
                self.arrays[key] = fixed[key]
            else:
                self.arrays[key] = np.zeros(n, dtype=dt)

    def grown(self, cap: int) -> "_Scratch":
        return _Scratch(self.spec, cap, self.arrays)


class _Pool:
    """Scratch sets for concurrent calls of one kernel."""

    def __init__(self, make):
        self.make = make
        self.free = []
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            return self.free.pop() if self.free else self.make()

    def give(self, s):
        with self.lock:
            self.free.append(s)


class _Kernel:
    """A compiled kernel and the ``ctx`` filling shared by both kinds."""

    def __init__(self, build, symbol):
        self.lib, self.fn, self.layout = _compile(build, symbol)

    def ctx(self, values: dict) -> np.ndarray:
        missing = [s for s in self.layout.slots if s not in values]
        if missing:  # pragma: no cover - a bug in this module, not a user error
            raise RuntimeError(f"kernel context lacks {missing}")
        return np.array([int(values[s]) for s in self.layout.slots], dtype=np.int64)


def _addr(a: np.ndarray) -> int:
    return a.ctypes.data


def _scratch_slots(prefix: str, s: _Scratch) -> dict:
    return {f"{prefix}.{k}": _addr(a) for k, a in s.arrays.items()}


def _splice(n, indptr, indices, data, rows, host):
    """CSR arrays with rows ``rows`` (empty in the native result) taken from ``host``."""
    counts = np.diff(indptr)
    host_counts = np.diff(host.indptr)
    new_counts = counts.copy()
    new_counts[rows] = host_counts
    new_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(new_counts, out=new_indptr[1:])
    total = int(new_indptr[-1])
    out_idx = np.empty(total, dtype=indices.dtype)
    out_val = np.empty(total, dtype=data.dtype)
    shift = np.repeat(new_indptr[:-1] - indptr[:-1], counts)
    dest = np.arange(len(indices)) + shift
    out_idx[dest] = indices
    out_val[dest] = data
    hshift = np.repeat(new_indptr[rows] - host.indptr[:-1], host_counts)
    hdest = np.arange(host.nnz) + hshift
    out_idx[hdest] = host.indices
    out_val[hdest] = host.data
    return new_indptr, out_idx, out_val


class NativeVectorizer:
    """``transform`` of a fitted scikit-learn vectorizer, natively (see the module docstring).

    Raises :class:`~codegen.text_spec.HostOnly` when the vectorizer's configuration does not
    compile (the reason is the message).
    """

    def __init__(self, vectorizer, threads: int | None = 1):
        if str_layout() is None:
            raise HostOnly("this Python's str layout is not one the kernels read")
        self.vectorizer = vectorizer
        self.spec = vectorizer_spec(vectorizer)
        self.threads = _threads(threads)
        self._kernel = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"vectorizer": self.vectorizer, "threads": self.threads}

    def __setstate__(self, state):
        self.__init__(state["vectorizer"], state.get("threads", 1))

    def describe(self) -> str:
        """What the kernel computes, in one line (for ``explain()``)."""
        return f"native text kernel: {summary(self.spec)}, CSR rows{_on_threads(self.threads)}"

    @property
    def kernel(self) -> _Kernel:
        with self._lock:
            if self._kernel is None:
                digest = hashlib.sha256(repr(self.spec.ngram_range).encode()).hexdigest()[:8]
                symbol = f"mloc_text_transform_{digest}"
                sl = str_layout()

                def build(module):
                    return TextEmitter(module, symbol, sl).emit_transform(self.spec, symbol)
                self._kernel = _Kernel(build, symbol)
                self._pool = _Pool(lambda: _Scratch(self.spec, INITIAL_CAP))
            return self._kernel

    def _rows(self, docs, start: int, stop: int, flags, nnz):
        """Rows ``start:stop`` through the kernel: ``flags`` and ``nnz`` of those rows are set,
        their CSR indices and values returned."""
        kernel = self.kernel
        scratch = self._pool.take()
        try:
            need = np.zeros(2, np.int64)
            pos = np.zeros(1, np.int64)
            out_cap = max(64, 48 * (stop - start))
            out_idx = np.empty(out_cap, np.int32)
            out_val = np.empty(out_cap, np.float64)
            row = start
            while row < stop:
                ctx = kernel.ctx({"str_type": str_layout().str_type, "flags": _addr(flags),
                                  "need": _addr(need), "cap": scratch.cap, "objs0": _addr(docs),
                                  "nnz": _addr(nnz), "out_idx": _addr(out_idx),
                                  "out_val": _addr(out_val), "out_cap": out_cap,
                                  "out_pos": _addr(pos), **_scratch_slots("v0", scratch)})
                row = kernel.fn(_addr(ctx), row, stop)
                if row < stop:
                    if need[0] > scratch.cap:
                        scratch = scratch.grown(int(max(need[0], 2 * scratch.cap)))
                    if need[1] > out_cap:
                        out_cap = int(max(need[1], 2 * out_cap))
                        out_idx = np.resize(out_idx, out_cap)
                        out_val = np.resize(out_val, out_cap)
                    need[:] = 0
        finally:
            self._pool.give(scratch)
        total = int(pos[0])
        return out_idx[:total], out_val[:total]

    def transform(self, texts):
        import scipy.sparse as sp
        from sklearn.utils._sparse import _align_api_if_sparse
        if isinstance(texts, str):
            return self.vectorizer.transform(texts)  # scikit-learn's error
        docs = as_objects(texts)
        n = len(docs)
        if n == 0:  # scikit-learn's own empty result (HashingVectorizer raises StopIteration)
            return self.vectorizer.transform(docs)
        flags = np.zeros(n, np.uint8)
        nnz = np.zeros(n, np.int64)
        ranges = _ranges(n, self.threads, MIN_ROWS_PER_THREAD)
        parts = _run(lambda a, b: self._rows(docs, a, b, flags, nnz), ranges, self.threads)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(nnz, out=indptr[1:])
        indices = np.concatenate([p[0] for p in parts])
        data = np.concatenate([p[1] for p in parts]).astype(self.spec.dtype, copy=False)
        rows = np.flatnonzero(flags)
        if len(rows):
            host = self.vectorizer.transform(docs[rows])
            host = sp.csr_array(host)
            indptr, indices, data = _splice(n, indptr, indices, data, rows, host)
        index_dtype = np.int32 if indptr[-1] <= np.iinfo(np.int32).max else np.int64
        X = sp.csr_array((data, indices.astype(index_dtype, copy=False),
                          indptr.astype(index_dtype)), shape=(n, self.spec.n_features))
        X.has_sorted_indices = True
        return _align_api_if_sparse(X)


class FusedTextLinear:
    """A linear model's method on ``hstack([vectorizer outputs..., dense parts...])``.

    ``parts`` lists the stack's parts in order: ``("text", vectorizer)`` or
    ``("dense", width)``.  Called with one argument per part: the documents of a text part, a
    column (``width`` 1) or ``(n, width)`` matrix for a dense part.
    """

    def __init__(self, parts, model, method: str, threads: int | None = 1):
        from .sklearn_linear import linear_from_sklearn
        if str_layout() is None:
            raise HostOnly("this Python's str layout is not one the kernels read")
        self.parts = list(parts)
        self.model = model
        self.method = method
        self.threads = _threads(threads)
        self.specs = {}
        for i, (kind, obj) in enumerate(self.parts):
            if kind == "text":
                self.specs[i] = vectorizer_spec(obj)
        try:
            self.linear, self.head = linear_from_sklearn(model)
        except ValueError as exc:
            raise HostOnly(str(exc)) from None
        if method not in self.head.methods():
            raise HostOnly(f"{type(model).__name__} has no {method}")
        width = sum(self.specs[i].n_features if k == "text" else w
                    for i, (k, w) in enumerate(self.parts))
        if width != self.linear.n_features:
            raise HostOnly(f"the stacked row has {width} columns, the model expects "
                           f"{self.linear.n_features}")
        self._kernel = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"parts": self.parts, "model": self.model, "method": self.method,
                "threads": self.threads}

    def __setstate__(self, state):
        self.__init__(state["parts"], state["model"], state["method"], state.get("threads", 1))

    def describe(self) -> str:
        """What the kernel computes, in one line (for ``explain()``)."""
        parts = [summary(self.specs[i]) if k == "text" else f"{w} dense column(s)"
                 for i, (k, w) in enumerate(self.parts)]
        return (f"native text kernel: {type(self.model).__name__}.{self.method} fused with "
                f"{' + '.join(parts)} (no sparse matrix is built; the {self.method} head on "
                f"the raw scores in NumPy){_on_threads(self.threads)}")

    @property
    def kernel(self) -> _Kernel:
        with self._lock:
            if self._kernel is None:
                digest = self.linear.digest()
                symbol = f"mloc_text_fused_{digest}"
                sl = str_layout()
                kparts = [("text", self.specs[i], i) if k == "text" else ("dense", w)
                          for i, (k, w) in enumerate(self.parts)]

                def build(module):
                    return TextEmitter(module, symbol, sl).emit_fused(
                        kparts, self.linear.coef, self.linear.intercept, symbol)
                self._kernel = _Kernel(build, symbol)
                self._pool = _Pool(lambda: {i: _Scratch(s, INITIAL_CAP)
                                            for i, s in self.specs.items()})
            return self._kernel

    def _rows(self, kernel, values, raw, flags, start: int, stop: int) -> None:
        """Raw scores and flags of rows ``start:stop``."""
        need = np.zeros(2, np.int64)
        scratch = self._pool.take()
        try:
            row = start
            while row < stop:
                slots = {"str_type": str_layout().str_type, "flags": _addr(flags),
                         "need": _addr(need), "cap": min(s.cap for s in scratch.values())
                         if scratch else 0, "raw": _addr(raw), **values}
                for i, s in scratch.items():
                    slots.update(_scratch_slots(f"v{i}", s))
                ctx = kernel.ctx(slots)
                row = kernel.fn(_addr(ctx), row, stop)
                if row < stop:
                    cap = int(need[0])
                    scratch = {i: s.grown(max(cap, 2 * s.cap)) for i, s in scratch.items()}
                    need[:] = 0
        finally:
            self._pool.give(scratch)

    def raw(self, *args):
        """Raw scores ``(n, n_outputs)`` and the flagged rows."""
        if len(args) != len(self.parts):
            raise TypeError(f"expected {len(self.parts)} arguments, got {len(args)}")
        kernel = self.kernel
        values = {}
        keep = []
        n = None
        for i, ((kind, w), a) in enumerate(zip(self.parts, args)):
            if kind == "text":
                docs = as_objects(a)
                keep.append(docs)
                values[f"objs{i}"] = _addr(docs)
                m = len(docs)
            else:
                d = np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(len(a), -1))
                if d.shape[1] != w:
                    raise ValueError(f"dense part {i} has {d.shape[1]} columns, expected {w}")
                keep.append(d)
                values[f"dense{i}"] = _addr(d)
                m = len(d)
            if n is not None and m != n:
                raise ValueError("the stacked parts have different numbers of rows")
            n = m
        n = n or 0
        K = self.linear.n_outputs
        raw = np.empty((n, K), np.float64)
        flags = np.zeros(n, np.uint8)
        ranges = _ranges(n, self.threads, MIN_ROWS_PER_THREAD)
        _run(lambda a, b: self._rows(kernel, values, raw, flags, a, b), ranges, self.threads)
        return raw, np.flatnonzero(flags), keep

    def __call__(self, *args):
        dense = [np.asarray(a) for (kind, _), a in zip(self.parts, args) if kind == "dense"]
        n = len(args[0]) if args else 0
        if n == 0 or any(d.dtype.kind == "f" and not np.isfinite(d).all() for d in dense):
            # scikit-learn's own answer: its empty-input and NaN/infinity errors
            keep = [as_objects(a) if kind == "text" else np.asarray(a)
                    for (kind, _), a in zip(self.parts, args)]
            return self.host(np.arange(n), keep)
        raw, rows, keep = self.raw(*args)
        out = self.head.apply(self.method, raw)
        if len(rows):
            out[rows] = self.host(rows, keep)
        return out

    def host(self, rows, keep):
        """scikit-learn's result for ``rows`` alone (vectorize, hstack, the model's method)."""
        import scipy.sparse as sp
        blocks = []
        for (kind, obj), a in zip(self.parts, keep):
            if kind == "text":
                blocks.append(obj.transform(a[rows]))
            else:
                blocks.append(sp.csr_matrix(np.asarray(a[rows], np.float64).reshape(len(rows), -1)))
        X = sp.hstack(blocks, format="csr")
        return np.asarray(getattr(self.model, self.method)(X))


class TextStats:
    """Simple statistics of one string column in one native pass: ``(kind, sub)`` pairs of
    ``text_kernel.STAT_KINDS``; returns an ``(n, len(stats))`` int64 matrix (booleans as 0/1).
    Rows that are not ``str`` objects get each statistic from ``host_fns`` (Python's own
    string methods, which raise what the pipeline would raise)."""

    def __init__(self, stats, host_fns, threads: int | None = 1):
        if str_layout() is None:
            raise HostOnly("this Python's str layout is not one the kernels read")
        self.stats = [(k, s) for k, s in stats]
        self.host_fns = list(host_fns)
        self.threads = _threads(threads)
        self._kernel = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"stats": self.stats, "host_fns": self.host_fns, "threads": self.threads}

    def __setstate__(self, state):
        self.__init__(state["stats"], state["host_fns"], state.get("threads", 1))

    def describe(self) -> str:
        """What the kernel computes, in one line (for ``explain()``)."""
        stats = ", ".join(k if not s else f"{k}({s!r})" for k, s in self.stats)
        return f"native text kernel: string statistics {stats}{_on_threads(self.threads)}"

    @property
    def kernel(self) -> _Kernel:
        with self._lock:
            if self._kernel is None:
                from .text_kernel import emit_stats
                symbol = "mloc_text_stats"
                sl = str_layout()
                self._kernel = _Kernel(lambda m: emit_stats(TextEmitter(m, symbol, sl),
                                                            self.stats, symbol), symbol)
            return self._kernel

    def __call__(self, texts):
        docs = as_objects(texts)
        n = len(docs)
        outs = [np.zeros(n, np.uint8 if k in ("upper_eq", "startswith", "endswith", "contains")
                         else np.int64) for k, _ in self.stats]
        flags = np.zeros(n, np.uint8)
        if n:
            kernel = self.kernel
            slots = {"str_type": str_layout().str_type, "flags": _addr(flags), "need": 0,
                     "cap": 0, "objs0": _addr(docs)}
            slots.update({f"out{i}": _addr(o) for i, o in enumerate(outs)})
            ctx = kernel.ctx(slots)  # read-only for the kernel: shared by the ranges
            _run(lambda a, b: kernel.fn(_addr(ctx), a, b),
                 _ranges(n, self.threads, MIN_STATS_ROWS_PER_THREAD), self.threads)
        result = np.empty((n, len(self.stats)), np.int64)
        for i, o in enumerate(outs):
            result[:, i] = o
        for r in np.flatnonzero(flags):
            result[r] = [int(fn(docs[r])) for fn in self.host_fns]
        return result
