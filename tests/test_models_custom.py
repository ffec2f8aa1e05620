"""A user's own torch.nn.Module: its transform and class list, the same engine and store, a state-dict keyed run."""

from __future__ import annotations

import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.datasets import create_dataset
from laionet_bench.errors import ModelSpecError
from laionet_bench.evaluation.engine import EngineOptions, run_models
from laionet_bench.evaluation.evaluator import evaluate
from laionet_bench.evaluation.store import read_predictions
from laionet_bench.models.custom import CustomModel, register_custom_model, transform_data_config
from laionet_bench.models.registry import expand_model_specs, resolve_data_config

from .fakes.eval_data import WNIDS, row_id_folder, tiny_index

CLASSES = [*reversed(WNIDS), "n01443537", "n01484850", "n01491361"]  # logit i ↔ CLASSES[i], not catalogue order
CPU = EngineOptions(device="cpu", batch_size=4, workers=0)


def _module(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, len(CLASSES)))


def _transform():
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(36, interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(32), transforms.ToTensor(),
                               transforms.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])])


@pytest.fixture
def laionet(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=3)
    return create_dataset("laionet", index=path, images=row_id_folder(tmp_path / "imgs", frame))


def test_custom_module_runs_in_the_engine_as_its_own_transform_would(tmp_path, laionet):
    import torch

    module, transform = _module(), _transform()
    model = CustomModel(module, classes=CLASSES, transform=transform, name="my net")
    outcomes = run_models([model], laionet, store_root=tmp_path / "store", options=CPU)
    (spec, outcome), = outcomes.items()
    assert spec.startswith("custom:my_net@") and outcome.status == "ok", outcome.reason
    assert outcome.model_info["kind"] == "custom" and outcome.model_info["label_map"] == "custom"
    records = read_predictions(outcome.store).set_index("key")
    assert len(records) == len(laionet)
    for sample in laionet.samples():
        with torch.no_grad():
            probs = module(transform(laionet.open(sample))[None])[0].softmax(0)
        expected = [CLASSES[j] for j in probs.argsort(descending=True)[:5].tolist()]
        row = records.loc[sample.key]
        assert list(row["top5"]) == expected
        assert row["scores"] == pytest.approx(sorted(probs.tolist(), reverse=True)[:5], abs=1e-5)
        assert row["true_rank"] == int((probs > probs[CLASSES.index(row["wnid"])]).sum())
    assert module.training  # the caller's module is left as it was (the engine runs a copy in eval mode)


def test_run_key_follows_the_state_dict(tmp_path, laionet):
    import torch

    first = register_custom_model(_module(), classes=CLASSES, transform=_transform())
    assert register_custom_model(_module(), classes=CLASSES, transform=_transform()) == first  # same weights
    changed = _module()
    with torch.no_grad():
        changed[3].bias[0] += 1.0
    second = register_custom_model(changed, classes=CLASSES, transform=_transform())
    assert second != first and second.partition("@")[0] == first.partition("@")[0]
    runs = run_models([first, second], laionet, store_root=tmp_path / "store", options=CPU)
    assert runs[first].run_key != runs[second].run_key
    again = run_models([CustomModel(_module(), classes=CLASSES, transform=_transform())], laionet,
                       store_root=tmp_path / "store", options=CPU)
    assert again[first].computed == 0 and again[first].run_key == runs[first].run_key  # resumed from the store


def test_evaluate_takes_a_module_beside_named_models(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=3)
    images = row_id_folder(tmp_path / "imgs", frame)
    report = evaluate([CustomModel(_module(), classes=CLASSES, transform=_transform(), name="mine")], engine=CPU,
                      index=path, images=images, out=tmp_path / "out")
    assert report.ok and len(report.results) == 1
    result = report.results[0]
    assert result.model.startswith("custom:mine@") and result.model_info["weights_sha256"]
    assert 0 <= result.datasets["laionet"].top1.value <= 1


def test_a_bare_module_gets_the_catalogue_head_and_timm_defaults():
    import torch

    spec = register_custom_model(torch.nn.Linear(3, 1000))
    config = resolve_data_config(spec)
    assert config["input_size"] == [3, 224, 224] and config["crop_pct"] == 0.875
    assert expand_model_specs([spec]) == [spec]
    from laionet_bench.models.registry import build_model

    assert build_model(spec).label_map.wnids == tuple(load_catalog().wnids)


def test_transforms_translate_or_are_refused_by_name():
    from torchvision import transforms

    squash = transforms.Compose([transforms.Resize((40, 40)), transforms.CenterCrop(32), transforms.ToTensor()])
    config = transform_data_config(squash)
    assert config["crop_mode"] == "squash" and config["crop_pct"] == pytest.approx(0.8)
    assert config["interpolation"] == "bilinear" and config["mean"] == [0, 0, 0] and config["std"] == [1, 1, 1]
    with pytest.raises(ModelSpecError, match="RandomHorizontalFlip"):
        transform_data_config(transforms.Compose([transforms.Resize(36), transforms.RandomHorizontalFlip()]))
    with pytest.raises(ModelSpecError, match="without a square CenterCrop"):
        transform_data_config(transforms.Compose([transforms.Resize(36), transforms.ToTensor()]))


def test_bad_class_lists_and_unknown_specs_are_refused():
    with pytest.raises(ModelSpecError, match="not ImageNet-1k wnids"):
        register_custom_model(_module(), classes=["n99999999", *CLASSES[1:]], transform=_transform())
    with pytest.raises(ModelSpecError, match="twice"):
        register_custom_model(_module(), classes=[CLASSES[0], *CLASSES[:-1]], transform=_transform())
    with pytest.raises(ModelSpecError, match="no custom model with this spec"):
        expand_model_specs(["custom:other@0123456789ab"])
    with pytest.raises(ModelSpecError, match="torch.nn.Module"):
        register_custom_model(object(), classes=CLASSES)
