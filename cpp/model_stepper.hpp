// ======================================================================================
// A whole model stepped one time step at a time (streaming inference).
//   B batch (independent streams), I features in, H units of a cell, N units of a Dense.
// A model that can stream is a graph of stages run in order (topological: a stage reads only
// the model's input or stages before it), each mapping this step's (B, in) to (B, out); a
// chain is the graph where each stage reads the one before. The last stage gives the output.
//   cell   SimpleRNN / LSTM / GRU: one step of the kernel set's forward (T = 1), the state
//          (h, and c for LSTM) carried in the stepper; its output is the new h. With
//          layer_norm (the layer-normalized cells, layer_norm_rnn.hpp) the step is that of the
//          layer-normalized kernel, gamma, beta and epsilon given. Either multiplies h by the
//          recurrent kernel packed once (when the micro-kernel pays, see the bindings).
//   dense  y = act(x K + b): Dense, TimeDistributed(Dense).
//   activation  y = act(x): Activation.
//   embedding   y = table[id]: an Embedding as the first stage, fed one token id a row.
//   layer_norm  y = (x - mean) rstd gamma + beta over the row's features, rstd = 1 / sqrt(var
//               + epsilon) (biased variance): LayerNormalization, by the layer's own kernel.
//   relu        y = x > threshold ? x : slope_c (x - threshold) (x >= threshold with
//               `inclusive`), then min(y, max_value) when there is one, slope_c one per
//               feature or one for all: ReLU with its parameters, LeakyReLU, PReLU (a
//               learned slope per feature, shared over time).
//   unit_norm   y = x / sqrt(max(sum x^2, 1e-12)) over the row's features: UnitNormalization.
//   rms_norm    y = x / sqrt(mean x^2 + epsilon) scale_c: RMSNormalization.
//   batch_norm  y = x scale + shift per feature, with scale = gamma / sqrt(moving_variance +
//               epsilon) and shift = beta - moving_mean scale folded once at construction (as
//               the layer does at inference): BatchNormalization.
//   conv1d      a causal Conv1D (stride 1): y = act(bias + sum_k x_{t - (K-1-k) d} W_k),
//               kernel (K, C / groups, O) in Keras's layout, x_{t'} = 0 before the first
//               step (the causal padding). Each row keeps its receptive field, the last
//               span = (K - 1) d + 1 inputs, in a ring buffer (B, span, C) that is part of the
//               stepper's state; a step writes its input over the oldest one, gathers the K
//               taps into a row of (K, C / groups) values per group and multiplies that by the
//               group's (K C / groups, O / groups) block of the kernel.
//   merge       add, subtract (two inputs), multiply, average, maximum, minimum of equal
//               widths, element by element in input order (as the merge layers), or
//               concatenate (the features of its inputs side by side): a stage with several
//               inputs.
// (Identities at inference, such as Dropout or InputLayer, are not stages at all.)
// The weights are copied in when the stepper is made, and every buffer a step touches is
// sized then too: a step allocates nothing. The batch rows are independent through every
// stage, so with threads each one runs all the stages on its own slice of rows.
// ======================================================================================
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "args.hpp"
#include "layer_args.hpp"
#include "parallel.hpp"

