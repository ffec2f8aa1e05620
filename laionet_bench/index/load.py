"""LAIONet indexes to evaluate: the published variants, and loading one from the Hub or local parquet.

Images are not part of an index: they are fetched by ``laionet-bench download`` and identified by
``row_id``. The rows are validated against the schema of :mod:`.schema` on every load.

Class weights for LAION-weighted accuracy are counted over *all* rows (before the OCR-flag drop);
the OCR drop happens at evaluation time (:meth:`LaionetIndex.evaluation_rows`), as in the reference.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from .. import _io
from ..catalog import load_catalog
from ..errors import ConfigError, HubError, IndexValidationError, UnknownNameError
from .schema import index_files, read_index_file, read_label_keys

if TYPE_CHECKING:
    from ..hub.download import HubDownload

__all__ = [
    "VARIANT_NAME_PATTERN",
    "LaionetIndex",
    "Variant",
    "class_row_counts",
    "class_shares",
    "fetch_index",
    "get_variant",
    "index_sha256",
    "list_variants",
    "load_index",
    "parse_index_spec",
]


logger = logging.getLogger(__name__)

#: A variant name that is safe as a file name (``data/<variant>.parquet``, ``images/<variant>``): no path
#: separator, and no leading dot (``..``) or dash.
VARIANT_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


@dataclass(frozen=True)
class Variant:
    """A published LAIONet variant (package data ``_data/variants.json``)."""

    name: str
    encoder: str
    threshold: float
    top_per_class: int | None
    reference_rows: int | None  # rows in the reference's published parquet
    reference_classes: int | None
    description: str

    @property
    def filename(self) -> str:
        """Path of this variant's parquet inside a Hub dataset repo (see :func:`load_index`)."""
        return f"data/{self.name}.parquet"


@lru_cache(maxsize=1)
def _variant_table() -> tuple[str, dict[str, Variant]]:
    raw = json.loads(resources.files("laionet_bench").joinpath("_data/variants.json").read_text("utf-8"))
    return raw["default"], {name: Variant(name=name, **cfg) for name, cfg in raw["variants"].items()}


def list_variants() -> list[str]:
    """Names of the known variants, the default first."""
    default, table = _variant_table()
    return [default] + sorted(set(table) - {default})


def get_variant(name: str | None = None) -> Variant:
    """The variant called ``name`` (default: ``clip_0.82``); unknown names get suggestions."""
    default, table = _variant_table()
    name = name or default
    if name not in table:
        raise UnknownNameError("LAIONet variant", name, difflib.get_close_matches(name, table))
    return table[name]


def class_row_counts(wnids: Iterable[str]) -> pd.Series:
    """Rows per wnid of ``wnids`` (one entry per row), in catalogue order."""
    counts = pd.Series(list(wnids), dtype=object, name="wnid").value_counts()
    return counts.reindex([w for w in load_catalog().wnids if w in counts.index])


def class_shares(wnids: Iterable[str]) -> pd.Series:
    """Each class's share of ``wnids`` (one entry per row), in catalogue order: LAIONet's class weights (SPEC §4),
    for an index (:meth:`LaionetIndex.class_weights`) and for the reference's own files (``import-results``)."""
    counts = class_row_counts(wnids)
    return (counts / counts.sum()).astype(float)


@dataclass
class LaionetIndex:
    """A validated index table plus where it came from.

    ``source`` is a local path or ``hf://datasets/<repo>``; ``revision`` the resolved Hub commit
    (``None`` for local files); ``sha256`` the content hash of the parquet file(s), which identifies
    the index in run keys. ``label_keys`` are the keys of the reference label pickle the index was
    imported from (``index import-official --labels``), as given: empty classes and the husky's
    non-standard ``n02112837`` included, since the reference scores ImageNet-val over every key found
    there; ``None`` when the index records none.
    """

    table: pd.DataFrame
    source: str
    variant: str | None = None
    revision: str | None = None
    sha256: str | None = None
    files: list[str] = field(default_factory=list)
    label_keys: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.table)

    def class_counts(self) -> pd.Series:
        """Rows per wnid over the whole index (before the OCR drop), catalogue order."""
        return class_row_counts(self.table["wnid"])

    def class_weights(self) -> pd.Series:
        """Each class's share of index rows, counted before the OCR drop (SPEC §4)."""
        return class_shares(self.table["wnid"])

    def evaluation_rows(self) -> pd.DataFrame:
        """The rows evaluated: OCR-flagged rows dropped."""
        return self.table[~self.table["ocr_flag"].to_numpy(dtype=bool)]

    def provenance(self) -> dict:
        """Plain-dict identity of this index for result records."""
        return {
            "source": self.source,
            "variant": self.variant,
            "revision": self.revision,
            "sha256": self.sha256,
            "rows": len(self.table),
        }


def _files_sha256(files: list[Path]) -> str:
    if len(files) == 1:
        return _io.sha256_file(files[0])
    joined = "\n".join(f"{f.name}:{_io.sha256_file(f)}" for f in files)
    return hashlib.sha256(joined.encode()).hexdigest()


