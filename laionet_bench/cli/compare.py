"""``laionet-bench compare A B``: diff two result sets; non-zero exit when a ``--fail`` rule is broken."""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  laionet-bench compare results-main/ results-pr/
  laionet-bench compare baseline/leaderboard.json results/ --fail gap_top1:+1.0 --fail laionet_top1:+0.5
  laionet-bench compare a/ b/ --all --format csv > diff.csv

A rule METRIC:+DELTA fails when METRIC worsens by more than DELTA points for a model in both sets
(direction from the metric: a growing gap is worse, a falling accuracy is worse).
Exit status: 0 no rule broken, 1 a rule broken (or an error).
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="diff two result sets (regressions, improvements)",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("a", metavar="RESULTS_A", help="baseline: results folder, leaderboard.json or .csv")
    inputs.add_argument("b", metavar="RESULTS_B", help="candidate: results folder, leaderboard.json or .csv")
    checks = parser.add_argument_group("checks")
    checks.add_argument("--fail", metavar="RULE", action="append", default=[],
                        help="METRIC:+DELTA, e.g. gap_top1:+1.0 (repeatable)")
    checks.add_argument("--metrics", metavar="LIST", help="comma-separated metrics to compare (default: all)")
    output = parser.add_argument_group("output")
    output.add_argument("--all", action="store_true", help="also list unchanged metrics")
    output.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..leaderboard.compare import COMPARED_METRICS, FailRule, compare_tables, load_table, resolve_metric

    rules = [FailRule.parse(text) for text in args.fail]
    metrics = [resolve_metric(m) for m in args.metrics.split(",") if m.strip()] if args.metrics else COMPARED_METRICS
    result = compare_tables(load_table(args.a), load_table(args.b), rules=rules, metrics=metrics)
    shown = result.diff if args.all else result.changes()
    if args.format == "csv":
        print(shown.to_csv(index=False), end="")
    elif args.format == "json":
        print(shown.to_json(orient="records", indent=1))
    else:
        columns = ["model", "metric", "a", "b", "delta", "delta_se", "significant", "status"]
        print(tabulate(shown[columns], headers="keys", showindex=False, floatfmt=".2f") if len(shown)
              else "no metric changed")
    regressed = int((result.diff["status"] == "regressed").sum())
    improved = int((result.diff["status"] == "improved").sum())
    summary = f"{regressed} regression(s), {improved} improvement(s)"
    if result.models_added or result.models_removed:
        summary += f"; only in B: {result.models_added or '-'}; only in A: {result.models_removed or '-'}"
    print(summary, file=sys.stderr)
    for row in result.violations.itertuples(index=False):
        print(f"FAIL {row.rule}: {row.model} {row.metric} {row.a:.2f} → {row.b:.2f} "
              f"(worse by {row.worsening:.2f} points)", file=sys.stderr)
    return 0 if result.ok else 1
