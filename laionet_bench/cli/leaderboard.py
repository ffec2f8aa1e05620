"""``laionet-bench leaderboard``: tables and figures from stored results."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  laionet-bench leaderboard                                  results/ → leaderboard/ (md, csv, json, html, png)
  laionet-bench leaderboard --results runs/demo --out leaderboard/
  laionet-bench leaderboard --formats csv,json --no-plots    machine-readable tables only
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
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", default="leaderboard", help="output folder (default: %(default)s)")
    output.add_argument("--formats", metavar="LIST", default="md,csv,json,html",
                        help="comma-separated table formats: md, csv, json, html (default: %(default)s)")
    output.add_argument("--no-plots", action="store_true", help="skip the PNG figures (no matplotlib needed)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..leaderboard.export import write_leaderboard
    from ..leaderboard.render import to_markdown
    from ..leaderboard.table import load_leaderboard

    board = load_leaderboard(results_dir(args))
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    written = write_leaderboard(board, args.out, formats=formats, plots=not args.no_plots)
    print(to_markdown(board), end="")
    print(f"\nwrote {len(written)} file(s) to {args.out}")
    return 0
