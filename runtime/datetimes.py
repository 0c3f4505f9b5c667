"""``to_datetime`` nodes on the host: the native strict-ISO parser, else pandas.

``codegen.datetime_parse.parse_iso`` answers a batch only when every string has the strict
ISO layout of the first one (and so pandas' result is certain); any other batch -- other
formats, None/NaN, fields out of range, a mix of layouts, an empty batch -- is parsed by
pandas itself (``mloc_ir.interpreter.to_datetime``), which returns its value or raises its
error.
"""
from __future__ import annotations

import numpy as np

from mloc_ir.interpreter import to_datetime as by_pandas


def to_datetime(strings) -> np.ndarray:
    try:
        from codegen.datetime_parse import parse_iso
        out = parse_iso(strings)
    except Exception:  # noqa: BLE001 -- no kernel (llvmlite missing, a loading failure):
        out = None     # pandas parses, which is always right
    return out if out is not None else by_pandas(strings)
