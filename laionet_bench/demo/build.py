"""``laionet-bench demo build``: the demo's LAION-like pool and its ImageNet-like photo set, from installed packages.

Output folder (default ``constants.CACHE_DIR / "demo"``)::

    pool.parquet              LAION part 0: SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, source, package, path
    pool_images/<row_id>.png  every pool image (row_id = 0 * 10**8 + row); a failed render leaves no file
    imagenet-demo/<wnid>/     the reviewed photo-like images, ImageNet-val style (wnid-named folders)
    pool_plan.json            row_id -> (source, path), written before rendering: what makes resuming safe
    demo_manifest.json        per-file sha256, counts, label-manifest hash, package versions, manifest_sha256

The build is deterministic (same packages, same ``manifest_sha256``) and renders only what is missing: an
image is reused when the previous plan put the same item at the same row id. Interrupt it at any time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import constants
from .._io import atomic_write, sha256_file, write_bytes_atomic, write_text_atomic
from .._progress import progress_bar
from ..errors import MissingSystemPackageError
from . import sources as demo_sources
from ._provenance import package_versions
from ._rcc import read_rcc
from .labels import label_manifest_sha256, load_labels
from .render import RenderedImage, RenderTask, render_to_file

__all__ = ["POOL_URL_PREFIX", "DemoBuild", "build_demo", "default_demo_dir"]

logger = logging.getLogger(__name__)

POOL_FILE = "pool.parquet"
POOL_IMAGES = "pool_images"
IMAGENET_DEMO = "imagenet-demo"
PLAN_FILE = "pool_plan.json"
MANIFEST_FILE = "demo_manifest.json"
#: Stable pseudo URL of pool images; the e2e test serves ``pool_images/`` under it from a loopback server.
POOL_URL_PREFIX = "https://demo.laionet-bench.invalid/pool/"
PART = 0
ROWS_PER_PART = 10**8
FORMAT_VERSION = 1


@dataclass
class DemoBuild:
    """What a build produced and how much work it did."""

    out: Path
    manifest_sha256: str
    pool_rows: int
    rendered: int  # images rendered by this call
    reused: int  # images kept from an earlier build
    failed: list[dict] = field(default_factory=list)  # rows whose image could not be rendered
    imagenet_images: int = 0
    skipped_sources: list[str] = field(default_factory=list)


def default_demo_dir() -> Path:
    return constants.CACHE_DIR / "demo"


def build_demo(
    out: str | Path | None = None,
    *,
    sources: Sequence[str] | None = None,
    limit: int | None = None,
    force: bool = False,
    allow_missing: bool = False,
    workers: int | None = None,
) -> DemoBuild:
    """Build (or complete) the demo pool and ImageNet-demo.

    Args:
        out: output folder; default ``constants.CACHE_DIR / "demo"``.
        sources: subset of :data:`sources.SOURCES` (in pool order); default all.
        limit: keep only the first ``limit`` items of each source (by path) — for tests and quick looks.
        force: re-render every image even if a previous build left it.
        allow_missing: skip a source whose Debian package is missing (with a warning) instead of failing.
        workers: render processes; default ``min(4, cpu count)``; ``1`` renders in this process.

    Raises:
        MissingSystemPackageError: a source's Debian package is not installed (names ``apt-get install``).
    """
    out = Path(out) if out is not None else default_demo_dir()
    items, skipped = _collect_items(sources, limit=limit, allow_missing=allow_missing)
    plan = [(row_id(i), item.source, item.path) for i, item in enumerate(items)]
    reusable = set() if force else _reusable_rows(out, plan)
    write_text_atomic(out / PLAN_FILE, json.dumps({"format": FORMAT_VERSION, "rows": plan}) + "\n")
    todo = [(rid, item) for (rid, _, _), item in zip(plan, items, strict=True) if rid not in reusable]
    results = {r.row_id: r for r in _render_all(out, todo, workers=workers)}
    results.update({rid: _describe_existing(out, rid) for rid in reusable})
    files = _write_pool(out, items, results)
    labels = load_labels()
    files.update(_write_imagenet_demo(out, items, results, labels))
    failed = [
        {"row_id": rid, "source": item.source, "path": item.path, "error": results[rid].error}
        for rid, item in zip((p[0] for p in plan), items, strict=True)
        if results[rid].error
    ]
    manifest = _manifest(items, results, labels, files, failed, sources=sources, limit=limit, skipped=skipped)
    write_text_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return DemoBuild(
        out=out, manifest_sha256=manifest["manifest_sha256"], pool_rows=len(items), rendered=len(todo),
        reused=len(reusable), failed=failed, imagenet_images=manifest["counts"]["imagenet_demo_images"],
        skipped_sources=skipped,
    )


def row_id(row: int) -> int:
    """LAION's global row id of row ``row`` of the (single) demo part."""
    return PART * ROWS_PER_PART + row


