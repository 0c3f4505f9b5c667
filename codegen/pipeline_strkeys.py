"""Run-time encoding of str key columns for the native hash lookups (``pipeline_strings``).

A native stage cannot read Python objects, so before it runs, each str column it looks up is
turned into plain arrays (kept in the call's environment, so every lookup of the column in the
stage, and any later stage, reuses them):

* ``units`` (uint32): the UTF-32 code units of all str rows back to back, each followed by a
  0 unit (a separator the kernel never reads);
* ``starts``, ``lens`` (int64, one ``index`` array of ``2n``): where each row's units are; a row
  whose element is not exactly a ``str`` has length ``-1 - j`` instead, ``j`` numbering such
  rows in order.

The stage receives the address of a *header*: four int64 byte offsets, counted from the header
itself, to ``units``, ``starts``, ``lens`` and ``special``.  ``special`` holds, for non-str row
``j`` and the stage's ``t``-th table hashing the column, at ``j * T + t``, the entry the host's
dict lookup finds (``index.get(element, -1)`` with the table's own key objects, so identity,
number equality and unhashable errors are the interpreter's).

Key columns repeat a few values, usually as the *same* objects (pandas' CSV reader and
``take``/fancy indexing share them), so a column of more than ``SMALL`` rows is first
deduplicated by object identity: the addresses of its elements (read from the object array's
buffer) are factorized in one hashing pass in C, and only the distinct objects are type-checked
and encoded; every row's ``starts``/``lens`` entry is its object's (rows share code units; the
kernel only reads them).  Identity, not equality, so a ``np.str_`` equal to a ``str`` of the
column still stays a special row; and the column (alive for the call) keeps every address
unique to its object.  Special rows are numbered per distinct object, in order of first
appearance, so equal numbers mean the same object and the same host answer.

Encoding a list of ``str`` (the distinct objects, or a column without NumPy's help): one
``"\\0".join``, one UTF-32 encode, and the separators found with NumPy; if the strings contain
NUL characters the separators are ambiguous and the lengths come from ``len`` instead.
Columns of at most ``SMALL`` rows (batch 1) skip NumPy: header, special entries, index and units
are packed into one bytes object, whose address is the only one looked up.
"""
from __future__ import annotations

import ctypes
import operator
import sys
from itertools import accumulate

import numpy as np

from .pipeline_strings import consumer_index, stage_consumers

_ENV_TAG = "mloc.strkeys"
#: columns up to this many rows get their lengths from ``len`` (cheaper than NumPy calls)
SMALL = 32


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class EncodedColumn:
    """A str column as arrays the kernel reads (see the module docstring)."""

    __slots__ = ("units", "index", "specials", "n", "units_at", "index_at")

    def __init__(self, units: np.ndarray, index: np.ndarray, specials: list):
        self.units = units
        self.index = index
        self.specials = specials  # the non-str elements, in row order
        self.n = len(index) // 2
        self.units_at = _address(units)
        self.index_at = _address(index)

    @property
    def starts(self) -> np.ndarray:
        return self.index[:self.n]

    @property
    def lens(self) -> np.ndarray:
        return self.index[self.n:]


def _encode(strings: list) -> tuple[np.ndarray, np.ndarray]:
    """``(units, index)`` of a list of str."""
    n = len(strings)
    text = "\0".join(strings) + "\0"
    units = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if n == 0:
        return units, np.zeros(0, dtype=np.int64)
    if n <= SMALL:
        lens = list(map(len, strings))
        starts = [0, *accumulate(k + 1 for k in lens[:-1])]
        return units, np.array(starts + lens, dtype=np.int64)
    index = np.empty(2 * n, dtype=np.int64)
    ends = np.flatnonzero(units == 0)
    if len(ends) != n:  # NULs inside the strings: separators are not where rows end
        ends = np.cumsum(np.fromiter(map(len, strings), dtype=np.int64, count=n) + 1) - 1
    index[0] = 0
    index[1:n] = ends[:-1] + 1
    np.subtract(ends, index[:n], out=index[n:])
    return units, index


def encode_column(col) -> EncodedColumn:
    """Encode a 1-D object array (or list) of row keys; ``len(col) >= 1``."""
    if isinstance(col, np.ndarray) and col.dtype == object and col.ndim == 1 and len(col) > SMALL:
        return _encode_distinct(np.ascontiguousarray(col))
    return _encode_rows(col.tolist() if isinstance(col, np.ndarray) else list(col))


def _encode_rows(items: list) -> EncodedColumn:
    """Encode ``items`` row by row (special rows numbered in row order)."""
    n = len(items)
    if operator.countOf(map(type, items), str) == n:
        return EncodedColumn(*_encode(items), [])
    odd = [i for i, x in enumerate(items) if type(x) is not str]
    specials = [items[i] for i in odd]
    for i in odd:
        items[i] = ""
    units, index = _encode(items)
    index[n + np.array(odd)] = -1 - np.arange(len(odd), dtype=np.int64)
    return EncodedColumn(units, index, specials)