namespace fastrnn {
namespace stream {

enum class StageKind : int {
  simple_rnn, lstm, gru, dense, activation, embedding, layer_norm, batch_norm, conv1d, merge,
  relu, unit_norm, rms_norm
};

// How a merge stage combines its inputs (the merge layers of the same names).
enum class MergeOp : int { add, subtract, multiply, average, maximum, minimum, concatenate };

// Element-wise activations of Dense and Activation stages (the Keras names of
// fastrnn.layers' activations; softmax is over each row).
enum class StageActivation : int {
  linear, relu, tanh, sigmoid, softmax, elu, selu, softplus, softsign, swish, exponential
};

inline StageActivation parse_stage_activation(const std::string& name) {
  using A = StageActivation;
  static const std::pair<const char*, A> names[] = {
      {"linear", A::linear},     {"relu", A::relu},         {"tanh", A::tanh},
      {"sigmoid", A::sigmoid},   {"softmax", A::softmax},   {"elu", A::elu},
      {"selu", A::selu},         {"softplus", A::softplus}, {"softsign", A::softsign},
      {"swish", A::swish},       {"exponential", A::exponential}};
  for (const auto& [n, a] : names)
    if (name == n) return a;
  throw std::invalid_argument("argument `activation`: unknown activation '" + name + "'");
}

// sigmoid(z) without overflow for large |z| (as NumPy's reference: 1 / (1 + exp(-z))).
template <typename F>
inline F sigmoid(F z) {
  if (z >= F(0)) return F(1) / (F(1) + std::exp(-z));
  const F e = std::exp(z);
  return e / (F(1) + e);
}

// Applies `act` in place to B rows of n values (row stride n); `alpha`: elu's scale below 0.
template <typename F>
void activate_rows(StageActivation act, F* y, Index B, Index n, F alpha = F(1)) {
  using A = StageActivation;
  constexpr F kSeluAlpha = F(1.6732632423543772), kSeluScale = F(1.0507009873554805);
  if (act == A::linear) return;
  if (act == A::softmax) {
    for (Index b = 0; b < B; ++b) {
      F* row = y + b * n;
      const F top = *std::max_element(row, row + n);
      F sum = F(0);
      for (Index j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - top));
      for (Index j = 0; j < n; ++j) row[j] /= sum;
    }
    return;
  }
  for (Index k = 0; k < B * n; ++k) {
    const F z = y[k];
    switch (act) {
      case A::relu: y[k] = z > F(0) ? z : F(0); break;
      case A::tanh: y[k] = std::tanh(z); break;
      case A::sigmoid: y[k] = sigmoid(z); break;
      case A::elu: y[k] = z > F(0) ? z : alpha * std::expm1(z); break;
      case A::selu: y[k] = kSeluScale * (z > F(0) ? z : kSeluAlpha * std::expm1(z)); break;
      case A::softplus:  // log(1 + e^z), as np.logaddexp(0, z)
        y[k] = std::max(z, F(0)) + std::log1p(std::exp(-std::abs(z)));
        break;
      case A::softsign: y[k] = z / (F(1) + std::abs(z)); break;
      case A::swish: y[k] = z * sigmoid(z); break;
      case A::exponential: y[k] = std::exp(z); break;
      default: break;
    }
  }
}

// Row-major C (M, N; rows ldc apart) = A (M, K; lda) W (K, N; ldw) + beta C, through OpenBLAS.
inline void gemm(Index M, Index N, Index K, const float* A, Index lda, const float* W, Index ldw,
                 float beta, float* C, Index ldc) {
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(M),
                    static_cast<int>(N), static_cast<int>(K), 1.0f, A, static_cast<int>(lda), W,
                    static_cast<int>(ldw), beta, C, static_cast<int>(ldc));
}
inline void gemm(Index M, Index N, Index K, const double* A, Index lda, const double* W,
                 Index ldw, double beta, double* C, Index ldc) {
  scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(M),
                    static_cast<int>(N), static_cast<int>(K), 1.0, A, static_cast<int>(lda), W,
                    static_cast<int>(ldw), beta, C, static_cast<int>(ldc));
}
// The same with every matrix dense (leading dimensions K, N, N).
template <typename F>
void gemm(Index M, Index N, Index K, const F* A, const F* W, F beta, F* C) {
  gemm(M, N, K, A, K, W, N, beta, C, N);
}

// One stage, as given to the stepper (weights copied in; shapes checked by the caller).
template <typename F>
struct StageSpec {
  StageKind kind;
  Index in = 0, out = 0;              // features in and out of one step
  Activation cell_activation = Activation::tanh;  // SimpleRNN
  StageActivation act = StageActivation::linear;  // dense, activation
  std::vector<F> kernel;              // cell (in, G); dense (in, N); embedding: the table
                                      // (vocabulary, N) with in = 1; activation: empty
  std::vector<F> recurrent_kernel;    // cell (H, G)
  std::vector<F> bias;                // cell (G,), GRU (2, G); dense (N,); or empty (none)
  std::vector<F> recurrent_packed;    // cell: recurrent_kernel packed once for the step
                                      // product's micro-kernel (Packed), or empty (OpenBLAS)
  // layer_norm: gamma, beta (out,) or empty (scale=False, center=False). batch_norm: gamma,
  // beta as those, moving_mean and moving_variance (out,); the constructor folds the four
  // into scale and shift. A cell with layer_norm: gamma and beta (G,), each gate block
  // normalized over its units.
  std::vector<F> gamma, beta, moving_mean, moving_variance, scale, shift;
  F epsilon = F(1e-3);                // layer_norm, batch_norm, rms_norm, a cell with layer_norm
  F alpha = F(1);                     // activation elu: alpha (e^x - 1) below 0
  // relu: slope (out,) or (1,) below the threshold, the cap (max_value, none when infinite),
  // and whether x == threshold gives x (LeakyReLU, PReLU) or the slope's side (ReLU).
  std::vector<F> slope;
  F threshold = F(0), max_value = std::numeric_limits<F>::infinity();
  bool inclusive = false;
  bool layer_norm = false;            // a cell: the layer-normalized cell
  Index taps = 1, dilation = 1, groups = 1;  // conv1d: K, d and groups; kernel (K, C / groups,
                                             // O), bias (O,) or empty
  MergeOp merge_op = MergeOp::add;    // merge
  // The stages this one reads, earlier ones (-1: the model's input); a merge reads several.
  // Empty: the stage before (the model's input for the first).
  std::vector<Index> inputs;
};

