from pathlib import Path

import pytest

from laionet_bench.config import project_settings, resolve_setting
from laionet_bench.constants import parse_bool
from laionet_bench.errors import ConfigError


def test_precedence(tmp_path):
    assert resolve_setting("device", None, env="cpu", default="cuda") == "cpu"
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\ndevice = "mps"\n')
    assert resolve_setting("device", None, env="cpu") == "mps"
    assert resolve_setting("device", "cuda", env="cpu") == "cuda"


def test_settings_found_from_a_subfolder(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\nhub_repo = "a/b"\n')
    sub = tmp_path / "x" / "y"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert project_settings() == {"hub_repo": "a/b"}


def test_unknown_key_and_bad_toml_are_errors(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\nhub_rep = "a/b"\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['hub_rep'\]"):
        project_settings()
    (tmp_path / "pyproject.toml").write_text("[tool.laionet-bench\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        project_settings()


def test_parse_bool_is_strict():
    assert parse_bool("X", "yes") is True and parse_bool("X", "0") is False
    assert parse_bool("X", None, default=True) is True
    with pytest.raises(ValueError, match="X='maybe' is not a boolean"):
        parse_bool("X", "maybe")


def test_environment_beats_pyproject_so_ci_can_override(tmp_path, monkeypatch):
    from laionet_bench import constants

    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\ndevice = "cuda"\nhub_repo = "org/pinned"\n')
    monkeypatch.setitem(constants.ENV_SETTINGS, "device", "cpu")
    assert resolve_setting("device", None) == "cpu"  # the variable beats the committed file
    assert resolve_setting("device", "mps") == "mps"  # a flag beats the variable
    assert resolve_setting("hub_repo", None, env=constants.DEFAULT_HUB_REPO) == "org/pinned"  # no variable set


def test_every_setting_has_a_variable_parsed_once(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "LAIONET_BENCH_DEVICE": "cpu", "LAIONET_BENCH_RESULTS": "~/runs",
           "LAIONET_BENCH_HUB_REPO": "", "HOME": str(tmp_path)}
    script = ("import json; from laionet_bench import constants as c; "
              "print(json.dumps([c.ENV_SETTINGS, str(c.RESULTS_DIR), c.HUB_REPO]))")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    settings, results, repo = json.loads(out)
    assert settings == {"device": "cpu", "results_dir": f"{tmp_path}/runs"}  # empty means unset
    assert results == f"{tmp_path}/runs" and repo == "laionet-bench/laionet"


def test_cache_dir_is_not_a_project_setting(tmp_path):
    from laionet_bench.config import KNOWN_KEYS
    from laionet_bench.constants import SETTING_VARIABLES

    assert KNOWN_KEYS == set(SETTING_VARIABLES)
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\ncache_dir = "/tmp/x"\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['cache_dir'\]"):
        project_settings()


def test_download_run_and_similarity_share_one_default_image_store(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from laionet_bench import constants
    from laionet_bench.cli import main
    from laionet_bench.images.store import default_image_store

    monkeypatch.setattr(constants, "CACHE_DIR", tmp_path / "cache")
    index = SimpleNamespace(variant="clip_0.82", sha256="ab" * 32)
    assert default_image_store(index) == tmp_path / "cache" / "images" / "clip_0.82"
    assert default_image_store(SimpleNamespace(variant=None, sha256="ab" * 32)).name == "index-abababababab"
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\nimages = "~/laionet-images"\n')
    assert default_image_store(index) == Path("~/laionet-images").expanduser()
    assert default_image_store(index, "mine") == Path("mine")  # the flag beats the setting
    # without --images, run reads that default store, and says how to fill it when it is missing
    from .fakes.eval_data import tiny_index

    path, _ = tiny_index(tmp_path, per_class=1)
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\nimages = "nowhere"\n')
    assert main(["run", "--models", "resnet18", "--index", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image store at nowhere" in err[0] and "laionet-bench download" in err[0]


def test_run_and_similarity_take_imagenet_from_the_same_setting(tmp_path, monkeypatch, capsys):
    from laionet_bench import constants
    from laionet_bench.cli import main
    from laionet_bench.evaluation import evaluator

    from .fakes.eval_data import row_id_folder, tiny_index

    path, frame = tiny_index(tmp_path, per_class=1)
    data = ["--index", str(path), "--images", str(row_id_folder(tmp_path / "imgs", frame)), "--device", "cpu"]
    commands = [["run", "--models", "test_resnet.r160_in1k", *data], ["similarity", *data]]
    asked = []

    def stop(**options):  # the one loader both commands hand their datasets to
        asked.append(options["imagenet"])
        raise ConfigError("stopped before any image is read")

    monkeypatch.setattr(evaluator, "load_datasets", stop)
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\nimagenet = "val-from-pyproject"\n')
    assert [main(argv) for argv in commands] == [1, 1]
    monkeypatch.setitem(constants.ENV_SETTINGS, "imagenet", "val-from-env")
    assert [main(argv) for argv in commands] == [1, 1]
    assert [main([*argv, "--imagenet", "val-from-flag"]) for argv in commands] == [1, 1]
    assert asked == ["val-from-pyproject"] * 2 + ["val-from-env"] * 2 + ["val-from-flag"] * 2
    assert capsys.readouterr().err.count("stopped before any image is read") == 6


def test_the_dataset_setting_names_the_index_every_command_reads(tmp_path, monkeypatch, capsys):
    """A parquet set once as the dataset setting is what index info, download, run and similarity load; the
    command line (--index, --dataset, index info's argument, a variant in --datasets) still beats it."""
    from laionet_bench import constants
    from laionet_bench.cli import main
    from laionet_bench.index import load

    asked = []

    def stop(spec, **hub_options):  # the one loader every command hands its index spec to
        asked.append(spec)
        raise ConfigError("stopped before the index is read")

    monkeypatch.setattr(load, "load_index", stop)
    commands = [["index", "info"], ["download"], ["run", "--models", "test_resnet.r160_in1k", "--device", "cpu"],
                ["similarity", "--imagenet", "val", "--device", "cpu"]]
    (tmp_path / "pyproject.toml").write_text('[tool.laionet-bench]\ndataset = "from-pyproject.parquet"\n')
    assert [main(argv) for argv in commands] == [1] * 4
    monkeypatch.setitem(constants.ENV_SETTINGS, "dataset", "~/from-env.parquet")
    assert [main(argv) for argv in commands] == [1] * 4
    flags = [["index", "info", "flag.parquet"], ["download", "--index", "flag.parquet"],
             [*commands[2], "--dataset", "flag.parquet"], [*commands[3], "--dataset", "flag.parquet"]]
    assert [main(argv) for argv in flags] == [1] * 4
    assert main([*commands[3], "--datasets", "laionet:clip_top50", "imagenet-val"]) == 1
    assert asked == (["from-pyproject.parquet"] * 4 + [str(Path.home() / "from-env.parquet")] * 4
                     + ["flag.parquet"] * 4 + ["laionet:clip_top50"])
    assert capsys.readouterr().err.count("stopped before the index is read") == 13


def test_index_info_reads_the_parquet_the_dataset_setting_names(tmp_path, monkeypatch, capsys):
    from laionet_bench import constants
    from laionet_bench.cli import main

    from .fakes.eval_data import tiny_index

    path, _ = tiny_index(tmp_path, per_class=2)
    monkeypatch.setitem(constants.ENV_SETTINGS, "dataset", str(path))
    assert main(["index", "info"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "clip_0.82" in out