def index_sha256(path: str | Path) -> str:
    """The sha256 that identifies a local index file or folder (:attr:`LaionetIndex.sha256`, recorded in every
    result's dataset identity), without reading the table: a result can be matched to the file it was run on."""
    files = index_files(path)
    missing = [str(f) for f in files if not f.is_file()]
    if not files or missing:
        raise IndexValidationError(str(path), "no such index file (or a folder without *.parquet files); check the "
                                   "path, e.g. the dataset setting")
    return _files_sha256(files)


def load_index(
    spec: str | Path | None = None,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> LaionetIndex:
    """Load a LAIONet index.

    Args:
        spec: ``laionet`` or ``laionet:<variant>`` (from the Hub), or a local parquet file / folder
            (``file://`` prefix optional). ``None`` means ``laionet``.
        repo_id: Hub dataset repo (default: ``constants.HUB_REPO``).
        revision: branch, tag or commit to pin; the resolved commit is recorded.
        cache_dir: huggingface_hub cache directory (default: the HF cache).
        local_files_only: never touch the network (``HF_HUB_OFFLINE=1`` has the same effect).
    """
    kind, value = parse_index_spec(spec)
    if kind == "file":
        path = Path(cast(str, value))  # a file spec always names its file
        files = index_files(path)
        frame = read_index_file(path)
        variants = frame["variant"].unique()
        return LaionetIndex(
            table=frame,
            source=str(path.resolve()),
            variant=str(variants[0]) if len(variants) == 1 else None,
            sha256=_files_sha256(files),
            files=[str(f) for f in files],
            label_keys=read_label_keys(path),
        )
    from ..hub import download as hub

    # a rebuilt repo may publish variants of its own (e.g. minilm_0.45): any name maps to data/<name>.parquet
    variant = value or list_variants()[0]
    if not re.fullmatch(VARIANT_NAME_PATTERN, variant):
        raise UnknownNameError("LAIONet variant", variant, difflib.get_close_matches(variant, list_variants()))
    download = hub.download_index_file(
        f"data/{variant}.parquet", repo_id=repo_id, revision=revision, cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
    frame = read_index_file(download.path)
    return LaionetIndex(
        table=frame,
        source=f"hf://datasets/{download.repo_id}",
        variant=variant,
        revision=download.commit,
        sha256=download.sha256,
        files=[str(download.path)],
        label_keys=read_label_keys(download.path),
    )


def fetch_index(
    variant: str | None = None,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> HubDownload:
    """Fetch a variant's parquet from the Hub into the Hugging Face cache, verified, without reading it.

    ``laionet-bench index download``: the explicit first step of a run from a published index, after which
    every command finds the file in the cache (``--offline`` too). ``variant`` is a name or ``laionet:NAME``
    (default: ``clip_0.82``). A published variant is fetched at once; another name only when the repo's
    ``manifest.json`` lists it (a rebuilt repo publishes its own, e.g. ``minilm_0.5``), so a typo is refused
    with the known names instead of becoming a request for a file that is not there.

    Returns:
        The :class:`~laionet_bench.hub.download.HubDownload`: repo, file, cached path, commit, sha256.
    """
    from ..hub import download as hub

    name = (variant or "").removeprefix("laionet:") if variant != "laionet" else ""
    name = name or list_variants()[0]
    hub_options: dict[str, Any] = {"repo_id": repo_id, "revision": revision, "cache_dir": cache_dir,
                                   "local_files_only": local_files_only}
    if name not in list_variants():
        listed = _repo_variants(hub, hub_options)
        if name not in listed:
            others = [v for v in listed if v not in list_variants()]
            also = f"; the repo also lists {', '.join(others)}" if others else ""
            raise ConfigError(f"index download: unknown LAIONet variant {name!r}: known are "
                              f"{', '.join(list_variants())}{also}; pass one of them (a rebuilt repo's own variants "
                              "are known once its manifest.json lists them)")
    return hub.download_index_file(f"data/{name}.parquet", **hub_options)


def _repo_variants(hub, hub_options: dict) -> list[str]:
    """The variants the repo's manifest lists (``data/<variant>.parquet``); none when it cannot be read."""
    try:
        files = hub.manifest_files(**hub_options)
    except HubError as exc:
        logger.info("no variant list from the repo's manifest: %s", exc)
        return []
    return sorted(Path(f).stem for f in files if f.startswith("data/") and f.endswith(".parquet")
                  and re.fullmatch(VARIANT_NAME_PATTERN, Path(f).stem))


def parse_index_spec(spec: str | Path | None) -> tuple[str, str | None]:
    """Split an index spec into ``("hub", variant)`` or ``("file", path)``."""
    if spec is None:
        return "hub", None
    text = str(spec)
    if text.startswith("file://"):
        return "file", text[len("file://"):]
    if text == "laionet" or text.startswith("laionet:"):
        return "hub", text.partition(":")[2] or None
    if isinstance(spec, Path) or text.endswith(".parquet") or Path(text).exists() or "/" in text:
        return "file", text
    raise UnknownNameError(
        "index", text, ["laionet", *(f"laionet:{v}" for v in list_variants())] if "laion" in text else None
    )
