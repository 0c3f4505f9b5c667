"""``python -m bench [NAME ...] [--quick] [--out DIR]``: see ``bench.suite``."""
from __future__ import annotations

import argparse
import sys


def build_parser(parser=None):
    from .suite import BENCHMARKS
    parser = parser or argparse.ArgumentParser(prog="python -m bench",
                                               description="mloc's benchmark suite")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true",
                        help="small slices and small models, to check the suite runs")
    parser.add_argument("--out", default=None, help="results folder (default: bench/results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--jobs", type=int, default=None,
                        help="benchmarks run at once, each in its own process (default: 1; "
                             "with --quick, one per core up to 2)")
    return parser


def main(argv=None) -> int:
    from . import report
    from .suite import run
    args = build_parser().parse_args(argv)
    results = run(args.names, quick=args.quick, out_dir=args.out, progress=not args.no_progress,
                  jobs=args.jobs)
    print(report.summary_table(results))
    print(f"results in {args.out or report.RESULTS}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
