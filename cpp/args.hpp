// Arguments of the kernels, as plain data shared by the bindings and every compiled
// instruction-set variant of the kernels (so nothing here may contain code).
//
// Dimension letters used in every shape comment:
//   B batch, T time steps, I input features, H hidden units, G = gates * H
//   (G = H for SimpleRNN, 4H for LSTM, 3H for GRU).
// All arrays are C-contiguous, batch-major: element (b, t, j) of a (B, T, n) array is at
// [(b * T + t) * n + j]. Optional pointers are nullptr when absent (zeros, or "no mask").
//
// Step masks (Keras masking): step_mask (B, T), one byte a step, 0 where the step is masked.
// A masked step leaves the state unchanged (h_t = h_{t-1}, c_t = c_{t-1}; outputs and the
// tape hold that carried state there) and no gradient reaches its input; backward carries the
// state's gradient through it unchanged. The cost is that of the unmasked call: every product
// still covers all B rows (the masked rows' results are skipped), only the gate math of a
// masked (b, t) is replaced by a copy.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastrnn {

using Index = std::ptrdiff_t;

enum class Activation : int { tanh = 0, relu = 1, linear = 2 };

// Which hidden units [u_begin, u_end) of every step this call computes, and how it waits for
// the calls computing the other units (sync(sync_ctx) returns once every call has finished
// the current step). The default, units [0, H) and no sync, is the whole step. With the
// units split over threads, each thread multiplies by its own columns of the recurrent
// kernel, so each packs only its share of it per step and keeps all B rows in its GEMM.
// The weight gradients are one GEMM (two for GRU) over all B*T rows: each row of `stacked`
// holds what that step's gate gradients multiply ([x_t, m * h_{t-1}, 1]: the 1 gives the
// bias gradient), so d_kernel, d_recurrent_kernel and d_bias come out of one product,
// stacked by rows in `d_weights`. Its width:
inline Index stacked_width(Index I, Index H, bool gru) { return I + H + (gru ? 2 : 1); }

// The recurrent product of a step multiplies at most B rows by the whole recurrent kernel W
// (forward: U (H, G); backward: U^T (G, H)). OpenBLAS packs W anew on every such call, a copy
// of all of W every step; below a size (M * N * K up to kSmallProduct) it multiplies in place
// instead. So for mid-sized layers (H about 100 to 300) the bindings also store W once per call
// as panels: the columns [c, c + width) of W, all K rows, one contiguous (K, width) block after
// another (the last may be narrower). A step then multiplies panel by panel, each a product
// small enough to be done in place: the weights are packed once per sequence, as oneDNN does,
// with plain OpenBLAS calls. Measured, one thread: a 32-row step of H = 128, 32x512x128, 32 ->
// 26 us, its backward 32x128x512 36 -> 29 us; 16 rows of H = 256, backward 16x1024x1024 (as
// 16x512x1024 twice) 2 x 213 -> 2 x 128 us.
template <typename F>
struct Panels {
  const F* data = nullptr;  // nullptr: W is not stored in panels
  Index width = 0;
};
// OpenBLAS's bound on M * N * K for the products it does in place (its small-matrix kernels),
// and whether the core it runs on has them (its AVX-512 cores); defined in dispatch.cpp.
inline constexpr double kSmallProduct = 1e6;
bool blas_reads_small_in_place();

// W (K, N) packed once per call for the recurrent micro-kernel (packed_gemm.hpp): panel p is
// columns [p width, (p + 1) width) of W, all K rows, stored (K, width) row after row, the
// last panel padded with zero columns; ceil(N / width) * width * K elements. The width is
// the kernel set's (KernelSet::packed_width).
template <typename F>
struct Packed {
  const F* data = nullptr;  // nullptr: not packed (the products go to OpenBLAS)
  Index K = 0, N = 0;
};

struct StepSplit {
  Index u_begin = 0, u_end = -1;  // u_end < 0: up to H
  void (*sync)(void*) = nullptr;
  void* sync_ctx = nullptr;
  bool inputs_later = false;  // backward: the caller runs backward_inputs after the loop
};

