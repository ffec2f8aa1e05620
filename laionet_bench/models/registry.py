"""The model registry: which models a spec names, their preprocessing, and a checked logit → wnid map.

A model spec is one of

* a timm name with or without pretrained tag (``resnet50``, ``resnet50.a1_in1k``); untagged names
  resolve to timm's default tag, so the canonical spec always carries one;
* an fnmatch wildcard over tagged timm names (``convnext_*``); models without an ImageNet-1k head
  are left out of a wildcard (and refused when named explicitly);
* ``@file``: one spec per line (``#`` comments allowed);
* ``all``: every timm pretrained model whose pretrained config has an ImageNet-1k head — decided by
  ``num_classes`` (1000, or 1001 with ``label_offset`` 1) and, when the config lists them, its label
  names, never by name patterns. Inside :func:`only_local_weights`, ``all`` means every model whose
  weights were registered with :func:`register_local_weights` instead;
* ``openclip:ARCH/TAG`` or ``openclip:ARCH/TAG@openai``: an open_clip CLIP model used as a zero-shot
  classifier over the catalogue's synset texts (``@paper``, the default, left out of the canonical spec)
  or OpenAI's 80 templates (``@openai``); see ``zeroshot.py``. The prompt set is part of the spec, so
  the two never share stored predictions; :func:`with_prompts` sets it on a list of specs;
* ``hf-hub:ORG/NAME``: a timm model on the Hub, loaded by timm's own ``hf-hub:`` support (its config,
  labels and weights from the repo; offline from huggingface_hub's cache);
* ``hf:ORG/NAME[@REVISION]`` or ``hf:/local/dir``: a transformers image classifier with its own image
  processor and a label rule chosen by the protocol (``hf.py``);
* ``custom:NAME@HASH``: a user's ``torch.nn.Module`` registered in this process (``custom.py``);
* a named set (:data:`~.sets.MODEL_SETS`): ``paper`` is the reference's 29 HF checkpoints plus CLIP
  ViT-B/32 zero-shot.

Weights come from timm's pretrained config (Hub) unless a local file is given, per call
(``weights={spec: path}``) or registered for the session (:func:`register_local_weights`); local
timm weights load through ``pretrained_cfg_overlay=dict(file=path)`` with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from .. import _io
from ..catalog import load_catalog
from ..errors import ModelSpecError, UnknownNameError
from ..hub._errors import hub_offline
from .custom import CUSTOM_PREFIX, custom_data_config, custom_weights_identity
from .hf import HF_PREFIX, cached_commit, hf_data_config, hf_label_rule, hf_weights_identity, parse_hf_spec
from .sets import MODEL_SETS

__all__ = [
    "OPENCLIP_PREFIX",
    "TIMM_HUB_PREFIX",
    "LabelMap",
    "LoadedModel",
    "build_model",
    "canonical_spec",
    "check_weights_file",
    "expand_model_specs",
    "label_rule",
    "only_local_weights",
    "preprocess_key",
    "register_local_weights",
    "resolve_data_config",
    "resolve_label_map",
    "unused_weights",
    "weights_identity",
    "with_prompts",
]

OPENCLIP_PREFIX = "openclip:"
TIMM_HUB_PREFIX = "hf-hub:"

_LOCAL_WEIGHTS: dict[str, str] = {}
_LOCAL_ONLY = {"active": False}


@dataclass(frozen=True)
class LabelMap:
    """How a head's logits map to ImageNet-1k wnids: ``wnids[i]`` is logit ``offset + i``, or ``columns[i]``.

    ``columns`` lists the logits kept, in the order of ``wnids``, when a rule drops some (the reference's
    lemma matching of HF heads); a wnid may then appear for several logits (both crane logits).
    """

    name: str  # "imagenet-1k", "1001-offset", "catalog-zero-shot", "openai-zero-shot", "reference-lemmas", "custom"
    offset: int
    wnids: tuple[str, ...]
    columns: tuple[int, ...] | None = None

    def select(self, logits):
        """The mapped logits of a ``(batch, classes)`` tensor: column ``i`` is the logit of ``wnids[i]``."""
        if self.columns is None:
            return logits[:, self.offset:self.offset + len(self.wnids)]
        import torch

        return logits.index_select(1, torch.as_tensor(self.columns, device=logits.device))


@dataclass
class LoadedModel:
    """A built model ready for inference, with everything needed to score and record it."""

    spec: str
    module: Any  # torch.nn.Module returning logits of shape (batch, offset + len(label_map.wnids))
    label_map: LabelMap
    data_config: dict[str, Any]
    model_info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- local weights
#: How a file a checkpoint loader can read starts: torch.save's zip, torch's legacy pickle stream. A
#: safetensors file starts with its little-endian header length, then the JSON header's ``{``.
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x04", b"\x80\x05")


def check_weights_file(path: str | Path, *, what: str = "weights file") -> Path:
    """``path`` if it is a checkpoint file (torch.save zip or legacy format, or safetensors), else a
    one-line :class:`ModelSpecError`: a folder, a missing file or a text file fails here, before any
    model is built, instead of as a load error after the other models have run."""
    path = Path(path).expanduser()
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise ModelSpecError(f"{what} {path} {problem}: pass a checkpoint file (.pth, .pt, .bin, .safetensors)")
    with path.open("rb") as handle:
        head = handle.read(9)
    safetensors = len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size
    if not (safetensors or head.startswith(_CHECKPOINT_MAGIC)):
        raise ModelSpecError(f"{what} {path} is not a weights file (not a torch checkpoint or safetensors): pass "
                             "a file written by torch.save or safetensors")
    return path


def register_local_weights(spec: str, path: str | Path) -> str:
    """Make ``spec`` load its weights from ``path`` for the rest of the session; returns the canonical spec.

    Inside :func:`only_local_weights`, ``all`` expands to exactly the registered specs, so a demo or
    an air-gapped machine can evaluate "every model it has".
    """
    path = check_weights_file(path)
    canonical = _canonical_spec(spec, local_tag_ok=True)
    _LOCAL_WEIGHTS[canonical] = str(path.resolve())
    return canonical


@contextlib.contextmanager
def only_local_weights() -> Iterator[None]:
    """Within this block ``all`` means every model registered with :func:`register_local_weights`."""
    previous = _LOCAL_ONLY["active"]
    _LOCAL_ONLY["active"] = True
    try:
        yield
    finally:
        _LOCAL_ONLY["active"] = previous


# ------------------------------------------------------------------------------------------ spec names
def _split_openclip(spec: str) -> tuple[str, str, str]:
    """``openclip:ARCH/TAG[@PROMPTS]`` → ``(arch, tag, prompts)``: the one parser of open_clip specs."""
    from .zeroshot import PROMPT_SETS

    arch, sep, rest = spec[len(OPENCLIP_PREFIX):].partition("/")
    tag, at, prompts = rest.partition("@")
    if not arch or not sep or not tag or (at and not prompts):
        raise ModelSpecError(f"open_clip spec {spec!r} must look like 'openclip:ARCH/TAG' or 'openclip:ARCH/TAG@openai', "
                             "e.g. openclip:ViT-B-32/openai")
    prompts = prompts or "paper"
    if prompts not in PROMPT_SETS:
        raise ModelSpecError(f"open_clip spec {spec!r}: prompts {prompts!r} unknown; use one of {', '.join(PROMPT_SETS)}")
    return arch, tag, prompts


def _openclip_spec(arch: str, tag: str, prompts: str) -> str:
    """The canonical spelling: the default ``paper`` prompts carry no suffix (older stores stay valid)."""
    return f"{OPENCLIP_PREFIX}{arch}/{tag}" + ("" if prompts == "paper" else f"@{prompts}")


def with_prompts(spec: str, prompts: str) -> str:
    """``spec`` with the zero-shot prompt set ``prompts`` (``paper``/``openai``); other specs unchanged.

    ``paper`` keeps what the spec says, so a spec's own ``@openai`` survives the default.
    """
    if not spec.startswith(OPENCLIP_PREFIX) or prompts == "paper":
        return spec
    arch, tag, _ = _split_openclip(spec)
    result = _openclip_spec(arch, tag, prompts)
    _split_openclip(result)  # refuses an unknown prompt set, naming it
    return result


def _canonical_openclip(spec: str, *, local_tag_ok: bool) -> str:
    import open_clip

    arch, tag, prompts = _split_openclip(spec)
    if arch not in open_clip.list_models():
        raise UnknownNameError("open_clip architecture", arch, difflib.get_close_matches(arch, open_clip.list_models()))
    canonical = _openclip_spec(arch, tag, prompts)
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags and not local_tag_ok and _openclip_spec(arch, tag, "paper") not in _LOCAL_WEIGHTS:
        raise UnknownNameError(f"open_clip tag of {arch}", tag, difflib.get_close_matches(tag, tags))
    return canonical


@lru_cache(maxsize=1)
def _timm_pretrained_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models(pretrained=True))


def _canonical_spec(spec: str, *, local_tag_ok: bool = False) -> str:
    """``arch`` → ``arch.default_tag``; checks the name exists (suggesting close names when not)."""
    if spec.startswith(OPENCLIP_PREFIX):
        return _canonical_openclip(spec, local_tag_ok=local_tag_ok)
    if spec.startswith(HF_PREFIX):
        return parse_hf_spec(spec).spec
    if spec.startswith((CUSTOM_PREFIX, TIMM_HUB_PREFIX)):
        return spec
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(spec)
    if not timm.is_model(arch):
        names = _timm_pretrained_names()
        close = difflib.get_close_matches(spec, names, n=5) or difflib.get_close_matches(arch, timm.list_models(), n=5)
        raise UnknownNameError("model", spec, close)
    if tag and local_tag_ok:
        return f"{arch}.{tag}"
    try:
        cfg = get_pretrained_cfg(spec)
    except RuntimeError:
        cfg = None
    if cfg is None or not cfg.tag:
        if spec in _LOCAL_WEIGHTS:
            return spec
        tags = [n for n in _timm_pretrained_names() if n.startswith(arch + ".")]
        raise UnknownNameError(f"pretrained tag of {arch}", spec, difflib.get_close_matches(spec, tags, n=5) or tags[:5])
    return f"{cfg.architecture}.{cfg.tag}"


def _hub_pretrained_cfg(spec: str) -> dict[str, Any]:
    """timm's pretrained config of an ``hf-hub:`` repo, read from huggingface_hub's cache when offline."""
    from timm.models._hub import load_model_config_from_hf

    try:
        return dict(load_model_config_from_hf(spec[len(TIMM_HUB_PREFIX):])[0])
    except OSError as exc:
        how = ("it is not in the Hugging Face cache and HF_HUB_OFFLINE is set: download it once online"
               if hub_offline() else f"the Hub has no timm model there or cannot be reached ({str(exc)[:160]})")
        raise ModelSpecError(f"{spec}: {how}") from None


def _pretrained_cfg(spec: str) -> dict[str, Any]:
    """timm's pretrained config of a tagged spec (the architecture's default one for unknown local tags)."""
    from timm.models import get_pretrained_cfg, split_model_name_tag

    if spec.startswith(TIMM_HUB_PREFIX):
        return _hub_pretrained_cfg(spec)
    try:
        cfg = get_pretrained_cfg(spec)
    except RuntimeError:
        cfg = None
    if cfg is None:
        cfg = get_pretrained_cfg(split_model_name_tag(spec)[0])
    if cfg is None:
        raise ModelSpecError(f"{spec}: timm has no pretrained config for this architecture; pick a tagged model")
    return cfg.to_dict()


def resolve_label_map(num_classes: int | None, *, label_offset: int | None = None,
                      label_names: Sequence[str] | None = None, spec: str = "model") -> LabelMap:
    """The explicit, checked logit → wnid map of an ImageNet-1k head; anything else is refused."""
    wnids = tuple(load_catalog().wnids)
    offset = int(label_offset or 0)
    if num_classes == 1000 and offset == 0:
        name = "imagenet-1k"
    elif num_classes == 1001 and offset in (0, 1):
        offset, name = 1, "1001-offset"  # background logit first (TF-slim heads)
    else:
        raise ModelSpecError(
            f"{spec}: head has {num_classes} classes (label offset {label_offset}), not ImageNet-1k; "
            "only 1000-class heads (or 1001 with a background logit) can be scored — pick an *_in1k tag "
            "or a model fine-tuned on ImageNet-1k"
        )
    if label_names and list(label_names)[offset:] != list(wnids):
        raise ModelSpecError(f"{spec}: head label names are not the ImageNet-1k wnids in timm order; refusing to guess")
    return LabelMap(name, offset, wnids)


def _has_1k_head(cfg: Mapping[str, Any]) -> bool:
    try:
        resolve_label_map(cfg.get("num_classes"), label_offset=cfg.get("label_offset"), label_names=cfg.get("label_names"))
    except ModelSpecError:
        return False
    return True


@lru_cache(maxsize=1)
def _timm_1k_models() -> tuple[str, ...]:

    return tuple(n for n in _timm_pretrained_names() if _has_1k_head(_pretrained_cfg_dict(n)))


def _pretrained_cfg_dict(name: str) -> dict[str, Any]:
    """timm's pretrained config of ``name``, a name timm lists as pretrained (so it has one)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise ModelSpecError(f"timm has no pretrained config for {name!r}")
    return cfg.to_dict()


