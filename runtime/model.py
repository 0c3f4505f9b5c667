"""``CompiledModel``: a loaded tree-ensemble kernel pair with a predict API, plus its
on-disk artifact format (object code + metadata, reloadable without recompiling).

Artifact layout: ``MAGIC`` (8 bytes), little-endian u64 length of a UTF-8 JSON header, the
header, then the object code.  The header records the CPU the code was built for; loading
on another CPU is refused (the code may use instructions it lacks).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from codegen import target

from . import pool
from .loader import load

MAGIC = b"MLOCOBJ1"
FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """A saved model file is unreadable, corrupt, or built for another CPU."""


#: Input element types a model can be compiled for (``meta["dtype"]``).
DTYPES = {"float64": np.float64, "float32": np.float32}


def _as_rows(X, n_features: int, dtype=np.float64) -> np.ndarray:
    """Validate/convert ``X`` to a 2-D ``dtype`` array whose rows are contiguous.

    For float32 models, float64 (and integer) inputs are rounded to the nearest float32.
    """
    dtype = np.dtype(dtype)
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X, dtype=dtype)
        except (TypeError, ValueError) as err:
            raise TypeError(f"X must be a 2-D array of numbers (n_rows, n_features); could not "
                            f"convert {type(X).__name__} to {dtype}: {err}") from None
    if X.ndim != 2:
        hint = "; for a single row use X.reshape(1, -1)" if X.ndim == 1 else ""
        raise ValueError(f"X must be 2-D (n_rows, n_features); got a {X.ndim}-D array of "
                         f"shape {X.shape}{hint}")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features per row but the model expects {n_features}")
    if X.dtype != dtype:
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers; got dtype {X.dtype}")
        # float64: exact for float32 and integers below 2**53; float32: rounds to nearest
        # (values beyond float32's range become +-inf, as IEEE rounding says: no warning)
        with np.errstate(over="ignore"):
            X = X.astype(dtype)
    size = dtype.itemsize
    if X.strides[1] != size or X.strides[0] < 0 or X.strides[0] % size:
        X = np.ascontiguousarray(X)
    return X


def _address(a: np.ndarray) -> int:
    """Data address of ``a``; ~2x cheaper than ``a.ctypes.data`` for the common
    (writeable, C-contiguous) case, which matters at batch size 1."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


