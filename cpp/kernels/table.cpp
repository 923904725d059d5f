// One instruction set's kernel tables, put together from its families (see families.hpp).
#include "kernels/families.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {

template <typename F>
KernelSet<F> kernel_set() {
  return {simple_rnn_kernels<F>(),
          lstm_kernels<F>(),
          gru_kernels<F>(),
          layer_norm_simple_rnn_kernels<F>(),
          layer_norm_lstm_kernels<F>(),
          layer_norm_gru_kernels<F>(),
          optimizer_kernels<F>(),
          packed_product_kernel<F>()};
}

#define FASTRNN_STR_(x) #x
#define FASTRNN_STR(x) FASTRNN_STR_(x)

const KernelTable& kernel_table() {
  static const KernelTable table{FASTRNN_STR(FASTRNN_ARCH), kernel_set<float>(),
                                 kernel_set<double>()};
  return table;
}

const LayerKernelTable& layer_kernel_table() {
  static const LayerKernelTable table{FASTRNN_STR(FASTRNN_ARCH), sequence_layer_kernels<float>(),
                                      sequence_layer_kernels<double>()};
  return table;
}

}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
