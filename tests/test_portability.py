"""What has to hold on every machine: choosing the kernel set (FASTRNN_KERNELS and
fastrnn.backend), the version in one place, clear errors for unsupported optional packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import backend, ops
from fastrnn.timeseries import _checks

PYTHON_DIR = str(Path(fastrnn.__file__).resolve().parent.parent)


def run_python(code_or_args: list[str], **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PYTHON_DIR, os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_every_available_kernel_set_can_be_chosen_by_the_environment():
    for name in backend.available_kernel_sets():
        done = run_python(["-c", "import fastrnn; print(fastrnn.backend.kernel_set(), "
                                 "fastrnn.ops.kernel_set_reason())"], FASTRNN_KERNELS=name)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [name, f"FASTRNN_KERNELS={name}"]
    done = run_python(["-c", "import fastrnn; print(fastrnn.ops.kernel_set_reason())"],
                      FASTRNN_KERNELS="")
    assert done.stdout.strip() == "the best this CPU runs"


@pytest.mark.parametrize("value,why", [("avx9000", "is not a kernel set"),
                                       ("AVX2", "is not a kernel set")])
def test_an_unknown_kernel_set_in_the_environment_is_refused(value, why):
    done = run_python(["-c", "import fastrnn"], FASTRNN_KERNELS=value)
    assert done.returncode == 1
    assert "KernelSetError" in done.stderr
    assert f"FASTRNN_KERNELS: {value!r} {why}; this build and CPU can run " \
           f"{', '.join(backend.available_kernel_sets())}." in done.stderr


def test_a_kernel_set_this_cpu_cannot_run_is_refused_naming_the_ones_it_can():
    missing = [s for s in ("generic", "avx2", "avx512") if s not in ops.available_kernel_sets()]
    if not missing:
        pytest.skip("this CPU runs every kernel set")
    done = run_python(["-c", "import fastrnn"], FASTRNN_KERNELS=missing[-1])
    assert f"{missing[-1]!r} is not a kernel set this CPU can run" in done.stderr


def test_the_command_reports_a_bad_kernel_set_in_one_line():
    done = run_python(["-m", "fastrnn", "info"], FASTRNN_KERNELS="avx9000")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("fastrnn: error: Received an invalid value for the "
                                  "environment variable FASTRNN_KERNELS: 'avx9000'")


def test_fastrnn_info_says_which_kernel_set_and_why(capsys):
    from fastrnn.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"kernel set  {backend.kernel_set()} ({ops.kernel_set_reason()}; this CPU runs: " \
           f"{', '.join(backend.available_kernel_sets())})" in out


def test_set_kernel_set_and_use_kernel_set():
    before = backend.kernel_set()
    x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    k = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    u = np.random.default_rng(2).standard_normal((8, 8)).astype(np.float32) * 0.3
    results = {}
    for name in backend.available_kernel_sets():
        with backend.use_kernel_set(name):
            assert backend.kernel_set() == name
            results[name] = ops.simple_rnn_forward(x, None, k, u, None, keep_tape=False)[0]
        assert backend.kernel_set() == before
    for name, y in results.items():  # every set computes the same layer
        np.testing.assert_allclose(y, results[before], rtol=0, atol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="argument `name`: 'sse9' is not a kernel set"):
        backend.set_kernel_set("sse9")
    with pytest.raises(ValueError, match="argument `name`: 3 is not a kernel set"):
        backend.set_kernel_set(3)
    assert backend.kernel_set() == before  # a refused switch changes nothing
    with pytest.raises(RuntimeError, match="inside"), backend.use_kernel_set(before):
        raise RuntimeError("inside")
    assert backend.kernel_set() == before


def test_the_version_is_written_once():
    text = (Path(PYTHON_DIR) / "fastrnn" / "_version.py").read_text()
    assert f'__version__ = "{fastrnn.__version__}"' in text
    done = run_python(["-m", "fastrnn", "--version"])
    assert done.stdout.strip() == f"fastrnn {fastrnn.__version__}"


def test_an_optional_package_older_than_supported_is_named(monkeypatch):
    pandas = pytest.importorskip("pandas")
    monkeypatch.setattr(pandas, "__version__", "1.4.4")
    with pytest.raises(ImportError, match=r"read_csv needs `pandas` >= 1\.5, but 1\.4\.4 is "
                                          r"installed: pip install --upgrade 'fastrnn\[pandas\]'"):
        _checks.require("pandas", "pandas", "read_csv")
    monkeypatch.setattr(pandas, "__version__", "2.3.3")
    assert _checks.require("pandas", "pandas", "read_csv") is pandas


def test_version_tuples():
    assert _checks.version_tuple("2.3.3") == (2, 3, 3)
    assert _checks.version_tuple("1.6.0rc1") == (1, 6, 0)
    assert _checks.version_tuple("0.13.5.post1") == (0, 13, 5)
    assert _checks.version_tuple("1.5") < _checks.version_tuple("1.5.3")
    assert _checks.version_tuple("") == ()
