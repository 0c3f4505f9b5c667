"""llvmlite emission of a tree ensemble as one compact, branch-free traversal kernel.

Design (measured alternatives and numbers are in ``codegen/README.md``):

* **The model is data, the kernel is small.**  Every tree is lowered to a flat array of
  16-byte nodes ``{double thr; i32 slot; i32 next}``.  Traversal is one step per level,
  ``node = next + (buf[slot] > thr)`` -- the two children of a node are stored side by side.
  The kernel's code size does not depend on the number of trees, so LLVM's full -O3 pipeline
  costs ~0.1 s whatever the model, instead of minutes for one-function-per-tree code.
* **No data-dependent branches in the traversal.**  Branchy per-tree code mispredicts about
  half of LightGBM's deep, unbalanced splits; here ``lanes`` rows (default 8) walk the same
  tree in lock step as independent dependency chains, so their load latencies overlap.
  A leaf node points to itself with the sign bit set, so finished rows idle in place and the
  walk stops when the AND of all lane states is negative.
* **Every decision becomes ``value <= thr``.**  Rows are first copied, per block of rows,
  into a small buffer of *slots*: each slot is one feature under one encoding, e.g. "NaN
  mapped to -inf" for splits that send NaN left, "NaN or |x| <= zero_threshold mapped to
  +inf" for zero-as-missing splits that send missing right, or a 0.0/1.0 predicate for a
  categorical bitset split.  Those encodings reproduce LightGBM's missing-value rules exactly,
  and the per-row cost is proportional to the number of slots, not of nodes.  Slot 0 holds
  -inf, and leaves use it, so ``-inf > leaf_value`` is false and a leaf's ``thr`` field can
  carry the leaf value.
* **Blocks of rows x all trees.**  A block's slot buffer stays in L1 while every tree walks
  over it; trees are visited in order, so each row's sum has LightGBM's summation order.

* **Branchy code where it pays.**  Models up to ``BRANCHY_MAX_RECORDS`` node records also
  get the same records as branchy code (chunk functions, one row through many trees, so
  the branch history of its earlier trees predicts its later ones).  The "auto" kernel
  times both walks on the first blocks of a batch and runs the rest with the faster one;
  the sums are bit-identical either way.

* **Chained records for single-output models.**  Leaves lead on to the next tree of a
  window of trees, so each lane of the lock-step walk runs through the window at its own
  pace instead of waiting for the slowest lane at every tree (:func:`chain_records`).
* **Leaf masks where they apply** (``tree_masks.py``): scalar-leaf models with few distinct
  cut points per slot skip tree walks altogether: one leaf-mask table row per (slot,
  bucket) and tree, ANDed for 64 trees at once; ``cttz`` gives each tree's leaf.
* **float32 mode** (``dtype="float32"``): float32 rows and slots, thresholds rounded down
  to float32 (the same decisions on float32 values), 8-byte records, float64 leaf sums:
  bit-identical results on float32 inputs (:func:`pack_float32`).

``emit_ensemble`` adds the kernel to a caller's ``llvmlite.ir.Module`` so a fused pipeline
kernel can call it on rows it computed into its own buffer.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections import deque
from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from .ensemble import DecisionKind, Ensemble, MissingType
from .llvm_util import byte_global, for_range
from .target import PRE_OPTIMIZED
from .tree_masks import BUCKET_VEC, build_masks, masks_function

F64 = ir.DoubleType()
F32 = ir.FloatType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F64P = F64.as_pointer()
NODE_T = ir.LiteralStructType([F64, I32, I32])
NODE = np.dtype([("thr", "<f8"), ("slot", "<i4"), ("next", "<i4")])
_CATEGORICAL = int(DecisionKind.CATEGORICAL)
LEAF_FLAG = -(2 ** 31)  # sign bit of ``next``: this node is a leaf
INDEX_MASK = 2 ** 31 - 1

#: Signature of every emitted kernel: ``void f(const double* X, int64 n_rows,
#: int64 row_stride, double* out)``; row ``i`` is ``X[i*row_stride : i*row_stride+n_features]``
#: and its ``n_outputs`` results go to ``out[i*n_outputs : (i+1)*n_outputs]``.
KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [F64P, I64, I64, F64P])
#: Signature of float32-mode kernels: the same with ``const float* X`` (``row_stride`` in floats).
KERNEL_TYPE_F32 = ir.FunctionType(ir.VoidType(), [F32.as_pointer(), I64, I64, F64P])


# ---------------------------------------------------------------------------------------------
# Lowering: Ensemble -> node array + slot table (pure NumPy, no LLVM)


@dataclass
class Lowered:
    nodes: np.ndarray  # NODE records, all trees back to back
    roots: np.ndarray  # int32, node index of each tree's root
    outputs: np.ndarray  # int32, first output of each tree
    widths: np.ndarray  # int32, leaf width of each tree
    leaves: np.ndarray  # float64, leaf vectors (only used when some width > 1)
    slots: list  # slot keys (kind, feature, ...), see _slot_value

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    def digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.nodes, self.roots, self.outputs, self.widths, self.leaves):
            h.update(a.tobytes())
        h.update(repr(self.slots).encode())
        return h.hexdigest()[:16]


_ZERO, _NAN = int(MissingType.ZERO), int(MissingType.NAN)


def _numeric_slot(z: float, f: int, thr: float, mt: int, dl: bool, slot_of) -> tuple[int, float]:
    """Slot and threshold that make a numeric split the test ``buf[slot] <= thr``.

    ``z`` is the ensemble's zero_threshold; ``f, thr, mt, dl`` the node's feature, threshold,
    missing type and default_left.
    """
    if not math.isfinite(thr):
        # the +-inf encodings below need finite thresholds; evaluate such splits exactly
        return slot_of(("pred", f, thr, mt, dl)), 0.5
    if mt == _ZERO:
        return slot_of(("zero_lo" if dl else "zero_hi", f)), thr
    if z > 0 and -z <= thr < z:
        # inputs in [-z, z] are read as 0.0: move the threshold out of that interval so that
        # they land on the side 0.0 lands on without rewriting the inputs
        thr = z if thr >= 0 else float(np.nextafter(-z, -np.inf))
    nan_left = dl if mt == _NAN else (0.0 <= thr)  # otherwise NaN is read as 0.0
    return slot_of(("nan_lo" if nan_left else "nan_hi", f)), thr


def _category_cuts(words: list, nan_left: bool) -> list:
    """Cut points between the runs of categories that go left at a categorical split.

    ``words`` is the split's bitset (uint32 words, bit c set: category c goes left).  The
    node's slot holds the category as an exact small integer (NaN as -1 when NaN goes left,
    anything out of range as +inf), so "category in set" is "value in one of the runs
    [a, b]".  With cuts ``a - 0.5, b + 0.5`` per run, regions with an odd index go left.
    """
    bits = 0
    for k, w in enumerate(words):
        bits |= int(w) << (32 * k)
    offset = 0
    if nan_left:
        bits, offset = (bits << 1) | 1, -1  # bit 0 now stands for category -1 (NaN)
    edges = bits ^ (bits << 1)  # set where a run starts (k) or just ended (k = last + 1)
    cuts = []
    while edges:
        low = edges & -edges
        cuts.append(low.bit_length() - 1 + offset - 0.5)
        edges ^= low
    return cuts


def lower(ens: Ensemble) -> Lowered:
    """Lay every tree out as node records (children side by side) and collect the slots."""
    slots: dict = {("neg_inf",): 0}

    def slot_of(key):
        return slots.setdefault(key, len(slots))

    records, roots, outputs, widths, leaves = [], [], [], [], []
    max_width = max((t.leaf_width for t in ens.trees), default=1)
    z = ens.zero_threshold
    for tree in ens.trees:
        base = len(records)
        roots.append(base)
        outputs.append(tree.output)
        widths.append(tree.leaf_width)
        leaf_slot, cuts, memo = {}, {}, {}
        # plain lists: indexing NumPy arrays element by element is ~10x slower
        feature, threshold = tree.feature.tolist(), tree.threshold.tolist()
        kind, missing = tree.kind.tolist(), tree.missing_type.tolist()
        default_left, lefts, rights = tree.default_left.tolist(), tree.left.tolist(), tree.right.tolist()
        leaf_values = tree.leaf_value[:, 0].tolist()
        entries = [None]
        # targets: ("child", code) is a tree node (code >= 0) or leaf (code < 0);
        # ("cat", i, lo, hi) is the binary search over regions lo..hi of categorical node i.
        # A target reached from several parents (a categorical split's regions all lead to
        # its two children) gets one record per parent but shares its children's pair.
        queue = deque([(0, ("child", 0 if tree.n_internal else -1))])
        while queue:  # breadth-first, so a record's two children get adjacent entries
            pos, target = queue.popleft()
            while True:
                if target[0] == "child" and target[1] >= 0 and kind[target[1]] == _CATEGORICAL:
                    i = target[1]
                    if i not in cuts:
                        words = tree.cat_words[tree.cat_begin[i]:tree.cat_end[i]].tolist()
                        cuts[i] = _category_cuts(words, default_left[i])
                    target = ("cat", i, 0, len(cuts[i]))
                if target[0] == "cat" and target[2] == target[3]:
                    # one region: its side of the original split
                    i, region = target[1], target[2]
                    target = ("child", lefts[i] if region % 2 else rights[i])
                    continue
                break
            if target[0] == "child" and target[1] < 0:
                leaf = ~target[1]
                if max_width == 1:
                    value = leaf_values[leaf]
                else:
                    if leaf not in leaf_slot:
                        leaf_slot[leaf] = len(leaves)
                        leaves.extend(tree.leaf_value[leaf])
                    value = float(leaf_slot[leaf])
                entries[pos] = (value, 0, (base + pos) | LEAF_FLAG)
                continue
            if target in memo:
                entries[pos] = memo[target]
                continue
            if target[0] == "cat":
                _, i, lo, hi = target
                mid = (lo + hi) // 2
                key = ("cat_nanleft" if default_left[i] else "cat", feature[i])
                slot, thr = slot_of(key), cuts[i][mid]
                kids = (("cat", i, lo, mid), ("cat", i, mid + 1, hi))
                both_leaves = False
            else:
                i = target[1]
                slot, thr = _numeric_slot(z, feature[i], threshold[i], missing[i],
                                          default_left[i], slot_of)
                left, right = lefts[i], rights[i]
                kids = (("child", left), ("child", right))
                both_leaves = left < 0 and right < 0
            pair = len(entries)
            entries.extend((None, None))
            nxt = base + pair
            if both_leaves:
                nxt |= LEAF_FLAG  # both children are leaves: the walk may stop one step early
            entries[pos] = memo[target] = (thr, slot, nxt)
            queue.append((pair, kids[0]))
            queue.append((pair + 1, kids[1]))
        records.extend(entries)
    key_list = [None] * len(slots)
    for key, s in slots.items():
        key_list[s] = key
    return Lowered(
        nodes=np.array(records, dtype=NODE),
        roots=np.array(roots, np.int32),
        outputs=np.array(outputs, np.int32),
        widths=np.array(widths, np.int32),
        leaves=np.array(leaves, np.float64),
        slots=key_list,
    )


# ---------------------------------------------------------------------------------------------
# float32 mode: 8-byte records over float32 slots


#: Element types of the kernels' input rows: "float64" (exact, the default) or "float32".
DTYPES = ("float64", "float32")
#: float32 records ``{float thr; i32 link}``; ``link`` = leaf flag (sign bit) | slot << shift
#: | next record index (see :func:`pack_float32`).
NODE32 = np.dtype([("thr", "<f4"), ("link", "<i4")])


def round_down_f32(t) -> np.ndarray:
    """Largest float32 <= ``t`` (elementwise).

    For a float32 value ``x`` and a float64 threshold ``t``, ``x <= t`` holds exactly when
    ``x <= round_down_f32(t)``: no float32 lies between the two.  That is what keeps the
    float32 kernels' decisions identical to float64 comparisons of the same values.
    """
    t = np.asarray(t, np.float64)
    with np.errstate(over="ignore"):
        f = t.astype(np.float32)  # round to nearest; may be above t (or +inf)
    above = f.astype(np.float64) > t
    f[above] = np.nextafter(f[above], np.float32(-np.inf))
    return f


@dataclass
class Packed32:
    """The lowered records of an ensemble in the float32 layout."""

    records: np.ndarray  # NODE32, same order and indices as ``Lowered.nodes``
    leaves: np.ndarray  # float64 leaf values; a leaf record's ``thr`` bits are its index here
    shift: int  # slot = (link & INDEX_MASK) >> shift; next = link & (LEAF_FLAG | (1 << shift) - 1)


def pack_float32(low: Lowered) -> Packed32:
    """Repack float64 node records ``{double thr; i32 slot; i32 next}`` as 8-byte records.

    Internal records keep their decision exactly (``thr`` rounded down to float32, valid
    because every slot holds a float32 value, see :func:`round_down_f32`).  Leaf values stay
    float64 in a separate table, so the sums are those of the float64 kernel.  Raises
    ValueError if the slot and record index do not fit in 31 bits together.
    """
    nodes = low.nodes
    n = len(nodes)
    shift = max(1, n.bit_length())
    if low.n_slots > 2 ** (31 - shift):
        raise ValueError(f"float32 mode packs slot and record index into 31 bits; this model "
                         f"has {n} node records and {low.n_slots} slots, too many for that "
                         "(use dtype='float64')")
    nxt = nodes["next"].astype(np.int64)
    idx = nxt & INDEX_MASK
    is_leaf = (nxt < 0) & (idx == np.arange(n))
    rec = np.zeros(n, NODE32)
    rec["thr"] = round_down_f32(np.where(is_leaf, 0.0, nodes["thr"]))
    if len(low.widths) and int(low.widths.max()) > 1:
        leaves = low.leaves  # a vector leaf's thr already is its first index in low.leaves
        first = nodes["thr"][is_leaf].astype(np.int64)
    else:
        leaves = nodes["thr"][is_leaf].astype(np.float64)
        first = np.arange(len(leaves), dtype=np.int64)
    rec["thr"].view(np.int32)[is_leaf] = first.astype(np.int32)
    slot = np.where(is_leaf, 0, nodes["slot"].astype(np.int64))  # slot 0 is -inf: leaves stay
    rec["link"] = ((nxt & LEAF_FLAG) | (slot << shift) | idx).astype(np.int64).astype(np.int32)
    return Packed32(records=rec, leaves=np.ascontiguousarray(leaves, np.float64), shift=shift)


# ---------------------------------------------------------------------------------------------
# Chained records: lanes run through a window of trees each at its own pace


#: Node records of the trees one chained walk covers (see :func:`chain_records`): a
#: window's records stay in L1 while every group of rows of a block walks it.
CHAIN_WINDOW_RECORDS = 1024
#: Use the chained walk for single-output models (see :func:`chain_records`).
CHAINED = True
#: Use the leaf-mask walk (``tree_masks``) instead of the lock-step walk where it applies.
MASKS = True
NODE_CHAIN = np.dtype([("thr", "<f8"), ("val", "<f8"), ("slot", "<i4"), ("next", "<i4")])
NODE_CHAIN32 = np.dtype([("thr", "<f4"), ("link", "<i4"), ("val", "<f8")])


@dataclass
class Chained:
    """Records for the chained walk, windows of consecutive trees, and their layout."""

    records: np.ndarray  # NODE_CHAIN or NODE_CHAIN32
    window_roots: np.ndarray  # int32, state (in 8-byte units) of each window's first root
    units: int  # 8-byte units per record (walk states count units)
    shift: int = 0  # float32 layout: link = flag | slot << shift | next (in units)


def chain_records(low: Lowered, f32: bool = False,
                  window_records: int | None = None) -> Chained | None:
    """Records in which a leaf leads on to the next tree, for single-output scalar leaves.

    In the lock-step walk all lanes wait for the slowest one at every tree (mtpl2: 8.5
    steps per tree for 4.7 on average).  Here every leaf record carries its value in
    ``val`` and points to the root of the next tree of its window (the window's last
    tree: to a final "sink" record that points to itself, flagged); internal records
    carry ``val = -0.0``.  A lane adds ``val`` at every step (``x + -0.0 == x`` for every
    ``x``, so the sums are bit-identical and in tree order) and the group stops when all
    lanes reached the sink.  A lane pays one step per leaf instead, and waits only once
    per window.  Same record indices as ``low.nodes``; the sink is the last record.
    None if float32 records cannot hold the model's slot and record numbers.
    """
    window_records = window_records or CHAIN_WINDOW_RECORDS
    nodes = low.nodes
    n = len(nodes)
    units = 2 if f32 else 3
    nxt = nodes["next"].astype(np.int64)
    idx = nxt & INDEX_MASK
    is_leaf = (nxt < 0) & (idx == np.arange(n))
    ends = np.append(low.roots[1:], n)
    sink = n
    windows, start, size = [], 0, 0
    for t, (r, e) in enumerate(zip(low.roots.tolist(), ends.tolist())):
        if size and size + (e - r) > window_records:
            windows.append((start, t))
            start, size = t, 0
        size += e - r
    windows.append((start, len(low.roots)))
    # successor record of each tree's leaves: the next root of its window, or the sink
    after = np.empty(len(low.roots), np.int64)
    for t0, t1 in windows:
        after[t0:t1 - 1] = low.roots[t0 + 1:t1]
        after[t1 - 1] = sink
    tree_of = np.repeat(np.arange(len(low.roots)), np.diff(np.append(low.roots, n)))
    target = np.where(is_leaf, after[tree_of], idx)  # internal: their children pair
    target = np.append(target, sink)
    flag = np.zeros(n + 1, np.int64)
    flag[-1] = LEAF_FLAG
    slot = np.append(np.where(is_leaf, 0, nodes["slot"]), 0)  # slot 0 (-inf) goes left
    val = np.append(np.where(is_leaf, nodes["thr"], -0.0), -0.0)
    thr = np.append(np.where(is_leaf, 0.0, nodes["thr"]), 0.0)
    if f32:
        shift = max(1, (units * (n + 1)).bit_length())
        if low.n_slots > 2 ** (31 - shift):
            return None  # slot and next do not fit in one link word: keep the plain walk
        rec = np.zeros(n + 1, NODE_CHAIN32)
        rec["thr"] = round_down_f32(thr)
        rec["link"] = (flag | (slot << shift) | (units * target)).astype(np.int32)
    else:
        shift = 0
        rec = np.zeros(n + 1, NODE_CHAIN)
        rec["thr"], rec["slot"] = thr, slot
        rec["next"] = (flag | (units * target)).astype(np.int32)
    rec["val"] = val
    roots = (units * low.roots[[t0 for t0, _ in windows]]).astype(np.int32)
    return Chained(records=rec, window_roots=roots, units=units, shift=shift)


def _emit_chain_walk(b: ir.IRBuilder, units, chain: Chained, lane_bufs: list, root,
                     accs: list) -> list:
    """Chained walk of one window for ``len(lane_bufs)`` lanes; returns the lanes' sums."""
    pre = b.block
    step = b.append_basic_block("chain")
    done = b.append_basic_block("chain.done")
    b.branch(step)
    b.position_at_end(step)
    L = len(lane_bufs)
    states = [b.phi(I32, name=f"c{l}") for l in range(L)]
    sums = [b.phi(F64, name=f"s{l}") for l in range(L)]
    new_states, new_sums = [], []
    for n, acc, lane_buf, a0 in zip(states, sums, lane_bufs, accs):
        n.add_incoming(root, pre)
        acc.add_incoming(a0, pre)
        idx = b.zext(b.and_(n, I32(INDEX_MASK)), I64)
        if chain.shift == 0:  # {double thr; double val; i32 slot; i32 next}
            thr = b.load(b.gep(units, [idx]))
            val = b.load(b.gep(units, [b.add(idx, I64(1))]))
            link = b.bitcast(b.gep(units, [b.add(idx, I64(2))]), I32.as_pointer())
            slot = b.load(link)
            nxt = b.load(b.gep(link, [I64(1)]))
        else:  # {float thr; i32 link; double val}
            rec = b.bitcast(b.gep(units, [idx]), I32.as_pointer())
            thr = b.load(b.bitcast(rec, F32.as_pointer()))
            word = b.load(b.gep(rec, [I64(1)]))
            val = b.load(b.gep(units, [b.add(idx, I64(1))]))
            slot = b.lshr(b.and_(word, I32(INDEX_MASK)), I32(chain.shift))
            nxt = b.and_(word, I32(LEAF_FLAG | ((1 << chain.shift) - 1)))
        v = b.load(b.gep(lane_buf, [b.zext(slot, I64)]))
        go_right = b.mul(b.zext(b.fcmp_ordered(">", v, thr), I32), I32(chain.units))
        new_states.append(b.add(nxt, go_right))
        new_sums.append(b.fadd(acc, val))
    all_states = new_states[0]
    for s in new_states[1:]:
        all_states = b.and_(all_states, s)
    for n, s, acc, a in zip(states, new_states, sums, new_sums):
        n.add_incoming(s, step)
        acc.add_incoming(a, step)
    b.cbranch(b.icmp_signed("<", all_states, I32(0)), done, step)
    b.position_at_end(done)
    # the sink record adds -0.0: the sums are complete once every lane stands on it
    return new_sums


