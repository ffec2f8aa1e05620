"""Import the reference's published LAIONet parquet (+ its pickled label dict) into our index schema.

The reference (github.com/alishiraliGit/eval-on-laion) publishes, per variant, a parquet with columns
``URL, TEXT, name_def_wnid, wnid_is_in_recognized_text, SAMPLE_ID, HEIGHT, WIDTH, LICENSE, NSFW,
similarity, text_to_name_def_wnid_similarity_<encoder>, recognized_text, top_{1,5}_is_correct_<model>``
whose index is the global LAION row id, and the labels separately as a pickled ``{wnid: [row id]}``.
Despite its name, ``name_def_wnid`` holds the class's synset text (``"<name> which is <definition>"``);
SAMPLE_ID, HEIGHT and WIDTH are floats; the MPNet files carry three similarity columns, so the
variant's name decides which one is the selection score (:data:`ENCODER_SUFFIXES`) unless it is named
(``similarity_column``). A problem is reported in the reference's own column names, with the file and
the row ids. :func:`import_official` also records the label pickle's keys in the written index: they
are the reference's class set for ImageNet-val (:data:`~.schema.LABEL_KEYS_METADATA`).

The pickle is downloaded data, so it is never ``pickle.load``-ed plainly: :func:`load_label_dict`
first walks its opcodes without building anything (:func:`pickletools.genops`) and refuses files,
object counts and containers beyond what a ``{wnid: [row id]}`` dict of LAIONet's size needs, then
uses an unpickler that resolves no global at all (dict, list, str and int need none), and then checks
the structure: no list shared by several classes (a few bytes of memo references could otherwise
stand for gigabytes of row ids), plain ints only. Anything else is refused with
:class:`UnsafePickleError`.
"""

from __future__ import annotations

import io
import logging
import pickle
import pickletools
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import check_output_file
from ..catalog import canonical_wnid, load_catalog
from ..errors import ConfigError, IndexValidationError, UnsafePickleError
from .load import VARIANT_NAME_PATTERN, list_variants
from .schema import row_error, validate_index_table, write_index

__all__ = [
    "CUSTOM_VARIANT_PREFIX",
    "ENCODER_SUFFIXES",
    "class_of_rows",
    "MAX_LABEL_CONTAINERS",
    "MAX_LABEL_OBJECTS",
    "MAX_LABEL_PICKLE_BYTES",
    "convert_official",
    "has_row_id_index",
    "import_official",
    "load_label_dict",
    "official_classes",
    "recorded_variant",
]

logger = logging.getLogger(__name__)

#: Suffix of the reference's ``text_to_name_def_wnid_similarity_<suffix>`` column → our encoder name,
#: and the variant-name prefix (``clip_0.82``, ``mpnet_top50``) whose selection score it is.
ENCODER_SUFFIXES = {
    "clip-vit-base-patch32": ("openclip:ViT-B-32/openai", "clip"),
    "all-mpnet-base-v2": ("sentence-transformers:all-mpnet-base-v2", "mpnet"),
    "bert-base-uncased": ("hf:bert-base-uncased", None),
}
_SIM_PREFIX = "text_to_name_def_wnid_similarity_"
#: ``--variant custom:NAME`` imports a file that is none of the published variants; NAME is recorded.
CUSTOM_VARIANT_PREFIX = "custom:"
#: Limits of a label pickle. The reference's largest (mpnet_0.58) has 1.3 million row ids over 1000
#: classes: about 9 MB, 1.3 million opcodes and one list per class.
MAX_LABEL_PICKLE_BYTES = 64 * 2**20
MAX_LABEL_OBJECTS = 5_000_000
MAX_LABEL_CONTAINERS = 10_000
_CONTAINER_OPCODES = frozenset({"EMPTY_LIST", "LIST", "EMPTY_DICT", "DICT", "EMPTY_TUPLE", "TUPLE", "TUPLE1",
                                "TUPLE2", "TUPLE3", "EMPTY_SET", "FROZENSET"})
_BOOKKEEPING_OPCODES = frozenset({"PROTO", "FRAME", "MARK", "STOP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT",
                                  "APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"})
#: Our index column → the reference parquet column it comes from (for messages in the user's terms).
_REFERENCE_COLUMNS = {"row_id": "index (row id)", "sample_id": "SAMPLE_ID", "url": "URL", "caption": "TEXT",
                      "wnid": "name_def_wnid", "nsfw": "NSFW", "ocr_flag": "wnid_is_in_recognized_text",
                      "width": "WIDTH", "height": "HEIGHT", "license": "LICENSE",
                      "x_recognized_text": "recognized_text", "x_laion_similarity": "similarity"}
