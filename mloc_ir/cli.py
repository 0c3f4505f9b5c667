"""The ``mloc`` command line.

    mloc explain pipeline.py:predict [--dot g.dot] [--png g.png]
    mloc compile pipeline.py:predict -o build/pipeline_fast
    mloc compile pipeline.py:predict --train data.csv --label y --cascades --top-k 100 -o out
    mloc bench [NAME ...] [--quick]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from .errors import MlocError


def _explain_text(graph) -> str:
    from .groups import feature_groups
    from .printer import format_value

    lines = [str(graph), ""]
    models = graph.find("model")
    if not models:
        lines.append("no model call in this pipeline")
    for m in models:
        x = graph[m.args[0]]
        lines.append(f"model %{m.name}: {format_value(m.attrs['model'])}.{m.attrs['method']}"
                     f" on %{x.name} : {x.type} -> {m.type}")
        groups = feature_groups(graph, m.id)
        lines.append(f"  {len(groups)} feature group(s):")
        for g in groups:
            ops = sorted(graph[n].name for n in g.nodes)
            lines.append(f"    {g}: " + (", ".join("%" + o for o in ops) or "(input column)"))
    host = [n for n in graph.nodes() if n.op in ("vectorize", "pycall")]
    if host:
        lines.append("host (Python) ops: " + ", ".join(f"%{n.name} ({n.op})" for n in host))
    return "\n".join(lines)


def cmd_explain(args) -> int:
    from .frontend import parse
    from .groups import all_feature_groups

    graph = parse(args.pipeline, dtypes=_dtypes(args.dtype))
    graph.meta["feature_groups"] = [g for gs in all_feature_groups(graph).values() for g in gs]
    print(_explain_text(graph))
    if args.dot or args.png:
        dot_src = graph.to_dot()
        if args.dot:
            with open(args.dot, "w") as f:
                f.write(dot_src)
            print(f"wrote {args.dot}")
        if args.png:
            exe = shutil.which("dot")
            if exe is None:
                print("--png needs Graphviz's `dot` program (e.g. apt-get install graphviz); "
                      "use --dot to write the source instead", file=sys.stderr)
                return 2
            subprocess.run([exe, "-Tpng", "-o", args.png], input=dot_src.encode(), check=True)
            print(f"wrote {args.png}")
    return 0


def cmd_compile(args) -> int:
    from .api import compile as compile_pipeline

    dtypes = _dtypes(args.dtype)
    statistical = args.cascades or args.top_k is not None
    if statistical and not args.train:
        raise MlocError("--cascades and --top-k plan on labelled rows: give them with "
                        "--train data.csv --label COLUMN")
    if args.train and not statistical:
        raise MlocError("--train is only used by --cascades and/or --top-k K")
    if args.train and not args.label:
        raise MlocError("--train needs --label COLUMN (the column holding each row's label)")
    if not args.train and (args.label or args.positive or args.column or args.rows):
        raise MlocError("--label, --positive, --column and --rows describe the --train file; "
                        "give --train too")
    if not statistical:
        cp = compile_pipeline(args.pipeline, dtypes=dtypes, threads=args.threads)
    else:
        from .frontend import parse
        from .training_data import read_training_csv

        graph = parse(args.pipeline, dtypes=dtypes)  # to know how the file maps to parameters
        positive = [v for part in args.positive or [] for v in part.split(",") if v != ""]
        train = read_training_csv(graph, args.train, args.label, positive=positive,
                                  columns=_pairs(args.column, "--column", "PARAM=COLUMN"),
                                  rows=args.rows)
        cp = compile_pipeline(args.pipeline, dtypes=dtypes, threads=args.threads, train=train,
                              cascades=args.cascades, accuracy_target=args.accuracy_target,
                              top_k=args.top_k)
    print(cp.explain())
    if args.output:
        out = cp.save(args.output)
        print(f"wrote {out}")
    return 0


def _pairs(pairs, flag: str, form: str) -> dict:
    out = {}
    for p in pairs or []:
        k, sep, v = p.partition("=")
        if not sep or not k or not v:
            raise MlocError(f"{flag} takes {form}, got {p!r}")
        out[k] = v
    return out


def _dtypes(pairs):
    return _pairs(pairs, "--dtype", "NAME=DTYPE (e.g. age=i64)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mloc", description="An optimizing compiler for ML "
                                     "inference pipelines.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("explain", help="print a pipeline's IR, its models and feature groups")
    ex.add_argument("pipeline", help="path/to/pipeline.py:function (function defaults to predict)")
    ex.add_argument("--dot", help="also write the graph as Graphviz source to this file")
    ex.add_argument("--png", help="also render the graph to this PNG (needs Graphviz)")
    ex.add_argument("--dtype", action="append", metavar="NAME=DTYPE",
                    help="declare an input's dtype (f64, f32, i64, bool, str); repeatable")
    ex.set_defaults(run=cmd_explain)
    co = sub.add_parser("compile", help="compile a pipeline to native code (and save it)")
    co.add_argument("pipeline", help="path/to/pipeline.py:function (function defaults to predict)")
    co.add_argument("-o", "--output", help="write the compiled pipeline to this folder "
                    "(an importable module)")
    co.add_argument("--threads", type=int, default=None, help="threads for large batches")
    co.add_argument("--dtype", action="append", metavar="NAME=DTYPE",
                    help="declare an input's dtype (f64, f32, i64, bool, str); repeatable")
    st = co.add_argument_group("statistical optimizations (planned on labelled rows)")
    st.add_argument("--train", metavar="CSV", help="labelled rows: a column per pipeline "
                    "parameter (or the whole table for a DataFrame parameter) and a label column")
    st.add_argument("--label", metavar="COLUMN", help="the label column of --train")
    st.add_argument("--positive", action="append", metavar="V[,V...]",
                    help="label values that count as 1 (the rest 0); default: labels as is")
    st.add_argument("--column", action="append", metavar="PARAM=COLUMN",
                    help="read parameter PARAM from COLUMN (default: the column named PARAM)")
    st.add_argument("--rows", type=int, metavar="N", help="plan on a seeded sample of N rows")
    st.add_argument("--cascades", action="store_true", help="answer confident rows with an "
                    "approximate model on cheap feature groups")
    st.add_argument("--accuracy-target", type=float, default=0.999, metavar="A",
                    help="agreement with the exact pipeline the cascade must certify "
                    "(default 0.999)")
    st.add_argument("--top-k", type=int, metavar="K", help="plan a filter for top-K queries")
    co.set_defaults(run=cmd_compile)
    be = sub.add_parser("bench", help="run the benchmark suite (python -m bench) from a checkout")
    be.set_defaults(run=cmd_bench)
    be.add_argument("bench_args", nargs=argparse.REMAINDER,
                    help="NAME ... [--quick] [--out DIR] (see python -m bench --help)")
    return parser


def cmd_bench(args) -> int:
    # bench/ lives beside the installed packages in a source checkout, not in the wheel
    import importlib
    from pathlib import Path
    root = str(Path(__file__).resolve().parent.parent)
    if not (Path(root) / "bench" / "suite.py").is_file():
        raise MlocError("mloc bench runs from a source checkout of mloc (bench/ is not installed)")
    if root not in sys.path:
        sys.path.insert(0, root)
    rest = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args
    return importlib.import_module("bench.__main__").main(rest)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after `bench` is python -m bench's (argparse would take --quick as ours)
        argv = ["bench", "--", *argv[1:]]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except MlocError as exc:
        print(f"mloc: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
