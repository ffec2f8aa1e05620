"""laionet-bench: how much do ImageNet models lose on LAIONet?

The public API is re-exported here; everything else lives in modules named by concern
(``catalog``, ``index``, ``hub``, ``metrics``, ``results`` ...).
"""

__version__ = "0.1.0"

from .catalog import Catalog as Catalog  # noqa: E402
from .catalog import lemma_map as lemma_map  # noqa: E402
from .catalog import load_catalog as load_catalog  # noqa: E402
from .errors import LaionetBenchError as LaionetBenchError  # noqa: E402
from .index import LaionetIndex as LaionetIndex  # noqa: E402
from .index import load_index as load_index  # noqa: E402
from .results import ModelResult as ModelResult  # noqa: E402
from .results import read_results as read_results  # noqa: E402

__all__ = [
    "Catalog",
    "LaionetBenchError",
    "LaionetIndex",
    "ModelResult",
    "__version__",
    "lemma_map",
    "load_catalog",
    "load_index",
    "read_results",
]
