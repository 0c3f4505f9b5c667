"""Emission of native text kernels: vectorizer transforms and vectorizers fused with a linear model.

One kernel is ``i64 name(i64* ctx, i64 begin, i64 end)``.  ``ctx`` holds addresses and sizes
laid out by :class:`Layout` (inputs, per-vectorizer scratch, outputs); the host
(``codegen.text_runtime``) fills it.  The result is the row the kernel stopped at: ``end``
when every row is done, an earlier row when a buffer was too small (``ctx[need]`` says how big
it must be); the host grows the buffer and calls again from that row.

Per row and vectorizer the kernel follows scikit-learn step by step:

1. read the ``str`` in place (``text_cpython``); other objects flag the row for the host;
2. map each code point through the composed ``lower`` / ``strip_accents`` table
   (``text_unicode``; capital sigma gets ``str.lower``'s final-sigma context rule);
3. analyze: ``word`` (runs of ``\\w`` of at least ``min_token`` code points, stop words
   removed, n-grams joined by one space), ``char`` (runs of 2+ whitespace become one space,
   then all n-grams), ``char_wb`` (the same loop as ``_char_wb_ngrams`` over space-padded
   words);
4. count each n-gram found in the vocabulary (compiled lookup, ``text_vocab``) or hashed with
   MurmurHash3 (``HashingVectorizer``), marking columns in a two-level bitmap;
5. walk the bitmap in column order (the order of scikit-learn's sorted CSR row), turning counts
   into values: ``binary``, ``log(tf) + 1`` from a NumPy-computed table, ``* idf[col]``, then
   the row norm exactly as ``inplace_csr_row_normalize_l1/l2`` (sum in column order, ``sqrt``,
   divide each value);
6. either append the row to CSR output arrays (transform) or accumulate ``value * coef`` in
   column order across every part of the stacked row (fused), which is the order of scipy's
   ``csr_matvec``: ``acc = 0; acc += x[j] * w[j]`` for the row's stored entries, then
   ``+ intercept``.  Dense parts contribute their non-zero entries (``scipy.sparse.hstack``
   stores those, NaN included).

Rows the kernel cannot do exactly (not a ``str``, a non-compact string, a term counted more than
``LOG_TABLE_SIZE`` times with ``sublinear_tf``, a lone surrogate under ``HashingVectorizer``,
whose UTF-8 encoding raises) get ``flags[row] = 1`` and are recomputed by scikit-learn.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import llvmlite.ir as ir
import numpy as np

from . import text_unicode as tu
from .text_cpython import StrLayout
from .text_ir import F64, FB, I1, I8, I16, I32, I64, declare
from .text_spec import LOG_TABLE_SIZE, VectorizerSpec, log_table
from .text_vocab import build_table, emit_lookup_function

SPACE_CP = 0x20
I32P = I32.as_pointer()
I64P = I64.as_pointer()
F64P = F64.as_pointer()
KERNEL_TYPE = ir.FunctionType(I64, [I64P, I64, I64])


@dataclass
class Layout:
    """Names of the ``ctx`` slots, in order."""

    slots: list[str] = field(default_factory=list)

    def add(self, name: str) -> int:
        self.slots.append(name)
        return len(self.slots) - 1

    def index(self, name: str) -> int:
        return self.slots.index(name)


# -- scratch sizes (shared with the host, which allocates them) ------------------------------

def scratch_sizes(spec: VectorizerSpec, cap: int) -> dict[str, tuple[int, str]]:
    """Element counts and dtypes of one vectorizer's scratch arrays for ``cap`` code points of
    preprocessed text per row."""
    V = max(spec.n_features, 1)
    words = (V + 63) // 64
    n_sizes = spec.ngram_range[1] - spec.ngram_range[0] + 1
    items = min(V, 3 * (cap + 2) * n_sizes + 8)
    return {
        "buf": (cap + 4, "u4"), "tmp": (2 * cap + 8, "u4"), "toks": (2 * cap + 4, "i8"),
        "utf8": (8 * cap + 32 if spec.kind == "hashing" else 1, "u1"),
        "icol": (items, "i4"), "ival": (items, "f8"),
        "counts": (V, "i4"), "bits": (words, "u8"), "summ": ((words + 63) // 64, "u8"),
    }


SCRATCH_FIXED = ("counts", "bits", "summ")  # independent of the text capacity


class TextEmitter:
    """Emits one kernel; ``specs`` are the vectorizers, read from string inputs ``inputs``."""

    def __init__(self, module: ir.Module, name: str, str_layout: StrLayout):
        self.module = module
        self.name = name
        self.sl = str_layout
        self.layout = Layout()
        for s in ("str_type", "flags", "need", "cap"):
            self.layout.add(s)

    # -- ctx access ---------------------------------------------------------------------------
    def slot(self, name: str, ty=None):
        v = self.fb.load_at(self.ctx, I64(self.layout.index(name)))
        return v if ty is None else self.fb.b.inttoptr(v, ty)

    # -- strings --------------------------------------------------------------------------------
    def read_str(self, obj):
        """``(ok, kind, data, length)`` of an object pointer (``ok`` false: host row)."""
        b, sl = self.fb.b, self.sl
        ok = self.fb.var(I1, I1(0), "str.ok")
        kind = self.fb.var(I64, I64(1), "str.kind")
        data = self.fb.var(I8.as_pointer(), ir.Constant(I8.as_pointer(), None), "str.data")
        length = self.fb.var(I64, I64(0), "str.len")
        p = b.inttoptr(obj, I8.as_pointer())
        with self.fb.if_(b.icmp_unsigned("!=", obj, I64(0))):
            tp = b.load(b.bitcast(b.gep(p, [I64(sl.type_offset)]), I64P))
            with self.fb.if_(b.icmp_unsigned("==", tp, self.str_type)):
                st = b.zext(b.load(b.gep(p, [I64(sl.state_offset)])), I64)
                compact = b.trunc(b.lshr(st, I64(sl.compact_bit)), I1)
                with self.fb.if_(compact):
                    is_ascii = b.trunc(b.lshr(st, I64(sl.ascii_bit)), I1)
                    off = b.select(is_ascii, I64(sl.ascii_data), I64(sl.compact_data))
                    data.set(b.gep(p, [off]))
                    kind.set(b.and_(b.lshr(st, I64(sl.kind_shift)), I64(7)))
                    length.set(b.load(b.bitcast(b.gep(p, [I64(sl.length_offset)]), I64P)))
                    ok.set(I1(1))
        return ok.get(), kind.get(), data.get(), length.get()

    def for_each_kind(self, kind, data, body):
        """Emit ``body(read)`` three times, for 1-, 2- and 4-byte code points; ``read(i)``
        loads code point ``i`` as i32."""
        b = self.fb.b
        for k, ty in ((1, I8), (2, I16), (4, I32)):
            with self.fb.if_(b.icmp_unsigned("==", kind, I64(k))):
                ptr = b.bitcast(data, ty.as_pointer())

                def read(i, ptr=ptr, ty=ty):
                    v = b.load(b.gep(ptr, [i]))
                    return v if ty == I32 else b.zext(v, I32)
                body(read)

    # -- tables ---------------------------------------------------------------------------------
    def flags_of(self, c):
        b = self.fb.b
        if not hasattr(self, "_flags"):
            idx, blocks = tu.flag_blocks()
            self._flags = (self.fb.table("text.flags.index", idx, I16),
                           self.fb.table("text.flags.blocks", blocks, I8))
        index, blocks = self._flags
        c64 = b.zext(c, I64)
        blk = b.zext(self.fb.load_at(index, b.lshr(c64, I64(8))), I64)
        return self.fb.load_at(blocks, b.add(b.shl(blk, I64(8)), b.and_(c64, I64(255))))

    def has_flag(self, c, flag):
        b = self.fb.b
        return b.icmp_unsigned("!=", b.and_(self.flags_of(c), I8(flag)), I8(0))

    def map_tables(self, spec):
        key = (spec.lowercase, spec.strip_accents)
        cache = self.__dict__.setdefault("_maps", {})
        if key not in cache:
            idx, blocks, pool = tu.map_blocks(*key)
            tag = f"text.map.{int(key[0])}.{key[1]}"
            cache[key] = (self.fb.table(f"{tag}.index", idx, I16),
                          self.fb.table(f"{tag}.blocks", blocks, I32),
                          self.fb.table(f"{tag}.pool", pool, I32))
        return cache[key]

    # -- preprocessing ----------------------------------------------------------------------------
    def preprocess(self, spec, kind, data, length, buf, ok):
        """Map the string into ``buf`` (u32 code points); returns the mapped length."""
        fb, b = self.fb, self.fb.b
        out = fb.var(I64, I64(0), "pp.n")
        identity = tu.is_identity(spec.lowercase, spec.strip_accents)
        hashing = spec.kind == "hashing"
        if not identity:
            index, blocks, pool = self.map_tables(spec)
            small, final = tu.sigma_results(spec.strip_accents)

        def put(v):
            fb.store_at(v, buf, out.get())
            out.set(b.add(out.get(), I64(1)))

        def body(read):
            with fb.for_(I64(0), length, "pp") as k:
                c = read(k.get())
                if hashing:
                    with fb.if_(self.has_flag(c, tu.SURROGATE)):
                        ok.set(I1(0))
                if identity:
                    put(c)
                    return
                if spec.lowercase:
                    with fb.if_(b.icmp_unsigned("==", c, I32(tu.CAPITAL_SIGMA))):
                        fin = self.final_sigma(read, k.get(), length)
                        with b.if_else(fin) as (then, other):
                            with then:
                                for cp in final:
                                    put(I32(cp))
                            with other:
                                for cp in small:
                                    put(I32(cp))
                        fb.cont()
                c64 = b.zext(c, I64)
                blk = b.zext(fb.load_at(index, b.lshr(c64, I64(8))), I64)
                m = fb.load_at(blocks, b.add(b.shl(blk, I64(8)), b.and_(c64, I64(255))))
                multi = b.icmp_unsigned("!=", b.and_(m, I32(tu.MULTI)), I32(0))
                with b.if_else(multi) as (then, other):
                    with then:
                        n = b.zext(b.and_(b.lshr(m, I32(24)), I32(0x7F)), I64)
                        off = b.zext(b.and_(m, I32(0xFFFFFF)), I64)
                        with fb.for_(I64(0), n, "ppm") as j:
                            put(fb.load_at(pool, b.add(off, j.get())))
                    with other:
                        put(b.sub(b.add(c, m), I32(tu.DELTA_BIAS)))
        self.for_each_kind(kind, data, body)
        return out.get()

    def final_sigma(self, read, i, length):
        """CPython's ``handle_capital_sigma``: cased (skipping case-ignorable) before, and not
        cased (skipping case-ignorable) after."""
        fb, b = self.fb, self.fb.b
        j = fb.var(I64, b.sub(i, I64(1)), "sg.j")
        with fb.while_(lambda: b.icmp_signed(">=", j.get(), I64(0)), "sg.back"):
            with fb.if_(b.not_(self.has_flag(read(j.get()), tu.IGNORABLE))):
                fb.brk()
            j.set(b.sub(j.get(), I64(1)))
        res = fb.var(I1, I1(0), "sg.res")
        with fb.if_(b.icmp_signed(">=", j.get(), I64(0))):
            res.set(self.has_flag(read(j.get()), tu.CASED))
        with fb.if_(res.get()):
            k = fb.var(I64, b.add(i, I64(1)), "sg.k")
            with fb.while_(lambda: b.icmp_signed("<", k.get(), length), "sg.fwd"):
                with fb.if_(b.not_(self.has_flag(read(k.get()), tu.IGNORABLE))):
                    fb.brk()
                k.set(b.add(k.get(), I64(1)))
            with fb.if_(b.icmp_signed("<", k.get(), length)):
                res.set(b.not_(self.has_flag(read(k.get()), tu.CASED)))
        return res.get()

    def collapse_spaces(self, buf, n):
        """``re.sub(r"\\s\\s+", " ", text)`` in place; returns the new length."""
        fb, b = self.fb, self.fb.b
        o = fb.var(I64, I64(0), "ws.o")
        k = fb.var(I64, I64(0), "ws.k")
        with fb.while_(lambda: b.icmp_signed("<", k.get(), n), "ws"):
            c = fb.load_at(buf, k.get())
            with fb.if_(self.has_flag(c, tu.SPACE)):
                j = fb.var(I64, b.add(k.get(), I64(1)), "ws.j")
                with fb.while_(lambda: b.and_(b.icmp_signed("<", j.get(), n),
                                              self.has_flag(fb.load_at(buf, j.get()), tu.SPACE)),
                               "ws.run"):
                    j.set(b.add(j.get(), I64(1)))
                long_run = b.icmp_signed(">=", b.sub(j.get(), k.get()), I64(2))
                fb.store_at(b.select(long_run, I32(SPACE_CP), c), buf, o.get())
                o.set(b.add(o.get(), I64(1)))
                k.set(j.get())
                fb.cont()
            fb.store_at(c, buf, o.get())
            o.set(b.add(o.get(), I64(1)))
            k.set(b.add(k.get(), I64(1)))
        return o.get()

    # -- analyzers --------------------------------------------------------------------------------
    def analyze(self, spec, S, buf, n, emit):
        """Call ``emit(ptr, len)`` for every n-gram of the preprocessed text."""
        if spec.analyzer == "word":
            self.word_ngrams(spec, S, buf, n, emit)
        elif spec.analyzer == "char":
            n = self.collapse_spaces(buf, n)
            self.char_ngrams(spec, buf, n, emit)
        else:
            n = self.collapse_spaces(buf, n)
            self.char_wb_ngrams(spec, S, buf, n, emit)

    def word_ngrams(self, spec, S, buf, n, emit):
        fb, b = self.fb, self.fb.b
        toks = S["toks"]
        nt = fb.var(I64, I64(0), "w.nt")
        k = fb.var(I64, I64(0), "w.k")
        stop = self.stop_lookup(spec)
        with fb.while_(lambda: b.icmp_signed("<", k.get(), n), "w.scan"):
            with fb.if_(b.not_(self.has_flag(fb.load_at(buf, k.get()), tu.WORD))):
                k.set(b.add(k.get(), I64(1)))
                fb.cont()
            start = fb.var(I64, k.get(), "w.start")
            with fb.while_(lambda: b.and_(b.icmp_signed("<", k.get(), n),
                                          self.has_flag(fb.load_at(buf, k.get()), tu.WORD)), "w.run"):
                k.set(b.add(k.get(), I64(1)))
            ln = b.sub(k.get(), start.get())
            keep = fb.var(I1, b.icmp_signed(">=", ln, I64(spec.min_token)), "w.keep")
            if stop is not None:
                with fb.if_(keep.get()):
                    p = b.gep(buf, [start.get()])
                    keep.set(b.icmp_signed("<", b.call(stop, [p, ln]), I32(0)))
            with fb.if_(keep.get()):
                fb.store_at(start.get(), toks, b.mul(nt.get(), I64(2)))
                fb.store_at(ln, toks, b.add(b.mul(nt.get(), I64(2)), I64(1)))
                nt.set(b.add(nt.get(), I64(1)))
        lo, hi = spec.ngram_range
        tmp = S["tmp"]
        for size in range(lo, hi + 1):
            with fb.for_(I64(0), b.sub(nt.get(), I64(size - 1)), f"w.ng{size}") as i:
                s0 = fb.load_at(toks, b.mul(i.get(), I64(2)))
                l0 = fb.load_at(toks, b.add(b.mul(i.get(), I64(2)), I64(1)))
                if size == 1:
                    emit(b.gep(buf, [s0]), l0)
                    continue
                w = fb.var(I64, I64(0), "w.len")
                for t in range(size):
                    ti = b.add(i.get(), I64(t))
                    st = fb.load_at(toks, b.mul(ti, I64(2)))
                    ln = fb.load_at(toks, b.add(b.mul(ti, I64(2)), I64(1)))
                    if t:
                        fb.store_at(I32(SPACE_CP), tmp, w.get())
                        w.set(b.add(w.get(), I64(1)))
                    with fb.for_(I64(0), ln, "w.cp") as j:
                        fb.store_at(fb.load_at(buf, b.add(st, j.get())), tmp, b.add(w.get(), j.get()))
                    w.set(b.add(w.get(), ln))
                emit(tmp, w.get())

    def char_ngrams(self, spec, buf, n, emit):
        fb, b = self.fb, self.fb.b
        lo, hi = spec.ngram_range
        for size in range(lo, hi + 1):
            with fb.for_(I64(0), b.sub(n, I64(size - 1)), f"c.ng{size}") as i:
                emit(b.gep(buf, [i.get()]), I64(size))

    def char_wb_ngrams(self, spec, S, buf, n, emit):
        fb, b = self.fb, self.fb.b
        tmp = S["tmp"]
        lo, hi = spec.ngram_range
        k = fb.var(I64, I64(0), "wb.k")
        with fb.while_(lambda: b.icmp_signed("<", k.get(), n), "wb.scan"):
            with fb.if_(self.has_flag(fb.load_at(buf, k.get()), tu.SPACE)):
                k.set(b.add(k.get(), I64(1)))
                fb.cont()
            # one word: tmp = " " + word + " "
            fb.store_at(I32(SPACE_CP), tmp, I64(0))
            wl = fb.var(I64, I64(1), "wb.len")
            with fb.while_(lambda: b.and_(b.icmp_signed("<", k.get(), n),
                                          b.not_(self.has_flag(fb.load_at(buf, k.get()), tu.SPACE))),
                           "wb.word"):
                fb.store_at(fb.load_at(buf, k.get()), tmp, wl.get())
                wl.set(b.add(wl.get(), I64(1)))
                k.set(b.add(k.get(), I64(1)))
            fb.store_at(I32(SPACE_CP), tmp, wl.get())
            W = b.add(wl.get(), I64(1))
            done = fb.var(I1, I1(0), "wb.done")
            for size in range(lo, hi + 1):
                with fb.if_(b.not_(done.get())):
                    first = b.select(b.icmp_signed("<", W, I64(size)), W, I64(size))
                    emit(tmp, first)
                    off = fb.var(I64, I64(0), "wb.off")
                    with fb.while_(lambda: b.icmp_signed("<", b.add(off.get(), I64(size)), W),
                                   f"wb.slide{size}"):
                        off.set(b.add(off.get(), I64(1)))
                        emit(b.gep(tmp, [off.get()]), I64(size))
                    done.set(b.icmp_signed("==", off.get(), I64(0)))

    def stop_lookup(self, spec):
        if not spec.stop_words:
            return None
        key = tuple(sorted(spec.stop_words))
        cache = self.__dict__.setdefault("_stops", {})
        if key not in cache:
            table = build_table({w: 0 for w in key})
            cache[key] = emit_lookup_function(self.module, table,
                                              f"{self.name}.stop{len(cache)}")
        return cache[key]

    # -- counting ----------------------------------------------------------------------------------
    def count_fn(self, spec, S, ok, vi):
        """An ``emit(ptr, len)`` that counts one n-gram."""
        fb, b = self.fb, self.fb.b
        counts, bits, summ = S["counts"], S["bits"], S["summ"]

        def mark(col, delta, hashing):
            bit = b.shl(I64(1), b.and_(col, I64(63)))
            word = b.lshr(col, I64(6))
            old = fb.load_at(bits, word)
            if hashing:
                fresh = b.icmp_unsigned("==", b.and_(old, bit), I64(0))
            else:
                fresh = b.icmp_signed("==", fb.load_at(counts, col), I32(0))
            with fb.if_(fresh):
                fb.store_at(b.or_(old, bit), bits, word)
                sw = b.lshr(word, I64(6))
                sbit = b.shl(I64(1), b.and_(word, I64(63)))
                fb.store_at(b.or_(fb.load_at(summ, sw), sbit), summ, sw)
            fb.store_at(b.add(fb.load_at(counts, col), delta), counts, col)

        if spec.kind != "hashing":
            table = build_table(spec.vocabulary)
            lookup = emit_lookup_function(self.module, table, f"{self.name}.vocab{vi}")

            def emit(ptr, n):
                col = b.call(lookup, [ptr, n])
                with fb.if_(b.icmp_signed(">=", col, I32(0))):
                    mark(b.sext(col, I64), I32(1), False)
            return emit
        murmur = emit_murmur(self.module)
        utf8 = S["utf8"]
        nf = spec.n_features

        def emit(ptr, n):
            nbytes = encode_utf8(fb, ptr, n, utf8)
            h = b.call(murmur, [utf8, nbytes])
            is_min = b.icmp_signed("==", h, I32(-2 ** 31))
            absh = b.select(b.icmp_signed("<", h, I32(0)), b.sub(I32(0), h), h)
            idx = b.select(is_min, I64((2147483647 - (nf - 1)) % nf),
                           b.urem(b.zext(absh, I64), I64(nf)))
            sign = b.select(b.icmp_signed(">=", h, I32(0)), I32(1), I32(-1)) \
                if spec.alternate_sign else I32(1)
            mark(idx, sign, True)
        return emit

    def gather(self, spec, S, ok, vi):
        """Walk the bitmap in column order into ``icol``/``ival`` (clearing it); apply binary,
        sublinear tf, idf and the norm.  Returns the number of items."""
        fb, b = self.fb, self.fb.b
        counts, bits, summ, icol, ival = (S[k] for k in ("counts", "bits", "summ", "icol", "ival"))
        n_summ = ((max(spec.n_features, 1) + 63) // 64 + 63) // 64
        cttz = self.module.declare_intrinsic("llvm.cttz", [I64], ir.FunctionType(I64, [I64, I1]))
        n = fb.var(I64, I64(0), "g.n")
        if spec.sublinear_tf:
            logt = fb.table("text.log1table", log_table(), F64)
        idf = fb.table(f"{self.name}.idf{vi}", spec.idf, F64) if spec.idf is not None else None
        with fb.for_(I64(0), I64(n_summ), "g.s") as si:
            s = fb.var(I64, fb.load_at(summ, si.get()), "g.sw")
            with fb.if_(b.icmp_unsigned("!=", s.get(), I64(0))):
                fb.store_at(I64(0), summ, si.get())
            with fb.while_(lambda: b.icmp_unsigned("!=", s.get(), I64(0)), "g.words"):
                t = b.call(cttz, [s.get(), I1(1)])
                s.set(b.and_(s.get(), b.sub(s.get(), I64(1))))
                wi = b.add(b.shl(si.get(), I64(6)), t)
                w = fb.var(I64, fb.load_at(bits, wi), "g.w")
                fb.store_at(I64(0), bits, wi)
                with fb.while_(lambda: b.icmp_unsigned("!=", w.get(), I64(0)), "g.bits"):
                    tb = b.call(cttz, [w.get(), I1(1)])
                    w.set(b.and_(w.get(), b.sub(w.get(), I64(1))))
                    col = b.add(b.shl(wi, I64(6)), tb)
                    cnt = fb.load_at(counts, col)
                    fb.store_at(I32(0), counts, col)
                    v = F64(1.0) if spec.binary else b.sitofp(cnt, F64)
                    if spec.sublinear_tf and not spec.binary:
                        big = b.icmp_signed(">", cnt, I32(LOG_TABLE_SIZE))
                        with fb.if_(big):
                            ok.set(I1(0))
                        v = fb.load_at(logt, b.select(big, I64(1), b.zext(cnt, I64)))
                    if idf is not None:
                        v = b.fmul(v, fb.load_at(idf, col))
                    fb.store_at(b.trunc(col, I32), icol, n.get())
                    fb.store_at(v, ival, n.get())
                    n.set(b.add(n.get(), I64(1)))
        if spec.norm is not None:
            total = fb.var(F64, F64(0.0), "g.norm")
            fabs = self.module.declare_intrinsic("llvm.fabs", [F64])
            with fb.for_(I64(0), n.get(), "g.sum") as i:
                v = fb.load_at(ival, i.get())
                total.set(b.fadd(total.get(), b.fmul(v, v) if spec.norm == "l2"
                                 else b.call(fabs, [v])))
            with fb.if_(b.fcmp_unordered("!=", total.get(), F64(0.0))):
                d = total.get()
                if spec.norm == "l2":
                    d = b.call(self.module.declare_intrinsic("llvm.sqrt", [F64]), [d])
                with fb.for_(I64(0), n.get(), "g.div") as i:
                    fb.store_at(b.fdiv(fb.load_at(ival, i.get()), d), ival, i.get())
        return n.get()

    # -- kernels ---------------------------------------------------------------------------------
    def begin(self, name):
        fn = ir.Function(self.module, KERNEL_TYPE, name)
        self.fb = FB(self.module, fn)
        self.ctx, begin, end = fn.args
        self.str_type = self.slot("str_type")
        return fn, begin, end

    def scratch(self, vi, spec):
        S = {}
        for key, (_, dt) in scratch_sizes(spec, 1).items():
            ty = {"u4": I32, "i8": I64, "u1": I8, "i4": I32, "f8": F64, "u8": I64}[dt]
            S[key] = self.slot(f"v{vi}.{key}", ty.as_pointer())
        return S

    def row_vectorizer(self, vi, spec, S, emit, obj, row, flags, end_row_fn):
        """Steps 1-5 for one vectorizer on one row; returns the number of items (valid when
        the row is not flagged)."""
        fb, b = self.fb, self.fb.b
        ok = fb.var(I1, I1(1), f"v{vi}.ok")
        got, kind, data, length = self.read_str(obj)
        items = fb.var(I64, I64(0), f"v{vi}.items")
        with b.if_else(got) as (then, other):
            with then:
                need = b.mul(length, I64(tu.max_expansion(spec.lowercase, spec.strip_accents)))
                with fb.if_(b.icmp_signed(">", need, self.slot("cap"))):
                    fb.store_at(need, self.slot("need", I64P), I64(0))
                    end_row_fn()
                n = self.preprocess(spec, kind, data, length, S["buf"], ok)
                self.analyze(spec, S, S["buf"], n, emit)
                items.set(self.gather(spec, S, ok, vi))
            with other:
                ok.set(I1(0))
        with fb.if_(b.not_(ok.get())):
            fb.store_at(I8(1), flags, row)
        return items.get()

    def emit_transform(self, spec: VectorizerSpec, name: str) -> Layout:
        """Transform kernel: CSR rows into ``out_idx``/``out_val`` from ``out_pos``;
        ``nnz[row]`` items per row (0 for flagged rows)."""
        for s in ("objs0", "nnz", "out_idx", "out_val", "out_cap", "out_pos"):
            self.layout.add(s)
        for key in scratch_sizes(spec, 1):
            self.layout.add(f"v0.{key}")
        fn, begin, end = self.begin(name)
        fb, b = self.fb, self.fb.b
        objs = self.slot("objs0", I64P)
        flags = self.slot("flags", I8.as_pointer())
        nnz = self.slot("nnz", I64P)
        out_idx, out_val = self.slot("out_idx", I32P), self.slot("out_val", F64P)
        pos_ptr = self.slot("out_pos", I64P)
        S = self.scratch(0, spec)
        with fb.for_(begin, end, "row") as r:
            row = r.get()
            ok0 = fb.var(I1, I1(1), "row.ok")
            emit = self.count_fn(spec, S, ok0, 0)
            n = self.row_vectorizer(0, spec, S, emit, fb.load_at(objs, row), row,
                                    flags, lambda: fb.ret(row))
            flagged = b.icmp_unsigned("!=", fb.load_at(flags, row), I8(0))
            n = b.select(b.or_(flagged, b.not_(ok0.get())), I64(0), n)
            with fb.if_(b.not_(ok0.get())):
                fb.store_at(I8(1), flags, row)
            pos = fb.load_at(pos_ptr, I64(0))
            with fb.if_(b.icmp_signed(">", b.add(pos, n), self.slot("out_cap"))):
                fb.store_at(b.add(pos, n), self.slot("need", I64P), I64(1))
                fb.ret(row)
            with fb.for_(I64(0), n, "copy") as i:
                fb.store_at(fb.load_at(S["icol"], i.get()), out_idx, b.add(pos, i.get()))
                fb.store_at(fb.load_at(S["ival"], i.get()), out_val, b.add(pos, i.get()))
            fb.store_at(b.add(pos, n), pos_ptr, I64(0))
            fb.store_at(n, nnz, row)
        fb.b.ret(end)
        return self.layout

    def emit_fused(self, parts, coef: np.ndarray, intercept: np.ndarray, name: str) -> Layout:
        """Fused kernel: ``raw[row, k] = sum(x[j] * coef[k, j]) + intercept[k]`` over the
        stacked row's stored entries in column order.  ``parts`` are ``("text", spec, input)``
        and ``("dense", width)`` in stack order."""
        K, F = coef.shape
        for i, part in enumerate(parts):
            if part[0] == "text":
                self.layout.add(f"objs{i}")
                for key in scratch_sizes(part[1], 1):
                    self.layout.add(f"v{i}.{key}")
            else:
                self.layout.add(f"dense{i}")
        self.layout.add("raw")
        fn, begin, end = self.begin(name)
        fb, b = self.fb, self.fb.b
        flags = self.slot("flags", I8.as_pointer())
        raw = self.slot("raw", F64P)
        W = fb.table(f"{name}.coef", np.ascontiguousarray(coef, np.float64).ravel(), F64)
        hoisted = {}
        for i, part in enumerate(parts):
            if part[0] == "text":
                hoisted[i] = (self.scratch(i, part[1]), self.slot(f"objs{i}", I64P))
            else:
                hoisted[i] = self.slot(f"dense{i}", F64P)
        with fb.for_(begin, end, "row") as r:
            row = r.get()
            accs = [fb.var(F64, F64(0.0), f"acc{k}") for k in range(K)]
            offset = 0
            for i, part in enumerate(parts):
                if part[0] == "text":
                    spec = part[1]
                    S, objs = hoisted[i]
                    okc = fb.var(I1, I1(1), f"p{i}.ok")
                    emit = self.count_fn(spec, S, okc, i)
                    n = self.row_vectorizer(i, spec, S, emit, fb.load_at(objs, row), row, flags,
                                            lambda: fb.ret(row))
                    with fb.if_(b.not_(okc.get())):
                        fb.store_at(I8(1), flags, row)
                    with fb.for_(I64(0), n, f"dot{i}") as j:
                        col = b.add(b.sext(fb.load_at(S["icol"], j.get()), I64), I64(offset))
                        x = fb.load_at(S["ival"], j.get())
                        for k in range(K):
                            w = fb.load_at(W, b.add(col, I64(k * F)))
                            accs[k].set(b.fadd(accs[k].get(), b.fmul(x, w)))
                    offset += spec.n_features
                else:
                    width = part[1]
                    dense = hoisted[i]
                    for j in range(width):
                        x = fb.load_at(dense, b.add(b.mul(row, I64(width)), I64(j)))
                        with fb.if_(b.fcmp_unordered("!=", x, F64(0.0))):
                            for k in range(K):
                                w = F64(float(coef[k, offset + j]))
                                accs[k].set(b.fadd(accs[k].get(), b.fmul(x, w)))
                    offset += width
            for k in range(K):
                v = b.fadd(accs[k].get(), F64(float(intercept[k])))
                fb.store_at(v, raw, b.add(b.mul(row, I64(K)), I64(k)))
        fb.b.ret(end)
        return self.layout


# -- UTF-8 and MurmurHash3 (HashingVectorizer) -----------------------------------------------------

def encode_utf8(fb: FB, ptr, n, out):
    """Write the UTF-8 encoding of ``n`` code points at ``ptr`` to ``out``; returns its length
    (surrogates never get here: such rows go to the host)."""
    b = fb.b
    o = fb.var(I64, I64(0), "u8.o")

    def put(v):
        fb.store_at(b.trunc(v, I8), out, o.get())
        o.set(b.add(o.get(), I64(1)))
    with fb.for_(I64(0), n, "u8") as k:
        c = fb.load_at(ptr, k.get())
        with fb.if_(b.icmp_unsigned("<", c, I32(0x80))):
            put(c)
            fb.cont()
        with fb.if_(b.icmp_unsigned("<", c, I32(0x800))):
            put(b.or_(I32(0xC0), b.lshr(c, I32(6))))
            put(b.or_(I32(0x80), b.and_(c, I32(0x3F))))
            fb.cont()
        with fb.if_(b.icmp_unsigned("<", c, I32(0x10000))):
            put(b.or_(I32(0xE0), b.lshr(c, I32(12))))
            put(b.or_(I32(0x80), b.and_(b.lshr(c, I32(6)), I32(0x3F))))
            put(b.or_(I32(0x80), b.and_(c, I32(0x3F))))
            fb.cont()
        put(b.or_(I32(0xF0), b.lshr(c, I32(18))))
        put(b.or_(I32(0x80), b.and_(b.lshr(c, I32(12)), I32(0x3F))))
        put(b.or_(I32(0x80), b.and_(b.lshr(c, I32(6)), I32(0x3F))))
        put(b.or_(I32(0x80), b.and_(c, I32(0x3F))))
    return o.get()


def emit_murmur(module: ir.Module) -> ir.Function:
    """``i32 mloc.text.murmur3(i8* data, i64 len)``: MurmurHash3_x86_32 with seed 0, as
    ``sklearn.utils.murmurhash3_32(bytes, seed=0)`` (signed result)."""
    name = "mloc.text.murmur3"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(I32, [I8.as_pointer(), I64]), name)
    fn.linkage = "internal"
    fb = FB(module, fn)
    b = fb.b
    data, n = fn.args
    c1, c2 = I32(0xCC9E2D51), I32(0x1B873593)

    def rotl(x, r):
        return b.or_(b.shl(x, I32(r)), b.lshr(x, I32(32 - r)))
    h = fb.var(I32, I32(0), "mm.h")
    nblocks = b.sdiv(n, I64(4))

    def byte(i):
        return b.zext(fb.load_at(data, i), I32)
    with fb.for_(I64(0), nblocks, "mm.blk") as i:
        base = b.mul(i.get(), I64(4))
        k = byte(base)
        for s in (1, 2, 3):
            k = b.or_(k, b.shl(byte(b.add(base, I64(s))), I32(8 * s)))
        k = b.mul(rotl(b.mul(k, c1), 15), c2)
        hh = b.xor(h.get(), k)
        hh = rotl(hh, 13)
        h.set(b.add(b.mul(hh, I32(5)), I32(0xE6546B64)))
    tail = b.mul(nblocks, I64(4))
    rem = b.sub(n, tail)
    k1 = fb.var(I32, I32(0), "mm.k1")
    with fb.if_(b.icmp_signed(">=", rem, I64(3))):
        k1.set(b.xor(k1.get(), b.shl(byte(b.add(tail, I64(2))), I32(16))))
    with fb.if_(b.icmp_signed(">=", rem, I64(2))):
        k1.set(b.xor(k1.get(), b.shl(byte(b.add(tail, I64(1))), I32(8))))
    with fb.if_(b.icmp_signed(">=", rem, I64(1))):
        k1.set(b.xor(k1.get(), byte(tail)))
        kk = b.mul(rotl(b.mul(k1.get(), c1), 15), c2)
        h.set(b.xor(h.get(), kk))
    x = b.xor(h.get(), b.trunc(n, I32))
    x = b.xor(x, b.lshr(x, I32(16)))
    x = b.mul(x, I32(0x85EBCA6B))
    x = b.xor(x, b.lshr(x, I32(13)))
    x = b.mul(x, I32(0xC2B2AE35))
    x = b.xor(x, b.lshr(x, I32(16)))
    b.ret(x)
    return fn


def declare_unused():  # pragma: no cover - keeps linters quiet about re-exported helpers
    return declare


# -- simple text statistics --------------------------------------------------------------------

STAT_KINDS = ("len", "count", "word_count", "upper_eq", "startswith", "endswith", "contains")


def emit_stats(em: TextEmitter, stats, name: str) -> Layout:
    """Kernel computing ``stats`` (``(kind, sub)`` pairs, see :data:`STAT_KINDS`) of one string
    column into ``out{i}`` (i64 for counts, one byte for booleans); non-``str`` rows are
    flagged.  ``count`` is ``str.count`` (non-overlapping; ``len + 1`` for ``''``),
    ``word_count`` is ``len(s.split())``, ``upper_eq`` is ``s.upper() == s``."""
    em.layout.add("objs0")
    for i in range(len(stats)):
        em.layout.add(f"out{i}")
    fn, begin, end = em.begin(name)
    fb, b = em.fb, em.fb.b
    objs = em.slot("objs0", I64P)
    flags = em.slot("flags", I8.as_pointer())
    outs = [em.slot(f"out{i}", (I8 if k in ("upper_eq", "startswith", "endswith", "contains")
                                else I64).as_pointer()) for i, (k, _) in enumerate(stats)]
    with fb.for_(begin, end, "row") as r:
        row = r.get()
        got, kind, data, length = em.read_str(fb.load_at(objs, row))
        with b.if_else(got) as (then, other):
            with then:
                def body(read):
                    for (k, sub), out in zip(stats, outs):
                        res = _stat(em, read, length, k, sub)
                        fb.store_at(res if k in ("len", "count", "word_count")
                                    else b.zext(res, I8), out, row)
                em.for_each_kind(kind, data, body)
            with other:
                fb.store_at(I8(1), flags, row)
    fb.b.ret(end)
    return em.layout


def _match_at(em, read, at, sub):
    """i1: ``s[at:at+len(sub)] == sub`` (the caller checks the bounds)."""
    b = em.fb.b
    res = I1(1)
    for j, ch in enumerate(sub):
        res = b.and_(res, b.icmp_unsigned("==", read(b.add(at, I64(j))), I32(ord(ch))))
    return res


def _stat(em: TextEmitter, read, length, kind, sub):
    fb, b = em.fb, em.fb.b
    if kind == "len":
        return length
    if kind == "upper_eq":
        res = fb.var(I1, I1(1), "up")
        with fb.for_(I64(0), length, "up.k") as k:
            with fb.if_(b.not_(em.has_flag(read(k.get()), tu.UPPER_FIXED))):
                res.set(I1(0))
                fb.brk()
        return res.get()
    if kind == "word_count":
        n = fb.var(I64, I64(0), "wc")
        prev = fb.var(I1, I1(1), "wc.space")
        with fb.for_(I64(0), length, "wc.k") as k:
            sp = em.has_flag(read(k.get()), tu.SPACE)
            n.set(b.add(n.get(), b.zext(b.and_(prev.get(), b.not_(sp)), I64)))
            prev.set(sp)
        return n.get()
    m = len(sub)
    if kind == "startswith":
        if m == 0:
            return I1(1)
        res = fb.var(I1, I1(0), "sw")
        with fb.if_(b.icmp_signed(">=", length, I64(m))):
            res.set(_match_at(em, read, I64(0), sub))
        return res.get()
    if kind == "endswith":
        if m == 0:
            return I1(1)
        res = fb.var(I1, I1(0), "ew")
        with fb.if_(b.icmp_signed(">=", length, I64(m))):
            res.set(_match_at(em, read, b.sub(length, I64(m)), sub))
        return res.get()
    if m == 0:
        return b.add(length, I64(1)) if kind == "count" else I1(1)
    n = fb.var(I64, I64(0), "cnt")
    i = fb.var(I64, I64(0), "cnt.i")
    with fb.while_(lambda: b.icmp_signed("<=", b.add(i.get(), I64(m)), length), "cnt.scan"):
        hit = _match_at(em, read, i.get(), sub)
        with b.if_else(hit) as (then, other):
            with then:
                n.set(b.add(n.get(), I64(1)))
                i.set(b.add(i.get(), I64(m)))
            with other:
                i.set(b.add(i.get(), I64(1)))
        if kind == "contains":
            with fb.if_(b.icmp_unsigned("!=", n.get(), I64(0))):
                fb.brk()
    return n.get() if kind == "count" else b.icmp_unsigned("!=", n.get(), I64(0))
