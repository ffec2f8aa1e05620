"""``laionet-bench models [PATTERN ...]``: what model specs expand to, with their data configs."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  laionet-bench models resnet50            the default tag and its preprocessing
  laionet-bench models 'convnext_*' --exclude '*_384*'
  laionet-bench models all --names-only    every timm model with an ImageNet-1k head
  laionet-bench models paper               the paper's 29 HF checkpoints + CLIP, with their Fig.-1 groups
  laionet-bench models hf:microsoft/resnet-50 hf-hub:timm/resnet18.a1_in1k
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list what model specs expand to", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="*", default=["all"], metavar="PATTERN",
                        help="names, wildcards, @FILE, all, paper, openclip:ARCH/TAG, hf:ORG/NAME, hf:/DIR, "
                             "hf-hub:ORG/NAME (default: all)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="PATTERN")
    parser.add_argument("--names-only", action="store_true", help="one spec per line, no data configs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..errors import ModelSpecError
    from ..models.registry import expand_model_specs, preprocess_key, resolve_data_config
    from ..models.sets import paper_model_for_spec

    specs = expand_model_specs(args.patterns, exclude=args.exclude)
    if args.names_only:
        print("\n".join(specs))
        return 0
    papers = {spec: paper_model_for_spec(spec) for spec in specs}
    rows, groups, missing = [], set(), []
    for spec in specs:
        paper = papers[spec]
        group = [paper.group if paper else ""] if any(papers.values()) else []
        try:  # an HF checkpoint that is not cached (offline) is listed, not fatal
            config = resolve_data_config(spec)
        except ModelSpecError as exc:
            missing.append(str(exc))
            rows.append((spec, *group, *["-"] * 6))
            continue
        groups.add(preprocess_key(config))
        rows.append((spec, *group, "x".join(str(s) for s in config["input_size"][1:]), config["crop_pct"],
                     config["crop_mode"], config["interpolation"], ",".join(f"{m:.3f}" for m in config["mean"]),
                     ",".join(f"{s:.3f}" for s in config["std"])))
    headers = ["model", *(["group"] if any(papers.values()) else []), "size", "crop_pct", "crop", "interpolation",
               "mean", "std"]
    print(tabulate(rows, headers=headers))
    print(f"\n{len(specs)} model(s) in {len(groups)} preprocessing group(s)")
    if missing:
        print(f"{len(missing)} model(s) without a data config here; the first: {missing[0]}")
    return 0
