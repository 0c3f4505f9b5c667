"""Graph rewrite: text regions of a pipeline become native text kernels.

Runs on a copy of a verified graph before planning (``codegen.pipeline.compile_pipeline``):

* a linear scikit-learn model whose input is a sparse ``stack`` of vectorizer outputs and
  dense columns (read by nothing else) becomes one ``pycall`` of a
  :class:`~codegen.text_runtime.FusedTextLinear` on the documents and the dense parts, typed
  like the model node (so what follows it compiles natively); the sparse matrix is never built;
* every other compilable ``vectorize`` node keeps its op but runs a
  :class:`~codegen.text_runtime.NativeVectorizer` (same sparse matrix as scikit-learn);
* string statistics of a column (``str_len``, ``str_count`` without regex, ``str_word_count``,
  ``str_startswith`` / ``str_endswith``, ``str_contains`` without regex and with ``case``, and
  ``eq``/``ne`` of ``str_upper(t)`` with ``t``) become one
  :class:`~codegen.text_runtime.TextStats` ``pycall`` per column plus ``column`` (and ``cast``
  to bool) nodes, which compile natively.

What does not compile (a callable analyzer, a regex count, a non-linear model on sparse input)
is left as it was and runs on the host; ``graph.meta["text_host"]`` says why.

Every node this pass creates or changes carries ``attrs["text_kernel"]``, a one-line
description of its native text kernel (``codegen.pipeline_plan.describe`` prints it instead of
the generic reason a ``pycall`` runs on the host).  ``threads`` is the number of threads each
kernel may split a large batch over (None: one per core, like ``mloc_ir.compile``).
"""
from __future__ import annotations

from functools import partial

from mloc_ir.printer import Ref
from mloc_ir.types import Type

from .text_spec import HostOnly

_NUMERIC = ("bool", "i64", "f32", "f64")


def lower_text(graph, threads: int | None = 1):
    """A rewritten copy of ``graph`` (``graph`` itself when nothing changes)."""
    from .text_cpython import layout
    if layout() is None or not any(n.op in ("vectorize",) or n.op.startswith("str_")
                                   for n in graph.nodes()):
        return graph
    g = graph.copy()
    reasons = {}
    _fuse_models(g, reasons, threads)
    _native_vectorizers(g, reasons, threads)
    _stats(g, reasons, threads)
    from passes.dce import dce
    dce(g)
    g.meta["text_host"] = reasons
    return g


def _is_str_col(g, nid):
    t = g[nid].type
    return t.shape == "col" and t.dtype == "str"


def _fuse_models(g, reasons, threads):
    from .text_runtime import FusedTextLinear
    for m in g.find("model"):
        x = g[m.args[0]]
        if x.op != "stack" or x.type.shape != "sparse" or m.attrs.get("library") != "sklearn":
            continue
        if m.attrs.get("kwargs"):
            reasons[m.name] = "keyword arguments to the model"
            continue
        if x.id in g.outputs or any(u.id != m.id for u in g.users(x.id)):
            reasons[m.name] = f"the sparse row %{x.name} is needed elsewhere"
            continue
        parts, args, why = [], [], None
        for a in x.args:
            node = g[a]
            if node.op == "vectorize" and _is_str_col(g, node.args[0]):
                parts.append(("text", node.attrs["vectorizer"].obj))
                args.append(node.args[0])
            elif node.type.shape in ("col", "row") and node.type.dtype in _NUMERIC:
                parts.append(("dense", node.type.n_columns))
                args.append(a)
            else:
                why = f"part %{node.name} is a {node.type} value"
                break
        if why is None:
            try:
                fused = FusedTextLinear(parts, m.attrs["model"].obj, m.attrs["method"], threads)
            except HostOnly as exc:
                why = str(exc)
        if why is not None:
            reasons[m.name] = why
            continue
        label = f"native text kernel: {m.attrs['model'].name}.{m.attrs['method']}"
        new = g.add("pycall", args, {"fn": Ref(label, fused), "qualname": label,
                                     "text_kernel": fused.describe()}, m.type,
                    name=f"{m.name}_native", loc=m.loc)
        g.replace_uses(m.id, new.id)


