"""Split a verified Graph into native and host stages.

A *native* stage is a maximal group of nodes the backend compiles into one fused loop; a *host*
stage runs nodes in Python with the reference interpreter's rules (vectorizers, opaque calls,
string ops, models the backend cannot compile, sparse values).  Stages come in topological
order and alternate between the two kinds, except after a native stage with *host heads*: a
scikit-learn model whose core (steps + trees or linear part) is fused but whose head (raw scores
-> ``predict``/``predict_proba``/...) is not bit-exact natively materialises its raw scores;
the runner finishes the value with ``Stage.finish[node]`` right after the stage, and the
node's readers are scheduled as if it were a host node.

Scheduling is as-soon-as-possible over *levels*: native nodes get even levels, host nodes odd
ones, and a node's level is the smallest one of its kind not below any argument's level (plus
one when the argument is of the other kind).  All nodes of one level form one stage, so the
number of stages is the length of the longest native/host alternation in the graph.

A value is *materialised* (a full-length array) only when a node of another stage, or the
pipeline's return, reads it; everything else lives in registers or per-block buffers inside its
native stage.  Sources (inputs, constants) belong to no stage: inputs are bound arrays,
constants are compiled into the code (or handed to host nodes as values).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloc_ir.featurestore import is_store_table
from mloc_ir.interpreter import run_node
from mloc_ir.ops import OPS
from mloc_ir.types import numpy_dtype

NUMERIC = ("bool", "i64", "f32", "f64")
ELEMENTWISE = {name for name, s in OPS.items() if s.family in ("binary", "unary", "ternary")}
LIGHTGBM_KWARGS = ("raw_score", "num_iteration", "start_iteration")


@dataclass
class Stage:
    """One stage: ``kind`` is ``"native"`` or ``"host"``; ``nodes`` in topological order.

    ``inputs`` are the values the stage reads from outside itself (bound inputs or other
    stages' outputs), ``outputs`` the values it must materialise for later stages or the
    pipeline's return.
    """

    index: int
    kind: str
    nodes: list[int]
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    #: model node -> ``pipeline_heads.HostHead``: the stage writes the node's raw scores, the
    #: runner replaces them by ``finish[node](raw)`` after the stage
    finish: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"stage{self.index}_{self.kind}"


@dataclass
class Plan:
    """Stages of a graph, the constants every stage can use, and why nodes run on the host."""

    stages: list[Stage]
    consts: dict[int, Any]  # const and input-independent scalar nodes -> value
    host_reasons: dict[int, str]  # host node -> why it is not compiled
    stage_of: dict[int, int]  # node -> stage index

    @property
    def native_stages(self) -> list[Stage]:
        return [s for s in self.stages if s.kind == "native"]

    @property
    def materialised(self) -> list[int]:
        """Every value passed between stages (or returned), in stage order."""
        out = []
        for s in self.stages:
            out.extend(s.outputs)
        return out


# ---------------------------------------------------------------------------------------------
# Which nodes compile


def _probe(graph, nid: int, consts: dict):
    """A one-row stand-in for a value (the constant itself for constants)."""
    if nid in consts:
        return consts[nid]
    t = graph[nid].type
    return np.ones(1, dtype=numpy_dtype(t.dtype))


def _elementwise_reason(graph, node, consts) -> str | None:
    for a in node.args:
        t = graph[a].type
        if a not in consts and (t.shape != "col" or t.dtype not in NUMERIC):
            return f"argument %{graph[a].name} is a {t} value"
    if node.type.dtype not in NUMERIC:
        return f"result type {node.type}"
    # The interpreter's own result dtype on one-row probes must be the declared one: NumPy
    # picks small loops for some bool inputs (int8 for bool // bool, float16 for log(bool)).
    try:
        with np.errstate(all="ignore"):
            res = run_node(node, [_probe(graph, a, consts) for a in node.args])
    except Exception as exc:  # noqa: BLE001 -- NumPy refuses the probe: leave it to NumPy
        return f"NumPy raises on it ({type(exc).__name__})"
    if np.asarray(res).dtype != numpy_dtype(node.type.dtype):
        return f"NumPy computes it in {np.asarray(res).dtype}, not {node.type.dtype}"
    from .pipeline_ops import Unsupported, loop_dtypes
    try:
        loop_dtypes(graph, node, consts)
    except Unsupported as exc:
        return str(exc)
    return None


def _numeric_key(graph, node) -> str | None:
    key = graph[node.args[0]]
    if key.type.shape != "col" or key.type.dtype not in NUMERIC:
        return f"its key %{key.name} is a {key.type} value (only numeric keys compile)"
    return None


def _model_reason(graph, node) -> str | None:
    from .pipeline_models import model_support
    return model_support(graph, node)


def native_reason(graph, node, consts) -> str | None:
    """None when ``node`` compiles natively, else why it runs on the host."""
    op = node.op
    spec = OPS[op]
    table = getattr(node.attrs.get("table"), "obj", None)
    if is_store_table(table):  # its rows are read from the store at run time, in one batch
        return f"its table {node.attrs['table'].name} is in the feature store at {table.url}"
    if op == "to_datetime":
        return ("to_datetime runs on the host: a native kernel parses batches of strict ISO "
                "strings ('YYYY-MM-DD HH:MM:SS[.ffffff]'), pandas any other batch")
    if spec.family == "datetime":
        return f"{op} runs on the host with pandas (datetime values are not compiled natively)"
    if spec.host_only:
        why = node.attrs.get("not_inlined") if op == "pycall" else None
        return f"{op} always runs in Python" + (f" (not inlined: {why})" if why else "")
    if node.type.shape in ("sparse", "any"):
        return f"its value is {node.type}"
    if any(graph[a].type.shape in ("sparse", "any") for a in node.args):
        return "it reads a sparse or opaque value"
    if op in ELEMENTWISE or op in ("round", "nan_to_num", "cast"):
        return _elementwise_reason(graph, node, consts)
    if op in ("lookup", "join"):
        from .pipeline_strings import string_keyed, string_reason
        if string_keyed(graph, node):  # a str key: a hash table (see pipeline_strings)
            return string_reason(graph, node)
    if op == "lookup":
        if node.type.dtype not in NUMERIC:
            return f"its values are {node.type.dtype}"
        from .pipeline_tables import lookup_table
        reason = _numeric_key(graph, node)
        if reason is None:
            try:
                lookup_table(node, graph[node.args[0]].type.dtype)
            except (TypeError, ValueError, OverflowError) as exc:
                return f"its table does not compile: {exc}"
        return reason
    if op == "join":
        reason = _numeric_key(graph, node)
        if reason:
            return reason
        from .pipeline_strings import str_field_reason
        bad = [u.name for u in graph.users(node.id) if u.op != "field" or (
            u.type.dtype not in NUMERIC and str_field_reason(graph, u))]
        if bad:
            return f"non-numeric fields are read from it: {', '.join(bad)}"
        from .pipeline_tables import join_table
        try:
            join_table(node, graph[node.args[0]].type.dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            return f"its table does not compile: {exc}"
        return None
    if op == "field":
        return None  # decided with its join (see plan())
    if op == "stack":
        if node.type.shape != "row" or node.type.dtype not in NUMERIC:
            return f"its value is {node.type}"
        for a in node.args:
            t = graph[a].type
            # scalar parts are constants (e.g. a feature the model never reads), folded at compile time
            if t.shape not in ("col", "row", "scalar") or t.dtype not in NUMERIC:
                return f"part %{graph[a].name} is a {t} value"
        return None
    if op == "column":
        t = graph[node.args[0]].type
        return None if t.shape == "row" and t.dtype in NUMERIC else f"it reads a {t} value"
    if op == "model":
        return _model_reason(graph, node)
    if op == "transform":
        from .pipeline_models import transform_step
        try:
            transform_step(graph, node)
        except ValueError as exc:
            return str(exc)
        return None
    return f"no native lowering for {op}"


# ---------------------------------------------------------------------------------------------
# Planning


def _fold_scalars(graph) -> dict[int, Any]:
    """Constants, plus scalar-shaped nodes computed from constants only (evaluated now)."""
    consts: dict[int, Any] = {}
    with np.errstate(all="ignore"):
        for node in graph.nodes():
            if node.op == "const":
                consts[node.id] = node.attrs["value"]
            elif node.type.shape == "scalar" and node.args and all(a in consts for a in node.args):
                consts[node.id] = run_node(node, [consts[a] for a in node.args])
    return consts


def plan(graph, forced_host: dict[int, str] | None = None) -> Plan:
    """Split ``graph`` into alternating native and host stages (see the module docstring).

    ``forced_host`` maps nodes to run on the host anyway to the reason (used when emission
    finds a combination the planner let through).
    """
    consts = _fold_scalars(graph)
    nodes = [n for n in graph.nodes() if n.op != "input" and n.id not in consts]
    reasons: dict[int, str] = dict(forced_host or {})
    for n in nodes:
        if n.id in reasons:
            continue
        r = native_reason(graph, n, consts)
        if r is not None:
            reasons[n.id] = r
    # a field runs where its join runs (a record is never materialised)
    for n in nodes:
        if n.op == "field" and n.id in reasons and n.args[0] not in reasons:
            reasons[n.args[0]] = f"its field %{n.name} runs on the host"
    for n in nodes:
        if n.op == "field" and n.args[0] in reasons and n.id not in reasons:
            reasons[n.id] = f"its join %{graph[n.args[0]].name} runs on the host"
    heads = {n.id: h for n in nodes if n.op == "model" and n.id not in reasons
             for h in [_host_head(graph, n)] if h is not None}
    level: dict[int, int] = {}
    seen: dict[int, int] = {}  # the level a node's readers see (a host head finishes later)
    for n in nodes:
        native = n.id not in reasons
        lv = 0 if native else 1
        for a in n.args:
            if a not in seen:
                continue  # a source
            same = (seen[a] % 2 == 0) == native
            lv = max(lv, seen[a] if same else seen[a] + 1)
        if n.op == "field":
            lv = level[n.args[0]]
        level[n.id] = lv
        seen[n.id] = lv + 1 if n.id in heads else lv
    by_level: dict[int, list[int]] = {}
    for n in nodes:
        by_level.setdefault(level[n.id], []).append(n.id)
    stages = []
    stage_of = {}
    for lv in sorted(by_level):
        st = Stage(len(stages), "native" if lv % 2 == 0 else "host", by_level[lv])
        for nid in st.nodes:
            stage_of[nid] = st.index
        stages.append(st)
    # what crosses stage boundaries
    needed: dict[int, set[int]] = {s.index: set() for s in stages}  # stage -> values it reads
    for n in nodes:
        for a in n.args:
            if a in consts:
                continue
            if stage_of.get(a) != stage_of[n.id]:
                needed[stage_of[n.id]].add(a)
    returned = set(o for o in graph.outputs if o not in consts)
    order = {n.id: i for i, n in enumerate(graph.nodes())}
    for s in stages:
        s.inputs = sorted(needed[s.index], key=order.get)
        crossing = {a for t in stages if t.index != s.index for a in needed[t.index]}
        s.outputs = sorted((crossing | returned) & set(s.nodes), key=order.get)
        s.finish = {nid: heads[nid] for nid in s.outputs if nid in heads}
    return Plan(stages, consts, reasons, stage_of)


def _host_head(graph, node):
    """A ``HostHead`` when ``node`` is a natively compiled model whose head runs on the host."""
    from .pipeline_heads import HostHead
    from .pipeline_models import model_spec
    spec = model_spec(graph, node)
    if not spec.host_head:
        return None
    conv = spec.converted
    return HostHead(conv.head, spec.method, conv.n_outputs, spec.head_reason)


def value_layout(graph, stage, nid: int) -> tuple[str, int | None]:
    """How native ``stage`` stores value ``nid`` in memory: IR dtype and row width (None for
    a column).  Values are stored in their own type, except a model finished by a host head,
    whose stage writes float64 raw scores, one row of ``n_outputs`` per input row."""
    head = getattr(stage, "finish", {}).get(nid)
    if head is not None:
        return "f64", head.n_outputs
    t = graph[nid].type
    return t.dtype, (None if t.shape == "col" else t.width)


def describe(graph, p: Plan) -> str:
    """A readable listing of the plan's stages (used by ``CompiledPipeline.explain``)."""
    lines = []
    for s in p.stages:
        names = ", ".join(f"%{graph[i].name}" for i in s.nodes)
        lines.append(f"{s.name}: {len(s.nodes)} node(s): {names}")
        if s.inputs:
            lines.append("  reads " + ", ".join(f"%{graph[i].name}" for i in s.inputs))
        if s.outputs:
            lines.append("  materialises " + ", ".join(f"%{graph[i].name}" for i in s.outputs))
        if s.kind == "host":
            for i in s.nodes:
                text = graph[i].attrs.get("text_kernel")  # set by codegen.text_rewrite
                if text:  # native code, called from the host stage (the GIL released)
                    lines.append(f"  %{graph[i].name}: {text}")
                    continue
                line = f"  %{graph[i].name} on the host: {p.host_reasons[i]}"
                no_text = graph.meta.get("text_host", {}).get(graph[i].name)
                if no_text:  # why codegen.text_rewrite left it alone
                    line += f" (no native text kernel: {no_text})"
                lines.append(line)
        for i, head in getattr(s, "finish", {}).items():
            lines.append(f"  %{graph[i].name}: features and model fused, {head.method} head "
                         f"on the host: {head.reason}")
    return "\n".join(lines) if lines else "(no stages: the pipeline returns its inputs)"
