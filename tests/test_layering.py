"""The modules beside the engine import none of it (type names only under TYPE_CHECKING)."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "meanfield"
ENGINE = {"particles", "models", "engine", "model", "init", "_kernels", "numba", "llvmlite"}


def _imports(path: Path) -> set[str]:
    """Top names of every module imported by ``path``, at any depth, outside TYPE_CHECKING."""
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")
            if node.level == 1 and mod[0]:
                found.add(mod[0])
            elif node.level == 1:
                found.update(a.name for a in node.names)
            elif node.level == 0:
                found.add(mod[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


@pytest.mark.parametrize("name", ["io.py", "plotting.py", "rates.py", "config.py"])
def test_no_engine_imports(name):
    assert not _imports(PKG / name) & ENGINE


def test_runner_knows_no_study():
    assert not _imports(PKG / "runner.py") & {"studies", "limit", "wasserstein", "rates"}
