"""``laionet-bench classes [QUERY]``: list or search the ImageNet-1k catalogue."""

from __future__ import annotations

import argparse
import json
from typing import Any

EPILOG = """examples:
  laionet-bench classes                     all 1000 classes
  laionet-bench classes husky               search wnids, lemmas, definitions
  laionet-bench classes --rules official --format json n02110185
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "classes", help="list or search the ImageNet-1k classes", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", nargs="?", help="wnid, class index, or text to search for")
    parser.add_argument("--rules", choices=("official", "ours"), default="official",
                        help="lemma rule set whose matching lemmas are shown (default: %(default)s)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..catalog import lemma_map, load_catalog

    catalog = load_catalog()
    classes = catalog.search(args.query) if args.query else list(catalog)
    if not classes:
        print(f"no class matches {args.query!r}")
        return 1
    lemmas = lemma_map(args.rules)
    by_wnid: dict[str, list[str]] = {}
    for lemma, wnid in lemmas.lemma_to_wnid.items():
        by_wnid.setdefault(wnid, []).append(lemma)
    rows: list[dict[str, Any]] = [
        {
            "index": c.index,
            "wnid": c.wnid,
            "name": c.name,
            "match_lemmas": by_wnid.get(c.wnid, []),
            "definition": c.definition,
            "query": c.query,
        }
        for c in classes
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        import pandas as pd

        frame = pd.DataFrame(rows)
        frame["match_lemmas"] = frame["match_lemmas"].map("; ".join)
        print(frame.to_csv(index=False), end="")
    else:
        table = [
            (r["index"], r["wnid"], r["name"], ", ".join(r["match_lemmas"]) or "-", r["definition"][:60])
            for r in rows
        ]
        print(tabulate(table, headers=["index", "wnid", "name", f"{args.rules} lemmas", "definition"]))
        print(f"\n{len(rows)} class(es); {len(lemmas)} {args.rules} lemmas over {len(lemmas.wnids)} wnids")
    return 0
