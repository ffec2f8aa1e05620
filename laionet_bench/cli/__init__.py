"""The ``laionet-bench`` command: one module per subcommand, each a thin layer over the library.

Every subcommand module exposes ``add_parser(subparsers)``, which registers its parser and sets
``handler`` to a function ``(args) -> int``. Heavy imports (torch, timm) happen inside handlers so
``--help`` stays fast. Errors become one line on stderr and exit status 1 (``_errors.py``); set
``--debug`` or ``LAIONET_BENCH_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..version import __version__
from ._errors import report

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "run", "models", "classes", "index", "download", "similarity", "leaderboard", "compare", "publish",
    "rebuild", "demo",
)

EPILOG = """examples:
  laionet-bench run --demo --models all        the embedded demo benchmark, end to end (offline)
  laionet-bench run --models 'convnext_*' --images laionet_images --imagenet /data/imagenet/val
  laionet-bench models 'resnet*'               what a model spec expands to, with data configs
  laionet-bench classes husky                  search the ImageNet-1k catalogue
  laionet-bench index info laionet:clip_0.82   download (or reuse) the Hub index and describe it
  laionet-bench download --out laionet_images  fetch the default variant's images (resumable)
  laionet-bench similarity --datasets laionet imagenet-val --images laionet_images --imagenet /data/imagenet/val
  laionet-bench leaderboard --results results/ --out leaderboard/
  laionet-bench compare results-main/ results-pr/ --fail gap_top1:+1.0
  laionet-bench publish --repo me/laionet-leaderboard
  laionet-bench rebuild all --parts 'part-*.parquet' --work work
  laionet-bench demo build                     build the offline demo benchmark's images
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="laionet-bench",
        description="Evaluate ImageNet models on LAIONet, the LAION-based recreation of ImageNet.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args) or 0)
    except BaseException as exc:  # noqa: BLE001 - mapped to a message in one table
        return report(exc, debug=args.debug)
