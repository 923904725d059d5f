// Layer-normalized SimpleRNN kernels of one instruction set (see families.hpp).
#include "layer_norm_rnn.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(LnSimpleRnnKernels, layer_norm_simple_rnn_kernels,
                      &ln_rnn::simple_rnn_forward<F>, &ln_rnn::simple_rnn_backward_steps<F>,
                      &ln_rnn::simple_rnn_backward_inputs<F>,
                      &ln_rnn::simple_rnn_backward_weights<F>)
