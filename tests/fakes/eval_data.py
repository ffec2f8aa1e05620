"""Tiny on-disk evaluation fixtures: random-weight timm test models, image folders, shards, ImageNet layouts."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from laionet_bench.index.schema import write_index

from ..conftest import make_index_frame

WNIDS = ["n01440764", "n02110185", "n04579432"]  # tench, Siberian husky, whiskey jug


def image_bytes(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def tiny_weights(folder: Path, arch: str, seed: int = 0) -> Path:
    """A random-init state dict of timm ``arch`` saved with torch.save (deterministic per seed)."""
    import timm
    import torch

    torch.manual_seed(seed)
    path = folder / f"{arch}-{seed}.pth"
    torch.save(timm.create_model(arch, pretrained=False).state_dict(), path)
    return path


def tiny_index(folder: Path, per_class: int = 6) -> tuple[Path, pd.DataFrame]:
    frame = make_index_frame([w for w in WNIDS for _ in range(per_class)])
    path = folder / "index.parquet"
    write_index(frame, path)
    return path, frame


def row_id_folder(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, row_id in enumerate(frame["row_id"]):
        (folder / f"{row_id}.jpg").write_bytes(image_bytes(i, (40 + i, 36)))
    return folder


def shard_store(folder: Path, frame: pd.DataFrame, *, failed: int = 1) -> Path:
    """Shards written with webdataset's TarWriter + a manifest; the last ``failed`` rows failed to download."""
    import webdataset as wds

    from laionet_bench.images.manifest import MANIFEST_COLUMNS

    (folder / "shards").mkdir(parents=True, exist_ok=True)
    rows = []
    ok_ids = list(frame["row_id"])[: len(frame) - failed]
    with wds.TarWriter(str(folder / "shards" / "00000.tar")) as sink:
        for i, row_id in enumerate(ok_ids):
            key = f"{i:09d}"
            sink.write({"__key__": key, "jpg": image_bytes(i, (40 + i, 36)), "json": json.dumps({"row_id": int(row_id)}).encode()})
            rows.append({"row_id": int(row_id), "status": "ok", "shard": "shards/00000.tar", "key": key})
    for row_id in list(frame["row_id"])[len(ok_ids):]:
        rows.append({"row_id": int(row_id), "status": "http_error", "shard": None, "key": None})
    manifest = pd.DataFrame(rows).reindex(columns=list(MANIFEST_COLUMNS))
    manifest["sha256"] = manifest["row_id"].astype(str)
    manifest.to_parquet(folder / "manifest.parquet", index=False)
    return folder


def wnid_folders(folder: Path, wnids=WNIDS, per_class: int = 3) -> Path:
    for c, wnid in enumerate(wnids):
        (folder / wnid).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            (folder / wnid / f"ILSVRC2012_val_{c * 100 + j + 1:08d}.JPEG").write_bytes(image_bytes(1000 + c * 10 + j))
    return folder


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def engine_files(root: Path, specs, *, per_class: int, val_per_class: int) -> dict:
    """An index, its image folder (one file unreadable), ImageNet-val wnid folders and random weights per spec,
    as the plain strings the engine tests pass on (to a Ray worker too)."""
    index, frame = tiny_index(root, per_class=per_class)
    images = row_id_folder(root / "imgs", frame)
    (images / f"{frame['row_id'][1]}.jpg").write_bytes(b"not an image")
    imagenet = wnid_folders(root / "val", wnids=WNIDS, per_class=val_per_class)
    weights = {spec: str(tiny_weights(root, spec.split(".")[0], seed=i)) for i, spec in enumerate(specs)}
    return {"index": str(index), "images": str(images), "imagenet": str(imagenet), "weights": weights}
