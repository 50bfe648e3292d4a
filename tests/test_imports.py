"""The package's import graph: no cycles, and dependencies that point one way.

Reads every module's source with ``ast`` (module-level and function-level imports alike;
imports under ``if TYPE_CHECKING:`` are annotations only and are left out) and builds the
graph of which meanfield module imports which.
"""

import ast
from pathlib import Path

import pytest

import meanfield

ROOT = Path(meanfield.__file__).parent
PKG = "meanfield"
ENGINE = ("meanfield.engine", "meanfield.init", "meanfield.model", "meanfield._kernels")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((PKG, *parts))] = path
    return out


MODULES = _modules()


def _type_checking(node) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path) -> set[str]:
    """Modules (meanfield's own, or third-party top-level names) that ``name`` imports."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            for a in node.names:
                sub = f"{mod}.{a.name}"
                found.add(sub if sub in MODULES else mod)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _own(targets):
    return {t for t in targets if t in MODULES}


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or self-loops."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_graph_is_read():
    assert "meanfield.engine" in GRAPH["meanfield.limit.reference"]
    assert "meanfield._kernels.step" in GRAPH["meanfield.engine"]


def test_no_import_cycles():
    graph = {v: _own(t) - {PKG} for v, t in GRAPH.items() if v != PKG}
    assert _cycles(graph) == []


def test_nothing_imports_the_package_root():
    """``meanfield/__init__`` re-exports; modules import what they use from its module."""
    assert [v for v, t in GRAPH.items() if PKG in t and v != PKG] == []


def _reaches(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        for w in _own(GRAPH[v]) - {PKG}:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


@pytest.mark.parametrize("name", ["meanfield.io", "meanfield.config", "meanfield.plotting"])
def test_io_config_plotting_import_no_engine(name):
    if name not in MODULES:  # plotting may be a package
        pytest.fail(f"{name} not found")
    bad = {m for m in _reaches(name) | {name} if m.startswith(ENGINE)}
    assert bad == set()
    assert "numba" not in {t.split(".")[0] for m in _reaches(name) | {name} for t in GRAPH[m]}


def test_kernels_import_only_kernels():
    for name in MODULES:
        if name.startswith("meanfield._kernels"):
            assert {t for t in _own(GRAPH[name]) if not t.startswith("meanfield._kernels")} \
                == set(), name


@pytest.mark.parametrize("name", ["meanfield.rates", "meanfield.runner"])
def test_statistics_and_runner_import_no_engine(name):
    assert {m for m in _reaches(name) | {name} if m.startswith(ENGINE)} == set()


def test_runner_knows_no_study():
    science = ("meanfield.studies", "meanfield.limit", "meanfield.wasserstein", "meanfield.rates")
    assert {m for m in _reaches("meanfield.runner") if m.startswith(science)} == set()


def test_engine_imports_no_science_above_it():
    above = ("meanfield.limit", "meanfield.studies", "meanfield.runner", "meanfield.io",
             "meanfield.plotting", "meanfield.cli", "meanfield.bench", "meanfield.wasserstein",
             "meanfield.rates")
    for name in ("meanfield.engine", "meanfield.model", "meanfield.init"):
        assert {m for m in _reaches(name) if m.startswith(above)} == set(), name
