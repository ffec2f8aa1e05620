"""``laionet-bench index info|validate|show|download|import-official``: inspect, fetch and convert LAIONet indexes."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  laionet-bench index info                          default variant from the Hub (cached)
  laionet-bench index info laionet:clip_top50 --revision v1.0
  laionet-bench index validate my_index.parquet
  laionet-bench index show laionet --class n02110185 -n 5
  laionet-bench index download clip_top50           fetch a published index into the HF cache
  laionet-bench index import-official LAIONet.parquet --labels labels.pkl --variant clip_0.82 --out clip_0.82.parquet
  laionet-bench index import-official mine.parquet --variant custom:mpnet_0.6 \
      --similarity-column all-mpnet-base-v2 --out mpnet_0.6.parquet
"""


def add_hub_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that loads an index shares."""
    group = parser.add_argument_group("index source")
    group.add_argument("--repo", metavar="ID", help="Hub dataset repo (default: LAIONET_BENCH_HUB_REPO, "
                       "[tool.laionet-bench] hub_repo, or laionet-bench/laionet)")
    group.add_argument("--revision", metavar="REV", help="branch, tag or commit of the Hub repo (default: main)")
    group.add_argument("--cache-dir", metavar="DIR", help="Hugging Face cache directory")
    group.add_argument("--offline", action="store_true", help="use only the local cache (like HF_HUB_OFFLINE=1)")


def load_from_args(args: argparse.Namespace, spec: str | None):
    """The index a command reads: ``spec`` as its command line names it (``--index``, ``--dataset``, an
    argument), else the ``dataset`` setting (``LAIONET_BENCH_DATASET``, ``[tool.laionet-bench] dataset``), else
    the default variant from the Hub.

    Every command that loads an index comes here, so a parquet set once as the ``dataset`` setting is what
    ``index info``, ``download``, ``run`` and ``similarity`` all read without ``--index`` on each of them.
    """
    from ..config import resolve_setting
    from ..index.load import load_index

    spec = resolve_setting("dataset", spec)
    if isinstance(spec, str) and spec.startswith("~"):
        spec = str(Path(spec).expanduser())
    return load_index(spec, repo_id=args.repo, revision=args.revision, cache_dir=args.cache_dir,
                      local_files_only=args.offline)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("index", help="inspect, validate and convert LAIONet indexes", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, handler in (
        ("info", "sizes, classes and provenance of an index", _info),
        ("validate", "check an index against the schema", _validate),
        ("show", "print rows of an index", _show),
    ):
        sub = actions.add_parser(name, help=helptext)
        sub.add_argument("spec", nargs="?", default=None, help="laionet[:variant] or a parquet file/folder "
                         "(default: the dataset setting, else laionet)")
        add_hub_options(sub)
        sub.set_defaults(handler=handler)
        if name == "show":
            sub.add_argument("--class", dest="wnid", help="only rows of this wnid")
            sub.add_argument("-n", type=int, default=10, help="rows to print (default: %(default)s)")
    fetch = actions.add_parser("download", help="fetch a published index from the Hub into the Hugging Face cache")
    fetch.add_argument("variant", nargs="?", metavar="VARIANT",
                       help="clip_0.82 (default), clip_top50, mpnet_0.58, mpnet_top50, or a variant the repo's "
                       "manifest.json lists; laionet:VARIANT works too")
    add_hub_options(fetch)
    fetch.set_defaults(handler=_download)
    imp = actions.add_parser("import-official", help="convert the reference's parquet (+ label pickle)")
    imp.add_argument("parquet", help="the reference's LAIONet parquet")
    imp.add_argument("--labels", help="the reference's {wnid: [row]} pickle (read with a restricted unpickler); "
                     "its keys are recorded as the reference's class set")
    imp.add_argument("--variant", required=True, metavar="NAME",
                     help="a published variant, e.g. clip_0.82 (a wrong name lists them), or custom:NAME for an "
                          "index of your own (recorded as NAME)")
    imp.add_argument("--similarity-column", metavar="COLUMN",
                     help="the selection-score column, full name or encoder suffix (e.g. all-mpnet-base-v2); "
                          "default: the only text_to_name_def_wnid_similarity_* column, else the variant's "
                          "(clip_* or mpnet_*)")
    imp.add_argument("--out", required=True, help="output parquet in our schema")
    imp.set_defaults(handler=_import_official)


def _info(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    index = load_from_args(args, args.spec)
    table = index.table
    counts = index.class_counts()
    rows = [
        ("source", index.source),
        ("variant", index.variant),
        ("revision", index.revision or "-"),
        ("sha256", index.sha256),
        ("rows", len(table)),
        ("classes", len(counts)),
        ("OCR-flagged rows", int(table["ocr_flag"].sum())),
        ("rows evaluated (OCR dropped)", len(index.evaluation_rows())),
        ("rows per class (min / median / max)", f"{counts.min()} / {int(counts.median())} / {counts.max()}"),
        ("encoder", ", ".join(sorted(table["similarity_encoder"].unique()))),
        ("similarity (min / max)", f"{table['similarity'].min():.4f} / {table['similarity'].max():.4f}"),
        ("label-pickle keys", "-" if index.label_keys is None else len(index.label_keys)),
    ]
    print(tabulate(rows, tablefmt="plain"))
    print("\nlargest classes:")
    from ..catalog import load_catalog

    catalog = load_catalog()
    top = counts.sort_values(ascending=False).head(10)
    print(tabulate([(w, catalog.get(w).name, int(n)) for w, n in top.items()], headers=["wnid", "name", "rows"]))
    return 0


def _validate(args: argparse.Namespace) -> int:
    index = load_from_args(args, args.spec)
    print(f"ok: {index.source}: {len(index)} rows, {index.table['wnid'].nunique()} classes, schema valid")
    return 0


def _show(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    index = load_from_args(args, args.spec)
    table = index.table
    if args.wnid:
        from ..catalog import load_catalog

        table = table[table["wnid"] == load_catalog().get(args.wnid).wnid]
    cols = ["row_id", "wnid", "similarity", "ocr_flag", "caption", "url"]
    shown = table[cols].head(args.n).copy()
    shown["caption"] = shown["caption"].str.slice(0, 60)
    print(tabulate(shown.itertuples(index=False), headers=cols))
    return 0


def _download(args: argparse.Namespace) -> int:
    from ..index.load import fetch_index
    from ..index.schema import read_index_file

    fetched = fetch_index(args.variant, repo_id=args.repo, revision=args.revision, cache_dir=args.cache_dir,
                          local_files_only=args.offline)
    frame = read_index_file(fetched.path)  # a broken file is named now, not at the first run
    variant = fetched.filename.removeprefix("data/").removesuffix(".parquet")
    checked = "matches the repo's manifest.json" if fetched.verified else "the repo publishes no sha256 for it"
    print(f"{fetched.filename} from {fetched.repo_id}@{fetched.commit or '-'}: {len(frame)} rows over "
          f"{frame['wnid'].nunique()} classes")
    print(f"path: {fetched.path}")
    print(f"sha256: {fetched.sha256} ({checked})")
    print(f"next: laionet-bench download --dataset laionet:{variant}"
          + ("" if args.repo is None else f" --repo {args.repo}") + " (reads this cached copy; --offline works)")
    return 0


def _import_official(args: argparse.Namespace) -> int:
    from ..index.official import import_official

    frame, digest = import_official(args.parquet, args.labels, args.out, variant=args.variant,
                                    similarity_column=args.similarity_column)
    print(f"wrote {len(frame)} rows over {frame['wnid'].nunique()} classes to {args.out} (sha256 {digest[:12]})")
    return 0
