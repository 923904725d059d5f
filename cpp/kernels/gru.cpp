// GRU kernels of one instruction set (see families.hpp).
#include "gru.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(GruKernels, gru_kernels, &gru::forward<F>, &gru::backward_steps<F>,
                      &gru::backward_inputs<F>, &gru::backward_weights<F>)