# ---------------------------------------------------------------------------------------------
# IR helpers


def _libm(module: ir.Module, name: str) -> ir.Function:
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(F64, [F64]), name)
    return fn


def _isnan(b, x):
    return b.fcmp_unordered("uno", x, x)


def _slot_value(b: ir.IRBuilder, key, x, ens: Ensemble):
    """Value of one slot for feature value ``x`` (already cast)."""
    kind = key[0]
    inf = F64(math.inf)
    if kind == "nan_lo":
        return b.select(_isnan(b, x), F64(-math.inf), x)
    if kind == "nan_hi":
        return b.select(_isnan(b, x), inf, x)
    if kind in ("zero_lo", "zero_hi"):
        z = ens.zero_threshold
        small = b.and_(b.fcmp_ordered(">=", x, F64(-z)), b.fcmp_ordered("<=", x, F64(z)))
        missing = b.or_(small, _isnan(b, x))
        return b.select(missing, F64(-math.inf) if kind == "zero_lo" else inf, x)
    if kind in ("cat", "cat_nanleft"):
        # LightGBM casts to int: values in (-1, 2^31) become trunc(x) >= 0, everything else
        # (negative, huge, +-inf) is a negative int and goes right, like +inf here
        in_range = b.and_(b.fcmp_ordered(">", x, F64(-1.0)),
                          b.fcmp_ordered("<", x, F64(2.0 ** 31)))
        c = b.sitofp(b.fptosi(b.select(in_range, x, F64(0.0)), I32), F64)
        v = b.select(in_range, c, inf)
        return b.select(_isnan(b, x), F64(-1.0) if kind == "cat_nanleft" else inf, v)
    if kind == "pred":
        _, _, thr, mt, dl = key
        z = ens.zero_threshold
        isnan = _isnan(b, x)
        if mt != MissingType.NAN:
            x = b.select(isnan, F64(0.0), x)
        small = b.and_(b.fcmp_ordered(">=", x, F64(-z)), b.fcmp_ordered("<=", x, F64(z)))
        if z > 0:
            x = b.select(small, F64(0.0), x)
        if mt == MissingType.ZERO:
            missing = small
        elif mt == MissingType.NAN:
            missing = isnan
        else:
            missing = I1(0)
        left = b.select(missing, I1(1 if dl else 0), b.fcmp_ordered("<=", x, F64(thr)))
        return b.uitofp(b.not_(left), F64)
    raise AssertionError(kind)


