"""Index downloads through the real huggingface_hub client against a loopback Hub."""

import json

import httpx2
import huggingface_hub.constants as hf_constants
import pytest
from huggingface_hub import errors as hf_errors

from laionet_bench._io import sha256_file
from laionet_bench.cli import main
from laionet_bench.errors import HubError
from laionet_bench.hub._errors import hub_error
from laionet_bench.hub.download import snapshot
from laionet_bench.index.load import load_index
from laionet_bench.index.schema import write_index

from .conftest import make_index_frame

REPO = "laionet-bench/laionet"


def _publish(hub, tmp_path, frame, *, variant="clip_0.82", manifest=True) -> tuple[str, bytes]:
    path = tmp_path / f"{variant}.parquet"
    digest = write_index(frame.assign(variant=variant), path)
    data = path.read_bytes()
    files = {f"data/{variant}.parquet": data, "README.md": b"# LAIONet\n"}
    if manifest:
        files["manifest.json"] = json.dumps({"files": {f"data/{variant}.parquet": {"sha256": digest}}}).encode()
    return hub.commit(REPO, files), data


def test_download_records_commit_and_sha_then_reuses_cache_offline(fake_hub, tmp_path, index_frame, monkeypatch):
    sha, data = _publish(fake_hub, tmp_path, index_frame)
    index = load_index("laionet")
    assert index.revision == sha
    assert index.source == f"hf://datasets/{REPO}"
    assert index.sha256 == sha256_file(tmp_path / "clip_0.82.parquet")
    assert len(index) == 30
    methods = [(m, p.split("?")[0]) for m, p, _ in fake_hub.requests]
    assert ("GET", f"/datasets/{REPO}/resolve/main/data/clip_0.82.parquet") in methods
    # every request identifies the library
    assert all("laionet-bench" in h.get("user-agent", h.get("User-Agent", "")) for _, _, h in fake_hub.requests)

    # offline: no request reaches the server, the cached copy and its commit are used
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    before = len(fake_hub.requests)
    offline = load_index("laionet")
    assert len(fake_hub.requests) == before
    assert offline.revision == sha and offline.sha256 == index.sha256


def test_pinned_revision_survives_later_pushes(fake_hub, tmp_path):
    first, _ = _publish(fake_hub, tmp_path, make_index_frame(["n01440764"] * 4))
    second, _ = _publish(fake_hub, tmp_path, make_index_frame(["n01443537"] * 6))
    assert first != second
    assert len(load_index("laionet")) == 6
    pinned = load_index("laionet", revision=first)
    assert pinned.revision == first and len(pinned) == 4
    fake_hub.tag(REPO, "v1.0", first)
    assert load_index("laionet", revision="v1.0").revision == first


def test_variant_and_repo_override(fake_hub, tmp_path, monkeypatch):
    fake_hub.commit("my-org/mine", {})
    path = tmp_path / "t.parquet"
    write_index(make_index_frame(["n01440764"] * 2, variant="clip_top50"), path)
    fake_hub.commit("my-org/mine", {"data/clip_top50.parquet": path.read_bytes()})
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\nhub_repo = "my-org/mine"\n')
    index = load_index("laionet:clip_top50")
    assert index.source == "hf://datasets/my-org/mine" and index.variant == "clip_top50"


def test_snapshot_download(fake_hub, tmp_path):
    sha, data = _publish(fake_hub, tmp_path, make_index_frame(["n01440764"] * 3))
    folder, commit = snapshot()
    assert commit == sha
    assert (folder / "data" / "clip_0.82.parquet").read_bytes() == data
    assert json.loads((folder / "manifest.json").read_text())["files"]


def test_missing_repo(fake_hub):
    with pytest.raises(HubError, match="dataset repo 'nobody/nothing' not found"):
        load_index("laionet", repo_id="nobody/nothing")


def test_missing_file_names_the_variant(fake_hub, tmp_path, index_frame):
    _publish(fake_hub, tmp_path, index_frame)
    with pytest.raises(HubError, match="data/mpnet_0.58.parquet not found .* check the variant"):
        load_index("laionet:mpnet_0.58")


def test_missing_revision(fake_hub, tmp_path, index_frame):
    _publish(fake_hub, tmp_path, index_frame)
    with pytest.raises(HubError, match="revision 'v9' not found"):
        load_index("laionet", revision="v9")


def test_corrupt_parquet_on_the_hub(fake_hub):
    fake_hub.commit(REPO, {"data/clip_0.82.parquet": b"PAR1 this is not a parquet file"})
    with pytest.raises(Exception, match="cannot be read as parquet"):
        load_index("laionet")


def test_manifest_mismatch_is_detected(fake_hub, tmp_path, index_frame):
    path = tmp_path / "i.parquet"
    write_index(index_frame, path)
    manifest = json.dumps({"files": {"data/clip_0.82.parquet": {"sha256": "0" * 64}}}).encode()
    fake_hub.commit(REPO, {"data/clip_0.82.parquet": path.read_bytes(), "manifest.json": manifest})
    with pytest.raises(HubError, match="cached copy is corrupt; delete"):
        load_index("laionet")