// ---------------------------------------------------------------------------------------
// SimpleRNN: h_t = act(x_t K + (m * h_{t-1}) U + b)
template <typename F>
struct SimpleRnnForwardArgs {
  F* outputs;                 // (B, T, H)  out: h_t for every t (also what backward needs)
  F* h_last;                  // (B, H)     out
  const F* x;                 // (B, T, I)
  const F* h0;                // (B, H)     or nullptr (zeros)
  const F* kernel;            // (I, H)
  const F* recurrent_kernel;  // (H, H)
  const F* bias;              // (H,)       or nullptr
  const F* recurrent_mask;    // (B, H)     or nullptr; multiplies h_{t-1} before U
  const std::uint8_t* step_mask;  // (B, T) or nullptr; 0: the step is masked (see above)
  F* h_scratch;               // (B, H)     workspace, used when recurrent_mask is set
  Panels<F> recurrent_panels;  // U in panels, or none
  Index B, T, I, H;
  Activation activation;
  StepSplit split;
  Packed<F> recurrent_packed;  // U packed for the micro-kernel, or none
};

template <typename F>
struct SimpleRnnBackwardArgs {
  F* d_x;                     // (B, T, I)  out, or nullptr (not wanted)
  F* d_h0;                    // (B, H)     out
  F* d_weights;               // (I+H+1, H) out: d_kernel, d_recurrent_kernel, d_bias stacked
  F* d_pre;                   // (B, T, H)  workspace: gradient of the pre-activations
  F* d_h;                     // (B, H)     workspace: gradient carried into h_{t-1}
  F* stacked;                 // (B, T, I+H+1) workspace: [x_t, m * h_{t-1}, 1] every step
  const F* outputs;           // (B, T, H)  tape
  const F* x;                 // (B, T, I)  tape
  const F* h0;                // (B, H)     tape, or nullptr
  const F* kernel;            // (I, H)
  const F* recurrent_kernel;  // (H, H)
  const F* recurrent_kernel_t;  // (H, H)   U transposed, filled by the caller (see bindings)
  const F* kernel_t;            // (H, I)   K transposed, likewise
  Panels<F> recurrent_t_panels;  // U^T in panels, or none
  const F* recurrent_mask;    // (B, H)     or nullptr
  const std::uint8_t* step_mask;  // (B, T) or nullptr
  F* d_h_masked_rows;         // (B, H)     workspace, used with step_mask: d_h of masked rows
  const F* d_outputs;         // (B, T, H)  or nullptr
  const F* d_h_last;          // (B, H)     or nullptr
  Index B, T, I, H;
  Index truncate;             // 0: full BPTT; k: the state entering T-k, T-2k, ... > 0 is constant
  Activation activation;
  Index g_begin, g_end;       // columns of the weight gradients backward_weights computes
  StepSplit split;
  Packed<F> recurrent_t_packed;  // U^T packed for the micro-kernel, or none
};

// ---------------------------------------------------------------------------------------
// LSTM, Keras layout, gate order i, f, c (candidate, "g"), o:
//   z = x_t K + (m * h_{t-1}) U + b;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_c)
//   c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
template <typename F>
struct LstmForwardArgs {
  F* outputs;                 // (B, T, H)   out
  F* h_last;                  // (B, H)      out
  F* c_last;                  // (B, H)      out
  F* gates;                   // (B, T, 4H)  out (tape): activated i, f, g, o
  F* cells;                   // (B, T, H)   out (tape): c_t
  const F* x;                 // (B, T, I)
  const F* h0;                // (B, H)      or nullptr
  const F* c0;                // (B, H)      or nullptr
  const F* kernel;            // (I, 4H)
  const F* recurrent_kernel;  // (H, 4H)
  const F* bias;              // (4H,)       or nullptr
  const F* recurrent_mask;    // (B, H)      or nullptr
  F* h_scratch;               // (B, H)      workspace, used when recurrent_mask is set
  const std::uint8_t* step_mask;  // (B, T)  or nullptr
  Panels<F> recurrent_panels;  // U in panels, or none
  Index B, T, I, H;
  StepSplit split;
  bool no_tape;               // inference: gates is (B, 4H) and cells (B, H) scratch, reused
  bool project_all;           // with no_tape: gates is (B, T, 4H) all the same, and x K is one
                              // product for every step (small calls: see forward_workspace)
  Packed<F> recurrent_packed;  // U packed for the micro-kernel, or none
};