def _all_1k_models() -> list[str]:
    return sorted(_LOCAL_WEIGHTS) if _LOCAL_ONLY["active"] else list(_timm_1k_models())


def _read_spec_file(path: str) -> list[str]:
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise ModelSpecError(f"cannot read model list {path}: {exc.strerror}; '@FILE' needs one spec per line") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _expand_one(spec: str) -> list[str]:
    if spec == "all":
        return _all_1k_models()
    if spec in MODEL_SETS:
        return [name for inner in MODEL_SETS[spec] for name in _expand_one(inner)]
    if spec.startswith("@"):
        return [name for inner in _read_spec_file(spec[1:]) for name in _expand_one(inner)]
    if spec.startswith(OPENCLIP_PREFIX):
        return [_canonical_openclip(spec, local_tag_ok=False)]
    if spec.startswith(HF_PREFIX):  # the checkpoint is read when the run lists its work: a missing one fails alone
        return [parse_hf_spec(spec).spec]
    if spec.startswith(CUSTOM_PREFIX):
        custom_data_config(spec)  # refuses a spec no module was registered under
        return [spec]
    if any(ch in spec for ch in "*?["):

        pool = list(_timm_pretrained_names()) + [s for s in _LOCAL_WEIGHTS if not s.startswith(OPENCLIP_PREFIX)]
        matched = [n for n in dict.fromkeys(pool) if fnmatch.fnmatchcase(n, spec)]
        if not matched:
            raise UnknownNameError("model pattern", spec, difflib.get_close_matches(spec, pool, n=5))
        return [n for n in matched if n in _LOCAL_WEIGHTS or _has_1k_head(_pretrained_cfg_dict(n))]
    canonical = _canonical_spec(spec, local_tag_ok=spec in _LOCAL_WEIGHTS)
    cfg = _pretrained_cfg(canonical)
    resolve_label_map(cfg.get("num_classes"), label_offset=cfg.get("label_offset"),
                      label_names=cfg.get("label_names"), spec=canonical)
    return [canonical]


