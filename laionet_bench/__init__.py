"""laionet-bench: how much do ImageNet models lose on LAIONet?

The public API is re-exported here; everything else lives in modules named by concern
(``catalog``, ``index``, ``hub``, ``metrics``, ``results`` ...). The evaluation entry point is
``laionet_bench.evaluate.evaluate`` (not re-exported: the name would shadow its module).

Names are resolved lazily (PEP 562): the pytest plugin imports this package in every pytest run of an
environment where laionet-bench is installed, so ``import laionet_bench`` must not pull in pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module (relative to this package) that defines it
_EXPORTS = {
    "Catalog": "catalog",
    "LaionetBenchError": "errors",
    "LaionetIndex": "index",
    "ModelResult": "results",
    "assert_robustness_gap": "assertions",
    "compute_similarity": "similarity",
    "download_images": "images.download",
    "laionet_models": "_pytest.params",
    "lemma_map": "catalog",
    "load_catalog": "catalog",
    "load_index": "index",
    "read_results": "results",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover - static analysers see the eager imports
    from ._pytest.params import laionet_models as laionet_models
    from .assertions import assert_robustness_gap as assert_robustness_gap
    from .catalog import Catalog as Catalog
    from .catalog import lemma_map as lemma_map
    from .catalog import load_catalog as load_catalog
    from .errors import LaionetBenchError as LaionetBenchError
    from .images.download import download_images as download_images
    from .index import LaionetIndex as LaionetIndex
    from .index import load_index as load_index
    from .results import ModelResult as ModelResult
    from .results import read_results as read_results
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