def _emit_transform(b: ir.IRBuilder, module, ens: Ensemble, vals: list) -> list:
    """The ensemble's output transform on one row's raw scores, in LightGBM's order."""
    name, p = ens.transform, ens.transform_param
    if name == "identity":
        return vals
    libm_exp = _libm(module, "exp")
    numpy_exp = ens.numpy_exp and name in ("exp", "softmax")
    if numpy_exp:
        from . import numpy_loops
        numpy_loops.require_numpy_exp()

    def exp(x):
        if numpy_exp:
            from . import numpy_loops
            return numpy_loops.call(b, module, ("numpy", "exp", "d"), [x])
        return b.call(libm_exp, [x])
    if name == "sigmoid":
        return [b.fdiv(F64(1.0), b.fadd(F64(1.0), exp(b.fmul(F64(-p), v)))) for v in vals]
    if name == "exp":
        return [exp(v) for v in vals]
    if name == "log1p_exp":
        log1p = _libm(module, "log1p")
        return [b.call(log1p, [exp(v)]) for v in vals]
    if name == "signed_square":
        out = []
        for v in vals:
            pos = b.uitofp(b.fcmp_ordered(">", v, F64(0.0)), F64)
            neg = b.uitofp(b.fcmp_ordered("<", v, F64(0.0)), F64)
            out.append(b.fmul(b.fmul(b.fsub(pos, neg), v), v))
        return out
    if name == "softmax":
        m = vals[0]
        for v in vals[1:]:
            m = b.select(b.fcmp_ordered("<", m, v), v, m)  # std::max(v, m)
        es = [exp(b.fsub(v, m)) for v in vals]
        s = F64(0.0)
        for e in es:
            s = b.fadd(s, e)
        return [b.fdiv(e, s) for e in es]
    raise AssertionError(name)


