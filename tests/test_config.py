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
