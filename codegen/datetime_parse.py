"""A native parser for strict ISO timestamp strings (``to_datetime`` host nodes).

``parse_iso(strings)`` is ``runtime.datetimes.parse_iso`` in native code: for a batch whose
strings all have the layout of the first one -- ``YYYY-MM-DD HH:MM:SS`` or with ``T``, plus
optionally ``.`` and 1-6 fraction digits -- with every field in range (year 1000-9999, the
day within its month), it returns the ``datetime64[us]`` array pandas returns; for any other
batch it returns None and the caller gives the batch to pandas.

The kernel reads the object array's ``str`` objects in place (``text_cpython.layout``): a row
that is not an exact, compact ASCII ``str`` of the first row's length fails the batch.  One
kernel per layout (length and separator are compile-time constants), compiled once per
process through the on-disk compile cache.  The checks accumulate into one flag per row
(no branch per character); the calendar is H. Hinnant's ``days_from_civil``.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

I8, I64 = ir.IntType(8), ir.IntType(64)
PROTO = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                         ctypes.c_void_p)
_DIGITS_19 = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)
_SEPARATORS = ((4, "-"), (7, "-"), (13, ":"), (16, ":"))
PREFETCH = 16  # rows ahead


def _build(module: ir.Module, name: str, width: int, sep: str, lay) -> None:
    # the str type's address is an argument, so the object code serves every process
    fn = ir.Function(module, ir.FunctionType(I64, [I64, I64, I64, I64]), name=name)
    objs_addr, n, out_addr, str_type = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    c = lambda v: ir.Constant(I64, v)  # noqa: E731
    objs = b.inttoptr(objs_addr, I64.as_pointer())
    out = b.inttoptr(out_addr, I64.as_pointer())
    head = fn.append_basic_block("head")
    body = fn.append_basic_block("body")
    check = fn.append_basic_block("check")
    row = fn.append_basic_block("row")
    fail = fn.append_basic_block("fail")
    done = fn.append_basic_block("done")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, "i")
    i.add_incoming(c(0), fn.entry_basic_block)
    b.cbranch(b.icmp_signed("<", i, n), body, done)

    # the object: an exact str, compact ASCII, of the first row's length
    b.position_at_end(body)
    obj = b.load(b.gep(objs, [i]))
    # the objects of a shuffled column are scattered in memory: ask for a later row's header
    # and characters now, so the cache misses of consecutive rows overlap
    ahead = b.select(b.icmp_signed("<", b.add(i, c(PREFETCH)), n), b.add(i, c(PREFETCH)), i)
    later = b.load(b.gep(objs, [ahead]))
    prefetch = module.declare_intrinsic("llvm.prefetch", fnty=ir.FunctionType(
        ir.VoidType(), [I8.as_pointer(), ir.IntType(32), ir.IntType(32), ir.IntType(32)]))
    i32 = lambda v: ir.Constant(ir.IntType(32), v)  # noqa: E731
    for off in (0, lay.ascii_data + width - 1):
        b.call(prefetch, [b.inttoptr(b.add(later, c(off)), I8.as_pointer()), i32(0), i32(3),
                          i32(1)])
    typ = b.load(b.inttoptr(b.add(obj, c(lay.type_offset)), I64.as_pointer()))
    is_str = fn.append_basic_block("is_str")
    b.cbranch(b.icmp_unsigned("==", typ, str_type), is_str, fail)  # before reading str fields
    b.position_at_end(is_str)
    length = b.load(b.inttoptr(b.add(obj, c(lay.length_offset)), I64.as_pointer()))
    state = b.zext(b.load(b.inttoptr(b.add(obj, c(lay.state_offset)), I8.as_pointer())), I64)
    bits = c((1 << lay.compact_bit) | (1 << lay.ascii_bit))
    ok = b.and_(b.icmp_unsigned("==", length, c(width)),
                b.icmp_unsigned("==", b.and_(state, bits), bits))
    b.cbranch(ok, check, fail)

    b.position_at_end(check)
    data = b.add(obj, c(lay.ascii_data))

    def char(pos):
        return b.zext(b.load(b.inttoptr(b.add(data, c(pos)), I8.as_pointer())), I64)
    bad = ir.Constant(ir.IntType(1), 0)
    for pos, ch in _SEPARATORS + ((10, sep),) + (((19, "."),) if width > 19 else ()):
        bad = b.or_(bad, b.icmp_unsigned("!=", char(pos), c(ord(ch))))
    digit_pos = list(_DIGITS_19) + list(range(20, width))
    digits = {}
    for pos in digit_pos:
        d = b.sub(char(pos), c(ord("0")))
        bad = b.or_(bad, b.icmp_unsigned(">", d, c(9)))
        digits[pos] = d

    def num(positions):
        v = c(0)
        for p in positions:
            v = b.add(b.mul(v, c(10)), digits[p])
        return v
    year, month, day = num((0, 1, 2, 3)), num((5, 6)), num((8, 9))
    hour, minute, second = num((11, 12)), num((14, 15)), num((17, 18))
    lt = lambda x, y: b.icmp_signed("<", x, c(y))  # noqa: E731
    gt = lambda x, y: b.icmp_signed(">", x, c(y))  # noqa: E731
    for cond in (lt(year, 1000), lt(month, 1), gt(month, 12), lt(day, 1), gt(hour, 23),
                 gt(minute, 59), gt(second, 59)):
        bad = b.or_(bad, cond)
    # days in the month: 28 + lookup, February of leap years 29
    leap = b.and_(b.icmp_signed("==", b.srem(year, c(4)), c(0)),
                  b.or_(b.icmp_signed("!=", b.srem(year, c(100)), c(0)),
                        b.icmp_signed("==", b.srem(year, c(400)), c(0))))
    table = ir.Constant(ir.ArrayType(I64, 13), [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    g = ir.GlobalVariable(module, table.type, name=f"{name}.dim")
    g.global_constant, g.initializer, g.linkage = True, table, "internal"
    m_safe = b.select(b.or_(lt(month, 1), gt(month, 12)), c(0), month)
    dim = b.load(b.gep(g, [ir.Constant(ir.IntType(32), 0), m_safe]))
    dim = b.add(dim, b.zext(b.and_(leap, b.icmp_signed("==", month, c(2))), I64))
    bad = b.or_(bad, b.icmp_signed(">", day, dim))
    b.cbranch(bad, fail, row)

    b.position_at_end(row)
    y = b.sub(year, b.zext(b.icmp_signed("<=", month, c(2)), I64))
    era = b.sdiv(y, c(400))
    yoe = b.sub(y, b.mul(era, c(400)))
    mp = b.srem(b.add(month, c(9)), c(12))
    doy = b.add(b.sdiv(b.add(b.mul(mp, c(153)), c(2)), c(5)), b.sub(day, c(1)))
    doe = b.add(b.sub(b.add(b.mul(yoe, c(365)), b.sdiv(yoe, c(4))), b.sdiv(yoe, c(100))), doy)
    days = b.sub(b.add(b.mul(era, c(146097)), doe), c(719468))
    secs = b.add(b.mul(b.add(b.mul(b.add(b.mul(days, c(24)), hour), c(60)), minute), c(60)),
                 second)
    us = b.mul(secs, c(1_000_000))
    if width > 19:
        k = width - 20
        us = b.add(us, b.mul(num(range(20, width)), c(10 ** (6 - k))))
    b.store(us, b.gep(out, [i]))
    nxt = b.add(i, c(1))
    i.add_incoming(nxt, row)
    b.branch(head)

    b.position_at_end(fail)
    b.ret(c(1))
    b.position_at_end(done)
    b.ret(c(0))


@functools.lru_cache(maxsize=None)
def _kernel(width: int, sep: str):
    """(library, ctypes function) for one layout, or None where strings cannot be read."""
    from runtime import cache as runtime_cache
    from runtime.loader import load

    from .text_cpython import layout
    lay = layout()
    if lay is None:
        return None
    name = f"mloc_iso_{width}_{ord(sep)}"
    module = ir.Module(name=name)
    _build(module, name, width, sep, lay)
    obj = runtime_cache.compiled("iso", str(module), name)
    lib = load(obj, [name])
    return lib, lib.function(name, PROTO)


def parse_iso(strings) -> np.ndarray | None:
    """``pd.to_datetime(strings)`` for a batch of strict ISO strings, else None."""
    values = strings
    if not (isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1):
        values = np.asarray(values, dtype=object)
        if values.ndim != 1:
            return None
    values = np.ascontiguousarray(values)
    n = len(values)
    if n == 0:
        return None  # pandas gives an empty batch in seconds
    first = values[0]
    if type(first) is not str or not (len(first) == 19 or 21 <= len(first) <= 26) \
            or first[10] not in " T":
        return None
    k = _kernel(len(first), first[10])
    if k is None:
        return None
    out = np.empty(n, dtype=np.int64)
    status = k[1](values.__array_interface__["data"][0], n, out.__array_interface__["data"][0],
                  id(str))
    return out.view("M8[us]") if status == 0 else None
