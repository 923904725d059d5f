"""The package's floors, checked on the source (``ast``): who may import whom.

Run as a script (``python tests/test_layering.py``) it prints the import graph of
``fastrnn.models`` and of the package's top-level modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "fastrnn"

# models/, bottom to top: each file imports only files before it.
MODELS_ORDER = ["common", "graph", "stepper", "trainer", "model", "functional", "sequential",
                "cloning", "serialization", "__init__"]
# What the models build on and what is built on models: nothing here imports fastrnn.models.
BELOW_MODELS = ["_checks", "_core", "_identifiers", "_seed", "activations", "autodiff",
                "callbacks", "constraints", "export", "initializers", "layers", "losses", "math",
                "metrics", "ops", "optimizers", "reference", "regularizers", "saving"]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(absolute module imported, at function level?)`` for each fastrnn import in `path`
    (``from . import x`` counts as importing the package's module ``x`` when it is one)."""
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rsplit(".", 1)[0]
    return _imports_in(path.read_text(encoding="utf-8"), package)


def _imports_in(source: str, package: str) -> list[tuple[str, bool]]:
    tree = ast.parse(source)
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("fastrnn"):
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(
                            ".py").exists() or (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                        found.append((sub if is_module else target, in_function))
            elif isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names
                             if a.name.startswith("fastrnn"))
            visit(child, nested)

    visit(tree, False)
    return found


def import_graph() -> dict[str, list[tuple[str, bool]]]:
    """``{module: [(imported fastrnn module, at function level?), ...]}`` for the package."""
    return {_module_name(p): sorted(set(_imports(p))) for p in sorted(PACKAGE.rglob("*.py"))}


def _models_file(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["fastrnn", "models"]:
        return None
    return parts[2] if len(parts) > 2 else "__init__"


def test_models_import_one_way_without_function_level_imports() -> None:
    graph = import_graph()
    upward, hidden = [], []
    for module, imports in graph.items():
        mine = _models_file(module)
        if mine is None:
            continue
        assert mine in MODELS_ORDER, f"{module}: place it in MODELS_ORDER"
        for target, in_function in imports:
            theirs = _models_file(target)
            if theirs is None:
                continue
            if theirs not in MODELS_ORDER or \
                    MODELS_ORDER.index(theirs) >= MODELS_ORDER.index(mine):
                upward.append(f"{module} -> {target}")
            if in_function:
                hidden.append(f"{module} -> {target}")
    assert not upward, f"imports against the order {MODELS_ORDER}: {upward}"
    assert not hidden, f"function-level imports inside fastrnn.models: {hidden}"


def test_nothing_below_models_imports_them() -> None:
    graph = import_graph()
    bad = []
    for module, imports in graph.items():
        top = module.split(".")[1] if "." in module else ""
        if top not in BELOW_MODELS:
            continue
        bad += [f"{module} -> {t}" for t, _ in imports if t.startswith("fastrnn.models")]
    assert not bad, f"modules below fastrnn.models import it: {bad}"


def test_layers_reach_no_private_name_of_ops() -> None:
    """The layers use the ops' stated internal API, never an underscored name of ops."""
    bad = []
    for path in sorted((PACKAGE / "layers").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in ("ops", "_ops") and node.attr.startswith("_"):
                bad.append(f"{path.name}:{node.lineno} ops.{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1:] == \
                    ["ops"] or (isinstance(node, ast.ImportFrom)
                                and ".ops." in f".{node.module or ''}."):
                bad += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                        if a.name.startswith("_") and a.name != "__future__"]
    assert not bad, f"layers reach private names of ops: {bad}"


def test_import_fastrnn_does_not_import_the_reference() -> None:
    """The NumPy oracle (``fastrnn.reference``) is for tests: ``import fastrnn`` leaves it."""
    code = "import sys, fastrnn; print('fastrnn.reference' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_checker_sees_a_hidden_upward_import() -> None:
    """The checker itself: a function-level import of model.py from trainer.py is found, as
    the module it is (the test above then fails on it)."""
    found = _imports_in("import numpy\ndef f():\n    from .model import Model\n",
                        "fastrnn.models")
    assert found == [("fastrnn.models.model", True)]
    assert _imports_in("from . import model\n", "fastrnn.models") == [
        ("fastrnn.models.model", False)]


if __name__ == "__main__":  # prints the graph
    for module, imports in import_graph().items():
        if module.startswith("fastrnn.models") or module.count(".") == 1:
            names = [t + (" (in a function)" if f else "") for t, f in imports]
            print(f"{module}\n    -> {', '.join(names) if names else '(nothing of fastrnn)'}")


if not PACKAGE.is_dir():  # pragma: no cover (an installed package without the source tree)
    pytest.skip("the source tree is not here", allow_module_level=True)
