"""The model file format, in one place: writing and reading models, weights, optimizer state,
random streams and training progress (``BackupAndRestore``'s backups), and weight exchange
with PyTorch's ``nn.RNN/LSTM/GRU``.

Nothing here imports a model module: a model is read through the methods every model has
(``get_config``, ``get_compile_config``, ``get_weights``, its optimizer's ``get_state``,
its random streams), and :func:`load_model` finds the class of the file's ``class_name``
among those registered with :func:`register_model_class` (``Sequential`` and
``Functional`` register themselves) or among the custom objects. Loading never executes
code: JSON is parsed with ``json``, arrays are read with ``np.load(..., allow_pickle=False)``,
and class names are looked up in fastrnn's own registries (unknown names are refused).

The model file (``model.save(path)``, read by ``fastrnn.load_model``)
---------------------------------------------------------------------
One zip archive (any file name; ``.fastrnn`` is customary) holding two members:

* ``model.json``: ``{"format": "fastrnn.model", "format_version": 1, "class_name":
  "Sequential" | "Functional" | a subclass's registered name, "config": the model's
  ``get_config()`` (a Sequential's ``{"name", "layers": [{"class_name", "config"}, ...],
  "build_input_shape"}``, a functional model's graph), "compile_config": {"optimizer",
  "loss", "metrics", "loss_weights"} or null, "optimizer_state": {"iterations",
  "learning_rate", "slots"} (compiled models), "rng_state": [...], and for a subclassed model
  "subclassed": true and "build_input" (the input specs it was traced for); a backup adds
  "training_progress": {"format": "fastrnn-backup", "epoch", "dataset_rng"}}``;
* ``weights.npz``: the weights in ``get_weights()`` order, under the keys ``"0000"``,
  ``"0001"``, ..., then the optimizer's slot arrays (e.g. Adam's moments, named
  ``"optimizer/slots/..."``), plus ``"__names__"`` (``"layer/weight"`` strings).

If `path` is an existing directory, the same two files are written into it instead (the pair
replaced as a whole: a failure leaves the old pair). Writes go to a temporary file first, are
flushed to disk and then replace the target, so a checkpoint interrupted halfway never leaves a
corrupt file behind. With the optimizer state and the random streams, ``load_model`` (and a
backup) continues training exactly.

Weights only (``save_weights``/``load_weights``): the ``weights.npz`` member on its own, at
exactly the path given (NumPy's habit of appending ``.npz`` is avoided).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, Optional, Union, cast

import numpy as np

from .layers import base as layers_base

__all__ = [
    "CustomObjectScope",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "archive_format",
    "custom_object_scope",
    "deserialize_keras_object",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "load_weights",
    "model_from_config",
    "model_from_json",
    "save_weights",
    "serialize_keras_object",
    "serialize_model",
    "export_torch_state_dict",
    "import_torch_state_dict",
    "MAX_CONFIG_BYTES",
    "MAX_WEIGHTS_BYTES",
    "load_archive",
    "load_model",
    "load_weights_file",
    "read_backup",
    "register_keras_serializable",
    "register_model_class",
    "save_archive",
    "save_model",
    "save_weights_file",
    "write_backup",
]

FORMAT_NAME = "fastrnn.model"
FORMAT_VERSION = 1
CONFIG_MEMBER = "model.json"
WEIGHTS_MEMBER = "weights.npz"
_NAMES_KEY = "__names__"


# ----------------------------------------------------------------------------- writing
def _weights_bytes(weights: list[np.ndarray], names: Optional[list[str]]) -> bytes:
    arrays = {f"{k:04d}": np.asarray(w, order="C") for k, w in enumerate(weights)}
    if names is not None:
        arrays[_NAMES_KEY] = np.array(list(names), dtype=np.str_)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # no key is savez's allow_pickle
    return buf.getvalue()


def _fsync_dir(folder: str) -> None:
    """Makes a rename in `folder` durable (where the platform lets a directory be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, flushes it to disk, then renames it
    over `path` and flushes the directory: after a crash `path` holds the old bytes or the new,
    never a mix, and a save that returned survives a power cut."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fastrnn-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _exchange(a: str, b: str) -> bool:
    """Atomically swaps two directory entries (Linux renameat2 RENAME_EXCHANGE); False where
    the platform cannot."""
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _write_directory(path: str, text: bytes, blob: bytes) -> None:
    """The directory form, replaced as a whole: both files go to a new sibling directory,
    which is then swapped with `path` in one step (so a failure leaves the old pair, never a
    new config beside old weights). Where the platform has no atomic swap, the old directory is
    renamed aside first and restored if the second rename fails."""
    import shutil
    parent = os.path.dirname(os.path.abspath(path))
    staging = tempfile.mkdtemp(prefix=".fastrnn-save-", dir=parent)
    try:
        _atomic_write(os.path.join(staging, CONFIG_MEMBER), text)
        _atomic_write(os.path.join(staging, WEIGHTS_MEMBER), blob)
        for name in os.listdir(path):  # keep the user's other files in the directory
            if name not in (CONFIG_MEMBER, WEIGHTS_MEMBER):
                src = os.path.join(path, name)
                dst = os.path.join(staging, name)
                if os.path.isdir(src) and not os.path.islink(src):
                    shutil.copytree(src, dst, symlinks=True)
                else:
                    shutil.copy2(src, dst, follow_symlinks=False)
        if not _exchange(staging, path):
            aside = staging + ".old"
            os.rename(path, aside)
            try:
                os.rename(staging, path)
            except BaseException:
                os.rename(aside, path)
                raise
            staging = aside
        _fsync_dir(parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_archive(path: str, config: dict, weights: list[np.ndarray],
                 names: Optional[list[str]] = None) -> None:
    """Writes `config` (JSON-ready) and `weights` to `path` (see the module docstring)."""
    path = os.fspath(path)
    text = json.dumps(config, indent=2, allow_nan=False).encode("utf-8")
    blob = _weights_bytes(weights, names)
    if os.path.isdir(path):
        _write_directory(path, text, blob)
        return
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(CONFIG_MEMBER, text)
        zf.writestr(WEIGHTS_MEMBER, blob)
    _atomic_write(path, buf.getvalue())


def save_weights_file(path: str, weights: list[np.ndarray],
                      names: Optional[list[str]] = None) -> None:
    """Writes `weights` as an ``.npz`` file at exactly `path`."""
    _atomic_write(os.fspath(path), _weights_bytes(weights, names))


# ----------------------------------------------------------------------------- reading
# A model file is untrusted input: every size is checked before memory is given to it.
# The config is small (a few KiB for any real model); the weights are bounded by
# MAX_WEIGHTS_BYTES, and a member may inflate to at most _MAX_INFLATION times its stored size
# once it is larger than _INFLATION_FREE_BYTES (trained weights barely compress, ~1.1x; a zip
# bomb inflates ~1000x). The sizes a zip declares are checked against the arrays' headers,
# and the bytes actually inflated against both while streaming.
MAX_CONFIG_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 4 << 30
_MAX_INFLATION = 100
_INFLATION_FREE_BYTES = 64 << 20
_CHUNK = 1 << 20
_MAX_WEIGHT_ARRAYS = 100_000
_NAMES_MAX_BYTES = 64 << 20
# What zipfile raises on a corrupt or truncated archive, a bad CRC, a broken deflate stream,
# an encrypted member or an unknown compression method.
_ZIP_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
               RuntimeError, NotImplementedError)


def _malformed(where: str, expected: str, detail: str = "") -> ValueError:
    return ValueError(f"{where} is not a valid fastrnn file: expected {expected}"
                      f"{f', {detail}' if detail else ''}.")


def _open_regular(path: str, where: str) -> Any:
    """Opens `path` for reading only if it is a regular file and not a symlink (a directory
    model's members: a symlink to /dev/zero or a FIFO would be read forever or block)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(
            os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise _malformed(where, f"a file {os.path.basename(path)}", "it is missing") from None
    except OSError as exc:  # ELOOP: a symlink, with O_NOFOLLOW
        raise _malformed(where, f"{os.path.basename(path)} to be a regular file (not a "
                         f"symlink)", str(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _malformed(where, f"{os.path.basename(path)} to be a regular file",
                             "it is a device, FIFO or socket")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_bounded(stream: Any, limit: int, where: str, what: str) -> bytes:
    """At most `limit` bytes of `stream`; more is an error (never read past limit + 1)."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _malformed(where, f"{what} of at most {limit} bytes", "it is larger")
    return data


def _check_declared(info: zipfile.ZipInfo, limit: int, where: str) -> None:
    """Refuses a zip member whose declared size is over `limit` or that would inflate like a
    zip bomb."""
    if info.file_size > limit:
        raise _malformed(where, f"member {info.filename} of at most {limit} bytes",
                         f"it declares {info.file_size} (raise saving.MAX_WEIGHTS_BYTES for "
                         "larger models)")
    if (info.file_size > _INFLATION_FREE_BYTES
            and info.file_size > _MAX_INFLATION * max(info.compress_size, 1)):
        raise _malformed(where, f"member {info.filename} to inflate at most "
                         f"{_MAX_INFLATION}x", f"it inflates {info.compress_size} bytes to "
                         f"{info.file_size} (a zip bomb?)")


def _read_member(zf: zipfile.ZipFile, name: str, limit: int, where: str) -> bytes:
    info = zf.getinfo(name)
    _check_declared(info, limit, where)
    with zf.open(info) as stream:
        return _read_bounded(stream, info.file_size, where, f"member {name}")


def _read_npy(stream: Any, info: zipfile.ZipInfo, key: str, where: str, budget: int
              ) -> np.ndarray:
    """One ``.npy`` member, streamed into an array allocated from its checked header."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise ValueError(f"npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise _malformed(where, f"array {key} in NumPy .npy format", str(exc)) from None
    if key == _NAMES_KEY:
        allowed = dtype.kind == "U"
        rule = "a unicode string array"
    else:
        allowed = dtype.kind == "f" and not dtype.hasobject and dtype.fields is None
        rule = "a float16/32/64 array"
    if not allowed:
        pickle = " (object arrays need pickle, which is never used)" if dtype.hasobject else ""
        raise _malformed(where, f"weight array {key} to be {rule}", f"got dtype {dtype}{pickle}")
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    header = stream.tell() if hasattr(stream, "tell") else None
    if nbytes > budget:
        raise _malformed(where, f"weights of at most {MAX_WEIGHTS_BYTES} bytes in all",
                         f"array {key} declares shape {shape} ({nbytes} bytes)")
    if header is not None and header + nbytes != info.file_size:
        raise _malformed(where, f"array {key} of {info.file_size} bytes as the archive "
                         f"declares", f"its header declares shape {shape} of {dtype} "
                         f"({header + nbytes} bytes)")
    out = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
    view = out.reshape(-1).view(np.uint8)
    done = 0
    while done < nbytes:
        chunk = stream.read(min(_CHUNK, nbytes - done))
        if not chunk:
            raise _malformed(where, f"array {key} of {nbytes} bytes", f"it ends after {done}")
        view[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        done += len(chunk)
    if stream.read(1):
        raise _malformed(where, f"array {key} of {nbytes} bytes", "it has more data")
    return out.T if fortran else out


def _read_weights(source: Any, where: str) -> list[np.ndarray]:
    """The arrays ``0000``, ``0001``, ... of an ``.npz`` (a path or a binary file object)."""
    try:
        with zipfile.ZipFile(source) as npz:
            infos = npz.infolist()
            if len(infos) > _MAX_WEIGHT_ARRAYS:
                raise _malformed(where, f"at most {_MAX_WEIGHT_ARRAYS} weight arrays",
                                 f"got {len(infos)}")
            keys = [info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                    for info in infos]
            numbered = sorted(k for k in keys if k != _NAMES_KEY)
            if (len(set(keys)) != len(keys) or any(not i.filename.endswith(".npy")
                                                   for i in infos)
                    or numbered != [f"{k:04d}" for k in range(len(numbered))]):
                raise _malformed(where, "a fastrnn weights file (arrays named 0000, 0001, "
                                 "... and __names__)", f"got members {sorted(keys)[:5]}")
            arrays: dict[str, np.ndarray] = {}
            budget = MAX_WEIGHTS_BYTES
            for key, info in zip(keys, infos):
                limit = _NAMES_MAX_BYTES if key == _NAMES_KEY else budget
                _check_declared(info, limit + 256, where)  # + the .npy header
                with npz.open(info) as stream:
                    arrays[key] = _read_npy(stream, info, key, where, limit)
                if key != _NAMES_KEY:
                    budget -= arrays[key].nbytes
            return [arrays[k] for k in numbered]
    except _ZIP_ERRORS as exc:
        raise _malformed(where, "a readable zip (.npz) of weights", str(exc)) from exc


def _is_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return zipfile.is_zipfile(f)


def _check_top(path: str) -> None:
    """`path` must be a directory or a regular file (following a symlink the user chose)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"No model or weights file at {path!r}.") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise _malformed(repr(path), "a regular file or a directory",
                         "it is a device, FIFO or socket")