def distinct_objects(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, first)`` of a 1-D object array by object identity: per row, the number of its
    object (numbered in order of first appearance), and per object a row holding it."""
    col = np.ascontiguousarray(col, dtype=object)
    # the element pointers, viewed in place: ``col`` holds a reference to each object for as
    # long as this view is used, so equal addresses are the same object
    addresses = np.frombuffer((ctypes.c_ssize_t * len(col)).from_address(col.ctypes.data),
                              dtype=np.intp)
    return _factorize(addresses)


def _encode_distinct(col: np.ndarray) -> EncodedColumn:
    """Encode a contiguous object array through its distinct objects (module docstring)."""
    n = len(col)
    codes, first = distinct_objects(col)
    distinct = col[first].tolist()
    enc = _encode_rows(distinct)
    index = np.empty(2 * n, dtype=np.int64)
    np.take(enc.starts, codes, out=index[:n])
    np.take(enc.lens, codes, out=index[n:])
    return EncodedColumn(enc.units, index, enc.specials)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, first)``: per value, the number of its distinct value (in order of first
    appearance), and per distinct value the row where it first appears."""
    pd = sys.modules.get("pandas")  # its hash table, when the caller has pandas loaded
    if pd is not None:
        codes, uniques = pd.factorize(values)
        first = np.empty(len(uniques), dtype=np.intp)
        # a reversed scatter leaves each distinct value's first row (NumPy assigns in order)
        first[codes[::-1]] = np.arange(len(values) - 1, -1, -1, dtype=np.intp)
        return codes, first
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # renumber by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse.ravel()], first[order]


class StageKeyInput:
    """One str column read by one native stage: encodes it (or reuses the encoding made earlier
    in this call) and answers its non-str rows for this stage's tables."""

    def __init__(self, graph, stage, nid: int):
        self.nid = nid
        self.key = (_ENV_TAG, nid)
        self.consumers = stage_consumers(graph, stage, nid)
        self._graph = graph
        self._indexes = None  # built on first use: loading a pipeline stays cheap

    def indexes(self) -> list[dict]:
        if self._indexes is None:
            self._indexes = [consumer_index(self._graph, self._graph[c]) for c in self.consumers]
        return self._indexes

    def _special(self, specials: list) -> list[int]:
        indexes = self.indexes()
        return [ix.get(x, -1) for x in specials for ix in indexes]

    def address(self, env: dict, n: int, keep: list) -> int:
        """The address of this stage's header for ``env[nid]``; what the kernel reads is
        appended to ``keep`` (it must outlive the call)."""
        col = env[self.nid]
        if len(col) != n:
            from mloc_ir.errors import InputError
            raise InputError(f"stage input %{self.nid} has {len(col)} rows, expected {n}")
        if n <= SMALL:
            packed = np.frombuffer(self._packed(col), dtype=np.uint8)
            keep.append(packed)
            return _address(packed)
        enc = env.get(self.key)
        if enc is None:
            enc = env[self.key] = encode_column(col)
        header = np.array([0, 0, 0, 32] + self._special(enc.specials), dtype=np.int64)
        at = _address(header)
        header[:3] = (enc.units_at - at, enc.index_at - at, enc.index_at + 8 * n - at)
        keep.append((enc, header))
        return at

    def _packed(self, col) -> bytes:
        """Header, special entries, starts, lens and units of a short column in one buffer."""
        items = col.tolist() if isinstance(col, np.ndarray) else list(col)
        n = len(items)
        specials = []
        if operator.countOf(map(type, items), str) == n:
            lens = list(map(len, items))
        else:
            lens = []
            for i, x in enumerate(items):
                if type(x) is str:
                    lens.append(len(x))
                else:
                    lens.append(-1 - len(specials))
                    specials.append(x)
                    items[i] = ""
        starts = [0, *accumulate(max(k, 0) + 1 for k in lens[:-1])]
        special = self._special(specials)
        at_special = 32
        at_starts = at_special + 8 * len(special)
        at_units = at_starts + 16 * n
        head = [at_units, at_starts, at_starts + 8 * n, at_special]
        return np.array(head + special + starts + lens, dtype=np.int64).tobytes() + \
            ("\0".join(items) + "\0").encode("utf-32-le", "surrogatepass")


def string_inputs(graph, stage) -> dict[int, StageKeyInput]:
    """The str columns a native stage reads, each with its encoder."""
    return {nid: StageKeyInput(graph, stage, nid) for nid in stage.inputs
            if graph[nid].type.dtype == "str"}
