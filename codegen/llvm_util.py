"""Small llvmlite building blocks shared by the kernel emitters."""
from __future__ import annotations

from contextlib import contextmanager

import llvmlite.ir as ir

I8 = ir.IntType(8)
I64 = ir.IntType(64)


def byte_global(module: ir.Module, name: str, data: bytes, align: int = 16) -> ir.GlobalVariable:
    """An internal constant ``[n x i8]`` holding ``data`` (one byte at least, so it has an
    address); the module's existing global of that name when there is one.  Tables go in as one
    byte string: one LLVM constant per element costs seconds to build and parse for big ones."""
    gv = module.globals.get(name)
    if gv is None:
        ty = ir.ArrayType(I8, max(len(data), 1))
        gv = ir.GlobalVariable(module, ty, name)
        gv.initializer = ir.Constant(ty, bytearray(data or b"\0"))
        gv.global_constant = True
        gv.linkage = "internal"
        gv.align = align
    return gv


@contextmanager
def for_range(b: ir.IRBuilder, start, stop, name: str, step=1):
    """``for (i = start; i < stop; i += step)`` over i64; yields ``i`` with the builder inside
    the body, and leaves it after the loop."""
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.end")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, done)
    b.position_at_end(body)
    yield i
    i.add_incoming(b.add(i, I64(step)), b.block)
    b.branch(head)
    b.position_at_end(done)