// The steps a causal convolution's output sees: (K - 1) d + 1.
template <typename F>
Index span_of(const StageSpec<F>& st) {
  return (st.taps - 1) * st.dilation + 1;
}

inline Index gates_of(StageKind kind) {
  return kind == StageKind::lstm ? 4 : kind == StageKind::gru ? 3 : 1;
}
inline bool is_cell(StageKind kind) { return kind <= StageKind::gru; }

// A cell stage's packed recurrent kernel, or none.
template <typename F>
Packed<F> packed_of(const StageSpec<F>& st) {
  if (st.recurrent_packed.empty()) return {};
  const Index H = st.out;
  return {st.recurrent_packed.data(), H, gates_of(st.kind) * H};
}

template <typename F>
class ModelStepper {
 public:
  // `in_features`: the width of the model's input (0: learnt from the first stage, which must
  // then have weights that give it). A stage without weights to give its width (activation,
  // layer_norm without gamma and beta) comes with in = out = 0 and takes the width of what it
  // reads. Throws std::invalid_argument when a stage reads a stage not before it, its input
  // width is not the width of what it reads, or a weight has the wrong size.
  ModelStepper(std::vector<StageSpec<F>> stages, Index batch, Index in_features = 0)
      : stages_(std::move(stages)), B_(batch), in_(in_features) {
    if (stages_.empty()) throw std::invalid_argument("argument `stages`: at least one stage");
    if (B_ < 1) throw std::invalid_argument("argument `batch_size`: must be positive");
    buffers_.resize(stages_.size());
    for (std::size_t s = 0; s < stages_.size(); ++s) {
      StageSpec<F>& st = stages_[s];
      const std::string where = "stage " + std::to_string(s) + ": ";
      if (st.inputs.empty()) st.inputs = {Index(s) - 1};
      for (const Index i : st.inputs)
        if (i < -1 || i >= Index(s))
          throw std::invalid_argument(where + "reads stage " + std::to_string(i) +
                                      ", which does not come before it");
      if (st.kind == StageKind::merge) {
        merge_widths(st, where);
      } else {
        if (st.inputs.size() != 1)
          throw std::invalid_argument(where + "only a merge reads several stages");
        const Index from = st.inputs[0], given = width_of(from);  // 0: not known
        if (st.in == 0 && st.out == 0 && width_from_input(st.kind)) st.in = st.out = given;
        if (st.in < 1 || st.out < 1)
          throw std::invalid_argument(where + (from < 0 ? "its width is not known (no weights "
                                                          "give it, and no input width was given)"
                                                        : "empty widths"));
        if (given > 0 && st.in != given)
          throw std::invalid_argument(
              where + "takes " + std::to_string(st.in) + " features, " +
              (from < 0 ? std::string("the input has ")
                        : from + 1 == Index(s) ? std::string("the stage before gives ")
                                               : "stage " + std::to_string(from) + " gives ") +
              std::to_string(given));
        if (from < 0 && in_ == 0) in_ = st.in;  // the input's width, learnt from the weights
      }
      if (s > 0 && stages_[0].kind == StageKind::embedding &&
          std::find(st.inputs.begin(), st.inputs.end(), Index(-1)) != st.inputs.end())
        throw std::invalid_argument(where + "reads the token ids, which only the embedding "
                                    "reads");
      const Index H = st.out, G = gates_of(st.kind) * H;
      auto expect = [&](const std::vector<F>& w, Index n, const char* name, bool optional) {
        if ((optional && w.empty()) || Index(w.size()) == n) return;
        throw std::invalid_argument(where + name + " has " + std::to_string(w.size()) +
                                    " values, expected " + std::to_string(n));
      };
      Buffers& buf = buffers_[s];
      if (is_cell(st.kind)) {
        expect(st.kernel, st.in * G, "kernel", false);
        expect(st.recurrent_kernel, H * G, "recurrent_kernel", false);
        expect(st.bias, st.kind == StageKind::gru ? 2 * G : G, "bias", true);
        buf.h.assign(std::size_t(B_ * H), F(0));
        if (st.kind == StageKind::lstm) buf.c.assign(std::size_t(B_ * H), F(0));
        // The step's scratch: gates (B, G), and LSTM cells (B, H) or GRU hz (B, G) and
        // hz_h (B, H); then the step's output (B, H), copied into h by the kernel; with
        // layer_norm then the normalized pre-activations (B, G) and each gate block's 1 / std
        // (B, gates).
        const Index extra = st.kind == StageKind::lstm ? H : st.kind == StageKind::gru ? G + H : 0;
        const Index ln = st.layer_norm ? G + gates_of(st.kind) : 0;
        if (st.layer_norm) {
          expect(st.gamma, G, "gamma", false);
          expect(st.beta, G, "beta", false);
          if (!(st.epsilon > F(0)))
            throw std::invalid_argument(where + "epsilon must be positive");
        }
        buf.scratch.assign(std::size_t(B_ * (G + extra + H + ln)), F(0));
      } else if (st.kind == StageKind::embedding) {
        if (s > 0) throw std::invalid_argument(where + "an embedding must be the first stage");
        if (st.in != 1 || st.kernel.empty() || st.kernel.size() % std::size_t(st.out) != 0)
          throw std::invalid_argument(where + "an embedding takes one id and needs a table");
        vocabulary_ = Index(st.kernel.size()) / st.out;
        buf.y.assign(std::size_t(B_ * st.out), F(0));
      } else if (st.kind == StageKind::dense) {
        expect(st.kernel, st.in * st.out, "kernel", false);
        expect(st.bias, st.out, "bias", true);
        buf.y.assign(std::size_t(B_ * st.out), F(0));
      } else if (st.kind == StageKind::conv1d) {
        if (st.taps < 1 || st.dilation < 1 || st.groups < 1 || st.in % st.groups != 0 ||
            st.out % st.groups != 0)
          throw std::invalid_argument(where + "kernel_size, dilation and groups must be "
                                      "positive, groups dividing the channels and filters");
        const Index Cg = st.in / st.groups;
        expect(st.kernel, st.taps * Cg * st.out, "kernel", false);
        expect(st.bias, st.out, "bias", true);
        buf.y.assign(std::size_t(B_ * st.out), F(0));
        buf.ring.assign(std::size_t(B_ * span_of(st) * st.in), F(0));
        buf.newest = span_of(st) - 1;
        buf.scratch.assign(std::size_t(B_ * st.taps * Cg), F(0));  // a row's gathered taps
      } else if (st.kind == StageKind::merge) {
        buf.y.assign(std::size_t(B_ * st.out), F(0));
      } else if (st.kind == StageKind::layer_norm) {
        if (st.in != st.out) throw std::invalid_argument(where + "a normalization keeps widths");
        if (!(st.epsilon > F(0))) throw std::invalid_argument(where + "epsilon must be positive");
        expect(st.gamma, st.out, "gamma", true);
        expect(st.beta, st.out, "beta", true);
        buf.y.assign(std::size_t(B_ * st.out), F(0));
        buf.scratch.assign(std::size_t(2 * B_), F(0));  // each row's mean and 1 / std
      } else if (st.kind == StageKind::batch_norm) {
        if (st.in != st.out) throw std::invalid_argument(where + "a normalization keeps widths");
        if (!(st.epsilon > F(0))) throw std::invalid_argument(where + "epsilon must be positive");
        expect(st.gamma, st.out, "gamma", true);
        expect(st.beta, st.out, "beta", true);
        expect(st.moving_mean, st.out, "moving_mean", false);
        expect(st.moving_variance, st.out, "moving_variance", false);
        // The layer's inference map, in the same operations as ops.batch_norm_forward:
        // rstd = 1 / sqrt(variance + epsilon), scale = rstd gamma, shift = beta - mean scale.
        st.scale.resize(std::size_t(st.out));
        st.shift.resize(std::size_t(st.out));
        for (std::size_t c = 0; c < st.scale.size(); ++c) {
          const F rstd = F(1) / std::sqrt(st.moving_variance[c] + st.epsilon);
          st.scale[c] = st.gamma.empty() ? rstd : rstd * st.gamma[c];
          const F mean_scale = st.moving_mean[c] * st.scale[c];
          st.shift[c] = st.beta.empty() ? -mean_scale : st.beta[c] - mean_scale;
        }
        buf.y.assign(std::size_t(B_ * st.out), F(0));
      } else if (st.kind == StageKind::relu) {
        if (st.in != st.out) throw std::invalid_argument(where + "an activation keeps widths");
        if (st.slope.size() != 1 && Index(st.slope.size()) != st.out)
          throw std::invalid_argument(where + "slope has " + std::to_string(st.slope.size()) +
                                      " values, expected 1 or " + std::to_string(st.out));
        if (std::isnan(st.threshold) || std::isnan(st.max_value))
          throw std::invalid_argument(where + "threshold and max_value must be numbers");
        buf.y.assign(std::size_t(B_ * st.out), F(0));
      } else if (st.kind == StageKind::unit_norm || st.kind == StageKind::rms_norm) {
        if (st.in != st.out) throw std::invalid_argument(where + "a normalization keeps widths");
        if (st.kind == StageKind::rms_norm) {
          if (!(st.epsilon >= F(0))) throw std::invalid_argument(where + "epsilon must be >= 0");
          expect(st.scale, st.out, "scale", false);
        }
        buf.y.assign(std::size_t(B_ * st.out), F(0));
      } else {
        if (st.in != st.out) throw std::invalid_argument(where + "an activation keeps widths");
        buf.y.assign(std::size_t(B_ * st.out), F(0));
      }
      const bool product = is_cell(st.kind) || st.kind == StageKind::dense;
      if (st.kind == StageKind::conv1d)
        flops_ += 2.0 * double(B_) * double(st.taps * st.in / st.groups) * double(st.out);
      else if (product)
        flops_ += 2.0 * double(B_) * double(st.in + (is_cell(st.kind) ? H : 0)) * double(G);
      else
        flops_ += 8.0 * double(B_) * double(st.out);  // a few operations a value
    }
  }

