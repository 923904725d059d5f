// Arguments of the feed-forward sequence kernels (convolution, pooling, normalization), as
// plain data shared by the bindings and every compiled instruction-set variant (like
// args.hpp for the recurrent cells; kept apart from it so that the two grow independently).
//
// Dimension letters used in every shape comment:
//   B batch, T input steps, C input channels, L output steps, O output channels (filters),
//   K kernel taps (kernel_size), G groups (Cg = C / G input and Og = O / G output channels a
//   group), N rows of a normalization (every position but the normalized axis), R rows of
//   one chunk of an unrolled convolution.
// Arrays are C-contiguous and channels-last, as Keras's: element (b, t, c) of a (B, T, C)
// array is at [(b * T + t) * C + c]. Optional pointers are nullptr when absent.
#pragma once
#include <cstdint>

#include "args.hpp"

namespace fastrnn {

// ---------------------------------------------------------------------------------------
// Conv1D, Keras layout: kernel (K, Cg, O), output step l reads input steps
//   l * stride + k * dilation - pad_left,  k = 0 .. K-1
// (steps outside [0, T) read as zeros: the padding, never materialised). Output channels of
// group g are [g * Og, (g + 1) * Og) and read input channels [g * Cg, (g + 1) * Cg).
struct Conv1dShape {
  Index B, T, C, L, O, K;
  Index stride, dilation, pad_left, groups;
  Index chunk_rows;  // R: output rows (b, l) unrolled and multiplied at a time
};

template <typename F>
struct Conv1dForwardArgs {
  F* y;              // (B, L, O) out: the convolution plus bias (before any activation)
  const F* x;        // (B, T, C)
  const F* kernel;   // (K, Cg, O)
  const F* bias;     // (O,) or nullptr
  F* cols;           // (R, K * Cg) workspace of this call (one per thread)
  Conv1dShape s;
};

template <typename F>
struct Conv1dBackwardArgs {
  F* d_x;            // (B, T, C) out, or nullptr (not wanted)
  F* d_kernel;       // (K, Cg, O) out: this call's rows' share (the caller adds the shares)
  F* d_bias;         // (O,) out, likewise, or nullptr
  const F* d_y;      // (B, L, O) gradient of the convolution's output (after the activation's)
  const F* x;        // (B, T, C)
  const F* kernel;   // (K, Cg, O)
  F* cols;           // (R, K * Cg) workspace
  F* d_cols;         // (R, K * Cg) workspace
  F* flipped;        // (K, O, C) workspace (stride 1, one group: see conv1d.hpp)
  Conv1dShape s;
};

// Conv1DTranspose: the input gradient of the Conv1D of shape s (groups 1), taken as an
// operation of its own. In s's letters the transposed convolution maps x (B, L, O) to
// y (B, T, C): input step l, tap k lands on output step l * stride + k * dilation - pad_left
// (steps outside [0, T) are cropped), y[b, that step] += kernel[k] (C, O) x[b, l].
template <typename F>
struct Conv1dTransposeArgs {
  F* y;              // forward: (B, T, C) out, plus bias
  F* d_x;            // backward: (B, L, O) out, or nullptr (not wanted)
  F* d_kernel;       // backward: (K, C, O) out: this call's rows' share
  F* d_bias;         // backward: (C,) out, likewise, or nullptr
  const F* x;        // (B, L, O)
  const F* d_y;      // backward: (B, T, C)
  const F* kernel;   // (K, C, O), Keras's Conv1DTranspose layout (kernel_size, filters, channels)
  const F* bias;     // forward: (C,) or nullptr
  F* cols;           // (R, K * C) workspace
  Conv1dShape s;
};

// ---------------------------------------------------------------------------------------
// MaxPooling1D / AveragePooling1D: output step l pools input steps
//   [l * stride - pad_left, l * stride - pad_left + pool) clipped to [0, T)
// (the padding takes no part: max ignores it, the average divides by the steps inside).
struct Pool1dShape {
  Index B, T, C, L, pool, stride, pad_left;
};

template <typename F>
struct Pool1dForwardArgs {
  F* y;                  // (B, L, C) out
  std::int32_t* argmax;  // (B, L, C) out for max pooling with a tape (the step taken), or nullptr
  const F* x;            // (B, T, C)
  Pool1dShape s;
};

template <typename F>
struct Pool1dBackwardArgs {
  F* d_x;                      // (B, T, C) out
  const F* d_y;                // (B, L, C)
  const std::int32_t* argmax;  // (B, L, C) max pooling: from the forward; nullptr: average
  Pool1dShape s;
};

// ---------------------------------------------------------------------------------------
// LayerNormalization over the last axis of N rows of C values:
//   y = (x - mean) * rstd * gamma + beta,  rstd = 1 / sqrt(var + epsilon)  (biased var)
template <typename F>
struct LayerNormForwardArgs {
  F* y;             // (N, C) out
  F* mean;          // (N,) out (tape)
  F* rstd;          // (N,) out (tape)
  const F* x;       // (N, C)
  const F* gamma;   // (C,) or nullptr (scale=False)
  const F* beta;    // (C,) or nullptr (center=False)
  Index N, C;
  F epsilon;
};

template <typename F>
struct LayerNormBackwardArgs {
  F* d_x;           // (N, C) out, or nullptr
  F* d_gamma;       // (C,) out: this call's rows' share, or nullptr
  F* d_beta;        // (C,) out, likewise, or nullptr
  const F* d_y;     // (N, C)
  const F* x;       // (N, C)
  const F* mean;    // (N,)
  const F* rstd;    // (N,)
  const F* gamma;   // (C,) or nullptr
  Index N, C;
};

// BatchNormalization over the first axes (N rows) of the last (C channels):
//   moments: column sums of x and of (x - mean)^2 over N rows (this call's rows' share)
//   apply:   y = x * scale + shift, per channel
//   backward sums: column sums of d_y and d_y * xhat, xhat = (x - mean) * rstd
//   backward: d_x = scale * (d_y - sum_dy / N_all - xhat * sum_dy_xhat / N_all)
template <typename F>
struct BatchNormArgs {
  F* y;                 // (N, C) out (apply, backward: d_x)
  double* sum_a;        // (C,) out (moments: sum x, or sum (x - mean)^2; backward sums: sum d_y)
  double* sum_b;        // (C,) out (backward sums: sum d_y * xhat), or nullptr
  const F* x;           // (N, C)
  const F* d_y;         // (N, C) backward only
  const F* mean;        // (C,) or nullptr (moments: first pass)
  const F* rstd;        // (C,)
  const F* scale;       // (C,)
  const F* shift;       // (C,) apply only
  const F* sums;        // (2, C) backward: the total sums of d_y and d_y * xhat
  Index N, C, n_all;    // n_all: rows of the whole batch (backward means)
};

// ---------------------------------------------------------------------------------------
// The core of (multi-head, grouped-query) dot-product attention, see attention.hpp. Letters:
// Tq query steps, Tv key/value steps, H query heads, Hkv key/value heads (H / Hkv query heads
// share one; MultiHeadAttention: Hkv = H), Dk per-head query/key size, Dv per-head value size.
// Query head h reads key/value head h / (H / Hkv). A call handles the (batch item, key/value
// head) pairs [pair0, pair0 + pairs), pair = b * Hkv + g, with every query head of each.
struct AttentionShape {
  Index B, Tq, Tv, H, Hkv, Dk, Dv;
  bool causal;  // query step i attends to key steps j <= i only (no mask array needed)
  Index pair0, pairs;
};

template <typename F>
struct AttentionForwardArgs {
  F* p;                       // (B, H, Tq, Tv) out: softmax probabilities (before dropout)
  F* ctx;                     // (B, Tq, H, Dv) out: p (times drop) @ V, per head
  const F* q;                 // (B, Tq, H, Dk), already scaled by 1 / sqrt(Dk)
  const F* k;                 // (B, Tv, Hkv, Dk)
  const F* v;                 // (B, Tv, Hkv, Dv)
  const std::uint8_t* keep;   // (B, Tq, Tv) 1: attend, or nullptr
  const F* drop;              // (B, H, Tq, Tv) dropout keep-scale on p, or nullptr
  F* scratch;                 // (Tq, Tv) workspace of this call (with drop)
  AttentionShape s;
};

template <typename F>
struct AttentionBackwardArgs {
  F* d_q;                     // (B, Tq, H, Dk) out, times d_q_scale
  F* d_k;                     // (B, Tv, Hkv, Dk) out
  F* d_v;                     // (B, Tv, Hkv, Dv) out
  const F* d_ctx;             // (B, Tq, H, Dv)
  const F* d_p;               // (B, H, Tq, Tv) gradient on the returned p, or nullptr
  const F* p;                 // (B, H, Tq, Tv) from the forward
  const F* q;                 // as the forward's
  const F* k;
  const F* v;
  const F* drop;              // as the forward's, or nullptr
  F* scratch;                 // (2, Tq, Tv) workspace of this call
  F d_q_scale;                // d_q = d_q_scale * dL/dq (the query projection's scale)
  AttentionShape s;
};

// One instruction-set variant of the layer kernels; each runs on the rows (batch items or
// normalization rows) it is given, so the bindings split a call over threads by rows.
template <typename F>
struct LayerKernelSet {
  void (*conv1d_forward)(const Conv1dForwardArgs<F>&);
  void (*conv1d_backward)(const Conv1dBackwardArgs<F>&);
  void (*pool1d_forward_max)(const Pool1dForwardArgs<F>&);
  void (*pool1d_forward_average)(const Pool1dForwardArgs<F>&);
  void (*pool1d_backward)(const Pool1dBackwardArgs<F>&);
  void (*layer_norm_forward)(const LayerNormForwardArgs<F>&);
  void (*layer_norm_backward)(const LayerNormBackwardArgs<F>&);
  void (*batch_norm_moments)(const BatchNormArgs<F>&);
  void (*batch_norm_apply)(const BatchNormArgs<F>&);
  void (*batch_norm_backward_sums)(const BatchNormArgs<F>&);
  void (*batch_norm_backward)(const BatchNormArgs<F>&);
  void (*conv1d_transpose_forward)(const Conv1dTransposeArgs<F>&);
  void (*conv1d_transpose_backward)(const Conv1dTransposeArgs<F>&);
  void (*attention_forward)(const AttentionForwardArgs<F>&);
  void (*attention_backward)(const AttentionBackwardArgs<F>&);
};

struct LayerKernelTable {
  const char* name;
  LayerKernelSet<float> f32;
  LayerKernelSet<double> f64;
};

}  // namespace fastrnn