def _emit_walk(b: ir.IRBuilder, units, lane_bufs: list, lane_roots: list,
               packed: "Packed32 | None" = None) -> list:
    """Walk one tree per lane, in lock step, until every lane stands on a leaf.

    ``units`` is the node array seen as doubles (walk states count 8-byte units, so a
    record at state ``n`` has ``thr`` at ``units[n]`` and ``{slot, next}`` at ``units[n+1]``);
    lane ``l`` reads its slots from ``lane_bufs[l]`` and starts at ``lane_roots[l]``.
    With ``packed`` (float32 mode) ``units`` points to 8-byte ``NODE32`` records instead and
    states count records.  Returns the final states (leaf records, sign bit set).
    """
    pre = b.block
    step = b.append_basic_block("walk")
    done = b.append_basic_block("walk.done")
    b.branch(step)
    b.position_at_end(step)
    states = [b.phi(I32, name=f"n{l}") for l in range(len(lane_bufs))]
    new_states = []
    for n, lane_buf, root in zip(states, lane_bufs, lane_roots):
        n.add_incoming(root, pre)
        idx = b.zext(b.and_(n, I32(INDEX_MASK)), I64)
        if packed is None:
            link = b.bitcast(b.gep(units, [b.add(idx, I64(1))]), I32.as_pointer())
            thr = b.load(b.gep(units, [idx]))
            slot = b.load(link)
            nxt = b.load(b.gep(link, [I64(1)]))
            v = b.load(b.gep(lane_buf, [b.zext(slot, I64)]))
            go_right = b.shl(b.zext(b.fcmp_ordered(">", v, thr), I32), I32(1))
        else:
            rec = b.gep(units, [b.mul(idx, I64(2))])  # units: i32*, two per record
            thr = b.load(b.bitcast(rec, F32.as_pointer()))
            link = b.load(b.gep(rec, [I64(1)]))
            slot = b.lshr(b.and_(link, I32(INDEX_MASK)), I32(packed.shift))
            nxt = b.and_(link, I32(LEAF_FLAG | ((1 << packed.shift) - 1)))
            v = b.load(b.gep(lane_buf, [b.zext(slot, I64)]))
            go_right = b.zext(b.fcmp_ordered(">", v, thr), I32)
        new_states.append(b.add(nxt, go_right))
    all_states = new_states[0]
    for s in new_states[1:]:
        all_states = b.and_(all_states, s)
    for n, s in zip(states, new_states):
        n.add_incoming(s, step)
    # every lane done <=> every state has its sign bit set <=> their AND is negative
    b.cbranch(b.icmp_signed("<", all_states, I32(0)), done, step)
    b.position_at_end(done)
    return new_states


class _TextFunction(ir.Function):
    """An ``ir.Function`` whose body is given as LLVM IR text.

    The branchy per-tree functions have tens of thousands of basic blocks for big models;
    formatting them as text is ~20x faster than building llvmlite IR objects, and a
    subclass of ``ir.Function`` keeps them inside the caller's module (callable with
    ``IRBuilder.call``, printed by ``str(module)``).
    """

    def __init__(self, module, ftype, name, text: str):
        super().__init__(module, ftype, name)
        self.text = text
        # the text says ``hidden`` so that target.compile_ir can link it into the optimized
        # module; after linking it is made internal, like the rest of the model's data
        self.linkage = "internal"

    def descr(self, buf):
        buf.append(self.text)