def expand_model_specs(specs: Sequence[str], *, exclude: Sequence[str] = ()) -> list[str]:
    """Expand specs (names, wildcards, ``@file``, ``all``, sets, ``openclip:``, ``hf:``, ``hf-hub:``) to canonical specs.

    Order follows the input; duplicates are dropped; names matching any ``exclude`` fnmatch pattern
    are removed. Unknown names raise :class:`UnknownNameError` with close suggestions; an explicitly
    named model without an ImageNet-1k head raises :class:`ModelSpecError`.
    """
    if isinstance(specs, str):
        specs = [specs]
    expanded = dict.fromkeys(name for spec in specs for name in _expand_one(spec.strip()))
    return [n for n in expanded if not any(fnmatch.fnmatchcase(n, pat) for pat in exclude)]


# ------------------------------------------------------------------------------------- data configs
def resolve_data_config(spec: str) -> dict[str, Any]:
    """The preprocessing of a canonical spec (timm test-size config; open_clip's resize + center crop;
    an HF checkpoint's image processor; a custom model's transform)."""
    if spec.startswith(OPENCLIP_PREFIX):
        from .zeroshot import openclip_data_config

        return openclip_data_config(*_split_openclip(spec)[:2])
    if spec.startswith(HF_PREFIX):
        return hf_data_config(spec)
    if spec.startswith(CUSTOM_PREFIX):
        return custom_data_config(spec)
    from timm.data import resolve_data_config as timm_resolve

    config = timm_resolve(pretrained_cfg=_pretrained_cfg(spec), use_test_size=True)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def preprocess_key(data_config: Mapping[str, Any]) -> tuple:
    """What decides the decoded pixels; models sharing it share decoding (mean/std apply per model)."""
    return (
        tuple(data_config["input_size"]),
        data_config["interpolation"],
        float(data_config["crop_pct"]),
        data_config.get("crop_mode", "center"),
        data_config.get("crop_offset", "round"),  # HF processors crop at floor offsets, torchvision rounds
    )


