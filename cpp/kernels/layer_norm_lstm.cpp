// Layer-normalized LSTM kernels of one instruction set (see families.hpp).
#include "layer_norm_rnn.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(LnLstmKernels, layer_norm_lstm_kernels, &ln_rnn::lstm_forward<F>,
                      &ln_rnn::lstm_backward_steps<F>, &ln_rnn::lstm_backward_inputs<F>,
                      &ln_rnn::lstm_backward_weights<F>)
