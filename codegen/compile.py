"""``compile_model``: model -> Ensemble -> LLVM IR -> object code -> loaded CompiledModel,
with an on-disk cache keyed by model content, options, code-generator version and CPU."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import llvmlite.ir as ir

from . import target
from .emit_trees import DTYPES, emit_ensemble, lower
from .ensemble import Ensemble

RAW_SYMBOL = "mloc_model_raw"
PREDICT_SYMBOL = "mloc_model_predict"

# Source files whose changes change the generated code: part of every cache key.
_GENERATOR_FILES = ("emit_trees.py", "ensemble.py", "target.py", "compile.py", "tree_masks.py",
                    "llvm_util.py")


def _generator_version() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _GENERATOR_FILES:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def to_ensemble(model, **options) -> Ensemble:
    """Convert a supported model object (or LightGBM model file/string) to an Ensemble."""
    if isinstance(model, Ensemble):
        return model
    module = type(model).__module__
    if isinstance(model, (str, os.PathLike)) or module.startswith("lightgbm"):
        from .lightgbm_model import from_lightgbm
        return from_lightgbm(model, **options)
    raise TypeError(f"compile_model does not support {type(model).__module__}."
                    f"{type(model).__name__}; supported: lightgbm.Booster, lightgbm LGBM* "
                    "models, LightGBM model files, codegen.Ensemble")


def ensemble_digest(ens: Ensemble) -> str:
    """Content hash of everything in an Ensemble that affects predictions."""
    h = hashlib.sha256()
    h.update(repr((ens.n_features, ens.n_outputs, ens.average, ens.average_raw, ens.input_cast,
                   ens.zero_threshold, ens.transform, ens.transform_param)).encode())
    h.update(ens.base_score.tobytes())
    for t in ens.trees:
        h.update(str(t.output).encode())
        for a in (t.feature, t.threshold, t.kind, t.missing_type, t.default_left, t.left,
                  t.right, t.leaf_value, t.cat_begin, t.cat_end, t.cat_words):
            h.update(a.tobytes())
    return h.hexdigest()


def build_object(ens: Ensemble, walk: str = "auto", dtype: str = "float64") -> bytes:
    """Object code exporting ``RAW_SYMBOL`` and ``PREDICT_SYMBOL`` for ``ens``."""
    module = ir.Module(name="mloc_model")
    low = lower(ens)
    emit_ensemble(module, ens, RAW_SYMBOL, raw_score=True, lowered=low, walk=walk, dtype=dtype)
    emit_ensemble(module, ens, PREDICT_SYMBOL, raw_score=False, lowered=low, walk=walk,
                  dtype=dtype)
    return target.compile_ir(str(module))


def compile_model(model, *, dtype: str = "float64", threads: int | None = None,
                  cache: bool = True, num_iteration: int | None = None,
                  start_iteration: int = 0):
    """Compile a tree model to native code and load it.

    ``model``: ``lightgbm.Booster``, a fitted ``lightgbm.LGBM*`` model, a LightGBM model
    file path or string, or a ``codegen.Ensemble``.  ``num_iteration``/``start_iteration``
    select iterations like ``Booster.predict``.  ``threads``: worker threads for large
    batches (default: all CPUs).  ``cache``: reuse object code from ``$MLOC_CACHE_DIR``
    (default ``~/.cache/mloc``).  Returns a ``runtime.CompiledModel``.

    ``dtype``: ``"float64"`` (default) reads float64 rows and gives LightGBM's results bit
    for bit.  ``"float32"`` reads float32 rows without converting them (float64 or integer
    inputs are rounded to the nearest float32 first, in ``predict``) and walks 8-byte node
    records over float32 slots; leaf values are still summed in float64, so the results
    are bit-identical to LightGBM's on the float32 values (``X.astype(np.float32)``).  Only
    rows whose float64 values round across a split threshold can differ from LightGBM's
    prediction on the float64 values.  Details and measurements: ``codegen/README.md``.
    """
    from runtime import cache as object_cache
    from runtime.loader import load
    from runtime.model import CompiledModel

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float64' (exact on float64 inputs) or 'float32' "
                         f"(float32 inputs, see compile_model's docstring); got {dtype!r}")
    options = {}
    if not isinstance(model, Ensemble):
        options = dict(num_iteration=num_iteration, start_iteration=start_iteration)
    ens = to_ensemble(model, **options)
    started = time.perf_counter()
    key = hashlib.sha256(f"{ensemble_digest(ens)}|{dtype}|{_generator_version()}|"
                         f"{target.cpu_key()}".encode()).hexdigest()[:32]
    hit = object_cache.get(key) if cache else None
    if hit is not None:
        obj, meta = hit
    else:
        obj = build_object(ens, dtype=dtype)
        meta = {
            "symbols": {"raw": RAW_SYMBOL, "predict": PREDICT_SYMBOL},
            "dtype": dtype,
            "n_features": ens.n_features,
            "n_outputs": ens.n_outputs,
            "n_trees": len(ens.trees),
            "transform": ens.transform,
            "source": ens.source,
            "feature_names": ens.feature_names,
            "key": key,
        }
        if cache:
            object_cache.put(key, obj, meta)
    lib = load(obj, [meta["symbols"]["raw"], meta["symbols"]["predict"]])
    model = CompiledModel(lib, meta, threads=threads)
    model.compile_seconds = time.perf_counter() - started
    model.cache_hit = hit is not None
    return model
