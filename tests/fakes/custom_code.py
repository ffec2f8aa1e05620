"""A model folder that brings its own code: an ``auto_map`` naming a ``modeling_evil.py`` whose import leaves a mark."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["AUTO_MAPS", "add_custom_code"]

#: file → the ``auto_map`` transformers would follow in it
AUTO_MAPS = {
    "config.json": {"AutoConfig": "modeling_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel",
                    "AutoModelForImageClassification": "modeling_evil.EvilModel",
                    "AutoImageProcessor": "modeling_evil.EvilProcessor"},
    "preprocessor_config.json": {"AutoImageProcessor": "modeling_evil.EvilProcessor"},
    "tokenizer_config.json": {"AutoTokenizer": ["modeling_evil.EvilTokenizer", None]},
}

MODELING = '''\
import pathlib

pathlib.Path({marker!r}).write_text("the folder's own code ran")

from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor


class EvilConfig(ViTConfig):
    model_type = "evil-vit"


class EvilModel(ViTForImageClassification):
    config_class = EvilConfig


class EvilProcessor(ViTImageProcessor):
    pass
'''


def add_custom_code(folder: Path, files: tuple[str, ...] = ("config.json",)) -> Path:
    """Give ``folder`` an ``auto_map`` in each of ``files`` (created when missing) and the code it names.

    ``config.json`` also gets a ``model_type`` transformers does not ship, and ``preprocessor_config.json``
    loses its ``image_processor_type``, so transformers has nothing but the folder's code to load: without
    ``trust_remote_code=False`` it asks whether to run it. Returns the marker file that code writes on import.
    """
    marker = folder.parent / f"{folder.name}-code-ran"
    (folder / "modeling_evil.py").write_text(MODELING.format(marker=str(marker)))
    for name in files:
        path = folder / name
        data = json.loads(path.read_text()) if path.is_file() else {}
        data["auto_map"] = AUTO_MAPS[name]
        if name == "config.json":
            data["model_type"] = "evil-vit"
        if name == "preprocessor_config.json":
            data.pop("image_processor_type", None)
        path.write_text(json.dumps(data))
    return marker
