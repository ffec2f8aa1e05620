"""Regenerate LAIONet from LAION metadata: match → textsim → select → OCR flag → index + card.

Each step is a module (:mod:`.parts`, :mod:`.match`, :mod:`.textsim`, :mod:`.select`, :mod:`.ocr`,
:mod:`.card`); :mod:`.steps` runs one of them on one part with a resumable output, :mod:`.executors`
runs that step function over every part locally or on Ray, and :mod:`.pipeline` drives both and writes
the index and card. Start with :func:`run_pipeline`::

    from laionet_bench.rebuild import RebuildConfig, run_pipeline

    report = run_pipeline(RebuildConfig(parts=["laion/part-*.parquet"], work_dir="work",
                                        encoder="sentence-transformers:all-MiniLM-L6-v2", threshold=0.5))

See docs/rebuild.md.
"""

from .match import LemmaMatcher as LemmaMatcher
from .ocr import FetchedImages as FetchedImages
from .ocr import FolderImages as FolderImages
from .ocr import OcrEngine as OcrEngine
from .ocr import TesseractEngine as TesseractEngine
from .parts import ColumnMap as ColumnMap
from .parts import resolve_parts as resolve_parts
from .pipeline import STEPS as STEPS
from .pipeline import RebuildReport as RebuildReport
from .pipeline import run_pipeline as run_pipeline
from .steps import RebuildConfig as RebuildConfig
from .textsim import load_encoder as load_encoder

__all__ = [
    "STEPS",
    "ColumnMap",
    "FetchedImages",
    "FolderImages",
    "LemmaMatcher",
    "OcrEngine",
    "RebuildConfig",
    "RebuildReport",
    "TesseractEngine",
    "load_encoder",
    "resolve_parts",
    "run_pipeline",
]
