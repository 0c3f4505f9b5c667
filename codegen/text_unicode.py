"""Unicode tables for the native text kernels, generated from the running Python.

The kernels must agree with Python's own string functions for every code point, so every table
here is *measured* from the interpreter that will check them, not from an external Unicode
file:

* ``WORD``: the ``re`` module's ``\\w`` for ``str`` patterns (``isalnum() or '_'``);
* ``SPACE``: ``\\s`` / ``str.isspace`` (``str.split()`` and ``sklearn``'s ``\\s\\s+``);
* ``CASED`` / ``IGNORABLE``: the two properties ``str.lower`` consults for the one
  context-dependent mapping it has (capital sigma becomes final sigma ``ς`` after a cased
  letter and not before one).  Python exposes neither, so they are probed through
  ``lower()`` itself (see :func:`_sigma_properties`);
* ``UPPER_FIXED``: ``c.upper() == c`` (so ``t.upper() == t`` holds iff every code point has it:
  ``upper`` never shortens a string, and any expansion makes it longer);
* ``SURROGATE``: lone surrogates (``str.encode('utf-8')`` raises on them).

Per-code-point *mappings* (``lower``, then scikit-learn's ``strip_accents``) are tables of
code-point sequences: a value is either one code point (stored as ``cp + DELTA_BIAS - c``, a
delta, so identical blocks repeat and compress) or ``MULTI | length << 24 | offset`` into a pool
of code points for multi-code-point results (``'İ'.lower() == 'i̇'``).

``strip_accents`` is a per-code-point map although scikit-learn applies NFKD to whole strings:
NFKD decomposes each code point on its own and then only reorders runs of combining marks
(canonical class != 0); ``"unicode"`` drops exactly those marks and ``"ascii"`` keeps only ASCII,
whose class is 0, so the survivors never move.

Tables are stored two-level (``index[cp >> 8]`` selects a 256-entry block) and cached on disk
under a key of the Python version and ``unicodedata.unidata_version``.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np

N_CODE_POINTS = 0x110000
BLOCK = 256
WORD, SPACE, CASED, IGNORABLE, UPPER_FIXED, SURROGATE = 1, 2, 4, 8, 16, 32
CAPITAL_SIGMA, SMALL_SIGMA, FINAL_SIGMA = 0x3A3, 0x3C3, 0x3C2
MULTI = 1 << 31
DELTA_BIAS = 1 << 22
STRIP_MODES = (None, "ascii", "unicode")


def _cache_path() -> Path:
    key = f"{sys.version}|{unicodedata.unidata_version}|v1"
    base = Path(os.environ.get("MLOC_CACHE_DIR") or Path.home() / ".cache" / "mloc")
    return base / f"text-unicode-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _sigma_properties(c: str) -> int:
    """CASED / IGNORABLE of ``c`` as ``str.lower``'s final-sigma rule sees them.

    ``'cΣ'`` lowers to a final sigma iff ``c`` is cased and not case-ignorable;
    ``'AcΣ'`` does so also when ``c`` is case-ignorable (the scan skips it and finds 'A').
    """
    alone = (c + "\u03a3").lower()[-1] == "\u03c2"
    after_a = ("A" + c + "\u03a3").lower()[-1] == "\u03c2"
    flags = 0
    if alone:
        flags |= CASED
    elif after_a:
        flags |= IGNORABLE
    return flags


def _strip(s: str, mode) -> str:
    if mode is None:
        return s
    nfkd = unicodedata.normalize("NFKD", s)
    if mode == "ascii":
        return "".join(ch for ch in nfkd if ord(ch) < 128)
    return "".join(ch for ch in nfkd if not unicodedata.combining(ch))


# -- generation ---------------------------------------------------------------------------------
# Python's own functions run on one string holding every code point (each alone, or followed by
# a probe), so the per-code-point work happens in CPython's C loops and NumPy; a loop over the
# code points in Python took ~20 s of CPU.  Code points are kept apart by U+0000: no mapping
# produces it, it is neither cased nor case-ignorable (so it bounds str.lower's final-sigma
# context scan) and its canonical combining class is 0 (so NFKD never reorders across it).
# Code point 0 itself is done on its own.  Results are *ragged* arrays: ``lens[cp]`` code
# points for each code point, all of them one after another in ``flat``.

ALL_CPS = np.arange(N_CODE_POINTS, dtype=np.uint32)


def _code_points(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-32-le", "surrogatepass"), "<u4")


def _text(cps: np.ndarray) -> str:
    return np.ascontiguousarray(cps, "<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _segments(fn, before: tuple = (), after: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ``fn(before + chr(cp) + after)`` for every code point ``cp > 0`` (``fn`` maps
    strings code point by code point, apart from the final-sigma context that U+0000 bounds)."""
    width = 2 + len(before) + len(after)
    parts = np.zeros((N_CODE_POINTS - 1, width), np.uint32)  # column 0: the separator
    parts[:, 1:1 + len(before)] = before
    parts[:, 1 + len(before)] = ALL_CPS[1:]
    parts[:, 2 + len(before):] = after
    out = _code_points(fn(_text(parts.ravel())))
    seps = np.flatnonzero(out == 0)
    if len(seps) != N_CODE_POINTS - 1:  # pragma: no cover - a mapping produced U+0000
        raise RuntimeError(f"{fn} produced U+0000; the Unicode tables cannot be generated")
    lens = np.diff(np.append(seps, len(out))) - 1
    return lens, out[out != 0]