  Index batch() const { return B_; }
  // Whether a stage of `kind` without weights takes its width from its input.
  static bool width_from_input(StageKind kind) {
    return kind == StageKind::activation || kind == StageKind::layer_norm ||
           kind == StageKind::unit_norm || kind == StageKind::relu;
  }
  // The first stage's vocabulary when it is an embedding (its input: B token ids), else 0.
  Index vocabulary() const { return vocabulary_; }
  Index in_features() const { return in_; }
  Index out_features() const { return stages_.back().out; }
  const std::vector<StageSpec<F>>& stages() const { return stages_; }

  // The carried state of stage s: h (B, H), and c for LSTM (empty vectors for other stages).
  std::vector<F>& h(std::size_t s) { return buffers_.at(s).h; }
  std::vector<F>& c(std::size_t s) { return buffers_.at(s).c; }

  // A conv1d stage's receptive field (B, span, C), oldest step first: its state, as the
  // window of the last span inputs (zeros before the first step). Empty for other stages.
  std::vector<F> window(std::size_t s) const {
    const Buffers& buf = buffers_.at(s);
    std::vector<F> w(buf.ring.size());
    if (w.empty()) return w;
    const Index span = span_of(stages_[s]), C = stages_[s].in;
    for (Index b = 0; b < B_; ++b)
      for (Index i = 0; i < span; ++i) {  // step i of the window is in slot newest + 1 + i
        const F* src = buf.ring.data() + (b * span + (buf.newest + 1 + i) % span) * C;
        std::copy(src, src + C, w.data() + (b * span + i) * C);
      }
    return w;
  }
  // Sets a conv1d stage's window from (B, span, C) values, oldest step first.
  void set_window(std::size_t s, const F* w) {
    Buffers& buf = buffers_.at(s);
    buf.newest = span_of(stages_[s]) - 1;  // slot i holds step i of the window
    std::copy(w, w + buf.ring.size(), buf.ring.begin());
  }

