"""Two ways to run the per-part steps, both calling :func:`~laionet_bench.rebuild.steps.run_part_step`.

``local``
    Part by part on this machine: fetch → match → (delete) → textsim → select → OCR, so at most one
    part is in memory (in record batches while matching) and on disk (Hub parts). ``workers > 1``
    matches several parts at once in spawned processes; the model steps then run in this process,
    which loads the encoder once.
``ray``
    Ray tasks and actors over the list of parts: one CPU task per part matches it, a pool of text-encoder
    actors embeds each part as soon as its match is done, and one CPU task per part then selects and
    flags it. The pool has one actor per GPU of the cluster (``num_gpus=1`` each, so Ray gives every actor
    its own GPU), or ``cpu_actors`` actors spread over the nodes when the cluster has no GPU, each running
    torch on its share of a node's cores (Ray would give it one thread), and never more actors than parts. Each actor builds its encoder once: by name on its GPU (``cpu`` when torch
    sees no CUDA, as with GPUs declared on a CPU machine), or from the encoder object or factory given to
    :func:`~laionet_bench.rebuild.pipeline.run_pipeline`, shipped to it with ``ray.put``. Each task writes
    the same per-part files as the local executor, so the work dir must be on storage every node sees (a
    shared or mounted filesystem), and the output is identical. The card step then runs on the driver.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import constants
from .._progress import progress_bar
from ..errors import ConfigError
from ..evaluation import ray_cluster
from ..evaluation.allocator import tune_allocator
from ..evaluation.ray_executor import actor_device as _actor_device  # the device a named encoder loads on
from .parts import Part
from .steps import RebuildConfig, StepContext, run_part_step

__all__ = ["map_parts", "run_local", "run_ray"]

logger = logging.getLogger(__name__)


def _match_in_process(part: Part, config: RebuildConfig) -> dict:
    return run_part_step("match", part, StepContext(config))


def run_local(parts: list[Part], ctx: StepContext, steps: list[str], *, workers: int = 1) -> None:
    """Run ``steps`` over ``parts`` on this machine, streaming part by part, with a progress bar."""
    remaining = list(steps)
    if workers > 1 and "match" in remaining:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for record in progress_bar(pool.map(_match_in_process, parts, [ctx.config] * len(parts)), total=len(parts),
                               desc="rebuild match", unit="part"):
                logger.debug("match %s done", record["part"])
        remaining.remove("match")
    with progress_bar(parts, desc="rebuild", unit="part", disable=False) as bar:
        for part in bar:
            for step in remaining:
                bar.set_postfix_str(f"{part.name} {step}")
                run_part_step(step, part, ctx)


def _run_steps(steps: list[str], part: Part, config: RebuildConfig, ocr_engine: Any = None, images: Any = None,
               after: Any = None) -> None:
    """A Ray task: ``steps`` on ``part``. ``after`` is the upstream task's result, passed so Ray waits for it."""
    ctx = StepContext(config, ocr_engine=ocr_engine, images=images)
    for step in steps:
        run_part_step(step, part, ctx)


class _TextsimActor:
    """Ray actor: one text encoder, built on first use, for every part the pool gives it."""

    def __init__(self, config: RebuildConfig, encoder: Any = None, allocator: str = "tuned", threads: int | None = None):
        tune_allocator(allocator)  # the driver's choice: a worker process is not the CLI's
        if threads:  # a CPU actor: Ray's OMP_NUM_THREADS=1 (it holds no CPU) would leave its node's other cores idle
            import torch

            torch.set_num_threads(threads)
        if encoder is None:  # loaded by name: on this actor's own device, whatever --device says
            import ray

            config = replace(config, device=_actor_device(ray.get_gpu_ids()))
        self.ctx = StepContext(config, encoder=encoder)

    def run(self, index: int, part: Part, after: Any = None) -> int:
        """textsim on ``part``; returns ``index``. ``after`` is the part's match task, so Ray waits for it."""
        run_part_step("textsim", part, self.ctx)
        return index


