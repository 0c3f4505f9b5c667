"""NumPy's (and SciPy's) own element-wise loops, called from native kernels.

NumPy chooses the inner loop of a float ufunc by CPU when it is imported: with AVX-512,
float64 ``exp``/``log`` are NumPy's own SIMD code and ``log1p``, ``expm1``, ``log2``,
``log10`` and ``power`` come from SVML; with AVX2 some float32 loops are NumPy's own
approximations.  Those loops differ from the C library in the last bit for some inputs, so a
kernel calling ``log1p`` from libm is not NumPy's ``np.log1p`` on every machine.  Native
kernels therefore call the very loop NumPy calls: the function pointer (and its ``data``
argument) stored in the ufunc object for the operand type, found when the process starts.

Object code cannot hold such addresses (they change from process to process), so kernels read
them from one table, ``mloc_ufunc_table``, whose address is given to LLVM's dynamic linker
(``llvm.add_symbol``) before any object is linked: entry ``2*i`` is loop ``i``'s function,
``2*i + 1`` its data pointer, in the order of :data:`LOOPS` (append only: saved object code
indexes it).

A loop is used only after it has been checked on this process's NumPy: the ufunc object's
fields are read at the offsets of NumPy's public ``PyUFuncObject`` struct, its name and type
list must match, and the loop called on one element at a time must give exactly what the
ufunc gives on a whole array of test values (specials included).  A loop that fails any check
is reported as unavailable and the op is not compiled natively (it runs in NumPy on the
host), so a changed NumPy can cost speed, never a wrong value.
"""
from __future__ import annotations

import ctypes
import threading

import llvmlite.ir as ir
import numpy as np

F64 = ir.DoubleType()
F32 = ir.FloatType()
I8P = ir.IntType(8).as_pointer()
I64 = ir.IntType(64)

TABLE_SYMBOL = "mloc_ufunc_table_v1"

#: (module, ufunc name, operand type char); the position is the loop's index in the table.
LOOPS = (
    ("numpy", "log", "d"), ("numpy", "exp", "d"), ("numpy", "log1p", "d"),
    ("numpy", "log10", "d"), ("numpy", "log2", "d"), ("numpy", "expm1", "d"),
    ("numpy", "power", "d"),
    ("numpy", "log", "f"), ("numpy", "exp", "f"), ("numpy", "log1p", "f"),
    ("numpy", "log10", "f"), ("numpy", "log2", "f"), ("numpy", "expm1", "f"),
    ("numpy", "power", "f"),
    ("scipy.special", "expit", "d"),
)
_INDEX = {key: i for i, key in enumerate(LOOPS)}


class _UFuncHead(ctypes.Structure):
    """The leading fields of NumPy's ``PyUFuncObject`` (numpy/ufuncobject.h)."""
    _fields_ = [("ob_refcnt", ctypes.c_ssize_t), ("ob_type", ctypes.c_void_p),
                ("nin", ctypes.c_int), ("nout", ctypes.c_int), ("nargs", ctypes.c_int),
                ("identity", ctypes.c_int),
                ("functions", ctypes.POINTER(ctypes.c_void_p)),
                ("data", ctypes.POINTER(ctypes.c_void_p)),
                ("ntypes", ctypes.c_int), ("reserved1", ctypes.c_int),
                ("name", ctypes.c_char_p), ("types", ctypes.POINTER(ctypes.c_char))]


_LOOP_PROTO = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64),
                               ctypes.c_void_p)

_table = (ctypes.c_void_p * (2 * len(LOOPS)))()
_available: dict = {}
_lock = threading.Lock()
_registered = False


def _ufunc(module: str, name: str):
    if module == "numpy":
        return getattr(np, name)
    import scipy.special
    return getattr(scipy.special, name)


def _test_values(char: str) -> np.ndarray:
    rng = np.random.default_rng(20261206)
    x = np.concatenate([
        rng.uniform(-750.0, 750.0, 2000), rng.normal(0.0, 3.0, 2000),
        np.exp(rng.uniform(-700.0, 700.0, 2000)), -np.exp(rng.uniform(-700.0, 700.0, 500)),
        rng.uniform(-1.0, 1.0, 1000), rng.uniform(-1e-8, 1e-8, 300),
        [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 5e-324,
         709.78, -745.13, 88.7, -103.9, 1e308, -1e308]])
    return x.astype(np.float32 if char == "f" else np.float64)


