"""No model's own code ever runs: every loader of the package says ``trust_remote_code=False``."""

from __future__ import annotations

import ast
from pathlib import Path

import laionet_bench

PACKAGE = Path(laionet_bench.__file__).parent
#: calls that load a checkpoint and take ``trust_remote_code`` (transformers classes, sentence-transformers)
LOADERS = {"from_pretrained", "from_config", "SentenceTransformer"}


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
    assert len(calls) >= 7, sorted(calls)  # hf.py's four, textsim's three: the scan sees them
    assert [where for where, call in calls.items() if not _says_false(call)] == []
