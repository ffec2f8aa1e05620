"""The terminal summary table and the JSON report, built from the session's check records.

Records are plain dicts (``RobustnessCheck.to_dict()`` / ``BaselineComparison.to_dict()`` plus the test id
and where the result came from) so xdist workers can send them to the controller unchanged.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

from .._io import write_text_atomic
from ..version import __version__

__all__ = ["summary_table", "write_json_report"]

HEADERS = ["model", "test", "metric", "gap ± SE", "max_gap", "LAIONet ± SE", "min_acc", "tol", "baseline", "result"]


def _estimate(value: dict | None) -> str:
    if not value:
        return "-"
    return "nan" if math.isnan(value["value"]) else f"{value['value']:.4f} ± {value['se']:.4f}"


def _bound(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _row(record: dict) -> list[str]:
    test = record["nodeid"].rsplit("::", 1)[-1]
    result = "PASS" if record["passed"] else "FAIL"
    if record["kind"] == "baseline":
        return [record["model"], test, record["metric"], "-", "-", "-", "-", f"{record['tolerance']:g}",
                record["status"], result]
    baseline = record.get("baseline")
    return [
        record["model"], test, f"{record['metric']}/{record['weighting']}", _estimate(record["gap"]),
        _bound(record["max_gap"]), _estimate(record["accuracy"]), _bound(record["min_accuracy"]),
        f"{record['tolerance']:g}", baseline["status"] if baseline else "none", result,
    ]


def summary_table(records: list[dict]) -> str:
    """One row per check, sorted by model then test."""
    from tabulate import tabulate

    rows = [_row(r) for r in sorted(records, key=lambda r: (r["model"], r["nodeid"]))]
    return tabulate(rows, headers=HEADERS, disable_numparse=True)


def write_json_report(path: str | Path, records: list[dict], settings: dict) -> None:
    """Every check with its measured values, bounds and outcome, plus the plugin's settings."""
    report = {
        "harness_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "n_checks": len(records),
        "n_failed": sum(not r["passed"] for r in records),
        "checks": sorted(records, key=lambda r: (r["model"], r["nodeid"])),
    }
    write_text_atomic(path, json.dumps(report, indent=2, allow_nan=True) + "\n")
