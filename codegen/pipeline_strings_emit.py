"""LLVM emission of str-keyed lookups and joins (tables from ``pipeline_strings``).

A str column reaches a native stage as one pointer to a header of four byte offsets from the
header itself, to ``units``, ``starts``, ``lens`` and ``special`` (``pipeline_strkeys``); they are
loaded once, in the function's entry block.  Per
row and column the key's hash is computed once (shared by every table hashing that column in
the same row loop), then each table is probed:

    if lens[row] < 0:  entry = special[(-1 - lens[row]) * T + t]     # answered on the host
    else:              entry = probe(table, hash, units[starts[row] ...], lens[row])  # or -1

A lookup then reads ``values[entry]`` (or its default for -1); a join's value is the entry
itself (the table row), read by its fields like a numeric join's.  Tables are internal
constants holding the bytes of NumPy arrays (one string constant each, cheap for LLVM to
parse).
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from .llvm_util import byte_global
from .pipeline_ops import I8, I32, I64, MEM, constant
from .pipeline_strings import (FNV_OFFSET, FNV_PRIME, MIX1, MIX2, field_lookup, join_table,
                               lookup_table, stage_consumers)

SLOT_TYPE = ir.LiteralStructType([I64, I32, I32])


def _i64(v: int) -> ir.Constant:
    """An i64 constant from an unsigned 64-bit value."""
    return I64(v - (1 << 64) if v >= 1 << 63 else v)


def _blob(module: ir.Module, name: str, data: np.ndarray, elem: ir.Type) -> ir.Value:
    """An internal constant holding ``data``'s bytes, as a pointer to ``elem``."""
    return byte_global(module, name, np.ascontiguousarray(data).tobytes()).bitcast(
        elem.as_pointer())


class _Column:
    """A str column's header fields (loaded in the entry block) and its hash tables' order."""

    def __init__(self, em, nid):
        b = em.b
        with b.goto_block(em.b.function.entry_basic_block):
            base = b.bitcast(em.arrays[nid], I8.as_pointer())
            hdr = b.bitcast(base, I64.as_pointer())
            # four byte offsets from the header: units, starts, lens, special
            part = [b.gep(base, [b.load(b.gep(hdr, [I64(i)]))]) for i in range(4)]
            self.units = b.bitcast(part[0], I32.as_pointer(), name=f"units.{em.g[nid].name}")
            self.starts = b.bitcast(part[1], I64.as_pointer())
            self.lens = b.bitcast(part[2], I64.as_pointer())
            self.special = b.bitcast(part[3], I64.as_pointer())
        self.consumers = stage_consumers(em.g, em.stage, nid)


