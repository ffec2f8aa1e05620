"""The demo's explain stand-ins are in the real formats the experiments read."""

from __future__ import annotations

import json

from laionet_bench.demo.explain import write_demo_captions
from laionet_bench.demo.labels import load_labels
from laionet_bench.explain.captions import CAPTION_FIELDS, read_imagenet_captions


def test_demo_captions_are_imagenet_captions_json(tmp_path):
    path = write_demo_captions(tmp_path / "imagenet_captions.json")
    entries = json.loads(path.read_text())
    labels = load_labels()
    assert len(entries) == len(labels) and all(set(e) == set(CAPTION_FIELDS) for e in entries)
    assert all(e["filename"].startswith(e["wnid"] + "_") and e["filename"].endswith(".JPEG") for e in entries)
    table = read_imagenet_captions(path)
    assert len(table) == len(labels)  # file names are unique: nothing deduplicated away
    assert table["caption"].tolist() == [f"{c} " for c in labels["caption"]]  # title + [] + [""]
    assert table["wnid"].tolist() == labels["wnid"].tolist()