def _textsim_actors(cluster_gpus: float, *, parts: int, cpu_actors: int,
                    node_cpus: Sequence[float] = ()) -> tuple[int, dict, int | None]:
    """How many text-encoder actors to start, their Ray options, and the torch threads of a CPU actor.

    One per whole GPU of the cluster, each holding it (``num_gpus=1``), with torch's threads left as they
    are; without GPUs ``cpu_actors``, spread over the nodes (each uses torch's threads, so one per node is
    the useful maximum). Never more than ``parts``: an actor without a part would only load a model.

    ``num_cpus=0``: an actor must not hold a CPU for its lifetime (Ray's default once ``num_gpus`` is given),
    or on a node with as many GPUs as CPUs the actors hold every CPU and the match tasks their calls wait
    for never start (as the evaluation's Ray executor does). A CPU actor holding its node's cores would do
    the same to a one-node cluster. So a CPU actor reserves nothing, and instead of the one thread Ray
    gives a worker that holds no CPU (``OMP_NUM_THREADS=1``) it runs torch on its share of a node's cores:
    the smallest node's CPUs (``node_cpus``, as Ray declares them) over the actors per node.
    """
    gpus = int(cluster_gpus)
    if gpus:
        return min(gpus, parts), {"num_gpus": 1, "num_cpus": 0}, None
    count = min(cpu_actors, parts)
    nodes = [cpus for cpus in node_cpus if cpus > 0]
    threads = max(1, int(min(nodes)) // math.ceil(count / len(nodes))) if nodes and count else None
    return count, {"num_cpus": 0, "scheduling_strategy": "SPREAD"}, threads


def _run_on_actor(actor, job: tuple):
    return actor.run.remote(*job)


def _textsim_on_actors(ray, parts: list[Part], config, encoder, upstream: list, *, cpu_actors: int) -> Iterator[int]:
    """Yield the index of each part as its textsim step finishes on the pool of text-encoder actors."""
    from ray.util import ActorPool

    node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]]
    count, options, threads = _textsim_actors(ray.cluster_resources().get("GPU", 0), parts=len(parts),
                                              cpu_actors=cpu_actors, node_cpus=node_cpus)
    logger.info("ray: %d text-encoder actor(s), %s", count,
                "one GPU each" if "num_gpus" in options else f"on CPU, {threads} torch thread(s) each")
    actor = ray.remote(_TextsimActor).options(**options)
    pool = ActorPool([actor.remote(config, encoder, constants.ALLOCATOR, threads) for _ in range(count)])
    for job in zip(range(len(parts)), parts, upstream, strict=True):
        pool.submit(_run_on_actor, job)
    while pool.has_next():
        yield pool.get_next_unordered()


def _ship(ray, obj: Any, what: str, instead: str):
    """``ray.put(obj)`` (``None`` stays ``None``), or a one-line error when ``obj`` cannot be pickled."""
    if obj is None:
        return None
    try:
        return ray.put(obj)
    except TypeError:  # Ray's "Could not serialize" (a lock, an open file, a CUDA context...)
        raise ConfigError(f"the {what} given to run_pipeline ({type(obj).__name__}) cannot be pickled, so the Ray "
                          f"executor cannot ship it to its workers: {instead}") from None


def _absolute(config: RebuildConfig) -> RebuildConfig:
    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else path

    work_dir = str(Path(config.work_dir).resolve()) if config.work_dir else config.work_dir
    return replace(config, work_dir=work_dir, out_dir=absolute(config.out_dir),
                   images=absolute(config.images))


