"""Compiled kernels vs the data model's reference evaluator, on random ensembles that use
every feature of ``codegen.ensemble`` (including ones LightGBM never produces)."""

from __future__ import annotations

import llvmlite.ir as ir
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen import compile_model
from codegen.emit_trees import emit_ensemble, lower
from codegen.ensemble import (LIGHTGBM_ZERO_THRESHOLD, TRANSFORMS, Ensemble, Tree,
                              reference_predict)

VALUES = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-36, -1e-36, 1e-300, 0.5, -0.5,
                   1.0, -1.0, 1.5, 2.0, 3.0, 7.0, 31.0, 32.0, 33.0, 40.0, -2.0, 1e9, 2.0 ** 31,
                   0.1, 0.30000001192092896, 0.3, 1e300])
THRESHOLDS = np.array([0.0, -0.0, 1e-36, -1e-36, LIGHTGBM_ZERO_THRESHOLD, -LIGHTGBM_ZERO_THRESHOLD,
                       0.5, -0.5, 1.0, 1.5, 2.5, 0.3, 0.30000001192092896, np.inf, -np.inf])


def random_tree(rng, n_features, n_outputs, width, max_internal=12) -> Tree:
    n_internal = int(rng.integers(0, max_internal + 1))
    # grow a random shape: each new node replaces a random leaf slot
    left, right = [], []
    open_slots = [] if n_internal == 0 else [(0, 0), (0, 1)]
    if n_internal:
        left.append(None)
        right.append(None)
    for node in range(1, n_internal):
        parent, side = open_slots.pop(int(rng.integers(len(open_slots))))
        (left if side == 0 else right)[parent] = node
        left.append(None)
        right.append(None)
        open_slots += [(node, 0), (node, 1)]
    for leaf, (parent, side) in enumerate(open_slots):
        (left if side == 0 else right)[parent] = ~leaf
    n_leaves = n_internal + 1
    kind = rng.random(n_internal) < 0.3
    words, begin, end = [], [], []
    for k in kind:
        n_words = int(rng.integers(1, 3)) if k else 0
        begin.append(len(words))
        words.extend(rng.integers(0, 2 ** 32, size=n_words, dtype=np.uint64).tolist())
        end.append(len(words))
    return Tree(
        feature=rng.integers(0, n_features, size=n_internal),
        threshold=rng.choice(THRESHOLDS, size=n_internal),
        kind=kind.astype(np.uint8),
        missing_type=rng.integers(0, 3, size=n_internal),
        default_left=rng.random(n_internal) < 0.5,
        left=np.array(left, dtype=np.int64),
        right=np.array(right, dtype=np.int64),
        leaf_value=rng.normal(size=(n_leaves, width)),
        output=int(rng.integers(0, n_outputs - width + 1)),
        cat_begin=np.array(begin), cat_end=np.array(end),
        cat_words=np.array(words, dtype=np.uint64).astype(np.uint32),
    )


def random_ensemble(seed: int) -> Ensemble:
    rng = np.random.default_rng(seed)
    n_features = int(rng.integers(1, 6))
    n_outputs = int(rng.integers(1, 4))
    width = int(rng.integers(1, n_outputs + 1)) if rng.random() < 0.3 else 1
    transform = str(rng.choice(sorted(TRANSFORMS)))
    return Ensemble(
        trees=[random_tree(rng, n_features, n_outputs, width) for _ in range(rng.integers(1, 12))],
        n_features=n_features, n_outputs=n_outputs,
        base_score=rng.normal(size=n_outputs) if rng.random() < 0.5 else None,
        average=bool(rng.random() < 0.3), average_raw=bool(rng.random() < 0.5),
        input_cast=str(rng.choice(["float64", "float32"])),
        zero_threshold=float(rng.choice([0.0, LIGHTGBM_ZERO_THRESHOLD])),
        transform=transform, transform_param=float(rng.choice([1.0, 0.5])),
    )


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1))
def test_random_ensembles_match_reference(model_seed, data_seed):
    ens = random_ensemble(model_seed)
    model = compile_model(ens, cache=False, threads=1)
    rng = np.random.default_rng(data_seed)
    n = int(rng.choice([1, 3, 8, 9, 70]))
    X = rng.choice(VALUES, size=(n, ens.n_features))
    mask = rng.random(X.shape) < 0.2
    X[mask] = rng.normal(scale=3, size=int(mask.sum()))
    want_raw = reference_predict(ens, X, raw_score=True)
    want = reference_predict(ens, X)
    got_raw = model.predict(X, raw_score=True).reshape(n, -1)
    got = model.predict(X).reshape(n, -1)
    np.testing.assert_array_equal(got_raw, want_raw)
    np.testing.assert_array_equal(got, want)