def _hex(x: float) -> str:
    """Exact LLVM IR spelling of a double constant."""
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", float(x)))[0]


#: ``void chunk(const double* row_slots, double* vals)`` -- see _chunk_function.
CHUNK_FN_TYPE = ir.FunctionType(ir.VoidType(), [F64P, F64P])
CHUNK_FN_TYPE_F32 = ir.FunctionType(ir.VoidType(), [F32.as_pointer(), F64P])
#: Node records per branchy chunk function (see _chunk_function).
CHUNK_NODES = 4096
#: "auto" kernels get branchy code only up to this many node records: LLVM's backend
#: spends ~0.15 ms per record (NYC_taxi's 6100 records: ~1 s), the budget is a few seconds.
BRANCHY_MAX_RECORDS = 8192
#: Bytes of leaf values a branchy block collects (rows x trees) before adding them up.
BRANCHY_VALS_BYTES = 256 * 1024
#: Attributes of the chunk functions.  They skip LLVM's IR pipeline (see
#: ``target.PRE_OPTIMIZED``), which took seconds on their thousands of blocks; what it did
#: that mattered (loading each slot once, selects for the last level) is done here.
CHUNK_ATTRS = "nounwind noinline"
#: Subtrees up to this height (1: a node whose children are both leaves) are evaluated
#: branch-free with selects in branchy code: the lowest levels are the least predictable.
SELECT_HEIGHT = 1


def _tree_chunks(low: Lowered, max_nodes: int = CHUNK_NODES) -> list:
    """Split the trees into runs ``(t0, t1)`` of consecutive trees with <= ~``max_nodes``
    node records each."""
    sizes = np.diff(np.append(low.roots, len(low.nodes))).tolist()
    chunks, start, total = [], 0, 0
    for t, size in enumerate(sizes):
        if total and total + size > max_nodes:
            chunks.append((start, t))
            start, total = t, 0
        total += size
    if sizes:
        chunks.append((start, len(sizes)))
    return chunks


def _chunk_function(module: ir.Module, low: Lowered, t0: int, t1: int, pitch: int,
                    name: str, f32: bool = False) -> ir.Function:
    """Trees ``t0..t1-1`` as branchy code for one row: walk tree after tree over the row's
    slots with real branches and store tree ``t``'s leaf value to ``vals[(t - t0) * pitch]``.

    Each node record becomes a basic block ``if (slot > thr) goto right`` that falls through
    to its left child (blocks in depth-first order), so the code follows the same records
    as the branch-free walk (same slots, thresholds, categorical run searches) and reaches
    the same leaves.  A node whose children are both leaves selects the value without a
    branch (the last level is the least predictable).  The row's slots are loaded once and
    stay in registers.  Thresholds and leaf values are read from a table of the chunk
    rather than written as constants: the backend then folds them into the compares as
    memory operands, and it does not build a constant pool with thousands of entries
    (which costs it time quadratic in their number).  Leaf values are stored, not summed:
    the caller sums them in tree order for many rows at once, so no chain of dependent
    additions limits the walk.

    ``f32``: the row's slots are floats and thresholds are rounded down to float32 (the same
    decisions, see :func:`round_down_f32`); leaf values stay float64.
    """
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    nodes = low.nodes
    ends = np.append(low.roots[1:], len(nodes)).tolist()
    table: list = []  # leaf values (and, in float64 mode, thresholds)
    thr_table: list = table if not f32 else []
    ft = "float" if f32 else "double"
    lines = [f'define hidden void @"{name}"({ft}* noalias nocapture readonly %row, '
             f'double* noalias nocapture %vals) {CHUNK_ATTRS} {{', "entry:"]

    def const(value: float) -> str:
        table.append(_hex(value))
        return (f"getelementptr inbounds ([{{n}} x double], [{{n}} x double]* @\"{name}.data\", "
                f"i64 0, i64 {len(table) - 1})")

    def thr_const(value: float) -> str:
        if not f32:
            return const(value)
        # LLVM spells float constants as the double of the same value (already rounded)
        thr_table.append(_hex(value))
        return (f"getelementptr inbounds ([{{m}} x float], [{{m}} x float]* @\"{name}.thr\", "
                f"i64 0, i64 {len(thr_table) - 1})")

    used = sorted(set(nodes["slot"][int(low.roots[t0]):ends[t1 - 1]].tolist()))
    for k in used:
        lines += [f"  %px{k} = getelementptr {ft}, {ft}* %row, i64 {k}",
                  f"  %x{k} = load {ft}, {ft}* %px{k}"]
    for t in range(t0, t1):
        base, end = int(low.roots[t]), ends[t]
        thr = nodes["thr"][base:end].tolist()
        test_thr = round_down_f32(nodes["thr"][base:end]).astype(np.float64).tolist() if f32 else thr
        slot = nodes["slot"][base:end].tolist()
        nxt = nodes["next"][base:end].tolist()
        after = f"  br label %t{t + 1}" if t + 1 < t1 else "  ret void"
        lines += [f"  br label %t{t}", f"t{t}:",
                  f"  %q{t} = getelementptr double, double* %vals, i64 {(t - t0) * pitch}"]
        height = [0] * (end - base)  # children come after their parent: go backwards
        for i in range(end - base - 1, -1, -1):
            child = (nxt[i] & INDEX_MASK) - base
            if child != i:
                height[i] = 1 + max(height[child], height[child + 1])

        def select_value(i: int) -> str:
            """SSA name of the leaf value under record i, computed without branches."""
            child = (nxt[i] & INDEX_MASK) - base
            v = f"%v{t}_{len(lines)}"
            if child == i:
                lines.append(f"  {v} = load double, double* {const(thr[i])}")
                return v
            c = f"%c{t}_{len(lines)}"
            h = f"%h{t}_{len(lines)}"
            lines.extend([f"  {h} = load {ft}, {ft}* {thr_const(test_thr[i])}",
                          f"  {c} = fcmp ogt {ft} %x{slot[i]}, {h}"])
            right, left = select_value(child + 1), select_value(child)
            v = f"%v{t}_{len(lines)}"
            lines.append(f"  {v} = select i1 {c}, double {right}, double {left}")
            return v

        stack, seen = [0], set()
        first = True
        while stack:  # depth first, left child right after its parent
            i = stack.pop()
            if i in seen:  # categorical run searches share their subtrees
                continue
            seen.add(i)
            lab = f"t{t}n{i}"
            lines.append(f"  br label %{lab}" if first else "")
            first = False
            lines.append(f"{lab}:")
            child = (nxt[i] & INDEX_MASK) - base
            if height[i] <= SELECT_HEIGHT:  # a leaf, or a small subtree: no branches
                lines += [f"  store double {select_value(i)}, double* %q{t}", after]
                continue
            lines += [f"  %h{lab} = load {ft}, {ft}* {thr_const(test_thr[i])}",
                      f"  %c{lab} = fcmp ogt {ft} %x{slot[i]}, %h{lab}"]
            lc, rc = child, child + 1
            lines.append(f"  br i1 %c{lab}, label %t{t}n{rc}, label %t{t}n{lc}")
            stack += [rc, lc]
    lines.append("}")
    n, m = len(table), len(thr_table)
    body = "\n".join(line for line in lines if line).replace("{n}", str(n)).replace("{m}", str(m))
    data = (f'@"{name}.data" = internal global [{n} x double] '
            f'[{", ".join("double " + v for v in table)}], align 16\n')
    if f32:
        data += (f'@"{name}.thr" = internal global [{m} x float] '
                 f'[{", ".join("float " + v for v in thr_table)}], align 16\n')
    return _TextFunction(module, CHUNK_FN_TYPE_F32 if f32 else CHUNK_FN_TYPE, name,
                         data + body + "\n")


