"""``evaluate()``: run what is missing, then compute and write every model's result (SPEC §4).

The flow: expand the model specs; load the LAIONet index and list its evaluated rows (OCR-flagged
rows dropped, rows without an image counted); list ImageNet-val (and ImageNet-V2) restricted to the
classes present in LAIONet; let the engine predict whatever the shared prediction store lacks (:mod:`.cache`: keyed by
run key, so a new results folder reuses every prediction already made), all datasets in one
plan (each model built once per run, :func:`engine.run_datasets`); then per model turn the
stored true ranks into per-class recall (:func:`metrics.per_class_recall`), summaries and gaps
(:func:`results.build_model_result`, LAION weights = :meth:`LaionetIndex.class_weights`, counted
before the OCR drop), fit effective robustness over the evaluated models when there are at least two
with ImageNet-val numbers, and write each result with :func:`results.write_result`.

The engine settings come as one :class:`engine.EngineOptions`, as :func:`similarity.compute_similarity`
takes its ``EmbedOptions``. What happened comes back as an :class:`EvaluationReport` (the results, the
models that failed and why, the images that could not be read), so callers never re-read the output
folder to learn it. The same facts stay part of the output: failed models are logged and listed in
``<out>/failures.json``, unreadable images in ``<out>/skipped_images.csv``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from .. import constants
from .._io import atomic_write, output_folder_writable, write_text_atomic
from ..config import resolve_setting
from ..datasets import Dataset, create_dataset, parse_dataset_spec
from ..errors import ConfigError, DatasetError, ModelSpecError
from ..index.load import LaionetIndex, load_index
from ..index.official import official_classes
from ..models.custom import as_model_specs
from ..models.registry import canonical_spec, check_weights_file, expand_model_specs, unused_weights
from .cache import LEGACY_STORE_FOLDER, adopt_store, prediction_cache
from .engine import EngineOptions, ModelOutcome, resolve_device, resolve_devices, run_datasets
from .metrics import per_class_recall
from .results import (
    ModelResult,
    Provenance,
    build_model_result,
    fit_robustness,
    robustness_of,
    summarize_dataset,
    write_result,
)
from .store import read_predictions
from .work import collect_work

__all__ = ["SKIPPED_COLUMNS", "STORE_FOLDER", "EvaluationReport", "ModelFailure", "evaluate", "load_datasets",
           "protocol_classes"]

logger = logging.getLogger(__name__)

#: Sub-folder of a results folder that held its prediction store before the shared cache (adopted on first use).
STORE_FOLDER = LEGACY_STORE_FOLDER
#: Columns of :attr:`EvaluationReport.skipped_images` and ``skipped_images.csv``.
SKIPPED_COLUMNS = ["dataset", "key", "wnid", "error"]


@dataclass(frozen=True)
class ModelFailure:
    """One model that gave no result because it failed on one dataset (an entry of ``failures.json``)."""

    model: str  # expanded spec, e.g. ``resnet50.a1_in1k``
    dataset: str  # ``laionet``, ``imagenet`` or ``imagenet-v2``
    reason: str  # the engine's ``ExceptionType: message``


@dataclass(frozen=True)
class _Scoring:
    """How results are scored: the protocol, and its class set (None = the classes present in LAIONet)."""

    protocol: str
    classes: list[str] | None


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """What one :func:`evaluate` call produced; iterating it yields the results.

    A model that failed on any dataset has no result and one :class:`ModelFailure` per dataset it
    failed on. Unreadable images do not fail a model: they are counted in ``n_failed`` and listed here.
    """

    results: list[ModelResult]  # written to ``out``, in the order of the expanded specs
    failures: list[ModelFailure]
    skipped_images: pd.DataFrame  # one row per unreadable image: SKIPPED_COLUMNS
    out: Path  # the results folder

    def __iter__(self) -> Iterator[ModelResult]:
        return iter(self.results)

    @property
    def ok(self) -> bool:
        """True when every model produced a result (skipped images do not count)."""
        return not self.failures

    def failure_reasons(self) -> dict[str, dict[str, str]]:
        """``{model: {dataset: reason}}``, sorted by model then dataset: the content of ``failures.json``."""
        reasons: dict[str, dict[str, str]] = {}
        for failure in sorted(self.failures, key=lambda f: (f.model, f.dataset)):
            reasons.setdefault(failure.model, {})[failure.dataset] = failure.reason
        return reasons


def _resolve_index(dataset: str, index: LaionetIndex | str | Path | None, hub_options: Mapping[str, Any]) -> LaionetIndex:
    if isinstance(index, LaionetIndex):
        return index
    if index is not None:
        return load_index(index)
    if dataset != "laionet" and not dataset.startswith("laionet:"):
        return load_index(dataset)  # a local index parquet / folder given as the dataset
    return load_index(dataset, **hub_options)


def load_datasets(*, dataset: str = "laionet", images=None, imagenet=None, imagenet_v2=None, index=None,
                  limit_per_class: int | None = None, limit: int | None = None,
                  hub_options: Mapping[str, Any] | None = None,
                  protocol: str = "ours") -> tuple[LaionetIndex, dict[str, Dataset]]:
    """The index and the datasets of one evaluation, keyed ``laionet`` / ``imagenet`` / ``imagenet-v2``.

    ImageNet-val (and -V2) list the classes the protocol scores (:func:`protocol_classes`).
    """
    idx = _resolve_index(dataset, index, hub_options or {})
    limits = {"limit_per_class": limit_per_class, "limit": limit}
    spec = f"laionet:{idx.variant}" if idx.variant else "laionet"
    sets = {"laionet": create_dataset(spec, images=images, index=idx, **limits)}
    classes = protocol_classes(idx, sets["laionet"], protocol)
    if imagenet is not None:
        sets["imagenet"] = create_dataset("imagenet-val", root=imagenet, classes=classes, **limits)
    if imagenet_v2 is not None:
        sets["imagenet-v2"] = create_dataset(_v2_spec(str(imagenet_v2)), root=_v2_root(str(imagenet_v2)),
                                             classes=classes, **limits)
    return idx, sets


def protocol_classes(idx: LaionetIndex, laionet: Dataset, protocol: str) -> list[str]:
    """The classes a protocol scores, before ImageNet-val is listed.

    ``ours``: the classes with an evaluated LAIONet row (SPEC §4). ``official``: the reference's set,
    every label-pickle key (:attr:`LaionetIndex.label_keys`, recorded by ``index import-official
    --labels``) as :func:`~laionet_bench.index.official.official_classes` takes them: empty LAIONet classes
    included, a key that is no catalogue wnid (the reference's husky ``n02112837``) left out untranslated,
    as the reference's val never has it. An index without recorded
    keys falls back to every class with an index row, OCR-flagged rows counted.
    """
    if protocol != "official":
        return laionet.wnids()
    if idx.label_keys is not None:
        return official_classes(idx.label_keys)
    logger.info("%s records no label-pickle keys: the official class set is every class with an index row", idx.source)
    return sorted(idx.table["wnid"].unique())


def _official_result_classes(sets: Mapping[str, Dataset], scored: list[str]) -> list[str]:
    """The official protocol averages over the scored classes found in ImageNet-val (977 for the CLIP variants)."""
    return official_classes(scored, sets["imagenet"].wnids() if "imagenet" in sets else None)


def _v2_spec(value: str) -> str:
    """``imagenet_v2`` is ``PATH`` or ``VARIANT=PATH``; the variant is also read off the folder name."""
    from ..datasets import IMAGENET_V2_VARIANTS

    variant, sep, _ = value.partition("=")
    if sep:
        parse_dataset_spec(f"imagenet-v2:{variant}")
        return f"imagenet-v2:{variant}"
    named = [v for v in IMAGENET_V2_VARIANTS if v in Path(value).name]
    return f"imagenet-v2:{named[0]}" if named else "imagenet-v2"


def _v2_root(value: str) -> str:
    return value.partition("=")[2] if "=" in value else value


def _recall_inputs(outcome: ModelOutcome, data: Dataset, protocol: str) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Per-class recall table, summary kwargs, and the skipped (unreadable) rows of one model/dataset.

    ``outcome`` is ``ok``, so it has its store (and a failed one its ``reason``, which :func:`fail` sets).
    """
    records = read_predictions(cast(Path, outcome.store), ["key", "wnid", "ok", "error", "true_rank"])
    records = records[records["key"].isin(data.table["key"]).to_numpy()]
    good = records[records["ok"].to_numpy(dtype=bool)]
    if good.empty:
        raise DatasetError(f"{data.name}: no image of the {len(data)} listed could be read; check the image folder")
    ranks = good["true_rank"].to_numpy()
    table = per_class_recall(good["wnid"].astype(str), ranks == 0, ranks < 5, protocol=protocol)
    skipped = records[~records["ok"].to_numpy(dtype=bool)][["key", "wnid", "error"]]
    kwargs = {"dataset": data.name, "identity": data.identity(), "n_listed": data.n_listed,
              "n_failed": data.n_failed + len(skipped), "n_excluded": data.n_excluded}
    return table, kwargs, skipped


def _result_for(spec: str, outcomes: dict[str, dict[str, ModelOutcome]], sets: dict[str, Dataset],
                idx: LaionetIndex, provenance: Provenance, scoring: _Scoring) -> tuple[ModelResult, list[pd.DataFrame]]:
    inputs = {name: _recall_inputs(outcomes[name][spec], data, scoring.protocol) for name, data in sets.items()}
    weights = idx.class_weights()
    keys = {name: outcomes[name][spec].run_key for name in sets}
    result = build_model_result(
        model=spec,
        run_key=hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest(),
        model_info=outcomes["laionet"][spec].model_info,
        provenance=provenance,
        laionet=inputs["laionet"][:2],
        imagenet=inputs["imagenet"][:2] if "imagenet" in inputs else None,
        weights=weights,
        classes=scoring.classes,
        protocol=scoring.protocol,
    )
    if "imagenet-v2" in inputs:
        table, kwargs, _ = inputs["imagenet-v2"]
        result.datasets["imagenet-v2"] = summarize_dataset(table, classes=result.classes, weights=weights, **kwargs)
    skipped = [frame.assign(dataset=sets[name].name) for name, (_, _, frame) in inputs.items() if len(frame)]
    return result, skipped


def _fill_effective_robustness(results: list[ModelResult]) -> None:
    """Each result's effective robustness over the run's models, by the leaderboard's rule (:func:`fit_robustness`)."""
    fit, _ = fit_robustness(results)
    if fit is None and sum("imagenet" in r.datasets for r in results) >= 2:
        logger.info("effective robustness needs models with different ImageNet accuracy; skipped")
    for result in results:
        result.effective_robustness = robustness_of(fit, result)


def _skipped_frame(skipped: list[pd.DataFrame]) -> pd.DataFrame:
    """Each unreadable image once, although every model of the run met it."""
    if not skipped:
        return pd.DataFrame(columns=SKIPPED_COLUMNS)
    return pd.concat(skipped).drop_duplicates(["dataset", "key"])[SKIPPED_COLUMNS].reset_index(drop=True)


def _write_reports(report: EvaluationReport) -> None:
    """``failures.json`` and ``skipped_images.csv`` describe this run: written when it has entries, removed
    otherwise, so a file left by an earlier run never reports a model that has since succeeded as failed."""
    failures, skipped = report.out / "failures.json", report.out / "skipped_images.csv"
    if report.failures:
        write_text_atomic(failures, json.dumps(report.failure_reasons(), indent=1, sort_keys=True) + "\n")
    else:
        failures.unlink(missing_ok=True)
    if len(report.skipped_images):
        with atomic_write(skipped, "w") as handle:
            report.skipped_images.to_csv(handle, index=False)
    else:
        skipped.unlink(missing_ok=True)


def _collect(specs: Sequence[str], outcomes: dict[str, dict[str, ModelOutcome]], sets: dict[str, Dataset],
             idx: LaionetIndex, provenance: Provenance,
             scoring: _Scoring) -> tuple[list[ModelResult], list[ModelFailure], pd.DataFrame]:
    """Per spec a result, or one failure per dataset it failed on; plus the unreadable images."""
    results, failures, skipped = [], [], []
    for spec in specs:
        failed = [ModelFailure(spec, name, o[spec].reason or "") for name, o in outcomes.items() if o[spec].status != "ok"]
        if failed:
            failures.extend(failed)
            continue
        result, skipped_rows = _result_for(spec, outcomes, sets, idx, provenance, scoring)
        results.append(result)
        skipped.extend(skipped_rows)
    return results, failures, _skipped_frame(skipped)


def _shard_report(outcomes: dict[str, dict[str, ModelOutcome]], out: Path, shard: tuple[int, int]) -> EvaluationReport:
    """A shard fills the store only: a model's result needs every dataset, which other shards may hold."""
    failures = [ModelFailure(o.spec, name, o.reason or "") for name, by_spec in outcomes.items() for o in by_spec.values()
                if o.status != "ok"]
    logger.info("shard %d/%d done: %d (model, dataset) pair(s) in the store; run the same command without --shard "
                "to write the results", *shard, sum(len(by_spec) for by_spec in outcomes.values()) - len(failures))
    return EvaluationReport(results=[], failures=failures, skipped_images=pd.DataFrame(columns=SKIPPED_COLUMNS), out=out)


def evaluate(
    models: Sequence[str],
    *,
    engine: EngineOptions | None = None,
    dataset: str = "laionet",
    images: str | Path | None = None,
    imagenet: str | Path | None = None,
    imagenet_v2: str | None = None,
    index: LaionetIndex | str | Path | None = None,
    limit_per_class: int | None = None,
    limit: int | None = None,
    out: str | Path | None = None,
    weights: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
    hub_options: Mapping[str, Any] | None = None,
    predictions: str | Path | None = None,
) -> EvaluationReport:
    """Evaluate ``models`` on LAIONet (and ImageNet-val / -V2 when given) and write their results.

    Args:
        models: model specs (names, wildcards, ``@file``, ``all``, ``paper``, ``openclip:ARCH/TAG``,
            ``hf:ORG/NAME``), or a user's own :class:`~laionet_bench.models.custom.CustomModel` / ``torch.nn.Module``.
        engine: how to run inference (:class:`engine.EngineOptions`); default: its defaults on
            :func:`~.engine.resolve_device`'s device.
        dataset: ``laionet[:variant]`` (index from the Hub) or a local index parquet.
        images: the LAIONet image store (shards + manifest folder, or ``<row_id>.<ext>`` files).
        imagenet: ImageNet-val in any accepted layout; without it there is no gap.
        imagenet_v2: ImageNet-V2 folder, ``PATH`` or ``VARIANT=PATH``.
        index: a :class:`LaionetIndex` or parquet path, so no Hub access is needed.
        limit_per_class: at most this many rows per class of each dataset.
        limit: at most this many rows of each dataset.
        out: results folder (default ``[tool.laionet-bench] results_dir`` / ``LAIONET_BENCH_RESULTS``).
        weights: ``{spec: local weights file}``.
        exclude: fnmatch patterns dropped from the expanded specs.
        hub_options: how the index is fetched from the Hub when neither ``index`` nor a local ``dataset`` is given:
            :func:`~laionet_bench.index.load.load_index`'s ``repo_id``, ``revision`` (pin one), ``cache_dir``,
            ``local_files_only``.
        predictions: the prediction store, shared by every results folder (default: the ``predictions``
            setting / ``LAIONET_BENCH_PREDICTIONS``, else ``<cache>/predictions``).

    Returns:
        The :class:`EvaluationReport`: results (also written to ``out``), failed models, skipped images.
        With ``engine.shard`` the run only fills the store with its share of the (model, dataset) pairs:
        the report has no results (run again without a shard, which computes nothing, to write them).
    """
    specs = expand_model_specs(as_model_specs(models), exclude=exclude)
    if not specs:
        raise ModelSpecError(f"no model left from {list(models)} after excluding {list(exclude)}")
    if weights:  # checked before anything is built: a typo must not surface after hours of other models
        weights = {canonical_spec(spec): str(check_weights_file(path, what=f"--weights entry for {spec}:"))
                   for spec, path in weights.items()}
        if unused := unused_weights(specs, weights):
            raise ModelSpecError(f"--weights names {', '.join(unused)}, which is not among the models to run "
                                 f"({', '.join(specs[:5])}{' …' if len(specs) > 5 else ''}): add it to --models "
                                 "or drop its --weights entry")
    out = Path(resolve_setting("results_dir", out, env=constants.RESULTS_DIR))
    engine = engine or EngineOptions(device=resolve_device())
    engine.check()
    devices = resolve_devices(engine.device)  # a bad device fails here, before the index is loaded
    writable = output_folder_writable(out)  # an --out that is a file fails here too
    idx, sets = load_datasets(dataset=dataset, images=images, imagenet=imagenet, imagenet_v2=imagenet_v2,
                              index=index, limit_per_class=limit_per_class, limit=limit, hub_options=hub_options,
                              protocol=engine.protocol)
    store = prediction_cache(predictions)
    adopt_store(out / STORE_FOLDER, store)  # an --out written before the shared cache: its predictions join it
    if not writable:
        _refuse_missing_work(specs, sets, out, store, weights, engine)
    outcomes = run_datasets(specs, sets, store_root=store, weights=weights, options=engine)
    if engine.shard:
        return _shard_report(outcomes, out, engine.shard)
    provenance = Provenance.collect(device=",".join(devices), dtype=engine.dtype)
    scored = protocol_classes(idx, sets["laionet"], engine.protocol)
    scoring = _Scoring(engine.protocol, _official_result_classes(sets, scored) if engine.protocol == "official" else None)
    results, failures, skipped = _collect(specs, outcomes, sets, idx, provenance, scoring)
    _fill_effective_robustness(results)
    report = EvaluationReport(results=results, failures=failures, skipped_images=skipped, out=out)
    if not writable:
        logger.warning("%s is read-only: the results come from its stored predictions and were not rewritten", out)
        return report
    for result in results:
        write_result(result, out)
    _write_reports(report)
    return report


def _refuse_missing_work(specs: Sequence[str], sets: Mapping[str, Dataset], out: Path, store: Path,
                         weights: Mapping[str, str] | None, engine: EngineOptions) -> None:
    """A read-only results folder serves what the store holds; anything to compute fails before a model is built."""
    work = collect_work(specs, sets, store_root=store, weights=weights, options=engine)
    todo = sum(pair.todo for pair in work.values() if pair.ok)
    if todo:
        raise ConfigError(f"--out {out} is read-only and {todo} prediction(s) are not in the prediction store "
                          f"{store} yet: pass a writable --out (a read-only folder only serves results whose "
                          "predictions are stored)")
