"""The paper's Section-4 experiments: why LAIONet looks unlike ImageNet (SPEC §6–7).

Each experiment is one module with one ``run_*`` function over the same datasets, encoders and
executors as the rest of the package, writing a results table, ``summary.json`` and figures under
``<out>/explain/<experiment>/``:

* :mod:`.frequency` — §4.1, intra-class similarity against ImageNet-V2's MTurk selection frequency (Fig. 7);
* :mod:`.captions` — §4.3, how well ImageNet-Captions texts single out their class (Fig. 8), streamed;
* :mod:`.multimodal` — §4.2, datasets A–D selected on caption *and* image, at a fixed size;
* :mod:`.text_search` — §4.4, ImageNet recreated by nearest-caption search in a FAISS index.

See docs/explain.md.
"""

from .captions import read_imagenet_captions as read_imagenet_captions
from .captions import run_captions as run_captions
from .frequency import SELECTION_FREQUENCY as SELECTION_FREQUENCY
from .frequency import run_v2_frequency as run_v2_frequency
from .multimodal import run_multimodal as run_multimodal
from .text_search import load_faiss_index as load_faiss_index
from .text_search import run_text_search as run_text_search

__all__ = [
    "SELECTION_FREQUENCY",
    "load_faiss_index",
    "read_imagenet_captions",
    "run_captions",
    "run_multimodal",
    "run_text_search",
    "run_v2_frequency",
]
