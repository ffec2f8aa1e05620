"""``run --plan --cluster``: the wall-time estimate of a plan on a cluster, from any machine (issue 22, item 1)."""

from __future__ import annotations

import json
import math

import pytest

from laionet_bench.cli import main
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation.estimate import (
    ClusterShape,
    ThroughputTable,
    estimate_plan,
    load_throughput,
    measure_decode_ms,
    parse_cluster,
)
from laionet_bench.evaluation.planner import Footprint, Plan, Wave

KEY = ((3, 224, 224), "bicubic", 0.875, "center")


def _plan(waves: list[tuple[tuple[str, ...], str, int]]) -> Plan:
    specs = [m for models, _, _ in waves for m in models]
    footprints = {s: Footprint(spec=s, preprocess=KEY, data_config={}, weights_bytes=4_000_000, activation_bytes=0)
                  for s in specs}
    return Plan(waves=tuple(Wave(models=m, memory_bytes=1, preprocess=KEY, device=d, group=g) for m, d, g in waves),
                budgets={}, groups=len({g for *_, g in waves}), footprints=footprints)


TABLE = ThroughputTable(name="test", rows={"a": {224: 100.0}, "b": {112: 200.0, 448: 10.0}, "c": {224: 50.0}})


def test_rounds_run_one_after_another_and_wait_for_the_slowest_wave_or_the_decode():
    # group 0: waves [a] on cuda:0 and [b] on cuda:1 at once (one round); group 1: [c] on cuda:0 alone
    plan = _plan([(("a.x",), "cuda:0", 0), (("b.y",), "cuda:1", 0), (("c.z",), "cuda:0", 1)])
    assert plan.rounds == ((0, 1), (2,))
    est = estimate_plan(plan, ClusterShape(1, 2), TABLE, images=1000, decode_ms=2.0, decode_cores=1)
    a, b, c = 1000 / 100, 1000 / (200 * (112 / 224) ** 2), 1000 / 50  # b: nearest size 112, scaled by pixels
    decode = 1000 * 2.0 / 1000  # 2 s per round on one core
    assert math.isclose(est.wall_hours * 3600, max(a, b, decode) + max(c, decode))
    assert math.isclose(est.ideal_hours * 3600, (a + b + c) / 2)
    assert math.isclose(est.gpu_busy, (a + b + c) / (2 * (max(a, b) + c)))
    assert est.per_device == pytest.approx({"cuda:0": (a + c) / 3600, "cuda:1": b / 3600})
    assert est.decode_bound_share == 0 and est.fitted == ()


def test_decoding_on_one_node_can_bind_a_round():
    plan = _plan([(("a.x",), "ray-gpu:0", 0), (("a.y",), "ray-gpu:3", 0)])
    est = estimate_plan(plan, ClusterShape(2, 2), TABLE, images=1000, decode_ms=50.0, decode_cores=2)
    assert math.isclose(est.wall_hours * 3600, 25.0) and est.decode_bound_share == 1.0  # 1000 × 50 ms / 2 cores
    assert [n["node"] for n in est.per_node] == [0, 1] and est.per_node[1]["decode_hours"] == 0  # the driver's node
    assert math.isclose(est.per_node[1]["busy_hours"] * 3600, 10.0)


def test_an_architecture_the_table_lacks_is_priced_from_parameters_and_said_so():
    params = {"a": 1e6, "b": 4e6}
    from laionet_bench.evaluation.estimate import _fit

    table = ThroughputTable(name="t", rows={"a": {224: 1000.0}, "b": {224: 250.0}},
                            _fit=_fit({"a": {224: 1000.0}, "b": {224: 250.0}}, params))
    speed, fitted = table.images_per_second("hf:org/new", 224, 2_000_000)
    assert fitted and math.isclose(speed, 500.0)  # throughput ∝ 1 / parameters on this table
    est = estimate_plan(_plan([(("hf:org/new",), "cuda:0", 0)]), ClusterShape(1, 1), table, images=10)
    assert est.fitted == ("hf:org/new",) and "hf:org/new" in est.format()


def test_the_shipped_table_prices_a_known_model_from_timms_own_number():
    table = load_throughput(gpu="rtx4090", scale=2.0)
    speed, fitted = table.images_per_second("resnet50.a1_in1k", 224, 25_557_032)
    assert not fitted and speed == pytest.approx(2 * 4302.84)  # timm's results: resnet50, 224 px, 4302.84 img/s


@pytest.mark.parametrize("text", ["8", "0x8", "8x0", "8*8", "1x65", "", "ax8"])
def test_a_bad_cluster_shape_is_one_line_naming_the_forms(text):
    with pytest.raises(ConfigError, match=r"--cluster .*expected NODESxGPUS .* e\.g\. 1x8 or 8x8"):
        parse_cluster(text)


def test_bad_tables_and_factors_name_the_value(tmp_path):
    with pytest.raises(ConfigError, match="--gpu 'h100': no shipped table .* rtx4090, rtx-pro-6000-maxq"):
        load_throughput(gpu="h100")
    with pytest.raises(ConfigError, match="--gpu-scale 0"):
        load_throughput(scale=0)
    bad = tmp_path / "t.csv"
    bad.write_text("model,infer_img_size,infer_samples_per_sec\nresnet50,224,fast\n")
    with pytest.raises(ConfigError, match=r"t\.csv, row 2: .* 'fast'"):
        load_throughput(path=bad)
    bad.write_text("model,speed\nresnet50,1\n")
    with pytest.raises(ConfigError, match="missing column.*infer_img_size"):
        load_throughput(path=bad)
    with pytest.raises(ConfigError, match="--throughput .*nope.csv: cannot read it"):
        load_throughput(path=tmp_path / "nope.csv")


def test_decode_cost_is_measured_here():
    assert 0 < measure_decode_ms(images=2) < 10_000


def test_run_plan_for_a_gpu_cluster_works_on_a_machine_without_gpus(capsys, tmp_path):
    table = tmp_path / "mine.csv"
    table.write_text("model,infer_img_size,infer_samples_per_sec,param_count\ntest_vit,160,1000,0.37\n"
                     "test_resnet,160,500,0.1\n")
    argv = ["run", "--models", "test_vit.r160_in1k", "test_resnet.r160_in1k", "--plan", "--cluster", "2x2",
            "--max-memory", "8", "--throughput", str(table), "--image-count", "1000", "--decode-ms", "0", "--json"]
    assert main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["devices"] == ["ray-gpu:0", "ray-gpu:1", "ray-gpu:2", "ray-gpu:3"]
    estimate = plan["estimate"]
    assert estimate["cluster"] == "2x2" and estimate["estimated_from_parameters"] == []
    assert math.isclose(estimate["ideal_hours"] * 3600, (1000 / 1000 + 1000 / 500) / 4)  # 3 GPU-seconds over 4 GPUs
    assert set(estimate) >= {"wall_hours", "gpu_busy", "decode_bound_share", "per_device", "per_node"}
    assert main(argv[:-1]) == 0 and "estimate (2x2" in capsys.readouterr().out


def test_a_cluster_plan_needs_a_memory_budget(capsys):
    assert main(["run", "--models", "test_vit.r160_in1k", "--plan", "--cluster", "1x8"]) == 1
    assert "--cluster 1x8 plans GPUs that are not here: give --max-memory" in capsys.readouterr().err
