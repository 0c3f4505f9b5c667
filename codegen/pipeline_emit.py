"""Emission of one fused loop per native stage.

Each native stage becomes ``i32 name(i8** ptrs, i64 begin, i64 end)``: ``ptrs`` holds the data
pointers of the stage's inputs followed by its outputs (see ``Stage``), rows ``[begin, end)``
are processed, and the result is 0, or 1 when an integer power had a negative exponent
(NumPy raises ``ValueError`` there).  Chunks of rows may run concurrently: the function keeps
no state and writes only its outputs' rows.

Rows go in blocks of ``block_rows``.  A stage's nodes are split into *phases* by the number of
models on their path: per block, the row loop of phase 0 computes every element-wise op,
lookup and feature assembly for each row in registers, writes the features into a per-block
buffer (on the stack), then each model of phase 1 scores the whole block from that buffer,
then the row loop of phase 1 runs the ops reading model outputs, and so on.  Only values read
in a later phase than their own (and features and model outputs) get a block buffer; only the
stage's outputs are written to full-length arrays.

A scikit-learn model (``pipeline_models``, kind ``"sklearn"``) is scored per block in three
steps: its features are copied into a float64 block (converted as scikit-learn converts them)
and its preprocessing steps applied there (``sklearn_preprocess.emit_steps``), its core
(``emit_trees.emit_ensemble`` / ``sklearn_linear.emit_linear``) writes the raw scores, and its
head (``pipeline_heads``) turns each row's raw scores into the method's result -- or, for a
head that runs on the host, the raw scores are the node's stored value (``Stage.finish``).
``transform`` nodes (fitted scalers) compute their row in the row loop, like a feature stack.
"""
from __future__ import annotations


import llvmlite.ir as ir
import numpy as np

from . import pipeline_models as pm
from . import pipeline_strings_emit
from .pipeline_plan import value_layout
from .pipeline_ops import F32, F64, I8, I32, I64, MEM, Ops, Unsupported, constant, loop_dtypes
from . import numpy_loops
from .llvm_util import byte_global, for_range
from .pipeline_tables import field_column, join_table, lookup_table

I8PP = I8.as_pointer().as_pointer()
STAGE_TYPE = ir.FunctionType(I32, [I8PP, I64, I64])
DEFAULT_BLOCK_ROWS = 256


def _global_array(module: ir.Module, name: str, arr: np.ndarray, elem) -> ir.GlobalVariable:
    """An internal constant holding ``arr`` as ``elem`` values (at least one element, so it has
    an address), written as one byte string: users bitcast it to ``elem*``."""
    dtype = np.dtype({I64: np.int64, I8: np.uint8, F32: np.float32, F64: np.float64}[elem])
    values = np.asarray(arr)
    if elem == I8:
        values = values.astype(bool)
    raw = values.astype(dtype.newbyteorder("<")).tobytes() or bytes(dtype.itemsize)
    return byte_global(module, name, raw)


def _kind(dtype: str) -> str:
    return dtype