def _native_vectorizers(g, reasons, threads):
    from .text_runtime import NativeVectorizer
    for v in g.find("vectorize"):
        ref = v.attrs["vectorizer"]
        obj = ref.obj.vectorizer if isinstance(ref.obj, NativeVectorizer) else ref.obj
        try:
            native = NativeVectorizer(obj, threads)
        except HostOnly as exc:
            reasons[v.name] = str(exc)
            continue
        v.attrs["vectorizer"] = Ref(ref.name, native)
        v.attrs["text_kernel"] = native.describe()


def _host_stat(kind: str, sub: str, s: str):
    """The Python meaning of one text statistic, for rows the kernel hands back to the host.
    A module-level function (bound with ``functools.partial``) so compiled pipelines pickle."""
    if kind == "upper_eq":
        return s.upper() == s
    if kind == "len":
        return len(s)
    if kind == "word_count":
        return len(s.split())
    if kind == "count":
        return s.count(sub)
    if kind == "contains":
        return sub in s
    return getattr(s, kind)(sub)  # startswith / endswith


def _stat_of(g, node):
    """``(kind, sub, source, host_fn)`` when ``node`` is a compilable statistic, else None."""
    op, a = node.op, node.attrs
    if op in ("eq", "ne") and node.type.shape == "col":
        x, y = (g[i] for i in node.args)
        for up, other in ((x, y), (y, x)):
            if up.op == "str_upper" and up.args[0] == other.id and _is_str_col(g, other.id):
                return "upper_eq", "", other.id, partial(_host_stat, "upper_eq", "")
        return None
    if not op.startswith("str_") or not node.args or not _is_str_col(g, node.args[0]):
        return None
    src = node.args[0]
    kind = sub = None
    if op == "str_len":
        kind, sub = "len", ""
    elif op == "str_word_count":
        kind, sub = "word_count", ""
    elif op == "str_count" and not a.get("regex") and isinstance(a.get("sub"), str):
        kind, sub = "count", a["sub"]
    elif op == "str_contains" and not a.get("regex") and a.get("case", True) \
            and isinstance(a.get("sub"), str):
        kind, sub = "contains", a["sub"]
    elif op in ("str_startswith", "str_endswith"):
        prefix = a.get("prefix" if op == "str_startswith" else "suffix")
        if isinstance(prefix, str):
            kind, sub = op[4:], prefix
    if kind is None:
        return None
    return kind, sub, src, partial(_host_stat, kind, sub)


def _stats(g, reasons, threads):
    from .text_runtime import TextStats
    by_source: dict[int, list] = {}
    for node in g.nodes():
        st = _stat_of(g, node)
        if st is not None:
            by_source.setdefault(st[2], []).append((node, st))
    for src, items in by_source.items():
        try:
            kernel = TextStats([(k, s) for _, (k, s, _, _) in items],
                               [fn for _, (_, _, _, fn) in items], threads)
        except HostOnly as exc:  # pragma: no cover - only without a known str layout
            reasons[g[src].name] = str(exc)
            continue
        label = f"native text statistics of {g[src].name}"
        stats = g.add("pycall", [src], {"fn": Ref(label, kernel), "qualname": label,
                                        "text_kernel": kernel.describe()},
                      Type.row(len(items), "i64"), name=f"{g[src].name}_stats")
        for i, (node, (kind, *_)) in enumerate(items):
            col = g.add("column", [stats.id], {"index": i}, Type.col("i64"),
                        name=f"{node.name}_native")
            out = col
            if node.type.dtype == "bool":
                out = g.add("cast", [col.id], {"dtype": "bool"}, Type.col("bool"),
                            name=f"{node.name}_bool")
                if node.op == "ne":
                    out = g.add("invert", [out.id], {}, Type.col("bool"), name=f"{node.name}_ne")
            g.replace_uses(node.id, out.id)