#: Tree walks: "lockstep" (branch-free, 8 rows at a time), "branchy" (per-tree code with
#: real branches), "auto" (both, chosen at run time by timing them on the batch's rows).
WALKS = ("auto", "lockstep", "branchy", "masks")
#: Blocks an "auto" kernel times before it commits to one walk for the rest of the batch.
PROBE_BLOCKS = 4


def _adaptive_state(b: ir.IRBuilder):
    """Entry-block allocas of the run-time walk choice: (choice i32, best cycles i64 x 2)."""
    choice = b.alloca(I32, name="walk.choice")
    cost = b.alloca(ir.ArrayType(I64, 2), name="walk.cost")
    return choice, cost


def _emit_adaptive(b: ir.IRBuilder, module: ir.Module, tag: str, blk, n_blocks, nb,
                   lockstep_block, branchy_block, state) -> None:
    """Run one block with the walk chosen at run time.

    Which walk is faster depends on the *data*: branchy code is nearly free when most rows
    follow a few paths (the branch predictor learns them) and slow when paths are
    unpredictable, where the branch-free walk's fixed cost wins.  Batches of at least
    ``PROBE_BLOCKS + 1`` blocks time blocks 0..3 as lockstep, branchy, branchy, lockstep
    (cycle counter; the minimum of two per walk, so one interrupted block cannot decide),
    run the rest with the faster walk and remember it in a global for smaller batches
    (a benign race between threads: any stored value is a valid choice).  Both walks
    produce bit-identical sums, so the choice never changes results.
    """
    choice_p, cost_p = state
    remembered = module.globals.get(f"{tag}.walk")
    if remembered is None:
        remembered = ir.GlobalVariable(module, I32, f"{tag}.walk")
        remembered.linkage = "internal"
        remembered.initializer = I32(0)
    clock = module.globals.get("llvm.readcyclecounter")
    if clock is None:
        clock = ir.Function(module, ir.FunctionType(I64, []), "llvm.readcyclecounter")
    probing_call = b.icmp_signed(">", n_blocks, I64(PROBE_BLOCKS))
    with b.if_then(b.icmp_signed("==", blk, I64(0))):
        b.store(b.load_atomic(remembered, "monotonic", 4), choice_p)
        b.store(ir.Constant(ir.ArrayType(I64, 2), [I64(2 ** 62), I64(2 ** 62)]), cost_p)
    probe = b.and_(probing_call, b.icmp_signed("<", blk, I64(PROBE_BLOCKS)))
    # probe order: 0 lockstep, 1 branchy, 2 branchy, 3 lockstep
    probe_choice = b.zext(b.or_(b.icmp_signed("==", blk, I64(1)), b.icmp_signed("==", blk, I64(2))), I32)
    use = b.select(probe, probe_choice, b.load(choice_p))
    start = b.call(clock, [])
    with b.if_else(b.icmp_signed("!=", use, I32(0))) as (yes, no):
        with yes:
            branchy_block()
        with no:
            lockstep_block()
    with b.if_then(probe):
        p = b.gep(cost_p, [I64(0), b.zext(use, I64)])
        spent = b.sub(b.call(clock, []), start)
        old = b.load(p)
        b.store(b.select(b.icmp_signed("<", spent, old), spent, old), p)
        with b.if_then(b.icmp_signed("==", blk, I64(PROBE_BLOCKS - 1))):
            lock = b.load(b.gep(cost_p, [I64(0), I64(0)]))
            branchy = b.load(b.gep(cost_p, [I64(0), I64(1)]))
            winner = b.zext(b.icmp_signed("<", branchy, lock), I32)
            b.store(winner, choice_p)
            b.store_atomic(winner, remembered, "monotonic", 4)


BLOCK_FN_TYPE = ir.FunctionType(ir.VoidType(), [F64P, I64, F64P])
BLOCK_FN_TYPE_F32 = ir.FunctionType(ir.VoidType(), [F32.as_pointer(), I64, F64P])


