"""The package's imports point down only and never close a circle (DESIGN.md, "Layers").

Every import in every module, at module level or inside a function, is an arrow. Each module sits in
one layer; an arrow may stay in its layer or point to a lower one. A package's ``__init__`` that
re-exports its own submodules is a facade, not an arrow: ``backends/__init__`` picks a backend module
lazily and that module imports the interface from its package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tactile_estimator"

# Lowest first. A module is placed by the longest prefix of its dotted name listed here.
LAYERS: list[tuple[str, ...]] = [
    ("records", "geometry", "progress", "io.atomic"),
    ("objects", "metrics"),
    ("factors",),
    ("config",),
    ("tf_buffer", "contact_detection", "plotting"),
    ("io", "camera", "networks", "sim"),
    ("backends",),
    ("graph",),
    ("alignment", "estimator"),
    ("router", "playback"),
    ("learning",),
    ("adapters", "cli", "view", "bag_info"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports (relative to the package, '' for its root)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join(base_parts + ([node.module] if node.module else []))
                base = f"tactile_estimator.{base}".rstrip(".")
            else:
                base = node.module or ""
            # ``from pkg import sub`` names the submodule; ``from mod import name`` names the module
            subs = [f"{base}.{alias.name}" for alias in node.names]
            targets = [s for s in subs if s.removeprefix("tactile_estimator.") in modules] or [base]
        else:
            continue
        for target in targets:
            if target.startswith("tactile_estimator.") or target == "tactile_estimator":
                inner = target.removeprefix("tactile_estimator").lstrip(".")
                if inner in modules and inner and inner != name:
                    found.add(inner)
    return found


def _layer(name: str) -> int:
    best, rank = -1, None
    for index, members in enumerate(LAYERS):
        for prefix in members:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank is None:
        raise AssertionError(f"module tactile_estimator.{name} has no layer in test_layers.LAYERS")
    return rank


def _is_facade(importer: str, imported: str) -> bool:
    return imported.startswith(importer + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items() if name}


def test_every_module_has_a_layer(graph):
    for name in graph:
        _layer(name)


def test_imports_point_down_only(graph):
    upward = {(a, b) for a, targets in graph.items() for b in targets
              if not _is_facade(a, b) and _layer(b) > _layer(a)}
    assert not upward, "imports that run back up a layer:\n" + "\n".join(
        f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})" for a, b in sorted(upward))


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: any component of two or more modules is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(circles)


def test_no_circle_of_imports(graph):
    circles = _circles({a: {b for b in targets if not _is_facade(a, b)} for a, targets in graph.items()})
    assert not circles, f"circles of imports: {circles}"


def test_the_check_sees_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert _circles(edges) == [["a", "b", "c"]]


def test_the_check_sees_an_upward_import(tmp_path):
    """The parser finds absolute, relative and function-level imports (a check that cannot fail is no check)."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from tactile_estimator.adapters import replay\n"
                      "from . import geometry\nimport tactile_estimator.cli\n")
    found = _imports("estimator", source, {"adapters": source, "adapters.replay": source, "geometry": source,
                                           "cli": source, "estimator": source})
    assert found == {"adapters.replay", "geometry", "cli"}
    assert _layer("adapters.replay") > _layer("estimator")
