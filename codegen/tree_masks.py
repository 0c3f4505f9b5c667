"""Leaf-mask walk: every tree's exit leaf from per-slot bucket masks (no tree walk at all).

Each slot (one feature under one encoding, see ``emit_trees.lower``) is compared against the
sorted distinct cut points ``b_0 < ... < b_{k-1}`` that any split on it uses; its *bucket*
``r = #{j : v > b_j}`` decides every split on that slot: a numeric split ``v > b_j`` goes
right iff ``r > j``, a categorical split (its run cut points are among the ``b_j``) goes
right iff an even number of its cuts lie below ``r``.  So for a tree ``t`` and a slot ``s``
the effect of all of ``t``'s splits on ``s`` is one leaf mask ``M[s][r][t]``: the AND, over
those splits, of "clear the leaves of the subtree not taken".  A row's exit leaf in tree
``t`` is the only leaf no split of its path cleared: ``cttz(AND_s M[s][r_s][t])`` (leaves
numbered by their LightGBM index, bits above the tree's leaves stay set and lie above it).

Per row the kernel ANDs one ``<C x iW>`` vector per used slot for ``C`` trees at once (C
trees = one chunk; a chunk's tables stay in cache while the block's rows pass), then looks
up each tree's leaf value.  Leaf values are stored and summed afterwards, per chunk, tree by
tree in order over the block's rows (vectorized over rows), so sums keep LightGBM's order.
The cost per tree and row is independent of depth, data and branch predictability.

On AVX-512 hosts (single output, <= 32 leaves) positions are bytes, transposed 8 rows at a
time, and each tree's leaf values for 8 rows are one or two ``vpermi2pd`` register look-ups
added lane-wise (each row still in tree order); slots with 25..512 cut points find their
bucket by two vector compares (block ends, then one block).  See codegen/README.md.

QuickScorer (Lucchese et al. 2015) ANDs one mask per *false node*; here every node's effect
is folded, per (slot, bucket), into one table row, which pays off when models reuse few cut
points per feature (mtpl2: 46 distinct numeric (feature, threshold) pairs for 21,810 numeric
nodes; NYC_taxi 279 for 3000).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from .ensemble import DecisionKind, Ensemble
from .llvm_util import byte_global, for_range

F64 = ir.DoubleType()
F32 = ir.FloatType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)

#: Trees per chunk for 32-bit / 64-bit leaf masks (one chunk's masks: 4 AVX-512 registers;
#: 16 trees were 2x slower, 128 no better than 64).
CHUNK_TREES = {32: 64, 64: 32}
#: Largest mask table (bytes) and number of distinct cut points the walk is used for.
MAX_TABLE_BYTES = 8 << 20
MAX_BREAKS = 2048
#: Sum only the real trees of a padded last chunk.
TAIL_CHUNK = True
#: Rows whose sums the second loop builds at once (independent addition chains).
SUM_ROWS = 4
#: Slots with more cut points than this find their buckets by binary search (per row) instead
#: of counting the cut points below them (BUCKET_VEC rows at once).
LINEAR_BREAKS = 24
#: Rows compared against a slot's cut points at once (one vector).
BUCKET_VEC = 4
#: Sums of 8 rows at once by register table look-ups (``vpermi2pd``) where the host CPU has
#: AVX-512F (32-bit masks, one output): None = by the host's features, True/False = forced
#: (True on a CPU without AVX-512 would not run; tests force False for the generic path).
PERMUTE_SUMS = None
#: The permute path's padded last chunk ANDs only the lanes of its real trees.
TAIL_LANES = True
#: Slots with more than LINEAR_BREAKS and at most 8 * TWO_LEVEL_BLOCKS cut points find their
#: buckets by two vector compares per row on AVX-512 hosts (0: binary search everywhere).
TWO_LEVEL_BLOCKS = 64
#: The permute sums loop over groups of 8 trees (else every tree of a chunk is unrolled).
TREE_LOOP = True
#: Leaf masks stored bit-reversed, leaf = ctlz (``vplzcntd``: one instruction for three).
LEAD_ZEROS = True
#: Groups of 8 rows whose sums the permute path builds at once (independent chains).
PERMUTE_GROUPS = 2


def permute_sums(mk: "Masks", K: int) -> bool:
    """Whether the chunk sums use the AVX-512 register look-ups (``_permute_sums``)."""
    if K != 1 or mk.W != 32 or mk.C != 64:
        return False
    if PERMUTE_SUMS is not None:
        return PERMUTE_SUMS
    return _host_avx512()


def _host_avx512() -> bool:
    """The host CPU has AVX-512F (LLVM's feature string; part of ``target.cpu_key``)."""
    from .target import host_cpu

    return "+avx512f" in host_cpu()[1].split(",")


@dataclass
class Masks:
    C: int  # trees per chunk
    W: int  # bits per leaf mask (32 or 64)
    LP: int  # leaf values per tree in ``leaves`` (power of two >= max leaves)
    slots: list  # used slot indices (into the block's slot buffer)
    breaks: list  # per used slot: sorted distinct cut points (float64)
    base: list  # per used slot: its first table row
    G: int  # table rows per chunk (buckets of all used slots); row G is the initial mask
    table: np.ndarray  # (n_chunks, G + 1, C) uint32/uint64
    leaves: np.ndarray  # (n_chunks * C, LP) float64; padding trees: -0.0
    outs: np.ndarray  # (n_chunks * C,) int32 output of each tree (padding: 0)
    n_trees: int = 0  # real trees (the last chunk may be padded)
    lead_zeros: bool = False  # leaf i at bit W-1-i (ctlz) instead of bit i (cttz)

    @property
    def n_chunks(self) -> int:
        return self.table.shape[0]


def _subtree_leaves(left: list, right: list) -> tuple[list, list]:
    """Leaf bitmasks of each internal node's left and right subtree."""
    n = len(left)
    full = [0] * n

    def of(child):
        return (1 << ~child) if child < 0 else full[child]

    order, stack = [], [0] if n else []
    while stack:
        i = stack.pop()
        order.append(i)
        for c in (left[i], right[i]):
            if c >= 0:
                stack.append(c)
    for i in reversed(order):
        full[i] = of(left[i]) | of(right[i])
    return [of(c) for c in left], [of(c) for c in right]


def build_masks(ens: Ensemble, low, f32: bool = False) -> Masks | None:
    """The leaf-mask tables of ``ens`` over the slots of its lowering ``low``, or None when the
    walk does not apply (vector leaves, trees with more than 64 leaves, too many cut points
    or too large a table)."""
    from .emit_trees import _category_cuts, _numeric_slot, round_down_f32

    trees = ens.trees
    if not trees or any(t.leaf_width != 1 for t in trees):
        return None
    max_leaves = max(t.n_leaves for t in trees)
    if max_leaves > 64:
        return None
    W = 32 if max_leaves <= 32 else 64
    C = CHUNK_TREES[W]
    LP = 1 << max(0, (max_leaves - 1).bit_length())
    slot_index = {key: s for s, key in enumerate(low.slots)}

    def slot_of(key):
        return slot_index[key]

    z = ens.zero_threshold
    # per node: (slot, numeric threshold) or (slot, tuple of cut points) or (None, right?)
    decisions = []
    cuts_of_slot: dict = {}
    for tree in trees:
        feature, threshold = tree.feature.tolist(), tree.threshold.tolist()
        kind, missing = tree.kind.tolist(), tree.missing_type.tolist()
        dleft = tree.default_left.tolist()
        dec = []
        for i in range(tree.n_internal):
            if kind[i] == DecisionKind.CATEGORICAL:
                words = tree.cat_words[tree.cat_begin[i]:tree.cat_end[i]].tolist()
                cuts = _category_cuts(words, dleft[i])
                if not cuts:
                    dec.append((None, True, True))  # one region: every value goes right
                    continue
                s = slot_of(("cat_nanleft" if dleft[i] else "cat", feature[i]))
                pts, cat = tuple(cuts), True
            else:
                s, thr = _numeric_slot(z, feature[i], threshold[i], missing[i], dleft[i],
                                       slot_of)
                pts, cat = (thr,), False
            if f32:
                pts = tuple(round_down_f32(np.array(pts)).astype(np.float64).tolist())
            cuts_of_slot.setdefault(s, set()).update(pts)
            dec.append((s, pts, cat))
        decisions.append(dec)
    used = sorted(cuts_of_slot)
    breaks = [np.array(sorted(cuts_of_slot[s]), np.float64) for s in used]
    if sum(len(b) for b in breaks) > MAX_BREAKS:
        return None
    base, G = [], 0
    for b in breaks:
        base.append(G)
        G += len(b) + 1
    T = len(trees)
    n_chunks = -(-T // C)
    dt = np.uint32 if W == 32 else np.uint64
    if n_chunks * (G + 1) * C * (W // 8) > MAX_TABLE_BYTES:
        return None
    full = (1 << W) - 1
    table = np.full((n_chunks, G + 1, C), full, dt)
    leaves = np.zeros((n_chunks * C, LP), np.float64)
    leaves[T:] = -0.0
    outs = np.zeros(n_chunks * C, np.int32)
    pos_of = [{v: j for j, v in enumerate(b.tolist())} for b in breaks]
    u_of = {s: u for u, s in enumerate(used)}
    right_cache: dict = {}
    for t, (tree, dec) in enumerate(zip(trees, decisions)):
        c, tc = divmod(t, C)
        leaves[t, :tree.n_leaves] = tree.leaf_value[:, 0]
        outs[t] = tree.output
        lmask, rmask = _subtree_leaves(tree.left.tolist(), tree.right.tolist())
        col = table[c, :, tc]
        for i, (s, pts, cat) in enumerate(dec):
            clear_l, clear_r = full & ~lmask[i], full & ~rmask[i]  # go right / go left
            if s is None:
                col[G] &= dt(clear_l if pts else clear_r)
                continue
            u = u_of[s]
            key = (u, pts, cat)
            right = right_cache.get(key)
            if right is None:
                js = np.array([pos_of[u][p] for p in pts])
                r = np.arange(len(breaks[u]) + 1)
                if cat:  # cut points below bucket r: those with index < r; even count: right
                    right = (np.searchsorted(js, r, "left") % 2) == 0
                else:
                    right = r > js[0]
                right_cache[key] = right
            rows = slice(base[u], base[u] + len(breaks[u]) + 1)
            col[rows] &= np.where(right, dt(clear_l), dt(clear_r))
    if LEAD_ZEROS:  # leaf i at bit W-1-i: a row's leaf is ctlz of its AND (one instruction)
        table = _reverse_bits(table)
    return Masks(C=C, W=W, LP=LP, slots=used, breaks=breaks, base=base, G=G, table=table,
                 leaves=leaves, outs=outs, n_trees=T, lead_zeros=LEAD_ZEROS)


_BITREV8 = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], np.uint8)


def _reverse_bits(a: np.ndarray) -> np.ndarray:
    """Every word of ``a`` (uint32/uint64) with its bits in reverse order."""
    n = a.dtype.itemsize
    by = a.reshape(-1).view(np.uint8).reshape(-1, n)[:, ::-1]
    return np.ascontiguousarray(_BITREV8[by]).view(a.dtype).reshape(a.shape)


def _leaf_index(b, mk: "Masks", m, C: int, W: int):
    """Leaf index of every lane of the AND ``m`` (``<C x iW>``): ctlz with bit-reversed
    tables, else cttz."""
    VEC = ir.VectorType(ir.IntType(W), C)
    name = f"llvm.{'ctlz' if mk.lead_zeros else 'cttz'}.v{C}i{W}"
    fn = b.module.globals.get(name) or ir.Function(
        b.module, ir.FunctionType(VEC, [VEC, ir.IntType(1)]), name)
    return b.call(fn, [m, ir.Constant(ir.IntType(1), 1)])



def masks_function(module: ir.Module, mk: Masks, name: str, B: int, S: int, K: int,
                   f32: bool = False) -> ir.Function:
    """``void name(const double* slots, int64 nb, double* acc)`` (``const float*`` slots in
    float32 mode): add every tree's leaf to the sums ``acc`` (``nb x K``) of the block's
    ``nb`` encoded rows (``S`` slots each, rows padded to a multiple of ``BUCKET_VEC``)."""
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    assert BUCKET_VEC % SUM_ROWS == 0 and B % BUCKET_VEC == 0
    FT = F32 if f32 else F64
    MW = ir.IntType(mk.W)
    VEC = ir.VectorType(MW, mk.C)
    V4D = ir.VectorType(F64, BUCKET_VEC)
    V4I = ir.VectorType(I32, BUCKET_VEC)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [FT.as_pointer(), I64, F64.as_pointer()]),
                     name)
    fn.linkage = "internal"
    buf, nb, acc = fn.args
    for a in (buf, acc):
        a.add_attribute("noalias")
    tag = name
    g_table = byte_global(module, f"{tag}.table", mk.table.tobytes(), align=64)
    g_outs = byte_global(module, f"{tag}.outs", mk.outs.tobytes())
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    SU = len(mk.slots)
    C, G = mk.C, mk.G
    gidx = b.bitcast(b.alloca(ir.ArrayType(I32, max(1, B * SU)), name="gidx"), I32.as_pointer())
    perm = permute_sums(mk, K)
    idxs_a = b.alloca(ir.ArrayType(ir.IntType(8) if perm else I32, B * C), name="leafpos")
    idxs_a.align = 64
    idxs = b.bitcast(idxs_a, I32.as_pointer())
    if perm:  # leaf values per tree in rows of 16 or 32 doubles, read 8 at a time
        LV = 16 if mk.LP <= 16 else 32
        padded = np.zeros((mk.leaves.shape[0], LV), np.float64)
        padded[:, :mk.LP] = mk.leaves
        g_leaves = byte_global(module, f"{tag}.leaves{LV}", padded.tobytes(), align=64)
    else:
        g_leaves = byte_global(module, f"{tag}.leaves", mk.leaves.tobytes(), align=64)
    table = b.bitcast(g_table, VEC.as_pointer())
    leaves = b.bitcast(g_leaves, F64.as_pointer())
    outs = b.bitcast(g_outs, I32.as_pointer())

    # 1. buckets: every used slot of BUCKET_VEC rows at once against its cut points
    two_level = TWO_LEVEL_BLOCKS > 0 and _host_avx512()
    n4 = b.sdiv(b.add(nb, I64(BUCKET_VEC - 1)), I64(BUCKET_VEC))
    with for_range(b, I64(0), n4, "bucket") as q:
        r0 = b.mul(q, I64(BUCKET_VEC))
        for u, (s, brk) in enumerate(zip(mk.slots, mk.breaks)):
            if len(brk) > LINEAR_BREAKS and two_level and len(brk) <= 8 * TWO_LEVEL_BLOCKS:
                _two_level_buckets(b, mk, u, s, brk, buf, S, gidx, SU, r0, f32)
                continue
            if len(brk) > LINEAR_BREAKS:
                _binary_search_buckets(b, mk, u, s, brk, buf, S, gidx, SU, r0, f32)
                continue
            v = ir.Constant(V4D, ir.Undefined)
            for i in range(BUCKET_VEC):
                x = b.load(b.gep(buf, [b.add(b.mul(b.add(r0, I64(i)), I64(S)), I64(s))]))
                if f32:
                    x = b.fpext(x, F64)
                v = b.insert_element(v, x, I32(i))
            cnt = ir.Constant(V4I, [I32(mk.base[u])] * BUCKET_VEC)
            for t in brk.tolist():
                gt = b.fcmp_ordered(">", v, ir.Constant(V4D, [F64(t)] * BUCKET_VEC))
                cnt = b.sub(cnt, b.sext(gt, V4I))
            for i in range(BUCKET_VEC):
                p = b.gep(gidx, [b.add(b.mul(b.add(r0, I64(i)), I64(SU)), I64(u))])
                b.store(b.extract_element(cnt, I32(i)), p)

    # 2. chunk after chunk of C trees: leaf positions of every row, then the sums
    def chunk(c, n_trees):
        tb = b.gep(table, [b.mul(c, I64(G + 1))])
        init = b.load(b.gep(tb, [I64(G)]), align=32)
        lv = b.gep(leaves, [b.mul(c, I64(C * mk.LP))])
        if perm:
            lv = b.gep(leaves, [b.mul(c, I64(C * LV))])
            _rows_then_permute_sums(b, mk, tb, init, lv, LV, gidx, idxs, acc, n4, n_trees)
        else:
            _rows_then_sums(b, mk, tb, init, lv, gidx, idxs, acc, outs, c, n4, K, n_trees)

    full, tail = divmod(mk.n_trees, C)
    if not TAIL_CHUNK and tail:
        full, tail = full + 1, 0
    if full:
        with for_range(b, I64(0), I64(full), "mchunk") as c:
            chunk(c, C)
    if tail:  # the last chunk sums only its real trees (NYC_taxi: 4 of 32)
        chunk(I64(full), tail)
    b.ret_void()
    return fn


