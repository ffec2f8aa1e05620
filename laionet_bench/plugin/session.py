"""The plugin's working object: finds or computes results, runs marker checks, keeps the records.

One :class:`LaionetSession` per pytest process (controller or xdist worker), created on first use and
kept in ``config.stash``. It is pytest-agnostic except for :class:`LaionetHandle`, the object the
``laionet`` fixture hands to tests, which turns a missing result into a failure or a skip.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import shlex
from pathlib import Path
from typing import Any

import pytest

from .._io import slug
from ..checks.baselines import (
    BaselineComparison,
    baseline_path,
    compare_to_baseline,
    read_baseline,
    write_baseline,
)
from ..checks.gap import RobustnessCheck, check_robustness
from ..checks.tolerance import METRIC_CHOICES, WEIGHTING_CHOICES, parse_tolerance
from ..errors import ConfigError, MissingResultError, ModelSpecError, RobustnessError
from ..evaluation.results import RESULT_FILE, ModelResult, read_result
from .options import PluginSettings

__all__ = ["MARKER_KEYWORDS", "LaionetHandle", "LaionetSession", "marker_checks"]

log = logging.getLogger(__name__)

#: Keywords ``@pytest.mark.laionet`` accepts; anything else is an error.
MARKER_KEYWORDS = ("model", "max_gap", "min_accuracy", "metric", "weighting", "tolerance", "baseline")
ENGINE_MODULE = "laionet_bench.evaluation.evaluator"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (shorter CI logs and commands)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _matches(stored: str, wanted: str) -> bool:
    """``resnet50`` matches a stored ``resnet50.a1_in1k``; a tagged spec must match exactly."""
    return stored == wanted or slug(stored) == slug(wanted) or stored.split(".", 1)[0] == wanted


def marker_checks(item) -> list[dict[str, Any]]:
    """Validated keyword sets of every ``laionet`` marker on ``item`` (``ConfigError`` when invalid)."""
    checks = []
    for mark in item.iter_markers("laionet"):
        kwargs = dict(mark.kwargs)
        unknown = sorted(set(kwargs) - set(MARKER_KEYWORDS))
        if unknown:
            raise ConfigError(f"@pytest.mark.laionet got unknown keyword(s) {unknown}; known: {list(MARKER_KEYWORDS)}")
        if len(mark.args) > 1 or (mark.args and "model" in kwargs):
            raise ConfigError("@pytest.mark.laionet takes the model as its only positional argument or as model=")
        if mark.args:
            kwargs["model"] = mark.args[0]
        if "model" not in kwargs:
            params = getattr(getattr(item, "callspec", None), "params", {})
            if "model" not in params:
                raise ConfigError("@pytest.mark.laionet needs model=... (or a parametrized 'model' argument)")
            kwargs["model"] = params["model"]
        _validate_values(kwargs)
        checks.append(kwargs)
    return checks


def _validate_values(kwargs: dict[str, Any]) -> None:
    if not isinstance(kwargs["model"], str) or not kwargs["model"]:
        raise ConfigError(f"@pytest.mark.laionet model={kwargs['model']!r} must be a model spec string")
    for name in ("max_gap", "min_accuracy"):
        value = kwargs.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"@pytest.mark.laionet {name}={value!r} must be a number")
    if kwargs.get("metric", "top1") not in METRIC_CHOICES:
        raise ConfigError(f"@pytest.mark.laionet metric={kwargs['metric']!r} is not one of {METRIC_CHOICES}")
    if kwargs.get("weighting", "equi") not in WEIGHTING_CHOICES:
        raise ConfigError(f"@pytest.mark.laionet weighting={kwargs['weighting']!r} is not one of {WEIGHTING_CHOICES}")
    if "tolerance" in kwargs:
        parse_tolerance(kwargs["tolerance"])
    if not isinstance(kwargs.get("baseline", True), bool):
        raise ConfigError(f"@pytest.mark.laionet baseline={kwargs['baseline']!r} must be True or False")


class LaionetSession:
    """Results lookup, live evaluation, marker checks, baselines and the records of one process."""

    def __init__(self, settings: PluginSettings):
        self.settings = settings
        self.records: list[dict] = []
        self._results: dict[str, ModelResult] = {}
        self._origins: dict[str, str] = {}  # result.model -> where it came from

    # -- results -------------------------------------------------------------------------------
    def run_command(self, model: str) -> str:
        """The ``laionet-bench run`` command that produces ``model``'s result with these settings.

        It runs as printed: every configured input is passed, nothing else (no placeholder to edit), each
        argument quoted by ``shlex.join``.
        """
        s = self.settings
        args = ["laionet-bench", "run", "--models", model, "--out", _shown(self.results_dir)]
        for flag, value in (("--dataset", s.dataset), ("--images", s.images), ("--imagenet", s.imagenet),
                            ("--index", s.index), ("--device", s.device)):
            args += [flag, value] if value else []
        return shlex.join(args)

    @property
    def results_dir(self) -> Path:
        """Where live runs write: the first configured results source that is a folder."""
        for source in self.settings.results:
            if source.suffix != ".json" and not (source / RESULT_FILE).exists():
                return source
        return self.settings.results[0].parent

    def _dataset_ok(self, result: ModelResult) -> bool:
        """Whether ``result`` was measured on the configured dataset: ``laionet`` (any variant), ``laionet:VARIANT``,
        or an index parquet (the dataset setting the CLI reads too), matched by the sha256 its result records."""
        want = self.settings.dataset
        summary = result.datasets.get("laionet")
        if want is None:
            return True
        if self._wanted_index is not None:
            return summary is not None and (summary.identity.get("index") or {}).get("sha256") == self._wanted_index
        got = summary.dataset if summary is not None else ""
        return got == want or (":" not in want and got.split(":", 1)[0] == want)

    @functools.cached_property
    def _wanted_index(self) -> str | None:
        """The sha256 of the index file the dataset setting names; None when it names ``laionet[:VARIANT]``."""
        from ..errors import UnknownNameError
        from ..index.load import index_sha256, parse_index_spec

        want = self.settings.dataset
        try:
            kind, value = parse_index_spec(want)
        except UnknownNameError:
            return None
        return index_sha256(Path(value).expanduser()) if kind == "file" and value else None

    def _candidates(self, source: Path, model: str) -> list[Path]:
        """Model folders (or JSON files) under ``source`` that may hold ``model``."""
        if source.is_file():
            return [source]
        if (source / RESULT_FILE).is_file():
            return [source]
        direct = source / slug(model)
        if (direct / RESULT_FILE).is_file():
            return [direct]
        found = []
        for path in sorted(source.glob(f"*/{RESULT_FILE}")):
            stored = json.loads(path.read_text("utf-8")).get("model", "")
            if _matches(stored, model):
                found.append(path.parent)
        return found

    @staticmethod
    def _load(path: Path) -> ModelResult:
        if path.is_dir() or path.name == RESULT_FILE:
            return read_result(path if path.is_dir() else path.parent)
        return ModelResult.from_dict(json.loads(path.read_text("utf-8")))

    def find(self, model: str) -> ModelResult | None:
        """The stored result of ``model`` in the configured sources, or ``None``."""
        if model in self._results:
            return self._results[model]
        for source in self.settings.results:
            matches = [r for r in map(self._load, self._candidates(source, model))
                       if _matches(r.model, model) and self._dataset_ok(r)]
            if len({r.model for r in matches}) > 1:
                raise ModelSpecError(f"{model!r} matches several results in {source}: "
                                     f"{sorted(r.model for r in matches)}; name the model with its tag")
            if matches:
                return self._remember(model, matches[0], f"stored: {_shown(source)}")
        return None

    def _remember(self, model: str, result: ModelResult, origin: str) -> ModelResult:
        self._results[model] = result
        self._origins[result.model] = origin
        return result

    def result(self, model: str) -> ModelResult:
        """Stored result, else a live run under ``--laionet-run``, else ``MissingResultError``."""
        found = self.find(model)
        if found is not None:
            return found
        if self.settings.run:
            return self.evaluate(model)
        raise MissingResultError(model, searched=[_shown(s) for s in self.settings.results],
                                 command=self.run_command(model))

    def evaluate(self, model: str) -> ModelResult:
        """Evaluate ``model`` now with the evaluation engine (resumes from its store)."""
        if importlib.util.find_spec(ENGINE_MODULE) is None:
            raise ConfigError("--laionet-run needs the evaluation engine (laionet_bench.evaluate), "
                              "which this installation of laionet-bench lacks")
        from ..evaluation.allocator import tune_allocator
        from ..evaluation.engine import EngineOptions
        from ..evaluation.evaluator import evaluate

        tune_allocator()  # as the CLI does: a CPU forward reuses heap blocks (LAIONET_BENCH_ALLOCATOR=default opts out)
        s = self.settings
        data: dict[str, Any] = {"dataset": s.dataset, "images": s.images, "imagenet": s.imagenet, "index": s.index}
        engine = EngineOptions(device=s.device) if s.device else None  # None: the engine picks the best device
        log.info("evaluating %s live into %s", model, self.results_dir)
        report = evaluate(models=[model], out=self.results_dir, engine=engine,
                          **{k: v for k, v in data.items() if v is not None})
        matching = [r for r in report.results if _matches(r.model, model)]
        if not matching:
            why = "; ".join(f"{f.model} on {f.dataset}: {f.reason}" for f in report.failures) or "see the log above"
            raise ModelSpecError(f"the live evaluation of {model!r} produced no result: {why}")
        return self._remember(model, matching[0], "live")

    # -- checks --------------------------------------------------------------------------------
    def baseline(self, result: ModelResult, *, metric: str = "top1") -> BaselineComparison | None:
        """Write the baseline (update mode), compare with it, or fail without it (``None``: not compared).

        A missing file fails, as in pytest-regressions: a check that silently compares nothing cannot be
        trusted. ``laionet_missing_baseline = skip`` keeps the old behaviour (``None``).
        """
        s = self.settings
        path = baseline_path(s.baseline_dir, result.model)
        if s.update_baseline:
            write_baseline(result, s.baseline_dir, tolerance=s.baseline_tolerance)
            return BaselineComparison(model=result.model, metric=metric, path=_shown(path),
                                      tolerance=read_baseline(path).tolerance, n_compared=0, written=True)
        if not path.exists():
            if s.missing_baseline == "skip":
                return None
            return BaselineComparison.no_baseline(result.model, metric, _shown(path), s.baseline_tolerance)
        return compare_to_baseline(result, read_baseline(path), metric=metric, tolerance=s.baseline_tolerance,
                                   path=_shown(path))

    def check_marker(self, kwargs: dict[str, Any], result: ModelResult, nodeid: str) -> list[str]:
        """Run one marker's checks on ``result``; returns failure messages (empty when it passed)."""
        metric = kwargs.get("metric", "top1")
        check = check_robustness(
            result, max_gap=kwargs.get("max_gap"), min_accuracy=kwargs.get("min_accuracy"), metric=metric,
            weighting=kwargs.get("weighting", "equi"), tolerance=kwargs.get("tolerance", self.settings.tolerance),
        )
        comparison = self.baseline(result, metric=metric) if kwargs.get("baseline", True) else None
        self.record(nodeid, check, baseline=comparison)
        failures = [] if check.passed else [check.message()]
        if comparison is not None and not comparison.passed:
            failures.append(comparison.message())
        return failures

    def record(self, nodeid: str, check: RobustnessCheck | BaselineComparison, *,
               baseline: BaselineComparison | None = None) -> None:
        """Keep one check for the summary table and the JSON report."""
        entry = {"nodeid": nodeid, "source": self._origins.get(check.model, "given"), **check.to_dict()}
        if baseline is not None:
            entry["baseline"] = baseline.to_dict()
            entry["passed"] = entry["passed"] and baseline.passed
        self.records.append(entry)


