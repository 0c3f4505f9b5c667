"""Benchmark output: ``<name>.json`` per benchmark, ``summary.md`` (a Markdown table) and PNG
plots -- throughput per variant, single-row latency distribution, speedup vs agreement."""
from __future__ import annotations

import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("python", "mloc", "cascade")


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _fmt(x, spec="{:.2f}"):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float) and not math.isfinite(x):
        return "-"
    return spec.format(x)


def _metric(v):
    m = _get(v, "metrics") or {}
    return ", ".join(f"{k} {_fmt(x, '{:.4f}')}" for k, x in m.items()) or "-"


def speedup(r, variant) -> float | None:
    base = _get(r, "variants", "python", "rows_per_second")
    other = _get(r, "variants", variant, "rows_per_second")
    return other / base if base and other else None


def summary_table(results: dict) -> str:
    head = ("| benchmark | test rows | python metric | mloc exact: batch speedup | identical | "
            "1-row p50 python / mloc (us) | cascade: batch speedup | agreement | cascade metric "
            "| top-100 speedup | precision@100 | compile s | plan s |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    notes = []
    for name, r in results.items():
        if "skipped" in r or "error" in r:
            why = r.get("skipped") or r.get("error")
            lines.append(f"| {name} | " + " | ".join(["-"] * 12) + " |")
            notes.append(f"- {name}: {'skipped' if 'skipped' in r else 'failed'}: {why}")
            continue
        py, ml, ca = (_get(r, "variants", v) for v in VARIANTS)
        top = r.get("topk") or {}
        lines.append("| " + " | ".join([
            name, str(_get(r, "rows", "test")), _metric(py), _fmt(speedup(r, "mloc"), "{:.1f}x"),
            _fmt(_get(ml, "identical")),
            f"{_fmt(_get(py, 'latency_us', 'p50'), '{:.0f}')} / "
            f"{_fmt(_get(ml, 'latency_us', 'p50'), '{:.0f}')}",
            _fmt(speedup(r, "cascade"), "{:.1f}x"), _fmt(_get(ca, "agreement"), "{:.4f}"),
            _metric(ca) if ca else "-", _fmt(top.get("speedup"), "{:.1f}x"),
            _fmt(top.get("precision"), "{:.2f}"), _fmt(r.get("compile_seconds"), "{:.1f}"),
            _fmt(r.get("planning_seconds"), "{:.1f}")]) + " |")
        notes.extend(f"- {name}: {note}" for note in r.get("notes", []))
        if r.get("cascade_error"):
            notes.append(f"- {name}: no cascade: {r['cascade_error'].splitlines()[0]}")
        if r.get("remote"):
            rem = r["remote"]
            s2 = _get(ca, "stage2_fraction")
            notes.append(f"- {name}: the cascade sent {rem['keys_per_call_cascade']} of "
                         f"{rem['keys_per_call_exact']} rows' keys to the store "
                         f"({rem['skipped_fraction']:.1%} of remote lookups skipped"
                         + (f"; stage 1 answered {1 - s2:.1%} of rows)" if s2 is not None else ")"))
    loads = [x for r in results.values() for x in (_get(r, "machine", "load_average_start"),
                                                    _get(r, "machine", "load_average_end"))
             if x is not None]
    cores = next((_get(r, "machine", "cores") for r in results.values()
                  if _get(r, "machine", "cores")), None)
    if loads:
        notes.append(f"- machine: {cores} cores, 1-minute load average {min(loads):.1f}-"
                     f"{max(loads):.1f} during the run (above {cores} means other work shared "
                     "the cores: wall-clock times are noisy, ratios less so)")
    quick = any(r.get("quick") for r in results.values())
    title = "mloc benchmarks" + (" (--quick: small slices and models; not for reading speed)"
                                 if quick else "")
    return f"# {title}\n\n" + "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + \
        "\n\nSpeedups are batch throughput over the original Python on the same held-out rows " \
        "(medians of repetitions, the variants timed in turns); agreement is the fraction of rows classified as the original " \
        "classifies them.\n"


def plots(results: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = {n: r for n, r in results.items() if "variants" in r}
    if not ok:
        return []
    written = []
    names = list(ok)
    # throughput per variant
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names)), 4))
    width = 0.27
    for j, v in enumerate(VARIANTS):
        ys = [_get(ok[n], "variants", v, "rows_per_second") or 0 for n in names]
        ax.bar([i + (j - 1) * width for i in range(len(names))], ys, width, label=v)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("rows per second (batch)")
    ax.set_title("Batch throughput per variant")
    ax.legend()
    fig.tight_layout()
    written.append(out / "throughput.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    # latency distribution
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names)), 4))
    data, labels, pos = [], [], []
    for i, n in enumerate(names):
        for j, v in enumerate(VARIANTS):
            lat = _get(ok[n], "variants", v, "latency_us", "all")
            if lat:
                data.append(lat)
                pos.append(i + (j - 1) * width)
                labels.append(v)
    if data:
        parts = ax.boxplot(data, positions=pos, widths=width * 0.9, showfliers=False,
                           patch_artist=True)
        colors = {"python": "C0", "mloc": "C1", "cascade": "C2"}
        for patch, lab in zip(parts["boxes"], labels):
            patch.set_facecolor(colors[lab])
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_yscale("log")
        ax.set_ylabel("single-row latency (us)")
        ax.set_title("Single-row latency (python / mloc / cascade)")
        fig.tight_layout()
        written.append(out / "latency.png")
        fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    # speedup vs agreement
    fig, ax = plt.subplots(figsize=(6, 4))
    for n in names:
        for v, marker in (("mloc", "o"), ("cascade", "^")):
            s, a = speedup(ok[n], v), _get(ok[n], "variants", v, "agreement")
            if s and a is not None:
                ax.scatter(s, a, marker=marker, color="C1" if v == "mloc" else "C2")
                ax.annotate(f"{n} ({v})", (s, a), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("batch speedup over the original Python")
    ax.set_ylabel("agreement with the original")
    ax.set_title("Speedup vs agreement")
    fig.tight_layout()
    written.append(out / "speedup_vs_agreement.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


def write(results: dict, out_dir=None) -> Path:
    out = Path(out_dir) if out_dir else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    for name, r in results.items():
        (out / f"{name}.json").write_text(json.dumps(r, indent=1, default=_jsonable))
    (out / "summary.md").write_text(summary_table(results))
    plots(results, out)
    return out


def _jsonable(x):
    import numpy as np
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
