"""Intra-class similarity (paper §3.2, Fig. 6; SPEC §5): embed each class's images with a CLIP or timm
encoder, compare the within-class pair similarities of two datasets, and join them to per-class recall.

Modules: ``encoders`` (open_clip / timm image towers), ``sampling`` (which rows), ``embed`` (cached,
resumable embeddings), ``stats`` (O(n·d) statistics, histogram, per-class test), ``join`` (recall and
class frequency), ``plots`` (PNG figures), ``pipeline`` (:func:`compute_similarity`).
"""

from .encoders import DEFAULT_ENCODER as DEFAULT_ENCODER
from .encoders import Encoder as Encoder
from .encoders import create_encoder as create_encoder
from .pipeline import EmbedOptions as EmbedOptions
from .pipeline import SimilaritySummary as SimilaritySummary
from .pipeline import compute_similarity as compute_similarity
from .sampling import DatasetLike as DatasetLike
from .stats import class_stats as class_stats
from .stats import compare_classes as compare_classes

__all__ = [
    "DEFAULT_ENCODER",
    "DatasetLike",
    "EmbedOptions",
    "Encoder",
    "SimilaritySummary",
    "class_stats",
    "compare_classes",
    "compute_similarity",
    "create_encoder",
]
