"""``laionet-bench similarity`` wiring, with a stand-in for ``laionet_bench.datasets`` (the real readers'
end-to-end test is added once that module is merged)."""

from __future__ import annotations

import json
import sys
import types

import pytest

from laionet_bench.cli import main

from .fakes.datasets import TINY_CLIP, make_tiny_clip
from .test_similarity_pipeline import build_datasets


@pytest.fixture
def fake_datasets_module(monkeypatch):
    calls = []
    built = build_datasets()

    def create_dataset(spec, **kwargs):
        calls.append((spec, kwargs))
        return built[spec]

    module = types.ModuleType("laionet_bench.datasets")
    module.create_dataset = create_dataset
    monkeypatch.setitem(sys.modules, "laionet_bench.datasets", module)
    return calls


def test_cli_prints_the_summary_and_writes_the_files(tmp_path, capsys, fake_datasets_module):
    weights, _ = make_tiny_clip(tmp_path)
    status = main(["similarity", "--datasets", "laionet", "imagenet-val", "--encoder", f"openclip:{TINY_CLIP}",
                   "--weights", str(weights), "--per-class", "6", "--device", "cpu", "--workers", "0",
                   "--out", str(tmp_path / "res"), "--imagenet", "/data/imagenet", "--no-plots"])
    out = capsys.readouterr().out
    assert status == 0
    assert [c[0] for c in fake_datasets_module] == ["laionet", "imagenet-val"]
    assert fake_datasets_module[0][1] == {"imagenet": "/data/imagenet", "images": None, "index": None}
    assert "laionet vs imagenet-val: 12 classes with >= 7 pairs in both" in out and "significantly lower" in out
    summary = json.loads((tmp_path / "res" / "similarity" / f"openclip_{TINY_CLIP}" / "summary.json").read_text())
    assert summary["datasets"]["laionet"]["n_images"] == 72 and summary["comparison"]["n_classes_tested"] == 12
    assert set(summary["comparison"]) >= {"a", "b", "n_classes_tested", "frac_lower", "frac_higher", "mean_delta"}


def test_cli_reports_a_bad_encoder_in_one_line(tmp_path, capsys, fake_datasets_module):
    status = main(["similarity", "--datasets", "laionet", "--encoder", "clip:ViT-B-32", "--out", str(tmp_path)])
    assert status == 1
    assert capsys.readouterr().err.startswith("error: encoder 'clip:ViT-B-32' is not 'openclip:ARCH/TAG'")
