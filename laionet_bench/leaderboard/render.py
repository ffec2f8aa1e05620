"""Leaderboard renderers: Markdown (tabulate, GitHub-friendly), CSV, JSON and a static sortable HTML page.

CSV and JSON are for machines: every number is a number (no signs, units, thousands separators or
rounding; missing values are empty in CSV and ``null`` in JSON). Markdown and HTML are for people and
round for display; the HTML page keeps the exact value in each cell's ``data-value`` so sorting is
numeric, and every text it shows is escaped.

Text comes from result files, so it may be anything: a CSV text cell that a spreadsheet would run as a
formula (``=…``, ``+…``, ``-…``, ``@…``) gets a leading ``'`` as OWASP recommends (:func:`csv_safe`, undone by
:func:`csv_unescape`), and a Markdown cell has its ``|`` escaped so it cannot end the cell.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..models.groups import GROUPS
from ..similarity.stats import MIN_CLASSES_TESTED, too_few_classes, too_few_classes_note
from .columns import COLUMNS
from .table import Leaderboard

__all__ = ["DISPLAY_COLUMNS", "csv_safe", "csv_unescape", "to_csv", "to_html", "to_json", "to_markdown"]

#: (column, header, format) shown in Markdown and HTML; format "pct"/"pm"/"signed"/"int"/"millions"/"text".
DISPLAY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank_laionet_top1", "#", "int"),
    ("model", "model", "text"),
    ("group", "group", "text"),
    ("params", "params (M)", "millions"),
    ("img_size", "img", "int"),
    ("crop_pct", "crop", "crop"),
    ("interpolation", "interp.", "text"),
    ("imagenet_top1", "ImageNet top-1", "pct"),
    ("imagenet_top5", "ImageNet top-5", "pct"),
    ("laionet_top1", "LAIONet top-1", "pct"),
    ("laionet_top5", "LAIONet top-5", "pct"),
    ("laionet_lw_top1", "LAION-weighted top-1", "pct"),
    ("gap_top1", "gap top-1", "pct"),
    ("gap_top1_se", "gap SE", "pct"),
    ("effective_robustness", "eff. robustness", "signed"),
    ("rank_change", "rank Δ", "signed_int"),
    ("n_laionet", "LAIONet images", "int"),
    ("n_imagenet", "ImageNet images", "int"),
)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _display(value: Any, fmt: str) -> str:
    """A cell for people; ``–`` when missing."""
    if _missing(value):
        return "–"
    formats = {
        "pct": lambda v: f"{v:.1f}",
        "signed": lambda v: f"{v:+.1f}",
        "signed_int": lambda v: f"{int(v):+d}" if v else "0",
        "int": lambda v: f"{int(v)}",
        "millions": lambda v: f"{v / 1e6:.1f}",
        "crop": lambda v: f"{v:.3g}",
    }
    return formats[fmt](value) if fmt in formats else str(value)


#: Appended to the model name of a smoke run, and explained under the table.
SMOKE_MARK = " (smoke run)"
SMOKE_NOTE = ("(smoke run): a dataset was cut by --limit or --limit-per-class; its numbers are not comparable "
              "with full runs")


def _cell(row: pd.Series, col: str, fmt: str) -> str:
    text = _display(row[col], fmt)
    smoke = row.get("smoke")
    return text + SMOKE_MARK if col == "model" and not _missing(smoke) and bool(smoke) else text


#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection"). ``'`` itself is
#: escaped too, so that :func:`csv_unescape` gives back exactly what was written.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return list(frame.select_dtypes(include=["object", "string"]).columns)


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell a spreadsheet would take for a formula prefixed by ``'``; numbers untouched."""
    return frame.assign(**{c: frame[c].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START)
                                           else v, na_action="ignore") for c in _text_columns(frame)})


