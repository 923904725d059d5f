// Conv1D: forward and backward, Keras's channels-last layout.
//
// Dimension letters (see layer_args.hpp): B batch, T input steps, C input channels, L output
// steps, O filters, K taps, G groups (Cg = C / G, Og = O / G), R rows of a chunk.
//
//   y[b, l, g*Og + o] = bias[g*Og + o]
//       + sum_k sum_c x[b, l*stride + k*dilation - pad_left, g*Cg + c] * kernel[k, c, g*Og + o]
//
// How: the output rows (b, l) of a call are taken R at a time; their receptive fields are
// unrolled into a chunk `cols` (R, K*Cg) (each row: the Cg channels of every tap, taps in
// kernel order, zeros where a tap falls into the padding), and one GEMM multiplies the chunk
// by the kernel viewed as (K*Cg, O) (Keras's layout is exactly that matrix, row-major), so
// padding and dilation cost nothing beyond the zeros written into the chunk and no padded
// copy of the input is ever made. Backward unrolls the same chunk again (rather than storing
// all of it: K times the input) for d_kernel += cols^T d_y. d_x: with stride 1 and one group,
// a convolution of d_y with the reversed kernel (input_gradient_by_correlation); otherwise
// d_cols = d_y W^T, whose rows are added back onto the taps they came from.
//
// Why unrolled GEMMs rather than one GEMM per tap (x's rows at stride `stride` times the
// tap's (Cg, O) slice, accumulated): at the books' shapes the per-tap products are too thin
// to run well. DLwP's Jena convnet (C = 14 channels, K = 24 taps, O = 8 filters) would make
// 24 products with an inner dimension of 14 for every batch item, each reading and writing the
// whole (L, 8) output; the unrolled chunk is one product with an inner dimension of 336.
// Hands-On ML's Conv1D(20, 4, strides=2) on one channel has an inner dimension of 1 per tap.
// Measured (benchmarks/conv1d_per_tap.cpp; forward, 1 thread, busy 2-core machine), per tap ->
// unrolled: Jena 256x120x14 -> 8x24 5.6-9.6 -> 1.8 ms; 256x48x8 -> 8x12 0.93 -> 0.23 ms;
// Hands-On 256x50x1 -> 20x4 stride 2 0.087 -> 0.037 ms; WaveNet 32x50x20 -> 20x2 0.042 ->
// 0.040 ms (even: two taps, 20 channels each).
// Measured (1 thread, busy 2-core machine, float32): DLwP's first Jena convolution forward
// 1.9 ms (133 MFLOP, about 70 GFLOP/s); benchmarks/bench_conv.py has the comparison with
// PyTorch's nn.Conv1d.
// A chunk holds R rows (at least 32) chosen by the bindings so that it stays in the L2 cache
// (about 256 KiB). Threads (the bindings) take slices of the batch, each with its own chunk.
//
// A 1x1 convolution (K = 1, stride 1, no padding, one group: WaveNet's output layer) is a
// plain product of x's rows with the kernel and skips the unrolling.
#pragma once

#include "common.hpp"
#include "layer_args.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace conv1d {

// Whether the convolution is a plain product of x (B*T, C) with the kernel (C, O).
inline bool is_pointwise(const Conv1dShape& s) {
  return s.K == 1 && s.stride == 1 && s.pad_left == 0 && s.groups == 1;
}

