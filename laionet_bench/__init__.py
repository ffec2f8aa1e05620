"""laionet-bench: how much do ImageNet models lose on LAIONet?

The public API is re-exported here; everything else lives in subpackages that follow the data flow
(``catalog`` → ``hub`` → ``index`` → ``images`` → ``datasets`` → ``models`` → ``evaluation`` →
``similarity`` → ``leaderboard`` → ``checks`` → ``plugin``, with ``rebuild`` and ``demo`` beside them).

Names are resolved lazily (PEP 562): the pytest plugin imports this package in every pytest run of an
environment where laionet-bench is installed, so ``import laionet_bench`` must not pull in pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

#: public name -> module (relative to this package) that defines it
_EXPORTS = {
    "Catalog": "catalog",
    "EngineOptions": "evaluation.engine",
    "LaionetBenchError": "errors",
    "LaionetIndex": "index",
    "ModelResult": "evaluation.results",
    "assert_robustness_gap": "checks.gap",
    "compute_similarity": "similarity",
    "create_dataset": "datasets",
    "download_images": "images.download",
    "evaluate": "evaluation.evaluator",
    "laionet_models": "plugin.params",
    "lemma_map": "catalog",
    "load_catalog": "catalog",
    "load_index": "index",
    "read_results": "evaluation.results",
    "tune_allocator": "evaluation.allocator",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover - static analysers see the eager imports
    from .catalog import Catalog as Catalog
    from .catalog import lemma_map as lemma_map
    from .catalog import load_catalog as load_catalog
    from .checks.gap import assert_robustness_gap as assert_robustness_gap
    from .datasets import create_dataset as create_dataset
    from .errors import LaionetBenchError as LaionetBenchError
    from .evaluation.allocator import tune_allocator as tune_allocator
    from .evaluation.engine import EngineOptions as EngineOptions
    from .evaluation.evaluator import evaluate as evaluate
    from .evaluation.results import ModelResult as ModelResult
    from .evaluation.results import read_results as read_results
    from .images.download import download_images as download_images
    from .index import LaionetIndex as LaionetIndex
    from .index import load_index as load_index
    from .plugin.params import laionet_models as laionet_models
    from .similarity import compute_similarity as compute_similarity


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