def test_emit_ensemble_into_a_foreign_module_shares_model_data():
    ens = random_ensemble(7)
    module = ir.Module("pipeline")
    raw = emit_ensemble(module, ens, "model_raw", raw_score=True)
    pred = emit_ensemble(module, ens, "model_pred", raw_score=False)
    assert raw.name == "model_raw" and pred.name == "model_pred"
    data = [g for g in module.globals if g.startswith("mloc.trees.")]
    assert len(data) == len(set(data)) and data, "model data must be emitted once"
    assert all(str(module.get_global(g).linkage) == "internal" for g in data)
    lowered = lower(ens)
    assert lowered.n_slots >= 1 and len(lowered.nodes) >= len(ens.trees)


def test_ensemble_validation_messages():
    t = Tree(feature=[0], threshold=[0.5], kind=[0], missing_type=[0], default_left=[True],
             left=[-1], right=[-2], leaf_value=[1.0, 2.0])
    with pytest.raises(ValueError, match="outside"):
        Ensemble(trees=[Tree(**{**vars(t), "feature": [3]})], n_features=2)
    with pytest.raises(ValueError, match="unknown transform"):
        Ensemble(trees=[t], n_features=1, transform="tanh")
    with pytest.raises(ValueError, match="input_cast"):
        Ensemble(trees=[t], n_features=1, input_cast="int8")
    bad = Tree(feature=[0], threshold=[0.5], kind=[0], missing_type=[0], default_left=[True],
               left=[-1], right=[-1], leaf_value=[1.0, 2.0])
    with pytest.raises(ValueError, match="exactly once"):
        Ensemble(trees=[bad], n_features=1)
    with pytest.raises(ValueError, match="beyond n_outputs"):
        Ensemble(trees=[Tree(**{**vars(t), "output": 1})], n_features=1, n_outputs=1)


def _kernel(ens, walk):
    """Raw and transformed kernels of ``ens`` built with one tree walk, as a CompiledModel."""
    from codegen.compile import PREDICT_SYMBOL, RAW_SYMBOL, build_object
    from runtime.loader import load
    from runtime.model import CompiledModel

    lib = load(build_object(ens, walk=walk), [RAW_SYMBOL, PREDICT_SYMBOL])
    meta = {"symbols": {"raw": RAW_SYMBOL, "predict": PREDICT_SYMBOL},
            "n_features": ens.n_features, "n_outputs": ens.n_outputs,
            "n_trees": len(ens.trees), "transform": ens.transform}
    return CompiledModel(lib, meta, threads=1)


@pytest.mark.parametrize("seed", [3, 11, 12, 40])
def test_every_tree_walk_matches_reference(seed):
    # scalar-leaf ensembles get branchy code; the "auto" kernel times both walks on batches
    # of more than PROBE_BLOCKS blocks and must give the same bits whichever it picks
    from codegen.emit_trees import PROBE_BLOCKS

    ens = random_ensemble(seed)
    rng = np.random.default_rng(seed)
    n_big = (PROBE_BLOCKS + 2) * 256 + 5  # block_rows <= 256
    X = rng.choice(VALUES, size=(n_big, ens.n_features))
    mask = rng.random(X.shape) < 0.2
    X[mask] = rng.normal(scale=3, size=int(mask.sum()))
    want_raw = reference_predict(ens, X, raw_score=True).reshape(n_big, -1)
    want = reference_predict(ens, X).reshape(n_big, -1)
    for walk in ("lockstep", "branchy", "masks", "auto"):
        model = _kernel(ens, walk)
        for n in (n_big, 1, 7, 70, n_big):  # the second big batch runs on the probe's choice
            got_raw = model.predict(X[:n], raw_score=True).reshape(n, -1)
            np.testing.assert_array_equal(got_raw, want_raw[:n], err_msg=f"walk={walk} n={n}")
            got = model.predict(X[:n]).reshape(n, -1)
            np.testing.assert_array_equal(got, want[:n], err_msg=f"walk={walk} n={n}")