def load_archive(path: str, format_name: Optional[str] = FORMAT_NAME
                 ) -> tuple[dict, list[np.ndarray]]:
    """Reads a model file or directory written by :func:`save_archive` whose config's
    ``"format"`` is `format_name` (other fastrnn objects, e.g. a forecaster, use the same
    archive with their own format name).

    Returns:
        ``(config, weights)``.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: anything else that is not a well-formed fastrnn model (not a zip,
            missing members, a symlinked or special member in the directory form, JSON that
            is not UTF-8 or not an object, a bad ``format_version``, weights that are not
            float arrays, sizes over :data:`MAX_CONFIG_BYTES`/:data:`MAX_WEIGHTS_BYTES` or
            inflating like a zip bomb); the message names the file and what was expected.
    """
    config, weights = _read_archive(os.fspath(path), format_name, with_weights=True)
    assert weights is not None
    return config, weights


def _read_archive(path: str, format_name: Optional[str], with_weights: bool
                  ) -> tuple[dict, Optional[list[np.ndarray]]]:
    """The checked config of an archive (file or directory) and, `with_weights`, its weights
    (read after the config is checked; errors as :func:`load_archive`'s)."""
    where = repr(path)
    _check_top(path)
    if os.path.isdir(path):
        with _open_regular(os.path.join(path, CONFIG_MEMBER), where) as f:
            text = _read_bounded(f, MAX_CONFIG_BYTES, where, CONFIG_MEMBER)
        config = _parse_config(text, path, format_name)
        if not with_weights:
            return config, None
        with _open_regular(os.path.join(path, WEIGHTS_MEMBER), where) as f:
            return config, _read_weights(f, where)
    if not _is_zip(path):
        raise ValueError(f"{where} is not a fastrnn model file (not a zip archive).")
    try:
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
            if CONFIG_MEMBER not in members or WEIGHTS_MEMBER not in members:
                raise ValueError(
                    f"{where} is not a fastrnn model file: expected members {CONFIG_MEMBER} "
                    f"and {WEIGHTS_MEMBER}, found {sorted(members)[:5]}."
                )
            config = _parse_config(_read_member(zf, CONFIG_MEMBER, MAX_CONFIG_BYTES, where),
                                   path, format_name)
            if not with_weights:
                return config, None
            blob = _read_member(zf, WEIGHTS_MEMBER, MAX_WEIGHTS_BYTES + (64 << 20), where)
    except _ZIP_ERRORS as exc:
        raise _malformed(where, "a readable zip archive", str(exc)) from exc
    return config, _read_weights(io.BytesIO(blob), where)


