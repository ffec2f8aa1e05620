"""Named model sets (``paper``), their Fig.-1 groups on the leaderboard, ``models paper``, timm ``hf-hub:`` ids."""

from __future__ import annotations

import shutil

import pytest

from laionet_bench.cli import main
from laionet_bench.errors import ModelSpecError
from laionet_bench.models.groups import GROUPS, group_of, is_zero_shot
from laionet_bench.models.registry import build_model, expand_model_specs, resolve_data_config
from laionet_bench.models.sets import MODEL_SETS, PAPER_MODELS

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def test_paper_expands_to_its_30_models_in_order_and_mixes_with_others():
    specs = expand_model_specs(["paper"])
    assert specs == list(MODEL_SETS["paper"]) and len(specs) == 30
    assert specs[0] == "hf:microsoft/resnet-18" and specs[-1] == "openclip:ViT-B-32/openai"
    assert sum(s.startswith("hf:") for s in specs) == 29
    mixed = expand_model_specs(["test_resnet", "paper"], exclude=["*beit*"])
    assert mixed[0] == "test_resnet.r160_in1k" and not any("beit" in s for s in mixed) and len(mixed) == 1 + 30 - 6


def test_paper_models_get_their_fig1_group_on_the_leaderboard():
    counts = {g: sum(group_of({}, m.spec) == g for m in PAPER_MODELS) for g in ("1k", "pt22k-ft1k", "pt22k", "zero-shot")}
    assert counts == {"1k": 11, "pt22k-ft1k": 14, "pt22k": 4, "zero-shot": 1}
    assert all(g in GROUPS for g in counts) and is_zero_shot("zero-shot") and not is_zero_shot("pt22k")
    assert group_of({"kind": "hf", "num_classes": 1000}, "hf:someone/else") == "in1k"  # not a paper model
    assert group_of({"pretrain_group": "in21k-ft"}, "hf:microsoft/resnet-50") == "in21k-ft"  # explicit still wins


def test_models_paper_lists_them_with_groups_offline(capsys):
    assert main(["models", "paper"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith(("hf:", "openclip:"))}
    assert lines["hf:microsoft/resnet-50"] == "1k" and lines["hf:facebook/convnext-large-224-22k"] == "pt22k"
    assert lines["hf:google/vit-base-patch16-384"] == "pt22k-ft1k" and lines["openclip:ViT-B-32/openai"] == "zero-shot"
    assert "29 model(s) without a data config here" in out and "HF_HUB_OFFLINE" in out  # nothing is cached here


def _cache_timm_repo(tmp_path, num_classes=1000) -> str:
    """A timm test model saved for the Hub (timm's own save_for_hf), laid out as huggingface_hub caches it."""
    import timm
    from timm.models import save_for_hf

    model = timm.create_model("test_resnet", pretrained=False, num_classes=num_classes)
    save_for_hf(model, tmp_path / "export")
    repo = tmp_path / "hf" / "hub" / "models--tiny-org--tiny-resnet"
    shutil.copytree(tmp_path / "export", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return "hf-hub:tiny-org/tiny-resnet"


def test_timm_hf_hub_ids_load_from_the_offline_cache(tmp_path):
    spec = _cache_timm_repo(tmp_path)
    assert expand_model_specs([spec]) == [spec]
    loaded = build_model(spec)
    assert loaded.label_map.name == "imagenet-1k" and loaded.model_info["kind"] == "timm"
    assert loaded.model_info["weights"] == "tiny-org/tiny-resnet" and loaded.model_info["revision"] == COMMIT
    assert resolve_data_config(spec)["input_size"] == loaded.data_config["input_size"]


def test_timm_hf_hub_ids_are_checked_and_fail_clearly_offline(tmp_path):
    with pytest.raises(ModelSpecError, match="hf-hub:nobody/nothing: it is not in the Hugging Face cache"):
        expand_model_specs(["hf-hub:nobody/nothing"])
    spec = _cache_timm_repo(tmp_path, num_classes=10)
    with pytest.raises(ModelSpecError, match="head has 10 classes"):
        expand_model_specs([spec])


def test_timm_hf_hub_model_runs_in_the_engine(tmp_path):
    from laionet_bench.datasets import create_dataset
    from laionet_bench.evaluation.engine import EngineOptions, run_models

    from .fakes.eval_data import row_id_folder, tiny_index

    spec = _cache_timm_repo(tmp_path)
    path, frame = tiny_index(tmp_path, per_class=2)
    dataset = create_dataset("laionet", index=path, images=row_id_folder(tmp_path / "imgs", frame))
    outcome = run_models([spec], dataset, store_root=tmp_path / "store",
                         options=EngineOptions(batch_size=4, workers=0))[spec]
    assert outcome.status == "ok", outcome.reason
    assert outcome.computed == len(dataset)