// cols (n, K*Cg): rows row0 .. row0+n-1 of the call's output rows (row = b * L + l), group g's
// channels of every tap, zeros for taps in the padding.
template <typename F>
inline void unroll(F* cols, const F* x, const Conv1dShape& s, Index row0, Index n, Index g) {
  const Index Cg = s.C / s.groups, KC = s.K * Cg;
  const bool contiguous = s.dilation == 1 && s.groups == 1;  // the K taps are K*C adjacent values
  for (Index r = 0; r < n; ++r) {
    const Index b = (row0 + r) / s.L, l = (row0 + r) % s.L;
    const F* xb = x + b * s.T * s.C + g * Cg;  // (T, C) of item b, from group g's channels
    F* row = cols + r * KC;                    // (K, Cg)
    const Index t0 = l * s.stride - s.pad_left;
    if (contiguous) {  // taps [k0, k1) inside the input: one copy, zeros around it
      const Index k0 = std::clamp<Index>(-t0, 0, s.K), k1 = std::clamp<Index>(s.T - t0, k0, s.K);
      std::fill(row, row + k0 * s.C, F(0));
      if (k1 > k0)
        std::memcpy(row + k0 * s.C, xb + (t0 + k0) * s.C, sizeof(F) * std::size_t((k1 - k0) * s.C));
      std::fill(row + k1 * s.C, row + KC, F(0));
      continue;
    }
    for (Index k = 0; k < s.K; ++k) {
      const Index t = t0 + k * s.dilation;
      if (t < 0 || t >= s.T)
        std::fill(row + k * Cg, row + (k + 1) * Cg, F(0));
      else
        std::copy(xb + t * s.C, xb + t * s.C + Cg, row + k * Cg);
    }
  }
}

// The inverse gather: d_x[b, t, group g's channels] += d_cols's entries for the taps that read
// step t (taps in the padding are dropped).
template <typename F>
inline void fold(F* d_x, const F* d_cols, const Conv1dShape& s, Index row0, Index n, Index g) {
  const Index Cg = s.C / s.groups, KC = s.K * Cg;
  const bool contiguous = s.dilation == 1 && s.groups == 1;
  for (Index r = 0; r < n; ++r) {
    const Index b = (row0 + r) / s.L, l = (row0 + r) % s.L;
    F* db = d_x + b * s.T * s.C + g * Cg;  // (T, C) of item b
    const F* row = d_cols + r * KC;        // (K, Cg)
    const Index t0 = l * s.stride - s.pad_left;
    if (contiguous) {  // taps [k0, k1) inside the input are (k1 - k0) * C adjacent values
      const Index k0 = std::clamp<Index>(-t0, 0, s.K), k1 = std::clamp<Index>(s.T - t0, k0, s.K);
      if (k1 > k0)
        Vec<F>(db + (t0 + k0) * s.C, (k1 - k0) * s.C) += CVec<F>(row + k0 * s.C, (k1 - k0) * s.C);
      continue;
    }
    for (Index k = 0; k < s.K; ++k) {
      const Index t = t0 + k * s.dilation;
      if (t >= 0 && t < s.T) Vec<F>(db + t * s.C, Cg) += CVec<F>(row + k * Cg, Cg);
    }
  }
}

// d_x[rows' taps] += d_y rows (n, Og) times group g's kernel, transposed: d_cols (n, K*Cg) =
// d_y W_g^T (Og, K*Cg), then each row added back onto the taps it came from.
template <typename F>
inline void scatter(F* d_x, const F* dy, const F* kernel, F* d_cols, const Conv1dShape& s,
                    Index row0, Index n, Index g) {
  const Index KC = s.K * (s.C / s.groups), Og = s.O / s.groups;
  gemm(false, true, n, KC, Og, F(1), dy + g * Og, s.O, kernel + g * Og, s.O, F(0), d_cols, KC);
  fold(d_x, d_cols, s, row0, n, g);
}

template <typename F>
void forward(const Conv1dForwardArgs<F>& a) {
  const Conv1dShape& s = a.s;
  const Index Cg = s.C / s.groups, Og = s.O / s.groups, KC = s.K * Cg, rows = s.B * s.L;
  const bool pointwise = is_pointwise(s);
  for (Index r0 = 0; r0 < rows; r0 += s.chunk_rows) {
    const Index n = std::min(s.chunk_rows, rows - r0);
    F* y = a.y + r0 * s.O;  // (n, O)
    for (Index g = 0; g < s.groups; ++g) {
      const F* A = a.x + r0 * s.C;  // pointwise: x's rows are the unrolled rows
      Index lda = s.C;
      if (!pointwise) {
        unroll(a.cols, a.x, s, r0, n, g);
        A = a.cols, lda = KC;
      }
      gemm(false, false, n, Og, KC, F(1), A, lda, a.kernel + g * Og, s.O, F(0), y + g * Og,
           s.O);
    }
    if (a.bias != nullptr)
      for (Index r = 0; r < n; ++r) Vec<F>(y + r * s.O, s.O) += CVec<F>(a.bias, s.O);
  }
}

