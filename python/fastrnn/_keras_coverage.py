"""Keras 3's public names that fastrnn does not have, each with the reason: the "not in
fastrnn" table.

``tests/test_keras_namespace.py`` walks Keras's modules (:data:`MODULES`, when Keras is
installed) and fails on any public name that is neither implemented at the same path in
fastrnn (``keras.layers.X`` -> ``fastrnn.layers.X``) nor listed here, and on any name listed
here that fastrnn now has or that Keras does not. ``docs/not_in_fastrnn.md`` is
:func:`render_markdown`'s output (``python -m fastrnn._keras_coverage > docs/not_in_fastrnn.md``;
a test keeps them equal).

Editing: each module maps to groups ``(reason, "Name Name ...")``; names are separated by
white space. A reason that starts with ``"pending"`` marks names being added (remove them
from here once they land; the test says which).
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__all__ = ["MODULES", "NOT_IN_FASTRNN", "SKIPPED_SUBMODULES", "coverage", "keras_names",
           "not_in_fastrnn", "render_markdown"]

# Keras 3 modules walked, as dotted paths below ``keras`` (and below ``fastrnn``).
MODULES = (
    "layers", "losses", "metrics", "optimizers", "optimizers.schedules", "activations",
    "initializers", "regularizers", "constraints", "callbacks", "utils", "preprocessing",
    "preprocessing.sequence", "ops", "models", "saving",
)

# Submodules of the walked modules that are not walked, and why.
SKIPPED_SUBMODULES = {
    "optimizers.legacy": "Keras 2's optimizer classes, kept by Keras for old code only",
    "utils.legacy": "Keras 2's serialization helpers, kept by Keras for old code only",
    "utils.bounding_boxes": "object detection on images",
    "preprocessing.image": "image loading and augmentation",
    "ops.image": "image operations",
    "ops.linalg": "backend tensor linear algebra (fastrnn works on NumPy arrays: use numpy)",
    "ops.nn": "backend tensor functions (fastrnn works on NumPy arrays: use numpy)",
    "ops.numpy": "backend tensor functions (fastrnn works on NumPy arrays: use numpy)",
}

_IMAGE = "images and volumes (2-D/3-D); fastrnn is for 1-D sequences"
_AUGMENT = "image augmentation and image preprocessing"
_BACKEND = "wraps another framework's model or layer (JAX, Flax, PyTorch, a TF SavedModel)"
_TEXT = ("category preprocessing layers (hashing, crossing, binning): not yet; StringLookup, "
         "IntegerLookup, CategoryEncoding and TextVectorization cover tokens")
_NUMPY_OPS = ("Keras's backend-neutral tensor functions: fastrnn's layers take and return "
              "NumPy arrays, so NumPy's functions serve (fastrnn.ops holds the kernels' API)")

NOT_IN_FASTRNN: dict[str, list[tuple[str, str]]] = {
    "layers": [
        (_IMAGE, """
            AdaptiveAveragePooling2D AdaptiveAveragePooling3D AdaptiveMaxPooling2D
            AdaptiveMaxPooling3D AveragePooling2D AveragePooling3D AvgPool2D AvgPool3D Conv2D
            Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM2D ConvLSTM3D Convolution2D
            Convolution2DTranspose Convolution3D Convolution3DTranspose Cropping2D Cropping3D
            DepthwiseConv2D GlobalAveragePooling2D GlobalAveragePooling3D GlobalAvgPool2D
            GlobalAvgPool3D GlobalMaxPool2D GlobalMaxPool3D GlobalMaxPooling2D
            GlobalMaxPooling3D MaxPool2D MaxPool3D MaxPooling2D MaxPooling3D SeparableConv2D
            SeparableConvolution2D SpatialDropout2D SpatialDropout3D UpSampling2D UpSampling3D
            ZeroPadding2D ZeroPadding3D"""),
        (_AUGMENT, """
            AugMix AutoContrast CenterCrop ContrastLimitedAdaptiveHistogramEqualization CutMix
            Equalization MaxNumBoundingBoxes MixUp Pipeline RandAugment RandomBrightness
            RandomColorDegeneration RandomColorJitter RandomContrast RandomCrop
            RandomElasticTransform RandomErasing RandomFlip RandomGaussianBlur RandomGrayscale
            RandomHue RandomInvert RandomPerspective RandomPosterization RandomRotation
            RandomSaturation RandomSharpness RandomShear RandomTranslation RandomZoom Resizing
            Solarization"""),
        ("audio spectrogram preprocessing", "MelSpectrogram STFTSpectrogram"),
        (_BACKEND, "FlaxLayer JaxLayer TFSMLayer TorchModuleWrapper"),
        (_TEXT, """
            Discretization HashedCrossing Hashing"""),
        ("convolutional LSTM over sequences of 1-D signals (rank-4 input): not yet",
         "ConvLSTM1D"),
        ("not yet: a shared layer called with different call arguments (reverse=True for the "
         "tied output projection) needs per-call arguments in fastrnn's graphs",
         "ReversibleEmbedding"),
        ("Keras's layer-authoring base classes and input specs: fastrnn's layers subclass "
         "fastrnn.layers.Layer and check their inputs themselves", "InputSpec Wrapper"),
        ("not yet: weight reparametrisation wrapper", "SpectralNormalization"),
    ],
    "losses": [
        ("metric learning over embeddings (circle loss), not sequence work", "Circle circle"),
    ],
    "metrics": [],
    "optimizers": [
        ("mixed-precision loss scaling: fastrnn trains in float32 or float64",
         "LossScaleOptimizer"),
        ("not yet: one optimizer per group of weights", "MultiOptimizer OptimizerMap"),
        ("not yet: Muon's orthogonalised updates", "Muon"),
    ],
    "optimizers.schedules": [],
    "activations": [],
    "initializers": [
        ("short-time Fourier transform kernels for audio", "STFT STFTInitializer stft"),
    ],
    "regularizers": [],
    "constraints": [],
    "callbacks": [
        ("needs TensorFlow's summary writer", "TensorBoard"),
        ("JAX/Orbax checkpointing", "OrbaxCheckpoint"),
    ],
    "utils": [
        (_IMAGE, """
            array_to_img image_dataset_from_directory img_to_array load_img save_img"""),
        ("audio and text datasets from directories of files: not yet",
         "audio_dataset_from_directory text_dataset_from_directory"),
        ("fastrnn's model files hold no code and name no custom classes, so there is no "
         "registry of custom objects", """
            CustomObjectScope custom_object_scope deserialize_keras_object get_custom_objects
            get_registered_name get_registered_object register_keras_serializable
            serialize_keras_object"""),
        ("model plots need pydot and graphviz: not yet", "model_to_dot plot_model"),
        ("downloads files (fastrnn.timeseries.datasets fetches its data sets)", "get_file"),
        ("Keras's structured-data preprocessing", "FeatureSpace"),
        ("Keras's data-loader base classes: fastrnn's fit takes arrays or any iterable of "
         "(x, y) batches", "PyDataset Sequence split_dataset"),
        ("Keras's logging and configuration helpers", """
            Config Progbar disable_interactive_logging enable_interactive_logging
            is_interactive_logging_enabled standardize_dtype get_source_inputs"""),
    ],
    "preprocessing": [
        ("image and text datasets from directories of files",
         "image_dataset_from_directory text_dataset_from_directory"),
    ],
    "preprocessing.sequence": [],
    "ops": [(_NUMPY_OPS, "*")],
    "models": [],
    "saving": [
        ("edits the weights inside a Keras .keras file; fastrnn's files are its own zip of "
         "model.json and weights.npz (fastrnn.saving reads and writes both parts)",
         "KerasFileEditor"),
    ],
}


def not_in_fastrnn(module: str) -> dict[str, str]:
    """``{name: reason}`` for `module` (``"*"`` stands for every name not implemented)."""
    out: dict[str, str] = {}
    for reason, names in NOT_IN_FASTRNN.get(module, []):
        for name in names.split():
            if name in out:
                raise ValueError(f"{module}.{name} is listed twice in the table.")
            out[name] = reason
    return out


def keras_names(module: Any) -> list[str]:
    """The public, non-module names of a Keras module."""
    return sorted(n for n in dir(module) if not n.startswith("_")
                  and not isinstance(getattr(module, n), types.ModuleType))


def coverage(keras: Any) -> dict[str, dict[str, Any]]:
    """Per walked module: ``total``, ``implemented`` and the names ``missing`` (neither
    implemented nor listed), ``stale`` (listed but implemented) and ``unknown`` (listed but
    not in Keras)."""
    result = {}
    for module in MODULES:
        kmod = importlib.import_module(f"{keras.__name__}.{module}")
        try:
            fmod: Any = importlib.import_module(f"fastrnn.{module}")
        except ImportError:
            fmod = None
        names = keras_names(kmod)
        implemented = [n for n in names if fmod is not None and hasattr(fmod, n)]
        table = not_in_fastrnn(module)
        wildcard = "*" in table
        result[module] = {
            "total": len(names),
            "implemented": len(implemented),
            "missing": [n for n in names if n not in implemented and n not in table
                        and not wildcard],
            "stale": [n for n in implemented if n in table],
            "unknown": [n for n in table if n != "*" and n not in names],
        }
    return result


def render_markdown() -> str:
    """The table as Markdown (``docs/not_in_fastrnn.md``)."""
    lines = [
        "# Keras 3 names not in fastrnn",
        "",
        "fastrnn implements Keras 3's names for sequence work at Keras's paths",
        "(`keras.layers.X` is `fastrnn.layers.X`). The names below are not in fastrnn, with the",
        "reason; \"pending\" marks names being added. A test walks Keras's modules and fails on",
        "any name neither implemented nor listed here.",
        "",
        "This file is generated from `python/fastrnn/_keras_coverage.py`:",
        "`python -m fastrnn._keras_coverage > docs/not_in_fastrnn.md`.",
        "",
    ]
    for module in MODULES:
        groups = NOT_IN_FASTRNN.get(module, [])
        lines.append(f"## keras.{module}")
        lines.append("")
        if not groups:
            lines.append("Every name is in fastrnn.")
            lines.append("")
            continue
        lines.append("| names | reason |")
        lines.append("|---|---|")
        for reason, names in groups:
            shown = "every name" if names.strip() == "*" else ", ".join(
                f"`{n}`" for n in names.split())
            lines.append(f"| {shown} | {reason} |")
        lines.append("")
    lines.append("## Submodules not walked")
    lines.append("")
    lines.append("| module | reason |")
    lines.append("|---|---|")
    for module, reason in SKIPPED_SUBMODULES.items():
        lines.append(f"| `keras.{module}` | {reason} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
