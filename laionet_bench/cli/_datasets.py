"""Dataset and encoder options shared by ``run``, ``similarity`` and ``explain``, so they read the same data
the same way and a flag means the same thing everywhere.

Both hand these options to :func:`laionet_bench.evaluation.evaluator.load_datasets` (``run`` through ``evaluate``):
LAIONet from an index (``--index`` or the Hub, see ``add_hub_options``) plus its image store, and
ImageNet-val / ImageNet-V2 restricted to LAIONet's classes.
"""

from __future__ import annotations

import argparse

from ..evaluation.options import AMP_DTYPES

__all__ = ["AMP_CHOICES", "WORKERS_HELP", "add_data_options", "add_image_encoder_options", "image_store_from_args",
           "imagenet_from_args"]

#: ``--amp`` of every command that runs a network on images: the same dtypes, the same meaning.
AMP_CHOICES = AMP_DTYPES
#: ``--workers`` of every command that decodes images for a network (run, similarity).
WORKERS_HELP = "parallel image decoders (default: %(default)s)"


def add_data_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the ``datasets`` group (``--index --images --imagenet --imagenet-v2``) and return it for more."""
    group = parser.add_argument_group("datasets")
    group.add_argument("--index", metavar="PARQUET", help="local LAIONet index (no Hub access)")
    group.add_argument("--images", metavar="DIR",
                       help="LAIONet images: shards + manifest folder, or <row_id>.<ext> files (default: the images "
                       "setting, else where 'laionet-bench download' puts this index's images)")
    group.add_argument("--imagenet", metavar="PATH",
                       help="ImageNet-val (wnid folders, flat + devkit, wds/PATH, hfds/NAME; default: the imagenet "
                       "setting, else none)")
    group.add_argument("--imagenet-v2", metavar="[VARIANT=]PATH", help="ImageNet-V2 class-index folders")
    return group


def add_image_encoder_options(parser: argparse.ArgumentParser, *, title: str, flag: str,
                              what: str) -> argparse._ArgumentGroup:
    """Add an image-encoder group (``flag`` for the spec, ``--weights --device --amp --batch-size --workers``)."""
    enc = parser.add_argument_group(title)
    enc.add_argument(flag, default="openclip:ViT-B-32/openai", metavar="SPEC",
                     help="openclip:ARCH/TAG or timm:NAME (default: the paper's %(default)s)")
    enc.add_argument("--weights", metavar="FILE", help=f"local {what} checkpoint (.pt, .pth, .safetensors)")
    enc.add_argument("--device", help="torch device (default: [tool.laionet-bench] device, else the best available)")
    enc.add_argument("--amp", choices=AMP_CHOICES, help="autocast dtype (default: float32), as in run")
    enc.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)")
    enc.add_argument("--workers", type=int, default=2, help=WORKERS_HELP)
    return enc


def image_store_from_args(args: argparse.Namespace, index) -> str:
    """``--images``, else the store ``download`` fills for ``index`` by default (it must exist)."""
    from ..errors import ConfigError
    from ..images.store import default_image_store

    store = default_image_store(index, args.images)
    if args.images is None and not store.is_dir():
        raise ConfigError(f"no image store at {store} (the default for this index): fetch the images with "
                          "'laionet-bench download' (same --dataset/--index), or pass --images DIR")
    return str(store)


def imagenet_from_args(args: argparse.Namespace) -> str | None:
    """``--imagenet``, else the ``imagenet`` setting (``LAIONET_BENCH_IMAGENET``, ``[tool.laionet-bench]``).

    Every command that reads ImageNet-val takes it from here, so ``run`` and ``similarity`` never disagree on
    whether a configured ImageNet-val is used.
    """
    from ..config import resolve_setting

    return resolve_setting("imagenet", args.imagenet)
