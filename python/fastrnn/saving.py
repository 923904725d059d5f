"""Files for models and weights, and weight exchange with PyTorch's ``nn.RNN/LSTM/GRU``.

Nothing here imports the model or layer modules: the model hands over a JSON-ready config and
a list of arrays, and gets them back. Loading never executes code: JSON is parsed with
``json``, arrays are read with ``np.load(..., allow_pickle=False)``, and class names are looked
up in fastrnn's own registries (unknown names are refused).

The model file (``Sequential.save(path)``, read by ``fastrnn.load_model``)
--------------------------------------------------------------------------
One zip archive (any file name; ``.fastrnn`` is customary) holding two members:

* ``model.json``: ``{"format": "fastrnn.model", "format_version": 1, "class_name":
  "Sequential", "config": {"name", "layers": [{"class_name", "config"}, ...],
  "build_input_shape"}, "compile_config": {"optimizer", "loss", "metrics"} or null}``;
* ``weights.npz``: the weights in :meth:`Sequential.get_weights` order, under the keys
  ``"0000"``, ``"0001"``, ..., plus ``"__names__"`` (``"layer/weight"`` strings).

If `path` is an existing directory, the same two files are written into it instead.
Writes go to a temporary file first and then replace the target, so a checkpoint interrupted
halfway never leaves a corrupt file behind. Optimizer state (Adam's moments) is not saved.

Weights only (``save_weights``/``load_weights``): the ``weights.npz`` member on its own, at
exactly the path given (NumPy's habit of appending ``.npz`` is avoided).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from typing import Any, Optional

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "export_torch_state_dict",
    "import_torch_state_dict",
    "load_archive",
    "load_weights_file",
    "save_archive",
    "save_weights_file",
]

FORMAT_NAME = "fastrnn.model"
FORMAT_VERSION = 1
CONFIG_MEMBER = "model.json"
WEIGHTS_MEMBER = "weights.npz"
_NAMES_KEY = "__names__"


# ----------------------------------------------------------------------------- writing
def _weights_bytes(weights: list[np.ndarray], names: Optional[list[str]]) -> bytes:
    arrays = {f"{k:04d}": np.ascontiguousarray(w) for k, w in enumerate(weights)}
    if names is not None:
        arrays[_NAMES_KEY] = np.array(list(names), dtype=np.str_)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _atomic_write(path: str, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fastrnn-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_archive(path: str, config: dict, weights: list[np.ndarray],
                 names: Optional[list[str]] = None) -> None:
    """Writes `config` (JSON-ready) and `weights` to `path` (see the module docstring)."""
    path = os.fspath(path)
    text = json.dumps(config, indent=2, allow_nan=False).encode("utf-8")
    blob = _weights_bytes(weights, names)
    if os.path.isdir(path):
        _atomic_write(os.path.join(path, CONFIG_MEMBER), text)
        _atomic_write(os.path.join(path, WEIGHTS_MEMBER), blob)
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
def _read_weights(source: Any, where: str) -> list[np.ndarray]:
    try:
        with np.load(source, allow_pickle=False) as npz:
            keys = sorted(k for k in npz.files if k != _NAMES_KEY)
            if any(not k.isdigit() for k in keys) or keys != [f"{k:04d}" for k in range(
                    len(keys))]:
                raise ValueError(
                    f"{where} is not a fastrnn weights file: expected arrays named 0000, "
                    f"0001, ..., got {keys[:5]}."
                )
            return [npz[k] for k in keys]
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"Cannot read weights from {where}: {exc}") from exc


def load_archive(path: str) -> tuple[dict, list[np.ndarray]]:
    """Reads a model file or directory written by :func:`save_archive`.

    Returns:
        ``(config, weights)``.

    Raises:
        ValueError: missing members, not JSON, or not the fastrnn format.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        cfg_path = os.path.join(path, CONFIG_MEMBER)
        if not os.path.exists(cfg_path):
            raise ValueError(f"{path!r} is a directory without {CONFIG_MEMBER}: not a fastrnn "
                             "model.")
        with open(cfg_path, "rb") as f:
            text = f.read()
        config = _parse_config(text, path)
        weights = _read_weights(os.path.join(path, WEIGHTS_MEMBER), repr(path))
    else:
        if not os.path.exists(path):
            raise FileNotFoundError(f"No model file at {path!r}.")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path!r} is not a fastrnn model file (not a zip archive).")
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
            if CONFIG_MEMBER not in members or WEIGHTS_MEMBER not in members:
                raise ValueError(
                    f"{path!r} is not a fastrnn model file: expected members {CONFIG_MEMBER} "
                    f"and {WEIGHTS_MEMBER}, found {sorted(members)[:5]}."
                )
            config = _parse_config(zf.read(CONFIG_MEMBER), path)
            weights = _read_weights(io.BytesIO(zf.read(WEIGHTS_MEMBER)), repr(path))
    return config, weights


def _parse_config(text: bytes, path: str) -> dict:
    try:
        config = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r}: {CONFIG_MEMBER} is not valid JSON ({exc}).") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!r}: {CONFIG_MEMBER} is not a fastrnn model config.")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written in format version {version!r}; this fastrnn reads versions "
            f"up to {FORMAT_VERSION}."
        )
    return config


def load_weights_file(path: str) -> list[np.ndarray]:
    """The weights of a :func:`save_weights_file` file, or of a model archive/directory."""
    path = os.fspath(path)
    if os.path.isdir(path) or (zipfile.is_zipfile(path) and _has_member(path, CONFIG_MEMBER)):
        return load_archive(path)[1]
    if not os.path.exists(path):
        raise FileNotFoundError(f"No weights file at {path!r}.")
    return _read_weights(path, repr(path))


def _has_member(path: str, member: str) -> bool:
    with zipfile.ZipFile(path) as zf:
        return member in zf.namelist()


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