def _each(fn) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ``fn(chr(cp))`` for every code point."""
    lens, flat = _segments(fn)
    first = _code_points(fn("\0"))
    return np.append(len(first), lens), np.concatenate([first, flat])


def _flags() -> np.ndarray:
    chars = _text(ALL_CPS)
    flags = np.zeros(N_CODE_POINTS, np.uint8)
    flags[_code_points(re.sub(r"\W", "\0", chars)) != 0] |= WORD  # what re's \w matches
    flags[np.frombuffer(bytes(map(str.isspace, chars)), np.uint8) != 0] |= SPACE
    ulens, uflat = _each(str.upper)
    single = ulens == 1
    fixed = np.zeros(N_CODE_POINTS, bool)
    fixed[single] = uflat[(np.cumsum(ulens) - 1)[single]] == ALL_CPS[single]
    flags[fixed] |= UPPER_FIXED
    # _sigma_properties for every code point at once: is the probe's last code point final?
    last = {}
    for before in ((), (ord("A"),)):
        lens, flat = _segments(str.lower, before, (CAPITAL_SIGMA,))
        last[before] = flat[np.cumsum(lens) - 1] == FINAL_SIGMA
    cased = last[()]
    ignorable = ~cased & last[(ord("A"),)]
    flags[1:][cased] |= CASED
    flags[1:][ignorable] |= IGNORABLE
    flags[0] |= _sigma_properties("\0")
    flags[0xD800:0xE000] |= SURROGATE
    return flags


def _owners(lens: np.ndarray) -> np.ndarray:
    """For each code point of a ragged array's ``flat``, the code point whose result it is."""
    return np.repeat(np.arange(len(lens)), lens)


def _keep(lens, flat, keep: np.ndarray):
    """The ragged array with the code points where ``keep`` is false dropped."""
    new_lens = np.bincount(_owners(lens)[keep], minlength=len(lens))
    return new_lens, flat[keep]


def _compose(lens, flat, table_lens, table_flat):
    """Each code point of ``(lens, flat)`` replaced by its result in the ragged ``table``."""
    starts = np.cumsum(table_lens) - table_lens
    counts = table_lens[flat]
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    new_flat = table_flat[np.repeat(starts[flat], counts) + within]
    new_lens = np.bincount(_owners(lens), weights=counts, minlength=len(lens)).astype(np.int64)
    return new_lens, new_flat