template <typename F>
struct LstmBackwardArgs {
  F* d_x;                     // (B, T, I)   out, or nullptr (not wanted)
  F* d_h0;                    // (B, H)      out
  F* d_c0;                    // (B, H)      out
  F* d_weights;               // (I+H+1, 4H) out: d_kernel, d_recurrent_kernel, d_bias stacked
  F* d_gates;                 // (B, T, 4H)  workspace: gradient of the pre-activations
  F* d_h;                     // (B, H)      workspace
  F* d_c;                     // (B, H)      workspace
  F* stacked;                 // (B, T, I+H+1) workspace: [x_t, m * h_{t-1}, 1] every step
  const F* outputs;           // (B, T, H)   tape
  const F* gates;             // (B, T, 4H)  tape
  const F* cells;             // (B, T, H)   tape
  const F* x;                 // (B, T, I)   tape
  const F* h0;                // (B, H)      or nullptr
  const F* c0;                // (B, H)      or nullptr
  const F* kernel;            // (I, 4H)
  const F* recurrent_kernel;  // (H, 4H)
  const F* recurrent_kernel_t;  // (4H, H)   U transposed, filled by the caller (see bindings)
  const F* kernel_t;            // (4H, I)   K transposed, likewise
  Panels<F> recurrent_t_panels;  // U^T in panels, or none
  const F* recurrent_mask;    // (B, H)      or nullptr
  const std::uint8_t* step_mask;  // (B, T)  or nullptr
  F* d_h_masked_rows;         // (B, H)      workspace, used with step_mask: d_h of masked rows
  const F* d_outputs;         // (B, T, H)   or nullptr
  const F* d_h_last;          // (B, H)      or nullptr
  const F* d_c_last;          // (B, H)      or nullptr
  Index B, T, I, H;
  Index truncate;
  Index g_begin, g_end;       // columns of the weight gradients backward_weights computes
  StepSplit split;
  Packed<F> recurrent_t_packed;  // U^T packed for the micro-kernel, or none
};

// ---------------------------------------------------------------------------------------
// GRU, Keras reset_after=True layout, gate order z, r, h; bias (2, 3H) = [input; recurrent]:
//   xz = x_t K + b_in;  hz = (m * h_{t-1}) U + b_rec
//   z = sigmoid(xz_z + hz_z);  r = sigmoid(xz_r + hz_r);  n = tanh(xz_h + r * hz_h)
//   h_t = z * h_{t-1} + (1 - z) * n
template <typename F>
struct GruForwardArgs {
  F* outputs;                 // (B, T, H)   out
  F* h_last;                  // (B, H)      out
  F* gates;                   // (B, T, 3H)  out (tape): z, r, n
  F* hz_h;                    // (B, T, H)   out (tape): the recurrent part of the candidate, hz_h
  const F* x;                 // (B, T, I)
  const F* h0;                // (B, H)      or nullptr
  const F* kernel;            // (I, 3H)
  const F* recurrent_kernel;  // (H, 3H)
  const F* bias;              // (2, 3H)     or nullptr
  const F* recurrent_mask;    // (B, H)      or nullptr
  F* h_scratch;               // (B, H)      workspace, used when recurrent_mask is set
  const std::uint8_t* step_mask;  // (B, T)  or nullptr
  F* hz;                      // (B, 3H)     workspace: the recurrent GEMM of one step
  Panels<F> recurrent_panels;  // U in panels, or none
  Index B, T, I, H;
  StepSplit split;
  bool no_tape;               // inference: gates is (B, 3H) and hz_h (B, H) scratch, reused
  bool project_all;           // with no_tape: gates is (B, T, 3H) all the same, and x K is one
                              // product for every step (small calls: see forward_workspace)
  Packed<F> recurrent_packed;  // U packed for the micro-kernel, or none
};

