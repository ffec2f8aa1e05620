"""§4.4's caption embeddings on the rebuild's Ray executor: one task per part, the same files as locally."""

from __future__ import annotations

import json

import numpy as np
import pytest

from laionet_bench.explain.text_search import EmbedPartsConfig, embed_parts
from laionet_bench.rebuild.parts import resolve_parts

from .fakes.laion import write_laion_part
from .local_ray import hermetic_ray
from .test_explain_captions import HashEncoder

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'laionet-bench[ray]'")

def test_ray_tasks_write_what_the_local_executor_writes(tmp_path):
    for i in range(2):
        write_laion_part(tmp_path / "laion" / f"part-0000{i}.parquet", [f"caption {i} {j}" for j in range(5)] + [None])
    parts = resolve_parts([str(tmp_path / "laion" / "*.parquet")])
    local = EmbedPartsConfig(work_dir=str(tmp_path / "local"), encoder="hash")
    remote = EmbedPartsConfig(work_dir=str(tmp_path / "ray"), encoder="hash")
    embed_parts(parts, local, encoder=HashEncoder())
    with hermetic_ray(num_cpus=2):
        records = embed_parts(parts, remote, executor="ray", encoder=HashEncoder())
    assert [r["part"] for r in records] == ["part-00000", "part-00001"] and all(r["rows"] == 6 for r in records)
    for part in parts:
        for suffix in (".npy", ".ids.npy"):
            np.testing.assert_array_equal(np.load(local.folder() / f"{part.name}{suffix}"),
                                          np.load(remote.folder() / f"{part.name}{suffix}"))
        assert json.loads((remote.folder() / f"{part.name}.json").read_text())["key"] == local.part_key(part)
