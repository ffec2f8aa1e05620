"""Model folders and Hub repos that bring their own Python code are refused before transformers reads them.

A transformers checkpoint whose ``config.json`` (or image processor / tokenizer file) has an ``auto_map``
names classes in ``.py`` files shipped beside the weights. Asked to load one without ``trust_remote_code``,
transformers prompts "Do you wish to run the custom code? [y/N]" on the terminal, and ``y`` imports and runs
that code (``transformers.dynamic_module_utils.resolve_trust_remote_code``). laionet-bench never runs a
model's own code, so it defends in two layers:

* every ``from_pretrained`` / ``from_config`` / ``SentenceTransformer(...)`` of the package passes
  ``trust_remote_code=False`` (``tests/test_remote_code.py`` reads the AST to keep it so): transformers then
  never prompts, and either uses the architecture it ships or refuses with a multi-line ``ValueError``;
* :func:`refuse_custom_code` reads the files transformers would act on first and refuses with one line that
  names the file and the field, before transformers (or sentence-transformers, or open_clip's Hugging Face
  text tower) sees the folder.

The pre-check only ever adds a refusal: a file it cannot get (not cached offline, the Hub unreachable, not
JSON) is left to the loader, whose own error says what is wrong, and whose ``trust_remote_code=False``
still holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ModelSpecError

__all__ = ["CUSTOM_CODE_FIELD", "IMAGE_CLASSIFIER_FILES", "TEXT_MODEL_FILES", "refuse_custom_code",
           "refuse_open_clip_custom_code"]

#: The field through which a checkpoint names its own classes (``{"AutoConfig": "modeling_x.XConfig", ...}``).
CUSTOM_CODE_FIELD = "auto_map"
#: What ``AutoConfig`` / ``AutoModelForImageClassification`` / ``AutoImageProcessor`` follow an ``auto_map`` in.
IMAGE_CLASSIFIER_FILES = ("config.json", "preprocessor_config.json")
#: What ``AutoConfig`` / ``AutoModel`` / ``AutoTokenizer`` follow an ``auto_map`` in (text towers, sentence models).
TEXT_MODEL_FILES = ("config.json", "tokenizer_config.json")


def _local_copy(location: str, name: str, revision: str | None) -> Path | None:
    """``name`` of a local folder, or of a Hub repo through huggingface_hub's cache; None when it cannot be had."""
    folder = Path(location).expanduser()
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    try:  # the same file, cache and offline mode the loader uses; it reports its own failures
        return Path(hf_hub_download(location, name, revision=revision))
    except (OSError, ValueError, hf_errors.EntryNotFoundError):
        return None


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def refuse_custom_code(spec: str, location: str, files: Iterable[str], *, revision: str | None = None) -> None:
    """Raise :class:`ModelSpecError` when one of ``files`` of ``location`` (folder or Hub repo id) has an ``auto_map``.

    ``spec`` is what the user named (it leads the message); ``files`` are those the caller's loaders follow
    an ``auto_map`` in (:data:`IMAGE_CLASSIFIER_FILES`, :data:`TEXT_MODEL_FILES`).
    """
    for name in files:
        if _read_json(_local_copy(location, name, revision)).get(CUSTOM_CODE_FIELD):
            raise ModelSpecError(f"{spec}: {name} has {CUSTOM_CODE_FIELD!r} (custom model code); laionet-bench never "
                                 "runs a model's own code — use a model whose architecture transformers ships")


def _open_clip_config(model_name: str) -> dict[str, Any]:
    """open_clip's model config of ``model_name`` (built-in, ``local-dir:`` or ``hf-hub:``), or {}."""
    if model_name.startswith("local-dir:"):
        raw = _read_json(Path(model_name.removeprefix("local-dir:")).expanduser() / "open_clip_config.json")
    elif model_name.startswith("hf-hub:"):
        raw = _read_json(_local_copy(model_name.removeprefix("hf-hub:"), "open_clip_config.json", None))
    else:
        import open_clip

        raw = open_clip.get_model_config(model_name) or {}
    return raw.get("model_cfg", raw)


def refuse_open_clip_custom_code(model_name: str, *, spec: str) -> None:
    """:func:`refuse_custom_code` for the Hugging Face text tower and tokenizer an open_clip model loads.

    open_clip builds a ``text_cfg.hf_model_name`` tower with ``AutoConfig`` / ``AutoModel`` and an
    ``hf_tokenizer_name`` tokenizer with ``AutoTokenizer`` (from the ``local-dir:`` folder itself when the
    model is one; from the ``hf-hub:`` repo when its config names none) and passes no ``trust_remote_code``:
    this check is what keeps their ``auto_map`` from a prompt. open_clip's built-in architectures name towers
    whose architecture transformers ships.
    """
    config = _open_clip_config(model_name)
    text_cfg = config.get("text_cfg") or {}
    tower = text_cfg.get("hf_model_name")
    if tower:
        refuse_custom_code(f"{spec} (text tower {tower})", str(tower), ("config.json",))
    schema, _, ident = model_name.partition(":") if model_name.startswith(("local-dir:", "hf-hub:")) else ("", "", "")
    tokenizer = text_cfg.get("hf_tokenizer_name") or (ident if schema == "hf-hub" and not config else None)
    if tokenizer:
        source = ident if schema == "local-dir" else str(tokenizer)
        refuse_custom_code(f"{spec} (tokenizer {source})", source, TEXT_MODEL_FILES)
