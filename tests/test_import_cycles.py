"""The findspots package's import graph, read from the source with ``ast``: no cycles, no private names.

Every ``import`` counts, at module level and inside functions (a late import only hides a cycle). An
edge goes to the module named: ``from findspots.a import b`` is an edge to ``findspots.a.b`` when that
is a module, else to ``findspots.a``. Importing a submodule also runs its package's ``__init__``, but
that is not an edge: a package that re-exports its submodules would otherwise always be a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "findspots"


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _known(name: str) -> str | None:
    """The findspots module that ``name`` lies in (itself, or its nearest parent), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _base(module: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` statement of ``module`` imports from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    here = module.split(".")
    if MODULES[module].name != "__init__.py":
        here.pop()
    here = here[: len(here) - node.level + 1]
    return ".".join(here + ([node.module] if node.module else []))


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement of ``module`` brings in: submodules, else their module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _base(module, node)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(), str(MODULES[module]))


def import_graph() -> dict[str, set[str]]:
    """Module -> the findspots modules it imports anywhere in its source."""
    graph = {}
    for module in MODULES:
        targets = set()
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets |= {_known(name) for name in _imported(module, node)}
        graph[module] = targets - {None, module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan), each one cycle set."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


GRAPH = import_graph()


def test_the_graph_sees_module_and_function_level_imports():
    assert "findspots.images.cbf" in GRAPH["findspots.images.formats"]  # from findspots.images import cbf
    assert "findspots.images.fileio" in GRAPH["findspots.images.smv"]  # module level
    assert "findspots.images.inputs" in GRAPH["findspots.app.cli"]  # inside a function
    assert "findspots.images" in GRAPH["findspots.app.stats"]  # a name re-exported by the package


def test_cycles_finds_every_cycle_of_a_small_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d", "f"}, "f": {"e"}}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b", "c"], ["e", "f"]]


def test_no_import_cycles():
    assert [sorted(c) for c in cycles(GRAPH)] == []


def _private_imports(module: str) -> list[str]:
    """``module: name`` for every private name it takes from another findspots module."""
    out = []
    tree = _tree(module)
    aliases = {}  # local name -> findspots module bound to it
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _known(base := _base(module, node)):
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                elif _private(alias.name):
                    out.append(f"{module}: {alias.name} from {base}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in MODULES:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
        ):
            out.append(f"{module}: {node.attr} of {aliases[node.value.id]}")
    return out


def test_no_module_imports_private_names_of_another():
    assert [line for module in sorted(MODULES) for line in _private_imports(module)] == []
