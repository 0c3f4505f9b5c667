"""Small structured-control-flow helpers over llvmlite for the text kernels.

Text kernels are loops within loops with early exits; writing them as raw basic blocks and phi
nodes is error-prone, so mutable values live in stack slots (``Var``, allocated in the entry
block) and loops are ``with`` blocks.  LLVM's SROA/mem2reg (run by ``codegen.target`` at -O3)
turns the slots back into registers.
"""
from __future__ import annotations

from contextlib import contextmanager

import llvmlite.ir as ir
import numpy as np

from .llvm_util import byte_global

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F64 = ir.DoubleType()


class Var:
    """A mutable local: ``v.get()``, ``v.set(x)``."""

    def __init__(self, fb: "FB", ty, init=None, name=""):
        self.fb = fb
        with fb.b.goto_entry_block():
            self.ptr = fb.b.alloca(ty, name=name)
        if init is not None:
            self.set(init)

    def get(self):
        return self.fb.b.load(self.ptr)

    def set(self, v):
        self.fb.b.store(v, self.ptr)

    def add(self, v):
        cur = self.get()
        self.set(self.fb.b.fadd(cur, v) if cur.type == F64 else self.fb.b.add(cur, v))


class FB:
    """Function builder: an IRBuilder plus loop, branch and constant-table helpers."""

    def __init__(self, module: ir.Module, fn: ir.Function):
        self.module = module
        self.fn = fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self._loops: list[tuple] = []

    def var(self, ty, init=None, name=""):
        return Var(self, ty, init, name)

    # -- control flow -----------------------------------------------------------------------
    @contextmanager
    def while_(self, cond_fn, name="loop"):
        """``while (cond_fn()) { body }``; ``brk()`` / ``cont()`` inside the body."""
        b = self.b
        head = b.append_basic_block(f"{name}.head")
        body = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.end")
        b.branch(head)
        b.position_at_end(head)
        b.cbranch(cond_fn(), body, done)
        b.position_at_end(body)
        self._loops.append((head, done))
        yield
        self._loops.pop()
        if not b.block.is_terminated:
            b.branch(head)
        b.position_at_end(done)

    @contextmanager
    def for_(self, start, stop, name="i", step=1):
        """``for (i = start; i < stop; i += step)`` over i64; yields the ``Var`` i."""
        i = self.var(I64, start if isinstance(start, ir.Value) else I64(start), name)
        stop = stop if isinstance(stop, ir.Value) else I64(stop)
        b = self.b
        head = b.append_basic_block(f"{name}.head")
        body = b.append_basic_block(f"{name}.body")
        latch = b.append_basic_block(f"{name}.latch")
        done = b.append_basic_block(f"{name}.end")
        b.branch(head)
        b.position_at_end(head)
        b.cbranch(b.icmp_signed("<", i.get(), stop), body, done)
        b.position_at_end(body)
        self._loops.append((latch, done))
        yield i
        self._loops.pop()
        if not b.block.is_terminated:
            b.branch(latch)
        b.position_at_end(latch)
        i.set(b.add(i.get(), I64(step)))
        b.branch(head)
        b.position_at_end(done)

    def brk(self):
        self.b.branch(self._loops[-1][1])
        self.b.position_at_end(self.b.append_basic_block("after.break"))

    def cont(self):
        self.b.branch(self._loops[-1][0])
        self.b.position_at_end(self.b.append_basic_block("after.continue"))

    @contextmanager
    def if_(self, cond):
        with self.b.if_then(cond):
            yield

    def ret(self, v):
        self.b.ret(v)
        self.b.position_at_end(self.b.append_basic_block("after.ret"))

    # -- helpers ----------------------------------------------------------------------------
    def load_at(self, base, idx, ty=None):
        v = self.b.load(self.b.gep(base, [idx]))
        return v

    def store_at(self, v, base, idx):
        self.b.store(v, self.b.gep(base, [idx]))

    def i64(self, v):
        return v if v.type == I64 else self.b.zext(v, I64)

    def table(self, name: str, arr: np.ndarray, elem) -> ir.Value:
        """A constant table in the object code (bytes, so large tables stay cheap to emit);
        returns an ``elem*`` to its first element."""
        gv = self.module.globals.get(name)
        if gv is None:
            if isinstance(elem, ir.DoubleType):
                width, dt = 8, "<f8"
            else:
                width = elem.width // 8
                dt = f"<u{width}" if width > 1 else np.uint8
            data = np.ascontiguousarray(arr).astype(dt, copy=False).tobytes() or bytes(width)
            gv = byte_global(self.module, name, data)
        return gv.bitcast(elem.as_pointer())  # a constant expression: valid in every block


def declare(module: ir.Module, name: str, ret, args):
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name)
    return fn
