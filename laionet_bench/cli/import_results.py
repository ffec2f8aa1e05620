"""``laionet-bench import-results``: the reference's per-image results as ordinary (``official``) results."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  laionet-bench import-results --imagenet-val ILSVRC2012_val.parquet --labels clip_top50_labels.pkl --out results-paper
  laionet-bench import-results --laionet clip_top50.parquet --labels clip_top50_labels.pkl --variant clip_top50 \\
      --imagenet-val ILSVRC2012_val.parquet --out results-paper
  laionet-bench import-results --imagenet-val ILSVRC2012_val.parquet --devkit ILSVRC2012_devkit_t12 --out results-paper
  laionet-bench import-results --imagenet-val ILSVRC2012_val.parquet --model my-vit=hf:me/my-vit --out results-paper
  laionet-bench leaderboard --results results-paper

Each top_1_is_correct_<predictor> / top_5_is_correct_<predictor> pair becomes the result of the 'paper' model
set's spec for that predictor (resnet-50 -> hf:microsoft/resnet-50, clip-vit-base-patch32 ->
openclip:ViT-B-32/openai), under the official protocol: rows without a prediction (None) are dropped and
counted, OCR-flagged LAIONet rows excluded, the class set is every --labels key found in val (977 for the
CLIP variants). A predictor no paper model has is skipped with a warning, unless --model PREDICTOR=SPEC names
the model spec its results belong to. Nothing is written when an input is bad, and a computed result of the same
model in --out is kept unless --overwrite.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("import-results", help="import the reference's per-image results (official protocol)",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    val = parser.add_argument_group("ImageNet-val")
    val.add_argument("--imagenet-val", metavar="FILE", help="the reference's ILSVRC2012_val.parquet")
    val.add_argument("--devkit", metavar="DIR",
                     help="ILSVRC2012 devkit folder: label val images by file name instead of name_def_wnid")
    laion = parser.add_argument_group("LAIONet")
    laion.add_argument("--laionet", metavar="FILE", help="a reference LAIONet parquet with top_{1,5}_is_correct_* columns")
    laion.add_argument("--labels", metavar="PICKLE",
                       help="the variant's {wnid: [row ids]} pickle: LAIONet's labels and the official class set")
    laion.add_argument("--variant", metavar="NAME", help="the LAIONet variant (clip_top50 ..., or custom:NAME), for the records")
    models = parser.add_argument_group("predictors")
    models.add_argument("--model", action="append", default=[], metavar="COLUMN=SPEC",
                        help="import the top_{1,5}_is_correct_COLUMN predictor as model SPEC (e.g. my-vit=hf:me/my-vit, "
                        "or a paper predictor under another spec); repeatable. Without it, a predictor no paper "
                        "model has is skipped")
    output = parser.add_argument_group("results")
    output.add_argument("--out", metavar="DIR",
                        help="results folder (default: LAIONET_BENCH_RESULTS, [tool.laionet-bench] results_dir, "
                             "or ./results)")
    output.add_argument("--overwrite", action="store_true",
                        help="replace computed (not imported) results of the same models in --out")
    parser.set_defaults(handler=run)


def _summary_line(result, dropped: dict[str, int]) -> str:
    parts = []
    for summary in result.datasets.values():
        parts.append(f"{summary.dataset} top-1 {summary.top1.value * 100:.2f}% top-5 {summary.top5.value * 100:.2f}% "
                     f"({summary.n_evaluated} rows, {dropped.get(summary.dataset, 0)} without a prediction dropped"
                     + (f", {summary.n_excluded} OCR-excluded" if summary.n_excluded else "") + ")")
    group = result.model_info.get("pretrain_group")
    return f"{result.model} [{result.model_info.get('predictor')}, {group}]: " + "; ".join(parts)


def parse_models(pairs: list[str]) -> dict[str, str]:
    """``["COLUMN=SPEC", ...]`` → ``{COLUMN: SPEC}``; the columns are checked against the files by the import."""
    from ..errors import ConfigError

    models: dict[str, str] = {}
    for pair in pairs:
        column, sep, spec = (part.strip() for part in pair.partition("="))
        if not sep or not column or not spec:
            raise ConfigError(f"--model expects COLUMN=SPEC (e.g. my-vit=hf:me/my-vit), got {pair!r}")
        if column in models:
            raise ConfigError(f"--model names {column} twice ({models[column]}, {spec}): give each column one spec")
        models[column] = spec
    return models


def run(args: argparse.Namespace) -> int:
    from .. import constants
    from ..config import resolve_setting
    from ..evaluation.imported import import_reference_results, write_imported
    from ..index.official import recorded_variant

    variant = recorded_variant(args.variant) if args.variant is not None else None  # as index import-official
    imported = import_reference_results(imagenet_val=args.imagenet_val, devkit=args.devkit, laionet=args.laionet,
                                        labels=args.labels, variant=variant, models=parse_models(args.model))
    out = resolve_setting("results_dir", args.out, env=constants.RESULTS_DIR)
    written = write_imported(imported.results, out, overwrite=args.overwrite)
    for result in imported.results:
        print(_summary_line(result, imported.dropped[result.model]))
    if imported.skipped:
        print(f"skipped {len(imported.skipped)} predictor(s) no paper model has: {', '.join(imported.skipped)}")
    print(f"wrote {len(written)} result(s) over {len(imported.classes)} classes (protocol official) to {out}")
    return 0