def _find(module: str, name: str, char: str):
    """``(function, data)`` addresses of the ufunc's loop for ``char`` operands, checked."""
    uf = _ufunc(module, name)
    if not isinstance(uf, np.ufunc):
        return None
    head = _UFuncHead.from_address(id(uf))
    if (head.name or b"").decode() != name or head.nin != uf.nin or head.nout != 1 \
            or head.ntypes != uf.ntypes or head.nargs != uf.nin + 1:
        return None
    num = np.dtype(char).num
    # type resolution takes the first loop whose types match, as ``ufunc.types`` lists them
    sig = char * uf.nin + "->" + char
    try:
        i = uf.types.index(sig)
    except ValueError:
        return None
    codes = [ord(head.types[i * head.nargs + k]) for k in range(head.nargs)]
    if codes != [num] * head.nargs:
        return None
    func, data = head.functions[i], head.data[i] if head.data else None
    if not func:
        return None
    if not _agrees(uf, func, data, char):
        return None
    return func, data


def _agrees(uf, func, data, char) -> bool:
    """The loop equals the ufunc bit for bit on test values: called on the whole array (as
    NumPy calls it) and on one element at a time (as kernels call it), specials included."""
    with np.errstate(all="ignore"):
        x = _test_values(char)
        operands = [x] if uf.nin == 1 else [x, np.roll(x, 7)[::-1].copy()]
        if uf.nin == 2:  # powers: keep most results finite
            operands[1] = np.where(np.isfinite(operands[1]), operands[1] % 7.0 - 3.0,
                                   operands[1])
        want = uf(*operands)
    size = x.dtype.itemsize
    call = _LOOP_PROTO(func)
    steps = (ctypes.c_int64 * 3)(size, size, size)

    def run(ops, out):
        n = ctypes.c_int64(len(out))
        args = (ctypes.c_void_p * (len(ops) + 1))(*[a.ctypes.data for a in (*ops, out)])
        with np.errstate(all="ignore"):
            call(args, ctypes.byref(n), steps, data)

    whole = np.empty_like(want)
    run([np.ascontiguousarray(o) for o in operands], whole)
    if whole.tobytes() != want.tobytes():
        return False
    picks = np.concatenate([np.arange(len(x) - 18, len(x)), np.arange(0, len(x) - 18, 37)])
    one = np.empty(1, want.dtype)
    for r in picks:
        run([o[r:r + 1].copy() for o in operands], one)
        if one.tobytes() != want[r:r + 1].tobytes():
            return False
    return True


def available(module: str, name: str, char: str) -> bool:
    """Whether kernels can call this process's loop for ``name`` on ``char`` operands."""
    key = (module, name, char)
    if key not in _INDEX:
        return False
    with _lock:
        if key not in _available:
            found = _find(module, name, char)
            _available[key] = found is not None
            if found is not None:
                i = _INDEX[key]
                _table[2 * i], _table[2 * i + 1] = found
    return _available[key]


#: C library functions kernels call under their own names (``c_library_symbol``).
C_LIBRARY = ("log", "log1p", "exp", "pow")


def c_library_symbol(name: str) -> str:
    return f"mloc_c_{name}"


def register() -> None:
    """Give LLVM's dynamic linker the table's address and the C library aliases (once per
    process)."""
    global _registered
    if not _registered:
        import ctypes.util

        import llvmlite.binding as llvm
        llvm.add_symbol(TABLE_SYMBOL, ctypes.addressof(_table))
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        for name in C_LIBRARY:
            llvm.add_symbol(c_library_symbol(name),
                            ctypes.cast(getattr(libm, name), ctypes.c_void_p).value)
        _registered = True


def require_numpy_exp() -> None:
    """scikit-learn's softmax/exp transforms call NumPy's float64 exp loop: refuse to compile
    them when it could not be checked in this process (they would not be exact)."""
    if not available("numpy", "exp", "d"):
        raise NotImplementedError("NumPy's exp loop could not be checked in this process, so "
                                  "this scikit-learn transform cannot be compiled exactly")


def use_marker(index: int) -> str:
    """Name of the external ``i8`` global that tells the loader an object calls loop ``index``."""
    return f"mloc_ufunc_use_{index}"


