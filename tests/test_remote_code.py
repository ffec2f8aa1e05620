"""No model's own code ever runs: every loader says ``trust_remote_code=False``, and ``auto_map`` is refused up front.

The ``hf:`` classifiers' folders, Hub repos and CLI are tested in ``test_models_hf.py``; here are the scan of
the package's loader calls and the other loaders: open_clip's Hugging Face text tower and tokenizer (the
rebuild's text encoders, the similarity encoders) and sentence-transformers folders.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import laionet_bench
from laionet_bench.errors import ModelSpecError
from laionet_bench.hub.remote_code import refuse_custom_code

from .fakes.custom_code import add_custom_code

PACKAGE = Path(laionet_bench.__file__).parent
#: calls that load a checkpoint and take ``trust_remote_code`` (transformers classes, sentence-transformers)
LOADERS = {"from_pretrained", "from_config", "SentenceTransformer"}
REFUSAL = "has 'auto_map' (custom model code); laionet-bench never runs a model's own code"


def _loader_calls():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name in LOADERS:
                    yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", node


def _says_false(call: ast.Call) -> bool:
    return any(k.arg == "trust_remote_code" and isinstance(k.value, ast.Constant) and k.value.value is False
               for k in call.keywords)


def test_every_loader_call_in_the_package_passes_trust_remote_code_false():
    """Without it transformers asks "run the custom code? [y/N]" for a checkpoint with an ``auto_map`` (and
    ``y`` runs it); with it, transformers uses the architecture it ships or refuses. Spread kwargs do not count."""
    calls = dict(_loader_calls())
    assert len(calls) >= 6, sorted(calls)  # hf.py's three (one helper serves AutoConfig and AutoImageProcessor), textsim's three
    assert [where for where, call in calls.items() if not _says_false(call)] == []


def _own_code_folder(folder: Path, files=("config.json",)) -> Path:
    """A model folder with nothing but the files that name its own code; returns the code's marker file."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "evil-vit"}))
    return add_custom_code(folder, files)


def test_refusal_names_the_file_and_ignores_what_it_cannot_read(tmp_path):
    marker = _own_code_folder(tmp_path / "m", ("tokenizer_config.json",))
    refuse_custom_code("x", str(tmp_path / "m"), ("config.json",))  # no auto_map there
    with pytest.raises(ModelSpecError, match=re.escape(f"x: tokenizer_config.json {REFUSAL}")):
        refuse_custom_code("x", str(tmp_path / "m"), ("config.json", "tokenizer_config.json"))
    (tmp_path / "m" / "config.json").write_text("not json")
    refuse_custom_code("x", str(tmp_path / "m"), ("config.json", "missing.json"))  # left to the loader
    refuse_custom_code("x", "someorg/not-cached", ("config.json",))  # offline, not cached: the loader says so
    assert not marker.exists()


def _open_clip_folder(folder: Path, text_cfg: dict) -> Path:
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1, **text_cfg}}
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    return folder


def test_an_open_clip_text_tower_with_its_own_code_is_refused(tmp_path):
    from laionet_bench.rebuild.textsim import load_encoder

    tower = tmp_path / "tower"
    marker = _own_code_folder(tower)
    clip = _open_clip_folder(tmp_path / "clip", {"hf_model_name": str(tower), "hf_tokenizer_name": str(tower)})
    name = f"openclip:local-dir:{clip}"
    with pytest.raises(ModelSpecError, match=re.escape(f"{name} (text tower {tower}): config.json {REFUSAL}")):
        load_encoder(name, device="cpu")
    assert not marker.exists()


def test_an_open_clip_local_dir_tokenizer_with_its_own_code_is_refused(tmp_path):
    from laionet_bench.rebuild.textsim import load_encoder

    clip = _open_clip_folder(tmp_path / "clip", {"hf_tokenizer_name": "some/tokenizer"})
    (clip / "config.json").write_text(json.dumps({"model_type": "evil-vit"}))
    marker = add_custom_code(clip, ("tokenizer_config.json",))
    name = f"openclip:local-dir:{clip}"
    with pytest.raises(ModelSpecError, match=re.escape(f"{name} (tokenizer {clip}): tokenizer_config.json {REFUSAL}")):
        load_encoder(name, device="cpu")
    assert not marker.exists()


def test_a_similarity_encoder_from_a_hub_repo_naming_such_a_tower_is_refused(tmp_path):
    from laionet_bench.similarity.encoders import create_encoder

    tower = tmp_path / "tower"
    marker = _own_code_folder(tower)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--evil-org--evil-clip"
    _open_clip_folder(repo / "snapshots" / commit, {"hf_model_name": str(tower)})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    with pytest.raises(ModelSpecError, match=re.escape(f"(text tower {tower}): config.json {REFUSAL}")):
        create_encoder("openclip:hf-hub:evil-org/evil-clip", random_init=True)
    assert not marker.exists()


def test_a_sentence_transformers_folder_with_its_own_code_is_refused(tmp_path):
    from laionet_bench.rebuild.textsim import load_encoder

    marker = _own_code_folder(tmp_path / "st")
    name = f"sentence-transformers:{tmp_path / 'st'}"
    with pytest.raises(ModelSpecError, match=re.escape(f"{name}: config.json {REFUSAL}")):
        load_encoder(name, device="cpu")
    assert not marker.exists()
