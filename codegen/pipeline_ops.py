"""Scalar lowering of the element-wise ops with NumPy's exact semantics.

Each function takes LLVM values of one row and returns one LLVM value.  Dtypes are the IR's
``bool`` (``i1`` in registers, one byte in memory, as NumPy stores it), ``i64``, ``f32`` and
``f64``.  Operands are converted to the *loop dtype* NumPy picks for the ufunc (found with
``ufunc.resolve_dtypes``, Python scalars as weak types, as NEP 50 says) before the op.

Where NumPy's behaviour is not plain IEEE/LLVM arithmetic it is written out here:

* float -> int casts: NaN, +-inf and values outside int64 give INT64_MIN (x86-64's
  ``cvttsd2si`` result, which NumPy's cast loops return); LLVM's ``fptosi`` would be poison.
* integer ``//`` and ``%`` by zero give 0; ``INT64_MIN // -1`` gives INT64_MIN and
  ``INT64_MIN % -1`` gives 0; results follow Python's floor convention.
* float ``//`` and ``%`` follow NumPy's ``npy_divmod``: ``fmod``, then the sign fix-up, then the
  quotient snapped to an integer; a zero divisor gives ``a / b`` and ``fmod(a, b)``.
* integer ``**``: exponentiation by squaring with wrap-around; a negative exponent makes the
  kernel report an error (NumPy raises ``ValueError``).
* ``minimum``/``maximum`` on floats: NaN in either operand propagates (the first NaN), and of
  two equal values (``-0.0`` and ``0.0``) the second operand is returned, as NumPy does here.
* ``sign``: NaN stays NaN, zeros give +0.0.
* ``round(x, d)``: ``rint(x * 10**d) / 10**d`` for ``d >= 0`` and ``rint(x / 10**-d) * 10**-d``
  otherwise, in the value's dtype; integers with ``d >= 0`` are unchanged, integers with
  ``d < 0`` go through float64 and back.
* ``log``, ``exp``, ``log1p``, ``log10``, ``log2``, ``expm1`` and float ``**`` call NumPy's own
  inner loop for the operand type, one element at a time (``numpy_loops``): NumPy picks those
  loops by CPU (its own SIMD code, SVML on AVX-512), and the C library differs from them in
  the last bit for some inputs.  So they match NumPy bit for bit on every machine, float32
  included.  ``sqrt`` is exact everywhere.
"""
from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np

from . import numpy_loops

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()

REG = {"bool": I1, "i64": I64, "f32": F32, "f64": F64}
MEM = {"bool": I8, "i64": I64, "f32": F32, "f64": F64}
FLOATS = ("f32", "f64")
INT64_MIN = -(2 ** 63)

_IR_OF_NUMPY = {np.dtype(bool): "bool", np.dtype(np.int64): "i64", np.dtype(np.float32): "f32",
                np.dtype(np.float64): "f64"}
_UFUNC = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
          "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "lt": np.less,
          "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
          "ne": np.not_equal, "bitand": np.bitwise_and, "bitor": np.bitwise_or,
          "bitxor": np.bitwise_xor, "minimum": np.minimum, "maximum": np.maximum,
          "neg": np.negative, "invert": np.invert, "log": np.log, "log1p": np.log1p,
          "exp": np.exp, "log10": np.log10, "log2": np.log2, "expm1": np.expm1,
          "sqrt": np.sqrt, "abs": np.absolute, "floor": np.floor,
          "ceil": np.ceil, "sign": np.sign, "isnan": np.isnan}


class Unsupported(ValueError):
    """The op/dtype combination has no native lowering (the planner runs it on the host)."""


def _resolve_arg(graph, nid, consts):
    if nid in consts:
        v = consts[nid]
        if type(v) is bool:
            return np.dtype(bool)
        if type(v) in (int, float):
            return type(v)  # a Python scalar: a weak type (NEP 50)
        return np.asarray(v).dtype
    from mloc_ir.types import numpy_dtype
    return numpy_dtype(graph[nid].type.dtype)