  void reset() {
    for (std::size_t s = 0; s < buffers_.size(); ++s) {
      Buffers& buf = buffers_[s];
      std::fill(buf.h.begin(), buf.h.end(), F(0));
      std::fill(buf.c.begin(), buf.c.end(), F(0));
      std::fill(buf.ring.begin(), buf.ring.end(), F(0));
      if (!buf.ring.empty()) buf.newest = span_of(stages_[s]) - 1;
    }
  }

  // x (B, in_features) -> out (B, out_features); every state advanced one step. `threads`:
  // the most threads to use (batch slices, when the step is big enough to pay for them).
  // With an embedding first, the input is `ids` (B,) instead of x, each in [0, vocabulary):
  // the caller checks them.
  // A step's products are narrow (a few dozen columns) and its gate math per element is as
  // long as its multiply-adds, so its flops take about four times as long as slices_for's rule
  // assumes (the Hands-On ML deep RNN at batch 256: 0.63 MFLOP, 27 us on one core; two row
  // slices 17 us, avx512 set): they count four times.
  // `lks`: the layer kernels (layer_norm and batch_norm stages run the layers' own).
  void step(const KernelSet<F>& ks, const LayerKernelSet<F>& lks, const F* x,
            const std::int64_t* ids, F* out, int threads) {
    const int slices = slices_for(threads, 4 * flops_, B_, 4);
    run_parallel(slices, [&](int s) {
      const Index b0 = B_ * s / slices, b1 = B_ * (s + 1) / slices;
      rows(ks, lks, b0, b1 - b0, x, ids, out);
    });
    // Every row wrote this step's input into the slot after the newest: it is the newest now.
    for (std::size_t s = 0; s < buffers_.size(); ++s)
      if (!buffers_[s].ring.empty())
        buffers_[s].newest = (buffers_[s].newest + 1) % span_of(stages_[s]);
  }