def _parse_config(text: bytes, path: str, format_name: Optional[str] = FORMAT_NAME) -> dict:
    try:
        config = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path!r}: {CONFIG_MEMBER} is not valid JSON ({exc}).") from exc
    if not isinstance(config, dict) or (config.get("format") != format_name if format_name
                                        else not isinstance(config.get("format"), str)):
        raise ValueError(f"{path!r}: {CONFIG_MEMBER} is not a fastrnn model config (expected "
                         f"a JSON object with \"format\": \"{format_name or '...'}\").")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path!r}: {CONFIG_MEMBER} has format_version {version!r}; expected "
                         "a positive integer.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written in format version {version!r}; this fastrnn reads versions "
            f"up to {FORMAT_VERSION}."
        )
    return config


def archive_format(path: str) -> str:
    """What a fastrnn archive holds: its config's ``"format"`` (``"fastrnn.model"`` for
    :func:`save_model`'s files, ``"fastrnn.forecaster"`` for ``RNNForecaster.save``'s),
    from the config alone (the weights are not read); errors as :func:`load_archive`'s."""
    return str(_read_archive(os.fspath(path), None, with_weights=False)[0]["format"])


def load_weights_file(path: str) -> list[np.ndarray]:
    """The weights of a :func:`save_weights_file` file, or of a model archive/directory.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: not a well-formed weights file (see :func:`load_archive`).
    """
    path = os.fspath(path)
    _check_top(path)
    if os.path.isdir(path) or (_is_zip(path) and _has_member(path, CONFIG_MEMBER)):
        config, arrays = load_archive(path)
        # a compiled model's file holds its optimizer's slot arrays after the weights
        slots = (config.get("optimizer_state") or {}).get("slots") \
            if isinstance(config.get("optimizer_state"), dict) else None
        if isinstance(slots, list) and 0 < len(slots) <= len(arrays):
            return arrays[:len(arrays) - len(slots)]
        return arrays
    with open(path, "rb") as f:
        return _read_weights(f, repr(path))


def _has_member(path: str, member: str) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return member in zf.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise _malformed(repr(path), "a readable zip archive", str(exc)) from exc


# ----------------------------------------------------------------------------- models
# The model classes load_model can rebuild by name ("Sequential", "Functional"): each
# registers itself when its module is imported.
_MODEL_CLASSES: dict[str, Any] = {}
_expected = threading.local()


def register_model_class(name: str, cls: type) -> type:
    """Makes `cls` the class :func:`load_model` rebuilds for files of ``class_name`` `name`
    (through ``cls._from_file_config(config, path)``)."""
    _MODEL_CLASSES[name] = cls
    return cls


@contextlib.contextmanager
def expecting_weight_shapes(shapes: list) -> Iterator[None]:
    """Within it, building a model first checks its weight shapes against `shapes` (those
    of the file being loaded), before any buffer is allocated. Per thread."""
    before = getattr(_expected, "shapes", None)
    _expected.shapes = [tuple(s) for s in shapes]
    try:
        yield
    finally:
        _expected.shapes = before


