"""On-disk compile cache: content key -> saved model artifact.

The key (computed by the caller) covers the model content, the compile options and the code
generator's version; the host CPU is checked when an entry is read, so an entry written on
another CPU (a shared home directory) or a corrupt one counts as a miss and is rebuilt.
Directory: ``$MLOC_CACHE_DIR``, default ``~/.cache/mloc``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .model import ArtifactError, read_artifact, write_artifact


def cache_dir() -> Path:
    return Path(os.environ.get("MLOC_CACHE_DIR") or Path.home() / ".cache" / "mloc")


def entry_path(key: str) -> Path:
    return cache_dir() / f"{key}.mloc"


def get(key: str):
    """``(object_code, meta)`` for ``key``, or None if absent, corrupt or for another CPU."""
    path = entry_path(key)
    if not path.is_file():
        return None
    try:
        return read_artifact(path)
    except ArtifactError:
        return None


def put(key: str, object_code: bytes, meta: dict) -> None:
    """Store an entry; a cache that cannot be written is not an error (just no caching)."""
    try:
        write_artifact(entry_path(key), object_code, meta)
    except OSError:
        pass


def compiled(kind: str, ir_text: str, name: str) -> bytes:
    """Object code of a small helper module (``kind``: its family, e.g. ``"text"``), compiled
    at speed level 3 or read from the cache under a key of its IR and the host CPU."""
    import hashlib

    from codegen import target
    key = hashlib.sha256(f"{kind}|3|{target.cpu_key()}|".encode()
                         + ir_text.encode()).hexdigest()[:32]
    hit = get(key)
    if hit is not None:
        return hit[0]
    obj = target.compile_ir(ir_text, speed_level=3)
    put(key, obj, {"kind": kind, "name": name})
    return obj
