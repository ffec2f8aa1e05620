"""Options of the LAIONet checks: builders shared by the pytest plugin and the CLI, ini names, resolution.

The builders take ``addoption`` (pytest's ``group.addoption`` or argparse's ``add_argument``) and a
``prefix``: the plugin passes ``"laionet-"`` (``--laionet-results``), the CLI ``""`` (``--results``).
Every setting also has an ini name read from ``[tool.pytest.ini_options]``; :func:`resolve_settings`
applies the precedence command line > ini > ``[tool.laionet-bench]`` > environment > default.
Import-light: loaded in every pytest run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import constants
from ..checks.tolerance import parse_tolerance
from ..config import resolve_setting
from ..errors import ConfigError

__all__ = [
    "DEFAULT_BASELINE_DIR",
    "INI_OPTIONS",
    "MISSING_CHOICES",
    "PluginSettings",
    "add_check_options",
    "add_live_options",
    "add_plugin_options",
    "add_results_options",
    "resolve_settings",
    "tolerance_arg",
]

MISSING_CHOICES = ("fail", "skip")
#: Baselines folder, relative to the rootdir, when neither option nor ini names one.
DEFAULT_BASELINE_DIR = "tests/laionet_baselines"

#: ini name -> (pytest ini type, help). Each mirrors the ``--laionet-*`` option of the same name.
INI_OPTIONS: dict[str, tuple[Literal["string", "paths", "bool"], str]] = {
    "laionet_results": ("paths", "results folders, model folders or result.json files to read"),
    "laionet_dataset": ("string", "LAIONet dataset spec of the results, e.g. laionet:clip_0.82"),
    "laionet_images": ("string", "LAIONet images (shards + manifest) for --laionet-run"),
    "laionet_imagenet": ("string", "ImageNet-val path for --laionet-run"),
    "laionet_index": ("string", "LAIONet index file for --laionet-run"),
    "laionet_device": ("string", "device for --laionet-run (cpu, cuda, mps)"),
    "laionet_run": ("bool", "compute missing results live (like --laionet-run)"),
    "laionet_missing": ("string", "fail or skip a check whose result is missing (default: fail)"),
    "laionet_tolerance": ("string", "default tolerance of the checks: 'se' or a number of standard errors"),
    "laionet_baseline_dir": ("string", f"per-class baselines folder (default: {DEFAULT_BASELINE_DIR})"),
    "laionet_baseline_tolerance": ("string", "regression tolerance in standard errors (overrides the files')"),
    "laionet_missing_baseline": ("string", "fail (default) or skip the baseline comparison of a model without "
                                 "a baseline file"),
}


def tolerance_arg(value: str) -> float:
    """argparse ``type=``: ``se`` or a number of standard errors."""
    try:
        return parse_tolerance(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def missing_arg(value: str) -> str:
    """argparse ``type=``: what to do when a result is missing."""
    lowered = value.strip().lower()
    if lowered not in MISSING_CHOICES:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(MISSING_CHOICES)}")
    return lowered


def _dest(prefix: str, name: str) -> str:
    return (prefix + name).replace("-", "_")


def add_results_options(addoption: Callable[..., Any], *, prefix: str = "laionet-") -> None:
    """Where stored results are read from."""
    addoption(f"--{prefix}results", dest=_dest(prefix, "results"), action="append", type=Path, metavar="PATH",
              default=None, help="results folder, model folder or result.json to read; repeatable "
              "(default: %(default)r → ini laionet_results → $LAIONET_BENCH_RESULTS → "
              "[tool.laionet-bench] results_dir → 'results')")
    addoption(f"--{prefix}dataset", dest=_dest(prefix, "dataset"), type=str, metavar="DATASET", default=None,
              help="LAIONet dataset spec; stored results on another dataset are ignored (default: %(default)r = any)")


def add_live_options(addoption: Callable[..., Any], *, prefix: str = "laionet-") -> None:
    """What a live evaluation runs on (the same inputs as ``laionet-bench run``)."""
    addoption(f"--{prefix}images", dest=_dest(prefix, "images"), type=str, metavar="PATH", default=None,
              help="LAIONet images for live runs (default: %(default)r = the engine's default)")
    addoption(f"--{prefix}imagenet", dest=_dest(prefix, "imagenet"), type=str, metavar="PATH", default=None,
              help="ImageNet-val for live runs; without it there is no gap (default: %(default)r)")
    addoption(f"--{prefix}index", dest=_dest(prefix, "index"), type=str, metavar="PATH", default=None,
              help="LAIONet index file for live runs (default: %(default)r = the Hub index)")
    addoption(f"--{prefix}device", dest=_dest(prefix, "device"), type=str, metavar="DEVICE", default=None,
              help="device for live runs: cpu, cuda, mps (default: %(default)r = the engine's choice)")


def add_check_options(addoption: Callable[..., Any], *, prefix: str = "laionet-") -> None:
    """How bounds and baselines are judged."""
    addoption(f"--{prefix}tolerance", dest=_dest(prefix, "tolerance"), type=tolerance_arg, metavar="K",
              default=None, help="slack of max_gap/min_accuracy bounds: 'se' (1 standard error) or a number "
              "of standard errors; a marker's tolerance= wins (default: %(default)r → ini → 'se')")
    addoption(f"--{prefix}baseline-dir", dest=_dest(prefix, "baseline_dir"), type=Path, metavar="DIR",
              default=None, help=f"per-class baselines folder (default: %(default)r → ini → {DEFAULT_BASELINE_DIR})")
    addoption(f"--{prefix}baseline-tolerance", dest=_dest(prefix, "baseline_tolerance"), type=tolerance_arg,
              metavar="K", default=None, help="per-class regression tolerance in standard errors; replaces the "
              "baseline files' own (default: %(default)r = the file's)")


def add_plugin_options(addoption: Callable[..., Any]) -> None:
    """Options only the pytest plugin has."""
    add_results_options(addoption, prefix="laionet-")
    add_live_options(addoption, prefix="laionet-")
    add_check_options(addoption, prefix="laionet-")
    addoption("--laionet-run", dest="laionet_run", action="store_true", default=None,
              help="compute missing results live with the evaluation engine (default: off, or ini laionet_run)")
    addoption("--laionet-missing", dest="laionet_missing", type=missing_arg, metavar="fail|skip", default=None,
              help="what a check does when its result is missing (default: %(default)r → ini → 'fail')")
    addoption("--laionet-update-baseline", dest="laionet_update_baseline", action="store_true", default=False,
              help="(re)write the per-class baselines of every checked model instead of comparing "
              "(default: %(default)r)")
    addoption("--laionet-json", dest="laionet_json", type=Path, metavar="PATH", default=None,
              help="write every check to this JSON report (default: %(default)r)")


@dataclass(frozen=True)
class PluginSettings:
    """The plugin's resolved configuration (command line > ini > pyproject > environment > default)."""

    # where results come from
    results: tuple[Path, ...]
    dataset: str | None
    # live runs
    run: bool
    images: str | None
    imagenet: str | None
    index: str | None
    device: str | None
    # judging
    missing: str  # "fail" | "skip"
    tolerance: float  # standard errors
    baseline_dir: Path
    baseline_tolerance: float | None  # None: each baseline file's own
    missing_baseline: str  # "fail" | "skip": a model without a baseline file (skip: compare nothing)
    update_baseline: bool
    json_report: Path | None

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()} | {
            "results": [str(p) for p in self.results]}