#: Row ids are int64 (the index schema's ``row_id``); a bigger int in the pickle is no row id.
_INT64 = (-2**63, 2**63 - 1)
_RESAVE_HINT = ("re-save it as {wnid: [int row ids]} with plain Python types (pickle.dump of a dict of "
                "lists of int), or leave out --labels to take the labels from the parquet's name_def_wnid column")


class _PlainDataUnpickler(pickle.Unpickler):
    """Admits only objects built without globals (dict, list, tuple, str, int, float, bool, None)."""

    def find_class(self, module: str, name: str):
        raise UnsafePickleError(
            f"the label pickle references {module}.{name}; only plain dict/list/str/int data is accepted: {_RESAVE_HINT}"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError("the label pickle uses persistent ids; only plain dict/list/str/int data is accepted")


def _check_size(path: str | Path, data: bytes) -> None:
    """Refuse, before anything is built, a pickle larger or busier than a LAIONet label dict can be."""
    if len(data) > MAX_LABEL_PICKLE_BYTES:
        raise UnsafePickleError(f"{path}: {len(data)} bytes is more than a label pickle needs "
                                f"({MAX_LABEL_PICKLE_BYTES} at most); is this the reference's {{wnid: [row ids]}} file?")
    objects = containers = 0
    for opcode, _, _ in pickletools.genops(data):
        if opcode.name in _BOOKKEEPING_OPCODES:
            continue
        objects += 1
        containers += opcode.name in _CONTAINER_OPCODES
        if objects > MAX_LABEL_OBJECTS or containers > MAX_LABEL_CONTAINERS:
            raise UnsafePickleError(
                f"{path}: holds more than {MAX_LABEL_OBJECTS} objects or {MAX_LABEL_CONTAINERS} lists/dicts, more "
                f"than any LAIONet variant (1.3 million row ids over 1000 classes); refused to bound memory")


def load_label_dict(path: str | Path) -> dict[str, list[int]]:
    """Safely read the reference's ``{wnid: [row id, ...]}`` pickle, with bounded memory."""
    try:
        data = Path(path).read_bytes()
        _check_size(path, data)
        labels = _PlainDataUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as exc:
        if str(exc).startswith(f"{path}: "):
            raise
        raise UnsafePickleError(f"{path}: {exc}") from None
    except Exception as exc:
        raise UnsafePickleError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(labels, dict):
        raise UnsafePickleError(f"{path}: expected a dict {{wnid: [row ids]}}, got {type(labels).__name__}")
    owner: dict[int, str] = {}
    for key, rows in labels.items():
        if not isinstance(key, str) or not isinstance(rows, (list, tuple)):
            raise UnsafePickleError(f"{path}: entry {key!r} is not wnid -> list of row ids")
        if rows and owner.setdefault(id(rows), key) != key:
            raise UnsafePickleError(f"{path}: entries {owner[id(rows)]!r} and {key!r} share one list of row ids "
                                    f"(memo references stand for copies); {_RESAVE_HINT}")
        if not all(isinstance(r, int) and not isinstance(r, bool) and _INT64[0] <= r <= _INT64[1] for r in rows):
            raise UnsafePickleError(f"{path}: entry {key!r} holds row ids that are not plain ints in the 64-bit range; "
                                    f"{_RESAVE_HINT}")
    return {k: list(v) for k, v in labels.items()}


def recorded_variant(variant: str) -> str:
    """The variant name to record: a published one as is, ``custom:NAME`` as ``NAME``.

    The prefix is dropped because the name becomes a file name (the Hub's ``data/<variant>.parquet``, the
    image folder) and a dataset spec (``laionet:<variant>``), where a colon does not fit; a NAME that is a
    published variant's is refused, so an own index never passes for the reference's.
    """
    known = list_variants()
    if variant in known:
        return variant
    name = variant[len(CUSTOM_VARIANT_PREFIX):] if variant.startswith(CUSTOM_VARIANT_PREFIX) else None
    if name is None:
        problem = "not a published variant"
    elif name in known:
        problem = f"{name} is a published variant's name (pass it without {CUSTOM_VARIANT_PREFIX} if this is its file)"
    elif not re.fullmatch(VARIANT_NAME_PATTERN, name):
        problem = "NAME must be letters, digits, '_', '.' or '-', starting with a letter or digit"
    else:
        return name
    raise ConfigError(f"variant {variant!r}: {problem}; pass one of {', '.join(known)}, or "
                      f"{CUSTOM_VARIANT_PREFIX}NAME for an index of your own (recorded as NAME)")


def _similarity_column(columns: list[str], variant: str, path: str, requested: str | None) -> tuple[str, str]:
    """The selection-score column and our encoder name: the one requested (full name or encoder suffix),
    else the only similarity column, else the variant family's (``clip_*``, ``mpnet_*``)."""
    found = {c[len(_SIM_PREFIX):]: c for c in columns if c.startswith(_SIM_PREFIX)}
    listed = sorted(found.values())
    if requested is not None:
        suffix = requested[len(_SIM_PREFIX):] if requested.startswith(_SIM_PREFIX) else requested
        if suffix not in found:
            raise IndexValidationError(path, f"no similarity column {requested!r}; its columns of that kind are "
                                       f"{listed}: pass one of them (or its encoder suffix) to --similarity-column")
    elif not found:
        raise IndexValidationError(path, f"no {_SIM_PREFIX}<encoder> column; is this the reference parquet?")
    elif len(found) == 1:
        suffix = next(iter(found))
    else:
        family = variant.split("_", 1)[0]
        chosen = [sfx for sfx in found if ENCODER_SUFFIXES.get(sfx, (None, None))[1] == family]
        if len(chosen) != 1:
            raise IndexValidationError(
                path, f"{len(found)} {_SIM_PREFIX}<encoder> columns {listed}, and variant {variant!r} does not say "
                "which one selected the rows: pass it to --similarity-column (its full name or encoder suffix)")
        suffix = chosen[0]
    return found[suffix], ENCODER_SUFFIXES.get(suffix, (suffix,))[0]


def has_row_id_index(frame: pd.DataFrame) -> bool:
    """Whether a reference parquet still has its pandas index of global LAION row ids (integers, and not the
    0..n-1 range that ``reset_index()`` or a save without the index leaves)."""
    index = frame.index
    return pd.api.types.is_integer_dtype(index.dtype) and not (isinstance(index, pd.RangeIndex) and index.start == 0)


def official_classes(label_keys, val_wnids=None) -> list[str]:
    """The reference's class set: every label-pickle key found in val, in catalogue order.

    Keys are taken literally: the husky's non-standard ``n02112837`` is no ImageNet-1k (val) class, so it is
    left out, as the reference leaves it out. Without ``val_wnids`` every key that is an ImageNet-1k wnid.
    """
    catalog = load_catalog()
    keys = {k for k in label_keys if k in catalog}
    if val_wnids is not None:
        keys &= set(val_wnids)
    return [w for w in catalog.wnids if w in keys]


def _row_ids(frame: pd.DataFrame, path: str) -> pd.Series:
    """The parquet's index: the global LAION row ids (range checks are the schema's)."""
    index = frame.index
    if not has_row_id_index(frame):
        raise IndexValidationError(
            path, f"its index ({index.dtype}, {index[:3].tolist()} ...) is not the global LAION row ids; the "
            "reference parquet keeps them as its pandas index: is this the reference file, saved with its index?")
    return pd.Series(index.to_numpy())


def _whole_numbers(frame: pd.DataFrame, column: str, row_ids: pd.Series, path: str) -> pd.Series:
    """A float column of whole numbers (the reference's HEIGHT, WIDTH, SAMPLE_ID) as nullable Int64."""
    values = frame[column].reset_index(drop=True)
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64")
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = (values.notna() & (numeric.isna() | ~(numeric.abs() < 2**63) | (numeric % 1 != 0))).to_numpy()
    if bad.any():
        raise row_error(path, int(bad.sum()), row_ids[bad].head(5).tolist(), column, "that are not whole numbers",
                        "fix or drop these rows")
    return numeric.astype("Int64")


def convert_official(
    parquet: str | Path, labels: str | Path | None, *, variant: str, similarity_column: str | None = None
) -> pd.DataFrame:
    """Convert the reference parquet (and optional label pickle) to a validated frame in our index schema.

    Args:
        parquet: the reference's parquet, its pandas index the global LAION row ids.
        labels: the reference's ``{wnid: [row id]}`` pickle, or ``None`` to label rows by ``name_def_wnid``.
        variant: a published variant's name, or ``custom:NAME`` (recorded as ``NAME``).
        similarity_column: the selection-score column (full name or encoder suffix); needed only when
            the file has several and the variant's family (``clip_*``, ``mpnet_*``) does not pick one.

    Labels come from the pickle when given (checked against ``name_def_wnid`` when both exist; pickle
    row ids the parquet lacks are logged), else from ``name_def_wnid`` (the class's synset text, or a
    wnid). The non-standard husky wnid is translated; ``recognized_text`` and LAION's own image-text
    ``similarity`` are kept as ``x_recognized_text`` / ``x_laion_similarity``. Problems raise
    :class:`IndexValidationError` naming this file, the reference's column and the row ids, and a bad
    ``variant`` :class:`~laionet_bench.errors.ConfigError`.
    """
    return _convert(parquet, labels, variant=variant, similarity_column=similarity_column)[0]


def import_official(
    parquet: str | Path, labels: str | Path | None, out: str | Path, *, variant: str,
    similarity_column: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """:func:`convert_official`, written to ``out``; returns the frame and the file's sha256.

    With ``labels``, the pickle's keys are recorded in ``out`` as given (empty classes and the husky's
    ``n02112837`` included): they are the class set the reference scores ImageNet-val over, which the
    rows alone cannot tell (:attr:`~laionet_bench.index.load.LaionetIndex.label_keys`).
    """
    check_output_file(out)  # a folder there fails before the files are read, not after the conversion
    frame, label_dict = _convert(parquet, labels, variant=variant, similarity_column=similarity_column)
    digest = write_index(frame, out, label_keys=None if label_dict is None else list(label_dict))
    return frame, digest


def _convert(parquet: str | Path, labels: str | Path | None, *, variant: str, similarity_column: str | None
             ) -> tuple[pd.DataFrame, dict[str, list[int]] | None]:
    """The converted frame and the label dict it came from (``None`` without ``labels``)."""
    path = str(parquet)
    variant = recorded_variant(variant)  # before any file is read: a typo costs nothing
    label_dict = None if labels is None else load_label_dict(labels)
    try:
        frame = pq.read_table(parquet).to_pandas()
    except Exception as exc:
        raise IndexValidationError(path, f"cannot be read as parquet: {exc}") from None
    required = ["URL", "TEXT", "SAMPLE_ID", "NSFW", "wnid_is_in_recognized_text"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise IndexValidationError(path, f"missing reference column(s) {missing}; is this the reference parquet?")
    sim_col, encoder = _similarity_column(list(frame.columns), variant, path, similarity_column)
    row_ids = _row_ids(frame, path)
    wnid = _labels(frame, row_ids, label_dict, labels, path)
    index_of = {c.wnid: c.index for c in load_catalog()}
    sample_id = frame["SAMPLE_ID"].reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(sample_id.dtype):
        sample_id = _whole_numbers(frame, "SAMPLE_ID", row_ids, path)
    sizes = {c: _whole_numbers(frame, c, row_ids, path) if c in frame else pd.NA for c in ("WIDTH", "HEIGHT")}
    out = pd.DataFrame(
        {
            "row_id": row_ids.to_numpy(),
            "sample_id": sample_id.astype("string").to_numpy(),
            "url": frame["URL"].to_numpy(),
            "caption": frame["TEXT"].to_numpy(),
            "wnid": wnid.to_numpy(),
            "class_index": wnid.map(index_of).astype("Int32").to_numpy(),
            "similarity": frame[sim_col].astype("float32").to_numpy(),
            "similarity_encoder": encoder,
            "nsfw": frame["NSFW"].to_numpy(),
            "ocr_flag": frame["wnid_is_in_recognized_text"].fillna(False).astype(bool).to_numpy(),
            "width": sizes["WIDTH"],
            "height": sizes["HEIGHT"],
            "license": frame["LICENSE"].to_numpy() if "LICENSE" in frame else None,
            "variant": variant,
        }
    )
    if "recognized_text" in frame:
        out["x_recognized_text"] = frame["recognized_text"].to_numpy()
    if "similarity" in frame:
        out["x_laion_similarity"] = frame["similarity"].astype("float32").to_numpy()
    label_source = "name_def_wnid" if labels is None else f"the label pickle {labels}"
    reference_columns = {**_REFERENCE_COLUMNS, "similarity": sim_col, "wnid": label_source, "class_index": label_source}
    return _validated(out, path, reference_columns), label_dict


def _validated(out: pd.DataFrame, path: str, reference_columns: dict[str, str]) -> pd.DataFrame:
    """Our schema's checks, reported against the reference file in its own column names."""
    try:
        return validate_index_table(pa.Table.from_pandas(out, preserve_index=False), path)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise IndexValidationError(path, f"a column holds values of mixed types: {exc}") from None
    except IndexValidationError as exc:
        field = reference_columns.get(exc.field, exc.field) if exc.field is not None else None
        raise IndexValidationError(path, exc.problem, field=field, row_ids=exc.row_ids) from None


def _labels_from_column(frame: pd.DataFrame, row_ids: pd.Series, path: str) -> pd.Series:
    """``name_def_wnid`` as wnids: the reference writes the class's synset text there (a wnid is accepted too)."""
    catalog = load_catalog()
    values = frame["name_def_wnid"].reset_index(drop=True)
    wnid = values.map({value: catalog.wnid_for_text(value) for value in values.dropna().unique()})
    unknown = wnid.isna().to_numpy()
    if unknown.any():
        raise row_error(path, int(unknown.sum()), row_ids[unknown].head(5).tolist(), "name_def_wnid",
                        "whose value is neither a class's synset text ('<name> which is <definition>') nor a wnid",
                        "fix these rows or pass the label pickle with --labels")
    return wnid


def class_of_rows(label_dict: Mapping[str, list[int]], labels: str | Path) -> dict[int, str]:
    """Row id → canonical wnid of a ``{wnid: [row id]}`` label dict (read from ``labels``); a row labelled
    with two classes is refused: each LAIONet row has one class."""
    by_row: dict[int, str] = {}
    for key, rows in label_dict.items():
        wnid = canonical_wnid(key)
        for row in rows:
            if by_row.setdefault(row, wnid) != wnid:
                raise IndexValidationError(str(labels), f"row id {row} is labelled {by_row[row]} and {key}: each "
                                           "LAIONet row has one class; fix the label pickle", field="wnid", row_ids=[row])
    return by_row


def _labels(frame: pd.DataFrame, row_ids: pd.Series, label_dict: dict[str, list[int]] | None, labels, path: str
            ) -> pd.Series:
    """Each parquet row's wnid: from the label pickle when given, else from ``name_def_wnid``."""
    from_column = _labels_from_column(frame, row_ids, path) if "name_def_wnid" in frame else None
    if label_dict is None:
        if from_column is None:
            raise IndexValidationError(path, "no name_def_wnid column and no label pickle: pass --labels")
        return from_column
    by_row = class_of_rows(label_dict, labels)
    _warn_rows_not_in_parquet(label_dict, by_row, row_ids, labels, path)
    wnid = row_ids.map(by_row)
    unlabelled = wnid.isna().to_numpy()
    if unlabelled.any():
        raise IndexValidationError(
            str(labels), f"{int(unlabelled.sum())} parquet row(s) have no label, e.g. row id {int(row_ids[unlabelled].iloc[0])}",
            field="wnid", row_ids=[int(r) for r in row_ids[unlabelled].iloc[:5]],
        )
    if from_column is not None:
        disagree = (from_column.to_numpy() != wnid.to_numpy())
        if disagree.any():
            logger.warning("%d rows: label pickle disagrees with name_def_wnid; using the pickle", int(disagree.sum()))
    return wnid


def _warn_rows_not_in_parquet(label_dict: dict[str, list[int]], by_row: dict[int, str], row_ids: pd.Series,
                              labels, path: str) -> None:
    """One warning for the pickle's row ids the parquet lacks, one for the classes that lose every row.

    Not an error: a parquet the reference filtered after labelling (or a part of one) is still a valid
    index, but its class counts are not the pickle's, so the user should know by how much.
    """
    pickled = pd.Series(list(by_row), dtype="int64")
    absent = pickled[~pickled.isin(row_ids).to_numpy()]
    if absent.empty:
        return
    logger.warning("%s: %d of its %d row ids are not in %s; those rows are left out", labels, len(absent),
                   len(pickled), path)
    gone = set(absent.tolist())
    lost = [wnid for wnid, rows in label_dict.items() if rows and gone.issuperset(rows)]
    if lost:
        more = ", ..." if len(lost) > 5 else ""
        logger.warning("%s: %d class(es) lose every row, being absent from %s: %s%s", labels, len(lost), path,
                       ", ".join(lost[:5]), more)