 private:
  struct Buffers {
    std::vector<F> h, c;      // (B, H) carried state (cells)
    std::vector<F> scratch;   // the cell step's workspace (see the constructor); layer_norm:
                              // (B) means then (B) 1 / std
    std::vector<F> y;         // (B, out) the output of a stage other than a cell
    std::vector<F> ring;      // conv1d: (B, span, C) the last span inputs of each row, the
    Index newest = 0;         // newest in slot `newest`, the one before it in the slot before
  };

  // The width of what stage `from` gives (-1: the model's input; 0 when not known yet).
  Index width_of(Index from) const { return from < 0 ? in_ : stages_[std::size_t(from)].out; }

  // A merge's widths from its inputs': equal ones for an element-wise merge, their sum for
  // concatenate.
  void merge_widths(StageSpec<F>& st, const std::string& where) const {
    const std::size_t n = st.inputs.size();
    const bool subtract = st.merge_op == MergeOp::subtract;
    const bool concatenate = st.merge_op == MergeOp::concatenate;
    if (subtract ? n != 2 : n < (concatenate ? 1u : 2u))
      throw std::invalid_argument(where + "a merge reads " +
                                  (subtract ? "exactly two stages" : "at least two stages"));
    const Index first = width_of(st.inputs[0]);
    Index total = 0;
    for (const Index i : st.inputs) {
      const Index w = width_of(i);
      if (w < 1) throw std::invalid_argument(where + "the width of the input is not known");
      if (!concatenate && w != first)
        throw std::invalid_argument(where + "merges widths " + std::to_string(first) + " and " +
                                    std::to_string(w) + " element by element");
      total += w;
    }
    st.in = st.out = concatenate ? total : first;
  }

  // Where stage `from`'s output for rows [b0, ..) is (-1: the model's input x). The last
  // stage writes into the caller's `out` instead, but no stage reads it.
  const F* output_of(Index from, Index b0, const F* x) const {
    if (from < 0) return x + b0 * in_;
    const StageSpec<F>& st = stages_[std::size_t(from)];
    const Buffers& buf = buffers_[std::size_t(from)];
    return (is_cell(st.kind) ? buf.h.data() : buf.y.data()) + b0 * st.out;
  }

  // A merge stage on rows [b0, b0 + nb) into y (nb, out), its inputs in order.
  void merge_rows(const StageSpec<F>& st, Index b0, Index nb, const F* x, F* y) const {
    const Index n = st.out;
    if (st.merge_op == MergeOp::concatenate) {
      Index col = 0;
      for (const Index i : st.inputs) {
        const Index w = width_of(i);
        const F* a = output_of(i, b0, x);
        for (Index b = 0; b < nb; ++b) std::copy(a + b * w, a + (b + 1) * w, y + b * n + col);
        col += w;
      }
      return;
    }
    const F* first = output_of(st.inputs[0], b0, x);
    std::copy(first, first + nb * n, y);
    for (std::size_t j = 1; j < st.inputs.size(); ++j) {
      const F* a = output_of(st.inputs[j], b0, x);
      switch (st.merge_op) {
        case MergeOp::add:
        case MergeOp::average:
          for (Index e = 0; e < nb * n; ++e) y[e] += a[e];
          break;
        case MergeOp::subtract:
          for (Index e = 0; e < nb * n; ++e) y[e] -= a[e];
          break;
        case MergeOp::multiply:
          for (Index e = 0; e < nb * n; ++e) y[e] *= a[e];
          break;
        // The first of the largest (smallest), a NaN counting as both, as np.argmax (argmin)
        // picks it in the layers.
        case MergeOp::maximum:
          for (Index e = 0; e < nb * n; ++e)
            if (!std::isnan(y[e]) && (a[e] > y[e] || std::isnan(a[e]))) y[e] = a[e];
          break;
        case MergeOp::minimum:
          for (Index e = 0; e < nb * n; ++e)
            if (!std::isnan(y[e]) && (a[e] < y[e] || std::isnan(a[e]))) y[e] = a[e];
          break;
        case MergeOp::concatenate: break;
      }
    }
    if (st.merge_op == MergeOp::average) {
      const F count = F(st.inputs.size());
      for (Index e = 0; e < nb * n; ++e) y[e] /= count;
    }
  }