// d_x of a convolution with stride 1 and one group is itself such a convolution: of d_y (as
// its input, (B, L, O)), with the kernel's taps reversed and each tap transposed (flipped, (K,
// O, C)), padded by span - 1 - pad_left on the left, giving T outputs:
//   d_x[t] = sum_j d_y[t + j*dilation - (span - 1 - pad_left)] flipped[j],
//   flipped[j] = kernel[K - 1 - j]^T.
// Unrolling d_y then costs K*O values a row and needs no scatter; the general way (d_cols,
// then adding each row back onto its K taps) writes K*C values a row twice, in pieces of Cg
// when the taps are dilated. Measured (1 thread, busy machine, backward with d_x, medians of
// 200): WaveNet's 32x50x20 -> 20x2 layers 0.139 -> 0.124 ms at dilation 4 and 0.124 -> 0.110
// ms at dilation 1; DLwP's Jena convolutions within the noise (256x120x14 -> 8x24: 9.3 -> 9.0
// ms; 256x48x8 -> 8x12: 0.69 -> 0.74 ms).
// Returns false (nothing done) when the chunk would hold too few rows of the unrolled d_y.
template <typename F>
bool input_gradient_by_correlation(const Conv1dBackwardArgs<F>& a) {
  const Conv1dShape& s = a.s;
  const Index chunk = s.chunk_rows * s.K * (s.C / s.groups);  // the workspace `cols` holds
  if (s.stride != 1 || s.groups != 1 || chunk / (s.K * s.O) < 16) return false;
  for (Index j = 0; j < s.K; ++j)  // flipped[j, o, c] = kernel[K - 1 - j, c, o]
    for (Index c = 0; c < s.C; ++c)
      for (Index o = 0; o < s.O; ++o)
        a.flipped[(j * s.O + o) * s.C + c] = a.kernel[((s.K - 1 - j) * s.C + c) * s.O + o];
  Conv1dForwardArgs<F> t{};
  t.y = a.d_x, t.x = a.d_y, t.kernel = a.flipped, t.bias = nullptr, t.cols = a.cols;
  const Index span = (s.K - 1) * s.dilation + 1;
  t.s = Conv1dShape{s.B,        s.L, s.O, s.T, s.C, s.K, 1, s.dilation, span - 1 - s.pad_left,
                    1,          chunk / (s.K * s.O)};
  forward(t);
  return true;
}

template <typename F>
void backward(const Conv1dBackwardArgs<F>& a) {
  const Conv1dShape& s = a.s;
  const Index Cg = s.C / s.groups, Og = s.O / s.groups, KC = s.K * Cg, rows = s.B * s.L;
  const bool pointwise = is_pointwise(s);
  std::fill(a.d_kernel, a.d_kernel + KC * s.O, F(0));
  if (a.d_bias != nullptr) std::fill(a.d_bias, a.d_bias + s.O, F(0));
  F* d_x = a.d_x;  // still to do in the loop below (else done, or not wanted)
  if (d_x != nullptr && !pointwise && input_gradient_by_correlation(a)) d_x = nullptr;
  if (d_x != nullptr && !pointwise) std::fill(d_x, d_x + s.B * s.T * s.C, F(0));
  for (Index r0 = 0; r0 < rows; r0 += s.chunk_rows) {
    const Index n = std::min(s.chunk_rows, rows - r0);
    const F* dy = a.d_y + r0 * s.O;  // (n, O)
    for (Index g = 0; g < s.groups; ++g) {
      const F* A = a.x + r0 * s.C;
      Index lda = s.C;
      if (!pointwise) {
        unroll(a.cols, a.x, s, r0, n, g);
        A = a.cols, lda = KC;
      }
      // d_kernel (K*Cg, Og) += cols^T (K*Cg, n) d_y (n, Og)
      gemm(true, false, KC, Og, n, F(1), A, lda, dy + g * Og, s.O, F(1), a.d_kernel + g * Og,
           s.O);
      if (d_x == nullptr) continue;
      if (pointwise) {  // d_x rows (n, C) = d_y (n, O) kernel^T (O, C)
        gemm(false, true, n, s.C, s.O, F(1), dy, s.O, a.kernel, s.O, F(0), d_x + r0 * s.C, s.C);
      } else {
        scatter(d_x, dy, a.kernel, a.d_cols, s, r0, n, g);
      }
    }
    if (a.d_bias != nullptr)
      for (Index r = 0; r < n; ++r) Vec<F>(a.d_bias, s.O) += CVec<F>(dy + r * s.O, s.O);
  }
}

