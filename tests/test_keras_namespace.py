"""Keras 3's public namespace against fastrnn: every name of the walked modules is either
implemented at the same path or listed, with a reason, in the "not in fastrnn" table
(``fastrnn._keras_coverage``), and ``docs/not_in_fastrnn.md`` is that table rendered."""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

from fastrnn import _keras_coverage as cov

DOC = Path(__file__).resolve().parents[1] / "docs" / "not_in_fastrnn.md"


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip("keras")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip(f"the table follows Keras 3, found Keras {keras.__version__}")
    return keras


def test_every_keras_name_is_implemented_or_listed(keras):
    problems = []
    for module, c in cov.coverage(keras).items():
        for name in c["missing"]:
            problems.append(f"keras.{module}.{name}: neither in fastrnn.{module} nor in the "
                            "table of fastrnn/_keras_coverage.py")
        for name in c["stale"]:
            problems.append(f"keras.{module}.{name}: fastrnn has it now; remove it from the "
                            "table")
        for name in c["unknown"]:
            problems.append(f"keras.{module}.{name}: listed in the table but not in Keras "
                            f"{keras.__version__}")
    assert not problems, "\n".join(problems)


def test_every_submodule_is_walked_or_skipped(keras):
    unaccounted = []
    for module in cov.MODULES:
        kmod = importlib.import_module(f"keras.{module}")
        for name in dir(kmod):
            if name.startswith("_") or not isinstance(getattr(kmod, name), types.ModuleType):
                continue
            path = f"{module}.{name}"
            if path not in cov.MODULES and path not in cov.SKIPPED_SUBMODULES:
                unaccounted.append(path)
    assert not unaccounted, f"walk or skip (with a reason) these submodules: {unaccounted}"


def test_implemented_names_are_the_right_kind(keras):
    """A name at Keras's path is a class where Keras's is, and a function where Keras's is."""
    wrong = []
    for module in ("layers", "utils", "preprocessing", "preprocessing.sequence", "models",
                   "saving"):
        kmod = importlib.import_module(f"keras.{module}")
        fmod = importlib.import_module(f"fastrnn.{module}")
        for name in cov.keras_names(kmod):
            if hasattr(fmod, name) and isinstance(getattr(kmod, name), type) != isinstance(
                    getattr(fmod, name), type):
                wrong.append(f"{module}.{name}")
    assert not wrong


def test_table_is_well_formed():
    for module, groups in cov.NOT_IN_FASTRNN.items():
        assert module in cov.MODULES
        cov.not_in_fastrnn(module)  # raises on a name listed twice
        for reason, names in groups:
            assert reason.strip() and names.split(), (module, reason)


def test_docs_are_the_rendered_table():
    assert DOC.read_text() == cov.render_markdown(), (
        "docs/not_in_fastrnn.md is out of date: run "
        "`python -m fastrnn._keras_coverage > docs/not_in_fastrnn.md`")
