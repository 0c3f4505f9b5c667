"""Keyed tables served from a feature store: in this process (``memory://``) or Redis.

    WEATHER = featurestore.publish(weather_frame, key="wkey", url="redis://127.0.0.1:6379/0",
                                   name="weather")          # one call loads the whole table
    RATE = featurestore.publish({"A": 0.1, "B": 0.3}, url="redis://...", name="rate")

A pipeline uses the returned ``StoreTable`` where it would use a local table, and stays
ordinary Python that runs without mloc:

    df = df.merge(WEATHER.fetch(df["wkey"]), on="wkey", how="left")   # a DataFrame table
    rate = np.array([RATE.get(c, 0.0) for c in codes])                 # a dict
    rate = df["code"].map(RATE)                                         # a dict, pandas-style

(pandas merges DataFrames only, so a remote frame is merged through ``fetch``: one batched
read of the rows' keys.) The front end turns these into ``join`` / ``lookup`` nodes whose
table is this object; they run as host stages, and every execution sends the distinct keys of
the rows it is given in one pipelined round trip (MGET), never one request per row. Missing
keys take the default (NaN for merged columns), exactly as the local table would.

Faults: a server that is down or slower than ``timeout`` seconds raises
``FeatureStoreError`` naming the table and the URL; with ``on_error="default"`` the rows of a
failed request get the defaults instead and a ``FeatureStoreWarning`` reports how many
failures the table has counted (``table.stats()``).

Layout in the store, under ``mloc:<name>:``: ``schema`` (JSON: kind, key, columns and dtypes),
``keys`` (the published keys, JSON, for enumeration) and one value per key, ``k:<key>``, holding
the row's fields packed (fixed-width numbers, then tagged UTF-8 strings). Keys are matched with
Python's equality, as a dict does: ``1 == 1.0 == True``, ``-0.0 == 0``, NaN matches nothing,
and a number never matches a string.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import struct
import warnings
from collections.abc import Mapping

import numpy as np

from .errors import MlocError

ON_ERROR = ("raise", "default")
DEFAULT_TIMEOUT = 1.0
_FIXED = {"f64": "<f8", "i64": "<i8", "bool": "?"}  # fixed-width field encodings
_LEN = struct.Struct("<I")


class FeatureStoreError(MlocError):
    """A feature-store table could not be published or read (names the table and the URL)."""


class FeatureStoreWarning(UserWarning):
    """Rows answered with defaults because the store failed (``on_error="default"``)."""


# ---------------------------------------------------------------------------------------------
# Keys


def _canonical(v) -> bytes | None:
    """The store key of one lookup key: equal under Python's ``==`` <=> equal bytes. Strings
    start with ``s``, numbers with ``n``; NaN (and anything unhashable) matches nothing."""
    t = type(v)  # the common exact types first: the ABC checks below cost ~1 us per key
    if t is str:
        return b"s" + v.encode("utf-8", "surrogatepass")
    if t is int:
        return b"n%d" % v
    if t is float:
        return _canonical_float(v)
    if isinstance(v, str):
        return b"s" + v.encode("utf-8", "surrogatepass")
    if isinstance(v, (bool, np.bool_)):
        return b"n%d" % int(v)
    if isinstance(v, (numbers.Integral, np.integer)):
        return b"n%d" % int(v)
    if isinstance(v, (numbers.Real, np.floating)):
        return _canonical_float(float(v))
    return None


def _canonical_float(f: float) -> bytes | None:
    if f != f:
        return None
    if f.is_integer():  # 2.0 == 2; -0.0 == 0
        return b"n%d" % int(f)
    return b"n" + repr(f).encode()


def _encode_keys(values) -> tuple[list[bytes | None], np.ndarray]:
    """Distinct canonical keys of a column and, per row, the index of its key."""
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if arr.ndim != 1:
        raise FeatureStoreError(f"lookup keys must be a 1-D column, got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64, copy=False)
        uniq, inverse = _distinct_numbers(arr)
        return _merge_equal(_canonical_numbers(uniq), inverse)
    if arr.dtype == object and len(arr) > 32:
        # key columns repeat a few objects: canonicalize each distinct object once (by
        # identity, so no object's own __eq__ is trusted), then merge equal canonical keys
        from codegen.pipeline_strkeys import distinct_objects
        rows, first = distinct_objects(arr)
        objects = arr[first].tolist()
    else:
        rows, objects = None, arr.tolist()
    if all(type(v) is str for v in objects):
        # the common case: exact str objects compare by value (no user __eq__), so equal
        # strings held by different objects merge in a dict before any is encoded
        index: dict = {}
        inverse = np.fromiter((index.setdefault(v, len(index)) for v in objects), dtype=np.intp,
                              count=len(objects))
        codes = [b"s" + v.encode("utf-8", "surrogatepass") for v in index]
    else:
        codes, inverse = _merge_equal([_canonical(v) for v in objects], None)
    return codes, (inverse if rows is None else inverse[rows])


def _distinct_numbers(arr: np.ndarray):
    """(distinct values, per row the index of its value) of a numeric column: pandas' hash
    table when pandas is there (~5x faster than sorting), else ``np.unique``."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is optional
        pd = None
    if pd is not None and arr.dtype.kind != "b":
        inverse, uniq = pd.factorize(arr, use_na_sentinel=False)
        return np.asarray(uniq), np.asarray(inverse, dtype=np.intp)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return uniq, inverse.astype(np.intp).ravel()


