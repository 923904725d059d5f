// SimpleRNN kernels of one instruction set (see families.hpp).
#include "simple_rnn.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(SimpleRnnKernels, simple_rnn_kernels, &simple_rnn::forward<F>,
                      &simple_rnn::backward_steps<F>, &simple_rnn::backward_inputs<F>,
                      &simple_rnn::backward_weights<F>)
