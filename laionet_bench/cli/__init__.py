"""The ``laionet-bench`` command: one module per subcommand, each a thin layer over the library.

Every subcommand module exposes ``add_parser(subparsers)``, which registers its parser and sets
``handler`` to a function ``(args) -> int``. Heavy imports (torch, timm) happen inside handlers so
``--help`` stays fast. Errors become one line on stderr and exit status 1 (``_errors.py``); set
``--debug`` or ``LAIONET_BENCH_DEBUG=1`` for the traceback. Before any handler runs, ``main`` sets glibc's
allocator for CPU inference (:func:`~laionet_bench.evaluation.allocator.tune_allocator`;
``LAIONET_BENCH_ALLOCATOR=default`` opts out).

``--debug`` and ``-q`` work before or after the subcommand: every subcommand parser (nested ones too)
is a :class:`_CommandParser`, which takes them from one shared parent parser. Logging is configured on
the ``laionet_bench`` logger only, so other libraries keep their own levels and handlers: timm's and
matplotlib's INFO lines stay quiet, and huggingface_hub's retry warnings print once, through its handler.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .._progress import set_progress
from ..evaluation.allocator import tune_allocator
from ..version import __version__
from ._errors import report

__all__ = ["SUBCOMMANDS", "build_parser", "configure_logging", "main"]

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "run", "models", "classes", "index", "download", "similarity", "leaderboard", "compare", "publish",
    "rebuild", "explain", "demo", "import_results", "cache",
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
  laionet-bench compare results-main/ results-pr/ --fail gap_top1:+1pt
  laionet-bench publish --repo me/laionet-leaderboard
  laionet-bench rebuild all --parts 'part-*.parquet' --work work
  laionet-bench demo build                     build the offline demo benchmark's images
  laionet-bench explain captions --demo        the paper's Section-4 experiments (captions, v2-frequency, text-search)
  laionet-bench cache info                     the shared prediction store, per run key (cache prune removes runs)
"""


#: The logger the CLI configures: the package's own, never the root logger.
LOGGER = "laionet_bench"


def _common_options(default: bool | str) -> argparse.ArgumentParser:
    """The flags every (sub)command takes. Below the top level their default is ``SUPPRESS``: a subcommand
    that was not given ``-q`` must not reset the ``-q`` given before it."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logs")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="only warnings and errors, no progress bars")
    group.add_argument("--no-progress", action="store_true", default=default, help="no progress bars")
    return common


_SUBCOMMAND_COMMON = _common_options(argparse.SUPPRESS)


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser, with the common flags; argparse makes nested subcommands of the same class."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["parents"] = [*kwargs.get("parents", ()), _SUBCOMMAND_COMMON]
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="laionet-bench",
        description="Evaluate ImageNet models on LAIONet, the LAION-based recreation of ImageNet.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(subparsers)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (pytest's capture, a redirected stream)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler assigns it; the property always answers sys.stderr
        pass


def configure_logging(*, debug: bool = False, quiet: bool = False) -> logging.Logger:
    """Give the ``laionet_bench`` logger one stderr handler and the level the flags ask for.

    Idempotent (``main`` may run many times in one process). The root logger is left alone: configuring it
    would print every library's INFO lines, and huggingface_hub's records twice (it has its own handler).
    """
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    return logger


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(debug=args.debug, quiet=args.quiet)
    set_progress(not (args.quiet or args.no_progress))  # every bar of every step, executor and library call
    try:
        tune_allocator()  # before torch allocates: CPU forwards reuse heap blocks instead of faulting in fresh mmaps
        return int(args.handler(args) or 0)
    except BaseException as exc:  # noqa: BLE001 - mapped to a message in one table
        return report(exc, debug=args.debug)
