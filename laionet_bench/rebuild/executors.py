"""Two ways to run the per-part steps, both calling :func:`~laionet_bench.rebuild.steps.run_part_step`.

``local``
    Part by part on this machine: fetch → match → (delete) → textsim → select → OCR, so at most one
    part is in memory (in record batches while matching) and on disk (Hub parts). ``workers > 1``
    matches several parts at once in spawned processes; the model steps then run in this process,
    which loads the encoder once.
``ray``
    Ray Data over the list of parts: ``map`` (match, CPU tasks) → ``map_batches`` (text similarity,
    an actor pool that loads the encoder once per actor and asks for a GPU when the cluster has one)
    → ``map`` (select + OCR). Each stage writes the same per-part files as the local executor, so the
    work dir must be on storage every node sees (a shared or mounted filesystem), and the output is
    identical. The card step then runs on the driver.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from ..errors import MissingDependencyError
from .parts import Part
from .steps import RebuildConfig, StepContext, run_part_step

__all__ = ["run_local", "run_ray"]

logger = logging.getLogger(__name__)


def _match_in_process(part: Part, config: RebuildConfig) -> dict:
    return run_part_step("match", part, StepContext(config))


def run_local(parts: list[Part], ctx: StepContext, steps: list[str], *, workers: int = 1) -> None:
    """Run ``steps`` over ``parts`` on this machine, streaming part by part, with a progress bar."""
    from tqdm.auto import tqdm

    remaining = list(steps)
    if workers > 1 and "match" in remaining:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for record in tqdm(pool.map(_match_in_process, parts, [ctx.config] * len(parts)), total=len(parts),
                               desc="rebuild match", unit="part"):
                logger.debug("match %s done", record["part"])
        remaining.remove("match")
    with tqdm(parts, desc="rebuild", unit="part") as bar:
        for part in bar:
            for step in remaining:
                bar.set_postfix_str(f"{part.name} {step}")
                run_part_step(step, part, ctx)


def _part_row(part: Part) -> dict:
    return {"part": json.dumps(asdict(part))}


def _part_of(row: dict) -> Part:
    return Part(**json.loads(row["part"]))


class _TextsimActor:
    """Ray actor: loads the encoder once and runs the textsim step on each part it is given."""

    def __init__(self, config: RebuildConfig):
        self.ctx = StepContext(config)

    def __call__(self, batch: dict) -> dict:
        for raw in batch["part"]:
            run_part_step("textsim", _part_of({"part": raw}), self.ctx)
        return batch


def _stage(step_names: list[str], config: RebuildConfig, ocr_engine, images):
    def run(row: dict) -> dict:
        ctx = StepContext(config, ocr_engine=ocr_engine, images=images)
        for step in step_names:
            run_part_step(step, _part_of(row), ctx)
        return row

    return run


def _absolute(config: RebuildConfig) -> RebuildConfig:
    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else path

    return replace(config, work_dir=absolute(config.work_dir), out_dir=absolute(config.out_dir),
                   images=absolute(config.images))


def run_ray(parts: list[Part], ctx: StepContext, steps: list[str], *, address: str | None = None,
            actors: int = 1) -> None:
    """Run ``steps`` over ``parts`` with Ray Data (connects to ``address``, or starts a local Ray)."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "the Ray executor") from None
    if not ray.is_initialized():
        ray.init(address=address)
    config = _absolute(ctx.config)  # workers do not share the driver's working directory
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    dataset = ray.data.from_items([_part_row(p) for p in parts])
    if "match" in steps:
        dataset = dataset.map(_stage(["match"], config, None, None), num_cpus=1)
    if "textsim" in steps:
        dataset = dataset.map_batches(_TextsimActor, fn_constructor_kwargs={"config": config}, batch_size=1,
                                      concurrency=actors, num_gpus=gpus, batch_format="numpy")
    rest = [s for s in steps if s in ("select", "ocr")]
    if rest:
        dataset = dataset.map(_stage(rest, config, ctx.ocr_engine, ctx.images), num_cpus=1)
    done = dataset.take_all()
    logger.info("ray: %d part(s) through %s", len(done), ", ".join(steps))
