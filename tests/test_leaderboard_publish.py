"""Publishing folders through the real huggingface_hub client to the loopback Hub."""

from __future__ import annotations

import logging

import pytest
import yaml

from laionet_bench.cli import main
from laionet_bench.errors import ConfigError, HubError
from laionet_bench.evaluation.results import write_result
from laionet_bench.hub.upload import dataset_card, publish_folder
from laionet_bench.leaderboard import build_leaderboard
from laionet_bench.leaderboard.publish import leaderboard_card

from .fakes.results import make_result

TOKEN = "hf_SeCrEtToKeN4LaIoNeTxYz0123456789"


def _folder(tmp_path):
    folder = tmp_path / "index"
    (folder / "data").mkdir(parents=True)
    files = {
        "README.md": b"---\npretty_name: x\n---\n# x\n",
        "manifest.json": b'{"files": {}}\n',
        "data/clip_0.82.parquet": bytes(range(256)) * 40 + b"\x00PAR1",  # binary, not UTF-8
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / ".manifest.json.abc.tmp").write_bytes(b"half-written")  # left by an interrupted write
    return folder, files


def _authorizations(hub) -> set[str]:
    return {headers.get("authorization") or headers.get("Authorization") for _, _, headers in hub.requests}


@pytest.fixture
def loud_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _assert_token_nowhere(token, caplog, capsys):
    captured = capsys.readouterr()
    assert token not in caplog.text
    assert token not in captured.out and token not in captured.err
    assert token[3:15] not in caplog.text + captured.out + captured.err  # not even a fragment


def test_publish_folder_uploads_bytes_intact_with_an_explicit_token(tmp_path, fake_hub, loud_logs, capsys):
    folder, files = _folder(tmp_path)
    outcome = publish_folder(folder, repo_id="me/laionet", token=TOKEN, commit_message="rebuild v1")
    assert fake_hub.files("me/laionet") == files  # byte-identical; the hidden temp file stayed home
    assert outcome.revision == "main" and outcome.commit == fake_hub.repos["me/laionet"].refs["main"]
    assert sorted(outcome.files) == sorted(files)
    assert f"Bearer {TOKEN}" in _authorizations(fake_hub)  # the token was used ...
    _assert_token_nowhere(TOKEN, loud_logs, capsys)  # ... and never logged or printed


def test_publish_reads_hf_token_from_the_environment(tmp_path, fake_hub, monkeypatch, loud_logs, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder, files = _folder(tmp_path)
    publish_folder(folder, repo_id="me/laionet")
    assert fake_hub.files("me/laionet") == files
    assert f"Bearer {TOKEN}" in _authorizations(fake_hub)
    _assert_token_nowhere(TOKEN, loud_logs, capsys)


def test_publish_to_a_new_branch_keeps_main(tmp_path, fake_hub):
    folder, files = _folder(tmp_path)
    publish_folder(folder, repo_id="me/laionet", token=TOKEN)
    (folder / "manifest.json").write_bytes(b'{"files": {"v": 2}}\n')
    outcome = publish_folder(folder, repo_id="me/laionet", revision="v2", token=TOKEN)
    assert outcome.revision == "v2"
    assert fake_hub.files("me/laionet", "v2")["manifest.json"] == b'{"files": {"v": 2}}\n'
    assert fake_hub.files("me/laionet", "main") == files
    publish_folder(folder, repo_id="me/laionet", revision="v2", token=TOKEN)  # existing branch: fine


def test_generated_card_has_valid_front_matter(tmp_path, fake_hub):
    folder, _ = _folder(tmp_path)
    card = dataset_card("# Body", pretty_name="LAIONet index", tags=["laionet"],
                        data_files={"clip_0.82": "data/clip_0.82.parquet"}, license="cc-by-4.0")
    publish_folder(folder, repo_id="me/laionet", token=TOKEN, card=card)
    readme = fake_hub.files("me/laionet")["README.md"].decode()
    assert readme.startswith("---\n")
    meta = yaml.safe_load(readme.split("---\n")[1])
    assert meta["pretty_name"] == "LAIONet index" and meta["license"] == "cc-by-4.0"
    assert meta["configs"] == [{"config_name": "clip_0.82", "data_files": "data/clip_0.82.parquet"}]
    assert readme.rstrip().endswith("# Body")


def test_missing_repo_without_create_and_bad_folders(tmp_path, fake_hub, loud_logs, capsys):
    folder, _ = _folder(tmp_path)
    with pytest.raises(HubError, match="cannot write to dataset repo 'me/absent'") as info:
        publish_folder(folder, repo_id="me/absent", token=TOKEN, create=False)
    assert TOKEN not in str(info.value) and info.value.__cause__ is None
    _assert_token_nowhere(TOKEN, loud_logs, capsys)
    with pytest.raises(ConfigError, match="no such folder"):
        publish_folder(tmp_path / "nope", repo_id="me/laionet", token=TOKEN)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="nothing to publish"):
        publish_folder(tmp_path / "empty", repo_id="me/laionet", token=TOKEN)


