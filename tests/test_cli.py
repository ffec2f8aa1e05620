"""The CLI surface: help, classes, index commands, one-line errors."""

import json
import subprocess
import sys

import pytest

from laionet_bench.cli import main
from laionet_bench.index.schema import write_index


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "classes" in out and "index" in out and "examples:" in out


def test_classes_search_and_json(capsys):
    assert main(["classes", "husky"]) == 0
    out = capsys.readouterr().out
    assert "n02110185" in out and "Siberian husky" in out
    assert main(["classes", "--format", "json", "n01440764"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["query"].startswith("tench which is freshwater dace-like game fish")
    assert main(["classes", "zzzz-no-such-class"]) == 1


def test_index_info_validate_show(tmp_path, index_frame, capsys):
    path = tmp_path / "idx.parquet"
    write_index(index_frame, path)
    assert main(["index", "validate", str(path)]) == 0
    assert "30 rows, 3 classes, schema valid" in capsys.readouterr().out
    assert main(["index", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OCR-flagged rows" in out and "siberian husky" in out
    assert main(["index", "show", str(path), "--class", "n04579432", "-n", "3"]) == 0
    assert capsys.readouterr().out.count("n04579432") == 3


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"garbage")
    assert main(["index", "validate", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.parquet" in err[0]


def test_console_script_exit_status_and_debug(tmp_path):
    bad = tmp_path / "missing.parquet"
    run = subprocess.run([sys.executable, "-m", "laionet_bench", "index", "validate", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "missing.parquet" in run.stderr
    debug = subprocess.run([sys.executable, "-m", "laionet_bench", "--debug", "index", "validate", str(bad)],
                           capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