def _canonical_numbers(uniq: np.ndarray) -> list[bytes | None]:
    """``_canonical`` of each distinct number; integral values below 2**53 in one pass."""
    if uniq.dtype.kind == "f":
        whole = np.isfinite(uniq) & (np.abs(uniq) < 2.0 ** 53)
        whole[whole] = uniq[whole] == np.floor(uniq[whole])
        if whole.all():
            return [b"n%d" % v for v in uniq.astype(np.int64).tolist()]
        return [b"n%d" % int(v) if w else _canonical_float(v)
                for v, w in zip(uniq.tolist(), whole.tolist())]
    if uniq.dtype.kind in "iu":
        return [b"n%d" % v for v in uniq.tolist()]
    return [_canonical(u) for u in uniq.tolist()]


def _merge_equal(codes: list, inverse):
    """Codes with equal canonical keys merged (``1.0`` and ``True``, ``0.0`` and ``-0.0``, two
    equal strings held by different objects); ``inverse`` remapped (None: one row per code)."""
    index = dict.fromkeys(codes)
    if len(index) == len(codes):
        return codes, (np.arange(len(codes), dtype=np.intp) if inverse is None else inverse)
    pos = {c: i for i, c in enumerate(index)}
    remap = np.fromiter((pos[c] for c in codes), dtype=np.intp, count=len(codes))
    return list(index), (remap if inverse is None else remap[inverse])


# ---------------------------------------------------------------------------------------------
# Values


class _Codec:
    """Packs a row's fields: fixed-width numbers first (one NumPy record), then each string
    field as a tag (``s`` + length + UTF-8, ``N`` None, ``n`` NaN)."""

    def __init__(self, columns):
        self.columns = list(columns)
        self.fixed = [(n, d) for n, d in self.columns if d != "str"]
        self.strings = [n for n, d in self.columns if d == "str"]
        self.dtype = np.dtype([(n, _FIXED[d]) for n, d in self.fixed])
        self.width = self.dtype.itemsize

    def encode(self, frame_columns: dict, n: int) -> list[bytes]:
        rec = np.empty(n, dtype=self.dtype)
        for name, _ in self.fixed:
            rec[name] = frame_columns[name]
        raw = rec.tobytes()
        out = [raw[i * self.width:(i + 1) * self.width] for i in range(n)]
        for name in self.strings:
            col = frame_columns[name]
            for i in range(n):
                out[i] += _pack_str(col[i])
        return out

    def decode(self, found: list[bytes]) -> dict[str, np.ndarray]:
        """Column arrays of the given (present) records."""
        k = len(found)
        out: dict[str, np.ndarray] = {}
        if self.fixed:
            w = self.width
            joined = b"".join(found) if not self.strings else b"".join([r[:w] for r in found])
            rec = np.frombuffer(joined, dtype=self.dtype, count=k)
            for name, d in self.fixed:
                out[name] = rec[name].astype(_FIXED[d].lstrip("<"))
        if self.strings:
            cols = [[None] * k for _ in self.strings]
            memo: dict = {}  # string fields repeat (categories): decode each distinct one once
            start = self.width
            for i, r in enumerate(found):
                pos = start
                for col in cols:
                    tag = r[pos]
                    if tag == 115:  # s: length, UTF-8
                        size = int.from_bytes(r[pos + 1:pos + 5], "little")
                        raw = r[pos + 5:pos + 5 + size]
                        v = memo.get(raw)
                        if v is None:
                            v = memo[raw] = raw.decode("utf-8", "surrogatepass")
                        col[i] = v
                        pos += 5 + size
                    else:
                        col[i] = None if tag == 78 else math.nan  # N: None, n: NaN
                        pos += 1
            for name, col in zip(self.strings, cols):
                arr = np.empty(k, dtype=object)
                arr[:] = col
                out[name] = arr
        return out


