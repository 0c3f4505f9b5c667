"""Labelled rows for the planner from a CSV file: what ``mloc compile --train`` reads.

The pipeline's parameters say what to take from the file:

* a parameter the pipeline indexes by column (``df["age"]``, a DataFrame parameter) gets the
  whole table, without the label column;
* any other parameter is one column: the CSV column of the same name, or the one named by
  ``columns={"param": "csv_column"}`` (``--column param=csv_column``).

The label is one column, used as is, or turned into 0/1 by ``positive`` values
(``--positive 0,1``: rows whose label is one of these strings are 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MlocError


class TrainingDataError(MlocError):
    """The training file does not fit the pipeline (missing file, column or label)."""


def frame_params(graph) -> set[str]:
    """Parameters the pipeline reads columns of (DataFrame-like parameters)."""
    return {n.attrs["param"] for n in graph.input_nodes() if n.attrs.get("column") is not None}


def read_training_csv(graph, path, label: str, *, positive=(), columns=None, rows=None,
                      seed: int = 0):
    """``(kwargs, labels)`` for ``compile(..., train=(kwargs, labels))`` from a CSV file.

    ``rows`` keeps a seeded random sample of that many rows (planning cost grows with rows).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"training file {str(path)!r} does not exist")
    try:
        table = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TrainingDataError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    if label not in table.columns:
        raise TrainingDataError(f"{path.name} has no label column {label!r}; columns: "
                                f"{', '.join(map(str, table.columns))}")
    if rows is not None:
        if rows < 1:
            raise TrainingDataError(f"the number of training rows must be positive, got {rows}")
        if rows < len(table):
            table = table.sample(n=rows, random_state=seed).reset_index(drop=True)
    y = table[label]
    if positive:
        wanted = {str(v) for v in positive}
        found = set(y.astype(str))
        if not wanted & found:
            raise TrainingDataError(f"no row of {label!r} has a positive value "
                                    f"{sorted(wanted)}; values seen: {sorted(found)[:10]}")
        labels = y.astype(str).isin(wanted).to_numpy().astype(np.int64)
    else:
        labels = y.to_numpy()
    if len(labels) and y.isna().any():
        raise TrainingDataError(f"label column {label!r} has {int(y.isna().sum())} missing "
                                "value(s); drop those rows first")

    columns = dict(columns or {})
    params = [p.name for p in graph.params]
    unknown = sorted(set(columns) - set(params))
    if unknown:
        raise TrainingDataError(f"--column names {unknown} are not parameters of "
                                f"{graph.name}({', '.join(params)})")
    frames = frame_params(graph)
    features = table.drop(columns=[label])
    kwargs = {}
    for p in params:
        if p in frames and p not in columns:
            kwargs[p] = features
            continue
        col = columns.get(p, p)
        if col not in table.columns:
            raise TrainingDataError(
                f"{path.name} has no column {col!r} for parameter {p!r} of {graph.name}(); "
                f"name the column with --column {p}=COLUMN (columns: "
                f"{', '.join(map(str, table.columns))})")
        if col == label:
            raise TrainingDataError(f"parameter {p!r} would read the label column {label!r}")
        kwargs[p] = table[col].to_numpy()
    return kwargs, labels