  // Rows [b0, b0 + nb) through every stage.
  void rows(const KernelSet<F>& ks, const LayerKernelSet<F>& lks, Index b0, Index nb,
            const F* x, const std::int64_t* ids, F* out) {
    for (std::size_t s = 0; s < stages_.size(); ++s) {
      const StageSpec<F>& st = stages_[s];
      Buffers& buf = buffers_[s];
      // this stage's input rows (an embedding reads the ids; a merge reads its own)
      const F* in = ids == nullptr || s > 0 ? output_of(st.inputs[0], b0, x) : nullptr;
      const F* bias = st.bias.empty() ? nullptr : st.bias.data();
      const Index H = st.out, G = gates_of(st.kind) * H;
      const std::size_t per_row = buf.scratch.size() / std::size_t(B_);
      F* scratch = buf.scratch.data() + b0 * per_row;
      F* h = buf.h.data() + b0 * H;
      // With layer_norm: the normalized pre-activations and 1 / std, after the plain scratch
      // (gates, then LSTM cells or GRU hz and hz_h, then the output: see the constructor).
      const auto ln_of = [&](LayerNormForward<F>& ln) {
        const Index gates = gates_of(st.kind), plain = Index(per_row) - G - gates;
        ln.gamma = st.gamma.data(), ln.beta = st.beta.data(), ln.epsilon = st.epsilon;
        ln.xhat = scratch + nb * plain, ln.rstd = scratch + nb * (plain + G);
      };
      switch (st.kind) {
        case StageKind::simple_rnn: {
          LnSimpleRnnForwardArgs<F> a{};
          a.recurrent_packed = packed_of(st);
          a.x = in, a.h0 = a.h_last = h, a.outputs = scratch;
          a.kernel = st.kernel.data(), a.recurrent_kernel = st.recurrent_kernel.data();
          a.bias = bias, a.activation = st.cell_activation;
          a.B = nb, a.T = 1, a.I = st.in, a.H = H;
          if (st.layer_norm) {
            ln_of(a.ln);
            ks.layer_norm_simple_rnn.forward(a);
          } else {
            ks.simple_rnn.forward(a);
          }
          break;
        }
        case StageKind::lstm: {
          LnLstmForwardArgs<F> a{};
          a.recurrent_packed = packed_of(st);
          a.x = in, a.h0 = a.h_last = h;
          a.c0 = a.c_last = buf.c.data() + b0 * H;
          a.gates = scratch, a.cells = scratch + nb * G, a.outputs = scratch + nb * (G + H);
          a.kernel = st.kernel.data(), a.recurrent_kernel = st.recurrent_kernel.data();
          a.bias = bias, a.B = nb, a.T = 1, a.I = st.in, a.H = H;
          if (st.layer_norm) {
            ln_of(a.ln);
            ks.layer_norm_lstm.forward(a);
          } else {
            ks.lstm.forward(a);
          }
          break;
        }
        case StageKind::gru: {
          LnGruForwardArgs<F> a{};
          a.recurrent_packed = packed_of(st);
          a.x = in, a.h0 = a.h_last = h;
          a.gates = scratch, a.hz = scratch + nb * G, a.hz_h = scratch + 2 * nb * G;
          a.outputs = scratch + nb * (2 * G + H);
          a.kernel = st.kernel.data(), a.recurrent_kernel = st.recurrent_kernel.data();
          a.bias = bias, a.B = nb, a.T = 1, a.I = st.in, a.H = H;
          if (st.layer_norm) {
            ln_of(a.ln);
            ks.layer_norm_gru.forward(a);
          } else {
            ks.gru.forward(a);
          }
          break;
        }
        case StageKind::dense:
        case StageKind::activation:
        case StageKind::embedding:
        case StageKind::layer_norm:
        case StageKind::batch_norm:
        case StageKind::conv1d:
        case StageKind::merge:
        case StageKind::relu:
        case StageKind::unit_norm:
        case StageKind::rms_norm: {
          const bool last = s + 1 == stages_.size();
          F* y = last ? out + b0 * st.out : buf.y.data() + b0 * st.out;
          if (st.kind == StageKind::embedding) {
            for (Index b = 0; b < nb; ++b) {
              const F* row = st.kernel.data() + ids[b0 + b] * st.out;
              std::copy(row, row + st.out, y + b * st.out);
            }
            continue;
          }
          if (st.kind == StageKind::merge) {
            merge_rows(st, b0, nb, x, y);
            continue;
          }
          if (st.kind == StageKind::conv1d) {
            conv_rows(st, buf, b0, nb, in, scratch, y);
            continue;
          }
          if (st.kind == StageKind::layer_norm) {
            LayerNormForwardArgs<F> a{};
            a.y = y, a.x = in, a.N = nb, a.C = st.out, a.epsilon = st.epsilon;
            a.mean = buf.scratch.data() + b0, a.rstd = buf.scratch.data() + B_ + b0;
            a.gamma = st.gamma.empty() ? nullptr : st.gamma.data();
            a.beta = st.beta.empty() ? nullptr : st.beta.data();
            lks.layer_norm_forward(a);
            continue;
          }
          if (st.kind == StageKind::relu) {
            relu_rows(st, in, nb, y);
            continue;
          }
          if (st.kind == StageKind::unit_norm || st.kind == StageKind::rms_norm) {
            scale_rows(st, in, nb, y);
            continue;
          }
          if (st.kind == StageKind::batch_norm) {
            BatchNormArgs<F> a{};
            a.y = y, a.x = in, a.N = nb, a.C = st.out, a.n_all = nb;
            a.scale = st.scale.data(), a.shift = st.shift.data();
            lks.batch_norm_apply(a);
            continue;
          }
          if (st.kind == StageKind::dense) {
            // y = x K + b: the bias rows first, then the product added onto them
            for (Index b = 0; b < nb; ++b) {
              if (bias != nullptr)
                std::copy(bias, bias + st.out, y + b * st.out);
              else
                std::fill(y + b * st.out, y + (b + 1) * st.out, F(0));
            }
            gemm(nb, st.out, st.in, in, st.kernel.data(), F(1), y);
          } else {
            std::copy(in, in + nb * st.in, y);
          }
          activate_rows(st.act, y, nb, st.out, st.alpha);
          continue;
        }
      }
      if (s + 1 == stages_.size()) std::copy(h, h + nb * H, out + b0 * H);  // its new state
    }
  }

