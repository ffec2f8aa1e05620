"""Step 4 of the rebuild: flag rows whose image shows its class name as text (SPEC §2.6).

A row is flagged when the normalised synset name (:func:`~laionet_bench.catalog.normalize_text` of
``ImageNetClass.name``) is a substring of the normalised text recognised in the image. Flagged rows
stay in the index (``ocr_flag``) and are excluded at evaluation; the recognised text is kept as
``x_recognized_text``.

Engines implement :class:`OcrEngine` (one method, ``recognize(image) -> str``). Shipped:

``none``
    No OCR: every row gets ``ocr_flag = False`` and no image is read.
``tesseract[:LANG]``
    Tesseract 5 through its command line (Debian ``tesseract-ocr``), sparse-text mode (``--psm 11``).

The reference uses EAST (text detection) + TrOCR (recognition). To plug it in, write a class with a
``name`` and ``recognize(image)`` that runs EAST to find text boxes, crops each box, runs TrOCR
(``transformers.VisionEncoderDecoderModel`` with ``microsoft/trocr-base-printed``) on the crops and
returns the joined strings; pass an instance as ``ocr_engine`` to :func:`~laionet_bench.rebuild.run_pipeline`.

Images come from an :class:`ImageSource`: :class:`FolderImages` (files named ``<row_id>.<ext>``) or
:class:`FetchedImages` (any ``url -> bytes`` function, e.g. the images module's safe fetcher).
"""

from __future__ import annotations

import difflib
import io
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from .._progress import progress_bar
from ..catalog import load_catalog, normalize_text
from ..errors import ConfigError, UnknownNameError

__all__ = [
    "OCR_ENGINES",
    "FetchedImages",
    "FolderImages",
    "ImageSource",
    "OcrCounts",
    "OcrEngine",
    "TesseractEngine",
    "flag_rows",
    "load_ocr_engine",
    "name_in_text",
]

logger = logging.getLogger(__name__)
OCR_ENGINES = ("none", "tesseract")


class OcrEngine(Protocol):
    """Recognises the text rendered in an image."""

    name: str

    def recognize(self, image) -> str: ...


class ImageSource(Protocol):
    """Gives the image of a row (a PIL image) or ``None`` when it is not available."""

    def __call__(self, row_id: int, url: str): ...


def _decode(data: bytes):
    from ..images.decode import decode_rgb

    try:
        return decode_rgb(data)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad bytes
        logger.debug("undecodable image: %s", exc)
        return None


@dataclass
class FolderImages:
    """Images stored as ``<folder>/<row_id>.<ext>`` (any extension PIL reads)."""

    folder: str
    _by_stem: dict[str, Path] | None = field(default=None, repr=False)

    def __call__(self, row_id: int, url: str):
        if self._by_stem is None:
            self._by_stem = {p.stem: p for p in Path(self.folder).iterdir() if p.is_file()}
        path = self._by_stem.get(str(row_id))
        return _decode(path.read_bytes()) if path else None


@dataclass
class FetchedImages:
    """Images fetched by ``fetch(url) -> bytes | None`` (``None`` or an OSError = unavailable)."""

    fetch: Callable[[str], bytes | None]

    def __call__(self, row_id: int, url: str):
        try:
            data = self.fetch(url)
        except OSError as exc:
            logger.debug("row %s: fetch failed: %s", row_id, exc)
            return None
        return _decode(data) if data else None


class TesseractEngine:
    """Tesseract OCR through its CLI (``apt-get install tesseract-ocr``); works offline."""

    def __init__(self, *, lang: str = "eng", psm: int = 11, binary: str | None = None, timeout: float = 60):
        found = binary or shutil.which("tesseract")
        if not found:
            raise ConfigError("the tesseract OCR engine needs the tesseract binary: apt-get install tesseract-ocr "
                              "(or pass --ocr-engine none)")
        self.binary: str = found
        self.name = f"tesseract:{lang}"
        self.lang, self.psm, self.timeout = lang, psm, timeout

    def recognize(self, image) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        done = subprocess.run(
            [self.binary, "stdin", "stdout", "-l", self.lang, "--psm", str(self.psm)],
            input=buffer.getvalue(), capture_output=True, timeout=self.timeout, check=False,
        )
        if done.returncode != 0:
            raise ConfigError(f"tesseract failed ({done.returncode}): {done.stderr.decode(errors='replace')[:200]}")
        return done.stdout.decode("utf-8", errors="replace")


def load_ocr_engine(name: str) -> OcrEngine | None:
    """``none`` → ``None``; ``tesseract`` or ``tesseract:LANG`` → a :class:`TesseractEngine`."""
    kind, _, option = name.partition(":")
    if kind == "none":
        return None
    if kind == "tesseract":
        return TesseractEngine(lang=option or "eng")
    raise UnknownNameError("OCR engine", name, difflib.get_close_matches(kind, OCR_ENGINES))


def name_in_text(class_name: str, text: str) -> bool:
    """The flag rule: normalised class name is a substring of the normalised recognised text."""
    return normalize_text(class_name) in normalize_text(text)


@dataclass
class OcrCounts:
    """What the OCR step saw."""

    rows: int = 0
    flagged: int = 0
    no_image: int = 0  # rows whose image was unavailable (left unflagged)

    def to_dict(self) -> dict:
        return asdict(self)


def flag_rows(
    frame: pd.DataFrame, engine: OcrEngine | None, images: ImageSource | None, *, desc: str = "ocr"
) -> tuple[pd.DataFrame, OcrCounts]:
    """Add ``ocr_flag`` and ``x_recognized_text`` to ``frame`` (columns ``row_id``, ``url``, ``wnid``), with a
    progress bar (``desc``) per row: OCR costs about a second an image."""
    out = frame.copy()
    counts = OcrCounts(rows=len(frame))
    if engine is None:
        out["ocr_flag"] = False
        out["x_recognized_text"] = [None] * len(frame)
        return out, counts
    if images is None:
        raise ConfigError(f"the {engine.name} OCR engine needs images: pass --images DIR (files <row_id>.<ext>)")
    catalog = load_catalog()
    texts: list[str | None] = []
    rows = zip(frame["row_id"], frame["url"], strict=True)
    for row_id, url in progress_bar(rows, total=len(frame), desc=desc, unit="img", leave=False, position=1):
        image = images(int(row_id), url)
        texts.append(None if image is None else engine.recognize(image))
    counts.no_image = sum(t is None for t in texts)
    flags = [t is not None and name_in_text(catalog.get(w).name, t) for w, t in zip(frame["wnid"], texts, strict=True)]
    out["ocr_flag"] = flags
    out["x_recognized_text"] = texts
    counts.flagged = int(sum(flags))
    return out, counts
