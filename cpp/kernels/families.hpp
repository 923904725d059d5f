// The kernels of one instruction set, by family. Each family's translation unit (a .cpp file
// of this folder, compiled once per kernel set, see CMakeLists.txt) defines its function for
// float and double; table.cpp puts them together into the kernel set's two tables, which
// dispatch.cpp chooses from at run time.
#pragma once
#include "args.hpp"
#include "layer_args.hpp"

#ifndef FASTRNN_ARCH
#define FASTRNN_ARCH generic
#endif

namespace fastrnn {
namespace FASTRNN_ARCH {

template <typename F> SimpleRnnKernels<F> simple_rnn_kernels();              // simple_rnn.cpp
template <typename F> LstmKernels<F> lstm_kernels();                          // lstm.cpp
template <typename F> GruKernels<F> gru_kernels();                            // gru.cpp
template <typename F> LnSimpleRnnKernels<F> layer_norm_simple_rnn_kernels();  // layer_norm_*.cpp
template <typename F> LnLstmKernels<F> layer_norm_lstm_kernels();
template <typename F> LnGruKernels<F> layer_norm_gru_kernels();
template <typename F> OptimizerKernels<F> optimizer_kernels();                // optimizers.cpp
template <typename F> PackedProductKernel<F> packed_product_kernel();         // packed_product.cpp
template <typename F> LayerKernelSet<F> sequence_layer_kernels();             // sequence_layers.cpp

// Defines FUNCTION<F>() returning TABLE<F>{entries...} (the entries may name F) for float and
// double: a family's translation unit is this macro over its header.
#define FASTRNN_KERNEL_FAMILY(TABLE, FUNCTION, ...)                 \
  namespace fastrnn {                                               \
  namespace FASTRNN_ARCH {                                          \
  template <typename F>                                             \
  TABLE<F> FUNCTION() {                                             \
    return {__VA_ARGS__};                                           \
  }                                                                 \
  template TABLE<float> FUNCTION<float>();                          \
  template TABLE<double> FUNCTION<double>();                        \
  }                                                                 \
  }

// The tables (table.cpp), one instance per kernel set.
const KernelTable& kernel_table();
const LayerKernelTable& layer_kernel_table();

}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
