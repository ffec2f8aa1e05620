"""Re-LAION-5B parts (``laion/relaion2B-en-research[-safe]``): schema presets, detection, the punsafe rule, and
why a rebuild that keeps nothing kept nothing."""

import logging
import math

import numpy as np
import pandas as pd
import pytest

from laionet_bench.cli import main
from laionet_bench.errors import ConfigError, UnknownNameError
from laionet_bench.index.schema import read_index_file
from laionet_bench.rebuild import ColumnMap, run_pipeline
from laionet_bench.rebuild.parts import SCHEMAS, detect_schema, get_schema, list_schemas, resolve_parts
from laionet_bench.rebuild.select import select_rows

from .fakes.laion import relaion_part_name, write_laion_part, write_relaion_part
from .test_rebuild_pipeline import OFFICIAL, TaggedEncoder, config_for

TENCH, GOLDFISH = OFFICIAL["tench"], OFFICIAL["goldfish"]

RELAION0 = ["a tench #0.9", "a tench #0.95", None, "", "goldfish #0.99", "lion #0.9", "nothing here",
            "tench, goldfish #0.99"]
PUNSAFE0 = [0.01, 0.5, 0.1, 0.1, 0.51, None, 0.2, 0.0]
RELAION3 = ["my goldfish #0.97", "goldfish #0.5"]


@pytest.fixture
def relaion_parts(tmp_path):
    folder = tmp_path / "relaion"
    write_relaion_part(folder, 0, RELAION0, punsafe=PUNSAFE0)
    write_relaion_part(folder, 3, RELAION3, punsafe=0.0)
    return str(folder)


def test_relaion_part_names_number_the_parts(relaion_parts):
    assert [(p.index, p.name) for p in resolve_parts([relaion_parts])] == [(0, "part-00000"), (3, "part-00003")]
    assert relaion_part_name(7).endswith("-c000.snappy.parquet")


@pytest.mark.parametrize("name", list_schemas())
def test_each_preset_is_detected_from_its_own_columns(name):
    columns = [c for c in SCHEMAS[name].columns.fields().values() if c is not None]
    assert detect_schema([*columns, "something_else"]).name == name
    assert detect_schema(columns[1:]) is None or detect_schema(columns[1:]).name != name


def test_unknown_schema_gets_suggestions():
    with pytest.raises(UnknownNameError, match="relaion2b"):
        get_schema("relaion")


def test_laion400m_step_keys_do_not_change():
    """The punsafe field is left out while unmapped: work done before it existed is not redone."""
    assert ColumnMap().to_dict() == {"text": "TEXT", "url": "URL", "nsfw": "NSFW", "sample_id": "SAMPLE_ID",
                                     "width": "WIDTH", "height": "HEIGHT", "license": "LICENSE"}


def test_relaion_parts_are_detected_and_filtered_on_punsafe(relaion_parts, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="laionet_bench.rebuild"):
        report = run_pipeline(config_for(relaion_parts, tmp_path, top_per_class=None), encoder=TaggedEncoder())
    (notice,) = [r.getMessage() for r in caplog.records if "schema" in r.getMessage()]
    assert "relaion2b" in notice and "--schema" in notice
    assert (report.rows, report.no_caption, report.no_lemma, report.matched, report.multi_synset) == (10, 2, 1, 7, 1)
    assert report.nsfw_dropped == 2  # punsafe 0.51, missing punsafe; 0.5 itself stays
    assert (report.below_threshold, report.kept) == (1, 3)
    frame = read_index_file(tmp_path / "work" / "dataset" / "data" / "tagged_0.82.parquet")
    assert frame["row_id"].tolist() == [0, 1, 300_000_000]
    assert frame["wnid"].tolist() == [TENCH, TENCH, GOLDFISH]
    assert frame["sample_id"].tolist() == ["000000000", "000000001", "000030000"]
    assert frame["x_punsafe"].tolist() == [0.01, 0.5, 0.0] and frame["nsfw"].isna().all()
    assert frame["width"].tolist() == [640] * 3
    card = (tmp_path / "work" / "dataset" / "README.md").read_text()
    assert "`punsafe <= 0.5`" in card and "| NSFW rule | 2 |" in card


def test_max_punsafe_is_the_limit_and_a_schema_can_be_named(relaion_parts, tmp_path):
    config = config_for(relaion_parts, tmp_path, top_per_class=None, schema="relaion2b", max_punsafe=0.1)
    report = run_pipeline(config, encoder=TaggedEncoder())
    assert report.nsfw_dropped == 3 and report.kept == 2  # 0.5 now goes too


