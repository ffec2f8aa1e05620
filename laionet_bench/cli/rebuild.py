"""``laionet-bench rebuild match|textsim|select|ocr|card|all``: regenerate LAIONet from LAION metadata."""

from __future__ import annotations

import argparse

from ._options import add_ray_address

EPILOG = """examples:
  laionet-bench rebuild all --parts 'laion400m/part-*.parquet' --work work --top-per-class 50
  laionet-bench rebuild all --parts hf://datasets/laion/laion400m --work work --delete-downloaded
  laionet-bench rebuild all --parts hf://datasets/laion/relaion2B-en-research-safe --work work --max-punsafe 0.1
  laionet-bench rebuild match --parts parts/ --work work --rules ours --workers 2
  laionet-bench rebuild all --parts pool.parquet --work work --encoder sentence-transformers:all-MiniLM-L6-v2 \\
      --threshold 0.5 --ocr-engine tesseract --images images/
  laionet-bench rebuild all --parts 's3-mounted/part-*.parquet' --work /shared/work --executor ray --ray-address auto
  laionet-bench rebuild all --parts captions.parquet --text-col caption --url-col link --nsfw-col none ...

Steps resume: finished (part, step) pairs are skipped; rerun the same command after an interruption.
Without --schema the columns of the first part choose the preset (logged); column flags apply on top.
"""

ACTIONS = ("match", "textsim", "select", "ocr", "card", "all")
#: Column flags (--<flag>-col, the ColumnMap field with _ for -) and their column under laion400m / relaion2b,
#: for the help (the presets themselves are laionet_bench.rebuild.parts.SCHEMAS, not imported to build the parser).
COLUMN_FLAGS = (("text", "TEXT", "caption"), ("url", "URL", "url"), ("nsfw", "NSFW", "none"),
                ("punsafe", "none", "punsafe"), ("sample-id", "SAMPLE_ID", "key"), ("width", "WIDTH", "original_width"),
                ("height", "HEIGHT", "original_height"), ("license", "LICENSE", "none"))


