// Convolution, pooling, normalization and attention kernels of one instruction set (see
// families.hpp).
#include "attention.hpp"
#include "conv1d.hpp"
#include "normalization.hpp"
#include "pooling.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(LayerKernelSet, sequence_layer_kernels, &conv1d::forward<F>,
                      &conv1d::backward<F>, &pool1d::forward_max<F>, &pool1d::forward_average<F>,
                      &pool1d::backward<F>, &norm::layer_norm_forward<F>,
                      &norm::layer_norm_backward<F>, &norm::batch_norm_moments<F>,
                      &norm::batch_norm_apply<F>, &norm::batch_norm_backward_sums<F>,
                      &norm::batch_norm_backward<F>, &conv1d::transpose_forward<F>,
                      &conv1d::transpose_backward<F>, &attention::forward<F>,
                      &attention::backward<F>)
