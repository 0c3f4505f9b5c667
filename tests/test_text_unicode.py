"""Unicode tables of the native text kernels (``codegen/text_unicode.py``).

The tables are generated in bulk (one string of every code point through ``str.lower``, NFKD,
``re``...); here each entry is recomputed the slow way, code point by code point with Python's
own functions, on every code point of the ranges where the properties change most and a random
sample of the rest.
"""
from __future__ import annotations

import random
import re
import unicodedata

import numpy as np
import pytest

from codegen import text_unicode as tu

_WORD = re.compile(r"\w")


def _sample() -> list[int]:
    rng = random.Random(7)
    dense = list(range(0x3000)) + list(range(0xA640, 0xA800)) + list(range(0xD7F0, 0xE010)) \
        + list(range(0xFB00, 0xFB50)) + list(range(0xFF00, 0xFF70)) \
        + list(range(0x10400, 0x10500)) + list(range(0x1D400, 0x1D500)) + [0x10FFFF]
    return dense + [rng.randrange(tu.N_CODE_POINTS) for _ in range(30000)]


SAMPLE = _sample()


def _flags_of(cp: int) -> int:
    c = chr(cp)
    f = tu._sigma_properties(c)
    f |= tu.WORD if _WORD.match(c) else 0
    f |= tu.SPACE if c.isspace() else 0
    f |= tu.UPPER_FIXED if c.upper() == c else 0
    f |= tu.SURROGATE if 0xD800 <= cp <= 0xDFFF else 0
    return f


def _decode(m: np.ndarray, pool: np.ndarray, cp: int) -> str:
    v = int(m[cp])
    if v & tu.MULTI:
        n, off = (v >> 24) & 0x7F, v & 0xFFFFFF
        return "".join(chr(c) for c in pool[off:off + n])
    return chr(cp + v - tu.DELTA_BIAS)


def test_flags_match_python_code_point_by_code_point():
    flags = tu.tables()["flags"]
    for cp in SAMPLE:
        assert flags[cp] == _flags_of(cp), hex(cp)


def test_every_code_point_word_space_upper():
    """The cheap properties over all 1.1 million code points."""
    chars = "".join(map(chr, range(tu.N_CODE_POINTS)))
    flags = tu.tables()["flags"]
    space = np.frombuffer(bytes(c.isspace() for c in chars), np.uint8).astype(bool)
    assert np.array_equal((flags & tu.SPACE) != 0, space)
    word = np.frombuffer(bytes(c.isalnum() or c == "_" for c in chars), np.uint8).astype(bool)
    assert np.array_equal((flags & tu.WORD) != 0, word)


@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("strip", tu.STRIP_MODES)
def test_mappings_match_python(lowercase, strip):
    m, pool = tu.mapping(lowercase, strip)
    for cp in SAMPLE:
        c = chr(cp)
        base = c.lower() if lowercase else c
        expected = "".join(tu._strip(ch, strip) for ch in base)
        assert _decode(m, pool, cp) == expected, (hex(cp), lowercase, strip)


def test_strip_per_code_point_is_strip_of_the_string():
    """The module docstring's claim: stripping accents code point by code point equals
    scikit-learn's NFKD of the whole string (for the sample, pairs of code points)."""
    rng = random.Random(3)
    marks = [0x301, 0x327, 0x308, 0x323, 0x3099, 0x5B0]
    for _ in range(3000):
        s = "".join(chr(rng.choice(SAMPLE)) if rng.random() < 0.6 else chr(rng.choice(marks))
                    for _ in range(4))
        for mode in ("ascii", "unicode"):
            per_cp = "".join(tu._strip(ch, mode) for ch in s)
            nfkd = unicodedata.normalize("NFKD", s)
            whole = ("".join(ch for ch in nfkd if ord(ch) < 128) if mode == "ascii"
                     else "".join(ch for ch in nfkd if not unicodedata.combining(ch)))
            assert per_cp == whole


def test_two_level_roundtrip():
    cps = np.arange(tu.N_CODE_POINTS)
    index, blocks = tu.flag_blocks()
    flags = tu.tables()["flags"]
    assert np.array_equal(blocks[index[cps >> 8].astype(np.int64) * 256 + (cps & 255)], flags)
    index, blocks, _ = tu.map_blocks(True, "unicode")
    m, _ = tu.mapping(True, "unicode")
    assert np.array_equal(blocks[index[cps >> 8].astype(np.int64) * 256 + (cps & 255)], m)


def test_cold_generation_is_bulk():
    """Generating the tables afresh (what a machine without the disk cache does) gives the
    tables in use, in bulk: well under the ~20 s of CPU the per-code-point loop took (the
    limit is generous for loaded CI machines; it takes ~1.2 s)."""
    import time
    t = time.process_time()
    fresh = tu._generate()
    spent = time.process_time() - t
    cached = tu.tables()
    assert fresh.keys() == cached.keys()
    for k in fresh:
        assert fresh[k].dtype == cached[k].dtype and np.array_equal(fresh[k], cached[k]), k
    assert spent < 8.0