def _optional_column(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _add_options(sub: argparse.ArgumentParser) -> None:
    io = sub.add_argument_group("input and output")
    io.add_argument("--parts", nargs="+", required=True, metavar="SPEC",
                    help="parquet files, folders, globs, or hf://datasets/<owner>/<name>[@rev][/glob]")
    io.add_argument("--work", default="rebuild-work", metavar="DIR", help="work dir of per-part outputs "
                    "(default: %(default)s)")
    io.add_argument("--out", metavar="DIR", help="dataset folder to write (default: WORK/dataset)")
    io.add_argument("--delete-downloaded", action="store_true", help="delete Hub parts once matched")
    io.add_argument("--publish-repo", metavar="ID", help="after the card step, publish the dataset folder to this "
                    "Hub dataset repo (same path as 'laionet-bench publish --no-card')")
    io.add_argument("--publish-revision", metavar="BRANCH", help="branch to publish to (default: main)")
    cols = sub.add_argument_group("columns: a schema preset, single columns on top (use 'none' for a field the data "
                                  "lacks)")
    cols.add_argument("--schema", metavar="NAME", help="laion400m (LAION-400M: TEXT, URL, the NSFW tag, ...) or "
                      "relaion2b (Re-LAION-5B, laion/relaion2B-en-research[-safe]: caption, url, the punsafe "
                      "probability, ...); default: the preset whose columns the first part has")
    for flag, laion, relaion in COLUMN_FLAGS:
        kind = str if flag in ("text", "url") else _optional_column
        cols.add_argument(f"--{flag}-col", default=argparse.SUPPRESS, type=kind, metavar="NAME",
                          help=f"default: the schema's ({laion} / {relaion})")
    method = sub.add_argument_group("method")
    method.add_argument("--rules", choices=("official", "ours"), default="official",
                        help="lemma matching rules (default: %(default)s)")
    method.add_argument("--encoder", default="openclip:ViT-B-32/openai", metavar="NAME",
                        help="text encoder: openclip:ARCH/TAG, hf-clip:REPO, sentence-transformers:NAME "
                        "(default: %(default)s)")
    method.add_argument("--threshold", type=float, metavar="X",
                        help="keep similarity > X (default: 0.82 for CLIP ViT-B/32, 0.58 for all-mpnet-base-v2)")
    method.add_argument("--max-punsafe", type=float, metavar="P", help="keep rows whose punsafe probability is <= P "
                        "(a --punsafe-col column, e.g. Re-LAION's; default: 0.5, the NSFW detector's own boundary)")
    method.add_argument("--top-per-class", type=int, metavar="N", help="also write the top-N-per-class variant")
    method.add_argument("--variant", metavar="NAME", help="main variant name (default: e.g. clip_0.82)")
    method.add_argument("--ocr-engine", default="none", metavar="NAME",
                        help="none or tesseract[:LANG] (default: %(default)s)")
    method.add_argument("--images", metavar="DIR", help="images for OCR, named <row_id>.<ext>")
    run = sub.add_argument_group("execution")
    run.add_argument("--executor", choices=("local", "ray"), default="local", help="default: %(default)s")
    add_ray_address(run, old="--address")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="local executor: parts matched in parallel (default: %(default)s)")
    run.add_argument("--cpu-actors", type=int, default=1, metavar="N",
                     help="Ray executor on a cluster without GPUs: text-encoder actors, spread over the nodes "
                     "(default: %(default)s; with GPUs: one per GPU)")
    run.add_argument("--device", metavar="DEV", help="encoder device of the local executor (default: cuda when "
                     "present, else cpu; Ray actors use the GPU Ray gives them)")
    run.add_argument("--batch-size", type=int, default=256, metavar="N", help="encoder batch (default: %(default)s)")
    run.add_argument("--batch-rows", type=int, default=1_000_000, metavar="N",
                     help="rows per matching batch; bounds memory (default: %(default)s)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("rebuild", help="regenerate LAIONet from LAION metadata", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="STEP", required=True)
    helps = {"match": "lemma matching, multi-synset drop", "textsim": "caption-to-synset-text similarity",
             "select": "NSFW filter and similarity threshold", "ocr": "flag class names written in images",
             "card": "write the index variants, dataset card and manifest", "all": "every step in order"}
    for action in ACTIONS:
        sub = actions.add_parser(action, help=helps[action], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_options(sub)
        sub.set_defaults(handler=run)


def _config(args: argparse.Namespace):
    from ..rebuild import RebuildConfig

    fields = (flag.replace("-", "_") for flag, _, _ in COLUMN_FLAGS)
    overrides = {field: getattr(args, f"{field}_col") for field in fields if hasattr(args, f"{field}_col")}
    return RebuildConfig(parts=args.parts, schema=args.schema, column_overrides=overrides, rules=args.rules,
                         encoder=args.encoder, threshold=args.threshold, max_punsafe=args.max_punsafe,
                         top_per_class=args.top_per_class, variant=args.variant,
                         ocr_engine=args.ocr_engine, images=args.images, work_dir=args.work, out_dir=args.out,
                         device=args.device, batch_size=args.batch_size, batch_rows=args.batch_rows,
                         delete_downloaded=args.delete_downloaded)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..errors import ConfigError
    from ..rebuild import STEPS, run_pipeline

    steps = STEPS if args.action == "all" else (args.action,)
    report = run_pipeline(_config(args), steps=steps, executor=args.executor, address=args.ray_address,
                          workers=args.workers, cpu_actors=args.cpu_actors)
    print(tabulate(list(report.funnel().items()), headers=["step", "rows"], intfmt=","))
    if report.variants:
        print()
        print(tabulate(list(report.variants.items()), headers=["variant", "rows"], intfmt=","))
        print(f"\n{len(report.class_counts)} classes; dataset folder: {report.out_dir}")
    if args.publish_repo:
        from ..hub.upload import publish_folder

        if not report.variants or report.out_dir is None:
            raise ConfigError("--publish-repo needs the card step: run 'rebuild card' or 'rebuild all'")
        published = publish_folder(report.out_dir, repo_id=args.publish_repo, revision=args.publish_revision,
                                   commit_message="Publish LAIONet index rebuilt with laionet-bench")
        print(f"published {report.out_dir} to {published.repo_id}@{published.commit}")
    return 0
