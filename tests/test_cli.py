"""The CLI surface: help, classes, index commands, one-line errors."""

import argparse
import errno
import json
import logging
import subprocess
import sys

import pytest

from laionet_bench.cli import build_parser, main
from laionet_bench.index.schema import write_index

#: Every subcommand, as typed. The top-level epilog's examples name most of them too, so the help text alone
#: cannot tell whether one is registered: the parser's choices can.
COMMANDS = {"run", "models", "classes", "index", "download", "similarity", "leaderboard", "compare", "publish",
            "rebuild", "explain", "demo", "import-results", "cache"}


def test_help_lists_subcommands(capsys):
    parser = build_parser()
    (subcommands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(subcommands.choices) == COMMANDS
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    listed = out.split("examples:")[0]  # the subcommand list, without the epilog
    assert all(command in listed for command in COMMANDS)


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


@pytest.mark.parametrize(("error", "line"), [
    (OSError(errno.ENOSPC, "No space left on device"),
     "error: no space left on device: free space and re-run; finished work is kept"),
    (OSError(errno.EROFS, "Read-only file system", "/data/out/x.parquet"),
     "error: /data/out/x.parquet: read-only file system: make it writable (or write elsewhere) and re-run; "
     "finished work is kept"),
])
def test_a_full_disk_anywhere_is_one_line_that_says_what_to_do(capsys, error, line):
    """An OSError no writer of ours named (a library's write) still reads as the machine's state, not a bug."""
    from laionet_bench.cli._errors import report

    assert report(error) == 1
    assert capsys.readouterr().err.splitlines() == [line]


def test_console_script_exit_status_and_debug(tmp_path):
    bad = tmp_path / "missing.parquet"
    run = subprocess.run([sys.executable, "-m", "laionet_bench", "index", "validate", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "missing.parquet" in run.stderr
    debug = subprocess.run([sys.executable, "-m", "laionet_bench", "--debug", "index", "validate", str(bad)],
                           capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_common_flags_work_after_the_subcommand(tmp_path, capsys):
    from laionet_bench.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["classes", "husky", "-q"]).quiet is True
    assert parser.parse_args(["-q", "classes", "husky"]).quiet is True  # a subcommand does not reset it
    assert parser.parse_args(["index", "info", "--debug"]).debug is True  # nested subcommands too
    plain = parser.parse_args(["classes", "husky"])
    assert plain.quiet is False and plain.debug is False
    bad = tmp_path / "missing.parquet"
    assert main(["index", "validate", str(bad), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_quiet_and_no_progress_turn_every_bar_off_on_any_subcommand(capsys):
    from laionet_bench._progress import progress_enabled

    try:
        for flags in (["-q"], ["--no-progress"]):
            assert main(["classes", "husky", *flags]) == 0 and not progress_enabled()
            assert main(["classes", "husky"]) == 0 and progress_enabled()  # each invocation decides
        assert main(["--no-progress", "classes", "husky"]) == 0  # before the subcommand too
        assert not progress_enabled()
    finally:
        main(["classes", "husky"])
        capsys.readouterr()


def test_cli_configures_its_own_logger_once(capsys):
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    ours = logging.getLogger("laionet_bench")
    try:
        assert main(["classes", "husky"]) == 0
        assert main(["classes", "-q", "husky"]) == 0
        assert (list(root.handlers), root.level) == before
        assert len(ours.handlers) == 1 and ours.level == logging.WARNING
        assert main(["classes", "husky"]) == 0
        assert len(ours.handlers) == 1 and ours.level == logging.INFO
    finally:
        ours.handlers.clear()
        ours.setLevel(logging.NOTSET)


LOGGING_SCRIPT = """
import logging
from huggingface_hub import hf_hub_download  # noqa: F401 - installs its stderr handler, as every Hub call does
from laionet_bench.cli import build_parser, main

main(["classes", "husky"])
logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
logging.getLogger("timm.models._builder").info("Loading pretrained weights from Hugging Face hub")
logging.getLogger("matplotlib.font_manager").info("generated new fontManager")
logging.getLogger("laionet_bench.evaluation").info("ours is shown")
"""


def test_other_libraries_logs_are_not_flooded_nor_doubled():
    """The real stderr of a CLI process: a Hub retry once, no timm/matplotlib INFO, our INFO lines."""
    run = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT], capture_output=True, text=True, check=True)
    assert run.stderr.count("Retrying in 1s [Retry 1/5].") == 1
    assert "Loading pretrained" not in run.stderr and "fontManager" not in run.stderr
    assert "INFO laionet_bench.evaluation: ours is shown" in run.stderr


def test_a_closed_pipe_ends_quietly():
    """``laionet-bench classes | head -1``: no "unexpected BrokenPipeError", the SIGPIPE exit status."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "laionet_bench", "classes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as head does
    assert proc.wait(timeout=60) == 141
    with proc.stderr:
        assert proc.stderr.read() == b""


@pytest.mark.parametrize("command", [["run", "--models", "x"], ["rebuild", "all", "--parts", "p"],
                                     ["explain", "text-search", "--parts", "p"]])
def test_ray_address_is_one_option_everywhere(command, caplog):
    """--ray-address means the Ray cluster in run, rebuild and explain; their old --address still works, with a warning."""
    parser = build_parser()
    assert parser.parse_args([*command, "--ray-address", "h:1"]).ray_address == "h:1"
    if command[0] == "run":
        return
    with caplog.at_level(logging.WARNING, logger="laionet_bench"):
        assert parser.parse_args([*command, "--address", "h:2"]).ray_address == "h:2"
    assert "--address is now --ray-address" in caplog.text and "will be removed" in caplog.text


def test_download_workers_still_works_as_concurrency(caplog):
    with caplog.at_level(logging.WARNING, logger="laionet_bench"):
        assert build_parser().parse_args(["download", "--workers", "3"]).concurrency == 3
    assert "--workers is now --concurrency (requests in flight" in caplog.text