def test_branchy_code_handles_categorical_run_searches():
    # a categorical split becomes a search over runs of categories whose records share
    # subtrees; the branchy code must emit each shared block once and reach the same leaves
    words = [0b1011_0110_1101, 0b1]  # categories 0,2,3,5,6,8,9,11 and 32 go left
    tree = Tree(feature=[0, 1], threshold=[0.0, 0.5], kind=[1, 0], missing_type=[2, 2],
                default_left=[True, False], left=[1, -2], right=[-1, -3],
                leaf_value=[1.0, 2.0, 3.0], cat_begin=[0, 2], cat_end=[2, 2],
                cat_words=np.array(words, dtype=np.uint32))
    ens = Ensemble(trees=[tree] * 3, n_features=2)
    X = np.array([[c, v] for c in [*range(-2, 40), np.nan, 1e10, 2.5, 31.9]
                  for v in (0.0, 1.0, np.nan)], dtype=np.float64)
    X = np.repeat(X, 40, axis=0)
    want = reference_predict(ens, X, raw_score=True).reshape(len(X), -1)
    for walk in ("branchy", "masks", "auto"):
        got = _kernel(ens, walk).predict(X, raw_score=True).reshape(len(X), -1)
        np.testing.assert_array_equal(got, want)


def test_emit_ensemble_rejects_unknown_walk():
    with pytest.raises(ValueError, match="walk must be one of"):
        emit_ensemble(ir.Module("m"), random_ensemble(1), "f", walk="fast")


def test_branchy_chunks_are_private_to_the_object():
    # they are linked in as hidden functions after the IR pipeline, then made internal
    from codegen import target

    ens = random_ensemble(3)
    module = ir.Module("m")
    emit_ensemble(module, ens, "f", walk="branchy")
    text = str(module)
    assert target.PRE_OPTIMIZED in text
    asm = target.assembly(text)
    chunk_names = [line for line in asm.splitlines()
                   if line.startswith(".globl") or line.startswith("\t.globl")]
    assert all(target.PRE_OPTIMIZED not in line for line in chunk_names)
    assert any(target.PRE_OPTIMIZED in line for line in asm.splitlines())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_chained_walk_over_many_small_windows(monkeypatch, dtype):
    # lanes run on to the next tree of their window on their own; tiny windows put many
    # window ends (leaves pointing to the sink) into one model; sums must stay in tree order
    import codegen.emit_trees as et
    from codegen.compile import PREDICT_SYMBOL, RAW_SYMBOL, build_object
    from runtime.loader import load
    from runtime.model import CompiledModel

    monkeypatch.setattr(et, "CHAIN_WINDOW_RECORDS", 8)
    for seed in (3, 12, 57):
        ens = random_ensemble(seed)
        if ens.n_outputs != 1 or max(t.leaf_width for t in ens.trees) != 1:
            ens = Ensemble(trees=[Tree(**{**vars(t), "output": 0, "leaf_value": t.leaf_value[:, :1]})
                                  for t in ens.trees],
                           n_features=ens.n_features, transform=ens.transform,
                           zero_threshold=ens.zero_threshold, input_cast=ens.input_cast)
        chained = et.chain_records(lower(ens), dtype == "float32")
        assert len(chained.window_roots) > 1 or len(ens.trees) == 1
        rng = np.random.default_rng(seed)
        X = rng.choice(VALUES, size=(300, ens.n_features))
        if dtype == "float32":
            with np.errstate(over="ignore"):
                X = X.astype(np.float32)
        lib = load(build_object(ens, walk="lockstep", dtype=dtype), [RAW_SYMBOL, PREDICT_SYMBOL])
        meta = {"symbols": {"raw": RAW_SYMBOL, "predict": PREDICT_SYMBOL}, "dtype": dtype,
                "n_features": ens.n_features, "n_outputs": 1}
        got = CompiledModel(lib, meta, threads=1).predict(X, raw_score=True)
        np.testing.assert_array_equal(got, reference_predict(ens, X, raw_score=True)[:, 0])


