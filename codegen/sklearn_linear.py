"""Linear scikit-learn models: data model, converters, NumPy reference, llvmlite emission.

Data model
----------
A :class:`LinearModel` computes, for each row ``x`` and output ``k``::

    acc = 0.0
    for j in range(n_features):          # in feature order
        acc = acc + x[j] * coef[k, j]    # a rounded product, then a rounded sum (no FMA)
    raw[k] = acc + intercept[k]

and then ``transform`` (``identity``, ``sigmoid``: ``1 / (1 + exp(-param * raw))``, ``exp``,
``softmax``: max-subtract, ``exp``, sum in order, divide) for native use; the converters leave
the public outputs to a :class:`~codegen.sklearn_heads.Head`.

Exactness
---------
scikit-learn computes ``X @ coef_.T + intercept_`` with BLAS (OpenBLAS here), whose kernels
split the dot product over SIMD lanes and use fused multiply-adds, in an order that depends on
the CPU and the matrix shape.  The order above is not that order, so decision values agree with
scikit-learn's to a rounding-error bound, not bit for bit: with ``s = sum_j |x[j] coef[k, j]|
+ |intercept[k]|`` both results lie within ``(n_features + 1) * eps * s`` of the exact value
(the standard bound for any summation order, ``eps = 2**-53``), so they differ by at most
``2 * (n_features + 1) * eps * s`` (:func:`decision_tolerance`).  ``SVC(kernel="linear")``
sums over support vectors instead of features; its tolerance uses ``|dual_coef_| @ |SV| @ |x|``
in place of ``s``.  Class labels agree wherever the decision is farther than that from the
class boundary.  The NumPy reference :func:`reference_raw` follows the data model's order
exactly, so the emitted kernel must equal it bit for bit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from .sklearn_heads import Head
from .llvm_util import for_range

F64 = ir.DoubleType()
I64 = ir.IntType(64)
F64P = F64.as_pointer()
KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [F64P, I64, I64, F64P])
TRANSFORMS = ("identity", "sigmoid", "exp", "softmax")
EPS = 2.0 ** -53


@dataclass
class LinearModel:
    """``raw = X @ coef.T + intercept`` in the documented order, then ``transform``."""

    coef: np.ndarray  # float64 (n_outputs, n_features)
    intercept: np.ndarray  # float64 (n_outputs,)
    transform: str = "identity"
    transform_param: float = 1.0
    source: str = ""

    def __post_init__(self):
        self.coef = np.ascontiguousarray(np.atleast_2d(np.asarray(self.coef, np.float64)))
        k = self.coef.shape[0]
        self.intercept = np.ascontiguousarray(
            np.broadcast_to(np.asarray(self.intercept, np.float64), (k,)))
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; known: {TRANSFORMS}")

    @property
    def n_features(self) -> int:
        return self.coef.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.coef.shape[0]

    def digest(self) -> str:
        h = hashlib.sha256(self.coef.tobytes())
        h.update(self.intercept.tobytes())
        h.update(f"{self.transform}{self.transform_param}".encode())
        return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Reference


def reference_raw(lin: LinearModel, X: np.ndarray) -> np.ndarray:
    """Raw scores in the data model's order (vectorised over rows, sequential over features)."""
    X = np.asarray(X, np.float64)
    out = np.empty((len(X), lin.n_outputs))
    with np.errstate(all="ignore"):
        for k in range(lin.n_outputs):
            acc = np.zeros(len(X))
            for j in range(lin.n_features):
                acc = acc + X[:, j] * lin.coef[k, j]
            out[:, k] = acc + lin.intercept[k]
    return out


