// One instruction-set variant of every kernel (compiled once per FASTRNN_ARCH, see
// CMakeLists.txt), exported as a table of function pointers for dispatch.cpp.
#include "gru.hpp"
#include "layer_norm_rnn.hpp"
#include "lstm.hpp"
#include "optimizers.hpp"
#include "packed_gemm.hpp"
#include "simple_rnn.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {

template <typename F>
constexpr KernelSet<F> kernel_set() {
  return KernelSet<F>{&simple_rnn::forward<F>, &simple_rnn::backward_steps<F>,
                      &simple_rnn::backward_inputs<F>,
                      &simple_rnn::backward_weights<F>,
                      &lstm::forward<F>,       &lstm::backward_steps<F>,
                      &lstm::backward_inputs<F>,
                      &lstm::backward_weights<F>,
                      &gru::forward<F>,        &gru::backward_steps<F>,
                      &gru::backward_inputs<F>,
                      &gru::backward_weights<F>,
                      &optim::sgd<F>,          &optim::adam<F>,
                      &optim::rmsprop<F>,
                      packed::kWidth<F>,       &packed::product<F>,
                      packed::kUnitBlock<F>,   ln_rnn::kernels<F>()};
}

#define FASTRNN_STR_(x) #x
#define FASTRNN_STR(x) FASTRNN_STR_(x)

const KernelTable& kernel_table() {
  static const KernelTable table{FASTRNN_STR(FASTRNN_ARCH), kernel_set<float>(),
                                 kernel_set<double>()};
  return table;
}

}  // namespace FASTRNN_ARCH
}  // namespace fastrnn

// ------------------------------------------------------------- sequence layers (issue 11)
// Convolution, pooling and normalization kernels: their own table (layer_args.hpp), chosen
// together with the one above (dispatch.cpp, layer_kernels()).
#include "conv1d.hpp"
#include "normalization.hpp"
#include "pooling.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {

template <typename F>
constexpr LayerKernelSet<F> layer_kernel_set() {
  return LayerKernelSet<F>{&conv1d::forward<F>,
                           &conv1d::backward<F>,
                           &pool1d::forward_max<F>,
                           &pool1d::forward_average<F>,
                           &pool1d::backward<F>,
                           &norm::layer_norm_forward<F>,
                           &norm::layer_norm_backward<F>,
                           &norm::batch_norm_moments<F>,
                           &norm::batch_norm_apply<F>,
                           &norm::batch_norm_backward_sums<F>,
                           &norm::batch_norm_backward<F>};
}

const LayerKernelTable& layer_kernel_table() {
  static const LayerKernelTable table{FASTRNN_STR(FASTRNN_ARCH), layer_kernel_set<float>(),
                                      layer_kernel_set<double>()};
  return table;
}

}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