def expected_weight_shapes() -> Optional[list]:
    """The weight shapes of the file being loaded on this thread (None outside a load)."""
    return getattr(_expected, "shapes", None)


def check_saved_shapes(model: str, mine: list, saved: list) -> None:
    """Raises ``ValueError`` unless the ``(name, shape)`` pairs `mine` fit `saved` shapes."""
    if len(mine) != len(saved):
        raise ValueError(
            f"Model `{model}`: the file holds {len(saved)} weight arrays, the architecture it "
            f"describes has {len(mine)}."
        )
    for k, ((name, shape), want) in enumerate(zip(mine, saved)):
        if tuple(shape) != tuple(want):
            raise ValueError(
                f"Model `{model}`: weight {k} (`{name}`) has shape {tuple(shape)} in the "
                f"architecture the file describes, but the file holds an array of shape "
                f"{tuple(want)}."
            )


def malformed_config(path: str, where: str, expected: str, got: Any) -> ValueError:
    """The error for a model config entry at `where` that is not what was `expected`."""
    return ValueError(f"{path!r}: malformed model config at {where}: expected {expected}, got "
                      f"{got!r}.")


def serialize_model(model: Any) -> dict:
    """A model's architecture, JSON-ready: ``{"class_name", "config"}`` (a subclassed model
    also ``"subclassed"`` and the ``"build_input"`` it was traced for); what
    :func:`model_from_config` rebuilds."""
    out: dict = {"class_name": model._class_name(), "config": model.get_config()}
    build_input = model._saved_build_input()
    if build_input is not None:
        out["subclassed"] = True
        out["build_input"] = build_input
    return out


def save_model(model: Any, path: str, progress: Optional[dict] = None) -> None:
    """Writes `model` to `path` (see the module docstring); `progress` (JSON-ready: where a
    training run stands) is kept in the config too (a backup is a model file with it)."""
    model._require_built("save()")
    config: dict = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                    **serialize_model(model),
                    "compile_config": model.get_compile_config()}
    weights, names = model.get_weights(), model.weight_names
    # What continuing training exactly needs: the optimizer's slots (after the weights),
    # its step count and learning rate, and the random streams of shuffling and dropout.
    if getattr(model, "compiled", False):
        state = model.optimizer.get_state()
        slots = [k for k in state if k.startswith("slots/")]
        config["optimizer_state"] = {"iterations": int(state["iterations"]),
                                     "learning_rate": float(state["learning_rate"]),
                                     "slots": slots}
        weights += [state[k] for k in slots]
        names += [f"optimizer/{k}" for k in slots]
    config["rng_state"] = [None if g is None else g.bit_generator.state
                           for g in model._rng_generators()[:-1]]
    if progress is not None:
        config["training_progress"] = progress
    save_archive(path, config, weights, names)


def split_training_state(config: dict, arrays: list, path: str) -> tuple:
    """``(weights, optimizer state or None, rng states or None)`` from a loaded archive."""
    opt = config.get("optimizer_state")
    rng = config.get("rng_state")
    if rng is not None and not isinstance(rng, list):
        raise malformed_config(path, "rng_state", "a list", rng)
    if opt is None:
        return arrays, None, rng
    if not isinstance(opt, dict):
        raise malformed_config(path, "optimizer_state", "an object", opt)
    slots = opt.get("slots")
    iterations = opt.get("iterations")
    lr = opt.get("learning_rate")
    if not isinstance(slots, list) or not all(isinstance(k, str) for k in slots) or \
            len(slots) > len(arrays):
        raise malformed_config(path, "optimizer_state.slots",
                               "a list of names of saved arrays", slots)
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
        raise malformed_config(path, "optimizer_state.iterations", "a non-negative integer",
                               iterations)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool):
        raise malformed_config(path, "optimizer_state.learning_rate", "a number", lr)
    n = len(arrays) - len(slots)
    state = {"iterations": np.array(iterations, dtype=np.int64),
             "learning_rate": np.array(float(lr))}
    state.update(zip(slots, arrays[n:]))
    return arrays[:n], state, rng


def restore_training_state(model: Any, weights: list, opt_state: Optional[dict],
                           rng_state: Optional[list], path: str, strict: bool) -> None:
    """Puts a file's weights, optimizer state and random streams into `model`, all checked
    (the optimizer state on a copy) before any is applied. `strict`: the random streams must
    be the model's (a backup); otherwise streams of another layout are skipped."""
    gens = model._rng_generators()[:-1]
    fits = rng_state is not None and len(rng_state) == len(gens)
    try:
        if [np.shape(w) for w in weights] != [w.shape for w in model.weights]:
            raise ValueError("its weight shapes differ from this model's")
        if opt_state is not None:
            copy.deepcopy(model.optimizer).set_state(opt_state, model._optimizer_targets()[0])
        if strict and not fits:
            raise ValueError("its random streams do not match this model's layers")
        if fits:
            for g, st in zip(gens, rng_state or ()):
                if g is not None and st is not None:
                    copy.deepcopy(g).bit_generator.state = st
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        raise ValueError(f"{path!r} does not fit this model ({exc}).") from exc
    model.set_weights(weights)
    if opt_state is not None:
        model.optimizer.set_state(opt_state, model._optimizer_targets()[0])
    if fits:
        for g, st in zip(gens, rng_state or ()):
            if g is not None and st is not None:
                g.bit_generator.state = st


