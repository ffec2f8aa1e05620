"""Dataset readers: LAIONet from shards + manifest and from a row-id folder, ImageNet-val layouts, ImageNet-V2;
every image opened as RGB."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from laionet_bench.catalog import load_catalog
from laionet_bench.datasets import Dataset, Sample, create_dataset, imagenet, listing_frame
from laionet_bench.datasets.imagenet import HfdsDataset
from laionet_bench.errors import DatasetError, UnknownNameError
from laionet_bench.index.load import load_index

from .fakes.eval_data import (
    WNIDS,
    image_bytes,
    row_id_folder,
    shard_store,
    tar_bytes,
    tiny_index,
    wnid_folders,
)
from .fakes.images import image_bytes as mode_image_bytes


def test_laionet_from_row_id_folder_counts_missing_and_ocr(tmp_path):
    path, frame = tiny_index(tmp_path)
    folder = row_id_folder(tmp_path / "imgs", frame)
    (folder / f"{frame['row_id'][0]}.jpg").unlink()
    data = create_dataset("laionet", index=path, images=folder)
    n_ocr = int(frame["ocr_flag"].sum())
    assert data.n_excluded == n_ocr and data.n_failed == 1
    assert len(data) == len(frame) - n_ocr - 1
    assert data.failed_keys == (str(frame["row_id"][0]),)
    sample = next(data.samples())
    assert sample.wnid == frame.set_index("row_id").loc[int(sample.key), "wnid"]
    assert data.open(sample).mode == "RGB"
    assert data.identity()["images"]["layout"] == "folder"


def test_laionet_from_shards_and_manifest(tmp_path):
    path, frame = tiny_index(tmp_path)
    store = shard_store(tmp_path / "store", frame, failed=2)
    index = load_index(path)
    data = create_dataset("laionet:clip_0.82", index=index, images=store)
    evaluated = index.evaluation_rows()
    assert data.n_failed == sum(r in set(frame["row_id"][-2:]) for r in evaluated["row_id"])
    assert list(data.table["key"]) == [str(r) for r in evaluated["row_id"] if str(r) in set(data.table["key"])]
    position = list(frame["row_id"]).index(int(data.sample(3).key))
    assert data.read_bytes(data.sample(3)) == image_bytes(position, (40 + position, 36))  # bytes located in the tar
    assert data.identity()["images"]["manifest_sha256"]
    assert data.identity()["index"]["sha256"] == index.sha256


def test_an_unreadable_shard_says_to_download_it_again(tmp_path):
    path, frame = tiny_index(tmp_path)
    store = shard_store(tmp_path / "store", frame)
    (store / "shards" / "00000.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(DatasetError, match="00000.tar: unreadable tar shard .*re-download it"):
        create_dataset("laionet", index=path, images=store)


def test_limits_are_per_class_then_total(tmp_path):
    path, frame = tiny_index(tmp_path)
    folder = row_id_folder(tmp_path / "imgs", frame)
    data = create_dataset("laionet", index=path, images=folder, limit_per_class=2)
    assert data.table.groupby("wnid").size().max() == 2 and len(data) == 6
    assert len(create_dataset("laionet", index=path, images=folder, limit_per_class=2, limit=5)) == 5
    assert data.identity()["limits"] == {"limit_per_class": 2, "limit": None}


def test_imagenet_wnid_folders_and_class_restriction(tmp_path):
    root = wnid_folders(tmp_path / "val")
    data = create_dataset("imagenet-val", root=tmp_path, classes=WNIDS[:2])
    assert data.identity()["layout"] == "wnid-folders"
    assert set(data.table["wnid"]) == set(WNIDS[:2]) and len(data) == 6
    with pytest.raises(DatasetError, match="none of its 3 classes"):
        create_dataset("imagenet-val", root=root, classes=["n09999999"])


def _flat(tmp_path):
    folder = tmp_path / "ILSVRC2012_img_val"
    folder.mkdir()
    labels = ["n02110185", "n01440764", "n04579432", "n02110185"]
    for i in range(len(labels)):
        (folder / f"ILSVRC2012_val_{i + 1:08d}.JPEG").write_bytes(image_bytes(i))
    return folder, labels


def test_imagenet_flat_with_devkit_meta_mat(tmp_path):
    import numpy as np
    from scipy.io import savemat

    folder, labels = _flat(tmp_path)
    devkit = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    # devkit ids are NOT timm order: give each of our wnids an arbitrary id, plus a non-leaf synset
    ids = {"n04579432": 1, "n01440764": 2, "n02110185": 3}
    synsets = np.array([(i, w, 0) for w, i in ids.items()] + [(1001, "n00001740", 5)],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in labels))
    data = create_dataset("imagenet-val", root=tmp_path)
    assert data.identity()["layout"] == "flat+devkit"
    assert list(data.table["wnid"]) == labels


def test_imagenet_flat_with_loc_solution(tmp_path):
    folder, labels = _flat(tmp_path)
    with open(tmp_path / "LOC_val_solution.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ImageId", "PredictionString"])
        for i, w in enumerate(labels):
            writer.writerow([f"ILSVRC2012_val_{i + 1:08d}", f"{w} 1 2 30 40 {w} 5 6 7 8"])
    data = create_dataset("imagenet-val", root=folder)
    assert data.identity()["layout"] == "flat+LOC_val_solution.csv" and list(data.table["wnid"]) == labels


def test_imagenet_flat_without_ground_truth_says_what_is_needed(tmp_path):
    _flat(tmp_path)
    with pytest.raises(DatasetError, match="LOC_val_solution.csv"):
        create_dataset("imagenet-val", root=tmp_path)


def test_imagenet_wds_shards_use_cls_labels(tmp_path):
    (tmp_path / "wds").mkdir()
    members = {"s0.jpg": image_bytes(1), "s0.cls": b"0", "s1.jpg": image_bytes(2), "s1.cls": b"250"}
    (tmp_path / "wds" / "imagenet1k-validation-0000.tar").write_bytes(tar_bytes(members))
    (tmp_path / "wds" / "imagenet1k-train-0000.tar").write_bytes(tar_bytes({"t.jpg": image_bytes(3), "t.cls": b"1"}))
    data = create_dataset("imagenet-val", root=f"wds/{tmp_path / 'wds'}")
    wnids = load_catalog().wnids
    assert list(data.table["wnid"]) == [wnids[0], wnids[250]]
    assert data.read_bytes(data.sample(1)) == image_bytes(2)


@pytest.mark.parametrize("label", [b"-1", b"1000", b"tench"])
def test_imagenet_wds_label_outside_the_classes_names_the_member(tmp_path, label):
    (tmp_path / "wds").mkdir()
    members = {"s0.jpg": image_bytes(1), "s0.cls": b"0", "s1.jpg": image_bytes(2), "s1.cls": label}
    (tmp_path / "wds" / "imagenet1k-validation-0000.tar").write_bytes(tar_bytes(members))
    with pytest.raises(DatasetError, match=r"imagenet1k-validation-0000.tar: s1.cls: class index .* outside 0..999"):
        create_dataset("imagenet-val", root=f"wds/{tmp_path / 'wds'}")


@pytest.mark.parametrize("label", [-1, 1000])
def test_imagenet_hfds_label_outside_the_classes_names_the_row(monkeypatch, label):
    monkeypatch.setattr(imagenet, "_load_hf", lambda name, split: {"label": [0, 250, label]})
    with pytest.raises(DatasetError, match=rf"hfds/me/val \(split validation\): row 2: class index '{label}' is outside"):
        create_dataset("imagenet-val", root="hfds/me/val")
    monkeypatch.setattr(imagenet, "_load_hf", lambda name, split: {"label": [0, 250]})
    wnids = load_catalog().wnids
    assert list(create_dataset("imagenet-val", root="hfds/me/val").table["wnid"]) == [wnids[0], wnids[250]]


def test_unknown_layout_lists_accepted_ones(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetError, match="accepted ImageNet-val layouts"):
        create_dataset("imagenet-val", root=tmp_path)


def test_imagenet_v2_maps_folders_numerically(tmp_path):
    for name in ("9", "10", "2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.jpeg").write_bytes(image_bytes(int(name)))
    data = create_dataset("imagenet-v2:matched-frequency", root=tmp_path)
    wnids = load_catalog().wnids
    by_folder = dict(zip((k.split("/")[0] for k in data.table["key"]), data.table["wnid"], strict=True))
    assert by_folder == {"2": wnids[2], "9": wnids[9], "10": wnids[10]}
    assert list(data.table["key"].str.split("/").str[0]) == ["2", "9", "10"]
    with pytest.raises(UnknownNameError, match="matched-frequency"):
        create_dataset("imagenet-v2:matched", root=tmp_path)


def test_unknown_dataset_kind_suggests():
    with pytest.raises(UnknownNameError, match="imagenet-val"):
        create_dataset("imagenet-vall")


def _opened(tmp_path, data: bytes) -> Image.Image:
    (tmp_path / "image").write_bytes(data)
    dataset = Dataset(name="t", table=listing_frame(["a"], [WNIDS[0]], [str(tmp_path / "image")]), source={})
    return dataset.open(dataset.sample(0))


@pytest.mark.parametrize("transparency", [0, bytes([0, 128] + [255] * 14)], ids=["index", "alpha-bytes"])
def test_palette_with_transparency_opens_flattened_on_white(tmp_path, transparency):
    data = mode_image_bytes("P", "PNG", transparency=transparency)
    source = Image.open(io.BytesIO(data))
    assert source.mode == "P" and "transparency" in source.info
    palette = np.asarray(source.getpalette(), dtype=np.uint8).reshape(-1, 3)
    image = _opened(tmp_path, data)  # no Pillow warning (filterwarnings = error): it goes through RGBA
    assert image.mode == "RGB"
    indices = np.asarray(source)
    alpha = np.full(256, 255.0)
    alpha[:1] = 0 if transparency == 0 else 255
    if isinstance(transparency, bytes):
        alpha[:len(transparency)] = list(transparency)
    a = alpha[indices][..., None] / 255
    expected = palette[indices] * a + 255 * (1 - a)  # alpha-composited onto white
    assert (a == 0).any() and (a == 1).any()
    np.testing.assert_allclose(np.asarray(image), expected, atol=1)


def test_grey_images_open_as_rgb_with_equal_channels(tmp_path):
    data = mode_image_bytes("L", "PNG")
    pixels = np.asarray(_opened(tmp_path, data))
    grey = np.asarray(Image.open(io.BytesIO(data)))
    assert pixels.shape == (*grey.shape, 3) and all(np.array_equal(pixels[..., c], grey) for c in range(3))


def test_hfds_images_are_converted_as_files_are(tmp_path):
    data = mode_image_bytes("P", "PNG", transparency=bytes([0, 128] + [255] * 14))
    dataset = HfdsDataset(name="imagenet-val", table=listing_frame(["0"], [WNIDS[0]], ["hfds/x"], offsets=[0]),
                          source={"hfds": "x", "split": "validation"})
    dataset._cache = [{"image": Image.open(io.BytesIO(data))}]
    image = dataset.open(Sample("0", WNIDS[0], "hfds/x", offset=0))
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), np.asarray(_opened(tmp_path, data)))