def require(used_indices) -> None:
    """Fill the table for the loops a linked object calls; ``RuntimeError`` naming any that
    this process's NumPy/SciPy does not provide (the object must be recompiled here)."""
    missing = [".".join(LOOPS[i][:2]) + f"({LOOPS[i][2]})" for i in used_indices
               if not available(*LOOPS[i])]
    if missing:
        raise RuntimeError("the object code calls NumPy loops that this process's NumPy/SciPy "
                           "does not provide as expected: " + ", ".join(missing))


def call(builder: ir.IRBuilder, module: ir.Module, key, args) -> ir.Value:
    """``ufunc(*args)`` on scalars of ``key``'s type, through NumPy's loop, at the builder.

    The caller must have checked :func:`available` at compile time (else the op belongs on the
    host).  Emits (once per module) an internal helper ``mloc.ufunc.<name>.<char>`` that puts
    the operands in stack cells and calls the loop for one element."""
    m, name, char = key
    ty = F64 if char == "d" else F32
    fname = f"mloc.ufunc.{m}.{name}.{char}"
    fn = module.globals.get(fname)
    if fn is None:
        fn = _emit_helper(module, fname, _INDEX[key], ty, len(args))
    return builder.call(fn, args)


def _loop_pointers(b: ir.IRBuilder, module: ir.Module, index: int):
    """Load loop ``index``'s function (typed) and data pointers from the table."""
    table = module.globals.get(TABLE_SYMBOL)
    if table is None:
        table = ir.GlobalVariable(module, ir.ArrayType(I8P, 2 * len(LOOPS)), TABLE_SYMBOL)
        table.linkage = "external"
    if module.globals.get(use_marker(index)) is None:
        marker = ir.GlobalVariable(module, ir.IntType(8), use_marker(index))
        marker.initializer = ir.Constant(ir.IntType(8), 1)
        marker.global_constant = True
    zero = ir.Constant(ir.IntType(32), 0)
    func = b.load(b.gep(table, [zero, ir.Constant(ir.IntType(32), 2 * index)]))
    data = b.load(b.gep(table, [zero, ir.Constant(ir.IntType(32), 2 * index + 1)]))
    loop_ty = ir.FunctionType(ir.VoidType(), [I8P.as_pointer(), I64.as_pointer(),
                                              I64.as_pointer(), I8P])
    return b.bitcast(func, loop_ty.as_pointer()), data


def call_block(b: ir.IRBuilder, module: ir.Module, key, operands, out, steps, n) -> None:
    """One call of the loop for ``key`` over ``n`` elements: ``operands`` and ``out`` are
    pointers, ``steps`` their strides in bytes (0 broadcasts one value, as NumPy does)."""
    func, data = _loop_pointers(b, module, _INDEX[key])
    ptrs = list(operands) + [out]
    with b.goto_entry_block():
        argv = b.alloca(I8P, len(ptrs), name="uargv")
        dims = b.alloca(I64, name="un")
        stepv = b.alloca(I64, len(ptrs), name="usteps")
    for k, (p, step) in enumerate(zip(ptrs, steps)):
        b.store(b.bitcast(p, I8P), b.gep(argv, [I64(k)]))
        b.store(I64(step), b.gep(stepv, [I64(k)]))
    b.store(n, dims)
    b.call(func, [argv, dims, stepv, data])


def _emit_helper(module, fname, index, ty, nin) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * nin), fname)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    func, data = _loop_pointers(b, module, index)
    cells = [b.alloca(ty, name=f"cell{k}") for k in range(nin + 1)]
    for cell, arg in zip(cells, fn.args):
        b.store(arg, cell)
    argv = b.alloca(I8P, nin + 1, name="argv")
    for k, cell in enumerate(cells):
        b.store(b.bitcast(cell, I8P), b.gep(argv, [I64(k)]))
    dims = b.alloca(I64, name="n")
    b.store(I64(1), dims)
    steps = b.alloca(I64, nin + 1, name="steps")
    size = 8 if ty == F64 else 4
    for k in range(nin + 1):
        b.store(I64(size), b.gep(steps, [I64(k)]))
    b.call(func, [argv, dims, steps, data])
    b.ret(b.load(cells[-1]))
    return fn
