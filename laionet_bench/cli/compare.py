"""``laionet-bench compare A B``: diff two result sets; non-zero exit when a ``--fail`` rule is broken."""

from __future__ import annotations

import argparse
import sys

from ..plugin.options import tolerance_arg

EPILOG = """examples:
  laionet-bench compare results-main/ results-pr/
  laionet-bench compare baseline/leaderboard.json results/ --fail gap_top1:+0.01 --fail laionet_top1:+0.5pt
  laionet-bench compare main/ pr/ --fail gap:+0 --significant 2     only changes beyond 2 combined SEs
  laionet-bench compare a/ b/ --all --format csv > diff.csv

A rule METRIC:+DELTA fails when METRIC worsens by more than DELTA for a model in both sets (direction
from the metric: a growing gap is worse, a falling accuracy is worse). DELTA is a fraction (0.01) or
points (1pt); csv and json output are fractions, the table shows points.
With --significant K a worsening counts only beyond K·sqrt(se_a² + se_b²).
Exit status: 0 no rule broken, 1 a rule broken, a model of A missing from B (unless --allow-missing),
or an error.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="diff two result sets (regressions, improvements)",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("a", metavar="RESULTS_A", help="baseline: results folder, leaderboard.json or .csv")
    inputs.add_argument("b", metavar="RESULTS_B", help="candidate: results folder, leaderboard.json or .csv")
    checks = parser.add_argument_group("checks")
    checks.add_argument("--fail", metavar="RULE", action="append", default=[],
                        help="METRIC:+DELTA, e.g. gap_top1:+0.01 or gap_top1:+1pt (repeatable)")
    checks.add_argument("--significant", metavar="K", type=tolerance_arg, default=None,
                        help="a worsening breaks a rule only beyond K combined standard errors ('se' = 1) "
                        "(default: any worsening beyond DELTA)")
    checks.add_argument("--allow-missing", action="store_true",
                        help="do not fail when a model of RESULTS_A is missing from RESULTS_B")
    checks.add_argument("--metrics", metavar="LIST", help="comma-separated metrics to compare (default: all)")
    output = parser.add_argument_group("output")
    output.add_argument("--all", action="store_true", help="also list unchanged metrics")
    output.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..leaderboard.compare import (
        COMPARED_METRICS,
        POINTS,
        FailRule,
        compare_tables,
        load_table,
        resolve_metric,
    )
    from ..leaderboard.render import csv_safe

    rules = [FailRule.parse(text) for text in args.fail]
    metrics = [resolve_metric(m) for m in args.metrics.split(",") if m.strip()] if args.metrics else COMPARED_METRICS
    result = compare_tables(load_table(args.a), load_table(args.b), rules=rules, metrics=metrics,
                            significance=args.significant, allow_missing=args.allow_missing)
    shown = result.diff if args.all else result.changes()
    if args.format == "csv":
        print(csv_safe(shown).to_csv(index=False), end="")
    elif args.format == "json":
        print(shown.to_json(orient="records", indent=1))
    else:
        columns = ["model", "metric", "a", "b", "delta", "delta_se", "significant", "status"]
        points = shown[columns].assign(**{c: shown[c] * POINTS for c in ("a", "b", "delta", "delta_se")})
        print(tabulate(points, headers=["model", "metric", "a (pt)", "b (pt)", "delta (pt)", "SE (pt)",
                                        "significant", "status"], showindex=False, floatfmt=".2f")
              if len(shown) else "no metric changed")
    regressed = int((result.diff["status"] == "regressed").sum())
    improved = int((result.diff["status"] == "improved").sum())
    summary = f"{regressed} regression(s), {improved} improvement(s)"
    if result.models_added or result.models_removed:
        summary += f"; only in B: {result.models_added or '-'}; only in A: {result.models_removed or '-'}"
    print(summary, file=sys.stderr)
    for row in result.violations.itertuples(index=False):
        print(f"FAIL {row.rule}: {row.model} {row.metric} {row.a * POINTS:.2f} → {row.b * POINTS:.2f} points "
              f"(worse by {row.worsening * POINTS:.2f} points, SE {row.delta_se * POINTS:.2f})", file=sys.stderr)
    if result.models_removed and not args.allow_missing:
        print(f"FAIL: {len(result.models_removed)} model(s) of {args.a} missing from {args.b}: "
              f"{', '.join(result.models_removed)}; evaluate them or pass --allow-missing", file=sys.stderr)
    return 0 if result.ok else 1