def loop_dtypes(graph, node, consts) -> list[str]:
    """IR dtypes the operands are converted to before ``node``'s op (NumPy's ufunc loop)."""
    op = node.op
    if op in _UFUNC:
        ins = tuple(_resolve_arg(graph, a, consts) for a in node.args)
        try:
            dts = _UFUNC[op].resolve_dtypes(ins + (None,))
        except Exception as exc:  # noqa: BLE001 -- no loop: NumPy would raise too
            raise Unsupported(f"no NumPy loop for {op}{ins}: {exc}") from None
        try:
            return [_IR_OF_NUMPY[np.dtype(d)] for d in dts[:-1]]
        except KeyError:
            raise Unsupported(f"NumPy runs {op} in {dts}") from None
    if op in ("c_log", "c_log1p", "c_exp"):  # Python's math: float64 operands
        return ["f64"]
    if op == "c_pow":
        return ["f64", "f64"]
    if op == "where":
        return ["bool", node.type.dtype, node.type.dtype]
    if op in ("cast", "round", "nan_to_num"):
        return [graph[node.args[0]].type.dtype if node.args[0] not in consts
                else _IR_OF_NUMPY.get(np.asarray(consts[node.args[0]]).dtype, "f64")]
    raise Unsupported(f"{op} is not element-wise")


def constant(value, dtype: str) -> ir.Constant:
    """``value`` converted to ``dtype`` the way NumPy converts a scalar operand."""
    with np.errstate(all="ignore"):
        v = np.array(value).astype({"bool": bool, "i64": np.int64, "f32": np.float32,
                                    "f64": np.float64}[dtype])
    if dtype == "bool":
        return I1(int(bool(v)))
    if dtype == "i64":
        return I64(int(v))
    return REG[dtype](float(v))


# ---------------------------------------------------------------------------------------------