class StageEmitter:
    """Builds the fused function of one native stage into ``module``."""

    def __init__(self, module: ir.Module, graph, plan, stage, name: str,
                 block_rows: int | None = None):
        self.module = module
        self.g = graph
        self.plan = plan
        self.stage = stage
        self.name = name
        self.members = set(stage.nodes)
        self.phase = self._phases()
        self.specs = {nid: pm.model_spec(graph, graph[nid]) for nid in stage.nodes
                      if graph[nid].op == "model"}
        self.block_rows = block_rows or self._block_rows()

    # -- analysis -------------------------------------------------------------------------------
    def _phases(self) -> dict[int, int]:
        phase: dict[int, int] = {}
        for nid in self.stage.nodes:
            node = self.g[nid]
            p = max((phase[a] for a in node.args if a in phase), default=0)
            phase[nid] = p + 1 if node.op == "model" or self._block_ufunc(nid) else p
        return phase

    def _block_ufunc(self, nid):
        """``(loop key, operand dtype)`` when ``nid`` is computed by NumPy's own loop over a
        whole block (like a model: one call per block, not one per row), else None."""
        node = self.g[nid]
        if node.op not in UFUNC_OPS:
            return None
        la = loop_dtypes(self.g, node, self.plan.consts)[0]
        if la not in ("f32", "f64") or node.type.dtype != la:
            return None
        if node.op == "pow" and _is_half(self.plan.consts.get(node.args[1])):
            return None  # computed as sqrt in the row loop (see _node)
        key = ("numpy", UFUNC_OPS[node.op], "d" if la == "f64" else "f")
        if not numpy_loops.available(*key):
            err = Unsupported(f"numpy.{key[1]} on {la}: NumPy's loop could not be checked in "
                              "this process")
            err.node = nid
            raise err
        return key, la

    def _host_head(self, nid) -> bool:
        """A member model whose stored value is its raw scores (its head runs on the host)."""
        spec = self.specs.get(nid)
        return spec is not None and spec.host_head

    def _width(self, nid) -> int:
        if self._host_head(nid):
            return self.specs[nid].converted.n_outputs
        t = self.g[nid].type
        return 1 if t.shape == "col" else (t.width or 1)

    def _dtype(self, nid) -> str:
        if self._host_head(nid):
            return "f64"
        return value_layout(self.g, self.stage, nid)[0]

    def _buffered(self) -> list[int]:
        """In-stage values needing a per-block buffer."""
        out = []
        for nid in self.stage.nodes:
            node = self.g[nid]
            if node.op in ("stack", "model", "transform") or self._block_ufunc(nid):
                out.append(nid)
                continue
            if node.op == "join":
                continue
            later = [u for u in self.g.users(nid) if u.id in self.members
                     and self.phase[u.id] > self.phase[nid]]
            if later:
                out.append(nid)
        return out

    def _block_rows(self) -> int:
        per_row = sum(8 * self._width(n) for n in self._buffered()) or 8
        rows = max(8, min(DEFAULT_BLOCK_ROWS, 65536 // per_row))
        return rows // 8 * 8

    # -- emission -------------------------------------------------------------------------------
    def emit(self) -> ir.Function:
        g, st = self.g, self.stage
        fn = ir.Function(self.module, STAGE_TYPE, self.name)
        ptrs, begin, end = fn.args
        ptrs.name, begin.name, end.name = "ptrs", "begin", "end"
        b = self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.status = b.alloca(I32, name="status")
        b.store(I32(0), self.status)
        self.ops = Ops(b, self.module, self.status)
        # data pointers of inputs and outputs
        self.arrays = {}
        for i, nid in enumerate(list(st.inputs) + list(st.outputs)):
            raw = b.load(b.gep(ptrs, [I64(i)]))
            # a str column arrives as one pointer to its encoded form (pipeline_strkeys)
            self.arrays.setdefault(nid, b.bitcast(raw, MEM.get(self._dtype(nid), I8).as_pointer()))
        self.out_arrays = {nid: self.arrays[nid] for nid in st.outputs}
        B = self.block_rows
        self.buffers = {}
        for nid in self._buffered():
            ty = ir.ArrayType(MEM[self._dtype(nid)], B * self._width(nid))
            self.buffers[nid] = b.bitcast(b.alloca(ty, name=f"buf.{g[nid].name}"),
                                          MEM[self._dtype(nid)].as_pointer())
        self.model_fns = {}
        self.model_x = {}
        self.model_raw = {}
        for nid in st.nodes:
            if g[nid].op == "model":
                self._prepare_model(nid)
        self.tables = {}
        self.ufunc_bufs = {}
        n_phases = max(self.phase.values(), default=0) + 1
        with for_range(b, begin, end, "block", step=B) as r0:
            left = b.sub(end, r0)
            nb = b.select(b.icmp_signed("<", left, I64(B)), left, I64(B))
            for p in range(n_phases):
                for nid in st.nodes:
                    if g[nid].op == "model" and self.phase[nid] == p:
                        self._call_model(nid, r0, nb)
                    elif self.phase[nid] == p and self._block_ufunc(nid):
                        self._call_ufunc(nid, r0, nb)
                todo = [n for n in st.nodes if self.phase[n] == p]
                if not todo:
                    continue
                with for_range(b, I64(0), nb, f"row{p}") as r:
                    self._row(todo, r0, r)
        b.ret(b.load(self.status))
        return fn

    # -- one row --------------------------------------------------------------------------------
    def _row(self, todo, r0, r):
        b, g = self.b, self.g
        self.r0, self.r = r0, r
        self.row = b.add(r0, r)
        self.vals: dict[int, object] = {}
        for nid in todo:
            node = g[nid]
            if node.op == "model" or self._block_ufunc(nid):
                v = None  # computed before this loop, lives in its buffer
            else:
                try:
                    v = self._node(node)
                except Unsupported as exc:
                    exc.node = nid  # the planner moves it to the host and plans again
                    raise
                self.vals[nid] = v
            if nid in self.buffers and v is not None \
                    and node.op not in ("stack", "model", "transform"):
                self.ops.store(v, b.gep(self.buffers[nid], [r]), self._dtype(nid))
            if nid in self.out_arrays:
                self._store_output(nid)

    def _store_output(self, nid):
        b = self.b
        w, dt = self._width(nid), self._dtype(nid)
        dst = self.out_arrays[nid]
        if value_layout(self.g, self.stage, nid)[1] is None:
            v = self.vals.get(nid)
            if v is None:  # a model column
                v = self.ops.load(b.gep(self.buffers[nid], [self.r]), dt)
            self.ops.store(v, b.gep(dst, [self.row]), dt)
            return
        src = b.gep(self.buffers[nid], [b.mul(self.r, I64(w))])
        out = b.gep(dst, [b.mul(self.row, I64(w))])
        for j in range(w):
            b.store(b.load(b.gep(src, [I64(j)])), b.gep(out, [I64(j)]))

    def _arg(self, nid, dtype: str | None = None):
        """The current row's value of ``nid`` (converted to ``dtype`` when given)."""
        b = self.b
        if nid in self.plan.consts:
            return constant(self.plan.consts[nid], dtype or self.g[nid].type.dtype)
        src = self._dtype(nid)
        if nid in self.vals:
            v = self.vals[nid]
        elif nid in self.buffers:
            v = self.ops.load(b.gep(self.buffers[nid], [self.r]), src)
        else:
            v = self.ops.load(b.gep(self.arrays[nid], [self.row]), src)
        self.vals[nid] = v
        return v if dtype is None else self.ops.convert(v, src, dtype)

    def _row_element(self, nid, j: int, dtype: str):
        """Element ``j`` of the current row of a row-shaped value, converted to ``dtype``."""
        b = self.b
        w, src = self._width(nid), self._dtype(nid)
        base = self.buffers.get(nid)
        idx = b.add(b.mul(self.r if base is not None else self.row, I64(w)), I64(j))
        if base is None:
            base = self.arrays[nid]
        return self.ops.convert(self.ops.load(b.gep(base, [idx]), src), src, dtype)

    def _node(self, node):
        op, b, ops = node.op, self.b, self.ops
        dt = node.type.dtype
        if op in ("cast", "round", "nan_to_num"):
            (src,) = loop_dtypes(self.g, node, self.plan.consts)
            x = self._arg(node.args[0], src)
            if op == "cast":
                return ops.convert(x, src, dt)
            if op == "round":
                return ops.round(x, src, int(node.attrs["decimals"]))
            return ops.nan_to_num(x, src, node.attrs["nan"], node.attrs["posinf"],
                                  node.attrs["neginf"])
        if op == "where":
            c = self._arg(node.args[0], "bool")
            return b.select(c, self._arg(node.args[1], dt), self._arg(node.args[2], dt))
        if len(node.args) == 2 and op not in ("stack",) and op in _BINARY:
            la, lb = loop_dtypes(self.g, node, self.plan.consts)
            if op == "pow" and la in ("f32", "f64") and _is_half(self.plan.consts.get(node.args[1])):
                # NumPy's power loop takes sqrt for a broadcast exponent of 0.5, which differs
                # from pow() at -0.0 (-0.0, not +0.0) and -inf (NaN, not +inf)
                return ops.unary("sqrt", self._arg(node.args[0], la), la)
            return ops.binary(op, self._arg(node.args[0], la), self._arg(node.args[1], lb), la)
        if op in _UNARY:
            (la,) = loop_dtypes(self.g, node, self.plan.consts)
            return ops.unary(op, self._arg(node.args[0], la), la)
        if op == "lookup":
            return self._lookup(node)
        if op == "join":
            return self._join(node)
        if op == "field":
            return self._field(node)
        if op == "stack":
            return self._stack(node)
        if op == "transform":
            return self._transform(node)
        if op == "column":
            return self._row_element(node.args[0], int(node.attrs["index"]), dt)
        raise NotImplementedError(f"no native lowering for {op}")

    def _call_ufunc(self, nid, r0, nb):
        """The block's rows of ``nid`` through NumPy's loop in one call: operands converted to
        the loop's dtype into stack buffers (a constant operand as one cell with stride 0, as
        NumPy broadcasts it), the result into ``nid``'s block buffer."""
        b, node = self.b, self.g[nid]
        key, la = self._block_ufunc(nid)
        ty, size = MEM[la], (8 if la == "f64" else 4)
        operands, steps = [], []
        for k, a in enumerate(node.args):
            if a in self.plan.consts:
                cell = b.alloca(ty, name=f"ucst.{node.name}.{k}")
                b.store(constant(self.plan.consts[a], la), cell)
                operands.append(cell)
                steps.append(0)
                continue
            if nid not in self.ufunc_bufs:
                self.ufunc_bufs[nid] = {}
            buf = self.ufunc_bufs[nid].get(k)
            if buf is None:
                with b.goto_entry_block():
                    arr = b.alloca(ir.ArrayType(ty, self.block_rows), name=f"uin.{node.name}.{k}")
                buf = self.ufunc_bufs[nid][k] = b.bitcast(arr, ty.as_pointer())
            with for_range(b, I64(0), nb, f"uin{k}") as r:
                self.r0, self.r, self.row, self.vals = r0, r, b.add(r0, r), {}
                b.store(self._arg(a, la), b.gep(buf, [r]))
            operands.append(buf)
            steps.append(size)
        numpy_loops.call_block(b, self.module, key, operands, self.buffers[nid], steps + [size],
                               nb)

    # -- tables ---------------------------------------------------------------------------------
    def _search(self, keys: np.ndarray, tag: str, x, key_dtype: str):
        """Index of ``x`` in the sorted constant ``keys`` or -1 (binary search)."""
        b, n = self.b, len(keys)
        fl = key_dtype in ("f32", "f64")
        kty = F64 if fl else I64
        gk = _global_array(self.module, f"{self.name}.{tag}.keys", keys, kty)
        if n == 0:
            return I64(-1)
        x = self.ops.convert(x, key_dtype, "f64" if fl else "i64")
        kp = b.bitcast(gk, kty.as_pointer())
        pre = b.block
        head = b.append_basic_block(f"{tag}.head")
        body = b.append_basic_block(f"{tag}.body")
        done = b.append_basic_block(f"{tag}.done")
        b.branch(head)
        b.position_at_end(head)
        lo = b.phi(I64)
        hi = b.phi(I64)
        lo.add_incoming(I64(0), pre)
        hi.add_incoming(I64(n), pre)
        b.cbranch(b.icmp_signed("<", lo, hi), body, done)
        b.position_at_end(body)
        mid = b.lshr(b.add(lo, hi), I64(1))
        k = b.load(b.gep(kp, [mid]))
        less = b.fcmp_ordered("<", k, x) if fl else b.icmp_signed("<", k, x)
        lo.add_incoming(b.select(less, b.add(mid, I64(1)), lo), body)
        hi.add_incoming(b.select(less, hi, mid), body)
        b.branch(head)
        b.position_at_end(done)
        at = b.select(b.icmp_signed("<", lo, I64(n)), lo, I64(0))
        k = b.load(b.gep(kp, [at]))
        eq = b.fcmp_ordered("==", k, x) if fl else b.icmp_signed("==", k, x)
        found = b.and_(b.icmp_signed("<", lo, I64(n)), eq)
        return b.select(found, lo, I64(-1))

    def _lookup(self, node):
        if pipeline_strings_emit.handles(self.g, node):
            return pipeline_strings_emit.strings_of(self).lookup(node)
        b = self.b
        kdt = self.g[node.args[0]].type.dtype
        keys, values, default = lookup_table(node, kdt)
        dt = node.type.dtype
        tag = f"lookup{node.id}"
        idx = self._search(keys, tag, self._arg(node.args[0]), kdt)
        gv = _global_array(self.module, f"{self.name}.{tag}.values", values, MEM[dt])
        vp = b.bitcast(gv, MEM[dt].as_pointer())
        v = self.ops.load(b.gep(vp, [b.select(b.icmp_signed("<", idx, I64(0)), I64(0), idx)]), dt)
        return b.select(b.icmp_signed("<", idx, I64(0)), constant(default, dt), v)

    def _join(self, node):
        if pipeline_strings_emit.handles(self.g, node):
            return pipeline_strings_emit.strings_of(self).join(node)
        kdt = self.g[node.args[0]].type.dtype
        keys, rows = join_table(node, kdt)
        tag = f"join{node.id}"
        idx = self._search(keys, tag, self._arg(node.args[0]), kdt)
        gr = _global_array(self.module, f"{self.name}.{tag}.rows", rows, I64)
        rp = self.b.bitcast(gr, I64.as_pointer())
        safe = self.b.select(self.b.icmp_signed("<", idx, I64(0)), I64(0), idx)
        row = self.b.load(self.b.gep(rp, [safe]))
        return self.b.select(self.b.icmp_signed("<", idx, I64(0)), I64(-1), row)

    def _field(self, node):
        if node.type.dtype == "str":
            return None  # only read by lookups compiled per table row (pipeline_strings)
        b = self.b
        join = self.g[node.args[0]]
        dt = node.type.dtype
        column, default = field_column(join, node.attrs["name"], dt)
        gv = _global_array(self.module, f"{self.name}.field{node.id}", column, MEM[dt])
        cp = b.bitcast(gv, MEM[dt].as_pointer())
        row = self._arg(join.id)
        missing = b.icmp_signed("<", row, I64(0))
        v = self.ops.load(b.gep(cp, [b.select(missing, I64(0), row)]), dt)
        return b.select(missing, constant(default, dt), v)

    # -- feature assembly and models -------------------------------------------------------------
    def _stack(self, node):
        b = self.b
        dt = node.type.dtype
        w = self._width(node.id)
        row_buf = b.gep(self.buffers[node.id], [b.mul(self.r, I64(w))])
        j = 0
        for a in node.args:
            t = self.g[a].type
            if t.shape == "col" or a in self.plan.consts:
                self.ops.store(self._arg(a, dt), b.gep(row_buf, [I64(j)]), dt)
                j += 1
            else:
                for k in range(t.width):
                    self.ops.store(self._row_element(a, k, dt), b.gep(row_buf, [I64(j)]), dt)
                    j += 1
        return row_buf

    def _transform(self, node):
        """A fitted scaler's row: the input row converted to float64 (as scikit-learn
        converts it), then the scaler's float64 operations in place."""
        from .sklearn_preprocess import emit_steps
        b = self.b
        step = pm.transform_step(self.g, node)
        w = self._width(node.id)
        row_buf = b.gep(self.buffers[node.id], [b.mul(self.r, I64(w))])
        for k in range(w):
            b.store(self._row_element(node.args[0], k, "f64"), b.gep(row_buf, [I64(k)]))
        emit_steps(b, self.module, [step], row_buf, w, f"{self.name}.transform{node.id}")
        return row_buf

    def _prepare_model(self, nid):
        node = self.g[nid]
        spec = self.specs[nid]
        if spec.kind == "sklearn":
            return self._prepare_sklearn(nid, spec)
        ens = pm.ensemble(spec)
        from .emit_trees import emit_ensemble
        self.model_fns[nid] = (spec, emit_ensemble(self.module, ens, f"{self.name}.model{nid}",
                                                   raw_score=pm.raw_score(spec)), ens)
        x = node.args[0]
        xdt = self._dtype(x)
        if xdt != "f64" or x not in self.buffers:
            # LightGBM's view of the features: a float64 block (non-float dtypes via float32)
            ty = ir.ArrayType(F64, self.block_rows * spec.n_features)
            self.model_x[nid] = self.b.bitcast(self.b.alloca(ty, name=f"x.{node.name}"),
                                               F64.as_pointer())

    def _prepare_sklearn(self, nid, spec):
        from .sklearn_compile import _digest, emit_core
        conv = spec.converted
        node = self.g[nid]
        # named by content: model nodes sharing a model (predict and predict_proba) share
        # one core kernel, and the IR text (the compile cache key) is the same in every run
        name = f"mloc.sklearn.{_digest(conv)}.core"
        fn = self.module.globals.get(name) or emit_core(self.module, conv, name)
        self.model_fns[nid] = (spec, fn, conv)
        x = node.args[0]
        B, F, K = self.block_rows, spec.n_features, conv.n_outputs
        if conv.steps or self._dtype(x) != "f64" or x not in self.buffers:
            # scikit-learn's view of the features, transformed in place by the steps
            ty = ir.ArrayType(F64, B * F)
            self.model_x[nid] = self.b.bitcast(self.b.alloca(ty, name=f"x.{node.name}"),
                                               F64.as_pointer())
        if not spec.host_head:
            ty = ir.ArrayType(F64, B * K)
            self.model_raw[nid] = self.b.bitcast(self.b.alloca(ty, name=f"raw.{node.name}"),
                                                 F64.as_pointer())

    def _call_sklearn(self, nid, r0, nb):
        from .pipeline_heads import emit_head
        from .sklearn_preprocess import emit_steps
        b = self.b
        spec, fn, conv = self.model_fns[nid]
        x = self.g[nid].args[0]
        F, K = spec.n_features, conv.n_outputs
        if nid in self.model_x:
            xbuf = self.model_x[nid]
            xdt = self._dtype(x)
            via = pm.sklearn_feature_cast(spec, xdt)
            base = self.buffers.get(x)
            with for_range(b, I64(0), b.mul(nb, I64(F)), "sx") as i:
                src = b.gep(base, [i]) if base is not None else \
                    b.gep(self.arrays[x], [b.add(b.mul(r0, I64(F)), i)])
                v = self.ops.convert(self.ops.load(src, xdt), xdt, via)
                b.store(self.ops.convert(v, via, "f64"), b.gep(xbuf, [i]))
            if conv.steps:
                with for_range(b, I64(0), nb, "steps") as r:
                    emit_steps(b, self.module, conv.steps, b.gep(xbuf, [b.mul(r, I64(F))]), F,
                               f"{self.name}.model{nid}.steps")
        else:
            xbuf = self.buffers[x]
        out = self.buffers[nid]
        if spec.host_head:
            b.call(fn, [xbuf, nb, I64(F), out])  # raw scores are the stored value
            return
        raw = self.model_raw[nid]
        b.call(fn, [xbuf, nb, I64(F), raw])
        w, dt = self._width(nid), self._dtype(nid)
        with for_range(b, I64(0), nb, "head") as r:
            row = b.gep(raw, [b.mul(r, I64(K))])
            vals = [b.load(b.gep(row, [I64(k)])) for k in range(K)]
            res = emit_head(self.ops, conv.head, spec.method, vals, dt,
                            f"{self.name}.model{nid}")
            assert len(res) == w, (len(res), w)
            dst = b.gep(out, [b.mul(r, I64(w))])
            for j, v in enumerate(res):
                self.ops.store(v, b.gep(dst, [I64(j)]), dt)

    def _call_model(self, nid, r0, nb):
        b = self.b
        if self.specs[nid].kind == "sklearn":
            return self._call_sklearn(nid, r0, nb)
        spec, fn, ens = self.model_fns[nid]
        x = self.g[nid].args[0]
        w = spec.n_features
        xdt = self._dtype(x)
        if nid in self.model_x:
            xbuf = self.model_x[nid]
            base = self.buffers.get(x)
            with for_range(b, I64(0), b.mul(nb, I64(w)), "mx") as i:
                src = b.gep(base, [i]) if base is not None else \
                    b.gep(self.arrays[x], [b.add(b.mul(r0, I64(w)), i)])
                v = self.ops.load(src, xdt)
                if pm.feature_cast(xdt) == "f32" and xdt != "f32":
                    v = self.ops.convert(v, xdt, "f32")
                    xdt_now = "f32"
                else:
                    xdt_now = xdt
                b.store(self.ops.convert(v, xdt_now, "f64"), b.gep(xbuf, [i]))
        else:
            xbuf = self.buffers[x]
        out = self.buffers[nid]
        if spec.kind == "lgbm_proba" and spec.width == 2:
            # binary classifier: LightGBM gives p, scikit-learn's API returns [1 - p, p]
            b.call(fn, [xbuf, nb, I64(w), out])
            with for_range(b, I64(0), nb, "proba") as i:
                src = b.sub(nb, b.add(i, I64(1)))  # back to front: out[2k+1] is free to fill
                p = b.load(b.gep(out, [src]))
                b.store(b.fsub(F64(1.0), p), b.gep(out, [b.mul(src, I64(2))]))
                b.store(p, b.gep(out, [b.add(b.mul(src, I64(2)), I64(1))]))
            return
        b.call(fn, [xbuf, nb, I64(w), out])


_BINARY = {"c_pow", "add", "sub", "mul", "div", "floordiv", "mod", "pow", "lt", "le", "gt", "ge", "eq",
           "ne", "bitand", "bitor", "bitxor", "minimum", "maximum"}
#: Ops computed by NumPy's own loop (``numpy_loops``) for float operands: ufunc name.
UFUNC_OPS = {"log": "log", "log1p": "log1p", "exp": "exp", "log10": "log10", "log2": "log2",
             "expm1": "expm1", "pow": "power"}
_UNARY = {"c_log", "c_log1p", "c_exp", "neg", "invert", "log", "log1p", "exp", "log10", "log2", "expm1", "sqrt", "abs", "floor",
          "ceil", "sign", "isnan"}


def emit_stage(module: ir.Module, graph, plan, stage, name: str, block_rows: int | None = None):
    """Add the fused function of native ``stage`` to ``module``; returns the emitter (for its
    ``block_rows``) after emission."""
    em = StageEmitter(module, graph, plan, stage, name, block_rows)
    em.emit()
    return em


def _is_half(value) -> bool:
    return value is not None and np.ndim(value) == 0 and not isinstance(value, (bool, np.bool_)) \
        and float(value) == 0.5
