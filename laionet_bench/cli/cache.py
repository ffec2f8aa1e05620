"""``laionet-bench cache info|prune``: what the shared prediction store holds, and removing runs from it."""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]

EPILOG = """examples:
  laionet-bench cache info                          every stored run: dataset, model, run key, records, size
  laionet-bench cache info --json
  laionet-bench cache prune --older-than 30         runs no evaluation has used for 30 days
  laionet-bench cache prune --run-key 3f2a9c --dry-run
  laionet-bench cache prune --all
The store is <cache>/predictions (LAIONET_BENCH_CACHE), or the predictions setting (LAIONET_BENCH_PREDICTIONS,
[tool.laionet-bench] predictions, --predictions). Pruned predictions are recomputed when a run needs them.
"""

_MIB = 1024**2


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("cache", help="show and prune the shared prediction store", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="the stored runs, their records and size, per run key")
    info.add_argument("--json", action="store_true", help="one JSON object: the store, its runs and totals")
    info.set_defaults(handler=_info)
    prune = actions.add_parser("prune", help="remove stored runs (what matches every criterion given)")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="runs no evaluation has used for DAYS days")
    prune.add_argument("--run-key", metavar="KEY", help="the run whose key starts with KEY (cache info lists them)")
    prune.add_argument("--all", dest="everything", action="store_true", help="every run")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    prune.set_defaults(handler=_prune)
    for sub in (info, prune):
        sub.add_argument("--predictions", metavar="DIR",
                         help="the prediction store (default: predictions setting, else <cache>/predictions)")


def _table(runs) -> str:
    from tabulate import tabulate

    rows = [(r.dataset, r.model, r.run_key[:16], r.records, f"{r.bytes / _MIB:.2f}", r.to_dict()["last_used"])
            for r in runs]
    return tabulate(rows, headers=["dataset", "model", "run key", "records", "MiB", "last used"])


def _info(args: argparse.Namespace) -> int:
    import json

    from ..evaluation.cache import list_runs, prediction_cache

    store = prediction_cache(args.predictions)
    runs = list_runs(store)
    total = sum(r.bytes for r in runs)
    if args.json:
        print(json.dumps({"store": str(store), "runs": [r.to_dict() for r in runs], "total_bytes": total}, indent=1))
        return 0
    if runs:
        print(_table(runs) + "\n")
    print(f"{len(runs)} run(s), {total / _MIB:.2f} MiB in {store}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from ..evaluation.cache import prediction_cache, prune_runs

    store = prediction_cache(args.predictions)
    removed = prune_runs(store, older_than_days=args.older_than, run_key=args.run_key, everything=args.everything,
                         dry_run=args.dry_run)
    if removed:
        print(_table(removed) + "\n")
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed)} run(s), {sum(r.bytes for r in removed) / _MIB:.2f} MiB from {store}")
    return 0
