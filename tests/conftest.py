"""Shared fixtures: every cache and store path goes to tmp_path; a loopback Hub; index factories.

First of all, the run is made hermetic (tests/hermetic.py): the main process enters a network namespace of its own
here, before the imports below start threads and before pytest-xdist starts its workers, which inherit it.
"""

from __future__ import annotations

import os

from .hermetic import ISOLATED, enter_network_namespace, guard_name_resolution

NETWORK = enter_network_namespace()
guard_name_resolution()

# Read by huggingface_hub at import time: no telemetry probe, no progress bars in test logs.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# One torch thread: the tiny test models are dominated by per-op thread barriers, which stall for
# milliseconds when the (shared, 2-core) CPU is busy; read by torch at import time.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import types  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from laionet_bench import constants  # noqa: E402
from laionet_bench.catalog import load_catalog  # noqa: E402

from .fakes.hub import FakeHub  # noqa: E402


def pytest_report_header(config) -> str:
    """Say once, at the top of the run, whether it is isolated from the network."""
    if NETWORK == ISOLATED:
        return "network: isolated (a network namespace with only lo; pytest-socket allows 127.0.0.1 and ::1)"
    if NETWORK.startswith(ISOLATED):
        return f"network: {NETWORK}"
    return f"network: {NETWORK}; only the in-process guards hold (pytest-socket, name resolution)"


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path, monkeypatch):
    """Send every cache/store to tmp_path and make sure no test reaches the real Hub."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(constants, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(constants, "ENV_SETTINGS", {})  # a developer's own LAIONET_BENCH_* must not leak in
    monkeypatch.setattr(constants, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(hf_constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # tests opt in to the loopback Hub
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def fake_hub(monkeypatch):
    """A running loopback Hub; the real huggingface_hub client is pointed at it, retries without sleeps."""
    import huggingface_hub.constants as hf_constants
    import huggingface_hub.file_download as file_download
    import huggingface_hub.utils._http as hf_http

    with FakeHub() as hub:
        monkeypatch.setattr(hf_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(sleep=lambda s: None))
        monkeypatch.setattr(file_download, "time", types.SimpleNamespace(sleep=lambda s: None))
        yield hub


def make_index_frame(wnids: list[str], *, variant: str = "clip_0.82", start_id: int = 100_000_000) -> pd.DataFrame:
    """A valid index frame with one row per entry of ``wnids`` (captions name the class)."""
    catalog = load_catalog()
    classes = [catalog.get(w) for w in wnids]
    n = len(wnids)
    return pd.DataFrame(
        {
            "row_id": pd.array([start_id + i for i in range(n)], dtype="int64"),
            "sample_id": [str(7_000 + i) for i in range(n)],
            "url": [f"http://127.0.0.1/img/{start_id + i}.jpg" for i in range(n)],
            "caption": [f"a photo of a {c.name}" for c in classes],
            "wnid": wnids,
            "class_index": pd.array([c.index for c in classes], dtype="int32"),
            "similarity": pd.array([0.83 + 0.001 * (i % 10) for i in range(n)], dtype="float32"),
            "similarity_encoder": "openclip:ViT-B-32/openai",
            "nsfw": "UNLIKELY",
            "ocr_flag": [i % 7 == 6 for i in range(n)],
            "width": pd.array([640] * n, dtype="Int32"),
            "height": pd.array([480] * n, dtype="Int32"),
            "license": "?",
            "variant": variant,
        }
    )


@pytest.fixture
def index_frame() -> pd.DataFrame:
    """A 30-row valid index over three classes (10 rows each)."""
    return make_index_frame(["n01440764"] * 10 + ["n02110185"] * 12 + ["n04579432"] * 8)