def _pack_str(v) -> bytes:
    if v is None:
        return b"N"
    if isinstance(v, float) and math.isnan(v):
        return b"n"
    data = v.encode("utf-8", "surrogatepass")
    return b"s" + _LEN.pack(len(data)) + data


def _column_dtype(name, values, frame: bool) -> str:
    """The stored dtype of a value column (frames store numbers as f64, as a merge reads them)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        if frame or arr.dtype.kind == "f":
            return "f64"
        return "bool" if arr.dtype.kind == "b" else "i64"
    if arr.dtype.kind in "OUS":
        bad = [v for v in arr.tolist() if not (isinstance(v, str) or v is None
                                                or (isinstance(v, float) and math.isnan(v)))]
        if bad:
            raise FeatureStoreError(f"column {name!r} mixes strings with {type(bad[0]).__name__} "
                                    f"values ({bad[0]!r}); a column holds numbers or strings")
        return "str"
    raise FeatureStoreError(f"column {name!r} has dtype {arr.dtype}; a feature store table holds "
                            "numbers, bools or strings")


# ---------------------------------------------------------------------------------------------
# Tables


class StoreTable(Mapping):
    """A published table, read through its store. See the module docstring.

    ``kind`` is ``"frame"`` (a DataFrame keyed by ``key``, value ``columns``) or ``"dict"``
    (one ``value`` per key). Pickles as a reference (name, URL, layout), never the data.
    """

    def __init__(self, name: str, url: str, schema: dict, *, timeout: float = DEFAULT_TIMEOUT,
                 on_error: str = "raise"):
        _check_options(timeout, on_error)
        url = _resolve(url)
        self.name, self.url = name, url
        self.kind, self.key = schema["kind"], schema["key"]
        self.columns = [tuple(c) for c in schema["columns"]]
        self.key_kind = schema["key_kind"]
        self.timeout, self.on_error = float(timeout), on_error
        self._schema_bytes = _schema_bytes(schema)
        self._codec = _Codec(self.columns)
        self._prefix = b"mloc:" + name.encode() + b":"
        self.errors = 0  # failed requests answered with defaults
        self.defaulted_rows = 0  # rows those failures answered with defaults
        self.keys_requested = 0  # rows whose keys went to the store
        self.requests = 0  # lookups sent by this table (each one round trip)
        self._backend = None

    # identity, not Mapping's content equality: a table is one object in the IR
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def backend(self):
        if self._backend is None:
            from runtime.stores import backend
            self._backend = backend(self.url, self.timeout)
        return self._backend

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = None
        return state

    def with_options(self, *, timeout: float | None = None, on_error: str | None = None):
        """The same table read with another timeout and/or fault policy."""
        return StoreTable(self.name, self.url, json.loads(self._schema_bytes),
                          timeout=self.timeout if timeout is None else timeout,
                          on_error=self.on_error if on_error is None else on_error)

    def __repr__(self):
        what = f"key={self.key!r}, {len(self.columns)} column(s)" if self.kind == "frame" \
            else f"values {self.columns[0][1]}"
        return f"StoreTable({self.name!r} at {self.url}, {what})"

    def stats(self) -> dict:
        """Lookups this table sent, round trips of its backend (shared by the tables of one
        URL), rows looked up, failed requests and the rows they answered with defaults."""
        return {"requests": self.requests, "round_trips": self.backend.round_trips,
                "keys_requested": self.keys_requested,
                "errors": self.errors, "defaulted_rows": self.defaulted_rows}

    @property
    def value_dtype(self) -> str:
        """The dtype of a dict table's values."""
        return self.columns[0][1]

    def _fail(self, exc, doing: str) -> FeatureStoreError:
        why = (f"no answer within the timeout of {self.timeout:g} s" if exc.reason == "timeout"
               else "cannot reach the server")
        return FeatureStoreError(f"feature store table {self.name!r} at {self.url}: {why} while "
                                 f"{doing} ({exc})")

    def _store_keys(self, codes: list[bytes | None]) -> list[bytes]:
        """What one read asks the store for: the schema (checked on every read) and the
        records of the codes that can match."""
        k = self._prefix + b"k:"
        return [self._prefix + b"schema"] + [k + c for c in codes if c is not None]

    def _answer(self, codes: list[bytes | None], n_rows: int, values) -> list[bytes | None] | None:
        """The records of ``codes`` (None: missing) from the store's ``values`` for
        ``_store_keys(codes)``, or from its failure (an exception): raises, or returns None when
        ``on_error="default"`` answers every row with its default."""
        from runtime.stores import StoreReplyError, StoreUnavailable
        self.keys_requested += n_rows
        self.requests += 1
        n_wanted = len(values) - 1 if isinstance(values, list) else sum(
            c is not None for c in codes)
        if isinstance(values, StoreReplyError):
            raise FeatureStoreError(f"feature store table {self.name!r} at {self.url}: the "
                                    f"server answered an error while looking up {n_wanted} "
                                    f"key(s): {values}")
        if isinstance(values, StoreUnavailable):
            if self.on_error == "raise":
                raise self._fail(values, f"looking up {n_wanted} key(s)") from None
            self.errors += 1
            self.defaulted_rows += n_rows
            warnings.warn(FeatureStoreWarning(
                f"feature store table {self.name!r} at {self.url} failed ({values.reason}); "
                f"{n_rows} row(s) take their defaults ({self.errors} failed request(s) so far)"),
                stacklevel=4)
            return None
        self._check_schema(values[0])
        if len(values) - 1 == len(codes):
            return values[1:]
        out: list[bytes | None] = [None] * len(codes)
        it = iter(values[1:])
        for i, c in enumerate(codes):
            if c is not None:
                out[i] = next(it)
        return out

    def _records(self, codes: list[bytes | None], n_rows: int) -> list[bytes | None] | None:
        """One round trip: the stored records of ``codes`` (None: missing). Returns None when
        the store failed and ``on_error="default"`` answers every row with its default."""
        return self._answer(codes, n_rows, _send(self.backend, [self._store_keys(codes)])[0])

    def _check_schema(self, stored):
        if stored is None:
            raise FeatureStoreError(f"feature store table {self.name!r} is not in the store at "
                                    f"{self.url} (publish it first; memory:// stores live in "
                                    "one process)")
        if stored != self._schema_bytes:
            raise FeatureStoreError(f"feature store table {self.name!r} at {self.url} was "
                                    "republished with other columns; connect() to it again")

    def _columns_read(self, keys, wanted) -> "PendingRead":
        """A prepared read giving, per ``(name, default, dtype)`` in ``wanted``, one entry per
        row of ``keys`` (missing keys: the default), as an array of ``dtype``."""
        codes, inverse = _encode_keys(keys)

        def finish(values):
            records = self._answer(codes, len(inverse), values)
            if records is None:
                records = [None] * len(codes)
            present = np.empty(len(records), dtype=object)
            present[:] = records
            present = present != None  # noqa: E711 -- elementwise: which keys were found
            decoded = self._codec.decode([r for r in records if r is not None])
            out = {}
            for name, default, dtype in wanted:
                uniq = np.empty(len(codes), dtype=dtype)
                uniq[~present] = default
                uniq[present] = decoded[name]
                out[name] = uniq[inverse]
            return out
        return PendingRead(self, self._store_keys(codes), finish)

    # -- what the IR's lookup / join nodes run -------------------------------------------------
    def lookup_read(self, keys, default, dtype) -> "PendingRead":
        """``lookup`` prepared, to be sent with other reads (``read_together``)."""
        if self.kind != "dict":
            raise FeatureStoreError(f"{self!r} is a frame table; merge it with fetch()")
        from .types import DTYPES, numpy_dtype
        dt = numpy_dtype(dtype) if dtype in DTYPES else np.dtype(dtype)
        read = self._columns_read(keys, [("value", default, dt)])
        finish = read.finish
        read.finish = lambda values: finish(values)["value"]
        return read

    def join_read(self, keys, fields, defaults) -> "PendingRead":
        """``join`` prepared, to be sent with other reads (``read_together``)."""
        return self._columns_read(keys, [(n, dflt, np.dtype(object) if d == "str" else np.float64)
                                         for (n, d), dflt in zip(fields, defaults)])

    def lookup(self, keys, default, dtype) -> np.ndarray:
        """``np.array([table.get(k, default) for k in keys], dtype=dtype)`` in one round trip."""
        return read_together([self.lookup_read(keys, default, dtype)])[0]

    def join(self, keys, fields, defaults) -> dict[str, np.ndarray]:
        """A left join of ``keys``: per ``(name, dtype)`` field, its column (missing keys:
        ``defaults``), in one round trip."""
        return read_together([self.join_read(keys, fields, defaults)])[0]

    # -- what plain Python calls ----------------------------------------------------------------
    def fetch(self, keys):
        """The table's rows for the distinct ``keys`` found (a DataFrame: the key column, then
        the value columns), read in one round trip; merge it with ``how="left"``."""
        import pandas as pd
        if self.kind != "frame":
            raise FeatureStoreError(f"{self!r} is a dict table; use .get(key, default) or "
                                    "Series.map(table)")
        arr = np.asarray(keys.to_numpy() if hasattr(keys, "to_numpy") else keys)
        uniq = pd.unique(arr)
        codes, inverse = _encode_keys(uniq)  # codes may come sorted: inverse maps them back
        records = self._records(codes, len(arr)) or [None] * len(codes)
        per_key = [records[j] for j in inverse]
        found = [i for i, r in enumerate(per_key) if r is not None]
        decoded = self._codec.decode([per_key[i] for i in found])
        data = {self.key: uniq[found]}
        data.update((name, decoded[name]) for name, _ in self.columns)
        return pd.DataFrame(data)

    def get(self, key, default=None):
        """``dict.get``: one key, one round trip."""
        if self.kind != "dict":
            raise FeatureStoreError(f"{self!r} is a frame table; merge it with fetch()")
        codes, _ = _encode_keys(np.array([key], dtype=object))
        rec = (self._records(codes, 1) or [None])[0]
        if rec is None:
            return default
        value = self._codec.decode([rec])["value"][0]
        return value.item() if isinstance(value, np.generic) else value

    def __getitem__(self, key):
        missing = object()
        v = self.get(key, missing)
        if v is missing:
            raise KeyError(key)
        return v

    def __contains__(self, key):
        missing = object()
        return self.get(key, missing) is not missing

    def keys(self):
        """The published keys (one round trip; ``s.map(table)`` reads the whole table)."""
        stored = self.backend.mget([self._prefix + b"schema", self._prefix + b"keys"])
        self._check_schema(stored[0])
        return json.loads(stored[1] or b"[]")

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def values(self):
        return [v for _, v in self.items()]

    def items(self):
        keys = self.keys()
        if self.kind != "dict":
            return list(zip(keys, [None] * len(keys)))
        codes = [_canonical(k) for k in keys]
        records = self._records(codes, len(keys)) or [None] * len(codes)
        vals = self._codec.decode([r for r in records if r is not None])["value"]
        return [(k, v.item() if isinstance(v, np.generic) else v) for k, v in zip(keys, vals)]