template <typename F>
struct GruBackwardArgs {
  F* d_x;                     // (B, T, I)   out, or nullptr (not wanted)
  F* d_h0;                    // (B, H)      out
  F* d_weights;               // (I+H+2, 3H) out: d_kernel, d_bias[0], d_recurrent_kernel,
                              //             d_bias[1] stacked
  F* d_xz;                    // (B, T, 3H)  workspace: gradient of xz
  F* d_hz;                    // (B, T, 3H)  workspace: gradient of hz
  F* d_h;                     // (B, H)      workspace
  F* d_h_rec;                 // (B, H)      workspace, used when recurrent_mask is set
  F* stacked;                 // (B, T, I+H+2) workspace: [x_t, 1, m * h_{t-1}, 1] every step
  const F* outputs;           // (B, T, H)   tape
  const F* gates;             // (B, T, 3H)  tape
  const F* hz_h;              // (B, T, H)   tape
  const F* x;                 // (B, T, I)   tape
  const F* h0;                // (B, H)      or nullptr
  const F* kernel;            // (I, 3H)
  const F* recurrent_kernel;  // (H, 3H)
  const F* recurrent_kernel_t;  // (3H, H)   U transposed, filled by the caller (see bindings)
  const F* kernel_t;            // (3H, I)   K transposed, likewise
  Panels<F> recurrent_t_panels;  // U^T in panels, or none
  const F* recurrent_mask;    // (B, H)      or nullptr
  const std::uint8_t* step_mask;  // (B, T)  or nullptr
  const F* d_outputs;         // (B, T, H)   or nullptr
  const F* d_h_last;          // (B, H)      or nullptr
  Index B, T, I, H;
  Index truncate;
  Index g_begin, g_end;       // columns of the weight gradients backward_weights computes
  StepSplit split;
  Packed<F> recurrent_t_packed;  // U^T packed for the micro-kernel, or none
};

// ---------------------------------------------------------------------------------------
// Layer-normalized cells (layer_norm_rnn.hpp): a plain cell's arguments plus these. Every gate
// block (H units) of a row's pre-activations a is normalized over its units before the gate
// math, with learned gamma, beta (G,):
//   xhat = (a - mean) * rstd,  rstd = 1 / sqrt(var + epsilon) (biased var);  n = xhat gamma + beta
// and n takes the place of the pre-activation (plus bias) of the plain cell.
template <typename F>
struct LayerNormForward {
  const F* gamma;             // (G,)
  const F* beta;              // (G,)
  F* xhat;                    // (B, T, G)     out (tape): the normalized pre-activations
  F* rstd;                    // (B, T, gates) out (tape): 1 / std of each (b, t, gate block)
  F epsilon;
};

template <typename F>
struct LayerNormBackward {
  const F* gamma;             // (G,)
  const F* xhat;              // (B, T, G)     tape
  const F* rstd;              // (B, T, gates) tape
  F* d_gamma_beta;            // (B, 2, G)     out: each row's sums over its steps of d_n * xhat
                              //               (d_gamma) and d_n (d_beta); the caller adds rows
};

template <typename F>
struct LnSimpleRnnForwardArgs : SimpleRnnForwardArgs<F> {  // outputs also hold n before act
  using Base = SimpleRnnForwardArgs<F>;
  static constexpr Index kGates = 1;
  LayerNormForward<F> ln;
};
template <typename F>
struct LnSimpleRnnBackwardArgs : SimpleRnnBackwardArgs<F> {  // d_pre: d a (the LN's input)
  using Base = SimpleRnnBackwardArgs<F>;
  static constexpr Index kGates = 1;
  LayerNormBackward<F> ln;
};
template <typename F>
struct LnLstmForwardArgs : LstmForwardArgs<F> {  // no_tape must be false
  using Base = LstmForwardArgs<F>;
  static constexpr Index kGates = 4;
  LayerNormForward<F> ln;
};
template <typename F>
struct LnLstmBackwardArgs : LstmBackwardArgs<F> {  // d_gates: d a
  using Base = LstmBackwardArgs<F>;
  static constexpr Index kGates = 4;
  LayerNormBackward<F> ln;
};
// GRU: z, r = sigmoid(LN(xz_zr + hz_zr)); n = tanh(LN(xz_h + r * hz_h)) (block h alone, after
// r); hz_h (the tape) includes b_rec as in the plain cell.
template <typename F>
struct LnGruForwardArgs : GruForwardArgs<F> {  // no_tape must be false
  using Base = GruForwardArgs<F>;
  static constexpr Index kGates = 3;
  LayerNormForward<F> ln;
};
template <typename F>
struct LnGruBackwardArgs : GruBackwardArgs<F> {
  using Base = GruBackwardArgs<F>;
  static constexpr Index kGates = 3;
  LayerNormBackward<F> ln;
};

