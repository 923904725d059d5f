// LSTM kernels of one instruction set (see families.hpp).
#include "lstm.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(LstmKernels, lstm_kernels, &lstm::forward<F>, &lstm::backward_steps<F>,
                      &lstm::backward_inputs<F>, &lstm::backward_weights<F>)