// ------------------------------------------------------------------------ Conv1DTranspose
// The transposed convolution is the input gradient of the Conv1D of shape s (layer_args.hpp),
// so it runs on that convolution's pieces, with the roles of the arrays swapped:
//   forward   y = scatter of x's rows (n, O) times kernel^T (O, K*C) onto their taps, chunk by
//             chunk of R input rows (the NumPy form made one (B*T, K*F) product and K strided
//             adds over all of it: each chunk here stays in the L2 cache and threads take
//             slices of the batch);
//   backward  cols = d_y unrolled at x's rows' taps (R, K*C), then d_x rows = cols kernel
//             (K*C, O) and d_kernel += cols^T x rows: one unrolling for both products.
// Taps landing outside [0, T) are the cropped output steps ("same" padding's left crop,
// output_padding's extra zeros at the end): fold drops them, unroll reads them as zeros.
template <typename F>
void transpose_forward(const Conv1dTransposeArgs<F>& a) {
  const Conv1dShape& s = a.s;
  const Index rows = s.B * s.L;
  std::fill(a.y, a.y + s.B * s.T * s.C, F(0));
  for (Index r0 = 0; r0 < rows; r0 += s.chunk_rows) {
    const Index n = std::min(s.chunk_rows, rows - r0);
    scatter(a.y, a.x + r0 * s.O, a.kernel, a.cols, s, r0, n, 0);
  }
  if (a.bias != nullptr)
    for (Index r = 0; r < s.B * s.T; ++r) Vec<F>(a.y + r * s.C, s.C) += CVec<F>(a.bias, s.C);
}

template <typename F>
void transpose_backward(const Conv1dTransposeArgs<F>& a) {
  const Conv1dShape& s = a.s;
  const Index KC = s.K * s.C, rows = s.B * s.L;
  std::fill(a.d_kernel, a.d_kernel + KC * s.O, F(0));
  for (Index r0 = 0; r0 < rows; r0 += s.chunk_rows) {
    const Index n = std::min(s.chunk_rows, rows - r0);
    unroll(a.cols, a.d_y, s, r0, n, Index(0));
    const F* x = a.x + r0 * s.O;  // (n, O)
    if (a.d_x != nullptr)  // d_x (n, O) = cols (n, K*C) kernel (K*C, O)
      gemm(false, false, n, s.O, KC, F(1), a.cols, KC, a.kernel, s.O, F(0), a.d_x + r0 * s.O,
           s.O);
    gemm(true, false, KC, s.O, n, F(1), a.cols, KC, x, s.O, F(1), a.d_kernel, s.O);
  }
  if (a.d_bias != nullptr) {
    std::fill(a.d_bias, a.d_bias + s.C, F(0));
    for (Index r = 0; r < s.B * s.T; ++r) Vec<F>(a.d_bias, s.C) += CVec<F>(a.d_y + r * s.C, s.C);
  }
}

}  // namespace conv1d
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