class StringEmitter:
    """String-key emission for one ``StageEmitter`` (``em``)."""

    def __init__(self, em):
        self.em = em
        self.columns: dict[int, _Column] = {}

    @property
    def b(self) -> ir.IRBuilder:
        return self.em.b

    # -- per-row key --------------------------------------------------------------------------
    def _row_key(self, nid):
        """``(start, len, hash)`` of the current row of str column ``nid`` (computed once per
        row loop)."""
        em, b = self.em, self.em.b
        cached = em.vals.get(("strkey", nid))
        if cached is not None:
            return cached
        col = self.columns.get(nid)
        if col is None:
            col = self.columns[nid] = _Column(em, nid)
        start = b.load(b.gep(col.starts, [em.row]))
        n = b.load(b.gep(col.lens, [em.row]))
        pre = b.block
        head = b.append_basic_block("strhash.head")
        body = b.append_basic_block("strhash.body")
        done = b.append_basic_block("strhash.done")
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(I64)
        h = b.phi(I64)
        k.add_incoming(I64(0), pre)
        h.add_incoming(_i64(FNV_OFFSET), pre)
        b.cbranch(b.icmp_signed("<", k, n), body, done)
        b.position_at_end(body)
        unit = b.zext(b.load(b.gep(col.units, [b.add(start, k)])), I64)
        h2 = b.mul(b.xor(h, unit), _i64(FNV_PRIME))
        k.add_incoming(b.add(k, I64(1)), body)
        h.add_incoming(h2, body)
        b.branch(head)
        b.position_at_end(done)
        x = h
        for m in (MIX1, MIX2):
            x = b.mul(b.xor(x, b.lshr(x, I64(33))), _i64(m))
        x = b.xor(x, b.lshr(x, I64(33)))
        em.vals[("strkey", nid)] = (col, start, n, x)
        return em.vals[("strkey", nid)]

    def _entry(self, node, table, tag: str):
        """The entry of the current row's key in ``table`` (a ``StrTable``), or -1."""
        em, b = self.em, self.em.b
        key = node.args[0]
        col, start, n, h = self._row_key(key)
        t = col.consumers.index(node.id)
        special = b.icmp_signed("<", n, I64(0))
        host = b.append_basic_block(f"{tag}.host")
        probe = b.append_basic_block(f"{tag}.probe")
        done = b.append_basic_block(f"{tag}.done")
        b.cbranch(special, host, probe)
        # non-str row: the host's answer
        b.position_at_end(host)
        j = b.sub(I64(-1), n)
        at = b.add(b.mul(j, I64(len(col.consumers))), I64(t))
        e_host = b.load(b.gep(col.special, [at]))
        b.branch(done)
        b.position_at_end(probe)
        if table.n_str == 0:
            e_probe, probe_end = I64(-1), b.block
            b.branch(done)
        else:
            e_probe, probe_end = self._probe(table, tag, col, start, n, h, done)
        b.position_at_end(done)
        e = b.phi(I64, name=f"{tag}.entry")
        e.add_incoming(e_host, host)
        e.add_incoming(e_probe, probe_end)
        return e

    def _probe(self, table, tag, col, start, n, h, done):
        """Linear probing; returns ``(entry value, block that branches to done)``."""
        em, b = self.em, self.em.b
        name = f"{em.name}.{tag}"
        slots = _blob(em.module, f"{name}.slots", table.slots, SLOT_TYPE)
        pool = _blob(em.module, f"{name}.pool", table.pool, I32)
        slot0 = b.and_(h, I64(table.mask))
        pre = b.block
        head = b.append_basic_block(f"{tag}.slot")
        check = b.append_basic_block(f"{tag}.check")
        cmp_head = b.append_basic_block(f"{tag}.cmp")
        cmp_body = b.append_basic_block(f"{tag}.cmpbody")
        nxt = b.append_basic_block(f"{tag}.next")
        out = b.append_basic_block(f"{tag}.out")
        b.branch(head)
        # head: read the slot; an empty slot ends the search
        b.position_at_end(head)
        slot = b.phi(I64, name=f"{tag}.s")
        slot.add_incoming(slot0, pre)
        rec = b.gep(slots, [slot])
        entry = b.sext(b.load(b.gep(rec, [I32(0), I32(2)])), I64)
        rhash = b.load(b.gep(rec, [I32(0), I32(0)]))
        off = b.zext(b.load(b.gep(rec, [I32(0), I32(1)])), I64)
        empty = b.icmp_signed("<", entry, I64(0))
        b.cbranch(empty, out, check)
        # check: same hash and length, then compare units
        b.position_at_end(check)
        klen = b.zext(b.load(b.gep(pool, [off])), I64)
        same = b.and_(b.icmp_unsigned("==", rhash, h), b.icmp_signed("==", klen, n))
        b.cbranch(same, cmp_head, nxt)
        b.position_at_end(cmp_head)
        k = b.phi(I64)
        k.add_incoming(I64(0), check)
        b.cbranch(b.icmp_signed("<", k, n), cmp_body, out)
        b.position_at_end(cmp_body)
        a = b.load(b.gep(pool, [b.add(b.add(off, I64(1)), k)]))
        c = b.load(b.gep(col.units, [b.add(start, k)]))
        k.add_incoming(b.add(k, I64(1)), cmp_body)
        b.cbranch(b.icmp_unsigned("==", a, c), cmp_head, nxt)
        # next slot
        b.position_at_end(nxt)
        slot.add_incoming(b.and_(b.add(slot, I64(1)), I64(table.mask)), nxt)
        b.branch(head)
        # out: from an empty slot (-1) or a full match (the slot's entry)
        b.position_at_end(out)
        res = b.phi(I64)
        res.add_incoming(I64(-1), head)
        res.add_incoming(entry, cmp_head)
        b.branch(done)
        return res, out

    # -- nodes --------------------------------------------------------------------------------
    def lookup(self, node):
        em, b = self.em, self.em.b
        dt = node.type.dtype
        tag = f"slookup{node.id}"
        key = em.g[node.args[0]]
        if key.op == "field" and key.id in em.members:
            # a joined string in this stage: indexed by the join's row, no string at all
            values, missing = field_lookup(em.g, node)
            row = em._arg(key.args[0])  # the join's table row (-1: no match)
        else:
            lt = lookup_table(node)
            values, missing = lt.values, lt.default
            row = self._entry(node, lt.table, tag)
        vp = _blob(em.module, f"{em.name}.{tag}.values", values.astype(values.dtype), MEM[dt])
        miss = b.icmp_signed("<", row, I64(0))
        v = em.ops.load(b.gep(vp, [b.select(miss, I64(0), row)]), dt)
        return b.select(miss, constant(missing, dt), v)

    def join(self, node):
        return self._entry(node, join_table(node), f"sjoin{node.id}")


def strings_of(em) -> StringEmitter:
    """The ``StringEmitter`` of a stage emitter (made on first use)."""
    se = getattr(em, "_strings", None)
    if se is None:
        se = em._strings = StringEmitter(em)
    return se


def handles(graph, node) -> bool:
    """Whether ``node`` (a lookup or join) is emitted here: its key is a str value."""
    key = graph[node.args[0]]
    return key.type.shape == "col" and key.type.dtype == "str"