def csv_unescape(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`csv_safe` on a frame read back from CSV."""
    return frame.assign(**{c: frame[c].map(lambda v: v[1:] if isinstance(v, str) and v.startswith("'") else v,
                                           na_action="ignore") for c in _text_columns(frame)})


def _md_cell(text: str) -> str:
    """A Markdown table cell: ``|`` would end the cell and a line break the row."""
    return " ".join(text.splitlines()).replace("|", "\\|")


def _md_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{c: frame[c].map(_md_cell, na_action="ignore") for c in _text_columns(frame)})


def _display_rows(table: pd.DataFrame) -> list[list[str]]:
    return [[_cell(row, col, fmt) for col, _, fmt in DISPLAY_COLUMNS] for _, row in table.iterrows()]


def _smoke_lines(board: Leaderboard) -> list[str]:
    return ["", SMOKE_NOTE] if "smoke" in board.table and board.table["smoke"].fillna(False).any() else []


def _thin_test_notes(tests: pd.DataFrame) -> list[str]:
    """One caveat per per-class test over too few classes (older summaries lack ``min_classes_tested``)."""
    if "n_classes_tested" not in tests:
        return []
    notes = []
    for _, row in tests.iterrows():
        minimum = row.get("min_classes_tested", MIN_CLASSES_TESTED)
        minimum = MIN_CLASSES_TESTED if _missing(minimum) else int(minimum)
        if not _missing(row["n_classes_tested"]) and too_few_classes(int(row["n_classes_tested"]), minimum):
            pair = f" ({row['a']} vs {row['b']})" if {"a", "b"} <= set(tests.columns) else ""
            notes.append(f"{row.get('encoder', '')}{pair}: {too_few_classes_note(int(row['n_classes_tested']), minimum)}")
    return notes


def _similarity_markdown(board: Leaderboard, tabulate) -> list[str]:
    if board.similarity.empty:
        return []
    lines = ["", "## Intra-class similarity", ""]
    lines.append(tabulate(_md_frame(board.similarity), headers="keys", tablefmt="github", showindex=False,
                          floatfmt=".4g"))
    if not board.similarity_tests.empty:
        lines += ["", tabulate(_md_frame(board.similarity_tests), headers="keys", tablefmt="github", showindex=False,
                               floatfmt=".4g")]
        for note in _thin_test_notes(board.similarity_tests):
            lines += ["", f"> **Note** {note}."]
    return lines


def _footer_lines(board: Leaderboard) -> list[str]:
    lines = ["", "## Provenance", "", f"- generated: {board.generated}"]
    if board.fit is not None:
        lines.append(f"- effective robustness: logit(LAIONet) = {board.fit.slope:.3f} · logit(ImageNet) "
                     f"{board.fit.intercept:+.3f}, fitted on {board.fit.n_models} models")
    lines += [f"- {key}: {', '.join(values)}" for key, values in board.provenance.items()]
    return lines


def to_markdown(board: Leaderboard, *, title: str = "LAIONet leaderboard") -> str:
    """The board as GitHub-flavoured Markdown: model table, similarity summary, provenance footer."""
    from tabulate import tabulate

    rows = [[_md_cell(cell) for cell in row] for row in _display_rows(board.table)]
    table = tabulate(rows, headers=[h for _, h, _ in DISPLAY_COLUMNS], tablefmt="github",
                     disable_numparse=True, colalign=[("left" if f == "text" else "right") for _, _, f in DISPLAY_COLUMNS])
    lines = [f"# {title}", "", "Accuracies in %, equi-weighted over the LAIONet classes unless LAION-weighted; "
             "gap = ImageNet-val − LAIONet (points).", "", table]
    groups = [g for g in GROUPS if g in set(board.table["group"])]
    lines += _smoke_lines(board)
    lines += ["", "Groups: " + "; ".join(f"`{g}` {GROUPS[g].doc}" for g in groups)]
    lines += _similarity_markdown(board, tabulate)
    lines += _footer_lines(board)
    return "\n".join(lines) + "\n"


def to_csv(board: Leaderboard) -> str:
    """Every column of the table, full precision, missing values empty, text cells safe for spreadsheets."""
    return csv_safe(board.table).to_csv(index=False)


def _records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", double_precision=15)) if not frame.empty else []


def to_json(board: Leaderboard) -> str:
    """``{"meta", "columns", "models", "similarity", "similarity_tests"}``; numbers as JSON numbers, NaN → null."""
    payload = {
        "meta": board.meta(),
        "columns": COLUMNS,
        "models": _records(board.table),
        "similarity": _records(board.similarity),
        "similarity_tests": _records(board.similarity_tests),
    }
    return json.dumps(payload, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


#: Click a header to sort by it, click again to reverse. Numbers (``data-type="num"``) compare by their exact
#: ``data-value``, text by locale; missing cells (empty ``data-value``, shown as "–") stay last both ways.
_SORTER_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    th.closest("tr").querySelectorAll("th").forEach(function (o) { o.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var numeric = th.dataset.type === "num";
    function key(row) {
      var v = row.cells[col].dataset.value;
      if (v === undefined || v === "") { return null; }
      if (!numeric) { return v; }
      var x = Number(v);
      return isNaN(x) ? null : x;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null) { return y === null ? 0 : 1; }
      if (y === null) { return -1; }
      var order = numeric ? x - y : x.localeCompare(y);
      return asc ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f2f2f2; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
img { max-width: 48%; margin: 0.5em; border: 1px solid #ddd; }
"""


def _html_table(board: Leaderboard) -> str:
    esc = html.escape
    head = "".join(
        f'<th data-type="{"str" if fmt == "text" else "num"}" title="{esc(COLUMNS[col])}">{esc(header)}</th>'
        for col, header, fmt in DISPLAY_COLUMNS
    )
    rows = []
    for _, row in board.table.iterrows():
        cells = []
        for col, _, fmt in DISPLAY_COLUMNS:
            value = row[col]
            raw = "" if _missing(value) else str(value if fmt == "text" else float(value))
            cls = "" if fmt == "text" else ' class="num"'
            cells.append(f'<td{cls} data-value="{esc(raw)}">{esc(_cell(row, col, fmt))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable" id="leaderboard"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n" + "\n".join(rows) + "\n</tbody></table>")


def _html_frame(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc('' if _missing(v) else format(v, '.4g') if isinstance(v, float) else str(v))}</td>"
                         for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(board: Leaderboard, *, title: str = "LAIONet leaderboard", figures: Sequence[str] = ()) -> str:
    """A self-contained page: sortable table (click a header), figures, similarity, provenance."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>",
        "<p>Accuracies in %, equi-weighted over the LAIONet classes unless LAION-weighted; gap = ImageNet-val − "
        "LAIONet (points). Click a column header to sort.</p>",
        _html_table(board),
        *(f'<p class="note">{esc(line)}</p>' for line in _smoke_lines(board) if line),
        "<dl>" + "".join(f"<dt>{esc(g.name)}</dt><dd>{esc(g.doc)}</dd>" for g in GROUPS.values()
                         if g.name in set(board.table["group"])) + "</dl>",
    ]
    parts += [f'<img src="{esc(name)}" alt="{esc(name)}">' for name in figures]
    if not board.similarity.empty:
        parts += ["<h2>Intra-class similarity</h2>", _html_frame(board.similarity), _html_frame(board.similarity_tests)]
        parts += [f'<p class="note"><strong>Note</strong> {esc(note)}.</p>'
                  for note in _thin_test_notes(board.similarity_tests)]
    footer = [f"<li>generated: {esc(board.generated)}</li>"]
    footer += [f"<li>{esc(k)}: {esc(', '.join(v))}</li>" for k, v in board.provenance.items()]
    parts += ["<h2>Provenance</h2>", "<ul>" + "".join(footer) + "</ul>", f"<script>{_SORTER_JS}</script>",
              "</body></html>"]
    return "\n".join(parts) + "\n"