@pytest.mark.parametrize(("fault", "message"), [
    ("403", r"cannot write to dataset repo 'me/laionet': .* write access"),
    ("500", r"the Hub refused the upload to 'me/laionet'@v2 \(HTTP 500\); retry, or check the files"),
])
def test_refused_upload_says_what_to_do_without_the_token(tmp_path, fake_hub, loud_logs, capsys, fault, message):
    folder, _ = _folder(tmp_path)
    fake_hub.faults["/commit/"] = [fault] * 50  # more than the client retries a server error
    with pytest.raises(HubError, match=message) as info:
        publish_folder(folder, repo_id="me/laionet", revision="v2", token=TOKEN)
    assert "\n" not in str(info.value) and TOKEN not in str(info.value) and info.value.__cause__ is None
    _assert_token_nowhere(TOKEN, loud_logs, capsys)


def test_leaderboard_card_holds_the_table():
    board = build_leaderboard([make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.6),
                               make_result("resnet18.tv_in1k", imagenet=0.7, laionet=0.55)])
    card = leaderboard_card(board, repo_id="me/board")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"][0]["data_files"] == "leaderboard.csv" and "leaderboard" in meta["tags"]
    assert "resnet50.a1_in1k" in card and "--repo me/board" in card


def test_cli_publish_uploads_leaderboard_and_results(tmp_path, fake_hub, monkeypatch, loud_logs, capsys):
    for result in (make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.6),
                   make_result("resnet18.tv_in1k", imagenet=0.7, laionet=0.55)):
        write_result(result, tmp_path / "res")
    assert main(["-q", "leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "lb"),
                 "--no-plots"]) == 0
    monkeypatch.setenv("CI_SECRET", TOKEN)
    status = main(["publish", "--repo", "me/board", "--folder", str(tmp_path / "lb"), "--results",
                   str(tmp_path / "res"), "--revision", "pr-1", "--token-env", "CI_SECRET"])
    assert status == 0
    uploaded = fake_hub.files("me/board", "pr-1")
    assert uploaded["leaderboard.csv"] == (tmp_path / "lb" / "leaderboard.csv").read_bytes()
    assert uploaded["results/resnet50.a1_in1k/per_class.parquet"] == \
        (tmp_path / "res" / "resnet50.a1_in1k" / "per_class.parquet").read_bytes()
    assert "results/resnet18.tv_in1k/result.json" in uploaded
    assert uploaded["README.md"].startswith(b"---\n")
    assert not (tmp_path / "lb" / "README.md").exists()  # the card went to the staging copy only
    assert f"Bearer {TOKEN}" in _authorizations(fake_hub)
    _assert_token_nowhere(TOKEN, loud_logs, capsys)


@pytest.mark.parametrize("repo", ["../../etc", "me/laionet/board", "me/bad..name"])
def test_a_bad_repo_id_is_refused_before_anything_is_read_or_sent(tmp_path, fake_hub, capsys, repo):
    """``publish --repo ../../etc`` was blamed on the connection ("check your connection and retry")."""
    folder, _ = _folder(tmp_path)
    code = main(["publish", "--repo", repo, "--folder", str(folder), "--results", str(tmp_path / "absent")])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 1 and line.startswith("error: --repo: not a Hub repo id: ") and repr(repo) in line
    assert "connection" not in line and fake_hub.requests == []
    with pytest.raises(ConfigError, match="not a Hub repo id"):
        publish_folder(folder, repo_id=repo)
    assert main(["index", "info", "--repo", repo]) == 1  # downloads check it the same way
    assert "not a Hub repo id" in capsys.readouterr().err and fake_hub.requests == []


def test_cli_publish_token_env_must_be_set(tmp_path, capsys):
    (tmp_path / "lb").mkdir()
    (tmp_path / "lb" / "x.txt").write_text("x")
    assert main(["publish", "--repo", "me/board", "--folder", str(tmp_path / "lb"), "--no-results",
                 "--token-env", "NOT_SET_ANYWHERE"]) == 1
    assert "NOT_SET_ANYWHERE" in capsys.readouterr().err