def test_chained_records_add_negative_zero_on_internal_nodes():
    # x + -0.0 == x for every x (also -0.0): internal records must carry -0.0, not +0.0
    from codegen.emit_trees import chain_records

    ens = random_ensemble(3)
    ch = chain_records(lower(ens))
    internal = ch.records["val"][:-1][lower(ens).nodes["next"] >= 0]
    assert np.all(internal == 0) and np.all(np.signbit(internal))
    assert ch.records["next"][-1] < 0  # the sink is flagged and points to itself
    ens0 = Ensemble(trees=[Tree(feature=[0], threshold=[0.5], kind=[0], missing_type=[0],
                                default_left=[True], left=[-1], right=[-2],
                                leaf_value=[-0.0, -0.0])] * 3, n_features=1)
    model = compile_model(ens0, cache=False, threads=1)
    got = model.predict(np.zeros((20, 1)), raw_score=True)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(reference_predict(ens0, np.zeros((20, 1)), raw_score=True)[:, 0]))


# ------------------------------------------------------------------ leaf-mask walk (tree_masks)

def _scalar_leaves(ens: Ensemble) -> Ensemble:
    """``ens`` with one scalar leaf per tree (the leaf-mask walk's domain), outputs kept."""
    trees = [Tree(**{**vars(t), "leaf_value": t.leaf_value[:, :1],
                     "output": min(t.output, ens.n_outputs - 1)}) for t in ens.trees]
    return Ensemble(**{**vars(ens), "trees": trees})


def _many_trees(seed: int, n_trees: int, max_internal: int) -> Ensemble:
    rng = np.random.default_rng(seed)
    n_features = int(rng.integers(1, 6))
    n_outputs = int(rng.integers(1, 4))
    return Ensemble(
        trees=[random_tree(rng, n_features, n_outputs, 1, max_internal) for _ in range(n_trees)],
        n_features=n_features, n_outputs=n_outputs,
        base_score=rng.normal(size=n_outputs) if rng.random() < 0.5 else None,
        input_cast=str(rng.choice(["float64", "float32"])),
        zero_threshold=float(rng.choice([0.0, LIGHTGBM_ZERO_THRESHOLD])),
        transform=str(rng.choice(sorted(TRANSFORMS))))


def test_leaf_mask_tables_apply_and_fall_back():
    from codegen.tree_masks import build_masks

    ens = _scalar_leaves(random_ensemble(3))
    mk = build_masks(ens, lower(ens))
    assert mk is not None and mk.W == 32 and mk.table.shape[1] == mk.G + 1
    deep = _many_trees(5, 70, 60)  # trees with up to 61 leaves: 64-bit masks, 3 chunks
    mk = build_masks(deep, lower(deep))
    assert mk is not None and mk.W == 64 and mk.n_chunks == 3
    vector = random_ensemble(10)
    assert max(t.leaf_width for t in vector.trees) > 1 and build_masks(vector, lower(vector)) is None
    huge = _many_trees(4, 2, 80)
    assert max(t.n_leaves for t in huge.trees) > 64 and build_masks(huge, lower(huge)) is None


@pytest.mark.parametrize("seed,n_trees,max_internal", [(1, 70, 12), (2, 33, 40), (4, 17, 63),
                                                      (8, 5, 0), (9, 130, 8), (10, 128, 5)])