  // A relu stage on nb rows: x (nb, out) -> y (nb, out).
  static void relu_rows(const StageSpec<F>& st, const F* x, Index nb, F* y) {
    const Index n = st.out;
    const bool per_feature = st.slope.size() > 1, capped = !std::isinf(st.max_value);
    for (Index b = 0; b < nb; ++b)
      for (Index j = 0; j < n; ++j) {
        const F z = x[b * n + j], slope = st.slope[per_feature ? std::size_t(j) : 0];
        const bool follows = st.inclusive ? z >= st.threshold : z > st.threshold;
        F v = follows ? z : slope * (z - st.threshold);
        if (capped && st.max_value < v) v = st.max_value;  // (a NaN stays NaN)
        y[b * n + j] = v;
      }
  }

  // A unit_norm or rms_norm stage on nb rows: each row times 1 / its root (sum or mean of
  // squares), rms_norm then times scale.
  static void scale_rows(const StageSpec<F>& st, const F* x, Index nb, F* y) {
    const Index n = st.out;
    const bool unit = st.kind == StageKind::unit_norm;
    for (Index b = 0; b < nb; ++b) {
      const F* row = x + b * n;
      F* out = y + b * n;
      F squares = F(0);
      for (Index j = 0; j < n; ++j) squares += row[j] * row[j];
      const F inv = unit ? F(1) / std::sqrt(std::max(squares, F(1e-12)))
                         : F(1) / std::sqrt(squares / F(n) + st.epsilon);
      if (unit)
        for (Index j = 0; j < n; ++j) out[j] = row[j] * inv;
      else
        for (Index j = 0; j < n; ++j) out[j] = row[j] * inv * st.scale[std::size_t(j)];
    }
  }

  // A conv1d stage on rows [b0, b0 + nb): x (nb, C) into each row's ring after the newest
  // slot, then y (nb, O) = act(bias + taps W). `cols`: (nb, K C / groups) scratch.
  static void conv_rows(const StageSpec<F>& st, Buffers& buf, Index b0, Index nb, const F* x,
                        F* cols, F* y) {
    const Index C = st.in, O = st.out, K = st.taps, span = span_of(st);
    const Index Cg = C / st.groups, Og = O / st.groups, KC = K * Cg;
    const Index slot = (buf.newest + 1) % span;  // this step's: over the oldest input
    for (Index b = 0; b < nb; ++b) {
      F* ring = buf.ring.data() + (b0 + b) * span * C;
      std::copy(x + b * C, x + (b + 1) * C, ring + slot * C);
      if (!st.bias.empty())
        std::copy(st.bias.begin(), st.bias.end(), y + b * O);
      else
        std::fill(y + b * O, y + (b + 1) * O, F(0));
    }
    for (Index g = 0; g < st.groups; ++g) {
      for (Index b = 0; b < nb; ++b) {
        const F* ring = buf.ring.data() + (b0 + b) * span * C;
        for (Index k = 0; k < K; ++k) {  // tap k reads the input (K - 1 - k) d steps back
          const Index back = (K - 1 - k) * st.dilation;
          const F* src = ring + ((slot - back + span) % span) * C + g * Cg;
          std::copy(src, src + Cg, cols + b * KC + k * Cg);
        }
      }
      // the kernel (K, Cg, O) is a (K Cg, O) matrix; group g's block: columns g Og..
      gemm(nb, Og, KC, cols, KC, st.kernel.data() + g * Og, O, F(1), y + g * Og, O);
    }
    activate_rows(st.act, y, nb, O);
  }

  std::vector<StageSpec<F>> stages_;
  std::vector<Buffers> buffers_;
  Index B_;
  Index in_;  // the model's input width (1 with an embedding: one token id)
  Index vocabulary_ = 0;
  double flops_ = 0.0;
};

}  // namespace stream
}  // namespace fastrnn