def _rows_then_sums(b, mk: Masks, tb, init, lv, gidx, idxs, acc, outs, c, n4, K: int,
                    n_trees: int) -> None:
    """One chunk: every row's leaf masks -> leaf positions (vector cttz, no per-tree
    extraction to scalar registers), then the sums, ``SUM_ROWS`` rows at a time, tree by tree
    in order (independent chains of additions, one per row)."""
    C, W = mk.C, mk.W
    MW = ir.IntType(W)
    VEC = ir.VectorType(MW, C)
    VI = ir.VectorType(I32, C)
    SU = len(mk.slots)
    module = b.module
    offsets = ir.Constant(VEC, [MW(t * mk.LP) for t in range(C)])
    n_rows = b.mul(n4, I64(BUCKET_VEC))  # rows padded like the bucket phase's
    with for_range(b, I64(0), n_rows, "mrow") as r:
        m = init
        row_g = b.gep(gidx, [b.mul(r, I64(SU))])
        for u in range(SU):
            g = b.sext(b.load(b.gep(row_g, [I64(u)])), I64)
            m = b.and_(m, b.load(b.gep(tb, [g]), align=32))
        pos = b.add(_leaf_index(b, mk, m, C, W), offsets)
        if W != 32:
            pos = b.trunc(pos, VI)
        b.store(pos, b.bitcast(b.gep(idxs, [b.mul(r, I64(C))]), VI.as_pointer()), align=32)
    R = SUM_ROWS
    with for_range(b, I64(0), n_rows, "msum", step=R) as r0:
        rows = [b.add(r0, I64(j)) for j in range(R)]
        pos_rows = [b.gep(idxs, [b.mul(row, I64(C))]) for row in rows]
        if K == 1:
            ptrs = [b.gep(acc, [row]) for row in rows]
            sums = [b.load(p) for p in ptrs]
            for t in range(n_trees):
                for j in range(R):
                    i = b.sext(b.load(b.gep(pos_rows[j], [I64(t)])), I64)
                    sums[j] = b.fadd(sums[j], b.load(b.gep(lv, [i])))
            for p, v in zip(ptrs, sums):
                b.store(v, p)
        else:
            for t in range(n_trees):
                k = b.sext(b.load(b.gep(outs, [b.add(b.mul(c, I64(C)), I64(t))])), I64)
                for j in range(R):
                    i = b.sext(b.load(b.gep(pos_rows[j], [I64(t)])), I64)
                    p = b.gep(acc, [b.add(b.mul(rows[j], I64(K)), k)])
                    b.store(b.fadd(b.load(p), b.load(b.gep(lv, [i]))), p)