def _subclassed_from_config(kind: Any, config: dict, build: Any, path: str) -> Any:
    """A subclassed model: its class by name (``custom_objects`` or the registry; a file never
    holds code), made from its config and built on the saved input shapes."""
    cls: Any = None
    if isinstance(kind, str):
        cls = layers_base.custom_objects_in_scope().get(kind) or layers_base._CUSTOM.get(kind)
        if cls is None and ">" in kind:
            cls = layers_base.custom_objects_in_scope().get(kind.split(">", 1)[1])
    if cls is None:
        short = kind.split(">", 1)[-1] if isinstance(kind, str) else kind
        raise ValueError(
            f"{path!r} holds a model of the custom class {kind!r}: pass it when loading, "
            f"load_model(path, custom_objects={{{short!r}: {short}}}), or decorate the class "
            "with @fastrnn.saving.register_keras_serializable().")
    if not (isinstance(cls, type) and callable(getattr(cls, "_unique_layers", None))
            and getattr(cls, "_subclassed", False)):
        raise ValueError(f"{path!r}: the custom object {kind!r} is not a subclass of "
                         f"fastrnn.Model with a call() (got {cls!r}).")
    if not isinstance(build, dict):
        raise malformed_config(path, "build_input", "an object", build)
    specs, dtypes = build.get("specs"), build.get("dtypes")
    struct, keys = build.get("struct"), build.get("keys")
    if not isinstance(specs, list) or not specs or not all(
            isinstance(s, list) and all(d is None or (isinstance(d, int) and not isinstance(
                d, bool) and d > 0) for d in s) for s in specs):
        raise malformed_config(path, "build_input.specs", "a list of shapes", specs)
    if not isinstance(dtypes, list) or len(dtypes) != len(specs) or not all(
            d in ("float32", "float64", "int32", "int64") for d in dtypes):
        raise malformed_config(path, "build_input.dtypes", f"{len(specs)} dtype names", dtypes)
    if struct not in ("single", "list", "dict") or (struct == "single" and len(specs) != 1):
        raise malformed_config(path, "build_input.struct", "'single', 'list' or 'dict'",
                               struct)
    if struct == "dict" and (not isinstance(keys, list) or len(keys) != len(specs)
                             or not all(isinstance(k, str) for k in keys)):
        raise malformed_config(path, "build_input.keys", f"{len(specs)} input names", keys)
    model = cast(Any, cls).from_config(config)
    model._trace_call([tuple(s) for s in specs], [np.dtype(d) for d in dtypes], struct,
                      keys if struct == "dict" else None)
    return model


def model_from_config(config: Any, custom_objects: Optional[dict] = None,
                      path: str = "<config>") -> Any:
    """The model (architecture only, new weights) of :func:`serialize_model`'s dict; errors
    name `path` (where the config came from) and the entry."""
    if not isinstance(config, dict):
        raise malformed_config(path, "the top level", "an object", config)
    kind = config.get("class_name")
    arch = config.get("config") or {}
    if not isinstance(arch, dict):
        raise malformed_config(path, "config", "an object", arch)
    subclassed = config.get("subclassed") is True
    if not (isinstance(kind, str) and kind in _MODEL_CLASSES) and not subclassed:
        raise ValueError(
            f"{path!r} holds a model of class {kind!r}; fastrnn can load 'Sequential' and "
            "'Functional' models, and subclassed ones."
        )
    try:
        with layers_base.custom_object_scope(custom_objects):
            if subclassed:
                return _subclassed_from_config(kind, arch, config.get("build_input"), path)
            return _MODEL_CLASSES[str(kind)]._from_file_config(arch, path)
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError,
            MemoryError, NotImplementedError) as exc:
        raise ValueError(f"{path!r}: malformed model config ({type(exc).__name__}: {exc}).") \
            from exc
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path!r}: {exc}") from exc


def model_from_json(json_string: Union[str, bytes], custom_objects: Optional[dict] = None
                    ) -> Any:
    """The model of ``model.to_json()`` (Keras's ``model_from_json``): the architecture with
    new weights; custom classes by `custom_objects` or the registry (no code is run from the
    string)."""
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError("Received an invalid value for argument `json_string`, expected a JSON "
                        f"string, got {type(json_string).__name__}.")
    try:
        config = json.loads(json_string)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"Received an invalid value for argument `json_string`: not JSON "
                         f"({exc}).") from exc
    return model_from_config(config, custom_objects, "<json_string>")


def load_model(path: str, custom_objects: Optional[dict] = None, compile: bool = True) -> Any:
    """Loads a model written by ``model.save`` (Sequential, functional or subclassed); never
    executes code from the file.

    Args:
        path: the zip archive or directory given to ``save``.
        custom_objects: ``{name: class or function}`` for custom layers, models, losses and
            metrics (e.g. the book's ``last_time_step_mse``).
        compile: False skips the saved compile config (the model is then only for inference
            or for compiling anew).

    Raises:
        ValueError: unknown format, class or layer names, or mismatched weights.
    """
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(
            "Received an invalid value for argument `custom_objects`, expected a dict "
            f"{{name: class or function}}, got {type(custom_objects).__name__}.")
    config, weights = load_archive(path)
    weights, opt_state, rng_state = split_training_state(config, weights, path)
    # Layers are built without drawing initial values, and the file's weight shapes are
    # checked against the architecture before any buffer is filled.
    with layers_base.skipped_initialization(), \
            expecting_weight_shapes([w.shape for w in weights]):
        model = model_from_config(config, custom_objects, path)
    if not model.built and weights:
        raise ValueError(f"{path!r}: weights were saved for a model that was never built.")
    cc = config.get("compile_config")
    if compile and cc:
        try:
            model.compile_from_config(cc, custom_objects)
        except ValueError as exc:  # it names the entry; the file is named here
            raise ValueError(f"{path!r}: {exc}") from exc
    else:
        opt_state = None
    if model.built:
        restore_training_state(model, weights, opt_state, rng_state, path, strict=False)
    return model


# ----------------------------------------------------------------------------- backups
_BACKUP_FORMAT = "fastrnn-backup"


def write_backup(model: Any, path: str, epoch: int) -> None:
    """Everything an exact resume needs, in one model file written atomically: what
    :func:`save_model` keeps (weights, optimizer state, the model's random streams) and where
    the run stands (the last completed epoch, a shuffling dataset's stream)."""
    dataset_rng = model._rng_generators()[-1]
    save_model(model, path, progress={
        "format": _BACKUP_FORMAT, "epoch": int(epoch),
        "dataset_rng": None if dataset_rng is None else dataset_rng.bit_generator.state,
    })


