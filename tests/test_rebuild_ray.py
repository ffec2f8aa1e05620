import os
from pathlib import Path

import pandas as pd
import pytest

from laionet_bench.rebuild import RebuildConfig, run_pipeline

from .fakes.laion import make_tiny_openclip, write_laion_part

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'laionet-bench[ray]'")

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = ["a tench in a net", "a tench in a net", "goldfish bowl", "a sea lion", "lion at the zoo",
            "my Labrador retriever", None, "nothing", "king penguin colony", "tench, goldfish"]


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.mark.slow  # starting Ray and its actor takes ~40 s on 2 cores
def test_ray_executor_gives_the_local_executor_index(local_ray, tmp_path):
    for i in range(3):
        write_laion_part(tmp_path / "laion" / f"part-0000{i}.parquet", CAPTIONS[i:] + CAPTIONS[:i])
    encoder = make_tiny_openclip(tmp_path / "tiny")
    outputs = {}
    for executor in ("local", "ray"):
        config = RebuildConfig(parts=[str(tmp_path / "laion" / "*.parquet")], work_dir=str(tmp_path / executor),
                               encoder=encoder, threshold=-1.0, top_per_class=2, variant="tiny")
        report = run_pipeline(config, executor=executor)
        outputs[executor] = {name: pd.read_parquet(tmp_path / executor / "dataset" / "data" / f"{name}.parquet")
                             for name in report.variants}
    assert outputs["local"].keys() == outputs["ray"].keys() == {"tiny", "tiny_top2"}
    assert len(outputs["local"]["tiny"]) == 3 * 6
    for name, frame in outputs["local"].items():
        pd.testing.assert_frame_equal(frame, outputs["ray"][name])