def match_task_options(config: RebuildConfig) -> dict[str, Any]:
    """Ray options of a match task: the memory it declares, so Ray packs no more of them on a node than fit
    (peak RSS ≈ 200 MiB + ~0.55 KiB per row of a batch, measured by ``benchmarks/match_memory.py``; declared
    with a margin as 256 MiB + 1 KiB per row), and polars on the one CPU the task holds (it would start a thread
    per core of the node, for every task at once)."""
    return {"memory": (256 << 20) + 1024 * config.batch_rows,
            "runtime_env": {"env_vars": {"POLARS_MAX_THREADS": "1"}}}


def run_ray(parts: list[Part], ctx: StepContext, steps: list[str], *, address: str | None = None,
            cpu_actors: int = 1) -> None:
    """Run ``steps`` over ``parts`` with Ray tasks and text-encoder actors (see the module docstring).

    Args:
        parts, ctx, steps: as for :func:`run_local`; ``ctx``'s encoder, OCR engine and image source, when
            set, are shipped to the workers, so they must pickle.
        address: the cluster to connect to; ``None`` starts a local Ray (unless one is running).
        cpu_actors: text-encoder actors on a cluster without GPUs (with GPUs: one per GPU).
    """
    if not parts:
        return
    ray = ray_cluster.init(address, option="--ray-address", feature="the Ray executor")
    encoder = _ship(ray, ctx.encoder, "text encoder", "pass a factory that builds it (e.g. its class, or a "
                    "functools.partial) or name it in RebuildConfig.encoder")
    ocr_engine = _ship(ray, ctx.ocr_engine, "OCR engine", "name it in RebuildConfig.ocr_engine")
    images = _ship(ray, ctx.images, "image source", "use RebuildConfig.images (a folder of <row_id> images)")
    config = ray.put(_absolute(ctx.config))  # workers do not share the driver's working directory
    task = ray.remote(num_cpus=1)(_run_steps)
    match = task.options(**match_task_options(ctx.config))
    upstream = [match.remote(["match"], part, config) if "match" in steps else None for part in parts]
    ready: Iterable[tuple[int, Any]] = enumerate(upstream)
    if "textsim" in steps:  # a part is ready for the later steps once its textsim is done
        ready = ((i, None) for i in _textsim_on_actors(ray, parts, config, encoder, upstream, cpu_actors=cpu_actors))
    later = [s for s in steps if s in ("select", "ocr")]
    last = [task.remote(later, parts[i], config, ocr_engine, images, after) if later else after for i, after in ready]
    ray.get([ref for ref in last if ref is not None])
    logger.info("ray: %d part(s) through %s", len(parts), ", ".join(steps))


def map_parts(fn: Callable[[Part], Any], parts: list[Part], *, executor: str = "local", address: str | None = None,
              num_gpus: float = 0, desc: str = "parts") -> list[Any]:
    """``fn(part)`` for every part, on this machine in order or as one Ray task per part; results in part order.

    For per-part work outside the four rebuild steps (e.g. embedding every caption for a text search)
    that follows the same rules: ``fn`` writes one resumable output per part itself. On Ray, ``fn``
    must pickle (a module-level function or a ``functools.partial`` of one) and each task asks for
    ``num_gpus``; the work dir must be on storage every node sees.
    """
    if executor == "local":
        return [fn(part) for part in progress_bar(parts, desc=desc, unit="part", disable=False)]
    if executor != "ray":
        raise ConfigError(f"unknown executor {executor!r}: use local or ray")
    ray = ray_cluster.init(address, option="--ray-address", feature="the Ray executor")
    task = ray.remote(num_cpus=1, num_gpus=num_gpus)(_call_on_part)
    shipped = ray.put(fn)
    return ray.get([task.remote(shipped, part, constants.ALLOCATOR) for part in parts])


def _call_on_part(fn: Callable[[Part], Any], part: Part, allocator: str = "tuned") -> Any:
    """A Ray task: ``fn(part)`` (``ray.remote`` takes functions, not partials, so ``fn`` travels as data), with
    the driver's allocator setting (an encoder's CPU forward, as in the CLI)."""
    tune_allocator(allocator)
    return fn(part)