def reference_transform(lin: LinearModel, raw: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if lin.transform == "identity":
            return raw.copy()
        if lin.transform == "sigmoid":  # SciPy's expit (the C library's exp)
            from scipy.special import expit
            return expit(lin.transform_param * raw)
        if lin.transform == "exp":
            return np.exp(raw)
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        total = np.zeros(len(raw))
        for k in range(raw.shape[1]):
            total = total + e[:, k]
        return e / total[:, None]


def decision_tolerance(lin: LinearModel, X: np.ndarray) -> np.ndarray:
    """Per row and output: how far a BLAS result may be from the data model's result."""
    X = np.asarray(X, np.float64)
    with np.errstate(all="ignore"):
        s = np.abs(X) @ np.abs(lin.coef).T + np.abs(lin.intercept)
    return 2 * (lin.n_features + 1) * EPS * s


# ---------------------------------------------------------------------------------------------
# Converters


def _fitted(model, attr="coef_"):
    if not hasattr(model, attr):
        raise ValueError(f"{type(model).__name__} is not fitted yet; call fit() first")


def _classes(model):
    return np.asarray(model.classes_)


def linear_from_sklearn(model) -> tuple[LinearModel, Head]:
    """``(LinearModel, Head)`` for a fitted linear scikit-learn estimator.

    Supported: ``LinearRegression``, ``Ridge``, ``Lasso``, ``ElasticNet``, ``SGDRegressor``,
    ``LogisticRegression``, ``RidgeClassifier``, ``LinearSVC``, ``SGDClassifier``,
    ``SVC(kernel="linear")``.
    """
    from sklearn import linear_model as lm
    from sklearn.svm import SVC, LinearSVC

    name = type(model).__name__
    if isinstance(model, SVC):
        return _svc(model)
    regressors = (lm.LinearRegression, lm.Ridge, lm.Lasso, lm.ElasticNet, lm.SGDRegressor)
    classifiers = (lm.LogisticRegression, lm.RidgeClassifier, LinearSVC, lm.SGDClassifier)
    if not isinstance(model, regressors + classifiers):
        raise ValueError(f"{name} is not a supported linear model")
    _fitted(model)
    coef = np.asarray(model.coef_, np.float64)
    if hasattr(coef, "toarray"):  # pragma: no cover - sparse coef_ after sparsify()
        coef = coef.toarray()
    intercept = np.asarray(model.intercept_, np.float64)
    if isinstance(model, regressors):
        lin = LinearModel(coef, intercept, source=name)
        # a 2-D coef_ (multi-target fit) keeps 2-D predictions even with one target
        return lin, Head("values", name, squeeze=coef.ndim == 1)
    classes = _classes(model)
    if isinstance(model, lm.LogisticRegression):
        if len(classes) <= 2:
            return (LinearModel(coef, intercept, "sigmoid", source=name),
                    Head("logit", name, classes))
        return LinearModel(coef, intercept, "softmax", source=name), Head("multinomial", name, classes)
    proba = None
    if isinstance(model, lm.SGDClassifier):
        proba = {"log_loss": "ovr_logit", "modified_huber": "modified_huber"}.get(model.loss)
    return LinearModel(coef, intercept, source=name), Head("ovr", name, classes, proba=proba)


def _svc(model) -> tuple[LinearModel, Head]:
    name = type(model).__name__
    if model.kernel != "linear":
        raise ValueError(f"SVC(kernel={model.kernel!r}) is not supported; mloc compiles "
                         "linear-kernel SVCs only")
    _fitted(model, "support_vectors_")
    classes = _classes(model)
    coef = np.asarray(model.coef_, np.float64)
    if hasattr(coef, "toarray"):
        coef = coef.toarray()
    lin = LinearModel(coef, model.intercept_, source=name)
    if len(classes) == 2:
        # libsvm predicts the second class when its (sign-flipped) decision value is >= 0
        return lin, Head("ovr", name, classes, predict_ge=True)
    return lin, Head("svc_ovo", name, classes, ovo_shape=model.decision_function_shape == "ovo",
                     break_ties=bool(model.break_ties))


# ---------------------------------------------------------------------------------------------
# Emission


def _libm(module: ir.Module, name: str) -> ir.Function:
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(F64, [F64]), name)
    return fn


