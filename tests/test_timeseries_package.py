"""Package rules: fastrnn.timeseries is plain NumPy beside the rest of fastrnn."""

import ast
import pathlib
import subprocess
import sys

import fastrnn.timeseries as ts

PACKAGE = pathlib.Path(ts.__file__).parent


def test_imports_nothing_else_from_fastrnn():
    for source in PACKAGE.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{source.name} imports from a parent package"
                assert not (node.module or "").startswith("fastrnn"), source.name
            elif isinstance(node, ast.Import):
                assert all(not a.name.startswith("fastrnn") for a in node.names), source.name


def test_optional_dependencies_are_imported_lazily():
    code = (
        "import sys, fastrnn.timeseries; "
        "print(sorted(m for m in ('matplotlib', 'statsmodels', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(PACKAGE.parent.parent)})
    assert out.stdout.strip() == "[]"


def test_public_names_exist_and_are_documented():
    for name in ts.__all__:
        obj = getattr(ts, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"
