"""Heads of scikit-learn models in fused kernels: one row's raw scores -> the method's result.

A converted scikit-learn model (``codegen.sklearn_model.SklearnModel``) computes a raw-score
row of ``K`` float64 values; its ``Head`` (``codegen.sklearn_heads``) turns the raw-score
matrix into ``predict`` / ``predict_proba`` / ``decision_function`` with scikit-learn's own
NumPy operations.  :func:`emit_head` emits the same computation per row, in the same order of
floating-point operations, calling NumPy's ``exp`` and SciPy's ``expit`` loops themselves
(``numpy_loops``; ``pipeline_models.exp_matches`` says whether they could be checked), so a
native head is bit-identical to the host head:

* softmax is ``sklearn.utils.extmath.softmax``: subtract the row max, ``exp``, divide by
  ``np.sum(axis=1)``, which adds a row with NumPy's pairwise summation (:func:`numpy_row_sum`);
* ``argmax`` returns the first maximum, a NaN counting as the maximum (``np.argmax``);
* ``np.clip`` keeps the value on ties and NaN.

Heads that are not emitted (libsvm's one-vs-one vote, labels of dtypes the kernel cannot
store, ...) run on the host: the stage materialises the raw scores and a :class:`HostHead`
finishes the value after the native stage.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from .pipeline_ops import F64, I8, I64, MEM

F32 = ir.FloatType()


class HostHead:
    """Finishes a natively scored model node on the host: ``head(raw scores)``."""

    def __init__(self, head, method: str, n_outputs: int, reason: str):
        self.head = head
        self.method = method
        self.n_outputs = n_outputs
        self.reason = reason

    def __call__(self, raw: np.ndarray):
        with np.errstate(all="ignore"):
            return np.asarray(self.head.apply(self.method, raw))

    def __repr__(self):
        return f"HostHead({self.head.estimator}.{self.method}: {self.reason})"


def numpy_row_sum(b: ir.IRBuilder, vals: list):
    """Sum of ``vals`` in the order of NumPy's ``np.sum(row_matrix, axis=1)`` on a C-contiguous
    float64 matrix: its pairwise summation (fewer than 8 terms: from 0.0, left to right; up to
    128: eight interleaved partial sums combined as a tree, then the remainder; more: split in
    halves rounded down to a multiple of 8).  Checked against NumPy 2.4 for 2..300 terms."""
    n = len(vals)
    if n < 8:
        acc = F64(0.0)
        for v in vals:
            acc = b.fadd(acc, v)
        return acc
    if n <= 128:
        r = list(vals[:8])
        i = 8
        while i < n - n % 8:
            r = [b.fadd(r[j], vals[i + j]) for j in range(8)]
            i += 8
        acc = b.fadd(b.fadd(b.fadd(r[0], r[1]), b.fadd(r[2], r[3])),
                     b.fadd(b.fadd(r[4], r[5]), b.fadd(r[6], r[7])))
        for v in vals[i:]:
            acc = b.fadd(acc, v)
        return acc
    n2 = n // 2
    n2 -= n2 % 8
    return b.fadd(numpy_row_sum(b, vals[:n2]), numpy_row_sum(b, vals[n2:]))


class HeadEmitter:
    """Emits one model node's head at the builder's position (see :func:`emit_head`)."""

    def __init__(self, ops, head, method: str, dtype: str, tag: str):
        self.ops = ops
        self.b = ops.b
        self.head = head
        self.method = method
        self.dtype = dtype
        self.tag = tag

    # -- scalar pieces --------------------------------------------------------------------
    def exp(self, x):
        """NumPy's float64 ``exp`` (its own loop: see ``numpy_loops``)."""
        return self.ops.ufunc("exp", F64, [x])

    def expit(self, x):
        """SciPy's ``expit`` (its own loop)."""
        return self.ops.ufunc("expit", F64, [x], module="scipy.special")

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def clip(self, x, lo: float, hi: float):
        """``np.clip``: the bound only when strictly beyond it (NaN and ties keep ``x``)."""
        b = self.b
        x = b.select(b.fcmp_ordered("<", x, F64(lo)), F64(lo), x)
        return b.select(b.fcmp_ordered(">", x, F64(hi)), F64(hi), x)

    def row_max(self, vals):
        """``np.max`` of a row: NaN if any value is NaN."""
        b = self.b
        m = vals[0]
        for v in vals[1:]:
            take = b.or_(self.isnan(v), b.fcmp_ordered(">", v, m))
            m = b.select(self.isnan(m), m, b.select(take, v, m))
        return m

    def argmax(self, vals):
        """``np.argmax`` of a row: the first maximum; the first NaN if there is one."""
        b = self.b
        best, idx = vals[0], I64(0)
        for k, v in enumerate(vals[1:], start=1):
            take = b.and_(b.not_(self.isnan(best)),
                          b.or_(b.fcmp_ordered(">", v, best), self.isnan(v)))
            best = b.select(take, v, best)
            idx = b.select(take, I64(k), idx)
        return idx

    def label(self, idx):
        """``classes_[idx]`` from a constant table in the node's dtype."""
        b, module = self.b, self.ops.module
        classes = np.asarray(self.head.classes)
        elem = MEM[self.dtype]
        name = f"{self.tag}.classes"
        gv = module.globals.get(name)
        if gv is None:
            ty = ir.ArrayType(elem, len(classes))
            if elem == I64:
                init = [I64(int(v)) for v in classes]
            elif elem == I8:
                init = [I8(int(bool(v))) for v in classes]
            else:
                init = [elem(float(v)) for v in classes]
            gv = ir.GlobalVariable(module, ty, name)
            gv.initializer = ir.Constant(ty, init)
            gv.global_constant = True
            gv.linkage = "internal"
        ptr = b.gep(b.bitcast(gv, elem.as_pointer()), [idx])
        return self.ops.load(ptr, self.dtype)

    def normalise(self, probs):
        """scikit-learn's one-vs-rest normalisation: divide by the row sum; an all-zero row
        becomes uniform."""
        b = self.b
        total = numpy_row_sum(b, probs)
        zero = b.fcmp_ordered("==", total, F64(0.0))
        total = b.select(zero, F64(float(len(probs))), total)
        return [b.fdiv(b.select(zero, F64(1.0), p), total) for p in probs]

    # -- methods --------------------------------------------------------------------------
    def emit(self, raw: list) -> list:
        method, head = self.method, self.head
        if method == "decision_function":
            return [raw[0]] if len(raw) == 1 else list(raw)
        if method == "predict":
            return self.predict(raw)
        return self.predict_proba(raw)

    def predict(self, raw):
        b, head = self.b, self.head
        if not head.is_classifier:
            out = list(raw)
            return [self.exp(v) for v in out] if head.link == "exp" else out
        if head.rule == "logit" or (head.rule == "ovr" and len(raw) == 1):
            cmp = ">=" if head.predict_ge else ">"
            idx = b.zext(b.fcmp_ordered(cmp, raw[0], F64(0.0)), I64)
        else:
            idx = self.argmax(raw)
        return [self.label(idx)]

    def predict_proba(self, raw):
        b, head = self.b, self.head
        K = len(raw)
        if head.rule == "proba":
            return list(raw)
        if head.rule == "multinomial":
            m = self.row_max(raw)
            es = [self.exp(b.fsub(v, m)) for v in raw]
            total = numpy_row_sum(b, es)
            return [b.fdiv(e, total) for e in es]
        if head.rule == "logit" or (head.proba == "ovr_logit" and K == 1):
            d = raw[0]
            if head.scale != 1.0:
                d = b.fmul(F64(float(head.scale)), d)
            p = self.expit(d)
            return [b.fsub(F64(1.0), p), p]
        if head.proba == "ovr_logit":
            return self.normalise([self.expit(v) for v in raw])
        if head.proba == "modified_huber":
            probs = [b.fdiv(b.fadd(self.clip(v, -1.0, 1.0), F64(1.0)), F64(2.0)) for v in raw]
            if K == 1:
                return [b.fsub(F64(1.0), probs[0]), probs[0]]
            return self.normalise(probs)
        raise AssertionError(f"no native head for {head.rule}/{head.proba}")


def emit_head(ops, head, method: str, raw: list, dtype: str, tag: str) -> list:
    """LLVM values of one row's result of ``method`` (``dtype`` registers: float64 values or
    class labels) from the row's raw scores ``raw`` (float64 registers); ``ops`` is the
    stage's ``pipeline_ops.Ops``; ``tag`` names the constant tables."""
    return HeadEmitter(ops, head, method, dtype, tag).emit(raw)