def label_rule(spec: str, protocol: str = "ours") -> str | None:
    """The label rule that maps ``spec``'s logits under ``protocol``, when it depends on the protocol (HF heads).

    Part of every run key that has one, so predictions under two rules never share a store folder.
    """
    return hf_label_rule(spec, protocol) if spec.startswith(HF_PREFIX) else None


def canonical_spec(spec: str) -> str:
    """The canonical form of one model name (default tag added); custom tags are kept as given."""
    return _canonical_spec(spec, local_tag_ok=True)


# ---------------------------------------------------------------------------------------------- build
def _weights_path(spec: str, weights: Mapping[str, str | Path] | None) -> str | None:
    """A local weights file for ``spec``; an open_clip spec's prompt set does not change its weights."""
    names = [spec]
    if spec.startswith(OPENCLIP_PREFIX):
        names.append(_openclip_spec(*_split_openclip(spec)[:2], "paper"))
    for name in names:
        if weights and name in weights:
            return str(weights[name])
        if name in _LOCAL_WEIGHTS:
            return _LOCAL_WEIGHTS[name]
    return None


def unused_weights(specs: Sequence[str], weights: Mapping[str, str | Path]) -> list[str]:
    """The keys of ``weights`` that no spec of ``specs`` loads (a typo, or a model dropped by --exclude)."""
    return [key for key in weights if not any(_weights_path(spec, {key: weights[key]}) for spec in specs)]


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    return _io.sha256_file(path)


