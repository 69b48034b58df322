"""The house plan, checked on the source: no import circle between the project's
modules, and no import running from a lower layer up to a higher one.

The graph is read from the source with ``ast`` (every ``import`` statement, at
module level or inside a function), so a circle hidden behind a function-level
import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("registry", "analytics", "config")

# Capture's lowest layer: what the models are built from (and the signals they send).
# These import no other module of the registry but each other.
FOUNDATION = {
    "registry.choices",
    "registry.rules",
    "registry.smrs",
    "registry.derived",
    "registry.signals",
}
# Presentation and request handling: nothing below them imports them.
TOP_LAYER_SUFFIXES = (".views", ".urls", ".forms", ".admin")
# The pure statistics and what presents them (no Django: usable and testable on plain
# arrays and numbers).
PURE = {
    "analytics.stats",
    "analytics.regression",
    "analytics.formatting",
    "analytics.contract",
    "analytics.indicators",
    "analytics.ordinal",
}
# Modules that need only the light parts: no scipy, statsmodels, pandas or matplotlib,
# directly or through a project module they import.
LIGHT = {"analytics.formatting", "analytics.contract", "analytics.cells"}
HEAVY = {"scipy", "statsmodels", "pandas", "matplotlib", "firthmodels"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported by one module (a ``from package import module``
    counts as importing that module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _project_modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _is_package_init(name: str, graph: dict[str, set[str]]) -> bool:
    return any(other.startswith(name + ".") for other in graph)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Circles of the graph (Tarjan's strongly connected components of size > 1)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _edges(graph):
    # A package's __init__ importing its own submodules is how it re-exports them.
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if not (target.startswith(name + ".") and _is_package_init(name, graph)):
                yield name, target


def test_the_project_has_no_import_circle():
    graph = {name: set() for name in import_graph()}
    for name, target in _edges(import_graph()):
        graph[name].add(target)
    assert _cycles(graph) == []


def test_capture_never_imports_analytics():
    upward = [
        (name, target)
        for name, target in _edges(import_graph())
        if name.startswith("registry") and target.startswith("analytics")
    ]
    assert upward == []


def test_the_models_foundation_imports_nothing_above_it():
    allowed = FOUNDATION | {"registry"}
    upward = [
        (name, target)
        for name, target in _edges(import_graph())
        if name in FOUNDATION and target.startswith("registry") and target not in allowed
    ]
    assert upward == []


def test_the_models_import_only_the_foundation():
    upward = [
        (name, target)
        for name, target in _edges(import_graph())
        if name.startswith("registry.models")
        and target.startswith("registry")
        and not target.startswith("registry.models")
        and target not in FOUNDATION | {"registry"}
    ]
    assert upward == []


def test_no_module_imports_views_urls_forms_or_admin_except_the_top_layer():
    def top(name: str) -> bool:
        return name.endswith(TOP_LAYER_SUFFIXES) or ".templatetags" in name or name == "config.urls"

    upward = [
        (name, target)
        for name, target in _edges(import_graph())
        if target.endswith(TOP_LAYER_SUFFIXES) and not top(name)
    ]
    assert upward == []


def test_the_pure_statistics_import_no_django_and_no_registry():
    for name in PURE:
        path = _project_modules()[name]
        tree = ast.parse(path.read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(m.split(".")[0] in {"django", "registry"} for m in imported), name


def _third_party(path: Path) -> set[str]:
    """Top-level names of every module a file imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_light_modules_import_no_heavy_library():
    modules, graph = _project_modules(), import_graph()
    for name in LIGHT:
        reached, todo = set(), [name]
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo.extend(graph[module])
        heavy = {m: _third_party(modules[m]) & HEAVY for m in reached}
        assert {m: libraries for m, libraries in heavy.items() if libraries} == {}, name


def test_the_graph_reader_sees_a_circle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _imported_names(path: Path) -> set[tuple[str, str]]:
    """(module, name) of every ``from module import name`` of one file."""
    tree = ast.parse(path.read_text(), str(path))
    return {
        (node.module or "", alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_analytics_reads_the_registry_only_through_its_public_names():
    private = [
        (name, module, imported)
        for name, path in _project_modules().items()
        if name.startswith("analytics")
        for module, imported in _imported_names(path)
        if module.startswith("registry") and imported.startswith("_")
    ]
    assert private == []


def test_the_tests_do_not_import_the_benchmarks():
    found = [
        path.name
        for path in (ROOT / "tests").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            name.split(".")[0] == "benchmarks"
            for name in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
        )
    ]
    assert found == []