def _intrinsic(module, name: str, ret, args) -> ir.Function:
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name)


def _transpose8(b, rows: list) -> list:
    """8 x 8 transpose of eight ``<8 x i64>`` vectors: 3 butterfly stages of two-source
    shuffles (``vpermt2q`` / unpacks), 24 in all."""
    v = list(rows)
    for d in (1, 2, 4):
        lo_mask = [k if k & d == 0 else 8 + k - d for k in range(8)]
        hi_mask = [k + d if k & d == 0 else 8 + k for k in range(8)]
        w = list(v)
        for i in range(8):
            if i & d:
                continue
            w[i] = b.shuffle_vector(v[i], v[i + d], ir.Constant(ir.VectorType(I32, 8), lo_mask))
            w[i + d] = b.shuffle_vector(v[i], v[i + d], ir.Constant(ir.VectorType(I32, 8), hi_mask))
        v = w
    return v


def _rows_then_permute_sums(b, mk: Masks, tb, init, lv, LV: int, gidx, idxs, acc, n4,
                            n_trees: int) -> None:
    """One chunk, AVX-512: every row's leaf positions as bytes (tree-local leaf index), then
    the sums of 8 rows at once: the 8 rows' position bytes transposed so that lane ``r`` of
    one ``<8 x i64>`` holds row ``r``'s positions of 8 trees; tree ``t``'s 8 leaf values are
    two ``vpermi2pd`` look-ups in its 16/32 leaf values (and a select on bit 4 for 32), added
    lane-wise: each row's sum still takes the trees in order (bit-identical).  Rows past the
    last multiple of 8 (a block of 4k rows) take the scalar sums from the same bytes."""
    C = mk.C
    I8 = ir.IntType(8)
    VEC = ir.VectorType(I32, C)
    V8D = ir.VectorType(F64, 8)
    V8Q = ir.VectorType(I64, 8)
    SU = len(mk.slots)
    module = b.module
    pname = "llvm.x86.avx512.vpermi2var.pd.512"
    vperm = module.globals.get(pname) or ir.Function(
        module, ir.FunctionType(V8D, [V8D, V8Q, V8D]), pname)
    pos8 = b.bitcast(idxs, I8.as_pointer())
    n_rows = b.mul(n4, I64(BUCKET_VEC))
    # a padded last chunk ANDs only the lanes of its real trees (16 at a time)
    CL = min(C, -(-n_trees // 16) * 16) if TAIL_LANES else C
    VL = ir.VectorType(I32, CL)
    if CL < C:
        init = b.shuffle_vector(init, init, ir.Constant(VL, list(range(CL))))
    with for_range(b, I64(0), n_rows, "mrow") as r:
        m = init
        row_g = b.gep(gidx, [b.mul(r, I64(SU))])
        for u in range(SU):
            g = b.sext(b.load(b.gep(row_g, [I64(u)])), I64)
            m = b.and_(m, b.load(b.bitcast(b.gep(tb, [g]), VL.as_pointer()), align=32))
        pos = b.trunc(_leaf_index(b, mk, m, CL, 32), ir.VectorType(I8, CL))
        b.store(pos, b.bitcast(b.gep(pos8, [b.mul(r, I64(C))]),
                               ir.VectorType(I8, CL).as_pointer()), align=16)
    lvv = b.bitcast(lv, V8D.as_pointer())
    entry = ir.IRBuilder(b.function.entry_basic_block)
    entry.position_at_start(b.function.entry_basic_block)
    colbuf = entry.alloca(ir.ArrayType(V8Q, 8 * PERMUTE_GROUPS), name="pcols")
    sumbuf = entry.alloca(ir.ArrayType(V8D, PERMUTE_GROUPS), name="psums")
    colbuf.align = sumbuf.align = 64

    def rows_sums(r0, ng):
        """Sums of ``ng`` groups of 8 rows from ``r0``: ng independent addition chains, each
        tree's leaf values loaded once for all of them."""
        accps, sums, cols = [], [], []
        for gq in range(ng):
            rg = b.add(r0, I64(8 * gq))
            blk = b.bitcast(b.gep(pos8, [b.mul(rg, I64(C))]), V8Q.as_pointer())
            accps.append(b.bitcast(b.gep(acc, [rg]), V8D.as_pointer()))
            sums.append(b.load(accps[-1], align=8))
            # cols[q][r] = row r's position bytes of trees 8q..8q+7
            cols.append(_transpose8(b, [b.load(b.gep(blk, [I64(j)]), align=64)
                                        for j in range(8)]))

        def tree(t, k, cq, sums):
            """Add tree ``t``'s leaves (its positions: byte ``k`` of the lanes of ``cq[gq]``)."""
            tab = [b.load(b.gep(lvv, [b.add(b.mul(t, I64(LV // 8)), I64(i))]), align=64)
                   for i in range(LV // 8)]
            for gq in range(ng):
                idx = cq[gq]
                if k:
                    idx = b.lshr(idx, ir.Constant(V8Q, [I64(8 * k)] * 8))
                val = b.call(vperm, [tab[0], idx, tab[1]])
                if LV == 32:
                    hi = b.call(vperm, [tab[2], idx, tab[3]])
                    bit4 = b.icmp_unsigned("!=", b.and_(idx, ir.Constant(V8Q, [I64(16)] * 8)),
                                           ir.Constant(V8Q, [I64(0)] * 8))
                    val = b.select(bit4, hi, val)
                sums[gq] = b.fadd(sums[gq], val)

        nq = n_trees // 8 if TREE_LOOP else 0
        if nq < 2:
            nq = 0  # 8 trees or fewer, or no loop: every tree unrolled below
        if nq:  # a loop over groups of 8 trees (8 trees unrolled): small code
            colp = b.bitcast(b.gep(colbuf, [I64(0), I64(0)]), V8Q.as_pointer())
            sump = b.bitcast(b.gep(sumbuf, [I64(0), I64(0)]), V8D.as_pointer())
            for gq in range(ng):
                b.store(sums[gq], b.gep(sump, [I64(gq)]))
                for q in range(8):
                    b.store(cols[gq][q], b.gep(colp, [I64(8 * gq + q)]))
            with for_range(b, I64(0), I64(nq), "ptree") as q:
                cur = [b.load(b.gep(sump, [I64(gq)])) for gq in range(ng)]
                cq = [b.load(b.gep(colp, [b.add(q, I64(8 * gq))])) for gq in range(ng)]
                for k in range(8):
                    tree(b.add(b.mul(q, I64(8)), I64(k)), k, cq, cur)
                for gq in range(ng):
                    b.store(cur[gq], b.gep(sump, [I64(gq)]))
            sums = [b.load(b.gep(sump, [I64(gq)])) for gq in range(ng)]
        for t in range(8 * nq, n_trees):
            tree(I64(t), t % 8, [cols[gq][t // 8] for gq in range(ng)], sums)
        for p, v in zip(accps, sums):
            b.store(v, p, align=8)

    RG = PERMUTE_GROUPS
    nbig = b.and_(n_rows, I64(-8 * RG))
    with for_range(b, I64(0), nbig, "psum", step=8 * RG) as r0:
        rows_sums(r0, RG)
    n8 = b.and_(n_rows, I64(-8))
    if RG > 1:
        with for_range(b, nbig, n8, "psum8", step=8) as r0:
            rows_sums(r0, 1)
    lvs = b.bitcast(lv, F64.as_pointer())
    with for_range(b, n8, n_rows, "psumtail") as r:
        p = b.gep(acc, [r])
        s = b.load(p)
        for t in range(n_trees):
            i = b.zext(b.load(b.gep(pos8, [b.add(b.mul(r, I64(C)), I64(t))])), I64)
            s = b.fadd(s, b.load(b.gep(lvs, [b.add(i, I64(t * LV))])))
        b.store(s, p)


def _two_level_buckets(b, mk: Masks, u: int, s: int, brk: np.ndarray, buf, S: int, gidx,
                       SU: int, r0, f32: bool) -> None:
    """``gidx[row][u] = base + #{cut points < v}`` in two vector steps per row (AVX-512 hosts):
    the cut points, +inf-padded to blocks of 8 (plus one block of +inf), are counted first by
    the last point of each block (one ``<8n x double>`` compare against the row's value, a
    popcount: ``c1`` blocks lie wholly below ``v``), then within block ``c1`` (one
    ``<8 x double>`` compare, a popcount).  No slot value is NaN, so ``v > +inf`` is false."""
    nb = -(-len(brk) // 8)
    padded = np.full(8 * (nb + 1), np.inf)
    padded[:len(brk)] = brk
    n1 = max(8, -(-nb // 8) * 8)  # level-1 lanes (block ends, +inf-padded)
    ends = np.full(n1, np.inf)
    ends[:nb] = padded[7:8 * nb:8]
    digest = hashlib.sha256(padded.tobytes()).hexdigest()[:16]
    g = byte_global(b.module, f"mloc.masks.blocks.{digest}", padded.tobytes(), align=64)
    V8D = ir.VectorType(F64, 8)
    VN = ir.VectorType(F64, n1)
    blocks = b.bitcast(g, V8D.as_pointer())
    ends_c = ir.Constant(VN, [F64(float(x)) for x in ends])
    IN = ir.IntType(n1)
    pop_n = _intrinsic(b.module, f"llvm.ctpop.i{n1}", IN, [IN])
    pop_8 = _intrinsic(b.module, "llvm.ctpop.i8", ir.IntType(8), [ir.IntType(8)])
    for i in range(BUCKET_VEC):
        row = b.add(r0, I64(i))
        v = b.load(b.gep(buf, [b.add(b.mul(row, I64(S)), I64(s))]))
        if f32:
            v = b.fpext(v, F64)
        vn = b.shuffle_vector(b.insert_element(ir.Constant(VN, ir.Undefined), v, I32(0)),
                              ir.Constant(VN, ir.Undefined), ir.Constant(ir.VectorType(I32, n1), [0] * n1))
        c1 = b.call(pop_n, [b.bitcast(b.fcmp_ordered(">", vn, ends_c), IN)])
        c1 = b.zext(c1, I64) if n1 < 64 else c1
        blk = b.load(b.gep(blocks, [c1]), align=64)
        v8 = b.shuffle_vector(vn, vn, ir.Constant(ir.VectorType(I32, 8), [0] * 8))
        c2 = b.zext(b.call(pop_8, [b.bitcast(b.fcmp_ordered(">", v8, blk), ir.IntType(8))]), I64)
        r = b.add(b.add(b.mul(c1, I64(8)), c2), I64(mk.base[u]))
        b.store(b.trunc(r, I32), b.gep(gidx, [b.add(b.mul(row, I64(SU)), I64(u))]))


def _binary_search_buckets(b, mk: Masks, u: int, s: int, brk: np.ndarray, buf, S: int, gidx,
                           SU: int, r0, f32: bool) -> None:
    """``gidx[row][u] = base + #{cut points < v}`` by branch-free binary search over the
    slot's cut points (padded with +inf to 2^k - 1: no slot value is NaN, so ``v > +inf`` is
    false) for BUCKET_VEC rows."""
    k = len(brk).bit_length()
    padded = np.full(2 ** k - 1, np.inf)
    padded[:len(brk)] = brk
    digest = hashlib.sha256(padded.tobytes()).hexdigest()[:16]
    g = byte_global(b.module, f"mloc.masks.cuts.{digest}", padded.tobytes(), align=64)
    table = b.bitcast(g, F64.as_pointer())
    for i in range(BUCKET_VEC):
        row = b.add(r0, I64(i))
        v = b.load(b.gep(buf, [b.add(b.mul(row, I64(S)), I64(s))]))
        if f32:
            v = b.fpext(v, F64)
        lo = I64(0)
        for step in (2 ** j for j in range(k - 1, -1, -1)):
            t = b.load(b.gep(table, [b.add(lo, I64(step - 1))]))
            lo = b.add(lo, b.select(b.fcmp_ordered(">", v, t), I64(step), I64(0)))
        b.store(b.trunc(b.add(lo, I64(mk.base[u])), I32),
                b.gep(gidx, [b.add(b.mul(row, I64(SU)), I64(u))]))