def weights_identity(spec: str, weights: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """Where a spec's weights come from and, for a local file, its sha256 (part of every run key).

    A local file's place is :func:`~laionet_bench._io.display_path` (``~/...`` or relative): it goes into
    results that get published; its sha256 is what identifies it.
    """
    if spec.startswith(HF_PREFIX):
        return hf_weights_identity(spec)
    if spec.startswith(CUSTOM_PREFIX):
        return custom_weights_identity(spec)
    path = _weights_path(spec, weights)
    if path is None:
        if spec.startswith(OPENCLIP_PREFIX):
            return {"weights": spec[len(OPENCLIP_PREFIX):], "weights_sha256": None}
        cfg = _pretrained_cfg(spec)
        identity = {"weights": cfg.get("hf_hub_id") or cfg.get("url") or spec, "weights_sha256": None}
        if spec.startswith(TIMM_HUB_PREFIX):  # the repo's commit, so an updated repo gets a new run key
            repo, _, revision = spec[len(TIMM_HUB_PREFIX):].partition("@")
            identity["revision"] = cached_commit(repo, revision or None)
        return identity
    stat = Path(path).stat() if Path(path).is_file() else None
    if stat is None:
        raise ModelSpecError(f"{spec}: weights file {path} does not exist")
    return {"weights": _io.display_path(path), "weights_sha256": _sha256_cached(path, stat.st_size, stat.st_mtime)}


def build_model(spec: str, *, weights: Mapping[str, str | Path] | None = None, device: str = "cpu",
                protocol: str = "ours") -> LoadedModel:
    """Build a canonical spec with its weights, checked label map and data config, in eval mode on ``device``.

    A weights file that does not fit the architecture raises :class:`ModelSpecError` naming both.
    ``protocol`` chooses the label rule of HF heads (:func:`label_rule`).
    """
    if spec.startswith(HF_PREFIX):
        from .hf import build_hf

        module, (rule, wnids, columns), data_config, info = build_hf(spec, protocol=protocol, device=device)
        label_map = LabelMap(rule, 0, wnids, columns=columns)
    elif spec.startswith(CUSTOM_PREFIX):
        from .custom import build_custom

        module, wnids, data_config, info = build_custom(spec, device=device)
        label_map = LabelMap("custom", 0, wnids)
    elif spec.startswith(OPENCLIP_PREFIX):
        from .zeroshot import build_zero_shot

        arch, tag, prompts = _split_openclip(spec)
        module, data_config, info = build_zero_shot(arch, tag, weights_path=_weights_path(spec, weights), device=device,
                                                    prompts=prompts)
        name = "catalog-zero-shot" if prompts == "paper" else f"{prompts}-zero-shot"
        label_map = LabelMap(name, 0, tuple(load_catalog().wnids))
        info = {"architecture": arch, "pretrained_tag": tag, "kind": "openclip", "num_classes": 1000, **info}
    else:
        module, data_config, info = _build_timm(spec, _weights_path(spec, weights))
        cfg = module.pretrained_cfg
        label_map = resolve_label_map(module.num_classes, label_offset=cfg.get("label_offset"),
                                      label_names=cfg.get("label_names"), spec=spec)
        module = module.to(device).eval()
    info.update(weights_identity(spec, weights))
    info.update({k: data_config[k] for k in ("input_size", "crop_pct", "interpolation", "mean", "std")})
    info["label_map"] = label_map.name
    return LoadedModel(spec=spec, module=module, label_map=label_map, data_config=data_config, model_info=info)


def _build_timm(spec: str, path: str | None) -> tuple[Any, dict, dict]:
    import timm
    from timm.models import split_model_name_tag

    hub = spec.startswith(TIMM_HUB_PREFIX)  # timm's own hf-hub: loading (config, labels and weights from the repo)
    arch, tag = (spec, None) if hub else split_model_name_tag(spec)
    overlay = {"file": path} if path else None
    name = spec if hub or tag in _pretrained_tags(arch) else arch
    try:
        module = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except RuntimeError as exc:
        if path and ("size mismatch" in str(exc) or "Missing key" in str(exc) or "Unexpected key" in str(exc)):
            first = str(exc).strip().splitlines()
            raise ModelSpecError(
                f"{spec}: weights file {path} does not fit architecture {arch} ({' '.join(first[:3])[:300]}); "
                "check that the checkpoint was trained for this exact architecture"
            ) from None
        raise
    data_config = resolve_data_config(spec)
    info = {
        "architecture": arch,
        "pretrained_tag": tag,
        "params": int(sum(p.numel() for p in module.parameters())),
        "num_classes": int(cast(int, module.num_classes)),  # timm models set it: not a submodule or tensor
        "kind": "timm",
        "crop_mode": data_config.get("crop_mode", "center"),
    }
    return module, data_config, info


def _pretrained_tags(arch: str) -> set[str]:
    return {n.partition(".")[2] for n in _timm_pretrained_names() if n.partition(".")[0] == arch}
