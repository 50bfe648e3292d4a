"""The NumPy oracle (``meanfield.bench.reference``) stays independent of the engine."""

import ast
from pathlib import Path

import meanfield


def test_reference_imports_only_numpy():
    path = Path(meanfield.__file__).parent / "bench" / "reference.py"
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or "").split(".")[0])
    assert names <= {"numpy", "__future__"}, names