def is_store_table(obj) -> bool:
    return isinstance(obj, StoreTable)


_PROBE = {"f64": 0.5, "i64": 1, "bool": True, "str": "a"}


def type_probe(table: StoreTable) -> tuple[list, set]:
    """Stand-ins for a dict table's values and key types, from which the front end types a
    lookup as it would a local dict's (the values are never read at compile time)."""
    keys = {str} if table.key_kind == "str" else {bool} if table.key_kind == "bool" else {int}
    return [_PROBE[table.value_dtype]], keys


def _schema_bytes(schema: dict) -> bytes:
    return json.dumps({k: schema[k] for k in ("kind", "key", "key_kind", "columns")},
                      sort_keys=True).encode()


def _check_options(timeout, on_error):
    if on_error not in ON_ERROR:
        raise FeatureStoreError(f"on_error must be one of {', '.join(map(repr, ON_ERROR))}, got "
                                f"{on_error!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise FeatureStoreError(f"timeout must be a positive number of seconds, got {timeout!r}")


def _key_kind(name, keys: list) -> str:
    kinds = {"str" if isinstance(k, str) else "number" if isinstance(
        k, (numbers.Number, np.generic)) and not isinstance(k, complex) else type(k).__name__
        for k in keys}
    if len(kinds) > 1:
        raise FeatureStoreError(f"key {name!r} mixes {' and '.join(sorted(kinds))} keys; a table "
                                "is keyed by numbers or by strings")
    kind = kinds.pop() if kinds else "number"
    if kind == "number" and keys and all(isinstance(k, (bool, np.bool_)) for k in keys):
        kind = "bool"  # matched as numbers (True == 1), but pandas' Series.map tells them apart
    if kind not in ("str", "number", "bool"):
        raise FeatureStoreError(f"key {name!r} holds {kind} values; keys are numbers or strings")
    return kind


def _resolve(url):
    url = url or "memory://default"
    if not isinstance(url, str) or url.split("://", 1)[0] not in ("memory", "redis", "rediss",
                                                                  "unix") or "://" not in url:
        raise FeatureStoreError(f"unknown feature store URL {url!r}: use memory://NAME (in this "
                                "process) or redis://HOST:PORT[/DB]")
    return url


def publish(table, key: str | None = None, url: str | None = None, *, name: str | None = None,
            timeout: float = DEFAULT_TIMEOUT, on_error: str = "raise") -> StoreTable:
    """Load ``table`` into the store at ``url`` in one pipelined write and return its handle.

    ``table`` is a DataFrame with a unique ``key`` column (a frame table, merged with
    ``fetch``), or a dict / Series (a dict table, read with ``.get`` or ``Series.map``).
    ``url``: ``redis://host:port/db``, or ``memory://NAME`` / None for this process.
    ``name`` (default: derived from the key and the content) names the table in the store;
    publishing again under the same name replaces it. ``timeout`` (seconds) and ``on_error``
    (``"raise"`` or ``"default"``) apply to every read through the returned table.
    """
    _check_options(timeout, on_error)
    url = _resolve(url)
    frame = hasattr(table, "columns")
    if frame:
        if key is None or key not in table.columns:
            raise FeatureStoreError(f"publish needs key= naming one of the frame's columns "
                                    f"({', '.join(map(str, table.columns))}); got {key!r}")
        keys = table[key].tolist()
        value_names = [c for c in table.columns if c != key]
        if not all(isinstance(c, str) for c in value_names):
            raise FeatureStoreError("column names of a published frame must be strings")
        columns = [(c, _column_dtype(c, table[c].to_numpy(), True)) for c in value_names]
        data = {c: (table[c].to_numpy(dtype=np.float64) if d == "f64" else
                    table[c].to_numpy(dtype=object)) for c, d in columns}
    else:
        if hasattr(table, "index") and hasattr(table, "to_numpy"):  # a Series
            table = dict(zip(table.index.tolist(), table.tolist()))
        if not isinstance(table, dict):
            raise FeatureStoreError(f"publish takes a DataFrame (with key=) or a dict/Series, got "
                                    f"{type(table).__name__}")
        if key is not None:
            raise FeatureStoreError("key= names a DataFrame's key column; a dict is keyed already")
        key = "key"
        keys = list(table)
        vals = list(table.values())
        if any(v is None for v in vals):
            raise FeatureStoreError("a published dict holds None; use numbers, strings or NaN")
        sample = np.array(vals) if vals else np.zeros(0)
        dtype = _column_dtype("value", sample if sample.dtype.kind != "U" else
                              np.array(vals, dtype=object), False)
        columns = [("value", dtype)]
        data = {"value": np.array(vals, dtype=object if dtype == "str" else _FIXED[dtype])
                if vals else np.zeros(0)}
    key_kind = _key_kind(key, keys)
    codes = [_canonical(k) for k in keys]
    if any(c is None for c in codes):
        raise FeatureStoreError(f"key {key!r} holds NaN or missing keys (they match nothing)")
    if len(set(codes)) != len(codes):
        dup = next(k for k, c in zip(keys, codes) if codes.count(c) > 1)
        raise FeatureStoreError(f"key {key!r} is not unique (e.g. {dup!r}); rows would repeat "
                                "in a merge")
    schema = {"kind": "frame" if frame else "dict", "key": key, "key_kind": key_kind,
              "columns": [list(c) for c in columns]}
    if name is None:
        h = hashlib.sha256(_schema_bytes(schema))
        h.update(repr(keys).encode())
        name = f"{key}-{h.hexdigest()[:12]}"
    if not isinstance(name, str) or not name or ":" in name:
        raise FeatureStoreError(f"a table name is a non-empty string without ':', got {name!r}")
    out = StoreTable(name, url, schema, timeout=timeout, on_error=on_error)
    records = out._codec.encode(data, len(keys))
    items = [(out._prefix + b"k:" + c, r) for c, r in zip(codes, records)]
    items.append((out._prefix + b"keys", json.dumps([_jsonable(k) for k in keys]).encode()))
    from runtime.stores import StoreUnavailable
    try:
        out.backend.delete_prefix(out._prefix)
        out.backend.mset(items)
        out.backend.mset([(out._prefix + b"schema", out._schema_bytes)])  # last: now complete
    except StoreUnavailable as exc:
        raise out._fail(exc, f"publishing {len(keys)} row(s)") from None
    return out


def connect(name: str, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
            on_error: str = "raise") -> StoreTable:
    """The handle of a table published earlier (by this or another process) under ``name``."""
    from runtime.stores import StoreUnavailable, backend
    _check_options(timeout, on_error)
    url = _resolve(url)
    try:
        stored = backend(url, timeout).mget([b"mloc:" + name.encode() + b":schema"])[0]
    except StoreUnavailable as exc:
        raise FeatureStoreError(f"feature store table {name!r} at {url}: cannot read its schema "
                                f"({exc})") from None
    if stored is None:
        raise FeatureStoreError(f"feature store table {name!r} is not in the store at {url}")
    return StoreTable(name, url, json.loads(stored), timeout=timeout, on_error=on_error)


def _jsonable(k):
    if isinstance(k, np.generic):
        return k.item()
    return k


class PendingRead:
    """One table's read, prepared: ``keys`` is what it asks the store for; ``finish(values)``
    turns the store's answer (a list of values, or the exception the request raised) into
    the result, applying the table's fault policy."""

    __slots__ = ("table", "keys", "finish")

    def __init__(self, table: StoreTable, keys: list[bytes], finish):
        self.table, self.keys, self.finish = table, keys, finish


def _send(backend, key_lists: list[list[bytes]]) -> list:
    """The values of each key list in one round trip, or (for each) the failure."""
    from runtime.stores import StoreReplyError, StoreUnavailable
    try:
        if len(key_lists) == 1:
            return [backend.mget(key_lists[0])]
        if hasattr(backend, "mget_many"):
            return backend.mget_many(key_lists)
        return [backend.mget(k) for k in key_lists]
    except (StoreUnavailable, StoreReplyError) as exc:
        return [exc] * len(key_lists)


def read_together(reads: list[PendingRead]) -> list:
    """The results of ``reads``: the reads of one store go in one round trip (their MGETs
    written at once on one connection), reads of different stores at once on threads."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(reads):
        groups.setdefault(id(r.table.backend), []).append(i)

    def run(idx):
        values = _send(reads[idx[0]].table.backend, [reads[i].keys for i in idx])
        return [(i, reads[i].finish(v)) for i, v in zip(idx, values)]
    out: list = [None] * len(reads)
    for part in fetch_concurrently([(lambda idx=idx: run(idx)) for idx in groups.values()]):
        for i, value in part:
            out[i] = value
    return out


def fetch_concurrently(calls):
    """Run ``calls`` (zero-argument functions, typically one per store) at once on threads;
    their results in order. Lookups in different stores wait for the network in parallel."""
    if len(calls) <= 1:
        return [c() for c in calls]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="mloc-store") as pool:
        futures = [pool.submit(c) for c in calls]
        return [f.result() for f in futures]