class Ops:
    """Lowers element-wise ops at the builder's position; ``status`` is an ``i32*`` error flag."""

    def __init__(self, builder: ir.IRBuilder, module: ir.Module, status):
        self.b = builder
        self.module = module
        self.status = status

    # -- helpers ------------------------------------------------------------------------------
    def intrinsic(self, name, ty, n=1):
        n = 2 if name == "llvm.copysign" else n
        return self.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [ty] * n))

    def c_library(self, name, nargs):
        """The C library's float64 ``name`` under a name LLVM does not know as a library call:
        it would rewrite ``pow(x, 2.0)`` as ``x * x``, which is not glibc's ``pow`` for every
        ``x`` (``numpy_loops.register`` gives the linker its address)."""
        cname = numpy_loops.c_library_symbol(name)
        fn = self.module.globals.get(cname)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(F64, [F64] * nargs), cname)
        return fn

    def ufunc(self, name, ty, args, module="numpy"):
        """NumPy's own loop for ``name`` (see ``numpy_loops``): the C library gives other last
        bits than NumPy's SIMD/SVML loops on some CPUs."""
        key = (module, name, "d" if ty == F64 else "f")
        if not numpy_loops.available(*key):
            raise Unsupported(f"{module}.{name} on {'f64' if ty == F64 else 'f32'}: NumPy's "
                              "loop could not be checked in this process")
        return numpy_loops.call(self.b, self.module, key, args)

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def load(self, ptr, dtype):
        v = self.b.load(ptr)
        return self.b.icmp_unsigned("!=", v, I8(0)) if dtype == "bool" else v

    def store(self, v, ptr, dtype):
        self.b.store(self.b.zext(v, I8) if dtype == "bool" else v, ptr)

    # -- casts --------------------------------------------------------------------------------
    def convert(self, v, src: str, dst: str):
        """``astype`` semantics (see the module docstring for float -> int)."""
        b = self.b
        if src == dst:
            return v
        if src == "bool":
            return b.zext(v, I64) if dst == "i64" else b.uitofp(v, REG[dst])
        if src == "i64":
            if dst == "bool":
                return b.icmp_signed("!=", v, I64(0))
            return b.sitofp(v, REG[dst])
        # float source
        if dst == "bool":
            return b.fcmp_unordered("!=", v, REG[src](0.0))
        if dst in FLOATS:
            return b.fpext(v, F64) if dst == "f64" else b.fptrunc(v, F32)
        ty = REG[src]
        ok = b.and_(b.fcmp_ordered(">=", v, ty(-2.0 ** 63)), b.fcmp_ordered("<", v, ty(2.0 ** 63)))
        safe = b.select(ok, v, ty(0.0))
        return b.select(ok, b.fptosi(safe, I64), I64(INT64_MIN))

    # -- binary -------------------------------------------------------------------------------
    def binary(self, op: str, x, y, dt: str):
        """``op`` on two operands already in loop dtype ``dt``."""
        b = self.b
        fl = dt in FLOATS
        if op in ("lt", "le", "gt", "ge", "eq", "ne"):
            sym = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}[op]
            if fl:
                return b.fcmp_unordered(sym, x, y) if op == "ne" else b.fcmp_ordered(sym, x, y)
            return b.icmp_unsigned(sym, x, y) if dt == "bool" else b.icmp_signed(sym, x, y)
        if dt == "bool":
            if op in ("add", "maximum", "bitor"):
                return b.or_(x, y)
            if op in ("mul", "minimum", "bitand"):
                return b.and_(x, y)
            if op == "bitxor":
                return b.xor(x, y)
            raise Unsupported(f"{op} on bool")
        if op in ("add", "sub", "mul"):
            name = {"add": "add", "sub": "sub", "mul": "mul"}[op]
            return getattr(b, ("f" + name) if fl else name)(x, y)
        if op == "div":
            if not fl:
                raise Unsupported("true division in an integer loop")
            return b.fdiv(x, y)
        if op in ("bitand", "bitor", "bitxor"):
            if fl:
                raise Unsupported(f"{op} on floats")
            return {"bitand": b.and_, "bitor": b.or_, "bitxor": b.xor}[op](x, y)
        if op in ("minimum", "maximum"):
            if not fl:
                pick = b.icmp_signed("<" if op == "minimum" else ">", x, y)
                return b.select(pick, x, y)
            pick = b.fcmp_ordered("<" if op == "minimum" else ">", x, y)
            return b.select(self.isnan(x), x, b.select(self.isnan(y), y, b.select(pick, x, y)))
        if op in ("floordiv", "mod"):
            return self.float_divmod(op, x, y, REG[dt]) if fl else self.int_divmod(op, x, y)
        if op == "c_pow":
            return b.call(self.c_library("pow", 2), [x, y])
        if op == "pow":
            if fl:
                return self.ufunc("power", REG[dt], [x, y])
            return self.int_pow(x, y)
        raise Unsupported(f"binary op {op}")

    def int_divmod(self, op, a, d):
        b = self.b
        zero = b.icmp_signed("==", d, I64(0))
        ovf = b.and_(b.icmp_signed("==", a, I64(INT64_MIN)), b.icmp_signed("==", d, I64(-1)))
        safe = b.select(b.or_(zero, ovf), I64(1), d)
        q = b.sdiv(a, safe)
        r = b.srem(a, safe)
        # C truncates; Python floors: fix up when the remainder's sign differs from the divisor's
        fix = b.and_(b.icmp_signed("!=", r, I64(0)), b.icmp_signed("<", b.xor(r, d), I64(0)))
        if op == "floordiv":
            res = b.select(fix, b.sub(q, I64(1)), q)
            return b.select(zero, I64(0), b.select(ovf, I64(INT64_MIN), res))
        res = b.select(fix, b.add(r, d), r)
        return b.select(b.or_(zero, ovf), I64(0), res)

    def float_divmod(self, op, a, d, ty):
        b = self.b
        copysign = self.intrinsic("llvm.copysign", ty)
        floor = self.intrinsic("llvm.floor", ty)
        zero = ty(0.0)
        mod = b.frem(a, d)
        d_zero = b.fcmp_ordered("==", d, zero)
        div = b.fdiv(b.fsub(a, mod), d)
        mod_nz = b.fcmp_unordered("!=", mod, zero)
        signs_differ = b.xor(b.fcmp_ordered("<", d, zero), b.fcmp_ordered("<", mod, zero))
        fix = b.and_(mod_nz, signs_differ)
        mod2 = b.select(fix, b.fadd(mod, d), mod)
        div2 = b.select(fix, b.fsub(div, ty(1.0)), div)
        mod3 = b.select(mod_nz, mod2, b.call(copysign, [zero, d]))
        if op == "mod":
            return b.select(d_zero, mod, mod3)
        fl = b.call(floor, [div2])
        snapped = b.select(b.fcmp_ordered(">", b.fsub(div2, fl), ty(0.5)), b.fadd(fl, ty(1.0)), fl)
        q = b.select(b.fcmp_unordered("!=", div2, zero), snapped,
                     b.call(copysign, [zero, b.fdiv(a, d)]))
        return b.select(d_zero, b.fdiv(a, d), q)

    def int_pow(self, base, exp):
        b = self.b
        neg = b.icmp_signed("<", exp, I64(0))
        with b.if_then(neg, likely=False):
            b.store(I32(1), self.status)
        e0 = b.select(neg, I64(0), exp)
        pre = b.block
        head = b.append_basic_block("ipow.head")
        body = b.append_basic_block("ipow.body")
        done = b.append_basic_block("ipow.done")
        b.branch(head)
        b.position_at_end(head)
        acc = b.phi(I64)
        bb = b.phi(I64)
        e = b.phi(I64)
        acc.add_incoming(I64(1), pre)
        bb.add_incoming(base, pre)
        e.add_incoming(e0, pre)
        b.cbranch(b.icmp_signed(">", e, I64(0)), body, done)
        b.position_at_end(body)
        odd = b.trunc(e, I1)
        acc.add_incoming(b.select(odd, b.mul(acc, bb), acc), body)
        bb.add_incoming(b.mul(bb, bb), body)
        e.add_incoming(b.ashr(e, I64(1)), body)
        b.branch(head)
        b.position_at_end(done)
        return b.select(neg, I64(0), acc)

    # -- unary --------------------------------------------------------------------------------
    def unary(self, op: str, x, dt: str):
        b = self.b
        fl = dt in FLOATS
        ty = REG[dt]
        if op == "neg":
            if dt == "bool":
                raise Unsupported("negative of bool")
            return b.fneg(x) if fl else b.sub(I64(0), x)
        if op == "invert":
            if fl:
                raise Unsupported("invert of float")
            return b.xor(x, ty(-1) if dt == "i64" else I1(1))
        if op == "abs":
            if fl:
                return b.call(self.intrinsic("llvm.fabs", ty), [x])
            if dt == "bool":
                return x
            return b.select(b.icmp_signed("<", x, I64(0)), b.sub(I64(0), x), x)
        if op in ("floor", "ceil"):
            return b.call(self.intrinsic(f"llvm.{op}", ty), [x]) if fl else x
        if op == "isnan":
            return self.isnan(x) if fl else I1(0)
        if op == "sign":
            if dt == "bool":
                raise Unsupported("sign of bool")
            if not fl:
                return b.sub(b.zext(b.icmp_signed(">", x, I64(0)), I64),
                             b.zext(b.icmp_signed("<", x, I64(0)), I64))
            s = b.select(b.fcmp_ordered(">", x, ty(0.0)), ty(1.0),
                         b.select(b.fcmp_ordered("<", x, ty(0.0)), ty(-1.0), ty(0.0)))
            return b.select(self.isnan(x), x, s)
        if op == "sqrt":
            if not fl:
                raise Unsupported("sqrt in an integer loop")
            return b.call(self.intrinsic("llvm.sqrt", ty), [x])
        if op in ("log", "exp", "log1p", "log10", "log2", "expm1"):
            if not fl:
                raise Unsupported(f"{op} in an integer loop")
            return self.ufunc(op, ty, [x])
        if op in ("c_log", "c_log1p", "c_exp"):
            return b.call(self.c_library(op[2:], 1), [x])
        raise Unsupported(f"unary op {op}")

    def round(self, x, dt: str, decimals: int):
        b = self.b
        if dt not in FLOATS:
            if decimals >= 0 or dt == "bool":
                if dt == "bool":
                    raise Unsupported("round of bool")
                return x
            return self.convert(self.round(self.convert(x, dt, "f64"), "f64", decimals), "f64", dt)
        ty = REG[dt]
        rint = self.intrinsic("llvm.rint", ty)
        with np.errstate(all="ignore"):
            scale = constant(10.0 ** abs(decimals) if abs(decimals) <= 308 else math.inf, dt)
        if decimals >= 0:
            return b.fdiv(b.call(rint, [b.fmul(x, scale)]), scale)
        return b.fmul(b.call(rint, [b.fdiv(x, scale)]), scale)

    def nan_to_num(self, x, dt: str, nan, posinf, neginf):
        if dt not in FLOATS:
            return x
        b = self.b
        info = np.finfo(np.float32 if dt == "f32" else np.float64)
        nan_c = constant(nan, dt)
        pos_c = constant(info.max if posinf is None else posinf, dt)
        neg_c = constant(info.min if neginf is None else neginf, dt)
        ty = REG[dt]
        out = b.select(self.isnan(x), nan_c, x)
        out = b.select(b.fcmp_ordered("==", x, ty(math.inf)), pos_c, out)
        return b.select(b.fcmp_ordered("==", x, ty(-math.inf)), neg_c, out)
