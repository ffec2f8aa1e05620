"""Evaluation sets labelled by wnid: the registry (``create_dataset``) and one reader per layout."""

from .base import DATASETS as DATASETS
from .base import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .base import Dataset as Dataset
from .base import Sample as Sample
from .base import apply_limits as apply_limits
from .base import create_dataset as create_dataset
from .base import listing_frame as listing_frame
from .base import listing_sha256 as listing_sha256
from .base import parse_dataset_spec as parse_dataset_spec
from .base import restrict_classes as restrict_classes

__all__ = ["DATASETS", "IMAGE_EXTENSIONS", "Dataset", "Sample", "apply_limits", "create_dataset", "listing_frame",
           "listing_sha256", "parse_dataset_spec", "restrict_classes"]
