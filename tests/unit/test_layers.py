"""The operator package's layers, read from its import graph.

`promdemo_operator` is four layers over a core (docs/architecture.md draws them):

    cli/          the command line          may import every layer
    runtime/      kopf, the API client      may import heal/, prometheus/, core/
    heal/         the heal loop             may import core/
    prometheus/   Prometheus                may import core/
    core/         plain Python              imports no other layer, no I/O library

Every `import` counts, also those inside functions and under `TYPE_CHECKING`: an
import hidden in a function is still a dependency, and the cycle it hides is still
a cycle. The graph is read from the source files (ast), so a test needs no import
side effects and names the file and line of each offence.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "promdemo_operator"
SOURCE = Path(__file__).resolve().parents[2] / "operator" / PACKAGE

# layer -> the layers it may import (itself always)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "prometheus": {"core"},
    "heal": {"core"},
    "runtime": {"core", "prometheus", "heal"},
    "cli": {"core", "prometheus", "heal", "runtime"},
}
# Libraries that do I/O or belong to an adapter: never in the core.
ADAPTER_LIBRARIES = {
    "kopf",
    "kubernetes",
    "aiohttp",
    "httpx",
    "rich",
    "prometheus_client",
    "socket",
    "subprocess",
    "asyncio",
}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module (or package), dotted
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module a dotted import names: `a.b.c` is module `a.b` when `c` is an attribute."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base)
                origin = f"{prefix}.{node.module}" if node.module else prefix
            else:
                origin = node.module or ""
            found.append((origin, node.lineno))
            # `from pkg import submodule` depends on the submodule
            found.extend(
                (f"{origin}.{alias.name}", node.lineno)
                for alias in node.names
                if f"{origin}.{alias.name}" in MODULES
            )
    return found


def _graph() -> list[Edge]:
    edges = []
    for module, path in MODULES.items():
        for name, line in _imports(module, path):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _resolve(name)
                if target and target != module:
                    edges.append(Edge(module, target, line))
    return edges


def _third_party(module: str, path: Path) -> list[tuple[str, int]]:
    return [
        (name.partition(".")[0], line)
        for name, line in _imports(module, path)
        if not name.startswith(PACKAGE)
    ]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def _where(edge: Edge) -> str:
    return f"{MODULES[edge.source].relative_to(SOURCE.parent)}:{edge.line} imports {edge.target}"


def test_every_module_lives_in_a_layer() -> None:
    # Only the package's own __init__ (its version) sits outside the layers.
    outside = [m for m in MODULES if layer_of(m) is None and m != PACKAGE]
    assert outside == [], f"modules outside core/prometheus/heal/runtime/cli: {outside}"


def test_no_layer_imports_one_above_it() -> None:
    wrong = []
    for edge in _graph():
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source is None or target is None or source == target:
            continue
        if target not in ALLOWED[source]:
            wrong.append(f"{_where(edge)} ({source} -> {target})")
    assert wrong == [], "imports against the layers' direction:\n" + "\n".join(wrong)


def test_the_core_uses_no_adapter_library() -> None:
    wrong = [
        f"{path.relative_to(SOURCE.parent)}:{line} imports {lib}"
        for module, path in MODULES.items()
        if layer_of(module) == "core"
        for lib, line in _third_party(module, path)
        if lib in ADAPTER_LIBRARIES
    ]
    assert wrong == [], "\n".join(wrong)


def test_the_operator_never_imports_the_app() -> None:
    wrong = [
        f"{path.relative_to(SOURCE.parent)}:{line}"
        for module, path in MODULES.items()
        for lib, line in _third_party(module, path)
        if lib == "promdemo_app"
    ]
    assert wrong == []


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for edge in edges:
        graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    # A package's __init__ importing its own submodules is how a package exposes
    # them, not a cycle between peers: those edges are left out.
    edges = [
        e
        for e in _graph()
        if not (MODULES[e.source].name == "__init__.py" and e.target.startswith(e.source + "."))
    ]
    assert _cycles(edges) == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ([("a", "b"), ("b", "a")], [["a", "b"]]),
        ([("a", "b"), ("b", "c")], []),
    ],
)
def test_the_cycle_finder_finds_cycles(edges, expected, monkeypatch) -> None:
    monkeypatch.setattr("tests.unit.test_layers.MODULES", {"a": SOURCE, "b": SOURCE, "c": SOURCE})
    assert _cycles([Edge(s, t, 1) for s, t in edges]) == expected
