"""Value types of the IR.

Every value in a pipeline is row-wise: it holds one entry per input row. What differs is what
an entry is:

* ``col``     one scalar per row (a 1-D column): ``f64``, ``i64``, ``bool``, ``str``.
* ``row``     a fixed-width dense row of numbers per row (a 2-D matrix): ``f64[4]``.
* ``sparse``  a fixed-width sparse row per row (a CSR matrix): ``sparse<f64>[2000]``.
* ``record``  a tuple of named fields per row (the result of a join): ``{a: f64, b: str}``.
* ``scalar``  one constant shared by all rows (broadcast): ``scalar<f64>``.
* ``any``     the value of an opaque Python call, known only at run time.

Element dtypes follow NumPy: ``bool``, ``i64`` (int64), ``f64`` (float64), ``f32`` (float32)
and ``str`` (Python strings, held in object arrays); ``datetime`` and ``timedelta`` are what
``pd.to_datetime`` of strings and a difference of two such values give (NumPy datetime64 /
timedelta64 arrays in the resolution pandas inferred, NaT where pandas has NaT). The front end computes each op's dtype
by asking NumPy itself, so the IR's types are exactly the ones the original program gets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = ("bool", "i64", "f32", "f64", "str", "datetime", "timedelta")
SHAPES = ("col", "row", "sparse", "record", "scalar", "any")

_TO_NUMPY = {"bool": np.dtype(bool), "i64": np.dtype(np.int64), "f32": np.dtype(np.float32),
             "f64": np.dtype(np.float64), "str": np.dtype(object),
             # nominal: a datetime/timedelta column holds pandas' own resolution (s, ms, us
             # or ns, as pd.to_datetime inferred it from the strings)
             "datetime": np.dtype("M8[us]"), "timedelta": np.dtype("m8[us]")}


def dtype_from_numpy(dt) -> str:
    """Map a NumPy dtype (or a Python scalar type) onto the IR's dtype names."""
    dt = np.dtype(dt)
    if dt == np.bool_:
        return "bool"
    if dt.kind in "iu":
        return "i64"
    if dt == np.float32:
        return "f32"
    if dt.kind == "f":
        return "f64"
    if dt.kind in "OUS":
        return "str"
    if dt.kind == "M":
        return "datetime"
    if dt.kind == "m":
        return "timedelta"
    raise TypeError(f"unsupported element dtype {dt}")


def numpy_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype that holds an IR dtype (``str`` is an object array)."""
    return _TO_NUMPY[dtype]


@dataclass(frozen=True)
class Type:
    """The type of an IR value: a shape (see module docstring), an element dtype and a width."""

    shape: str
    dtype: str | None = None
    width: int | None = None
    fields: tuple[tuple[str, str], ...] | None = None  # (name, dtype) pairs for records

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}")

    # -- constructors ---------------------------------------------------------------------
    @staticmethod
    def col(dtype: str) -> "Type":
        return Type("col", dtype)

    @staticmethod
    def scalar(dtype: str) -> "Type":
        return Type("scalar", dtype)

    @staticmethod
    def row(width: int, dtype: str = "f64") -> "Type":
        return Type("row", dtype, int(width))

    @staticmethod
    def sparse(width: int, dtype: str = "f64") -> "Type":
        return Type("sparse", dtype, int(width))

    @staticmethod
    def record(fields) -> "Type":
        return Type("record", None, len(fields), tuple((str(n), d) for n, d in fields))

    @staticmethod
    def any() -> "Type":
        return Type("any")

    # -- queries --------------------------------------------------------------------------
    @property
    def is_elementwise(self) -> bool:
        """A column or a broadcast scalar: what element-wise ops take."""
        return self.shape in ("col", "scalar")

    @property
    def is_matrix(self) -> bool:
        return self.shape in ("row", "sparse")

    @property
    def n_columns(self) -> int:
        """How many model-input columns this value contributes when stacked."""
        if self.shape in ("col", "scalar"):
            return 1
        if self.shape in ("row", "sparse"):
            return self.width
        raise TypeError(f"a value of type {self} has no fixed column count")

    def __str__(self) -> str:
        if self.shape == "col":
            return self.dtype
        if self.shape == "scalar":
            return f"scalar<{self.dtype}>"
        if self.shape == "row":
            return f"{self.dtype}[{self.width}]"
        if self.shape == "sparse":
            return f"sparse<{self.dtype}>[{self.width}]"
        if self.shape == "record":
            return "{" + ", ".join(f"{n}: {d}" for n, d in self.fields) + "}"
        return "any"
