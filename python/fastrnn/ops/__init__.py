"""The functional API over the C++ kernels: forward and (truncated) backward of whole sequences.

It also carries Keras's ``keras.ops`` math (``tanh``, ``matmul``, ``split``, ``where``, ...), from
:mod:`fastrnn.math`: on arrays, on traced values inside a layer's ``call`` (differentiated by
:mod:`fastrnn.autodiff`) and on symbolic tensors of a model being built.

Arrays are batch-major, as Keras users pass them: ``x`` is ``(batch, time, features)``.
Weights use the Keras layout and gate order:

======================  ==============  ==================  ==============
cell                    ``kernel``      ``recurrent_kernel``  ``bias``
======================  ==============  ==================  ==============
SimpleRNN               ``(I, H)``      ``(H, H)``          ``(H,)``
LSTM (gates i, f, c, o)  ``(I, 4H)``     ``(H, 4H)``         ``(4H,)``
GRU (gates z, r, h)      ``(I, 3H)``     ``(H, 3H)``         ``(2, 3H)``
======================  ==============  ==================  ==============

GRU is Keras's ``reset_after=True`` form (the one PyTorch uses); its bias rows are the input
and the recurrent bias. Every ``*_forward`` returns the outputs ``(B, T, H)``, the last state(s)
and a *tape*: an opaque object holding what the matching ``*_backward`` needs. A tape may be
used for any number of backward calls. ``keep_tape=False`` (inference) returns None instead
and keeps only one step of gate values, so memory beyond the outputs is ``O(B * H)``. The
returned ``outputs`` array is read-only when a tape shares it.

float32 is the default; float64 works too (gradient checks). float16 is converted to float32.
Integer, boolean, complex or object arrays, and arguments whose dtypes differ from ``x``'s,
raise ``TypeError``. ``h0``/``c0``/``bias`` may be ``None`` (zeros / no bias). Empty batches and
``T = 0`` are allowed: outputs are empty, the last state is the initial state.

Masking (Keras semantics): ``mask`` ``(B, T)`` (bool, or integers: nonzero keeps the step)
marks the steps to use. A masked step leaves the state unchanged (``h_t = h_{t-1}``, and
``c_t = c_{t-1}``), so each row's last state is that of running the cell over its unmasked
steps only, and no gradient reaches a masked step's input. ``outputs`` at a masked step hold
the carried state (``h0``, or zeros, before the first unmasked step); the layers turn that into
Keras's output convention. Left or right padding and holes all work, a fully masked row keeps
its initial state. The masked call costs what the unmasked one does.

Truncated BPTT: ``truncate=k`` treats the state entering step ``t`` as a constant for every
``t = T-k, T-2k, ... > 0`` (how PyTorch users detach the state every ``k`` steps);
``truncate=None`` is full backpropagation through time.

The package, by family (each module's docstring says what it holds):

=========================  ==============================================================
:mod:`.recurrent`          SimpleRNN, LSTM, GRU: ``*_forward`` / ``*_backward``
:mod:`.layer_norm_cells`   the layer-normalized cells: ``layer_norm_*_forward/backward``
:mod:`.steppers`           :class:`Stepper`, :class:`ModelStepper` (one step at a time)
:mod:`.products`           :func:`matmul`, ``sgd_update``, ``adam_update``, ``rmsprop_update``
:mod:`.sequence`           Conv1D, pooling, layer and batch normalization
:mod:`.keras_math`         Keras's ``keras.ops`` math, from :mod:`fastrnn.math`
:mod:`.kernel_sets`        :func:`kernel_set`, :func:`set_kernel_set`, ``FASTRNN_KERNELS``
:mod:`.arrays`             the :class:`Tape` and the argument checks the families share
:mod:`.internal`           what the layers call: the core calls for arrays already checked
=========================  ==============================================================

Every public name is here, ``fastrnn.ops.X``; the layers use :mod:`fastrnn.ops.internal`
(named, documented functions) and no underscored name of this package.
"""

from __future__ import annotations

# Each family module's __all__ is its public names, all re-exported here; the internal API
# (named in each module's docstring) is reached through fastrnn.ops.internal.
from . import (
    internal,  # noqa: F401
    keras_math,
    kernel_sets,
    layer_norm_cells,
    products,
    recurrent,
    sequence,
    steppers,
)
from .arrays import ArrayLike, Tape  # noqa: F401  (ArrayLike: the type hints' alias)
from .keras_math import *
from .kernel_sets import *
from .layer_norm_cells import *
from .products import *
from .recurrent import *
from .sequence import *
from .steppers import *

__all__ = ["Tape", *kernel_sets.__all__, *recurrent.__all__, *layer_norm_cells.__all__,
           *steppers.__all__, *products.__all__, *sequence.__all__]
__all__ += [_n for _n in keras_math.__all__ if _n not in __all__]