def read_backup(model: Any, path: str) -> int:
    """Restores a :func:`write_backup` file into `model` (checked whole before anything
    changes); returns the epoch to continue from."""
    config, arrays = load_archive(path)
    weights, opt_state, rng_state = split_training_state(config, arrays, path)
    progress = config.get("training_progress")
    if not isinstance(progress, dict) or progress.get("format") != _BACKUP_FORMAT:
        raise ValueError(f"{path!r} is not a fastrnn backup (no training progress in it).")
    epoch = progress.get("epoch")
    dataset_rng = model._rng_generators()[-1]
    try:
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"bad epoch {epoch!r}")
        if (dataset_rng is None) != (progress.get("dataset_rng") is None):
            raise ValueError("one of them trains on a shuffling dataset, the other not")
        if dataset_rng is not None:
            copy.deepcopy(dataset_rng).bit_generator.state = progress["dataset_rng"]
        restore_training_state(model, weights, opt_state if model.optimizer else None,
                               rng_state, path, strict=True)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(
            f"{path!r} was written for another model or training setup ({exc}); delete it "
            "to start afresh."
        ) from exc
    if dataset_rng is not None:
        dataset_rng.bit_generator.state = progress["dataset_rng"]
    return epoch + 1


# ----------------------------------------------------------------------------- PyTorch
# Keras (and fastrnn) gate blocks along the last axis of kernel/recurrent_kernel/bias, and the
# PyTorch blocks along the first axis of weight_ih/weight_hh/bias_*:
#   SimpleRNN: one block;  LSTM: Keras i, f, c, o == PyTorch i, f, g, o (same order);
#   GRU: Keras z, r, h  vs  PyTorch r, z, n  (first two swapped).
_TORCH_CELLS = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _cell_of(layer: Any) -> tuple[str, int, int]:
    cls = type(layer).__name__
    if cls not in _TORCH_CELLS:
        raise ValueError(
            f"Received an invalid value for argument `layer`: expected a SimpleRNN, LSTM or GRU "
            f"layer, got {cls}."
        )
    if not getattr(layer, "built", False):
        raise ValueError(f"Layer `{layer.name}` is not built: build it (or its model) first.")
    extra = [n for n in layer.weight_names if n not in ("kernel", "recurrent_kernel", "bias")]
    if extra:
        raise ValueError(
            f"Layer `{layer.name}` has weights {extra} that PyTorch's nn.{_torch_name(cls)} "
            "has no place for (e.g. layer_norm=True)."
        )
    return cls, _TORCH_CELLS[cls], int(layer.units)


