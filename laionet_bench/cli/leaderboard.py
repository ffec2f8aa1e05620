"""``laionet-bench leaderboard``: tables and figures from stored results."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  laionet-bench leaderboard                                  results/ → leaderboard/ (md, csv, json, html, png)
  laionet-bench leaderboard --results runs/demo --out leaderboard/
  laionet-bench leaderboard --formats csv,json --no-plots    machine-readable tables only
  laionet-bench leaderboard --shifts timm                    + shifts.{md,csv,json,png}: LAIONet beside timm's
                                                             ImageNet-V2, Sketch, -R, -A and ReaL results
  laionet-bench leaderboard --shifts ~/pytorch-image-models/results   a newer timm results folder
"""


def add_results_option(group) -> None:
    """``--results DIR``, shared by the commands that read stored results."""
    group.add_argument("--results", metavar="DIR",
                       help="results folder (default: LAIONET_BENCH_RESULTS, [tool.laionet-bench] results_dir, "
                            "or ./results)")


def results_dir(args: argparse.Namespace):
    from .. import constants
    from ..config import resolve_setting

    return resolve_setting("results_dir", args.results, env=constants.RESULTS_DIR)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("leaderboard", help="build leaderboard tables and figures from results",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("input")
    add_results_option(source)
    source.add_argument("--shifts", metavar="SOURCE",
                        help="also join timm's published results on other distribution shifts: 'timm' (the "
                             "shipped snapshot) or a folder in timm's results/ format")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", default="leaderboard", help="output folder (default: %(default)s)")
    output.add_argument("--formats", metavar="LIST", default="md,csv,json,html",
                        help="comma-separated table formats: md, csv, json, html (default: %(default)s)")
    output.add_argument("--no-plots", action="store_true", help="skip the PNG figures (no matplotlib needed)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..leaderboard.export import write_leaderboard
    from ..leaderboard.render import to_markdown
    from ..leaderboard.shifts import build_shifts, write_shifts
    from ..leaderboard.table import load_leaderboard

    board = load_leaderboard(results_dir(args))
    shifts = build_shifts(board, args.shifts) if args.shifts else None  # a bad --shifts fails before any write
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    written = write_leaderboard(board, args.out, formats=formats, plots=not args.no_plots)
    print(to_markdown(board), end="")
    if shifts is not None:
        written += write_shifts(shifts, args.out, formats=formats, plots=not args.no_plots)
        total = len(shifts.matched) + len(shifts.unmatched)
        print(f"\nshifts: {len(shifts.matched)} of {total} model(s) have timm results"
              + (f"; none for {', '.join(shifts.unmatched)}" if shifts.unmatched else ""))
    print(f"\nwrote {len(written)} file(s) to {args.out}")
    return 0
