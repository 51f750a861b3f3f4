"""The package's import structure: no cycle, one-way layers, private torch/timm APIs in one place.

Read from the source (``ast``), not by importing, so that every import counts, function-level ones
included; imports under ``if TYPE_CHECKING:`` never run and are left out.

Layers, each importing only its own level or lower:
attention (0) <- models (1) <- the root ``scsa`` (2, may import attention and models only)
<- engine and tools (3) <- tasks, explain, integrations (4) <- cli (5).
``scsa.io``, ``scsa._compat`` and ``scsa.data`` are base modules that anyone may import (and that
import no other layer).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "scsa"
BASE = {"scsa.io", "scsa._compat", "scsa.data"}
LAYERS = {
    "attention": 0,
    "models": 1,
    "engine": 3,
    "tools": 3,
    "tasks": 4,
    "explain": 4,
    "integrations": 4,
    "cli": 5,
}
ROOT_LAYER = 2
COMPAT = "scsa._compat"
PRIVATE_ROOTS = ("torch", "timm")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


@pytest.fixture(autouse=True)
def _fresh_modules():
    """The tree as it is when each test runs (files may come and go while a checkout is edited)."""
    MODULES.clear()
    MODULES.update(_modules())


# compiled extension modules (scsa.attention._native): leaves, they import nothing of ours
EXTENSIONS = {_module_name(p).split(".cpython")[0].split(".abi3")[0] for p in PACKAGE.rglob("*.so")} | {
    "scsa.attention._native"
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except the bodies of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> list[tuple[str, int, list[str]]]:
    """(imported module, line, names) for each import in the file; names are the ``from`` names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno, []) for alias in node.names)
        else:
            target = _absolute(module, node, path.name == "__init__.py")
            out.append((target, node.lineno, [alias.name for alias in node.names]))
    return out


def _graph() -> dict[str, dict[str, int]]:
    """module -> {intra-package module it imports: line}. ``from pkg import sub`` counts as an
    import of ``pkg.sub`` where that is a module, else of ``pkg``."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line, names in _imports(module, path):
            if target != "scsa" and not target.startswith("scsa."):
                continue
            subs = [
                f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES or f"{target}.{n}" in EXTENSIONS
            ]
            for dep in subs or [target]:
                if dep in EXTENSIONS:
                    continue
                while dep not in MODULES and "." in dep:  # `import scsa.x.y` of a non-module name
                    dep = dep.rsplit(".", 1)[0]
                if dep != module:
                    edges.setdefault(dep, line)
            if subs and len(subs) < len(names) and target != module:
                edges.setdefault(target, line)  # names that are attributes of the package itself
        graph[module] = edges
    return graph


def _find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, {})):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _layer(module: str) -> int | None:
    """The module's layer; None for the base modules."""
    if module in BASE:
        return None
    if module == "scsa":
        return ROOT_LAYER
    top = module.split(".")[1]
    if top not in LAYERS:
        raise AssertionError(f"{module}: not in any layer; add its top-level name to LAYERS in {__file__}")
    return LAYERS[top]


def _describe(edge: tuple[str, str], graph: dict[str, dict[str, int]]) -> str:
    a, b = edge
    return f"{MODULES[a].relative_to(SRC)}:{graph[a][b]} imports {b}"


def test_the_graph_sees_the_imports_it_must():
    # the walker itself: function-level imports count, TYPE_CHECKING ones do not
    graph = _graph()
    assert "scsa.attention._scsa_fast" in graph["scsa.attention.scsa"]
    assert "scsa.attention.config" in graph["scsa.attention._scsa_fast"]
    cyclic = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}}
    assert _find_cycle(cyclic) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": 1}, "b": {}}) is None
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import scsa.engine\n"
        "def f():\n    import scsa.cli\n"
    )
    assert [n.names[0].name for n in _import_nodes(tree)] == ["TYPE_CHECKING", "scsa.cli"]


def test_no_import_cycle():
    graph = _graph()
    cycle = _find_cycle(graph)
    if cycle:
        steps = [_describe((a, b), graph) for a, b in itertools.pairwise(cycle)]
        pytest.fail("import cycle: " + " -> ".join(cycle) + "\n  " + "\n  ".join(steps))


def test_layers_import_one_way():
    graph = _graph()
    bad = []
    for module, deps in graph.items():
        layer = _layer(module)
        for dep in deps:
            dep_layer = _layer(dep)
            if dep_layer is None:
                continue
            if layer is None:
                bad.append(_describe((module, dep), graph) + " (a base module imports no layer)")
            elif module == "scsa" and dep.split(".")[1] not in ("attention", "models"):
                bad.append(_describe((module, dep), graph) + " (the root imports attention and models only)")
            elif dep_layer > layer:
                bad.append(_describe((module, dep), graph) + f" (layer {layer} imports layer {dep_layer})")
    assert not bad, "imports against the layering:\n  " + "\n  ".join(sorted(bad))


def _private_uses(path: Path) -> list[str]:
    """Private torch/timm modules or attributes the file imports or reads (``torch._C``,
    ``timm.models._x``, ``from torch.nn.modules.module import _global_forward_hooks``, ...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []

    def private(dotted: str) -> bool:
        parts = dotted.split(".")
        return parts[0] in PRIVATE_ROOTS and any(
            p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in parts[1:]
        )

    aliases: dict[str, str] = {}  # local name -> dotted torch/timm path
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if private(alias.name):
                    found.append(f"line {node.lineno}: import {alias.name}")
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                if private(dotted):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                aliases[alias.asname or alias.name] = dotted

    def dotted_name(node: ast.expr) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in aliases:
            return None
        return ".".join([aliases[node.id], *reversed(parts)])

    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:  # the whole chain, once
            dotted = dotted_name(node)
            if dotted and private(dotted):
                found.append(f"line {node.lineno}: {dotted}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            base = dotted_name(node.args[0]) if isinstance(node.args[0], (ast.Attribute, ast.Name)) else None
            if base and private(f"{base}.{node.args[1].value}"):
                found.append(f"line {node.lineno}: {node.func.id}({base}, {node.args[1].value!r})")
    return sorted(set(found))


def test_private_torch_and_timm_apis_only_in_compat():
    bad = {
        str(path.relative_to(SRC)): uses
        for module, path in MODULES.items()
        if module != COMPAT and (uses := _private_uses(path))
    }
    assert not bad, "private torch/timm APIs outside scsa/_compat.py (add a wrapper there): " + "; ".join(
        f"{p}: {', '.join(u)}" for p, u in sorted(bad.items())
    )


def test_the_private_api_check_can_fail(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import torch\nimport torch.nn.functional as F\nfrom torch.nn.modules.module import _global_forward_hooks\n"
        "from timm.models._efficientnet_blocks import InvertedResidual\n"
        "a = torch._C._autograd\nb = torch.__version__\nc = getattr(torch._C, '_x', None)\nd = F._pair\n"
    )
    uses = _private_uses(f)
    assert len(uses) == 6, uses  # torch._C (twice: attribute and getattr base), F._pair, the two imports
    assert not any("__version__" in u for u in uses)