def test_select_keeps_punsafe_at_or_below_the_limit():
    frame = pd.DataFrame({"similarity": [0.9] * 4, "nsfw": [None] * 4, "x_punsafe": [0.5, 0.50001, np.nan, 0.0],
                          "url": [f"https://example.org/{i}.jpg" for i in range(4)]})
    kept, counts = select_rows(frame, threshold=0.82, nsfw_filter=False, max_punsafe=0.5)
    assert kept["x_punsafe"].tolist() == [0.5, 0.0] and counts.nsfw_dropped == 2
    with pytest.raises(KeyError):
        select_rows(frame.drop(columns="x_punsafe"), threshold=0.82, nsfw_filter=False, max_punsafe=0.5)


def one_error_line(capsys) -> str:
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_a_tag_rule_on_the_punsafe_column_is_refused_up_front(relaion_parts, tmp_path, capsys):
    for extra in ([], ["--schema", "relaion2b"]):
        args = ["rebuild", "match", "--parts", relaion_parts, "--work", str(tmp_path / "w"), "-q", *extra]
        assert main([*args, "--nsfw-col", "punsafe"]) == 1
        line = one_error_line(capsys)
        assert "--nsfw-col 'punsafe' is a double column, not an NSFW tag" in line and "--punsafe-col punsafe" in line
    assert not (tmp_path / "w" / "match").exists()


def test_a_punsafe_rule_on_a_tag_column_is_refused_up_front(tmp_path, capsys):
    parts = str(write_laion_part(tmp_path / "laion" / "part-00000.parquet", ["a tench #0.9"]))
    args = ["rebuild", "match", "--parts", parts, "--work", str(tmp_path / "w"), "-q"]
    assert main([*args, "--max-punsafe", "0.5"]) == 1
    line = one_error_line(capsys)
    assert "--max-punsafe 0.5 is a rule on a probability column" in line and "string column 'NSFW'" in line
    assert main([*args, "--punsafe-col", "NSFW"]) == 1
    assert "--punsafe-col 'NSFW' is a string column, not a probability" in one_error_line(capsys)
    assert main([*args, "--schema", "relaion2b"]) == 1
    assert "no column 'caption'" in one_error_line(capsys)
    assert main([*args, "--max-punsafe", "2"]) == 1
    assert "--max-punsafe 2: punsafe is a probability; pass a value in [0, 1]" in one_error_line(capsys)
    assert not (tmp_path / "w" / "match").exists()


def test_a_rebuild_that_keeps_nothing_says_why(tmp_path, caplog):
    folder = tmp_path / "unsafe"
    write_relaion_part(folder, 0, ["a tench #0.9", "goldfish #0.95", "lion #0.3"], punsafe=0.9)
    config = config_for(str(folder), tmp_path, top_per_class=None)
    with caplog.at_level(logging.WARNING, logger="laionet_bench.rebuild"):
        report = run_pipeline(config, steps=["match", "textsim", "select"], encoder=TaggedEncoder())
    assert report.kept == 0 and report.dropped()["NSFW rule"] == 3
    assert any("most went at 'NSFW rule'" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError) as caught:
        run_pipeline(config, encoder=TaggedEncoder())
    message = str(caught.value)
    assert "\n" not in message and "NSFW rule 3" in message and "punsafe <= 0.5" in message
    assert "--max-punsafe" in message and "lemma rules" not in message


def test_dropped_reasons_cover_the_funnel(relaion_parts, tmp_path):
    report = run_pipeline(config_for(relaion_parts, tmp_path, top_per_class=None), encoder=TaggedEncoder())
    dropped = report.dropped()
    assert report.rows == report.kept + sum(n for reason, n in dropped.items() if not reason.startswith("OCR"))
    assert not math.isnan(sum(dropped.values()))


def test_relaion_parts_from_the_hub_are_checked_once(fake_hub, tmp_path):
    """The first part's columns are read before any work; a resumed run whose Hub parts are done and deleted
    fetches none of them again to know its columns."""
    src = tmp_path / "src"
    files = {f"data/{relaion_part_name(i)}": write_relaion_part(src, i, RELAION3, punsafe=0.0).read_bytes()
             for i in (0, 1)}
    fake_hub.commit("laion/tiny-relaion", files)
    config = config_for("hf://datasets/laion/tiny-relaion", tmp_path, top_per_class=None, delete_downloaded=True)
    report = run_pipeline(config, encoder=TaggedEncoder())
    assert report.kept == 2 and report.rows == 4
    assert not list((tmp_path / "work" / "downloads").rglob("*.parquet"))
    before = len(fake_hub.requests)
    assert run_pipeline(config, encoder=TaggedEncoder()).kept == 2
    assert not [path for _, path, _ in fake_hub.requests[before:] if "part-" in path and "/resolve/" in path]
