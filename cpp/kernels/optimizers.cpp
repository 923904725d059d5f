// Optimizer updates of one instruction set (see families.hpp).
#include "optimizers.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(OptimizerKernels, optimizer_kernels, &optim::sgd<F>, &optim::adam<F>,
                      &optim::rmsprop<F>)
