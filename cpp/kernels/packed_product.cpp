// The packed recurrent product of one instruction set (see families.hpp).
#include "packed_gemm.hpp"
#include "kernels/families.hpp"

FASTRNN_KERNEL_FAMILY(PackedProductKernel, packed_product_kernel, packed::kWidth<F>,
                      &packed::product<F>)
