"""The package tree is the architecture: a short root, and no import cycles, lazy imports included.

Imports are read from the AST, so an import inside a function (the usual way to hide a cycle) counts the
same as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import laionet_bench

PACKAGE = Path(laionet_bench.__file__).parent
ARCHITECTURE_DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
ROOT_MODULES_MAX = 10
#: The data flow, bottom-up: a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    "errors constants config version _io _progress _figures", "catalog", "hub", "index", "images", "datasets", "models",
    "evaluation", "similarity", "leaderboard", "checks", "plugin", "rebuild", "explain", "demo", "cli", "__main__",
]


def _module_name(path: Path) -> str:
    parts = ["laionet_bench", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """module → package modules it imports (``from x import name`` counts ``x.name`` when that is a module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    targets.add(submodule if submodule in modules else module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_sees_a_cycle_hidden_in_a_function():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_module_imports_the_package_face():
    """Low modules read the version from ``version.py``; importing ``laionet_bench`` itself would make a cycle."""
    importers = sorted(m for m, targets in import_graph().items() if "laionet_bench" in targets)
    assert importers == []


def test_package_root_is_short():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_MODULES_MAX, root



def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return len(LAYERS)  # the package face re-exports from every layer
    return next(i for i, names in enumerate(LAYERS) if parts[1] in names.split())


def test_every_module_belongs_to_a_layer_and_imports_only_earlier_ones():
    backwards = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                       if _layer(t) > _layer(m))
    assert backwards == []


def test_architecture_doc_lists_exactly_the_tree():
    """docs/architecture.md's tree block names every module, each in its folder, and nothing else."""
    block = ARCHITECTURE_DOC.read_text("utf-8").split("```")[1].splitlines()
    documented = set()
    for line in block[2:]:  # after the language tag line and "laionet_bench/"
        words = line.split()
        folder = words[0] if words and words[0].endswith("/") else ""
        documented.update(f"{folder}{name}" for name in words if name.endswith(".py"))
    actual = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    assert documented == actual, {"undocumented": sorted(actual - documented), "gone": sorted(documented - actual)}