def pool_url(rid: int) -> str:
    return f"{POOL_URL_PREFIX}{rid}.png"


def _collect_items(
    names: Sequence[str] | None, *, limit: int | None, allow_missing: bool
) -> tuple[list[demo_sources.PoolItem], list[str]]:
    wanted = list(names) if names else list(demo_sources.SOURCES)
    for name in wanted:
        demo_sources.get_source(name)  # unknown names fail before any work
    items: list[demo_sources.PoolItem] = []
    skipped: list[str] = []
    for name in (n for n in demo_sources.SOURCES if n in wanted):
        try:
            listed = demo_sources.list_items(name)
        except MissingSystemPackageError as exc:
            if not allow_missing:
                raise
            logger.warning("skipping demo source %r: %s", name, exc)
            skipped.append(name)
            continue
        items.extend(listed[:limit] if limit is not None else listed)
    return items, skipped


def _reusable_rows(out: Path, plan: list[tuple[int, str, str]]) -> set[int]:
    """Row ids whose image an earlier build rendered for the same item (same source and path)."""
    try:
        previous = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
    before = {int(rid): (source, path) for rid, source, path in previous.get("rows", [])}
    images = out / POOL_IMAGES
    return {rid for rid, source, path in plan if before.get(rid) == (source, path) and (images / f"{rid}.png").is_file()}


def _describe_existing(out: Path, rid: int) -> RenderedImage:
    from PIL import Image

    path = out / POOL_IMAGES / f"{rid}.png"
    with Image.open(path) as image:
        width, height = image.size
    return RenderedImage(rid, width, height, sha256_file(path))


def _tasks(out: Path, todo: list[tuple[int, demo_sources.PoolItem]]) -> Iterable[RenderTask]:
    """Render tasks in plan order; GCompris archives are read once each, here, and passed as bytes."""
    archives: dict[str, dict[str, bytes]] = {}
    font = demo_sources.SYSTEM_ROOT / demo_sources.NOTO_EMOJI_FONT
    for rid, item in todo:
        target = out / POOL_IMAGES / f"{rid}.png"
        if item.container:
            if item.container not in archives:
                archives.clear()  # GCompris items are listed archive by archive: hold one at a time
                archives[item.container] = read_rcc(demo_sources.SYSTEM_ROOT / item.container)
            yield RenderTask(rid, item.render, target, data=archives[item.container][item.path])
        elif item.render == "emoji":
            yield RenderTask(rid, "emoji", target, code_point=int(item.path[2:], 16), font=font)
        elif item.source == "samples":
            yield RenderTask(rid, item.render, target, file=demo_sources.sample_photo_file(item.path))
        else:
            yield RenderTask(rid, item.render, target, file=demo_sources.SYSTEM_ROOT / item.path)


def _render_all(out: Path, todo: list, *, workers: int | None) -> list[RenderedImage]:
    if not todo:
        return []
    (out / POOL_IMAGES).mkdir(parents=True, exist_ok=True)
    workers = workers or min(4, os.cpu_count() or 1)
    progress = progress_bar(total=len(todo), desc="demo: rendering", unit="img")
    results: list[RenderedImage] = []
    try:
        if workers <= 1:
            mapped: Iterable[RenderedImage] = map(render_to_file, _tasks(out, todo))
            for result in mapped:
                results.append(result)
                progress.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for result in pool.map(render_to_file, _tasks(out, todo), chunksize=32):
                    results.append(result)
                    progress.update()
    finally:
        progress.close()
    for result in results:
        if result.error:
            logger.warning("demo: row %d not rendered: %s", result.row_id, result.error)
    return results