def test_offline_with_empty_cache(monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match=r"not in the local Hugging Face cache and offline mode is on "
                                       r"\(--offline or HF_HUB_OFFLINE=1\)"):
        load_index("laionet")


def test_local_files_only_is_offline_not_unreachable(fake_hub, capsys):
    """--offline (local_files_only) with an empty cache is the offline message, even with the Hub online."""
    with pytest.raises(HubError, match="offline mode is on") as info:
        load_index("laionet", local_files_only=True)
    assert "could not reach the Hub" not in str(info.value) and not fake_hub.requests
    assert main(["index", "info", "--offline"]) == 1
    err = capsys.readouterr().err
    assert "offline mode is on (--offline" in err and "retry later" not in err


def test_server_error_mid_download(fake_hub, tmp_path, index_frame):
    _publish(fake_hub, tmp_path, index_frame)
    fake_hub.faults["clip_0.82.parquet"] = ["501"]
    with pytest.raises(HubError, match="could not reach the Hub .* not cached"):
        load_index("laionet")
    # nothing half-written was left: the next attempt succeeds from a clean cache
    assert len(load_index("laionet")) == 30


def test_connection_reset_mid_body_leaves_no_partial_file(fake_hub, tmp_path, index_frame):
    _publish(fake_hub, tmp_path, index_frame)
    # the HEAD consumes the first action, the GET the second
    fake_hub.faults["clip_0.82.parquet"] = ["ok", "rst"]
    with pytest.raises(HubError, match="retry the command"):
        load_index("laionet")
    blobs = list((tmp_path / "hf" / "hub").rglob("blobs/*"))
    assert all(not b.name.endswith(".incomplete") for b in blobs)
    assert len(load_index("laionet")) == 30


TOKEN = "hf_SeCrEtToKeN4LaIoNeTxYz0123456789"


def _http(cls, status: int):
    """A huggingface_hub HTTP error as the client raises it: the request carries the token."""
    request = httpx2.Request("POST", "https://hub.test/api/datasets/me/x/commit/v2",
                             headers={"authorization": f"Bearer {TOKEN}"})
    return cls(f"{status} Client Error.\n\nfor url {request.url} (token {TOKEN})",
               response=httpx2.Response(status, request=request))


@pytest.mark.parametrize(("exc", "direction", "message"), [
    (_http(hf_errors.RepositoryNotFoundError, 404), "download",
     "dataset repo 'me/x' not found on the Hub: check --repo / LAIONET_BENCH_HUB_REPO, or log in"),
    (_http(hf_errors.HfHubHTTPError, 403), "upload",
     "cannot write to dataset repo 'me/x': it does not exist or your token may not write to it; log in"),
    (_http(hf_errors.RevisionNotFoundError, 404), "download",
     "revision 'v2' not found in dataset repo 'me/x': check --revision"),
    (_http(hf_errors.RevisionNotFoundError, 404), "upload",
     "branch 'v2' of 'me/x' does not exist and could not be created: check --revision"),
    (_http(hf_errors.RemoteEntryNotFoundError, 404), "download",
     "data/x.parquet not found in dataset repo 'me/x' at revision 'v2': check the variant name"),
    (_http(hf_errors.RemoteEntryNotFoundError, 404), "upload",  # no words for it on upload: the HTTP ones
     "the Hub refused the upload to 'me/x'@v2 (HTTP 404); retry, or check the files"),
    (_http(hf_errors.HfHubHTTPError, 500), "download",
     "the Hub answered an error for data/x.parquet of 'me/x': 500 Client Error. for url"),
    (_http(hf_errors.HfHubHTTPError, 500), "upload",
     "the Hub refused the upload to 'me/x'@v2 (HTTP 500); retry, or check the files"),
    (ConnectionResetError("reset by peer"), "download",
     "download of data/x.parquet from 'me/x' failed (ConnectionResetError: reset by peer); retry the command"),
    (ConnectionResetError("reset by peer"), "upload",
     "upload to 'me/x'@v2 failed (ConnectionResetError); check your connection and retry"),
])
def test_one_translator_for_both_directions(exc, direction, message):
    error = hub_error(exc, direction=direction, repo_id="me/x", revision="v2", what="data/x.parquet")
    assert message in str(error)
    assert "\n" not in str(error) and TOKEN not in str(error)  # one line, token-free


