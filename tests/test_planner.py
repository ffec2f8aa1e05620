"""The wave planner on timm's real registry, its footprints and budgets, and ``run --plan``."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from laionet_bench._io import slug
from laionet_bench.cli import main
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation import planner
from laionet_bench.evaluation.planner import Footprint, device_budgets, format_plan, plan_waves, stored_runs
from laionet_bench.models import expand_model_specs
from laionet_bench.models import footprints as fp

GIB = fp.GIB
#: Architectures whose table entry is checked against a fresh meta build: a CNN with BatchNorm buffers,
#: a ViT, a ConvNeXt, an EfficientNet, a windowed transformer (relative position buffers), an Inception.
CHECKED = ["resnet50", "vit_base_patch16_224", "convnext_tiny", "efficientnet_b0", "swin_tiny_patch4_window7_224",
           "inception_resnet_v2"]


@pytest.fixture(scope="module")
def all_specs() -> list[str]:
    return expand_model_specs(["all"])


@pytest.fixture
def table_only(monkeypatch):
    """Fail on any meta-device build: planning ``all`` must come from the shipped table alone."""
    def refuse(spec):
        raise AssertionError(f"{spec} was built on the meta device; regenerate scripts/build_footprints.py's table")

    monkeypatch.setattr(fp, "_measured", refuse)


def toy(spec: str, weights_gib: float, activation_gib: float = 0.0, preprocess: tuple = ((3, 224, 224), "bicubic", 0.9, "center")):
    return Footprint(spec=spec, preprocess=preprocess, data_config={}, weights_bytes=int(weights_gib * GIB),
                     activation_bytes=int(activation_gib * GIB))


def plan_toys(items: list[Footprint], *, budget_gib: float, devices=("cuda:0",)):
    table = {f.spec: f for f in items}
    return plan_waves(list(table), footprint=table.__getitem__, devices=list(devices),
                      budgets=dict.fromkeys(devices, int(budget_gib * GIB)))


# ------------------------------------------------------------------------------------------- the table
def test_table_covers_every_architecture_of_all(all_specs):
    missing = sorted({s.partition(".")[0] for s in all_specs} - set(fp.load_table()))
    assert not missing, f"regenerate the table (python scripts/build_footprints.py): {missing[:10]}"


@pytest.mark.parametrize("arch", CHECKED)
def test_table_matches_a_meta_build(arch):
    """A timm (or torch) upgrade that changes a count fails here: regenerate with scripts/build_footprints.py."""
    from importlib import resources

    header = json.loads(resources.files("laionet_bench").joinpath("_data", fp.TABLE_FILE).read_text("utf-8"))
    table = fp.load_table()[arch]
    measured = fp.measure_counts(header["measured_with"][arch])
    assert (measured.parameters, measured.buffers) == (table.parameters, table.buffers)
    assert measured.activation_ratio == pytest.approx(table.activation_ratio, rel=0.05)


def test_architectures_missing_from_the_table_are_counted_once(monkeypatch):
    monkeypatch.setattr(fp, "load_table", dict)
    fp._measured.cache_clear()
    first = fp.model_counts("resnet18.a1_in1k")
    assert first == fp.model_counts("resnet18.a1_in1k") and fp._measured.cache_info().hits == 1
    assert first.parameters == 11689512


def test_open_clip_specs_are_counted_on_the_meta_device():
    counts = fp.model_counts("openclip:ViT-B-32/openai")
    assert 150e6 < counts.parameters < 152e6  # image and text towers: the engine keeps both resident
    assert counts.buffers >= 1000 * 512  # the zero-shot head's 1000 text features
    assert counts.activation_ratio is not None


def test_estimate_formula():
    spec = "resnet50.a1_in1k"
    counts = fp.load_table()["resnet50"]
    size = math.prod(fp.resolve_data_config(spec)["input_size"])
    f32 = fp.estimate_footprint(spec, batch_size=8)
    assert f32.weights_bytes == 4 * (counts.parameters + counts.buffers)
    assert f32.image_bytes == int(4 * size * counts.activation_ratio * fp.ACTIVATION_MARGIN)
    assert (f32.batch_size, f32.activation_bytes) == (8, 8 * f32.image_bytes)
    bf16 = fp.estimate_footprint(spec, batch_size=8, dtype="bf16")
    assert bf16.activation_bytes == f32.activation_bytes + f32.weights_bytes // 2
    assert bf16.at_batch(2).activation_bytes == 2 * f32.image_bytes + f32.weights_bytes // 2
    assert fp.estimate_footprint(spec, batch_size=16) == f32.at_batch(16)


def test_probe_is_cuda_only(monkeypatch):
    import torch

    assert fp.measure_peak_bytes(lambda: None, device="cpu") is None
    state = {"allocated": 3 * GIB, "peak": 0}

    def forward():
        state["peak"] = state["allocated"] + 512 * 2**20

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: state.update(peak=state["allocated"]))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])
    measured = fp.measure_peak_bytes(forward, device="cuda:1")
    assert measured == 512 * 2**20
    assert toy("m", 1, 2).refined(measured).total_bytes == GIB + measured


# ----------------------------------------------------------------------------------- the real registry
@pytest.mark.parametrize("budget_gib", [24, 80])
def test_plan_of_all_fits_the_budget(all_specs, table_only, budget_gib):
    estimate = lambda spec: fp.estimate_footprint(spec, batch_size=64)  # noqa: E731
    plan = plan_waves(all_specs, footprint=estimate, devices=["cuda:0"], budgets={"cuda:0": budget_gib * GIB})
    placed = [spec for wave in plan.waves for spec in wave.models]
    assert sorted(placed) == sorted(all_specs) and len(placed) == len(set(placed)) == 1321
    assert all(w.memory_bytes <= budget_gib * GIB for w in plan.waves)
    assert all(plan.footprints[s].preprocess == w.preprocess for w in plan.waves for s in w.models)
    assert plan.groups == len({w.preprocess for w in plan.waves}) == 94
    assert plan.decodes_per_image == len(plan.waves) >= plan.groups  # one device: one decode per wave
    assert (len(plan.waves) > plan.groups) == (budget_gib == 24)  # at 80 GiB every group fits one wave
    assert all(plan.footprints[s].total_bytes <= budget_gib * GIB for s in plan.micro_batches)
    assert ("tf_efficientnet_l2.ns_jft_in1k" in plan.micro_batches) == (budget_gib == 24)  # 800 px, 480 M params


# ----------------------------------------------------------------------------------------- packing
@pytest.mark.parametrize(("sizes", "expected"), [
    ([2, 5, 4, 7, 1, 1], [["a", "d", "e"], ["b", "c", "f"]]),  # 7+2+1 | 5+4+1
    ([6, 5, 4, 3, 2], [["a", "c"], ["b", "d", "e"]]),  # 6+4 | 5+3+2
])
def test_first_fit_decreasing_packs_a_toy_set_optimally(sizes, expected):
    """20 GiB into 10 GiB waves: the optimum is two full waves, and FFD finds it."""
    plan = plan_toys([toy(n, w) for n, w in zip("abcdef"[:len(sizes)], sizes, strict=True)], budget_gib=10)
    assert [w.memory_bytes for w in plan.waves] == [10 * GIB, 10 * GIB]
    assert sorted(sorted(w.models) for w in plan.waves) == expected


def test_a_wave_holds_one_forward_pass_of_activations():
    plan = plan_toys([toy("a", 4, 4), toy("b", 4, 3)], budget_gib=12)
    assert [w.models for w in plan.waves] == [("a", "b")]
    assert plan.waves[0].memory_bytes == 12 * GIB


def test_groups_never_mix_and_waves_are_dealt_over_devices():
    other = ((3, 384, 384), "bicubic", 1.0, "center")
    items = [toy(f"m{i}", 6) for i in range(5)] + [toy("big", 3, preprocess=other)]
    plan = plan_toys(items, budget_gib=10, devices=("cuda:0", "cuda:1"))
    assert [(w.group, w.device, len(w.models)) for w in plan.waves] == [
        (0, "cuda:0", 1), (0, "cuda:1", 1), (0, "cuda:0", 1), (0, "cuda:1", 1), (0, "cuda:0", 1), (1, "cuda:0", 1)]
    assert plan.rounds == ((0, 1), (2, 3), (4,), (5,))
    assert plan.decodes_per_image == 4


def test_a_group_that_fits_one_device_is_spread_over_every_device():
    items = [toy("a", 4), toy("b", 3), toy("c", 2), toy("d", 1)]
    one = plan_toys(items, budget_gib=10)
    assert [w.models for w in one.waves] == [("a", "b", "c", "d")]
    two = plan_toys(items, budget_gib=10, devices=("cuda:0", "cuda:1"))
    assert [(w.models, w.device) for w in two.waves] == [(("a", "d"), "cuda:0"), (("b", "c"), "cuda:1")]
    assert two.decodes_per_image == one.decodes_per_image == 1  # one round: one decode feeds both
    table = {f.spec: f for f in items}
    unlimited = plan_waves(list(table), footprint=table.__getitem__, devices=["cuda:0", "cuda:1", "cuda:2"])
    assert [w.models for w in unlimited.waves] == [("a",), ("b",), ("c", "d")] and unlimited.decodes_per_image == 1


def test_a_model_over_the_budget_fails_up_front():
    with pytest.raises(ConfigError, match=r"huge needs 30\.00 GiB, budget 24\.00 GiB per device"):
        plan_toys([toy("small", 1), toy("huge", 20, 10)], budget_gib=24)


def test_a_model_too_big_at_the_batch_is_planned_at_a_smaller_micro_batch():
    wide = replace(toy("wide", 2, 16), batch_size=64, image_bytes=GIB // 4)  # 2 GiB + 64 × 0.25 GiB
    plan = plan_toys([wide, toy("small", 1, 1)], budget_gib=8)
    assert plan.micro_batches == {"wide": 16}  # 64 → 32 → 16: 2 + 4 GiB
    assert plan.footprints["wide"].total_bytes == 6 * GIB and plan.to_dict()["micro_batches"] == {"wide": 16}
    assert "wide (micro-batch 16)" in format_plan(plan)
    with pytest.raises(ConfigError, match=r"wide needs 2\.25 GiB, budget 2\.00 GiB .* at batch 1\)"):
        plan_toys([wide], budget_gib=2)


def test_no_budget_is_one_wave_per_group():
    table = {f.spec: f for f in [toy("a", 50), toy("b", 60)]}
    plan = plan_waves(list(table), footprint=table.__getitem__, devices=["cpu"])
    assert [w.models for w in plan.waves] == [("a", "b")] and plan.budgets == {}


# ------------------------------------------------------------------------------------------ budgets
@pytest.mark.parametrize("value", [0, -2, float("nan"), float("inf")])
def test_max_memory_must_be_positive(value):
    with pytest.raises(ConfigError, match="--max-memory must be a positive number of GiB"):
        device_budgets(["cpu"], max_memory=value)


def test_default_budgets(monkeypatch):
    import torch

    free = {0: 40 * GIB, 1: 20 * GIB}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free[device.index], 80 * GIB))
    monkeypatch.setattr(planner, "_available_ram", lambda: 16 * GIB)
    assert device_budgets(["cuda:0", "cuda:1"]) == {"cuda:0": int(0.9 * 40 * GIB), "cuda:1": int(0.9 * 20 * GIB)}
    assert device_budgets(["cpu"]) == {"cpu": 8 * GIB}
    assert device_budgets(["cpu:0", "cpu:1"]) == {"cpu:0": 4 * GIB, "cpu:1": 4 * GIB}  # one RAM, shared
    assert device_budgets(["cuda:0"], max_memory=1.5) == {"cuda:0": int(1.5 * GIB)}


def test_available_ram_is_read():
    assert planner._available_ram() > 0


# --------------------------------------------------------------------------------------- run --plan
def test_run_plan_json_of_all_offline(monkeypatch, capsys, all_specs, table_only):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["run", "--models", "all", "--plan", "--json", "--max-memory", "24"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {"waves", "decodes_per_image", "budgets", "weights_bytes"} <= set(plan)
    for wave in plan["waves"]:
        assert {"models", "memory_bytes", "preprocess", "device"} <= set(wave)
        assert isinstance(wave["memory_bytes"], int) and wave["memory_bytes"] <= 24 * GIB
    assert sorted(m for w in plan["waves"] for m in w["models"]) == sorted(all_specs)
    assert "stored" not in plan  # no store yet


def test_run_plan_shows_what_the_store_holds(tmp_path, capsys):
    spec = "resnet18.a1_in1k"
    store = tmp_path / "predictions"
    for dataset, runs in (("laionet", 2), ("imagenet", 1)):
        for run in range(runs):
            folder = store / dataset / slug(spec) / f"{run:016x}"
            folder.mkdir(parents=True)
            (folder / "run.json").write_text("{}")
    (store / "laionet" / slug(spec) / "torn").mkdir()  # no run.json: not a run
    args = ["run", "--models", spec, "resnet34.a1_in1k", "--plan", "--predictions", str(store), "--max-memory", "8"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{spec} [stored: imagenet 1 run, laionet 2 runs]" in text
    assert "the store holds prediction runs of 1 of these 2 models" in text
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == {spec: {"imagenet": 1, "laionet": 2}}
    assert stored_runs(tmp_path / "nowhere", [spec]) == {}


@pytest.mark.parametrize(("extra", "message"), [
    (["--max-memory", "0"], "--max-memory must be a positive number of GiB per device, got 0"),
    (["--max-memory", "0.001"], "needs"),
    (["--json"], "--json goes with --plan"),
])
def test_run_plan_bad_input_is_one_line(capsys, extra, message):
    argv = ["run", "--models", "resnet18.a1_in1k", *(["--plan"] if extra != ["--json"] else []), *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_format_plan_lists_groups_and_waves():
    plan = plan_toys([toy("a", 6), toy("b", 6)], budget_gib=10)
    text = format_plan(plan)
    assert "2 models in 1 preprocessing groups -> 2 waves" in text and "decoded 2 times per dataset" in text
    assert "group 1/1: 224px bicubic crop 0.9 center, 2 models, 2 waves" in text
    assert "wave 2  cuda:0  6.00 GiB  1 models: b" in text


def test_run_prompts_applies_to_every_zero_shot_spec(capsys):
    argv = ["run", "--models", "openclip:ViT-B-32/openai", "resnet18.a1_in1k", "--plan", "--json", "--max-memory", "8"]
    assert main([*argv, "--prompts", "openai"]) == 0
    planned = [m for w in json.loads(capsys.readouterr().out)["waves"] for m in w["models"]]
    assert sorted(planned) == ["openclip:ViT-B-32/openai@openai", "resnet18.a1_in1k"]
    assert main(argv) == 0  # default: what the spec says (the paper's synset texts)
    assert "openclip:ViT-B-32/openai" in [m for w in json.loads(capsys.readouterr().out)["waves"] for m in w["models"]]


def test_run_without_models_says_so_before_reading_anything(capsys, tmp_path):
    assert main(["run", "--images", str(tmp_path), "--index", str(tmp_path / "never-read.parquet")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run needs --models" in err[0]


def test_on_cpu_a_wave_counts_its_largest_models_build_copy():
    """Building holds the module and its loaded checkpoint together: on CPU that copy is in the budget."""
    items = [toy("a", 4, 1), toy("b", 3, 1), toy("c", 2, 1)]
    gpu = plan_toys(items, budget_gib=10)
    assert [(w.models, w.memory_bytes) for w in gpu.waves] == [(("a", "b", "c"), 10 * GIB)]
    cpu = plan_toys(items, budget_gib=10, devices=("cpu",))
    # a + b + a's copy would be 11 GiB: b waits; a + c + a's copy = 10, b + its copy = 6
    assert [(w.models, w.memory_bytes) for w in cpu.waves] == [(("a", "c"), 10 * GIB), (("b",), 6 * GIB)]
    with pytest.raises(ConfigError, match=r"a needs 8\.00 GiB, budget 7\.00 GiB .* a second copy of the weights in RAM"):
        plan_toys(items, budget_gib=7, devices=("cpu",))
