// Layer-normalized GRU kernels of one instruction set (see families.hpp).
#include "layer_norm_rnn.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(LnGruKernels, layer_norm_gru_kernels, &ln_rnn::gru_forward<F>,
                      &ln_rnn::gru_backward_steps<F>, &ln_rnn::gru_backward_inputs<F>,
                      &ln_rnn::gru_backward_weights<F>)
