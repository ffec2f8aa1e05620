"""ImageNet-val and ImageNet-V2 readers, every layout labelled by wnid.

ImageNet-val layouts accepted at ``root`` (checked in this order):

1. wnid class folders: ``root/n01440764/*.JPEG`` (also under ``root/val/``);
2. the flat ``ILSVRC2012_img_val`` folder (``ILSVRC2012_val_00000001.JPEG`` ...; at ``root`` or
   ``root/ILSVRC2012_img_val`` or Kaggle's ``root/ILSVRC/Data/CLS-LOC/val``) plus ground truth found
   beside it: ``LOC_val_solution.csv``, or the devkit's ``ILSVRC2012_validation_ground_truth.txt`` +
   ``meta.mat`` (in ``ILSVRC2012_devkit_t12/data/`` or next to the images);
3. ``wds/PATH``: webdataset tar shards (timm's ``wds/`` convention, e.g. a local copy of
   ``timm/imagenet-1k-wds``) whose samples hold ``<key>.cls`` (timm class index) + ``<key>.<image ext>``;
4. ``hfds/NAME``: a Hugging Face dataset read with ``datasets`` (timm's ``hfds/`` convention).

ImageNet-V2 (``imagenet-v2:matched-frequency|threshold-0.7|top-images``): folders ``0`` … ``999``
holding the images of that class index, mapped to wnids *numerically* — sorting the names as strings
would put ``10`` before ``2``, the bug that mislabelled early ImageNet-V2 loaders.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..catalog import load_catalog
from ..errors import DatasetError, MissingDependencyError, UnknownNameError
from ..images.shards import iter_tar_index
from .base import IMAGE_EXTENSIONS, Dataset, apply_limits, listing_frame, listing_sha256, restrict_classes

__all__ = ["IMAGENET_V2_VARIANTS", "labels_from_devkit", "labels_from_loc_csv", "load_imagenet_v2", "load_imagenet_val"]

IMAGENET_V2_VARIANTS = ("matched-frequency", "threshold-0.7", "top-images")
_WNID = re.compile(r"^n\d{8}$")
_VAL_FILE = re.compile(r"^ILSVRC2012_val_(\d{8})$")
LAYOUTS_HELP = (
    "accepted ImageNet-val layouts: wnid class folders (root/n01440764/*.JPEG); the flat ILSVRC2012_img_val "
    "folder with LOC_val_solution.csv or the devkit (ILSVRC2012_validation_ground_truth.txt + meta.mat) beside it; "
    "wds/PATH (webdataset tars with .cls); hfds/NAME (Hugging Face dataset)"
)


def _images_in(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        found = [e for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS and e.is_file()]
    return sorted(found, key=lambda e: e.name)


def _subdirs(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir())


def _from_class_folders(root: Path, wnid_of: dict[str, str]) -> tuple[list, list, list, list]:
    keys, wnids, paths, sizes = [], [], [], []
    for folder, wnid in wnid_of.items():
        for entry in _images_in(root / folder):
            keys.append(f"{folder}/{os.path.splitext(entry.name)[0]}")
            wnids.append(wnid)
            paths.append(entry.path)
            sizes.append(entry.stat().st_size)
    return keys, wnids, paths, sizes


def _ground_truth_dirs(images: Path, root: Path) -> list[Path]:
    bases = list(dict.fromkeys([images, root, images.parent, root.parent]))
    return [d for b in bases for d in (b, b / "ILSVRC2012_devkit_t12" / "data", b / "data")]


def labels_from_loc_csv(path: Path) -> dict[str, str]:
    """Val file stem → wnid from Kaggle's ``LOC_val_solution.csv`` (also read by ``import-results --devkit``)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: expected columns ImageId,PredictionString (Kaggle LOC_val_solution.csv)")
        return {row["ImageId"]: row["PredictionString"].split()[0] for row in reader}