def test_leaf_mask_walk_over_several_chunks(seed, n_trees, max_internal):
    # several chunks of trees (padding trees in the last), 32- and 64-bit masks, one-leaf trees
    ens = _many_trees(seed, n_trees, max_internal)
    rng = np.random.default_rng(seed)
    X = rng.choice(VALUES, size=(300, ens.n_features))
    mask = rng.random(X.shape) < 0.2
    X[mask] = rng.normal(scale=3, size=int(mask.sum()))
    want_raw = reference_predict(ens, X, raw_score=True).reshape(len(X), ens.n_outputs)
    want = reference_predict(ens, X).reshape(len(X), ens.n_outputs)
    model = _kernel(ens, "masks")
    for n in (300, 0, 1, 3, 5, 299):
        np.testing.assert_array_equal(model.predict(X[:n], raw_score=True).reshape(n, ens.n_outputs),
                                      want_raw[:n], err_msg=f"n={n}")
        np.testing.assert_array_equal(model.predict(X[:n]).reshape(n, ens.n_outputs), want[:n])


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1))
def test_leaf_mask_walk_matches_reference(model_seed, data_seed):
    ens = _scalar_leaves(random_ensemble(model_seed))
    model = _kernel(ens, "masks")
    rng = np.random.default_rng(data_seed)
    n = int(rng.choice([0, 1, 3, 8, 9, 70]))
    X = rng.choice(VALUES, size=(n, ens.n_features))
    mask = rng.random(X.shape) < 0.2
    X[mask] = rng.normal(scale=3, size=int(mask.sum()))
    np.testing.assert_array_equal(model.predict(X, raw_score=True).reshape(n, ens.n_outputs),
                                  reference_predict(ens, X, raw_score=True).reshape(n, ens.n_outputs))
    np.testing.assert_array_equal(model.predict(X).reshape(n, ens.n_outputs),
                                  reference_predict(ens, X).reshape(n, ens.n_outputs))


# ------------------------------------------- leaf-mask walk: AVX-512 sums and bucket search

def _host_avx512() -> bool:
    from codegen.tree_masks import _host_avx512

    return _host_avx512()


def _many_cuts(seed: int, n_trees: int, max_internal: int, n_cuts: int) -> Ensemble:
    """Numeric trees whose thresholds come from ``n_cuts`` distinct values on few features
    (slots with many cut points: two-level or binary-search buckets)."""
    ens = _many_trees(seed, n_trees, max_internal)
    rng = np.random.default_rng(seed + 1000)
    pool = np.concatenate([rng.normal(scale=2, size=n_cuts), THRESHOLDS])
    trees = []
    for t in ens.trees:
        n = t.n_internal
        trees.append(Tree(**{**vars(t), "kind": np.zeros(n, np.uint8), "output": 0,
                             "threshold": rng.choice(pool, size=n)}))
    return Ensemble(**{**vars(ens), "trees": trees, "n_outputs": 1,
                       "base_score": ens.base_score[:1] if ens.base_score is not None else None})


VARIANTS = {  # tree_masks switches: the generic path, and each AVX-512 part on its own
    "generic": dict(PERMUTE_SUMS=False, TWO_LEVEL_BLOCKS=0, LEAD_ZEROS=False),
    "generic-lz": dict(PERMUTE_SUMS=False, TWO_LEVEL_BLOCKS=0, LEAD_ZEROS=True),
    "permute": dict(PERMUTE_SUMS=True, TWO_LEVEL_BLOCKS=0, PERMUTE_GROUPS=2),
    "permute-1group-unrolled": dict(PERMUTE_SUMS=True, PERMUTE_GROUPS=1, TREE_LOOP=False,
                                    TAIL_LANES=False),
    "two-level": dict(PERMUTE_SUMS=False, TWO_LEVEL_BLOCKS=64),
    "all": dict(PERMUTE_SUMS=True, TWO_LEVEL_BLOCKS=64, LEAD_ZEROS=True, PERMUTE_GROUPS=4),
}


def _variant(monkeypatch, name):
    from codegen import tree_masks

    cfg = VARIANTS[name]
    if (cfg.get("PERMUTE_SUMS") or cfg.get("TWO_LEVEL_BLOCKS")) and not _host_avx512():
        pytest.skip("host CPU without AVX-512F")
    for k, v in cfg.items():
        monkeypatch.setattr(tree_masks, k, v)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("seed,n_trees,max_internal,n_cuts", [
    (1, 100, 30, 300),  # 31 leaves (32-entry look-ups), a 36-tree last chunk, 2-level buckets
    (2, 70, 15, 40),  # <= 16 leaves (16-entry look-ups)
    (3, 64, 20, 700),  # one full chunk; > 512 cut points: binary search
    (4, 9, 31, 30), (5, 1, 5, 3), (6, 130, 8, 120)])
