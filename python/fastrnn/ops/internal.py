"""The ops' internal API for fastrnn's own layers: the core calls for arrays a layer owns or
has already checked (C-contiguous, one float dtype, the shapes of the public functions), and
the argument checks the layers share with the ops.

These skip the public functions' checks (a few microseconds a call, a few percent of a
book-sized training step); the core checks every shape, dtype and contiguity again, so a
mistake still raises ``ValueError`` naming the argument, never a crash. Not part of the public
API: names and arguments follow the layers.

Recurrent cells (:mod:`.recurrent`, :mod:`.layer_norm_cells`):

* ``forward_checked(cell, x, states, kernel, recurrent_kernel, bias, mask, keep_tape,
  activation="tanh", step_mask=None) -> (outputs (B, T, H), last states, tape or None)``
* ``backward_checked(tape, d_outputs, d_last, truncate, input_grad) -> {name: gradient}``
* ``ln_forward_checked`` / ``ln_backward_checked``: the same for the layer-normalized cells,
  with ``gamma``, ``beta``, ``epsilon`` after ``bias``.
* ``step_mask_array(mask, B, T)``: a step mask checked and made a bool ``(B, T)`` array.
* ``stacked_forward_checked(x, layers, chunk) -> (outputs, h_last) or None``: stacked cells
  over one sequence at inference, as a wavefront on two threads.

Products (:mod:`.products`): ``affine_checked(x, w, bias) -> x @ w + bias`` (bias None: none),
for Dense.

Sequence ops (:mod:`.sequence`):

* ``check_padding(value, allowed) -> str``: Keras's padding names, case-insensitive.
* ``conv1d_checked(x, kernel, bias, stride, dilation, left, right, groups) -> y``
* ``conv1d_backward_checked(x, kernel, d_y, stride, dilation, left, right, groups, use_bias,
  input_grad) -> (d_x or None, d_kernel, d_bias or None)``
* ``conv1d_transpose_checked(x, kernel, bias, stride, dilation, left, length) -> y`` and
  ``conv1d_transpose_backward_checked(x, kernel, d_y, stride, dilation, left, use_bias,
  input_grad) -> (d_x or None, d_kernel, d_bias or None)``: Conv1DTranspose.
* ``attention_checked(q, k, v, keep, drop, causal) -> (p, ctx)`` and
  ``attention_backward_checked(q, k, v, p, d_ctx, drop, d_p, causal, d_q_scale) -> (d_q, d_k,
  d_v)``: the core of MultiHeadAttention.
"""

from __future__ import annotations

from .arrays import step_mask_array
from .layer_norm_cells import ln_backward_checked, ln_forward_checked
from .products import affine_checked
from .recurrent import backward_checked, forward_checked, stacked_forward_checked
from .sequence import (
    attention_backward_checked,
    attention_checked,
    check_padding,
    conv1d_backward_checked,
    conv1d_checked,
    conv1d_transpose_backward_checked,
    conv1d_transpose_checked,
)

__all__ = [
    "affine_checked",
    "attention_backward_checked",
    "attention_checked",
    "backward_checked",
    "check_padding",
    "conv1d_backward_checked",
    "conv1d_checked",
    "conv1d_transpose_backward_checked",
    "conv1d_transpose_checked",
    "forward_checked",
    "ln_backward_checked",
    "ln_forward_checked",
    "stacked_forward_checked",
    "step_mask_array",
]