class LaionetHandle:
    """What the ``laionet`` fixture returns: results and checks bound to the pytest configuration."""

    def __init__(self, session: LaionetSession):
        self._session = session

    @property
    def settings(self) -> PluginSettings:
        return self._session.settings

    def result(self, model: str) -> ModelResult:
        """The model's result; a missing one fails the test (or skips it under ``laionet_missing = skip``)."""
        try:
            return self._session.result(model)
        except MissingResultError as exc:
            message = str(exc)
        # outside the except block: the CI log shows the message, not a chained traceback
        if self.settings.missing == "skip":
            pytest.skip(message)
        pytest.fail(f"{message}\nor let pytest compute it: pytest --laionet-run", pytrace=False)

    def evaluate(self, model: str) -> ModelResult:
        """Run the evaluation engine on ``model`` now (stored work is reused by the engine)."""
        return self._session.evaluate(model)

    def per_class(self, model: str):
        """The model's per-class table (pandas DataFrame: recalls, SEs, counts, drops)."""
        result = self.result(model)
        if result.per_class is None:
            pytest.fail(f"the result of {model!r} has no per-class table (per_class.parquet)", pytrace=False)
        return result.per_class

    def check(self, model: str, **bounds: Any) -> RobustnessCheck:
        """``assert_robustness_gap`` on ``model``'s result, with the configured default tolerance."""
        from ..checks.gap import assert_robustness_gap

        bounds.setdefault("tolerance", self.settings.tolerance)
        return assert_robustness_gap(self.result(model), **bounds)

    def check_baseline(self, model: str, *, metric: str = "top1") -> BaselineComparison | None:
        """Compare ``model`` with its baseline (or write it under ``--laionet-update-baseline``)."""
        comparison = self._session.baseline(self.result(model), metric=metric)
        if comparison is not None:
            from ..checks.recorder import record

            record(comparison)
            if not comparison.passed:
                raise RobustnessError(comparison.message())
        return comparison