def _encode(lens, flat) -> tuple[np.ndarray, np.ndarray]:
    """``(map, pool)`` of a ragged per-code-point result (see the module docstring)."""
    lens = lens.astype(np.int64)
    cps = ALL_CPS.astype(np.int64)
    out = np.zeros(N_CODE_POINTS, np.uint32)
    single = lens == 1
    out[single] = flat[(np.cumsum(lens) - 1)[single]].astype(np.int64) + DELTA_BIAS - cps[single]
    # the others (empty or longer results) go to the pool one after another, in code-point order
    multi_lens = np.where(single, 0, lens)
    offsets = np.cumsum(multi_lens) - multi_lens
    out[~single] = (MULTI | (lens[~single] << 24) | offsets[~single]).astype(np.uint32)
    return out, np.ascontiguousarray(flat[np.repeat(~single, lens)], np.uint32)


def _generate() -> dict[str, np.ndarray]:
    identity = (np.ones(N_CODE_POINTS, np.int64), ALL_CPS)
    lowered = _each(str.lower)  # capital sigma: the kernel applies the context rule
    nfkd = _each(lambda s: unicodedata.normalize("NFKD", s))
    combining = np.frombuffer(bytes(map(unicodedata.combining, _text(ALL_CPS))), np.uint8)
    stripped = {"ascii": _keep(*nfkd, nfkd[1] < 128),
                "unicode": _keep(*nfkd, combining[nfkd[1]] == 0)}
    results = {(0, None): identity, (1, None): lowered}
    for mode, table in stripped.items():
        results[(0, mode)] = table
        results[(1, mode)] = _compose(*lowered, *table)  # lower, then strip each code point
    out = {"flags": _flags()}
    for low in (0, 1):
        for mode in STRIP_MODES:
            key = f"{low}-{mode}"
            out[f"map:{key}"], out[f"pool:{key}"] = _encode(*results[(low, mode)])
    return out


@functools.lru_cache(maxsize=1)
def tables() -> dict[str, np.ndarray]:
    """All tables (generated once per Python version, then read from the disk cache)."""
    path = _cache_path()
    if path.is_file():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            pass
    data = _generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **data)
        os.replace(tmp, path)
    except OSError:
        pass
    return data


def two_level(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index, blocks)`` with ``values[cp] == blocks[index[cp >> 8] * 256 + (cp & 255)]``;
    blocks in order of first use."""
    rows = values.reshape(-1, BLOCK)
    first: dict[bytes, int] = {}
    index = np.array([first.setdefault(r.tobytes(), len(first)) for r in rows], np.uint16)
    uniq = np.unique(index, return_index=True)[1]  # each block's first row, in block order
    return index, np.ascontiguousarray(rows[uniq].ravel())


@functools.lru_cache(maxsize=None)
def flag_blocks() -> tuple[np.ndarray, np.ndarray]:
    """:func:`two_level` of the flags (u16 index, u8 blocks)."""
    return two_level(tables()["flags"])


@functools.lru_cache(maxsize=None)
def map_blocks(lowercase: bool, strip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index, blocks, pool)``: :func:`two_level` of :func:`mapping` and its pool."""
    m, pool = mapping(lowercase, strip)
    return (*two_level(m), pool)


def mapping(lowercase: bool, strip) -> tuple[np.ndarray, np.ndarray]:
    """``(map, pool)`` of the composed per-code-point preprocessing (lower, then strip)."""
    t = tables()
    key = f"{int(bool(lowercase))}-{strip}"
    return t[f"map:{key}"], t[f"pool:{key}"]


def is_identity(lowercase: bool, strip) -> bool:
    return not lowercase and strip is None


def sigma_results(strip) -> tuple[list[int], list[int]]:
    """What small and final sigma become after ``strip`` (code-point lists)."""
    return tuple([ord(c) for c in _strip(ch, strip)] for ch in ("\u03c3", "\u03c2"))


@functools.lru_cache(maxsize=None)
def max_expansion(lowercase: bool, strip) -> int:
    """The longest sequence one code point maps to (buffers are sized by it)."""
    m, _ = mapping(lowercase, strip)
    multi = m[(m & MULTI) != 0]
    return int(((multi >> 24) & 0x7F).max()) if len(multi) else 1
