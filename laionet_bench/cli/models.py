"""``laionet-bench models [PATTERN ...]``: what model specs expand to, with their data configs."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  laionet-bench models resnet50            the default tag and its preprocessing
  laionet-bench models 'convnext_*' --exclude '*_384*'
  laionet-bench models all --names-only    every timm model with an ImageNet-1k head
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list what model specs expand to", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="*", default=["all"], metavar="PATTERN",
                        help="names, wildcards, @FILE, all, openclip:ARCH/TAG (default: all)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="PATTERN")
    parser.add_argument("--names-only", action="store_true", help="one spec per line, no data configs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..models.registry import expand_model_specs, preprocess_key, resolve_data_config

    specs = expand_model_specs(args.patterns, exclude=args.exclude)
    if args.names_only:
        print("\n".join(specs))
        return 0
    rows = []
    for spec in specs:
        config = resolve_data_config(spec)
        rows.append((spec, "x".join(str(s) for s in config["input_size"][1:]), config["crop_pct"],
                     config["crop_mode"], config["interpolation"], ",".join(f"{m:.3f}" for m in config["mean"]),
                     ",".join(f"{s:.3f}" for s in config["std"])))
    print(tabulate(rows, headers=["model", "size", "crop_pct", "crop", "interpolation", "mean", "std"]))
    groups = {preprocess_key(resolve_data_config(s)) for s in specs}
    print(f"\n{len(specs)} model(s) in {len(groups)} preprocessing group(s)")
    return 0