def _torch_name(cls: str) -> str:
    return {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[cls]


def _gru_swap(a: np.ndarray, H: int, axis: int) -> np.ndarray:
    """Swaps the first two gate blocks (z, r, h <-> r, z, n); its own inverse."""
    idx = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
    return np.take(a, idx, axis=axis)


def export_torch_state_dict(layer: Any, layer_index: int = 0,
                            as_tensors: bool = False) -> dict[str, Any]:
    """The weights of a fastrnn SimpleRNN/LSTM/GRU as a PyTorch ``nn.RNN/LSTM/GRU`` state dict
    (a Conv1D's as ``nn.Conv1d``'s: see :func:`_export_conv`).

    Args:
        layer: a built fastrnn recurrent layer (without ``layer_norm``).
        layer_index: k in the keys ``weight_ih_l{k}``, ... (for one layer of a stacked module).
        as_tensors: return ``torch.Tensor`` values (imports torch) instead of NumPy arrays.

    Returns:
        ``{"weight_ih_l0": (G*H, I), "weight_hh_l0": (G*H, H), "bias_ih_l0": (G*H,),
        "bias_hh_l0": (G*H,)}`` (biases only when the layer has one). For SimpleRNN and LSTM
        the Keras bias goes into ``bias_ih`` and ``bias_hh`` is zero; for GRU the two Keras bias
        rows are ``bias_ih``/``bias_hh``. Use ``nn.RNN(nonlinearity=...)`` matching the
        layer's activation and ``batch_first=True`` for batch-major inputs.
    """
    if type(layer).__name__ in _TORCH_CONVS:  # Conv1D (see the end of this module)
        return _export_conv(layer, as_tensors)
    cls, _, H = _cell_of(layer)
    named = dict(zip(layer.weight_names, layer.get_weights()))
    kernel, recurrent = named["kernel"], named["recurrent_kernel"]
    bias = named.get("bias")
    if cls == "GRU":
        kernel, recurrent = _gru_swap(kernel, H, 1), _gru_swap(recurrent, H, 1)
    k = int(layer_index)
    out: dict[str, Any] = {
        f"weight_ih_l{k}": np.ascontiguousarray(kernel.T),
        f"weight_hh_l{k}": np.ascontiguousarray(recurrent.T),
    }
    if bias is not None:
        if cls == "GRU":
            out[f"bias_ih_l{k}"] = _gru_swap(bias[0], H, 0)
            out[f"bias_hh_l{k}"] = _gru_swap(bias[1], H, 0)
        else:
            out[f"bias_ih_l{k}"] = bias.copy()
            out[f"bias_hh_l{k}"] = np.zeros_like(bias)
    if as_tensors:
        import torch  # optional dependency, only for this conversion

        return {key: torch.from_numpy(np.array(v)) for key, v in out.items()}
    return out


def _as_numpy(value: Any, key: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor, converted without importing torch
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise ValueError(f"State dict entry {key!r} must hold floats, got dtype {a.dtype}.")
    return a


def import_torch_state_dict(layer: Any, state_dict: dict, layer_index: int = 0) -> None:
    """Sets a fastrnn SimpleRNN/LSTM/GRU's weights from a PyTorch ``nn.RNN/LSTM/GRU`` state dict
    (a Conv1D's from ``nn.Conv1d``'s: see :func:`_import_conv`).

    The layer must be built with the same input size and units. For SimpleRNN and LSTM the
    Keras bias is ``bias_ih + bias_hh``; for GRU they become the two bias rows. A layer with
    ``use_bias=False`` accepts only a state dict without biases (or with zero biases).

    Raises:
        ValueError: missing keys or mismatched shapes (the message names both).
    """
    if type(layer).__name__ in _TORCH_CONVS:  # Conv1D (see the end of this module)
        return _import_conv(layer, state_dict)
    cls, gates, H = _cell_of(layer)
    k = int(layer_index)
    keys = [f"weight_ih_l{k}", f"weight_hh_l{k}"]
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise ValueError(
            f"The state dict has no {missing}; its keys are {sorted(state_dict)[:8]}."
        )
    w_ih = _as_numpy(state_dict[keys[0]], keys[0])
    w_hh = _as_numpy(state_dict[keys[1]], keys[1])
    named = dict(zip(layer.weight_names, layer.weights))
    features = named["kernel"].shape[0]
    for key, got, want in ((keys[0], w_ih.shape, (gates * H, features)),
                           (keys[1], w_hh.shape, (gates * H, H))):
        if got != want:
            raise ValueError(
                f"State dict entry {key!r} has shape {got}; layer `{layer.name}` ({cls}, "
                f"{features} features, {H} units) needs {want}."
            )
    b_ih = state_dict.get(f"bias_ih_l{k}")
    b_hh = state_dict.get(f"bias_hh_l{k}")
    b_ih = None if b_ih is None else _as_numpy(b_ih, f"bias_ih_l{k}").reshape(-1)
    b_hh = None if b_hh is None else _as_numpy(b_hh, f"bias_hh_l{k}").reshape(-1)
    for key, b in ((f"bias_ih_l{k}", b_ih), (f"bias_hh_l{k}", b_hh)):
        if b is not None and b.shape != (gates * H,):
            raise ValueError(
                f"State dict entry {key!r} has shape {b.shape}; layer `{layer.name}` needs "
                f"({gates * H},)."
            )
    kernel, recurrent = w_ih.T, w_hh.T
    if cls == "GRU":
        kernel, recurrent = _gru_swap(kernel, H, 1), _gru_swap(recurrent, H, 1)
    new = {"kernel": kernel, "recurrent_kernel": recurrent}
    if "bias" in named:
        zeros = np.zeros(gates * H, dtype=kernel.dtype)
        b_ih = zeros if b_ih is None else b_ih
        b_hh = zeros if b_hh is None else b_hh
        if cls == "GRU":
            new["bias"] = np.stack([_gru_swap(b_ih, H, 0), _gru_swap(b_hh, H, 0)])
        else:
            new["bias"] = b_ih + b_hh
    elif any(b is not None and np.any(b != 0) for b in (b_ih, b_hh)):
        raise ValueError(
            f"Layer `{layer.name}` has use_bias=False but the state dict has non-zero biases."
        )
    dtype = named["kernel"].dtype
    layer.set_weights([np.asarray(new[n], dtype=dtype) for n in layer.weight_names])


# ----------------------------------------------------------------------------- PyTorch Conv1d
# Keras's Conv1D kernel is (kernel_size, in / groups, filters); nn.Conv1d's weight is
# (filters, in / groups, kernel_size): the same numbers with the first and last axes swapped
# (groups split the channels the same way in both). Padding is not part of a state dict:
# padding="valid" is nn.Conv1d(padding=0); "causal" is F.pad(x, ((k - 1) * dilation, 0))
# before it; "same" with an odd span is nn.Conv1d(padding="same") (stride 1).
_TORCH_CONVS = ("Conv1D",)


def _conv_layer(layer: Any) -> dict[str, np.ndarray]:
    if not getattr(layer, "built", False):
        raise ValueError(f"Layer `{layer.name}` is not built: build it (or its model) first.")
    return dict(zip(layer.weight_names, layer.weights))


def _export_conv(layer: Any, as_tensors: bool) -> dict[str, Any]:
    """A Conv1D's weights as ``nn.Conv1d``'s state dict: ``{"weight": (filters, in / groups,
    kernel_size), "bias": (filters,)}`` (no bias with use_bias=False)."""
    named = _conv_layer(layer)
    out: dict[str, Any] = {"weight": np.ascontiguousarray(named["kernel"].transpose(2, 1, 0))}
    if "bias" in named:
        out["bias"] = named["bias"].copy()
    if as_tensors:
        import torch  # optional dependency, only for this conversion

        return {key: torch.from_numpy(np.array(v)) for key, v in out.items()}
    return out


def _import_conv(layer: Any, state_dict: dict) -> None:
    """Sets a built Conv1D's weights from ``nn.Conv1d``'s state dict (keys ``weight`` and,
    when the layer has a bias, ``bias``; a missing bias leaves zeros)."""
    named = _conv_layer(layer)
    if "weight" not in state_dict:
        raise ValueError(
            f"The state dict has no 'weight'; its keys are {sorted(state_dict)[:8]}."
        )
    kernel = named["kernel"]
    weight = _as_numpy(state_dict["weight"], "weight")
    want = kernel.shape[::-1]
    if weight.shape != want:
        raise ValueError(
            f"State dict entry 'weight' has shape {weight.shape}; layer `{layer.name}` (Conv1D, "
            f"kernel {kernel.shape}) needs {want} (filters, in / groups, kernel_size)."
        )
    new = {"kernel": weight.transpose(2, 1, 0)}
    bias = state_dict.get("bias")
    if "bias" in named:
        new["bias"] = np.zeros(kernel.shape[2]) if bias is None else _as_numpy(bias, "bias")
        if new["bias"].shape != (kernel.shape[2],):
            raise ValueError(
                f"State dict entry 'bias' has shape {new['bias'].shape}; layer `{layer.name}` "
                f"needs ({kernel.shape[2]},)."
            )
    elif bias is not None and np.any(_as_numpy(bias, "bias") != 0):
        raise ValueError(
            f"Layer `{layer.name}` has use_bias=False but the state dict has a non-zero bias."
        )
    layer.set_weights([np.asarray(new[n], dtype=kernel.dtype) for n in layer.weight_names])


def register_keras_serializable(package: str = "Custom", name: Optional[str] = None) -> Any:
    """Keras's decorator: makes a custom layer or model class (or a function a ``Lambda``
    uses) known by name, so that ``load_model`` rebuilds it without ``custom_objects``."""
    return layers_base.register_keras_serializable(package, name)


# ----------------------------------------------------------------------------- Keras's names
# keras.saving's functions over fastrnn's objects. The kinds of object, by the module that
# serializes them (its base class) and Keras's module path recorded in the config.
_KINDS = (("optimizers", "Optimizer"), ("losses", "Loss"), ("metrics", "Metric"),
          ("initializers", "Initializer"), ("regularizers", "Regularizer"),
          ("constraints", "Constraint"), ("layers", "Layer"))
# Modules whose functions (activations, loss functions) serialize by name.
_FUNCTION_MODULES = ("activations", "losses", "metrics")

CustomObjectScope = layers_base.custom_object_scope
custom_object_scope = layers_base.custom_object_scope


def get_custom_objects() -> dict:
    """The global ``{name: object}`` that deserialization consults after the scopes (Keras's
    ``get_custom_objects``; entries added to it are found by :func:`load_model`)."""
    return layers_base._CUSTOM


def get_registered_name(obj: Any) -> str:
    """The name `obj` is serialized under: ``"package>Name"`` when registered with
    :func:`register_keras_serializable`, else its ``__name__`` (its class's for an instance)."""
    registered = getattr(obj, "_registered_name", None)
    if isinstance(registered, str):
        return registered
    return getattr(obj, "__name__", None) or type(obj).__name__


def get_registered_object(name: str, custom_objects: Optional[dict] = None,
                          module_objects: Optional[dict] = None) -> Any:
    """The object registered under `name` (the scopes, `custom_objects`, the registry, then
    `module_objects`), or None (Keras's ``get_registered_object``)."""
    for table in (layers_base.custom_objects_in_scope(), custom_objects or {},
                  layers_base._CUSTOM, module_objects or {}):
        if name in table:
            return table[name]
    return None


def _module(name: str) -> Any:
    import importlib
    return importlib.import_module(f"fastrnn.{name}")


def _short(module: Any) -> Optional[str]:
    """``"losses"`` of a config's ``"module": "fastrnn.losses"`` (None for another)."""
    if isinstance(module, str) and module.startswith("fastrnn."):
        return module[len("fastrnn."):]
    return None


def serialize_keras_object(obj: Any) -> Any:
    """`obj` as JSON-ready data (Keras's ``serialize_keras_object``): a model by
    :func:`serialize_model`, a layer, loss, metric, optimizer, initializer, regularizer or
    constraint as ``{"module", "class_name", "config"}``, a function of fastrnn's modules as
    ``{"class_name": "function", "config": name}``; plain values (and lists and dicts of
    them) as they are."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(o) for o in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    if callable(getattr(obj, "_saved_build_input", None)):
        return {"module": "fastrnn.models", **serialize_model(obj)}
    for module, base in _KINDS:
        mod = _module(module)
        if isinstance(obj, getattr(mod, base)):
            data = dict(mod.serialize(obj))  # the module's own config
            if isinstance(getattr(obj, "_registered_name", None), str):
                data["class_name"] = obj._registered_name
            return {"module": f"fastrnn.{module}", **data}
    if callable(obj):
        name = getattr(obj, "__name__", None)
        for module in _FUNCTION_MODULES:
            if name is not None and getattr(_module(module), name, None) is obj:
                return {"module": f"fastrnn.{module}", "class_name": "function",
                        "config": name}
        if isinstance(getattr(obj, "_registered_name", None), str):
            return {"module": None, "class_name": "function", "config": obj._registered_name}
    raise TypeError(f"Cannot serialize {obj!r}: fastrnn serializes models, layers, losses, "
                    "metrics, optimizers, initializers, regularizers, constraints, functions "
                    "of its modules or registered ones, and plain values.")


def deserialize_keras_object(config: Any, custom_objects: Optional[dict] = None) -> Any:
    """The object of :func:`serialize_keras_object`'s data (Keras's
    ``deserialize_keras_object``); custom classes and functions by `custom_objects`, the
    scopes or the registry. Never runs code from the data."""
    if config is None or isinstance(config, (str, int, float, bool)):
        return config
    if isinstance(config, list):
        return [deserialize_keras_object(c, custom_objects) for c in config]
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError("Received an invalid value for argument `config`: expected "
                         "{'class_name': ..., 'config': ...} (or a plain value), got "
                         f"{config!r:.200}.")
    kind, module = config["class_name"], config.get("module")
    inner = config.get("config")
    short = _short(module)
    with layers_base.custom_object_scope(custom_objects):
        if kind == "function":
            found = get_registered_object(str(inner))
            for m in [short] if short in _FUNCTION_MODULES else _FUNCTION_MODULES:
                if found is not None:
                    break
                found = getattr(_module(m), str(inner), None)
            if not callable(found):
                raise ValueError(f"Unknown function {inner!r}: pass it in `custom_objects` or "
                                 "register it with @register_keras_serializable().")
            return found
        if module == "fastrnn.models" or kind in _MODEL_CLASSES or config.get("subclassed"):
            return model_from_config(config, None, "<config>")
        custom: Any = get_registered_object(kind)
        if isinstance(custom, type) and callable(getattr(custom, "from_config", None)):
            return cast(Any, custom).from_config(dict(inner or {}))
        names = [m for m, _ in _KINDS]
        if short is not None:
            names = [m for m in names if m == short]
        for m in names:
            try:
                return _module(m).deserialize({"class_name": kind, "config": dict(inner or {})})
            except ValueError:
                if len(names) == 1:
                    raise
    raise ValueError(f"Unknown class {kind!r}: not a fastrnn model, layer, loss, metric, "
                     "optimizer, initializer, regularizer or constraint; pass it in "
                     "`custom_objects` or register it with @register_keras_serializable().")


def save_weights(model: Any, filepath: str, overwrite: bool = True) -> None:
    """``model.save_weights(filepath)`` (Keras's ``keras.saving.save_weights``); with
    ``overwrite=False`` an existing file is an error instead."""
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"Received `filepath` {filepath!r}, which exists, with "
                              "overwrite=False.")
    model.save_weights(filepath)


def load_weights(model: Any, filepath: str, skip_mismatch: bool = False) -> None:
    """``model.load_weights(filepath)`` (Keras's ``keras.saving.load_weights``). With
    `skip_mismatch`, weights whose shape differs from the model's are left as they are
    instead of refusing the file (the rest are loaded)."""
    if not skip_mismatch:
        model.load_weights(filepath)
        return
    model._require_built("load_weights()")
    saved = load_weights_file(filepath)
    mine = model.get_weights()
    if len(saved) != len(mine):
        raise ValueError(f"{filepath!r} holds {len(saved)} weights; model `{model.name}` has "
                         f"{len(mine)}.")
    model.set_weights([s if s.shape == m.shape else m for s, m in zip(saved, mine)])