def _lockstep_function(module: ir.Module, low: Lowered, name: str, B: int, L: int, K: int,
                       data: tuple, packed: Packed32 | None = None,
                       chain: tuple | None = None) -> ir.Function:
    """``void name(const double* slots, int64 nb, double* acc)``: add every tree's leaf to
    the sums ``acc`` of the block's ``nb`` encoded rows (padded to a multiple of ``L``) with
    the branch-free lock-step walk.  With ``packed`` (float32 mode) the slots are floats
    and the records ``NODE32``; the sums stay float64.  With ``chain`` = (Chained, its
    records global, its window roots global), blocks of at least ``L`` rows use the
    chained walk (:func:`chain_records`)."""
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    g_nodes, g_roots, g_outs, g_leaves, g_widths = data
    S, T = low.n_slots, len(low.roots)
    vector_leaves = bool(len(low.widths)) and int(low.widths.max()) > 1
    fn = ir.Function(module, BLOCK_FN_TYPE if packed is None else BLOCK_FN_TYPE_F32, name)
    fn.linkage = "internal"
    buf, nb, acc = fn.args
    for a in (buf, acc):
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    units = b.bitcast(g_nodes, F64P if packed is None else I32.as_pointer())
    roots = b.bitcast(g_roots, I32.as_pointer())
    outs = b.bitcast(g_outs, I32.as_pointer())
    leaves = b.bitcast(g_leaves, F64P)
    widths = b.bitcast(g_widths, I32.as_pointer())
    n_groups = b.sdiv(b.add(nb, I64(L - 1)), I64(L))

    def tree_of(_state):
        return tree_of.current

    def width_of(t):
        return b.sext(b.load(b.gep(widths, [t])), I64)

    def add_leaf(state, acc_row):
        """acc_row[0:width] += the leaf values of the leaf ``state`` stopped at."""
        idx = b.zext(b.and_(state, I32(INDEX_MASK)), I64)
        if packed is None:
            value = b.load(b.gep(units, [idx]))
        else:  # the leaf record's thr field holds its index in the float64 leaf table
            first = b.sext(b.load(b.gep(units, [b.mul(idx, I64(2))])), I64)
            value = b.load(b.gep(leaves, [first]))
        if not vector_leaves:
            b.store(b.fadd(b.load(acc_row), value), acc_row)
            return
        if packed is None:
            first = b.fptosi(value, I64)
        with for_range(b, I64(0), width_of(tree_of(state)), "leaf") as j:
            p = b.gep(acc_row, [j])
            b.store(b.fadd(b.load(p), b.load(b.gep(leaves, [b.add(first, j)]))), p)

    small = b.icmp_signed("<", nb, I64(L))
    with b.if_else(small) as (few_rows, many_rows):
        with few_rows:
            # 2a. fewer rows than lanes (e.g. one row): the lanes walk L consecutive trees
            #     of one row; values are added in tree order, so sums stay bit-exact
            with for_range(b, I64(0), nb, "row1") as r:
                row_buf = b.gep(buf, [b.mul(r, I64(S))])
                acc_row = b.gep(acc, [b.mul(r, I64(K))])
                n_chunks = I64((T + L - 1) // L)
                with for_range(b, I64(0), n_chunks, "chunk") as c:
                    t0 = b.mul(c, I64(L))
                    lane_trees = [b.add(t0, I64(l)) for l in range(L)]
                    lane_trees = [b.select(b.icmp_signed("<", t, I64(T)), t, I64(T - 1))
                                  for t in lane_trees]
                    lane_roots = [b.load(b.gep(roots, [t])) for t in lane_trees]
                    final = _emit_walk(b, units, [row_buf] * L, lane_roots, packed)
                    for l in range(L):
                        real = b.icmp_signed("<", b.add(t0, I64(l)), I64(T))
                        with b.if_then(real, likely=True):
                            out_k = b.sext(b.load(b.gep(outs, [lane_trees[l]])), I64)
                            tree_of.current = lane_trees[l]
                            add_leaf(final[l], b.gep(acc_row, [out_k]))
        with many_rows:
            if chain is not None:
                # 2b'. every window of trees walks every group of L rows of the block, each lane
                #      on to its next tree as soon as it reached a leaf (K == 1)
                ch, g_chain, g_windows = chain
                c_units = b.bitcast(g_chain, F64P)
                w_roots = b.bitcast(g_windows, I32.as_pointer())
                with for_range(b, I64(0), I64(len(ch.window_roots)), "window") as w:
                    root = b.load(b.gep(w_roots, [w]))
                    with for_range(b, I64(0), n_groups, "cgroup") as g:
                        group_buf = b.gep(buf, [b.mul(g, I64(L * S))])
                        lane_bufs = [b.gep(group_buf, [I64(l * S)]) for l in range(L)]
                        ptrs = [b.gep(acc, [b.add(b.mul(g, I64(L)), I64(l))]) for l in range(L)]
                        sums = _emit_chain_walk(b, c_units, ch, lane_bufs, root,
                                                [b.load(p) for p in ptrs])
                        for p, v in zip(ptrs, sums):
                            b.store(v, p)
            else:
                # 2b. every tree walks every group of L rows of the block, branch-free
                with for_range(b, I64(0), I64(T), "tree") as t:
                    root = b.load(b.gep(roots, [t]))
                    first_out = b.sext(b.load(b.gep(outs, [t])), I64)
                    tree_of.current = t
                    with for_range(b, I64(0), n_groups, "group") as g:
                        group_buf = b.gep(buf, [b.mul(g, I64(L * S))])
                        lane_bufs = [b.gep(group_buf, [I64(l * S)]) for l in range(L)]
                        final = _emit_walk(b, units, lane_bufs, [root] * L, packed)
                        for l in range(L):
                            row = b.add(b.mul(g, I64(L)), I64(l))
                            add_leaf(final[l],
                                     b.gep(acc, [b.add(b.mul(row, I64(K)), first_out)]))
    b.ret_void()
    return fn


def _branchy_function(module: ir.Module, low: Lowered, tag: str, B: int, S: int, K: int,
                      g_outs, f32: bool = False) -> ir.Function:
    """``void f(const double* slots, int64 nb, double* acc)``: like the lock-step function,
    with the branchy chunk functions (one row through a chunk of trees at a time)."""
    name = f"{tag}.b{B}.branchy"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    T = len(low.roots)
    chunks = _tree_chunks(low)
    # the leaf values of sub_rows rows x all trees: tree t's are a column ``pitch`` apart
    sub_rows = max(8, min(64, BRANCHY_VALS_BYTES // (8 * T) - 8))
    pitch = sub_rows + 8  # not a power of two, so the columns spread over L1 sets
    chunk_fns = [_chunk_function(module, low, t0, t1, pitch,
                                 f"{tag}{PRE_OPTIMIZED}b{B}.trees{t0}", f32)
                 for t0, t1 in chunks]
    fn = ir.Function(module, BLOCK_FN_TYPE_F32 if f32 else BLOCK_FN_TYPE, name)
    fn.linkage = "internal"
    buf, nb, acc = fn.args
    for a in (buf, acc):
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    outs = b.bitcast(g_outs, I32.as_pointer())
    vals = b.bitcast(b.alloca(ir.ArrayType(F64, pitch * T), name="vals"), F64P)
    # 2c. sub_rows rows of the block at a time run through every chunk of
    #     branchy tree code (chunk after chunk, so each chunk's code and
    #     branch history stay warm), storing leaf values; then the rows'
    #     sums take them in tree order
    n_sub = b.sdiv(b.add(nb, I64(sub_rows - 1)), I64(sub_rows))
    with for_range(b, I64(0), n_sub, "bsub") as sb:
        s0 = b.mul(sb, I64(sub_rows))
        m = b.sub(nb, s0)
        m = b.select(b.icmp_signed("<", m, I64(sub_rows)), m, I64(sub_rows))
        for fn_c, (c0, c1) in zip(chunk_fns, chunks):
            with for_range(b, I64(0), m, "brow") as r:
                row_slots = b.gep(buf, [b.mul(b.add(s0, r), I64(S))])
                b.call(fn_c, [row_slots, b.gep(vals, [b.add(I64(c0 * pitch), r)])])
        acc_sub = b.gep(acc, [b.mul(s0, I64(K))])
        with for_range(b, I64(0), I64(T), "btree") as t:
            col = b.gep(vals, [b.mul(t, I64(pitch))])
            k = b.sext(b.load(b.gep(outs, [t])), I64)
            with for_range(b, I64(0), m, "bsum") as r:
                p = b.gep(acc_sub, [b.add(b.mul(r, I64(K)), k)])
                b.store(b.fadd(b.load(p), b.load(b.gep(col, [r]))), p)
    b.ret_void()
    return fn


def default_block_rows(n_slots: int, lanes: int, slot_bytes: int = 8) -> int:
    """Rows per block: keep the block's slot buffer within ~16 KiB of L1."""
    rows = (16384 // (slot_bytes * n_slots)) // lanes * lanes
    return max(lanes, min(256, rows))


# ---------------------------------------------------------------------------------------------
# Emission


def emit_ensemble(module: ir.Module, ens: Ensemble, name: str, raw_score: bool = True, *,
                  lanes: int = 8, block_rows: int | None = None,
                  lowered: Lowered | None = None, walk: str = "auto",
                  dtype: str = "float64") -> ir.Function:
    """Add ``void name(const double* X, int64 n_rows, int64 row_stride, double* out)`` to
    ``module`` and return it.

    ``out`` receives ``n_rows x ens.n_outputs`` float64 values, row-major: the raw scores when
    ``raw_score`` is true, else the transformed predictions.  ``X`` holds ``n_rows`` rows of
    ``ens.n_features`` float64 values, ``row_stride`` elements apart.  The function keeps no
    state, writes only ``out``, and is safe to call concurrently.  Model data goes into
    internal constant globals named after its content hash, so emitting the raw and the
    transformed variant of the same ensemble into one module stores the model once.

    ``dtype="float32"``: ``X`` holds float32 values (``const float* X``, ``row_stride`` in
    floats); decisions are made on float32 slots against thresholds rounded down to
    float32, which for float32 inputs are exactly LightGBM's float64 decisions, and leaf
    values are summed in float64 as in the default mode, so the results are the same bits
    the float64 kernel gives on the same (float32) values.  See ``codegen/README.md``.
    """
    if walk not in WALKS:
        raise ValueError(f"walk must be one of {', '.join(WALKS)}; got {walk!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    f32 = dtype == "float32"
    FT = F32 if f32 else F64
    requested = walk
    low = lowered or lower(ens)
    L = lanes
    S = low.n_slots
    K = ens.n_outputs
    B = block_rows or default_block_rows(S, L, 4 if f32 else 8)
    T = len(low.roots)
    tag = f"mloc.trees.{low.digest()}" + (".f32" if f32 else "")
    packed = pack_float32(low) if f32 else None
    if f32:
        # states count 8-byte NODE32 records
        g_nodes = byte_global(module, f"{tag}.nodes", packed.records.tobytes())
        g_roots = byte_global(module, f"{tag}.roots", low.roots.astype(np.int32).tobytes())
        g_leaves = byte_global(module, f"{tag}.leaves", packed.leaves.tobytes())
    else:
        # walk states count 8-byte units (2 per record): x86 addressing scales them for free
        scaled = low.nodes.copy()
        nxt = scaled["next"].astype(np.int64)
        scaled["next"] = (((nxt & INDEX_MASK) * 2) | (nxt & ~INDEX_MASK)).astype(np.int32)
        g_nodes = byte_global(module, f"{tag}.nodes", scaled.tobytes())
        g_roots = byte_global(module, f"{tag}.roots", (low.roots * 2).astype(np.int32).tobytes())
        g_leaves = byte_global(module, f"{tag}.leaves", low.leaves.tobytes())
    g_outs = byte_global(module, f"{tag}.outputs", low.outputs.tobytes())
    g_widths = byte_global(module, f"{tag}.widths", low.widths.tobytes())

    vector_leaves = bool(len(low.widths)) and int(low.widths.max()) > 1
    if vector_leaves or T == 0:
        walk = "lockstep"  # branchy tree code adds one scalar leaf per tree
    elif walk == "auto" and len(low.nodes) > BRANCHY_MAX_RECORDS:
        walk = "lockstep"  # branchy code would take the backend too long
    masks = None
    if (requested in ("auto", "masks") and MASKS and not vector_leaves and T > 0
            and L % BUCKET_VEC == 0):  # the walk takes rows BUCKET_VEC at a time
        masks = build_masks(ens, low, f32)
    if walk == "masks" or (walk == "auto" and masks is not None):
        # the leaf-mask walk takes the lock-step walk's place where it applies; "auto" then
        # skips branchy code (NYC_taxi: masks 0.9-1.0 ns/tree/row on uniform and
        # near-threshold rows, branchy 1.6 / 7; probing it cost more than it ever saved)
        walk = "lockstep"
    # the walks are functions of their own, shared by the raw and transformed kernels
    chain = None
    if masks is None and CHAINED and K == 1 and not vector_leaves and T > 0:
        ch = chain_records(low, f32)
        if ch is not None:
            chain = (ch, byte_global(module, f"{tag}.chain", ch.records.tobytes()),
                     byte_global(module, f"{tag}.windows", ch.window_roots.tobytes()))
    if masks is not None:
        lockstep_fn = masks_function(module, masks, f"{tag}.b{B}.masks", B, S, K, f32)
    else:
        lockstep_fn = _lockstep_function(module, low, f"{tag}.b{B}.lockstep", B, L, K,
                                         (g_nodes, g_roots, g_outs, g_leaves, g_widths),
                                         packed, chain)
    branchy_fn = (None if walk == "lockstep" else
                  _branchy_function(module, low, tag, B, S, K, g_outs, f32))

    fn = ir.Function(module, KERNEL_TYPE_F32 if f32 else KERNEL_TYPE, name)
    X, n_rows, stride, out = fn.args
    X.name, n_rows.name, stride.name, out.name = "X", "n_rows", "row_stride", "out"
    for a in (X, out):
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    buf = b.bitcast(b.alloca(ir.ArrayType(FT, B * S), name="slots"), FT.as_pointer())
    acc = b.bitcast(b.alloca(ir.ArrayType(F64, B * K), name="acc"), F64P)
    by_feature: dict = {}
    for s, key in enumerate(low.slots):
        if key[0] != "neg_inf":
            by_feature.setdefault(key[1], []).append((s, key))
    per_output = ens.trees_per_output()
    state = _adaptive_state(b) if walk == "auto" else None
    n_blocks = b.sdiv(b.add(n_rows, I64(B - 1)), I64(B))
    with for_range(b, I64(0), n_blocks, "block") as blk:
        r0 = b.mul(blk, I64(B))
        nb = b.sub(n_rows, r0)
        nb = b.select(b.icmp_signed("<", nb, I64(B)), nb, I64(B))
        n_groups = b.sdiv(b.add(nb, I64(L - 1)), I64(L))
        n_pad = b.mul(n_groups, I64(L))

        # 1. encode the block's rows into slots; padding rows repeat the last real row, so
        #    their lanes take the same paths and never make a walk longer
        with for_range(b, I64(0), n_pad, "row") as r:
            row_buf = b.gep(buf, [b.mul(r, I64(S))])
            for k in range(K):
                b.store(F64(ens.base_score[k]), b.gep(acc, [b.add(b.mul(r, I64(K)), I64(k))]))
            src = b.select(b.icmp_signed("<", r, nb), r, b.sub(nb, I64(1)))
            x_row = b.gep(X, [b.mul(b.add(r0, src), stride)])
            b.store(FT(-math.inf), b.gep(row_buf, [I64(0)]))
            for f, items in sorted(by_feature.items()):
                x = b.load(b.gep(x_row, [I64(f)]))
                if f32:
                    # slots are computed from the exact float64 value; each is a float32 value
                    # (x itself, +-inf, a small integer or 0/1), so the truncation is exact
                    x = b.fpext(x, F64)
                elif ens.input_cast == "float32":
                    x = b.fpext(b.fptrunc(x, F32), F64)
                for s, key in items:
                    v = _slot_value(b, key, x, ens)
                    b.store(b.fptrunc(v, F32) if f32 else v, b.gep(row_buf, [I64(s)]))

        # 2. add every tree's leaves to the block's sums, trees in order
        if walk == "lockstep":
            b.call(lockstep_fn, [buf, nb, acc])
        elif walk == "branchy":
            b.call(branchy_fn, [buf, nb, acc])
        else:
            _emit_adaptive(b, module, tag, blk, n_blocks, nb,
                           lambda: b.call(lockstep_fn, [buf, nb, acc]),
                           lambda: b.call(branchy_fn, [buf, nb, acc]), state)

        # 3. average, transform and store the block's results
        with for_range(b, I64(0), nb, "emit") as r:
            vals = [b.load(b.gep(acc, [b.add(b.mul(r, I64(K)), I64(k))])) for k in range(K)]
            if ens.average and (ens.average_raw or not raw_score):
                vals = [b.fdiv(v, F64(float(per_output[k]))) for k, v in enumerate(vals)]
            if not raw_score:
                vals = _emit_transform(b, module, ens, vals)
            dst = b.gep(out, [b.mul(b.add(r0, r), I64(K))])
            for k, v in enumerate(vals):
                b.store(v, b.gep(dst, [I64(k)]))
    b.ret_void()
    return fn
