"""The model/weights loader on hostile or broken files: size caps, zip
bombs, symlinks and special files, malformed archives and configs, non-float weights.

Every refusal is a ValueError naming the file (FileNotFoundError when nothing is there).
The files are built by hand at the saving layer (no model needed).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fastrnn import saving

CONFIG = {"format": saving.FORMAT_NAME, "format_version": 1, "class_name": "Sequential",
          "config": {"name": "m", "layers": [], "build_input_shape": None},
          "compile_config": None}
WEIGHTS = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4)]
PYTHON_DIR = str(Path(saving.__file__).resolve().parents[1])


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def npz_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def archive(path: Path, config: bytes | None = None, weights: bytes | None = None,
            extra: dict[str, bytes] | None = None) -> Path:
    """A model zip with the given members (defaults: a valid config and weights)."""
    members = {"model.json": json.dumps(CONFIG).encode() if config is None else config,
               "weights.npz": npz_bytes({f"{k:04d}.npy": npy_bytes(w)
                                         for k, w in enumerate(WEIGHTS)})
               if weights is None else weights, **(extra or {})}
    path.write_bytes(npz_bytes({k: v for k, v in members.items() if v is not None},
                               zipfile.ZIP_DEFLATED))
    return path


def refused(path: Path, *patterns: str, loader=saving.load_archive) -> str:
    with pytest.raises(ValueError) as info:
        loader(str(path))
    message = str(info.value)
    assert str(path) in message, message  # names the file
    for pattern in patterns:
        assert pattern in message, message
    return message


def test_valid_files_still_load(tmp_path):
    saving.save_archive(str(tmp_path / "m.fastrnn"), CONFIG, WEIGHTS, ["a/kernel", "a/bias"])
    config, weights = saving.load_archive(str(tmp_path / "m.fastrnn"))
    assert config == CONFIG
    for got, want in zip(weights, WEIGHTS):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    (tmp_path / "d").mkdir()
    saving.save_archive(str(tmp_path / "d"), CONFIG, WEIGHTS)
    assert len(saving.load_archive(str(tmp_path / "d"))[1]) == 2
    saving.save_weights_file(str(tmp_path / "w.bin"), WEIGHTS)
    assert np.array_equal(saving.load_weights_file(str(tmp_path / "w.bin"))[0], WEIGHTS[0])
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    path = tmp_path / "f.npz"
    path.write_bytes(npz_bytes({"0000.npy": npy_bytes(fortran)}))
    assert np.array_equal(saving.load_weights_file(str(path))[0], fortran)


# -- zip bombs and lying sizes ---------------------------------------------------------------
def test_zip_bomb_weights_are_refused_before_inflating(tmp_path):
    # 200 MiB of zeros deflate to ~200 KiB; a loader that trusts them allocates it all
    zeros = np.zeros(50 << 20, dtype=np.float32)
    path = tmp_path / "bomb.npz"
    path.write_bytes(npz_bytes({"0000.npy": npy_bytes(zeros)}, zipfile.ZIP_DEFLATED))
    del zeros
    assert path.stat().st_size < 1 << 20
    refused(path, "inflate", loader=saving.load_weights_file)
    bomb = archive(tmp_path / "bomb.fastrnn", weights=path.read_bytes())  # nested: stored
    refused(bomb, "inflate")


def test_declared_sizes_must_agree_with_the_array_headers(tmp_path):
    data = bytearray(npy_bytes(np.zeros(10, dtype=np.float32)))
    fake = data.replace(b"(10,)", b"(99999999,)", 1)  # header claims 400 MB, 40 bytes follow
    path = tmp_path / "lies.npz"
    path.write_bytes(npz_bytes({"0000.npy": bytes(fake)}))
    refused(path, "declares", loader=saving.load_weights_file)
    short = data.replace(b"(10,)", b"(11,)", 1)  # one element more than the data holds
    path.write_bytes(npz_bytes({"0000.npy": bytes(short)}))
    refused(path, "0000", loader=saving.load_weights_file)


def test_weights_over_the_size_cap_are_refused(tmp_path, monkeypatch):
    path = archive(tmp_path / "m.fastrnn")
    monkeypatch.setattr(saving, "MAX_WEIGHTS_BYTES", 40)  # the arrays hold 24 + 32 bytes
    refused(path, "at most 40 bytes")


def test_config_over_the_size_cap_is_refused(tmp_path, monkeypatch):
    big = json.dumps({**CONFIG, "padding": " " * 4096}).encode()
    path = archive(tmp_path / "m.fastrnn", config=big)
    monkeypatch.setattr(saving, "MAX_CONFIG_BYTES", 1024)
    refused(path, "model.json")
    (tmp_path / "d").mkdir()
    saving.save_archive(str(tmp_path / "d"), CONFIG, WEIGHTS)
    (tmp_path / "d" / "model.json").write_bytes(big)
    refused(tmp_path / "d", "model.json")


# -- the directory form: symlinks and special files -------------------------------------------
def test_directory_members_must_be_regular_files(tmp_path):
    model = tmp_path / "d"
    model.mkdir()
    saving.save_archive(str(model), CONFIG, WEIGHTS)
    real = tmp_path / "elsewhere.json"
    real.write_bytes((model / "model.json").read_bytes())
    (model / "model.json").unlink()
    (model / "model.json").symlink_to(real)  # a symlink, even to a valid file, is refused
    refused(model, "symlink")
    (model / "model.json").unlink()
    os.mkfifo(model / "model.json")  # would block a plain open() forever
    refused(model, "regular file")
    (model / "model.json").unlink()
    (model / "model.json").write_bytes(real.read_bytes())
    (model / "weights.npz").unlink()
    refused(model, "weights.npz")


def test_model_json_symlinked_to_dev_zero_is_refused_without_reading_it(tmp_path):
    """In a subprocess with a memory limit and a timeout: the old loader read /dev/zero until
    the memory ran out."""
    model = tmp_path / "d"
    model.mkdir()
    saving.save_archive(str(model), CONFIG, WEIGHTS)
    (model / "model.json").unlink()
    (model / "model.json").symlink_to("/dev/zero")
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from fastrnn import saving
        try:
            saving.load_archive({str(model)!r})
        except ValueError as err:
            print("refused:", err)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": PYTHON_DIR})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:") and "symlink" in done.stdout, done.stdout
    top = tmp_path / "zero.fastrnn"
    top.symlink_to("/dev/zero")  # a top-level path may be a symlink, but not to a device
    refused(top, "regular file")


# -- malformed archives and configs -----------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        (b"\xff\xfe{}", "not valid JSON"),                     # not UTF-8
        (b"[1, 2]", "JSON object"),                            # not an object
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),   # nested past the recursion limit
        (json.dumps({**CONFIG, "format_version": True}).encode(), "positive integer"),
        (json.dumps({**CONFIG, "format_version": -1}).encode(), "positive integer"),
        (json.dumps({**CONFIG, "format_version": 0}).encode(), "positive integer"),
        (json.dumps({**CONFIG, "format_version": "1"}).encode(), "positive integer"),
        (json.dumps({**CONFIG, "format_version": 1.0}).encode(), "positive integer"),
        (json.dumps({**CONFIG, "format_version": 2}).encode(), "format version 2"),
    ],
    ids=["utf16", "list", "deep", "true", "negative", "zero", "string", "float", "newer"],
)
def test_malformed_configs_are_refused(tmp_path, config, pattern):
    refused(archive(tmp_path / "m.fastrnn", config=config), pattern)


def test_malformed_archives_are_refused(tmp_path):
    good = archive(tmp_path / "good.fastrnn").read_bytes()
    (tmp_path / "junk.fastrnn").write_bytes(b"PK\x03\x04 not really a zip")
    refused(tmp_path / "junk.fastrnn", "zip")
    (tmp_path / "cut.fastrnn").write_bytes(good[: len(good) // 2])
    refused(tmp_path / "cut.fastrnn", "zip")
    corrupt = bytearray(good)
    at = corrupt.index(b"model.json") + 40  # inside the compressed config
    corrupt[at] ^= 0xFF
    (tmp_path / "crc.fastrnn").write_bytes(bytes(corrupt))
    refused(tmp_path / "crc.fastrnn")
    refused(archive(tmp_path / "nojson.fastrnn", config=None, extra={"model.json": None}),
            "model.json")
    refused(archive(tmp_path / "noweights.fastrnn", extra={"weights.npz": None}), "weights.npz")
    refused(archive(tmp_path / "notnpz.fastrnn", weights=b"not a zip"), "zip")
    refused(archive(tmp_path / "names.fastrnn", weights=npz_bytes(
        {"0000.npy": npy_bytes(WEIGHTS[0]), "0002.npy": npy_bytes(WEIGHTS[1])})), "0000, 0001")
    refused(archive(tmp_path / "other.fastrnn", weights=npz_bytes(
        {"0000.npy": npy_bytes(WEIGHTS[0]), "evil.txt": b"x"})), "0000, 0001")
    refused(archive(tmp_path / "npy.fastrnn", weights=npz_bytes(
        {"0000.npy": b"\x93NUMPY garbage"})), ".npy")


@pytest.mark.parametrize("array", [
    np.array([1 + 2j, 3j], dtype=np.complex64),
    np.array(["abc", "de"]),
    np.array([b"abc"]),
    np.array([1, 2], dtype=np.int32),
    np.array(["2020-01-01"], dtype="datetime64[D]"),
    np.zeros(2, dtype=[("a", np.float32), ("b", np.float32)]),
    np.array([{"a": 1}], dtype=object),
], ids=["complex", "unicode", "bytes", "int", "datetime", "structured", "object"])
def test_non_float_weight_arrays_are_refused_at_read_time(tmp_path, array):
    path = tmp_path / "w.npz"
    path.write_bytes(npz_bytes({"0000.npy": npy_bytes(array)}))
    message = refused(path, "float16/32/64", loader=saving.load_weights_file)
    if array.dtype.hasobject:
        assert "pickle" in message


def test_missing_files_are_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        saving.load_archive(str(tmp_path / "nothing.fastrnn"))
    with pytest.raises(FileNotFoundError):
        saving.load_weights_file(str(tmp_path / "nothing.npz"))


def test_archive_format_reads_the_config_alone(tmp_path):
    """archive_format (what the server and the command ask first) reads the config only: a
    file whose weights are broken still names its format, and load_archive still refuses it;
    a broken config is refused by both."""
    broken = archive(tmp_path / "w.fastrnn", weights=b"not a zip of arrays")
    assert saving.archive_format(str(broken)) == saving.FORMAT_NAME
    refused(broken, "weights")
    bad_config = archive(tmp_path / "c.fastrnn", config=b"[1, 2]")
    refused(bad_config, "not a fastrnn model config", loader=saving.archive_format)
    (tmp_path / "d").mkdir()
    saving.save_archive(str(tmp_path / "d"), dict(CONFIG, format="fastrnn.forecaster"), WEIGHTS)
    (tmp_path / "d" / "weights.npz").write_bytes(b"broken")
    assert saving.archive_format(str(tmp_path / "d")) == "fastrnn.forecaster"
