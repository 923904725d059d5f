// What the entry points of the recurrent cells share (plain and layer-normalized, whole
// sequences and single steps): the one argument check, the threading plan, the recurrent
// products' form (panels, packed), and the forward and backward calls from checked arguments
// to kernels, the empty call included.
#pragma once
#include <climits>
#include <string>
#include <type_traits>

#include "bindings/common.hpp"
#include "parallel.hpp"

namespace fastrnn {
namespace bindings {

// Sizes of one call, read from x (B, T, I) and recurrent_kernel (H, gates * H), and the
// threads it may use, read once (buffers per thread are sized from it).
struct Dims {
  Index B, T, I, H, G;
  int threads;
};

Activation parse_activation(const std::string& name);
Index parse_truncate(Index truncate);

// What kind of cell an argument struct is for (the layer-normalized ones derive from the
// plain ones).
template <typename Args, typename = void>
struct HasCellState : std::false_type {};  // LSTM: c0, c_last; d_c0, d_c_last
template <typename Args>
struct HasCellState<Args, std::void_t<decltype(&Args::c0)>> : std::true_type {};
template <typename Args, typename = void>
struct IsLayerNorm : std::false_type {};  // gamma, beta; the tape's xhat, rstd
template <typename Args>
struct IsLayerNorm<Args, std::void_t<decltype(&Args::ln)>> : std::true_type {};
template <typename Args, typename = void>
struct IsGru : std::false_type {};  // bias (2, G); weight gradients stacked with two biases
template <typename Args>
struct IsGru<Args, std::void_t<decltype(&Args::hz_h)>> : std::true_type {};

// ------------------------------------------------------------------------- argument checks
// The weights every cell call takes, kernel (I, G) and recurrent_kernel (H, G), and the sizes,
// into a.
template <typename F, typename Args>
void check_weights(Args& a, const Dims& d, const py::array& kernel,
                   const py::array& recurrent_kernel) {
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
}

// A step mask (see args.hpp): a C-contiguous bool or uint8 array (B, T), or none.
const std::uint8_t* checked_step_mask(const OptionalArray& m, Index B, Index T);

// The check every whole-sequence cell call (forward, backward; plain, layer-normalized)
// starts with: x (B, T, I), h0, kernel, recurrent_kernel, the recurrent dropout mask and the
// step mask, into a, with the sizes; returns the sizes.
template <typename F, typename Args>
Dims check_cell_arguments(Args& a, Index gates, const py::array& x, const OptionalArray& h0,
                          const py::array& kernel, const py::array& recurrent_kernel,
                          const OptionalArray& recurrent_mask, const OptionalArray& step_mask) {
  keep_blas_single_threaded();
  if (x.ndim() != 3)
    throw std::invalid_argument("argument `x`: expected a 3-D array (batch, time, features), got " +
                                std::to_string(x.ndim()) + "-D");
  if (recurrent_kernel.ndim() != 2 || recurrent_kernel.shape(0) < 1)
    throw std::invalid_argument("argument `recurrent_kernel`: expected a 2-D array (units, " +
                                std::to_string(gates) + " * units) with units >= 1");
  Dims d{x.shape(0), x.shape(1), x.shape(2), recurrent_kernel.shape(0), 0, call_threads()};
  d.G = gates * d.H;
  if (d.I < 1) throw std::invalid_argument("argument `x`: needs at least one feature");
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  // OpenBLAS takes 32-bit sizes and strides.
  const double biggest = static_cast<double>(d.B) * static_cast<double>(d.T) *
                         static_cast<double>(std::max(std::max(d.G, d.I), Index(1)));
  if (biggest >= static_cast<double>(INT_MAX))
    throw std::invalid_argument("arrays too large for 32-bit BLAS indexing: batch * time * "
                                "max(features, gates * units) must stay below 2**31");
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  check_weights<F>(a, d, kernel, recurrent_kernel);
  a.recurrent_mask = checked<F>(recurrent_mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  return d;
}

// The same for one step: x (B, I), the state h (B, H) read and overwritten in place, the
// weights; T = 1.
template <typename F, typename Args>
Dims check_step_arguments(Args& a, Index gates, const py::array& x, const py::array& h,
                          const py::array& kernel, const py::array& recurrent_kernel) {
  keep_blas_single_threaded();
  if (x.ndim() != 2)
    throw std::invalid_argument("argument `x`: expected a 2-D array (batch, features), got " +
                                std::to_string(x.ndim()) + "-D");
  if (recurrent_kernel.ndim() != 2 || recurrent_kernel.shape(0) < 1)
    throw std::invalid_argument("argument `recurrent_kernel`: expected a 2-D array");
  Dims d{x.shape(0), 1, x.shape(1), recurrent_kernel.shape(0), 0, call_threads()};
  d.G = gates * d.H;
  if (d.I < 1 || d.B < 1) throw std::invalid_argument("argument `x`: must not be empty");
  a.x = checked<F>(x, "x", {d.B, d.I});
  checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.h0 = a.h_last = checked_writeable<F>(h, "h", {d.B, d.H});
  check_weights<F>(a, d, kernel, recurrent_kernel);
  return d;
}

// ----------------------------------------------------------------------------- threading
// How a call's time loop is threaded (see plan_steps), decided once per call. The
// layer-normalized cells split by batch rows only (a row's normalization needs all units);
// so does a call with a recurrent dropout mask.
template <typename Args>
StepPlan plan_of(const Args& a, const Dims& d) {
  const bool rows_only = IsLayerNorm<Args>::value || a.recurrent_mask != nullptr;
  return plan_steps(d.threads, d.B, d.H, d.G, d.T, rows_only);
}

// Runs a time loop (forward, or backward_steps) threaded as plan_steps says. For a backward,
// `inputs` is the per-row work after the loop: a batch slice does its own rows' right after
// its loop; after a unit split it follows as a phase of its own, split by rows when it is big
// enough.
template <typename Args>
void run_steps(void (*steps)(const Args&), const Args& a, const Dims& d, const StepPlan& plan,
               void (*inputs)(const Args&) = nullptr) {
  if (plan.slices <= 1) return steps(a);
  if (!plan.units) return run_batch_sliced(steps, a, plan.slices);
  Args threaded = a;
  threaded.split.inputs_later = inputs != nullptr;
  run_unit_sliced(steps, threaded, plan.slices);
  if (inputs != nullptr) {
    const double flops = 2.0 * double(d.B) * double(d.T) * double(d.I) * double(d.G);
    run_batch_sliced(inputs, a, slices_for(d.threads, flops, d.B, 4));
  }
}

// ------------------------------------------------------------------ the recurrent products
// U^T (G, H) and K^T (G, I), stored at ws for backward: its products with them (d_h_{t-1} =
// dz_t U^T every step, d_x = dz K^T) then run as plain GEMMs, which OpenBLAS computes with its
// small-matrix kernels at small sizes. As transposed products they took its general path at
// small sizes, which packs the operands and takes a buffer from an allocator behind a lock,
// every step (and threads calling it every step queue on that lock).
void transpose(const float* src, Index rows, Index cols, float* dst);
void transpose(const double* src, Index rows, Index cols, double* dst);
template <typename F, typename Args>
void store_transposed_weights(Args& a, const Dims& d, F* ws) {
  transpose(a.recurrent_kernel, d.H, d.G, ws);
  transpose(a.kernel, d.I, d.G, ws + d.H * d.G);
  a.recurrent_kernel_t = ws, a.kernel_t = ws + d.H * d.G;
}
inline std::size_t transposed_weights_size(const Dims& d) {
  return std::size_t((d.H + d.I) * d.G);
}

// U (forward, transposed = false) or U^T (backward) in panels for the recurrent products of
// a call (see Panels in args.hpp), in a workspace of their own; none when they would not pay:
// OpenBLAS without in-place kernels, W whole small enough for them already, no width small
// enough, or a unit split (which multiplies by its own columns of W instead).
template <typename F>
Panels<F> recurrent_panels(const F* W, const Dims& d, bool transposed, const StepPlan& plan) {
  const Index K = transposed ? d.G : d.H, N = transposed ? d.H : d.G;
  if (!blas_reads_small_in_place() || double(d.B) * double(N) * double(K) <= kSmallProduct ||
      16.0 * double(K) > kSmallProduct || plan.units)
    return {};
  // 64 columns: panel_product multiplies a whole panel, or half or a quarter of one, whichever
  // is the widest its rows multiply in place.
  const Index width = 64;
  F* panels = workspace<F, 1>().get(std::size_t(K * N));
  for (Index c = 0; c < N; c += width) {
    const Index w = std::min(width, N - c);
    for (Index k = 0; k < K; ++k)
      std::copy(W + k * N + c, W + k * N + c + w, panels + c * K + k * w);
  }
  return {panels, width};
}

// Whether the per-step recurrent products go to the packed micro-kernel: by the rule of
// recurrent_packed (auto), never, or always (the last two for tests and measurements,
// _core._set_packed_products).
enum class PackedMode : int { automatic = 0, never = 1, always = 2 };
void set_packed_mode(const std::string& mode);
PackedMode packed_mode();

// W (K, N) packed for the kernel set's recurrent micro-kernel (see Packed in args.hpp), into
// `out` (packed_size elements).
template <typename F>
std::size_t packed_size(Index K, Index N) {
  const Index w = kernel_set<F>().packed.width;
  return std::size_t((N + w - 1) / w * w * K);
}
template <typename F>
Packed<F> pack(const F* W, Index K, Index N, F* out) {
  const Index width = kernel_set<F>().packed.width;
  for (Index c = 0; c < N; c += width) {
    const Index w = std::min(width, N - c);
    F* panel = out + c * K;  // (K, width)
    for (Index k = 0; k < K; ++k) {
      std::copy(W + k * N + c, W + k * N + c + w, panel + k * width);
      std::fill(panel + k * width + w, panel + (k + 1) * width, F(0));
    }
  }
  return {out, K, N};
}

// U (forward, (H, G)) or U^T (backward, (G, H)) packed once per call for the micro-kernel of
// packed_gemm.hpp, in a workspace of its own, or none (the products then go to OpenBLAS, by
// `panels` when there are some, else whole). The rule, from measurements on a busy 2-core EPYC
// (benchmarks/bench_packed.py: one thread, float32, thread CPU time, packed / OpenBLAS): the
// micro-kernel wins where OpenBLAS would copy W on every step, i.e. where one call's product
// (rows a thread multiplies x N x K) is beyond its in-place bound (kSmallProduct): 32x512x128
// 0.75-0.85, 16x1024x256 0.46, 64x2048x512 0.84, 32x1024x4096 0.92; below it OpenBLAS
// multiplies in place and is faster (32x256x64 1.10, 32x80x20 1.5, 128x16x64 3.9). Where W's
// panels let OpenBLAS multiply in place anyway (H about 100-300), whole runs measured the same
// or 1-4% slower with the micro-kernel (LSTM and GRU 64x100x32x128, interleaved processes), so
// panels are kept there. Whole runs where it is used (fwd+bwd, 2 threads, CPU time, packed /
// not): LSTM 32x50x512x1024 0.82, LSTM 64x100x256x512 0.95, GRU 0.95, SimpleRNN 0.97. Only the
// AVX-512 set was measured to win at the large sizes (AVX2: 32x4096x1024 1.14), so the others
// keep OpenBLAS.
// Whether a product of `rows` rows by W (K, N), repeated over `steps` steps, goes to the
// micro-kernel with W packed once (the rule above; `panels_in_place`: OpenBLAS would multiply
// W's panels in place).
inline bool packed_product_pays(double rows, Index K, Index N, Index steps, bool panels_in_place) {
  switch (packed_mode()) {
    case PackedMode::never: return false;
    case PackedMode::always: return true;
    case PackedMode::automatic: break;
  }
  // A BLAS without in-place kernels for small products (OpenBLAS has them only for AVX-512
  // CPUs: every AVX2, older x86 and ARM machine) copies all of W on every step's call, which
  // a step of few rows cannot amortise. Measured (avx2 set with OpenBLAS's Haswell kernels,
  // generic set with its Nehalem kernels; one thread, thread CPU time, LSTM/GRU/SimpleRNN
  // inference and fwd+bwd, H 20-256, packed / OpenBLAS): 1 row 0.31-0.78, 4 rows 0.46-0.91,
  // 8 rows 0.69-0.99, 16 rows 0.74-0.98, 32 rows 0.89-0.96 at H >= 128 but 0.98-1.04 at H 20.
  if (!blas_reads_small_in_place() && steps > 1 &&
      (rows <= 16 || (rows <= 32 && double(K) * double(N) >= 32768.0)))
    return true;
  const bool large = rows * double(N) * double(K) > kSmallProduct;
  return large && !panels_in_place && std::string(kernels().name) == "avx512";
}

template <typename F>
Packed<F> recurrent_packed(const F* W, const Dims& d, bool transposed, const StepPlan& plan,
                           const Panels<F>& panels) {
  const Index K = transposed ? d.G : d.H, N = transposed ? d.H : d.G;
  const Index rows = plan.units ? d.B : (d.B + plan.slices - 1) / std::max(1, plan.slices);
  // Panels pay while OpenBLAS multiplies whole 64-column panels in place; when only parts of
  // 32 or 16 columns fit its bound (deep products: backward, K = G), the micro-kernel wins.
  // Measured, one thread, thread CPU time, packed / panels, rows x N x K with a batch-major
  // lda: 16x256x1024 0.90-0.91, 32x256x1024 0.76-0.93, 16x300x1200 0.89, 32x384x1536 0.92
  // (parts of 32 or 16); 16x256x768 1.12, 16x192x768 1.12, 16x1024x256 1.01-1.03 (whole
  // panels); 32x128x512 (parts of 32) 0.95-1.02.
  const bool panels_in_place =
      panels.data != nullptr && 64.0 * double(rows) * double(K) <= kSmallProduct;
  if (!packed_product_pays(double(rows), K, N, d.T, panels_in_place)) return {};
  return pack(W, K, N, workspace<F, 2>().get(packed_size<F>(K, N)));
}

// --------------------------------------------------------------------------- workspaces
// A forward's workspace (h_scratch, and the cell's own), placed into a when ws is given;
// returns its size. LSTM without a tape (inference): gates and cells are one step's scratch
// in it. GRU: hz (the recurrent product of one step); without a tape, gates and hz_h too.
template <typename F>
std::size_t forward_workspace(SimpleRnnForwardArgs<F>& a, const Dims& d, F* ws) {
  if (ws != nullptr) a.h_scratch = ws;
  return std::size_t(d.B * d.H);
}
template <typename F>
std::size_t forward_workspace(LstmForwardArgs<F>& a, const Dims& d, F* ws) {
  const Index bh = d.B * d.H, bg = d.B * d.G;
  if (ws != nullptr) a.h_scratch = ws;
  if (ws != nullptr && a.no_tape) a.gates = ws + bh, a.cells = ws + bh + bg;
  return std::size_t(bh + (a.no_tape ? bg + bh : 0));
}
template <typename F>
std::size_t forward_workspace(GruForwardArgs<F>& a, const Dims& d, F* ws) {
  const Index bh = d.B * d.H, bg = d.B * d.G;
  if (ws != nullptr) a.h_scratch = ws, a.hz = ws + bh;
  if (ws != nullptr && a.no_tape) a.gates = ws + bh + bg, a.hz_h = ws + bh + 2 * bg;
  return std::size_t(bh + bg + (a.no_tape ? bg + bh : 0));
}

// The cell's own part of a backward's workspace, likewise. d_h_masked_rows (B, H): with a
// step mask, the gradient of the masked rows' state, held over their step.
template <typename F>
std::size_t backward_workspace(SimpleRnnBackwardArgs<F>& a, const Dims& d, F* ws) {
  const Index bth = d.B * d.T * d.H, bh = d.B * d.H;
  if (ws != nullptr) a.d_pre = ws, a.d_h = ws + bth, a.d_h_masked_rows = ws + bth + bh;
  return std::size_t(bth + 2 * bh);
}
template <typename F>
std::size_t backward_workspace(LstmBackwardArgs<F>& a, const Dims& d, F* ws) {
  const Index btg = d.B * d.T * d.G, bh = d.B * d.H;
  if (ws != nullptr) a.d_gates = ws, a.d_h = ws + btg, a.d_c = ws + btg + bh;
  if (ws != nullptr) a.d_h_masked_rows = ws + btg + 2 * bh;
  return std::size_t(btg + 3 * bh);
}
template <typename F>
std::size_t backward_workspace(GruBackwardArgs<F>& a, const Dims& d, F* ws) {
  const Index btg = d.B * d.T * d.G, bh = d.B * d.H;
  if (ws != nullptr) a.d_xz = ws, a.d_hz = ws + btg, a.d_h = ws + 2 * btg;
  if (ws != nullptr) a.d_h_rec = ws + 2 * btg + bh;
  return std::size_t(2 * btg + 2 * bh);
}

// ------------------------------------------------------------------------- whole calls
// What every backward reads besides the cell's arguments: the forward's outputs (B, T, H), the
// gradients arriving at the outputs and at the last state (B, H), and the truncation.
template <typename F, typename Args>
void check_backward_arguments(Args& a, const Dims& d, const py::array& outputs,
                              const OptionalArray& d_outputs, const OptionalArray& d_h_last,
                              Index truncate) {
  a.outputs = checked<F>(outputs, "outputs", {d.B, d.T, d.H});
  a.d_outputs = checked<F>(d_outputs, "d_outputs", {d.B, d.T, d.H});
  a.d_h_last = checked<F>(d_h_last, "d_h_last", {d.B, d.H});
  a.truncate = parse_truncate(truncate);
}

// The tape of an LSTM or GRU forward, for its backward: gates (B, T, G), and cells or hz_h
// (B, T, H).
template <typename F, typename Args>
void check_tape(Args& a, const Dims& d, const py::array& gates, const py::array& cells_or_hz_h) {
  a.gates = checked<F>(gates, "gates", {d.B, d.T, d.G});
  if constexpr (HasCellState<Args>::value)
    a.cells = checked<F>(cells_or_hz_h, "cells", {d.B, d.T, d.H});
  else
    a.hz_h = checked<F>(cells_or_hz_h, "hz_h", {d.B, d.T, d.H});
}

// The time loop of a forward, once its arguments and outputs are set: an empty call (no rows
// or no steps) passes the states through; otherwise its workspace, the recurrent product's
// form and the loop, threaded as plan_steps says, without the GIL.
template <typename F, typename Args>
void run_forward_steps(void (*forward)(const Args&), Args& a, const Dims& d) {
  py::gil_scoped_release release;
  if (d.B == 0 || d.T == 0) {
    copy_or_zero(a.h_last, a.h0, d.B * d.H);
    if constexpr (HasCellState<Args>::value) copy_or_zero(a.c_last, a.c0, d.B * d.H);
    return;
  }
  forward_workspace(a, d, workspace<F>().get(forward_workspace(a, d, static_cast<F*>(nullptr))));
  const StepPlan plan = plan_of(a, d);
  a.recurrent_panels = recurrent_panels(a.recurrent_kernel, d, false, plan);
  a.recurrent_packed = recurrent_packed(a.recurrent_kernel, d, false, plan, a.recurrent_panels);
  run_steps(forward, a, d, plan);
}

// A forward once its arguments are checked: allocates and returns outputs (B, T, H), h_last
// (B, H), for LSTM c_last (B, H), for LSTM and GRU the tape (gates (B, T, G), cells or hz_h
// (B, T, H); None for both without keep_tape), for the layer-normalized cells xhat (B, T, G)
// and rstd (B, T, gates).
template <typename F, typename Kernels>
py::tuple run_forward(const Kernels& k, typename Kernels::Forward& a, const Dims& d,
                      bool keep_tape = true) {
  using Args = typename Kernels::Forward;
  py::list result;
  const auto output = [&](const std::vector<Index>& shape, bool returned = true) {
    py::array_t<F> array = empty<F>(shape);
    result.append(returned ? py::object(array) : py::none());
    return data(array);
  };
  a.outputs = output({d.B, d.T, d.H});
  a.h_last = output({d.B, d.H});
  if constexpr (HasCellState<Args>::value) a.c_last = output({d.B, d.H});
  if constexpr (HasCellState<Args>::value || IsGru<Args>::value) {
    const Index steps = keep_tape ? d.T : 0;
    a.gates = output({d.B, steps, d.G}, keep_tape);
    if constexpr (HasCellState<Args>::value)
      a.cells = output({d.B, steps, d.H}, keep_tape);
    else
      a.hz_h = output({d.B, steps, d.H}, keep_tape);
    a.no_tape = !keep_tape;
  }
  if constexpr (IsLayerNorm<Args>::value) {
    a.ln.xhat = output({d.B, d.T, d.G});
    a.ln.rstd = output({d.B, d.T, Args::kGates});
  }
  run_forward_steps<F>(k.forward, a, d);
  return py::tuple(result);
}

// The weight phase (see stacked_width in args.hpp): its workspace holds the stacked rows
// (B*T, S), the stacked gradients (S, G) and the row split's partial sums ((slices-1) S G),
// for the row slices the phase can actually use (not the thread count asked for).
std::size_t weight_phase_size(const Dims& d, bool gru);

// Points a.stacked and a.d_weights into ws (weight_phase_size elements); returns the partials.
template <typename F, typename Args>
F* place_weight_phase(Args& a, const Dims& d, bool gru, F* ws) {
  const Index S = stacked_width(d.I, d.H, gru);
  a.stacked = ws, a.d_weights = ws + d.B * d.T * S;
  return a.d_weights + S * d.G;
}

// What a backward returns: d_x (B, T, I) or None, d_h0, d_c0 (LSTM only), d_kernel,
// d_recurrent_kernel, d_bias ((2, G) for GRU), and for the layer-normalized cells d_gamma,
// d_beta.
template <typename F>
struct Gradients {
  Gradients(const Dims& d, bool input_grad_, bool lstm_, bool gru, bool layer_norm_)
      : d_x(empty<F>({input_grad_ ? d.B : 0, d.T, d.I})), d_h0(empty<F>({d.B, d.H})),
        d_c0(empty<F>({lstm_ ? d.B : 0, d.H})), d_kernel(empty<F>({d.I, d.G})),
        d_rec(empty<F>({d.H, d.G})), d_bias(gru ? empty<F>({2, d.G}) : empty<F>({d.G})),
        d_gamma(empty<F>({layer_norm_ ? d.G : 0})), d_beta(empty<F>({layer_norm_ ? d.G : 0})),
        input_grad(input_grad_), lstm(lstm_), layer_norm(layer_norm_) {}
  py::tuple result() {
    py::list out;
    out.append(input_grad ? py::object(d_x) : py::none());
    out.append(d_h0);
    if (lstm) out.append(d_c0);
    for (py::object g : {d_kernel, d_rec, d_bias}) out.append(g);
    if (layer_norm) out.append(d_gamma), out.append(d_beta);
    return py::tuple(out);
  }
  py::array_t<F> d_x, d_h0, d_c0, d_kernel, d_rec, d_bias, d_gamma, d_beta;
  bool input_grad, lstm, layer_norm;
};

// The phases of a backward, once its workspace is placed: the time loop and the per-row work
// after it (threaded as plan_steps says), then the weight gradients, unstacked into d_kernel
// (I, G), d_rec (H, G) and d_bias (G,), or for GRU (2, G) (its stack is d_kernel, d_bias[0],
// d_rec, d_bias[1]). A split by batch rows with narrow gradients runs as one phase.
template <typename F, typename Kernels>
void run_backward_phases(const Kernels& k, const typename Kernels::Backward& a, const Dims& d,
                         const StepPlan& plan, bool gru, F* partials, Gradients<F>& g) {
  const Index S = stacked_width(d.I, d.H, gru), G = d.G;
  if (!plan.units && plan.slices > 1 && G < kMinColumnSplit) {
    run_row_sliced(k.backward_steps, k.backward_weights, a, G, S * G, plan.slices, partials);
  } else {
    run_steps(k.backward_steps, a, d, plan, k.backward_inputs);
    const double flops = 2.0 * double(d.B) * double(d.T) * double(S) * double(G);
    run_weights(k.backward_weights, a, G, S * G, flops, partials, d.threads);
  }
  const F* w = a.d_weights;
  std::copy(w, w + d.I * G, data(g.d_kernel));
  const Index rec = gru ? d.I + 1 : d.I;
  std::copy(w + rec * G, w + (rec + d.H) * G, data(g.d_rec));
  std::copy(w + (S - 1) * G, w + S * G, data(g.d_bias) + (gru ? G : 0));
  if (gru) std::copy(w + d.I * G, w + (d.I + 1) * G, data(g.d_bias));
}

// A backward with rows and steps: its workspace (the cell's own part, the transposed
// weights, the layer-normalized rows' d_gamma and d_beta, the weight phase), the recurrent
// product's form, the phases, and for the layer-normalized cells d_gamma and d_beta (G,): the
// sums of the rows'.
template <typename F, typename Kernels>
void run_backward_call(const Kernels& k, typename Kernels::Backward& a, const Dims& d,
                       Gradients<F>& g) {
  using Args = typename Kernels::Backward;
  constexpr bool gru = IsGru<Args>::value, layer_norm = IsLayerNorm<Args>::value;
  const StepPlan plan = plan_of(a, d);
  const std::size_t own = backward_workspace(a, d, static_cast<F*>(nullptr));
  const std::size_t ln_sums = layer_norm ? std::size_t(2 * d.B * d.G) : 0;
  F* ws = workspace<F>().get(own + transposed_weights_size(d) + ln_sums +
                             weight_phase_size(d, gru));
  backward_workspace(a, d, ws);
  F* next = ws + own;
  store_transposed_weights(a, d, next);
  next += transposed_weights_size(d);
  if constexpr (layer_norm) a.ln.d_gamma_beta = next;  // (B, 2, G)
  next += ln_sums;
  a.recurrent_t_panels = recurrent_panels(a.recurrent_kernel_t, d, true, plan);
  a.recurrent_t_packed =
      recurrent_packed(a.recurrent_kernel_t, d, true, plan, a.recurrent_t_panels);
  F* partials = place_weight_phase(a, d, gru, next);
  run_backward_phases(k, a, d, plan, gru, partials, g);
  if constexpr (layer_norm) {
    F* d_gamma = data(g.d_gamma);
    F* d_beta = data(g.d_beta);
    std::fill(d_gamma, d_gamma + d.G, F(0));
    std::fill(d_beta, d_beta + d.G, F(0));
    for (Index b = 0; b < d.B; ++b) {
      const F* row = a.ln.d_gamma_beta + b * 2 * d.G;
      for (Index j = 0; j < d.G; ++j) d_gamma[j] += row[j], d_beta[j] += row[d.G + j];
    }
  }
}

template <typename F, typename Kernels>
py::tuple run_backward(const Kernels& k, typename Kernels::Backward& a, const Dims& d,
                       bool input_grad) {
  using Args = typename Kernels::Backward;
  constexpr bool lstm = HasCellState<Args>::value, gru = IsGru<Args>::value;
  constexpr bool layer_norm = IsLayerNorm<Args>::value;
  Gradients<F> g(d, input_grad, lstm, gru, layer_norm);
  a.d_x = input_grad ? data(g.d_x) : nullptr, a.d_h0 = data(g.d_h0);
  if constexpr (lstm) a.d_c0 = data(g.d_c0);
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {  // the carried gradients pass through, the others are zero
      zero(g.d_x), zero(g.d_kernel), zero(g.d_rec), zero(g.d_bias), zero(g.d_gamma);
      zero(g.d_beta);
      copy_or_zero(a.d_h0, a.d_h_last, d.B * d.H);
      if constexpr (lstm) copy_or_zero(a.d_c0, a.d_c_last, d.B * d.H);
    } else {
      run_backward_call(k, a, d, g);
    }
  }
  return g.result();
}

}  // namespace bindings
}  // namespace fastrnn