def labels_from_devkit(truth: Path, meta: Path) -> dict[str, str]:
    """Val file stem → wnid from the devkit's ground truth and the ``meta.mat`` that maps its class ids."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise MissingDependencyError("scipy", "devkit", f"reading the devkit's {meta.name}") from None

    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    id_to_wnid = {int(i): str(w) for i, w in zip(synsets["ILSVRC2012_ID"], synsets["WNID"], strict=True) if 1 <= int(i) <= 1000}
    labels = {}
    for number, line in enumerate(truth.read_text("utf-8").split(), start=1):
        if int(line) not in id_to_wnid:
            raise DatasetError(f"{truth}: line {number} has class id {line}, which {meta} does not define")
        labels[f"ILSVRC2012_val_{number:08d}"] = id_to_wnid[int(line)]
    return labels


def _flat_labels(images: Path, root: Path) -> tuple[dict[str, str], str]:
    for folder in _ground_truth_dirs(images, root):
        if (folder / "LOC_val_solution.csv").is_file():
            return labels_from_loc_csv(folder / "LOC_val_solution.csv"), "flat+LOC_val_solution.csv"
        truth = folder / "ILSVRC2012_validation_ground_truth.txt"
        if truth.is_file():
            meta = next((d / "meta.mat" for d in (folder, *_ground_truth_dirs(images, root)) if (d / "meta.mat").is_file()), None)
            if meta is None:
                raise DatasetError(f"{truth} found but no meta.mat beside it: the devkit's meta.mat maps its class ids to wnids")
            return labels_from_devkit(truth, meta), "flat+devkit"
    raise DatasetError(f"{images}: flat ILSVRC2012_img_val folder without ground truth; put LOC_val_solution.csv, "
                       "or ILSVRC2012_validation_ground_truth.txt + meta.mat, next to it")


def _from_flat(images: Path, root: Path) -> tuple[tuple[list, list, list, list], str]:
    labels, layout = _flat_labels(images, root)
    keys, wnids, paths, sizes = [], [], [], []
    for entry in _images_in(images):
        stem = os.path.splitext(entry.name)[0]
        if stem not in labels:
            raise DatasetError(f"{entry.path}: no ground-truth label for {stem}; is the ground truth for this folder?")
        keys.append(stem)
        wnids.append(labels[stem])
        paths.append(entry.path)
        sizes.append(entry.stat().st_size)
    return (keys, wnids, paths, sizes), layout


def _detect(root: Path) -> tuple[tuple[list, list, list, list], str]:
    if not root.is_dir():
        raise DatasetError(f"{root}: no such ImageNet-val folder; {LAYOUTS_HELP}")
    for candidate in (root, root / "val", root / "ILSVRC2012_img_val", root / "ILSVRC" / "Data" / "CLS-LOC" / "val"):
        if not candidate.is_dir():
            continue
        folders = [d for d in _subdirs(candidate) if _WNID.match(d)]
        if folders:
            return _from_class_folders(candidate, {f: f for f in folders}), "wnid-folders"
        with os.scandir(candidate) as entries:
            flat = any(_VAL_FILE.match(os.path.splitext(e.name)[0]) for e in entries)
        if flat:
            return _from_flat(candidate, root)
    if _subdirs(root) and all(d.isdigit() for d in _subdirs(root)):
        raise DatasetError(f"{root}: class-index folders (0..999) look like ImageNet-V2; use imagenet-v2:<variant>")
    raise DatasetError(f"{root}: unknown layout; {LAYOUTS_HELP}")


def _check_wnids(wnids: Iterable[str], where: str) -> None:
    catalog = load_catalog()
    unknown = sorted({w for w in wnids if w not in catalog})
    if unknown:
        raise DatasetError(f"{where}: {len(unknown)} label(s) outside ImageNet-1k ({', '.join(unknown[:3])}); "
                           "is this an ImageNet-1k validation set?")


def _finish(name: str, columns: tuple[list, list, list, list], source: dict, *, classes, limit_per_class, limit) -> Dataset:
    keys, wnids, paths, sizes = columns
    if not keys:
        raise DatasetError(f"{source.get('root')}: no images found; {LAYOUTS_HELP}")
    _check_wnids(wnids, str(source.get("root")))
    table = listing_frame(keys, wnids, paths, sizes=sizes)
    table = restrict_classes(table, classes, name)
    source = {**source, "listing_sha256": listing_sha256(table)}
    limited = apply_limits(table, limit_per_class=limit_per_class, limit=limit)
    return Dataset(name=name, table=limited, source=source, n_listed=len(table),
                   limits={"limit_per_class": limit_per_class, "limit": limit})


def _wnid_of_class(label: object, wnids: list[str], where: str) -> str:
    """The wnid of a timm class index (a ``.cls`` text, an hfds label).

    Checked, because Python's indexing would label ``-1`` (an unlabelled sample) as the last class.
    """
    text = str(label).strip()
    if not text.isdigit() or int(text) >= len(wnids):
        raise DatasetError(f"{where}: class index {text[:20]!r} is outside 0..{len(wnids) - 1} (timm's ImageNet-1k "
                           "order); is this labelled ImageNet-1k validation data? (unlabelled samples carry -1)")
    return wnids[int(text)]


def _from_wds(root: Path) -> tuple[list, list, list, list, list]:
    shards = sorted(root.glob("*.tar")) if root.is_dir() else []
    if not shards:
        raise DatasetError(f"wds/{root}: no *.tar shards there; {LAYOUTS_HELP}")
    if any("validation" in s.name for s in shards):
        shards = [s for s in shards if "validation" in s.name]
    wnid_list = load_catalog().wnids
    keys, wnids, paths, offsets, sizes = [], [], [], [], []
    for shard in shards:
        classes, images = {}, {}
        with open(shard, "rb") as handle:
            for member in iter_tar_index(shard):
                stem, _, ext = member.name.rpartition(".")
                if ext == "cls":
                    classes[stem] = member.read(handle).decode("utf-8", "replace")
                elif "." + ext.lower() in IMAGE_EXTENSIONS:
                    images[stem] = (member.offset, member.size)
        for stem, (offset, size) in images.items():
            if stem not in classes:
                raise DatasetError(f"{shard}: sample {stem} has no .cls label")
            keys.append(stem)
            wnids.append(_wnid_of_class(classes[stem], wnid_list, f"{shard}: {stem}.cls"))
            paths.append(str(shard))
            offsets.append(offset)
            sizes.append(size)
    return keys, wnids, paths, offsets, sizes


class HfdsDataset(Dataset):
    """ImageNet-val held in a Hugging Face ``datasets`` dataset; ``offset`` is the row number."""

    def open(self, sample):
        from ..images.decode import to_rgb

        return to_rgb(self._hf()[sample.offset]["image"])

    def _hf(self):
        if getattr(self, "_cache", None) is None:
            self._cache = _load_hf(self.source["hfds"], self.source["split"])
        return self._cache


def _load_hf(name: str, split: str):
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "hfds", "reading ImageNet-val from hfds/") from None
    return datasets.load_dataset(name, split=split)


def load_imagenet_val(*, root: str | Path, classes=None, limit_per_class=None, limit=None, split: str = "validation") -> Dataset:
    """ImageNet-val from ``root`` in any accepted layout (module docstring), restricted to ``classes``."""
    text = str(root)
    options = {"classes": classes, "limit_per_class": limit_per_class, "limit": limit}
    if text.startswith("hfds/"):
        hf = _load_hf(text[len("hfds/"):], split)
        wnid_list = load_catalog().wnids
        labels = [_wnid_of_class(label, wnid_list, f"{text} (split {split}): row {row}")
                  for row, label in enumerate(hf["label"])]
        table = restrict_classes(listing_frame([str(i) for i in range(len(labels))], labels, [text] * len(labels),
                                               offsets=list(range(len(labels)))), classes, "imagenet-val")
        source = {"layout": "hfds", "hfds": text[len("hfds/"):], "split": split, "listing_sha256": listing_sha256(table)}
        return HfdsDataset(name="imagenet-val", table=apply_limits(table, limit_per_class=limit_per_class, limit=limit),
                           source=source, n_listed=len(table), limits={"limit_per_class": limit_per_class, "limit": limit})
    if text.startswith("wds/"):
        path = Path(text[len("wds/"):])
        keys, wnids, paths, offsets, sizes = _from_wds(path)
        table = listing_frame(keys, wnids, paths, offsets, sizes)
        table = restrict_classes(table, classes, "imagenet-val")
        source = {"layout": "wds", "root": str(path.resolve()), "listing_sha256": listing_sha256(table)}
        return Dataset(name="imagenet-val", table=apply_limits(table, limit_per_class=limit_per_class, limit=limit),
                       source=source, n_listed=len(table), limits={"limit_per_class": limit_per_class, "limit": limit})
    path = Path(root)
    columns, layout = _detect(path)
    return _finish("imagenet-val", columns, {"layout": layout, "root": str(path.resolve())}, **options)


def load_imagenet_v2(variant: str | None, *, root: str | Path, classes=None, limit_per_class=None, limit=None) -> Dataset:
    """ImageNet-V2 from class-index folders, mapped to wnids by ``int(folder name)``."""
    if variant is not None and variant not in IMAGENET_V2_VARIANTS:
        raise UnknownNameError("ImageNet-V2 variant", variant, [v for v in IMAGENET_V2_VARIANTS if v[0] == variant[:1]]
                               or list(IMAGENET_V2_VARIANTS))
    path = Path(root)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such ImageNet-V2 folder (expected class-index folders 0..999)")
    folders = _subdirs(path)
    bad = [f for f in folders if not f.isdigit() or int(f) >= 1000]
    if not folders or bad:
        raise DatasetError(f"{path}: ImageNet-V2 needs class-index folders 0..999; found {bad[:3] or 'none'}")
    wnid_list = load_catalog().wnids
    ordered = sorted(folders, key=int)
    columns = _from_class_folders(path, {f: wnid_list[int(f)] for f in ordered})
    name = f"imagenet-v2:{variant}" if variant else "imagenet-v2"
    return _finish(name, columns, {"layout": "class-index-folders", "root": str(path.resolve()), "variant": variant},
                   classes=classes, limit_per_class=limit_per_class, limit=limit)
