"""Models with checked logit→wnid maps: the registry and specs, timm, open_clip zero-shot heads, HF transformers
classifiers, a user's own modules, named sets, wheel weights."""

from .custom import CustomModel as CustomModel
from .custom import register_custom_model as register_custom_model
from .registry import OPENCLIP_PREFIX as OPENCLIP_PREFIX
from .registry import LabelMap as LabelMap
from .registry import LoadedModel as LoadedModel
from .registry import build_model as build_model
from .registry import canonical_spec as canonical_spec
from .registry import expand_model_specs as expand_model_specs
from .registry import only_local_weights as only_local_weights
from .registry import preprocess_key as preprocess_key
from .registry import register_local_weights as register_local_weights
from .registry import resolve_data_config as resolve_data_config
from .registry import resolve_label_map as resolve_label_map
from .registry import weights_identity as weights_identity

__all__ = ["OPENCLIP_PREFIX", "CustomModel", "LabelMap", "LoadedModel", "build_model", "canonical_spec",
           "expand_model_specs", "only_local_weights", "preprocess_key", "register_custom_model",
           "register_local_weights", "resolve_data_config", "resolve_label_map", "weights_identity"]
