"""Evaluation sets labelled by wnid: the registry (``create_dataset``) over one reader per layout.

``create_dataset(spec, **options)`` dispatches on the spec:

``laionet[:variant]``
    :func:`.laionet.load_laionet`: an index (``index=``: a :class:`~laionet_bench.index.LaionetIndex`,
    a parquet path, or the Hub variant) plus an image store (``images=``): a shards + manifest folder
    written by ``laionet-bench download``, or a folder of ``<row_id>.<ext>`` files.
``imagenet-val``
    :func:`.imagenet.load_imagenet_val`: ``root=`` in any layout of ``imagenet.py`` (wnid folders,
    flat + devkit, ``wds/``, ``hfds/``).
``imagenet-v2[:variant]``
    :func:`.imagenet.load_imagenet_v2`: ``root=``: class-index folders ``0`` … ``999`` mapped to wnids
    numerically.

The readers build on the types of :mod:`.base` (:class:`Dataset`, :class:`Sample` and the listing
helpers), which imports no reader; only this module knows them all.
"""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import DatasetError, UnknownNameError
from .base import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .base import Dataset as Dataset
from .base import Sample as Sample
from .base import apply_limits as apply_limits
from .base import listing_frame as listing_frame
from .base import listing_sha256 as listing_sha256
from .base import restrict_classes as restrict_classes
from .imagenet import IMAGENET_V2_VARIANTS as IMAGENET_V2_VARIANTS
from .imagenet import load_imagenet_v2, load_imagenet_val
from .laionet import load_laionet

__all__ = [
    "DATASETS",
    "IMAGENET_V2_VARIANTS",
    "IMAGE_EXTENSIONS",
    "Dataset",
    "Sample",
    "apply_limits",
    "create_dataset",
    "listing_frame",
    "listing_sha256",
    "parse_dataset_spec",
    "restrict_classes",
]

#: Registered dataset kinds (the part of a spec before ``:``).
DATASETS = ("laionet", "imagenet-val", "imagenet-v2")


def parse_dataset_spec(spec: str) -> tuple[str, str | None]:
    """``"laionet:clip_top50"`` → ``("laionet", "clip_top50")``; unknown kinds get suggestions."""
    kind, _, variant = spec.partition(":")
    if kind not in DATASETS:
        raise UnknownNameError("dataset", spec, difflib.get_close_matches(kind, DATASETS))
    return kind, variant or None


def create_dataset(spec: str, **options: Any) -> Dataset:
    """Create a dataset from its spec (see the module docstring for the options of each kind).

    Common options: ``classes`` (restrict to these wnids), ``limit_per_class``, ``limit``.
    """
    kind, variant = parse_dataset_spec(spec)
    if kind == "laionet":
        return load_laionet(variant, **options)
    if kind == "imagenet-val":
        if variant is not None:
            raise DatasetError(f"imagenet-val has no variants (got {spec!r}); give the layout through root=")
        return load_imagenet_val(**options)
    return load_imagenet_v2(variant, **options)