def _emit_transform(b: ir.IRBuilder, module, lin: LinearModel, vals: list) -> list:
    if lin.transform == "identity":
        return vals
    if lin.transform == "sigmoid":  # SciPy's expit: 1 / (1 + exp(-x)) with the C library's exp
        exp = _libm(module, "exp")
        p = F64(-lin.transform_param)
        return [b.fdiv(F64(1.0), b.fadd(F64(1.0), b.call(exp, [b.fmul(p, v)]))) for v in vals]
    # scikit-learn's exp link and softmax call NumPy's exp: its own loop (numpy_loops)
    from . import numpy_loops
    numpy_loops.require_numpy_exp()
    key = ("numpy", "exp", "d")
    if lin.transform == "exp":
        return [numpy_loops.call(b, module, key, [v]) for v in vals]
    m = vals[0]
    for v in vals[1:]:
        m = b.select(b.fcmp_ordered("<", m, v), v, m)
    es = [numpy_loops.call(b, module, key, [b.fsub(v, m)]) for v in vals]
    total = F64(0.0)
    for e in es:
        total = b.fadd(total, e)
    return [b.fdiv(e, total) for e in es]


def emit_linear(module: ir.Module, lin: LinearModel, name: str, raw_score: bool = True) -> ir.Function:
    """Add ``void name(const double* X, int64 n_rows, int64 row_stride, double* out)``.

    Same calling convention as :func:`codegen.emit_trees.emit_ensemble`: row ``i`` is
    ``X[i*row_stride : i*row_stride + n_features]``; its ``n_outputs`` results go to
    ``out[i*n_outputs:]`` (raw scores, or transformed when ``raw_score`` is false).  The dot
    product is a loop over a constant coefficient array; LLVM keeps its order because the
    instructions carry no fast-math flags (no reassociation, no FMA contraction).
    """
    K, F = lin.n_outputs, lin.n_features
    tag = f"mloc.linear.{lin.digest()}"
    coef = module.globals.get(f"{tag}.coef")
    if coef is None:
        ty = ir.ArrayType(F64, K * F)
        coef = ir.GlobalVariable(module, ty, f"{tag}.coef")
        coef.initializer = ir.Constant(ty, [float(v) for v in lin.coef.ravel()])
        coef.global_constant = True
        coef.linkage = "internal"
        coef.align = 16
    fn = ir.Function(module, KERNEL_TYPE, name)
    X, n_rows, stride, out = fn.args
    X.name, n_rows.name, stride.name, out.name = "X", "n_rows", "row_stride", "out"
    for a in (X, out):
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    w = b.bitcast(coef, F64P)
    with for_range(b, I64(0), n_rows, "row") as r:
        x_row = b.gep(X, [b.mul(r, stride)])
        vals = []
        for k in range(K):
            pre = b.block
            head = b.append_basic_block(f"dot{k}.head")
            body = b.append_basic_block(f"dot{k}.body")
            done = b.append_basic_block(f"dot{k}.end")
            b.branch(head)
            b.position_at_end(head)
            j = b.phi(I64, name=f"j{k}")
            acc = b.phi(F64, name=f"acc{k}")
            j.add_incoming(I64(0), pre)
            acc.add_incoming(F64(0.0), pre)
            b.cbranch(b.icmp_signed("<", j, I64(F)), body, done)
            b.position_at_end(body)
            x = b.load(b.gep(x_row, [j]))
            wk = b.load(b.gep(w, [b.add(I64(k * F), j)]))
            acc2 = b.fadd(acc, b.fmul(x, wk))
            j.add_incoming(b.add(j, I64(1)), body)
            acc.add_incoming(acc2, body)
            b.branch(head)
            b.position_at_end(done)
            vals.append(b.fadd(acc, F64(float(lin.intercept[k]))))
        if not raw_score:
            vals = _emit_transform(b, module, lin, vals)
        dst = b.gep(out, [b.mul(r, I64(K))])
        for k, v in enumerate(vals):
            b.store(v, b.gep(dst, [I64(k)]))
    b.ret_void()
    return fn
