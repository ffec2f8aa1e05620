"""Results imported from the reference's own per-image files (``laionet-bench import-results``).

The reference (eval-on-laion) publishes, per evaluated predictor, two per-image columns
``top_1_is_correct_<predictor>`` / ``top_5_is_correct_<predictor>`` in its ImageNet-val parquet
(``ILSVRC2012_val.parquet``: index = val file name, ``name_def_wnid`` = the class's synset text) and in
its LAIONet parquets (index = global LAION row id, labels in the separate ``{wnid: [row id]}`` pickle).
The columns are object dtype holding True / False / None, None meaning the image got no prediction.
This module turns them into ordinary :class:`~laionet_bench.evaluation.results.ModelResult` records
under the ``official`` protocol, so ``leaderboard``, ``compare`` and the pytest plugin read them as any
other result:

* None rows are dropped and counted (``n_failed``), as the reference drops them before averaging;
* LAIONet rows whose ``wnid_is_in_recognized_text`` is True are excluded (``n_excluded``);
* the class set is every label-pickle key found in val (977 for the CLIP variants: the husky's
  non-standard key ``n02112837`` is no val class), empty LAIONet classes included; without a label
  pickle, every class the val file has;
* per-class SEs divide the Wilson half-width by the literal 1.96; LAION weights are each class's share
  of LAIONet rows before the OCR drop (of the pickle's rows when no LAIONet parquet is given);
* each predictor becomes the ``paper`` model set's spec (:func:`~laionet_bench.models.sets.paper_model_for_predictor`)
  with its Fig.-1 group in the model facts; a predictor no paper model has is imported when the user names
  its spec (``models={predictor: spec}``, the CLI's ``--model COLUMN=SPEC``), its group then read from the
  spec as for a computed result, and otherwise skipped with a warning. A named predictor the files lack is
  refused with the ones they have: a typo must not import nothing quietly.

Every identity records "imported from the reference's per-image results", the file names (never a
path) and their sha256. Bad input raises :class:`~laionet_bench.errors.ResultsError` (one line: the
file, the column, the rows, what to do) before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from .._io import sha256_file, slug
from ..catalog import canonical_wnid, load_catalog
from ..datasets.imagenet import labels_from_devkit, labels_from_loc_csv
from ..errors import DatasetError, ModelSpecError, ResultsError, UnknownNameError
from ..index.load import class_shares
from ..index.official import class_of_rows, has_row_id_index, load_label_dict, official_classes
from ..models.groups import group_of
from ..models.registry import canonical_spec
from ..models.sets import paper_model_for_predictor
from .metrics import per_class_recall
from .results import (
    ModelResult,
    Provenance,
    build_model_result,
    per_class_frame,
    read_result,
    summarize_dataset,
    write_result,
)

__all__ = [
    "IMPORTED_FROM",
    "ImportedResults",
    "PerImageResults",
    "SourceFile",
    "import_reference_results",
    "predictor_columns",
    "read_imagenet_val_results",
    "read_laionet_results",
    "write_imported",
]

logger = logging.getLogger(__name__)

IMPORTED_FROM = "imported from the reference's per-image results"
PROTOCOL = "official"
_TOP1, _TOP5 = "top_1_is_correct_", "top_5_is_correct_"
_OCR = "wnid_is_in_recognized_text"
_SHOWN_ROWS = 5


def _rows(keys, mask: np.ndarray) -> str:
    """``n row(s) (a, b, c, ...)`` for the rows of ``mask``."""
    picked = [str(k) for k in np.asarray(keys)[mask][:_SHOWN_ROWS]]
    more = ", ..." if int(mask.sum()) > _SHOWN_ROWS else ""
    return f"{int(mask.sum())} row(s) ({', '.join(picked)}{more})"


def _bad(path, column: str, problem: str, fix: str) -> ResultsError:
    return ResultsError(f"{path}: column {column!r}: {problem}: {fix}")


@dataclass(frozen=True)
class SourceFile:
    """One input file as results record it: its role, its name (no folder) and its sha256."""

    role: str  # "imagenet_val", "laionet", "labels", "ground_truth", "devkit_meta"
    name: str
    sha256: str

    @classmethod
    def of(cls, role: str, path: str | Path) -> SourceFile:
        return cls(role, Path(path).name, sha256_file(path))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PerImageResults:
    """One reference file's per-image correctness, each row labelled by a wnid."""

    dataset: str  # "imagenet-val", "laionet" or "laionet:<variant>"
    path: str  # as given, for messages only
    frame: pd.DataFrame  # the file's rows (its own index: val file names or LAION row ids)
    wnids: np.ndarray  # per row, canonical ImageNet-1k wnid
    excluded: np.ndarray  # per row, dropped on purpose (LAIONet's OCR flag)
    columns: dict[str, tuple[str, str]]  # predictor → (top-1 column, top-5 column)
    sources: tuple[SourceFile, ...]
    identity: dict = field(default_factory=dict)  # recorded in each summary

    def correctness(self, predictor: str) -> tuple[pd.Series, pd.Series]:
        """The predictor's top-1 / top-5 columns as object Series of True / False / None, checked."""
        top1, top5 = (_correctness(self.frame, c, self.path) for c in self.columns[predictor])
        keys = self.frame.index
        one_missing = (top1.isna() != top5.isna()).to_numpy()
        if one_missing.any():
            raise _bad(self.path, self.columns[predictor][0], f"{_rows(keys, one_missing)} are None in only one of "
                       f"{self.columns[predictor][0]} / {self.columns[predictor][1]}",
                       "None means the image got no prediction, so both columns must be None there")
        known = top1.notna().to_numpy()
        inconsistent = known & top1.fillna(False).to_numpy(dtype=bool) & ~top5.fillna(False).to_numpy(dtype=bool)
        if inconsistent.any():
            raise _bad(self.path, self.columns[predictor][0], f"{_rows(keys, inconsistent)} are top-1 correct but "
                       f"not top-5 correct ({self.columns[predictor][1]} False)",
                       "the columns are inconsistent; fix them or re-export the reference's results")
        return top1, top5


