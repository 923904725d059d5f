// Chooses, once per process, the instruction-set variant of the kernels this CPU can run.
#pragma once
#include <string>
#include <vector>

#include "args.hpp"

namespace fastrnn {

// The variant in use: the best this CPU supports, or the one named by the environment
// variable FASTRNN_ARCH (generic, avx2, avx512) when that one is built and supported.
const KernelTable& kernels();

// Names of the variants built into this module and supported by this CPU, best last.
std::vector<std::string> available_kernel_sets();

// Switches the variant (for tests and benchmarks); throws std::invalid_argument when the
// name is unknown, not built, or not supported by this CPU.
void select_kernel_set(const std::string& name);

}  // namespace fastrnn

// ------------------------------------------------------------------------ sequence layers
#include "layer_args.hpp"

namespace fastrnn {

// The convolution, pooling and normalization kernels of the variant kernels() uses.
const LayerKernelTable& layer_kernels();

}  // namespace fastrnn