def test_leaf_mask_variants_match_reference(monkeypatch, variant, seed, n_trees, max_internal,
                                            n_cuts):
    _variant(monkeypatch, variant)
    ens = _many_cuts(seed, n_trees, max_internal, n_cuts)
    rng = np.random.default_rng(seed)
    X = rng.choice(VALUES, size=(301, ens.n_features))
    mask = rng.random(X.shape) < 0.6
    X[mask] = rng.normal(scale=3, size=int(mask.sum()))
    want_raw = reference_predict(ens, X, raw_score=True)
    want = reference_predict(ens, X)
    model = _kernel(ens, "masks")
    # row counts around the 16-row, 8-row and 4-row steps of the sums
    for n in (301, 0, 1, 3, 4, 7, 8, 12, 15, 16, 17, 24, 255, 256, 257):
        np.testing.assert_array_equal(model.predict(X[:n], raw_score=True).reshape(-1),
                                      want_raw[:n].reshape(-1), err_msg=f"n={n}")
        np.testing.assert_array_equal(model.predict(X[:n]).reshape(-1), want[:n].reshape(-1))


@pytest.mark.parametrize("variant", ["generic", "all"])
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1))
def test_leaf_mask_variants_hypothesis(variant, model_seed, data_seed):
    from codegen import tree_masks

    cfg = VARIANTS[variant]
    if variant != "generic" and not _host_avx512():
        pytest.skip("host CPU without AVX-512F")
    saved = {k: getattr(tree_masks, k) for k in cfg}
    try:
        for k, v in cfg.items():
            setattr(tree_masks, k, v)
        rng = np.random.default_rng(model_seed)
        ens = _many_cuts(int(rng.integers(1 << 30)), int(rng.integers(1, 140)),
                         int(rng.integers(0, 31)), int(rng.integers(1, 600)))
        model = _kernel(ens, "masks")
    finally:
        for k, v in saved.items():
            setattr(tree_masks, k, v)
    rng = np.random.default_rng(data_seed)
    n = int(rng.choice([0, 1, 3, 8, 9, 16, 70]))
    X = rng.choice(VALUES, size=(n, ens.n_features))
    mask = rng.random(X.shape) < 0.5
    X[mask] = rng.normal(scale=3, size=int(mask.sum()))
    np.testing.assert_array_equal(model.predict(X, raw_score=True).reshape(-1),
                                  reference_predict(ens, X, raw_score=True).reshape(-1))


def test_leaf_mask_helpers():
    from codegen.tree_masks import _reverse_bits

    a = np.array([1, 2, 0x80000000, 0xFFFFFFFF, 0x12345678], np.uint32)
    want = [int(f"{int(x):032b}"[::-1], 2) for x in a]
    assert _reverse_bits(a).tolist() == want
    a64 = np.array([[1, 3 << 62]], np.uint64)
    assert _reverse_bits(a64).tolist() == [[1 << 63, 3]]


def test_transpose8_is_a_transpose():
    import ctypes

    from codegen.target import compile_ir
    from codegen.tree_masks import _transpose8
    from runtime.loader import load

    I64T = ir.IntType(64)
    V8Q = ir.VectorType(I64T, 8)
    module = ir.Module("t")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [V8Q.as_pointer(), V8Q.as_pointer()]),
                     "tr")
    b = ir.IRBuilder(fn.append_basic_block())
    src, dst = fn.args
    cols = _transpose8(b, [b.load(b.gep(src, [I64T(j)]), align=8) for j in range(8)])
    for q, c in enumerate(cols):
        b.store(c, b.gep(dst, [I64T(q)]), align=8)
    b.ret_void()
    lib = load(compile_ir(str(module)), ["tr"])
    f = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(lib.addresses["tr"])
    x = np.arange(64, dtype=np.int64).reshape(8, 8)
    y = np.zeros_like(x)
    f(x.ctypes.data, y.ctypes.data)
    np.testing.assert_array_equal(y, x.T)