// ---------------------------------------------------------------------------------------
// Optimizer updates over a flat buffer of n parameters (all arrays (n,), updated in place).
template <typename F>
struct SgdArgs {
  F* param;
  const F* grad;
  F* velocity;  // or nullptr (no momentum)
  Index n;
  F learning_rate, momentum;
  bool nesterov;
};

template <typename F>
struct AdamArgs {
  F* param;
  const F* grad;
  F* m;
  F* v;
  F* v_hat;  // or nullptr (no AMSGrad)
  Index n;
  F alpha, beta_1, beta_2, epsilon;  // alpha: the bias-corrected learning rate of this step
};

template <typename F>
struct RmspropArgs {
  F* param;
  const F* grad;
  F* v;
  F* average_grad;     // or nullptr (not centered)
  F* momentum_buffer;  // or nullptr (no momentum)
  Index n;
  F learning_rate, rho, momentum, epsilon;
};

// The kernels of one recurrent cell. Backward runs in three phases: the time loop (independent
// per batch row, or split by units), the per-row work after it (the stacked rows of the weight
// gradients, d_x) and the weight gradients over the whole batch.
template <typename ForwardArgs, typename BackwardArgs>
struct CellKernels {
  using Forward = ForwardArgs;
  using Backward = BackwardArgs;
  void (*forward)(const ForwardArgs&);
  void (*backward_steps)(const BackwardArgs&);
  void (*backward_inputs)(const BackwardArgs&);
  void (*backward_weights)(const BackwardArgs&);
};
template <typename F>
using SimpleRnnKernels = CellKernels<SimpleRnnForwardArgs<F>, SimpleRnnBackwardArgs<F>>;
template <typename F>
using LstmKernels = CellKernels<LstmForwardArgs<F>, LstmBackwardArgs<F>>;
template <typename F>
using GruKernels = CellKernels<GruForwardArgs<F>, GruBackwardArgs<F>>;
template <typename F>
using LnSimpleRnnKernels = CellKernels<LnSimpleRnnForwardArgs<F>, LnSimpleRnnBackwardArgs<F>>;
template <typename F>
using LnLstmKernels = CellKernels<LnLstmForwardArgs<F>, LnLstmBackwardArgs<F>>;
template <typename F>
using LnGruKernels = CellKernels<LnGruForwardArgs<F>, LnGruBackwardArgs<F>>;

template <typename F>
struct OptimizerKernels {
  void (*sgd)(const SgdArgs<F>&);
  void (*adam)(const AdamArgs<F>&);
  void (*rmsprop)(const RmspropArgs<F>&);
};

// The packed recurrent product (packed_gemm.hpp): its panel width, and columns [c0, c1) of
// C (M, ldc) = A (M, K; lda) W + beta C with W packed.
template <typename F>
struct PackedProductKernel {
  Index width;
  void (*product)(const Packed<F>& w, Index M, const F* A, Index lda, F beta, F* C, Index ldc,
                  Index c0, Index c1);
};

// One instruction-set variant of every recurrent kernel, by family (each family is compiled
// in a translation unit of its own, cpp/kernels/).
template <typename F>
struct KernelSet {
  SimpleRnnKernels<F> simple_rnn;
  LstmKernels<F> lstm;
  GruKernels<F> gru;
  LnSimpleRnnKernels<F> layer_norm_simple_rnn;  // the layer-normalized cells
  LnLstmKernels<F> layer_norm_lstm;
  LnGruKernels<F> layer_norm_gru;
  OptimizerKernels<F> optimizers;
  PackedProductKernel<F> packed;
};

struct KernelTable {
  const char* name;
  KernelSet<float> f32;
  KernelSet<double> f64;
};

}  // namespace fastrnn