def _write_pool(out: Path, items: list, results: dict[int, RenderedImage]) -> dict[str, str]:
    """Write ``pool.parquet`` (LAION columns + provenance) and return {relative path: sha256} of the pool."""
    ids = [row_id(i) for i in range(len(items))]
    ok = [not results[rid].error for rid in ids]
    pairs = list(zip(ids, ok, strict=True))
    table = pa.table(
        {
            "SAMPLE_ID": pa.array(ids, pa.int64()),
            "URL": pa.array([pool_url(rid) for rid in ids], pa.string()),
            "TEXT": pa.array([item.caption for item in items], pa.string()),
            "HEIGHT": pa.array([results[rid].height if good else None for rid, good in pairs], pa.int32()),
            "WIDTH": pa.array([results[rid].width if good else None for rid, good in pairs], pa.int32()),
            "LICENSE": pa.array([item.license for item in items], pa.string()),
            "NSFW": pa.array(["UNLIKELY"] * len(items), pa.string()),
            "source": pa.array([item.source for item in items], pa.string()),
            "package": pa.array([item.package for item in items], pa.string()),
            "path": pa.array([item.path for item in items], pa.string()),
        }
    )
    with atomic_write(out / POOL_FILE) as handle:
        pq.write_table(table, handle, compression="zstd")
    files = {POOL_FILE: sha256_file(out / POOL_FILE)}
    files.update({f"{POOL_IMAGES}/{rid}.png": results[rid].sha256 for rid, good in pairs if good})
    return files


def _write_imagenet_demo(out: Path, items: list, results: dict, labels: pd.DataFrame) -> dict[str, str]:
    """Copy the photo-like labelled pool images into ``imagenet-demo/<wnid>/``; drop stale files there."""
    photo = {(r.source, r.path): r.wnid for r in labels.itertuples() if r.photo_like == 1}
    root = out / IMAGENET_DEMO
    files: dict[str, str] = {}
    for i, item in enumerate(items):
        wnid = photo.get((item.source, item.path))
        rid = row_id(i)
        if wnid is None or results[rid].error:
            continue
        relative = f"{IMAGENET_DEMO}/{wnid}/{item.source}_{Path(item.path).stem}_{rid}.png"
        target = out / relative
        if not (target.is_file() and sha256_file(target) == results[rid].sha256):
            write_bytes_atomic(target, (out / POOL_IMAGES / f"{rid}.png").read_bytes())
        files[relative] = results[rid].sha256
    if root.is_dir():
        for stale in (p for p in root.rglob("*.png") if str(p.relative_to(out)) not in files):
            stale.unlink()
        for folder in (p for p in root.iterdir() if p.is_dir() and not any(p.iterdir())):
            folder.rmdir()
    return files


def _manifest(items, results, labels, files, failed, *, sources, limit, skipped) -> dict:
    """The build record; ``manifest_sha256`` hashes everything in it except itself."""
    keys = {(item.source, item.path) for i, item in enumerate(items) if not results[row_id(i)].error}
    labelled = labels[[(s, p) in keys for s, p in zip(labels["source"], labels["path"], strict=True)]]
    photo = labelled[labelled["photo_like"] == 1]
    record = {
        "format": FORMAT_VERSION,
        "options": {"sources": list(sources) if sources else None, "limit": limit, "skipped_sources": skipped},
        "label_manifest_sha256": label_manifest_sha256(),
        "packages": package_versions(),
        "counts": {
            "pool_rows": len(items),
            "pool_images": len(keys),
            "failed": len(failed),
            "per_source": pd.Series([item.source for item in items]).value_counts().sort_index().to_dict(),
            "labelled": len(labelled),
            "labelled_classes": int(labelled["wnid"].nunique()),
            "photo_like_per_class": photo["wnid"].value_counts().sort_index().to_dict(),
            "imagenet_demo_images": len(photo),
        },
        "failed": failed,
        "files": dict(sorted(files.items())),
    }
    record["manifest_sha256"] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    return record