class CompiledModel:
    """Native code for one tree ensemble.  ``predict`` mirrors ``lightgbm.Booster.predict``."""

    def __init__(self, library, meta: dict, *, threads: int | None = None):
        self._library = library
        self.meta = meta
        self.n_features = int(meta["n_features"])
        self.n_outputs = int(meta["n_outputs"])
        # artifacts written before float32 mode existed carry no dtype: they are float64
        self.dtype = meta.get("dtype", "float64")
        if self.dtype not in DTYPES:
            raise ValueError(f"model metadata names an unknown input dtype {self.dtype!r}")
        self._np_dtype = DTYPES[self.dtype]
        self.threads = threads if threads is not None else pool.default_threads()
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        self._raw = library.function(meta["symbols"]["raw"])
        self._pred = library.function(meta["symbols"]["predict"])

    @property
    def object_code(self) -> bytes:
        return self._library.object_code

    def predict(self, X, raw_score: bool = False, *, out: np.ndarray | None = None) -> np.ndarray:
        """Predictions for the rows of ``X`` (n_rows x n_features).

        Returns shape ``(n_rows,)`` for single-output models (regression, binary: the
        probability of class 1) and ``(n_rows, n_outputs)`` otherwise (multiclass), like
        ``Booster.predict``.  ``raw_score=True`` returns untransformed scores (for
        LightGBM models, bit-identical to ``Booster.predict(raw_score=True)``).
        ``out``, if given, must be a C-contiguous float64 array of that shape; it is filled
        and returned.  Results are float64 in both modes.  A float32-mode model
        (``self.dtype == "float32"``) reads float32 ``X`` in place and rounds other inputs
        to float32 first (a copy); a float64 model converts float32 ``X`` to float64 (exact).
        """
        fn = self._raw if raw_score else self._pred
        if not (type(X) is np.ndarray and X.dtype == self._np_dtype and X.ndim == 2
                and X.shape[1] == self.n_features and X.flags.c_contiguous):
            X = _as_rows(X, self.n_features, self._np_dtype)
        n, k = X.shape[0], self.n_outputs
        shape = (n,) if k == 1 else (n, k)
        if out is None:
            res = np.empty(shape)
        else:
            if not (isinstance(out, np.ndarray) and out.dtype == np.float64
                    and out.flags.c_contiguous and out.shape == shape):
                got = (f"{out.dtype} array of shape {out.shape}" if isinstance(out, np.ndarray)
                       else type(out).__name__)
                raise ValueError(f"out must be a C-contiguous float64 array of shape {shape}; "
                                 f"got {got}")
            res = out
        if n == 0:
            return res
        x_addr, r_addr = _address(X), _address(res)
        stride = X.strides[0] // X.itemsize
        if self.threads == 1 or n < 2 * pool.MIN_ROWS_PER_THREAD:
            fn(x_addr, n, stride, r_addr)
            return res
        row_bytes, out_bytes = X.strides[0], 8 * k

        def work(a: int, b: int) -> None:
            fn(x_addr + a * row_bytes, b - a, stride, r_addr + a * out_bytes)

        pool.run_chunks(work, pool.split(n, self.threads), self.threads)
        return res

    def __call__(self, X, raw_score: bool = False):
        return self.predict(X, raw_score)

    def __repr__(self) -> str:
        return (f"CompiledModel({self.meta.get('source', '?')}, n_features={self.n_features}, "
                f"n_outputs={self.n_outputs}, transform={self.meta.get('transform')!r}, "
                f"dtype={self.dtype!r}, threads={self.threads})")

    # ------------------------------------------------------------------ persistence

    def save(self, path) -> Path:
        """Write object code + metadata to ``path`` (reload with ``runtime.load_model``)."""
        path = Path(path)
        write_artifact(path, self.object_code, self.meta)
        return path


def write_artifact(path: Path, object_code: bytes, meta: dict) -> None:
    meta = dict(meta, format=FORMAT_VERSION, cpu_key=target.cpu_key(),
                cpu=target.host_cpu()[0], sha256=hashlib.sha256(object_code).hexdigest())
    header = json.dumps(meta, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename, so a reader (or a crash) never sees a half-written file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", len(header)) + header + object_code)
    os.replace(tmp, path)


def read_artifact(path) -> tuple[bytes, dict]:
    """Object code and metadata of a saved model; ArtifactError if unusable here."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"no saved model at {path}") from None
    if not data.startswith(MAGIC) or len(data) < 16:
        raise ArtifactError(f"{path} is not an mloc model file (bad magic bytes)")
    (n,) = struct.unpack("<Q", data[8:16])
    try:
        meta = json.loads(data[16:16 + n])
    except ValueError:
        raise ArtifactError(f"{path}: corrupt header") from None
    obj = data[16 + n:]
    if meta.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format {meta.get('format')} is not supported "
                            f"(this mloc reads format {FORMAT_VERSION}); recompile the model")
    if hashlib.sha256(obj).hexdigest() != meta.get("sha256"):
        raise ArtifactError(f"{path}: object code is corrupt (checksum mismatch)")
    if meta.get("cpu_key") != target.cpu_key():
        raise ArtifactError(f"{path} was compiled for CPU {meta.get('cpu')!r} "
                            f"(key {meta.get('cpu_key')}), not this one ({target.host_cpu()[0]!r}, "
                            f"key {target.cpu_key()}); recompile the model on this machine")
    return obj, meta


def load_model(path, *, threads: int | None = None) -> CompiledModel:
    """Load a model saved with ``CompiledModel.save`` without recompiling it."""
    obj, meta = read_artifact(path)
    lib = load(obj, [meta["symbols"]["raw"], meta["symbols"]["predict"]])
    return CompiledModel(lib, meta, threads=threads)
