"""Dataset options shared by ``run`` and ``similarity``, so both read the same data the same way.

Both hand these options to :func:`laionet_bench.evaluate.load_datasets` (``run`` through ``evaluate``):
LAIONet from an index (``--index`` or the Hub, see ``add_hub_options``) plus its image store, and
ImageNet-val / ImageNet-V2 restricted to LAIONet's classes.
"""

from __future__ import annotations

import argparse

__all__ = ["add_data_options"]


def add_data_options(parser: argparse.ArgumentParser, *, images_required: bool = True) -> argparse._ArgumentGroup:
    """Add the ``datasets`` group (``--index --images --imagenet --imagenet-v2``) and return it for more.

    ``images_required=False`` is for commands with another way to name the images (``run --demo``).
    """
    group = parser.add_argument_group("datasets")
    group.add_argument("--index", metavar="PARQUET", help="local LAIONet index (no Hub access)")
    group.add_argument("--images", metavar="DIR", required=images_required,
                       help="LAIONet images: shards + manifest folder, or <row_id>.<ext> files"
                       + ("" if images_required else " (required without --demo)"))
    group.add_argument("--imagenet", metavar="PATH",
                       help="ImageNet-val (wnid folders, flat + devkit, wds/PATH, hfds/NAME)")
    group.add_argument("--imagenet-v2", metavar="[VARIANT=]PATH", help="ImageNet-V2 class-index folders")
    return group