def test_translator_offline_or_unreachable_download(monkeypatch):
    missing = hf_errors.LocalEntryNotFoundError("not cached")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    assert "offline mode is on (--offline or HF_HUB_OFFLINE=1)" in str(
        hub_error(missing, direction="download", repo_id="me/x"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    assert "offline mode is on" in str(hub_error(missing, direction="download", repo_id="me/x", offline=True))
    try:
        raise missing from TimeoutError("timed out")
    except hf_errors.LocalEntryNotFoundError as exc:
        error = hub_error(exc, direction="download", repo_id="me/x", what="data/x.parquet")
    assert str(error).startswith("could not reach the Hub for data/x.parquet of 'me/x' and it is not cached "
                                 "(TimeoutError: timed out)")


#: What every "no index from the Hub" message names: the two ways to make one, and how to point at it.
ROUTES = ("laionet-bench index import-official REF.parquet --labels REF_labels.pkl --variant VARIANT",
          "laionet-bench rebuild all --parts PARTS --work WORK", "--index FILE.parquet",
          "LAIONET_BENCH_DATASET=FILE.parquet", "docs/real-data.md")


@pytest.mark.parametrize(("exc", "routes"), [
    (_http(hf_errors.RepositoryNotFoundError, 404), True),
    (_http(hf_errors.RemoteEntryNotFoundError, 404), True),
    (hf_errors.LocalEntryNotFoundError("not cached"), True),  # offline, or the Hub out of reach
    (_http(hf_errors.RevisionNotFoundError, 404), False),  # a typo in --revision: the fix is the revision
    (_http(hf_errors.HfHubHTTPError, 500), False),
    (ConnectionResetError("reset by peer"), False),
])
def test_a_missing_index_says_where_an_index_comes_from(exc, routes):
    """Only an index the Hub cannot give gets the routes, and only on download; other files keep their words."""
    error = str(hub_error(exc, direction="download", repo_id="me/x", what="data/x.parquet", index=True))
    assert all(route in error for route in ROUTES) is routes and "\n" not in error
    assert "import-official" not in str(hub_error(exc, direction="download", repo_id="me/x", what="data/x.parquet"))
    assert "import-official" not in str(hub_error(exc, direction="upload", repo_id="me/x", index=True))


@pytest.mark.parametrize("online", [True, False], ids=["hub-404", "offline-empty-cache"])
def test_no_command_that_needs_an_index_is_a_dead_end(request, tmp_path, capsys, online):
    """With nothing at the default repo (the state of the Hub today), each command that loads an index stops
    in one line that names the ways to get one."""
    if online:
        request.getfixturevalue("fake_hub")  # a Hub that answers 404 for laionet-bench/laionet
    commands = [["index", "info"], ["download"], ["run", "--models", "resnet50", "--device", "cpu"],
                ["similarity", "--imagenet", str(tmp_path), "--device", "cpu"]]
    for argv in commands:
        assert main(argv) == 1, argv
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: ") and all(route in line for route in ROUTES), (argv, line)
        assert ("dataset repo 'laionet-bench/laionet' not found" if online else "offline mode is on") in line


def test_index_download_fetches_into_the_cache_and_says_where(fake_hub, tmp_path, index_frame, capsys, monkeypatch):
    """Like `hf download`: the file lands in the HF cache, its path and sha256 are printed, and every later
    command reads that copy, offline too."""
    sha, data = _publish(fake_hub, tmp_path, index_frame, variant="clip_top50")
    assert main(["index", "download", "clip_top50"]) == 0
    out = capsys.readouterr().out.splitlines()
    path = tmp_path / "hf" / "hub" / "datasets--laionet-bench--laionet" / "snapshots" / sha / "data" / "clip_top50.parquet"
    assert out[0] == f"data/clip_top50.parquet from {REPO}@{sha}: 30 rows over 3 classes"
    assert out[1] == f"path: {path}" and path.read_bytes() == data
    assert out[2] == f"sha256: {sha256_file(path)} (matches the repo's manifest.json)"
    assert out[3].startswith("next: laionet-bench download --dataset laionet:clip_top50 ")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    fake_hub.requests.clear()
    assert main(["index", "info", "laionet:clip_top50"]) == 0 and not fake_hub.requests
    assert main(["index", "download", "laionet:clip_top50"]) == 0 and not fake_hub.requests


def test_index_download_refuses_an_unknown_variant_with_the_known_ones(fake_hub, tmp_path, index_frame, capsys):
    _publish(fake_hub, tmp_path, index_frame)
    fake_hub.requests.clear()
    assert main(["index", "download", "clip_0.8"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == ("error: index download: unknown LAIONet variant 'clip_0.8': known are clip_0.82, clip_top50, "
                    "mpnet_0.58, mpnet_top50; pass one of them (a rebuilt repo's own variants are known once its "
                    "manifest.json lists them)")
    assert all("clip_0.8.parquet" not in path for _, path, _ in fake_hub.requests)  # never asked for


def test_index_download_takes_a_variant_the_repo_lists(fake_hub, tmp_path, index_frame, capsys):
    """A rebuilt repo publishes variants of its own: its manifest makes them known."""
    _publish(fake_hub, tmp_path, index_frame, variant="minilm_0.5")
    assert main(["index", "download", "minilm_0.5"]) == 0
    assert "data/minilm_0.5.parquet from laionet-bench/laionet@" in capsys.readouterr().out
    assert main(["index", "download", "minilm_0.4"]) == 1
    assert "known are clip_0.82, clip_top50, mpnet_0.58, mpnet_top50; the repo also lists minilm_0.5; pass" in (
        capsys.readouterr().err)


def test_index_download_of_nothing_published_names_the_other_routes(fake_hub, capsys):
    assert main(["index", "download"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "dataset repo 'laionet-bench/laionet' not found" in line and all(route in line for route in ROUTES)