def predictor_columns(columns, path) -> dict[str, tuple[str, str]]:
    """Predictor → its ``(top_1_is_correct_<p>, top_5_is_correct_<p>)`` columns; each needs both."""
    names = [str(c) for c in columns]
    top1 = {c[len(_TOP1):] for c in names if c.startswith(_TOP1)}
    top5 = {c[len(_TOP5):] for c in names if c.startswith(_TOP5)}
    if not top1 and not top5:
        raise ResultsError(f"{path}: no {_TOP1}<predictor> / {_TOP5}<predictor> columns: is this the reference's "
                           "per-image results file (ILSVRC2012_val.parquet or a LAIONet parquet with predictions)?")
    for predictor in sorted(top1 ^ top5):
        have, need = (_TOP1, _TOP5) if predictor in top1 else (_TOP5, _TOP1)
        raise ResultsError(f"{path}: column {have + predictor!r} has no {need + predictor!r} beside it: both top-1 "
                           "and top-5 columns are needed; restore it or drop the predictor's other column")
    return {p: (_TOP1 + p, _TOP5 + p) for p in sorted(top1)}


def _correctness(frame: pd.DataFrame, column: str, path) -> pd.Series:
    """A correctness column as object True / False / None; any other value names the rows."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values.dtype) and not isinstance(values.dtype, pd.BooleanDtype):
        return values.astype(object)
    raw = values.astype(object)
    missing = raw.isna().to_numpy()
    is_bool = raw.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
    bad = ~(missing | is_bool)
    if bad.any():
        shown = sorted({repr(v) for v in raw[bad].head(50)})[:3]
        raise _bad(path, column, f"{_rows(frame.index, bad)} hold {', '.join(shown)}, not True / False / None",
                   "the reference writes True, False, or None for an image without a prediction; fix these rows")
    return pd.Series([None if m else bool(v) for v, m in zip(raw, missing, strict=True)], index=frame.index,
                     dtype=object)


def _read_parquet(path, what: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file; pass the reference's {what}") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's, said in one line
        raise ResultsError(f"{path}: cannot be read as parquet ({type(exc).__name__}: {exc}); is this the "
                           f"reference's {what}?") from None


def _refuse_repeats(frame: pd.DataFrame, path, what: str) -> None:
    """Each image is one row: a repeated val file name or row id would count its image twice."""
    repeated = frame.index.duplicated(keep=False)
    if repeated.any():
        counts = frame.index[repeated].value_counts(sort=False)
        shown = ", ".join(f"{key} ×{count}" for key, count in counts.head(_SHOWN_ROWS).items())
        more = ", ..." if len(counts) > _SHOWN_ROWS else ""
        raise ResultsError(f"{path}: index: {len(counts)} {what} appear more than once ({shown}{more}): each image "
                           "must be one row; drop the repeated rows or re-export the reference's results")


def _wnids_from_synset_text(frame: pd.DataFrame, path) -> np.ndarray:
    """``name_def_wnid`` (the class's synset text, or a wnid) as canonical wnids."""
    catalog = load_catalog()
    values = frame["name_def_wnid"].astype(object)
    wnids = values.map({value: catalog.wnid_for_text(value) for value in values.dropna().unique()})
    unknown = wnids.isna().to_numpy()
    if unknown.any():
        example = str(values[unknown].iloc[0])[:60]
        raise _bad(path, "name_def_wnid", f"{_rows(frame.index, unknown)} hold text that is no ImageNet-1k class's "
                   f"synset text ('<name> which is <definition>'), e.g. {example!r}",
                   "is this the reference's file? pass --devkit DIR to label val images by file name instead")
    return wnids.to_numpy(dtype=object)


def _ground_truth(devkit: str | Path) -> tuple[dict[str, str], tuple[SourceFile, ...]]:
    """Val file stem → wnid from the devkit (ground truth + meta.mat) or Kaggle's LOC_val_solution.csv."""
    root = Path(devkit)
    if not root.is_dir():
        raise DatasetError(f"--devkit {root}: no such folder; pass the ILSVRC2012_devkit_t12 folder")
    for folder in (root, root / "data", root / "ILSVRC2012_devkit_t12" / "data"):
        truth, meta = folder / "ILSVRC2012_validation_ground_truth.txt", folder / "meta.mat"
        if truth.is_file() and meta.is_file():
            return labels_from_devkit(truth, meta), (SourceFile.of("ground_truth", truth), SourceFile.of("devkit_meta", meta))
        if (folder / "LOC_val_solution.csv").is_file():
            csv = folder / "LOC_val_solution.csv"
            return labels_from_loc_csv(csv), (SourceFile.of("ground_truth", csv),)
    raise DatasetError(f"--devkit {root}: no ILSVRC2012_validation_ground_truth.txt + meta.mat (in it or its data/ "
                       "folder) and no LOC_val_solution.csv: pass the ILSVRC2012_devkit_t12 folder")


def _wnids_from_devkit(frame: pd.DataFrame, devkit, path) -> tuple[np.ndarray, tuple[SourceFile, ...]]:
    labels, sources = _ground_truth(devkit)
    stems = [re.sub(r"\.[A-Za-z]+$", "", str(k)) for k in frame.index]
    wnids = pd.Series([labels.get(s) for s in stems], index=frame.index, dtype=object)
    unlabelled = wnids.isna().to_numpy()
    if unlabelled.any():
        raise ResultsError(f"{path}: index: {_rows(frame.index, unlabelled)} are not val file names the ground truth "
                           f"in {devkit} knows: the index must be the val file names (ILSVRC2012_val_00000001.JPEG ...)")
    if "name_def_wnid" in frame:
        catalog = load_catalog()
        stated = frame["name_def_wnid"].astype(object).map(catalog.wnid_for_text).to_numpy(dtype=object)
        disagree = np.array([s is not None and s != w for s, w in zip(stated, wnids, strict=True)])
        if disagree.any():
            raise _bad(path, "name_def_wnid", f"{_rows(frame.index, disagree)} name another class than the ground "
                       f"truth in {devkit}", "is this the ILSVRC2012 devkit? Leave out --devkit to use name_def_wnid")
    return wnids.to_numpy(dtype=object), sources


def read_imagenet_val_results(path: str | Path, *, devkit: str | Path | None = None) -> PerImageResults:
    """The reference's ``ILSVRC2012_val.parquet``, labelled by ``name_def_wnid`` or by the devkit's ground truth."""
    frame = _read_parquet(path, "ILSVRC2012_val.parquet")
    _refuse_repeats(frame, path, "val file names")
    columns = predictor_columns(frame.columns, path)
    sources: tuple[SourceFile, ...] = (SourceFile.of("imagenet_val", path),)
    if devkit is not None:
        wnids, truth = _wnids_from_devkit(frame, devkit, path)
        sources += truth
    elif "name_def_wnid" in frame:
        wnids = _wnids_from_synset_text(frame, path)
    else:
        raise ResultsError(f"{path}: no name_def_wnid column to label the images: pass --devkit DIR for the ground "
                           "truth by file name")
    identity = {"ground_truth": sources[1].name if devkit is not None else "name_def_wnid"}
    return PerImageResults("imagenet-val", str(path), frame, wnids, np.zeros(len(frame), dtype=bool), columns,
                           sources, identity)


def _row_ids(frame: pd.DataFrame, path) -> np.ndarray:
    index = frame.index
    if not has_row_id_index(frame):
        raise ResultsError(f"{path}: its index ({index.dtype}, {index[:3].tolist()} ...) is not the global LAION row "
                           "ids the label pickle names: is this the reference's LAIONet parquet, saved with its index?")
    return index.to_numpy()


def _wnids_from_labels(row_ids: np.ndarray, labels: Mapping[str, list[int]], labels_path, path) -> np.ndarray:
    by_row = class_of_rows(labels, labels_path)
    catalog = load_catalog()
    wnids = np.array([by_row.get(int(r)) for r in row_ids], dtype=object)
    unlabelled = np.array([w is None for w in wnids], dtype=bool)
    if unlabelled.any():
        raise ResultsError(f"{path}: index: {_rows(row_ids, unlabelled)} have no label in {labels_path}: pass the "
                           "label pickle of this LAIONet variant")
    outside = np.array([w not in catalog for w in wnids], dtype=bool)
    if outside.any():
        raise ResultsError(f"{labels_path}: labels {_rows(wnids, outside)} are no ImageNet-1k wnid: fix the label pickle")
    return wnids


def read_laionet_results(path: str | Path, *, labels: Mapping[str, list[int]], labels_path: str | Path,
                         variant: str | None = None) -> PerImageResults:
    """A reference LAIONet parquet with predictions, labelled by the ``{wnid: [row id]}`` pickle's content."""
    frame = _read_parquet(path, "LAIONet parquet")
    columns = predictor_columns(frame.columns, path)
    row_ids = _row_ids(frame, path)
    _refuse_repeats(frame, path, "LAION row ids")
    wnids = _wnids_from_labels(row_ids, labels, labels_path, path)
    if _OCR not in frame:
        raise ResultsError(f"{path}: no {_OCR!r} column: the OCR flag decides which rows are evaluated; is this the "
                           "reference's LAIONet parquet?")
    flag = frame[_OCR].astype(object)
    odd = ~(flag.isna() | flag.map(lambda v: isinstance(v, bool | np.bool_))).to_numpy(dtype=bool)
    if odd.any():
        raise _bad(path, _OCR, f"{_rows(frame.index, odd)} are not True / False", "fix these rows")
    excluded = flag.fillna(False).to_numpy(dtype=bool)
    sources = (SourceFile.of("laionet", path), SourceFile.of("labels", labels_path))
    dataset = f"laionet:{variant}" if variant else "laionet"
    return PerImageResults(dataset, str(path), frame, wnids, excluded, columns, sources,
                           {"variant": variant} if variant else {})


def _label_weights(labels: Mapping[str, list[int]]) -> pd.Series:
    return class_shares([canonical_wnid(k) for k, rows in labels.items() for _ in rows])


@dataclass(frozen=True)
class ImportedResults:
    """What an import produced: one result per known predictor, and what it left out."""

    results: list[ModelResult]
    classes: list[str]  # the class set every result averages over
    skipped: list[str]  # predictors no paper model has
    dropped: dict[str, dict[str, int]]  # model spec → dataset → rows without a prediction (None), dropped


def _dataset_inputs(data: PerImageResults, predictor: str, classes: list[str]) -> tuple[pd.DataFrame, dict]:
    """``(per-class recall table, summarize_dataset kwargs)`` of one predictor on one file."""
    top1, top5 = data.correctness(predictor)
    listed = np.isin(data.wnids.astype(str), classes)
    considered = listed & ~data.excluded
    missing = top1.isna().to_numpy()
    keep = considered & ~missing
    if not keep.any():
        raise ResultsError(f"{data.path}: column {data.columns[predictor][0]!r}: no evaluated row of the "
                           f"{len(classes)} classes has a prediction (all None or excluded): drop this predictor's columns")
    table = per_class_recall(data.wnids[keep].astype(str), top1[keep].astype(bool), top5[keep].astype(bool),
                             protocol=PROTOCOL)
    identity = {"source": IMPORTED_FROM, **{f"{s.role}_file": s.name for s in data.sources},
                **{f"{s.role}_sha256": s.sha256 for s in data.sources}, "rows": len(data.frame), **data.identity}
    kwargs = {"dataset": data.dataset, "identity": identity, "n_listed": int(listed.sum()),
              "n_failed": int((considered & missing).sum()), "n_excluded": int((listed & data.excluded).sum())}
    return table, kwargs


def _assemble(*, spec: str, run_key: str, info: dict, provenance: Provenance, inputs: dict[str, tuple],
              weights: pd.Series | None, classes: list[str]) -> ModelResult:
    if "laionet" in inputs:
        return build_model_result(model=spec, run_key=run_key, model_info=info, provenance=provenance,
                                  laionet=inputs["laionet"], imagenet=inputs.get("imagenet"), weights=weights,
                                  classes=classes, protocol=PROTOCOL)
    table, kwargs = inputs["imagenet"]
    frame = per_class_frame({"imagenet": table}, classes, weights)
    return ModelResult(model=spec, run_key=run_key, model_info=info, classes=classes,
                       datasets={"imagenet": summarize_dataset(table, classes=classes, weights=weights, **kwargs)},
                       provenance=provenance, per_class=frame, protocol=PROTOCOL)


def _spec_facts(spec: str, predictor: str) -> dict:
    """What a result's model facts say of a spec the user named: kind, architecture, tag, and the group the
    leaderboard reads from them (:func:`~laionet_bench.models.groups.group_of`), as for a computed result."""
    if spec.startswith("openclip:"):
        kind, (architecture, _, tag) = "openclip", spec.removeprefix("openclip:").partition("@")[0].partition("/")
    elif spec.startswith(("hf:", "custom:")):
        kind, architecture, tag = spec.partition(":")[0], predictor, ""
    else:  # timm, by name or hf-hub: id
        kind, (architecture, _, tag) = "timm", spec.partition(".")
    facts = {"architecture": architecture, "pretrained_tag": tag or None, "kind": kind}
    return {**facts, "pretrain_group": group_of(facts, spec)}


def _model_of(predictor: str, named: Mapping[str, str]) -> tuple[str, dict]:
    """The spec of ``predictor``'s results and their model facts: the user's spec when named, else the paper's."""
    if predictor in named:
        return named[predictor], {**_spec_facts(named[predictor], predictor), "spec_from": "given (--model)"}
    paper = paper_model_for_predictor(predictor)
    if paper is None:
        raise ResultsError(f"{predictor!r} is not one of the paper's predictors")
    return paper.spec, {"architecture": predictor, "pretrained_tag": None, "pretrain_group": paper.group,
                        "kind": "openclip" if paper.spec.startswith("openclip:") else "hf", "spec_from": "paper set"}


def _result(predictor: str, named: Mapping[str, str], files: dict[str, PerImageResults], classes: list[str],
            weights: pd.Series | None, provenance: Provenance) -> ModelResult:
    spec, facts = _model_of(predictor, named)
    present = {key: data for key, data in files.items() if predictor in data.columns}
    inputs = {key: _dataset_inputs(data, predictor, classes) for key, data in present.items()}
    sources = [s.to_dict() for data in present.values() for s in data.sources]
    info = {**facts, "imported_from": IMPORTED_FROM, "predictor": predictor,
            "columns": {key: list(data.columns[predictor]) for key, data in present.items()}, "sources": sources}
    keyed = {"imported": predictor, "protocol": PROTOCOL, "classes": classes, "sources": sources}
    if predictor in named:  # another spec for the same columns is another result
        keyed["spec"] = spec
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()
    return _assemble(spec=spec, run_key=key, info=info, provenance=provenance, inputs=inputs,
                     weights=weights, classes=classes)


def _named_predictors(models: Mapping[str, str], files: Mapping[str, PerImageResults]) -> dict[str, str]:
    """``{COLUMN: SPEC}`` as the user gave it → ``{predictor: canonical spec}``, each predictor checked against the
    files' columns. COLUMN is the predictor (``my-net``) or either of its columns (``top_1_is_correct_my-net``)."""
    have = sorted({p for data in files.values() for p in data.columns})
    named: dict[str, str] = {}
    for column, spec in models.items():
        predictor = column.removeprefix(_TOP1).removeprefix(_TOP5)
        if predictor not in have:
            paths = ", ".join(data.path for data in files.values())
            raise ResultsError(f"--model {column}={spec}: {paths} has no {_TOP1}{predictor} / {_TOP5}{predictor} "
                               f"columns; its predictors are: {', '.join(have)}; name one of them")
        if predictor in named:
            raise ResultsError(f"--model names predictor {predictor!r} twice; give each predictor one spec")
        try:
            named[predictor] = canonical_spec(spec)
        except (ModelSpecError, UnknownNameError) as exc:
            raise ModelSpecError(f"--model {column}={spec}: {exc}") from None
    return named


def import_reference_results(
    *,
    imagenet_val: str | Path | None = None,
    devkit: str | Path | None = None,
    laionet: str | Path | None = None,
    labels: str | Path | None = None,
    variant: str | None = None,
    models: Mapping[str, str] | None = None,
) -> ImportedResults:
    """Read the reference's per-image files and build one ``official``-protocol result per known predictor.

    Args:
        imagenet_val: the reference's ``ILSVRC2012_val.parquet``.
        devkit: ILSVRC2012 devkit folder; labels val images by file name instead of ``name_def_wnid``.
        laionet: a reference LAIONet parquet with ``top_{1,5}_is_correct_<predictor>`` columns (needs ``labels``).
        labels: the variant's ``{wnid: [row id]}`` pickle: LAIONet's labels and the official class set.
        variant: the LAIONet variant's name (``clip_top50``), recorded in the dataset name.
        models: ``{predictor: spec}`` for predictors the ``paper`` set lacks (or to name a paper one otherwise):
            the ``<predictor>`` of ``top_{1,5}_is_correct_<predictor>`` (or either full column name) → the model
            spec whose results these are (``resnet50.a1_in1k``, ``hf:ORG/NAME``). A predictor the files lack is
            a :class:`ResultsError` listing theirs.

    Nothing is written; :func:`write_imported` writes the results.
    """
    if imagenet_val is None and laionet is None:
        raise ResultsError("nothing to import: pass --imagenet-val FILE and/or --laionet FILE --labels PICKLE")
    if devkit is not None and imagenet_val is None:
        raise ResultsError("--devkit labels the val file: pass --imagenet-val FILE with it")
    if laionet is not None and labels is None:
        raise ResultsError(f"--laionet {laionet}: its rows are labelled by the variant's label pickle: pass --labels "
                           "PICKLE (the reference's {wnid: [row ids]} file)")
    label_dict = load_label_dict(labels) if labels is not None else None
    files: dict[str, PerImageResults] = {}
    if imagenet_val is not None:
        files["imagenet"] = read_imagenet_val_results(imagenet_val, devkit=devkit)
    if laionet is not None:
        files["laionet"] = read_laionet_results(laionet, labels=cast(dict, label_dict), labels_path=cast(Path, labels),
                                                 variant=variant)  # both checked above
    named = _named_predictors(models or {}, files)
    val_wnids = set(files["imagenet"].wnids) if "imagenet" in files else None
    classes = official_classes(label_dict, val_wnids) if label_dict is not None else official_classes(val_wnids)
    if not classes:
        raise ResultsError(f"{labels}: no key of the label pickle is a class of {imagenet_val}: pass the label "
                           "pickle of a LAIONet variant")
    weights = (class_shares(files["laionet"].wnids) if "laionet" in files
               else _label_weights(label_dict) if label_dict is not None else None)
    predictors = sorted({p for data in files.values() for p in data.columns})
    skipped = [p for p in predictors if paper_model_for_predictor(p) is None and p not in named]
    for predictor in skipped:
        logger.warning("skipping predictor %r: no model of the 'paper' set has that name "
                       "(laionet_bench.models.sets.PAPER_MODELS); import it with --model %s=SPEC", predictor, predictor)
    if len(skipped) == len(predictors):
        raise ResultsError(f"no predictor column names a model of the 'paper' set (found: {', '.join(predictors)}); "
                           "the reference's names are e.g. resnet-50, clip-vit-base-patch32; import another with "
                           "--model COLUMN=SPEC")
    provenance = Provenance.collect(device="n/a (imported)", dtype="n/a (imported)")
    results = [_result(p, named, files, classes, weights, provenance) for p in predictors if p not in skipped]
    dropped = {r.model: {s.dataset: s.n_failed for s in r.datasets.values()} for r in results}
    return ImportedResults(results=results, classes=classes, skipped=skipped, dropped=dropped)


def write_imported(results: list[ModelResult], out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write each result under ``out``; first refuse (before writing any) to replace a result that was not imported.

    A computed result of the same model (``laionet-bench run``) lives in the same folder; it is replaced only
    with ``overwrite``. An earlier import of the same model is replaced.
    """
    for result in results:
        folder = Path(out) / slug(result.model)
        if overwrite or not (folder / "result.json").exists():
            continue
        try:
            earlier = read_result(folder).model_info.get("imported_from")
        except ResultsError:
            earlier = None
        if earlier != IMPORTED_FROM:
            raise ResultsError(f"{folder}: holds a result of {result.model} that was not imported; nothing was "
                               "written: pass --overwrite to replace it, or choose another --out")
    return [write_result(result, out) for result in results]
