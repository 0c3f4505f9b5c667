"""The ``ast`` front end: a pipeline function's source -> a verified ``Graph``.

The pipeline is ordinary Python over NumPy / pandas / scikit-learn / LightGBM. The front end
walks the function body statement by statement, keeping an environment from variable names to
symbolic values (IR values, DataFrames, compile-time Python objects), and emits one IR node per
row-wise operation. Every node's dtype is what NumPy itself gives for the operand dtypes, found
by running the NumPy function on one-element probes, so typing can never drift from NumPy's
promotion rules. Constructs outside the language raise ``UnsupportedConstruct`` naming the file,
the line and what is supported instead.

Modules: ``values`` (the symbolic values and op tables), ``lowering`` (the ``Lowering`` walker:
environment, typing, statements, expressions, call dispatch), and the call families it inherits
from: ``numpy_calls``, ``pandas_calls`` (datetimes included), ``store_calls``, ``model_calls``,
``comprehensions``, ``inlining`` (calls to the user's own functions);
``helpers`` holds small predicates over ``ast`` nodes and library objects.
"""
from __future__ import annotations

from ..graph import Graph
from ..source import function_source, load_function
from .lowering import Lowering


__all__ = ["parse", "Lowering"]


def parse(target, name: str | None = None, *, dtypes: dict[str, str] | None = None) -> Graph:
    """Parse a pipeline function into a verified Graph.

    ``target`` is the function itself, a module, or a path (``"pipe.py"`` with ``name``, or
    ``"pipe.py:predict"``). ``dtypes`` declares input dtypes (``{"age": "i64"}``; DataFrame
    columns as ``"df.col"`` or ``"col"``); undeclared inputs are ``f64``, or ``str`` where the
    pipeline uses them as text.
    """
    fn = load_function(target, name)
    return Lowering(function_source(fn), dtypes).run()