def _ini(config, name: str, parse: Callable[[str], Any] = str) -> Any:
    value = config.getini(name)
    if value in ("", [], None):
        return None
    if isinstance(value, str):
        try:
            return parse(value)
        except (argparse.ArgumentTypeError, ConfigError) as exc:
            raise ConfigError(f"ini option {name} = {value!r}: {exc}") from None
    return value


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def resolve_settings(config) -> PluginSettings:
    """Resolve every setting of a pytest ``config`` (raises ``ConfigError`` on a bad ini value)."""
    opt = config.getoption
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    results = opt("laionet_results") or _ini(config, "laionet_results")
    if not results:
        results = [Path(resolve_setting("results_dir", env=constants.RESULTS_DIR))]
    baseline_dir = opt("laionet_baseline_dir") or _first(_ini(config, "laionet_baseline_dir", Path),
                                                         Path(DEFAULT_BASELINE_DIR))
    json_report = opt("laionet_json")
    invocation_dir = config.invocation_params.dir
    return PluginSettings(
        results=tuple(Path(p) for p in results),
        dataset=resolve_setting("dataset", _first(opt("laionet_dataset"), _ini(config, "laionet_dataset"))),
        run=bool(_first(opt("laionet_run"), _ini(config, "laionet_run"), False)),
        images=_first(opt("laionet_images"), _ini(config, "laionet_images")),
        imagenet=resolve_setting("imagenet", _first(opt("laionet_imagenet"), _ini(config, "laionet_imagenet"))),
        index=_first(opt("laionet_index"), _ini(config, "laionet_index")),
        device=resolve_setting("device", _first(opt("laionet_device"), _ini(config, "laionet_device"))),
        missing=_first(opt("laionet_missing"), _ini(config, "laionet_missing", missing_arg), "fail"),
        tolerance=_first(opt("laionet_tolerance"), _ini(config, "laionet_tolerance", tolerance_arg), 1.0),
        baseline_dir=baseline_dir if opt("laionet_baseline_dir") or baseline_dir.is_absolute()
        else ini_dir / baseline_dir,
        baseline_tolerance=_first(opt("laionet_baseline_tolerance"),
                                  _ini(config, "laionet_baseline_tolerance", tolerance_arg)),
        missing_baseline=_first(_ini(config, "laionet_missing_baseline", missing_arg), "fail"),
        update_baseline=bool(opt("laionet_update_baseline")),
        json_report=invocation_dir / json_report if json_report else None,
    )
