// ======================================================================================
// Layer-normalized SimpleRNN, LSTM and GRU, forward and backward (layer normalization of the
// recurrent pre-activations, Ba et al. 2016; Hands-On ML's LNSimpleRNNCell).
//   B batch, T time, I inputs, H hidden units, `gates` 1 / 4 / 3, G = gates * H.
// Every gate block k (H units) of a row's pre-activations a = x_t K + (m * h_{t-1}) U + b is
// normalized over its units, with learned gamma, beta (G,):
//   mean = sum_j a_j / H;  var = sum_j (a_j - mean)^2 / H;  rstd = 1 / sqrt(var + epsilon)
//   xhat = (a - mean) rstd;  n = xhat gamma_k + beta_k
// SimpleRNN: h_t = act(n).   LSTM: the plain cell's gate math on n (gates i, f, c, o), the
// same lines as lstm::cell_forward / cell_backward, run inside the normalization's passes.
// GRU (reset_after; xz = x_t K + b_in, hz = (m * h_{t-1}) U + b_rec):
//   z, r = sigmoid(n of a_zr = xz_zr + hz_zr);  cand = tanh(n of a_h = xz_h + r * hz_h)
//   h_t = z h_{t-1} + (1 - z) cand
// Backward through one block, with g = d_n gamma:
//   d_a = rstd (g - mean(g) - xhat mean(g xhat));  d_gamma += d_n xhat;  d_beta += d_n
// The tape is the plain cell's (outputs; LSTM gates and cells; GRU gates and hz_h) plus xhat
// (B, T, G) and rstd (B, T, gates), so backward recomputes only what the plain cell does
// (tanh(c_t)). The input projection of all steps is one GEMM, into xhat; each step adds
// h_{t-1} U there (step_product, as the plain cells) and normalizes each row in place.
// Backward leaves d a in the plain cell's gate-gradient buffers, so d_x and the weight
// gradients are the plain cell's (backward_inputs, backward_weights).
// Threads: by batch rows only (a row's normalization needs all of its H units), so every
// call here computes all units (the split fields are not used).
// ======================================================================================
#pragma once
#include <array>
#include <cmath>

#include "gru.hpp"
#include "lstm.hpp"
#include "simple_rnn.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace ln_rnn {

// The per-row work is packet loops (row_pass: a row of H units is ceil(H / lanes) packets, the
// last one's missing lanes read as zeros) over all gate blocks of a row at once, two passes
// forward and two backward, each value loaded once a pass, the cell's gate math inside them:
// at H = 20 the row's Eigen expressions (seven passes a block, a scalar tail each) cost twice
// the plain cell's step. The rows of a step go in chunks of 16, each pass over every row of
// the chunk before the next, so that the rows' dependent scalar work (reductions, a square
// root, divisions) overlaps: measured, SimpleRNN and LSTM forward at 32x50x1x20 went from
// 1.8x to 1.5x the plain cell's time, GRU from 1.8x to 1.6x.
namespace act {  // SimpleRNN's activation, applied to n in the last forward pass
struct Identity {
  template <typename P>
  EIGEN_ALWAYS_INLINE P operator()(const P& x) const { return x; }
};
struct Tanh {
  template <typename P>
  EIGEN_ALWAYS_INLINE P operator()(const P& x) const { return pk::tanh(x); }
};
struct Relu {
  template <typename P>
  EIGEN_ALWAYS_INLINE P operator()(const P& x) const {
    return Eigen::internal::pmax(x, Eigen::internal::pzero(x));
  }
};
}  // namespace act

// K consecutive gate blocks (H apart) of one row: a (K H) holds the pre-activations without
// the bias on entry (bias may be nullptr), xhat on return; rstd (K) receives each block's
// 1 / std. Two passes: the first (block_sums) adds the bias and sums each block's values,
// shifted by its first value (v - v_0: the shifted-data variance, accurate unless the spread is
// tiny next to how far v_0 lies from the mean), the second (normalize_write) normalizes and
// hands every packet's n = xhat gamma + beta of the K blocks to the cell's gate math,
// epilogue(n, ld, st): ld(i) loads packet i of `extra_in`, st(i, p) stores to `extra_out`, in
// the same pass. Between them, block_moments: the mean and 1 / std of each block.
template <typename F, int K>
struct BlockSums {
  F shift[K], s1[K], s2[K];  // v_0, sum (v - v_0), sum (v - v_0)^2
};

template <typename F, int K>
EIGEN_ALWAYS_INLINE BlockSums<F, K> block_sums(F* a, const F* bias, Index H) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  std::array<const F*, 2 * K> in{};
  std::array<F*, K> sums_out{};
  BlockSums<F, K> out;
  P shift[K], s1[K], s2[K];
  for (int k = 0; k < K; ++k) {
    in[k] = a + k * H, in[K + k] = at(bias, k * H), sums_out[k] = a + k * H;
    out.shift[k] = a[k * H] + (bias != nullptr ? bias[k * H] : F(0));
    shift[k] = pset1<P>(out.shift[k]);
    s1[k] = s2[k] = pset1<P>(F(0));
  }
  Index left = H;  // units not yet passed: the last packet's padding must not count
  row_pass<F, 2 * K, K>(H, in, sums_out, [&](const auto& ld, const auto& st) {
    for (int k = 0; k < K; ++k) {
      const P v = padd(ld(k), ld(K + k));  // a + b
      const P d = keep_lanes(psub(v, shift[k]), left);
      st(k, v);
      s1[k] = padd(s1[k], d);
      s2[k] = pmadd(d, d, s2[k]);
    }
    left -= pk::lanes<F>;
  });
  for (int k = 0; k < K; ++k) out.s1[k] = predux(s1[k]), out.s2[k] = predux(s2[k]);
  return out;
}

template <typename F, int K>
EIGEN_ALWAYS_INLINE void block_moments(const BlockSums<F, K>& s, Index H, F epsilon, F* mean,
                                       F* rstd) {
  const F inv_h = F(1) / F(H);
  for (int k = 0; k < K; ++k) {
    const F var = std::max(F(0), (s.s2[k] - s.s1[k] * s.s1[k] * inv_h) * inv_h);
    rstd[k] = F(1) / std::sqrt(var + epsilon);
    mean[k] = s.shift[k] + s.s1[k] * inv_h;
  }
}

template <typename F, int K, std::size_t NX, std::size_t NY, typename Epilogue>
EIGEN_ALWAYS_INLINE void normalize_write(F* a, const F* gamma, const F* beta, const F* mean,
                                         const F* rstd, Index H,
                                         const std::array<const F*, NX>& extra_in,
                                         const std::array<F*, NY>& extra_out,
                                         const Epilogue& epilogue) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  constexpr std::size_t NI = 3 * K + NX, NO = K + NY;
  std::array<const F*, NI> in{};
  std::array<F*, NO> out{};
  P mp[K], rp[K];
  for (int k = 0; k < K; ++k) {
    mp[k] = pset1<P>(mean[k]), rp[k] = pset1<P>(rstd[k]);
    in[k] = a + k * H, in[K + k] = gamma + k * H, in[2 * K + k] = beta + k * H;
    out[k] = a + k * H;
  }
  for (std::size_t i = 0; i < NX; ++i) in[3 * K + i] = extra_in[i];
  for (std::size_t i = 0; i < NY; ++i) out[K + i] = extra_out[i];
  row_pass<F, NI, NO>(H, in, out, [&](const auto& ld, const auto& st) {
    P n[K];
    for (int k = 0; k < K; ++k) {
      const P xhat = pmul(psub(ld(k), mp[k]), rp[k]);
      n[k] = pmadd(xhat, ld(K + k), ld(2 * K + k));
      st(k, xhat);
    }
    epilogue(n, [&](std::size_t i) { return ld(3 * K + i); },
             [&](std::size_t i, const P& v) { st(K + i, v); });
  });
}

// The rows [0, B) of a step, K blocks each, in chunks: every row's sums, then their moments,
// then write(b, mean, rstd) (normalize_write and the gate math), so that the rows' chains of
// dependent scalar work (the reductions, a square root, a division) overlap. pre(b): the row's
// pre-activations, rstd(b): where its K values go, skip(b): a masked row, left alone.
template <typename F, int K, typename Pre, typename Rstd, typename Skip, typename Write>
EIGEN_ALWAYS_INLINE void normalize_rows(Index B, Index H, const F* bias, F epsilon,
                                        const Pre& pre, const Rstd& rstd, const Skip& skip,
                                        const Write& write) {
  constexpr Index kChunk = 16;
  BlockSums<F, K> sums[kChunk];
  F mean[kChunk * K];
  for (Index b0 = 0; b0 < B; b0 += kChunk) {
    const Index nb = std::min(kChunk, B - b0);
    for (Index i = 0; i < nb; ++i)
      if (!skip(b0 + i)) sums[i] = block_sums<F, K>(pre(b0 + i), bias, H);
    for (Index i = 0; i < nb; ++i)
      if (!skip(b0 + i)) block_moments(sums[i], H, epsilon, mean + i * K, rstd(b0 + i));
    for (Index i = 0; i < nb; ++i)
      if (!skip(b0 + i)) write(b0 + i, mean + i * K, rstd(b0 + i));
  }
}

// Backward through K consecutive blocks (H apart) of one row, in two passes. The first
// (backward_sums): the cell's gate math, prologue(dn, ld, st), gives each packet's d_n of the K
// blocks from `extra_in` (ld(i)) and may store to `extra_out` (st(i, p)); d_n is stored to d
// (K H), d_n xhat added to d_gamma and d_n to d_beta (K H each), and the means of g = d_n gamma
// (the gradient of xhat) and of g xhat taken. The second (backward_write) turns d into d_a.
template <typename F, int K>
struct BackwardSums {
  F mean_g[K], mean_gx[K];
};

template <typename F, int K, std::size_t NX, std::size_t NY, typename Prologue>
EIGEN_ALWAYS_INLINE BackwardSums<F, K> backward_sums(F* d, const F* xhat, const F* gamma,
                                                     F* d_gamma, F* d_beta, Index H,
                                                     const std::array<const F*, NX>& extra_in,
                                                     const std::array<F*, NY>& extra_out,
                                                     const Prologue& prologue) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  constexpr std::size_t NI = 4 * K + NX, NO = 3 * K + NY;
  std::array<const F*, NI> in{};
  std::array<F*, NO> out{};
  P sum_g[K], sum_gx[K];
  for (int k = 0; k < K; ++k) {
    in[k] = xhat + k * H, in[K + k] = gamma + k * H;
    in[2 * K + k] = d_gamma + k * H, in[3 * K + k] = d_beta + k * H;
    out[k] = d + k * H, out[K + k] = d_gamma + k * H, out[2 * K + k] = d_beta + k * H;
    sum_g[k] = sum_gx[k] = pset1<P>(F(0));
  }
  for (std::size_t i = 0; i < NX; ++i) in[4 * K + i] = extra_in[i];
  for (std::size_t i = 0; i < NY; ++i) out[3 * K + i] = extra_out[i];
  row_pass<F, NI, NO>(H, in, out, [&](const auto& ld, const auto& st) {
    P dn[K];
    prologue(dn, [&](std::size_t i) { return ld(4 * K + i); },
             [&](std::size_t i, const P& v) { st(3 * K + i, v); });
    for (int k = 0; k < K; ++k) {
      const P xh = ld(k), g = pmul(dn[k], ld(K + k));
      st(k, dn[k]);
      st(K + k, pmadd(dn[k], xh, ld(2 * K + k)));
      st(2 * K + k, padd(dn[k], ld(3 * K + k)));
      sum_g[k] = padd(sum_g[k], g);
      sum_gx[k] = pmadd(g, xh, sum_gx[k]);
    }
  });
  BackwardSums<F, K> sums;
  for (int k = 0; k < K; ++k)
    sums.mean_g[k] = predux(sum_g[k]) / F(H), sums.mean_gx[k] = predux(sum_gx[k]) / F(H);
  return sums;
}

template <typename F, int K>
EIGEN_ALWAYS_INLINE void backward_write(F* d, const F* xhat, const F* rstd, const F* gamma,
                                        const BackwardSums<F, K>& sums, Index H) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  std::array<const F*, 3 * K> in{};
  std::array<F*, K> out{};
  P mean_g[K], mean_gx[K], rp[K];
  for (int k = 0; k < K; ++k) {
    mean_g[k] = pset1<P>(sums.mean_g[k]), mean_gx[k] = pset1<P>(sums.mean_gx[k]);
    rp[k] = pset1<P>(rstd[k]);
    in[k] = d + k * H, in[K + k] = xhat + k * H, in[2 * K + k] = gamma + k * H;
    out[k] = d + k * H;
  }
  // every a_j moves the mean and the variance: d_a = rstd (g - mean(g) - xhat mean(g xhat))
  row_pass<F, 3 * K, K>(H, in, out, [&](const auto& ld, const auto& st) {
    for (int k = 0; k < K; ++k) {
      const P g = pmul(ld(k), ld(2 * K + k));
      st(k, pmul(rp[k], psub(psub(g, mean_g[k]), pmul(ld(K + k), mean_gx[k]))));
    }
  });
}

// The rows [0, B) of a backward step in chunks, as normalize_rows: sums(b) (backward_sums) for
// every row of a chunk, then write(b, its sums) (backward_write); skip(b): a masked row.
template <typename F, int K, typename Skip, typename Sums, typename Write>
EIGEN_ALWAYS_INLINE void backward_rows(Index B, const Skip& skip, const Sums& sums,
                                       const Write& write) {
  constexpr Index kChunk = 16;
  BackwardSums<F, K> s[kChunk];
  for (Index b0 = 0; b0 < B; b0 += kChunk) {
    const Index nb = std::min(kChunk, B - b0);
    for (Index i = 0; i < nb; ++i)
      if (!skip(b0 + i)) s[i] = sums(b0 + i);
    for (Index i = 0; i < nb; ++i)
      if (!skip(b0 + i)) write(b0 + i, s[i]);
  }
}

// The input projection of every step, x (B*T, I) K (I, G), into pre (B*T, G).
template <typename F, typename Args>
inline void input_projection(const Args& a, Index G, F* pre) {
  gemm_rows(a.B * a.T, G, a.I, a.x, a.I, a.kernel, G, F(0), pre, G);
}

inline Units all_units(Index H) { return {0, H, true}; }

// ---------------------------------------------------------------------------- SimpleRNN
template <typename F>
FASTRNN_FLATTEN void simple_rnn_forward(const LnSimpleRnnForwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H;
  const Units u = all_units(H);
  F* pre = a.ln.xhat;  // (B, T, H): a = x K (+ h U) until normalized, then xhat
  input_projection(a, H, pre);
  for (Index t = 0; t < T; ++t) {
    Index ldh = H;
    const F* h_prev = state_into_step(t, a.outputs, a.h0, a.recurrent_mask, a.h_scratch, B, T,
                                      H, &ldh);
    if (h_prev != nullptr)  // a_t += h_{t-1} U
      step_product(a.recurrent_packed, a.recurrent_panels, u, 1, H, B, H, h_prev, ldh,
                   a.recurrent_kernel, F(1), pre + t * H, T * H);
    const auto rows = [&](const auto& activation) {  // h_t = act(n_t), into the outputs
      normalize_rows<F, 1>(
          B, H, a.bias, a.ln.epsilon, [&](Index b) { return pre + (b * T + t) * H; },
          [&](Index b) { return a.ln.rstd + b * T + t; }, [](Index) { return false; },
          [&](Index b, const F* mean, const F* rstd) {
            const Index r = b * T + t;
            normalize_write<F, 1>(pre + r * H, a.ln.gamma, a.ln.beta, mean, rstd, H,
                                  std::array<const F*, 0>{}, std::array<F*, 1>{a.outputs + r * H},
                                  [&](const auto* n, const auto&, const auto& st) {
                                    st(0, activation(n[0]));
                                  });
          });
    };
    switch (a.activation) {  // chosen once a step, inlined into the loop over the rows
      case Activation::tanh: rows(act::Tanh{}); break;
      case Activation::relu: rows(act::Relu{}); break;
      case Activation::linear: rows(act::Identity{}); break;
    }
    if (a.step_mask != nullptr) hold_masked_outputs(a.step_mask, t, B, T, H, u, a.outputs, a.h0);
  }
  copy_units(a.h_last, H, a.outputs + (T - 1) * H, T * H, u, B);
}

// The time loop of backward, on a slice of rows: d a (in d_pre) for every step, d_h0, each
// row's d_gamma and d_beta; then the slice's d_x and stacked rows.
template <typename F>
FASTRNN_FLATTEN void simple_rnn_backward_steps(const LnSimpleRnnBackwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H;
  const Units u = all_units(H);
  std::fill(a.ln.d_gamma_beta, a.ln.d_gamma_beta + B * 2 * H, F(0));
  init_carry_units(a.d_h, a.d_h_last, u, B, H);  // gradient reaching h_t from later steps
  for (Index t = T - 1; t >= 0; --t) {
    const Index r = t * H;  // row b of step t: (b * T + t) * H
    // d_n = (d_h + d_out) act'(n), written through h = act(n)
    simple_rnn::activation_grad_step(a.d_pre + r, T * H, B, a.d_h, H, at(a.d_outputs, r),
                                     a.outputs + r, H, a.activation);
    backward_rows<F, 1>(
        B, [&](Index b) { return masked_step(a.step_mask, b, T, t); },
        [&](Index b) {
          F* d = a.d_pre + (b * T + t) * H;
          F* d_gamma = a.ln.d_gamma_beta + b * 2 * H;
          return backward_sums<F, 1>(d, a.ln.xhat + (b * T + t) * H, a.ln.gamma, d_gamma,
                                     d_gamma + H, H, std::array<const F*, 1>{d},
                                     std::array<F*, 0>{},
                                     [](auto* dn, const auto& ld, const auto&) { dn[0] = ld(0); });
        },
        [&](Index b, const BackwardSums<F, 1>& sums) {
          const Index row = b * T + t;
          backward_write<F, 1>(a.d_pre + row * H, a.ln.xhat + row * H, a.ln.rstd + row,
                               a.ln.gamma, sums, H);
        });
    if (a.step_mask != nullptr)  // masked rows: no d a, d_h passes on (kept in d_h_masked_rows)
      hold_masked_rows(a.step_mask, t, B, T, H, u, 1, a.d_pre, static_cast<F*>(nullptr),
                       a.d_h_masked_rows, a.d_h, a.d_outputs);
    if (cut_before(t, T, a.truncate)) {  // h_{t-1} is a constant here
      std::fill(a.d_h, a.d_h + B * H, F(0));
      continue;
    }
    // d_h_{t-1} = (d a_t U^T) * m
    step_product(a.recurrent_t_packed, a.recurrent_t_panels, u, 1, H, B, H, a.d_pre + r, T * H,
                 a.recurrent_kernel_t, F(0), a.d_h, H);
    if (a.recurrent_mask != nullptr) mask_units(a.d_h, a.recurrent_mask, u, B, H);
    if (a.step_mask != nullptr)
      restore_masked_rows(a.step_mask, t, B, T, H, u, a.d_h, a.d_h_masked_rows);
  }
  copy_units(a.d_h0, H, a.d_h, H, u, B);
  simple_rnn::backward_inputs<F>(a);
}

template <typename F>
void simple_rnn_backward_inputs(const LnSimpleRnnBackwardArgs<F>& a) {
  simple_rnn::backward_inputs<F>(a);
}
template <typename F>
void simple_rnn_backward_weights(const LnSimpleRnnBackwardArgs<F>& a) {
  simple_rnn::backward_weights<F>(a);
}

// ---------------------------------------------------------------------------- LSTM
// One row (b, t) = r, its moments known: the four gate blocks normalized, then the plain cell's
// gate math (as lstm::cell_forward, which reads z from memory) on n in the same pass: writes
// the activated gates, c_t and h_t.
template <typename F>
EIGEN_ALWAYS_INLINE void lstm_row_forward(const LnLstmForwardArgs<F>& a, Index r, F* c,
                                          const F* c_prev, const F* mean, const F* rstd) {
  using P = pk::Packet<F>;
  const Index H = a.H, G = 4 * H;
  F* gate = a.gates + r * G;
  normalize_write<F, 4>(
      a.ln.xhat + r * G, a.ln.gamma, a.ln.beta, mean, rstd, H, std::array<const F*, 1>{c_prev},
      std::array<F*, 6>{gate, gate + H, gate + 2 * H, gate + 3 * H, c, a.outputs + r * H},
      [](const P* n, const auto& ld, const auto& st) {
        using namespace Eigen::internal;
        const P i = pk::sigmoid(n[0]), f = pk::sigmoid(n[1]);
        const P g = pk::tanh(n[2]), o = pk::sigmoid(n[3]);
        const P ct = pmadd(f, ld(0), pmul(i, g));  // c_t = f c_{t-1} + i g
        st(0, i), st(1, f), st(2, g), st(3, o), st(4, ct);
        st(5, pmul(o, pk::tanh(ct)));  // h_t = o tanh(c_t)
      });
}

// Backward of row b's step (b, t) = r, first pass: the plain cell's backward gate math (as
// lstm::cell_backward) gives d_n of the four gates and d_c carried to c_{t-1}, and the LN's
// backward takes its sums in the same pass.
template <typename F>
EIGEN_ALWAYS_INLINE BackwardSums<F, 4> lstm_row_backward(const LnLstmBackwardArgs<F>& a, Index b,
                                                         Index r, const F* c_prev) {
  using P = pk::Packet<F>;
  const Index H = a.H, G = 4 * H;
  const F* gate = a.gates + r * G;
  F* dc = a.d_c + b * H;
  F* d_gamma = a.ln.d_gamma_beta + b * 2 * G;
  return backward_sums<F, 4>(
      a.d_gates + r * G, a.ln.xhat + r * G, a.ln.gamma, d_gamma, d_gamma + G, H,
      std::array<const F*, 9>{a.d_h + b * H, at(a.d_outputs, r * H), dc, gate, gate + H,
                              gate + 2 * H, gate + 3 * H, a.cells + r * H, c_prev},
      std::array<F*, 1>{dc}, [](P* dn, const auto& ld, const auto& st) {
        using namespace Eigen::internal;
        const P one = pk::one<P>();
        const P dh = padd(ld(0), ld(1)), i = ld(3), f = ld(4), g = ld(5), o = ld(6);
        const P tc = pk::tanh(ld(7));
        // dc = dc_next + dh o (1 - tanh(c)^2): c_t feeds h_t and c_{t+1}
        const P dc_t = pmadd(pmul(dh, o), psub(one, pmul(tc, tc)), ld(2));
        dn[0] = pmul(pmul(dc_t, g), pmul(i, psub(one, i)));
        dn[1] = pmul(pmul(dc_t, ld(8)), pmul(f, psub(one, f)));
        dn[2] = pmul(pmul(dc_t, i), psub(one, pmul(g, g)));
        dn[3] = pmul(pmul(dh, tc), pmul(o, psub(one, o)));
        st(0, pmul(dc_t, f));  // to c_{t-1}
      });
}

template <typename F>
FASTRNN_FLATTEN void lstm_forward(const LnLstmForwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 4 * H;
  const Units u = all_units(H);
  F* pre = a.ln.xhat;  // (B, T, 4H): a until normalized, then xhat
  input_projection(a, G, pre);
  for (Index t = 0; t < T; ++t) {
    Index ldh = H;
    const F* h_prev = state_into_step(t, a.outputs, a.h0, a.recurrent_mask, a.h_scratch, B, T,
                                      H, &ldh);
    if (h_prev != nullptr)  // a_t += h_{t-1} U
      step_product(a.recurrent_packed, a.recurrent_panels, u, 4, H, B, H, h_prev, ldh,
                   a.recurrent_kernel, F(1), pre + t * G, T * G);
    const auto c_prev = [&](Index b) -> const F* {
      return t > 0 ? a.cells + (b * T + t - 1) * H : at(a.c0, b * H);
    };
    for (Index b = 0; b < B; ++b) {
      if (!masked_step(a.step_mask, b, T, t)) continue;  // (h, c) carried over the masked step
      const Index r = b * T + t;
      hold_state(a.outputs + r * H, t > 0 ? a.outputs + (r - 1) * H : at(a.h0, b * H), u);
      hold_state(a.cells + r * H, c_prev(b), u);
    }
    normalize_rows<F, 4>(
        B, H, a.bias, a.ln.epsilon, [&](Index b) { return pre + (b * T + t) * G; },
        [&](Index b) { return a.ln.rstd + (b * T + t) * 4; },
        [&](Index b) { return masked_step(a.step_mask, b, T, t); },
        [&](Index b, const F* mean, const F* rstd) {
          const Index r = b * T + t;
          lstm_row_forward(a, r, a.cells + r * H, c_prev(b), mean, rstd);
        });
  }
  copy_units(a.h_last, H, a.outputs + (T - 1) * H, T * H, u, B);
  copy_units(a.c_last, H, a.cells + (T - 1) * H, T * H, u, B);
}

template <typename F>
FASTRNN_FLATTEN void lstm_backward_steps(const LnLstmBackwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 4 * H;
  const Units u = all_units(H);
  std::fill(a.ln.d_gamma_beta, a.ln.d_gamma_beta + B * 2 * G, F(0));
  init_carry_units(a.d_h, a.d_h_last, u, B, H);  // gradients reaching h_t and c_t
  init_carry_units(a.d_c, a.d_c_last, u, B, H);
  for (Index t = T - 1; t >= 0; --t) {
    backward_rows<F, 4>(
        B, [&](Index b) { return masked_step(a.step_mask, b, T, t); },  // d_c passes on as is
        [&](Index b) {
          const Index r = b * T + t;
          return lstm_row_backward(a, b, r, t > 0 ? a.cells + (r - 1) * H : at(a.c0, b * H));
        },
        [&](Index b, const BackwardSums<F, 4>& sums) {
          const Index r = b * T + t;
          backward_write<F, 4>(a.d_gates + r * G, a.ln.xhat + r * G, a.ln.rstd + r * 4,
                               a.ln.gamma, sums, H);
        });
    if (a.step_mask != nullptr)  // masked rows: no d a, (d_h, d_c) pass on (d_h in d_h_masked_rows)
      hold_masked_rows(a.step_mask, t, B, T, H, u, 4, a.d_gates, static_cast<F*>(nullptr),
                       a.d_h_masked_rows, a.d_h, a.d_outputs);
    if (cut_before(t, T, a.truncate)) {  // (h, c) entering step t are constants
      std::fill(a.d_h, a.d_h + B * H, F(0));
      std::fill(a.d_c, a.d_c + B * H, F(0));
      continue;
    }
    // d_h_{t-1} = (d a_t U^T) * m
    step_product(a.recurrent_t_packed, a.recurrent_t_panels, u, 1, H, B, G, a.d_gates + t * G,
                 T * G, a.recurrent_kernel_t, F(0), a.d_h, H);
    if (a.recurrent_mask != nullptr) mask_units(a.d_h, a.recurrent_mask, u, B, H);
    if (a.step_mask != nullptr)
      restore_masked_rows(a.step_mask, t, B, T, H, u, a.d_h, a.d_h_masked_rows);
  }
  copy_units(a.d_h0, H, a.d_h, H, u, B);
  copy_units(a.d_c0, H, a.d_c, H, u, B);
  lstm::backward_inputs<F>(a);
}

template <typename F>
void lstm_backward_inputs(const LnLstmBackwardArgs<F>& a) {
  lstm::backward_inputs<F>(a);
}
template <typename F>
void lstm_backward_weights(const LnLstmBackwardArgs<F>& a) {
  lstm::backward_weights<F>(a);
}

// ---------------------------------------------------------------------------- GRU
// The gate math of one (b, t) = r, in three parts with the moments of its LN groups between
// them (so that gru_forward can run each part over a chunk of rows, as normalize_rows). xa
// (3H): xz (no bias) on entry, xhat on return; hz (3H): this row of h_{t-1} U (no bias).
// Part one: a_zr = xz_zr + hz_zr + both biases, and its sums.
template <typename F>
EIGEN_ALWAYS_INLINE BlockSums<F, 2> gru_zr_sums(const LnGruForwardArgs<F>& a, F* xa,
                                                const F* hz) {
  const Index H = a.H, G = 3 * H;
  row_pass<F, 4, 1>(2 * H, {xa, hz, a.bias, at(a.bias, G)}, {xa},
                    [](const auto& ld, const auto& st) {
                       using namespace Eigen::internal;
                       st(0, padd(padd(ld(0), ld(1)), padd(ld(2), ld(3))));
                    });
  return block_sums<F, 2>(xa, nullptr, H);
}

// Part two, the zr moments known: z, r = sigmoid(n) into gate; hz_h = hz_h + b_rec into hzh;
// a_h = xz_h + b_in + r hz_h, and its sums.
template <typename F>
EIGEN_ALWAYS_INLINE BlockSums<F, 1> gru_h_sums(const LnGruForwardArgs<F>& a, F* xa, const F* hz,
                                               F* gate, F* hzh, const F* mean,
                                               const F* rstd) {
  using P = pk::Packet<F>;
  const Index H = a.H, G = 3 * H;
  normalize_write<F, 2>(xa, a.ln.gamma, a.ln.beta, mean, rstd, H, std::array<const F*, 0>{},
                        std::array<F*, 2>{gate, gate + H},
                        [](const P* n, const auto&, const auto& st) {
                          st(0, pk::sigmoid(n[0])), st(1, pk::sigmoid(n[1]));  // z, r
                        });
  row_pass<F, 5, 2>(H, {xa + 2 * H, hz + 2 * H, at(a.bias, 2 * H), at(a.bias, G + 2 * H),
                         gate + H},
                    {xa + 2 * H, hzh}, [](const auto& ld, const auto& st) {
                       using namespace Eigen::internal;
                       const P hz_h = padd(ld(1), ld(3));
                       st(0, pmadd(ld(4), hz_h, padd(ld(0), ld(2))));  // a_h = xz_h + r hz_h
                       st(1, hz_h);
                    });
  return block_sums<F, 1>(xa + 2 * H, nullptr, H);
}

// Part three, the h moments known: cand = tanh(n_h) into gate, h_t = z h_{t-1} + (1 - z) cand.
template <typename F>
EIGEN_ALWAYS_INLINE void gru_h_write(const LnGruForwardArgs<F>& a, F* xa, F* gate, F* h,
                                     const F* h_prev, const F* mean, const F* rstd) {
  using P = pk::Packet<F>;
  const Index H = a.H;
  normalize_write<F, 1>(xa + 2 * H, a.ln.gamma + 2 * H, a.ln.beta + 2 * H, mean, rstd, H,
                        std::array<const F*, 2>{gate, h_prev},
                        std::array<F*, 2>{gate + 2 * H, h},
                        [](const P* n, const auto& ld, const auto& st) {
                          using namespace Eigen::internal;
                          const P cand = pk::tanh(n[0]);
                          st(0, cand);
                          st(1, pmadd(ld(0), psub(ld(1), cand), cand));
                        });
}

template <typename F>
FASTRNN_FLATTEN void gru_forward(const LnGruForwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 3 * H;
  const Units u = all_units(H);
  F* pre = a.ln.xhat;  // (B, T, 3H): xz until normalized, then xhat
  input_projection(a, G, pre);
  constexpr Index kChunk = 16;
  BlockSums<F, 2> zr[kChunk];
  BlockSums<F, 1> hs[kChunk];
  F mean[kChunk * 3];
  for (Index t = 0; t < T; ++t) {
    Index ldh = H;
    const F* h_rec = state_into_step(t, a.outputs, a.h0, a.recurrent_mask, a.h_scratch, B, T,
                                     H, &ldh);
    if (h_rec == nullptr)
      zero_gate_columns(u, 3, H, B, a.hz, G);
    else  // hz = h U
      step_product(a.recurrent_packed, a.recurrent_panels, u, 3, H, B, H, h_rec, ldh,
                   a.recurrent_kernel, F(0), a.hz, G);
    const auto h_prev = [&](Index b) -> const F* {
      return t > 0 ? a.outputs + (b * T + t - 1) * H : at(a.h0, b * H);
    };
    const auto masked = [&](Index b) { return masked_step(a.step_mask, b, T, t); };
    for (Index b = 0; b < B; ++b)  // h carried over the masked steps
      if (masked(b)) hold_state(a.outputs + (b * T + t) * H, h_prev(b), u);
    // The rows in chunks, each part over all rows of a chunk (see normalize_rows).
    for (Index b0 = 0; b0 < B; b0 += kChunk) {
      const Index nb = std::min(kChunk, B - b0);
      for (Index i = 0; i < nb; ++i)
        if (!masked(b0 + i))
          zr[i] = gru_zr_sums(a, pre + ((b0 + i) * T + t) * G, a.hz + (b0 + i) * G);
      for (Index i = 0; i < nb; ++i)
        if (!masked(b0 + i))
          block_moments(zr[i], H, a.ln.epsilon, mean + 3 * i, a.ln.rstd + ((b0 + i) * T + t) * 3);
      for (Index i = 0; i < nb; ++i) {
        if (masked(b0 + i)) continue;
        const Index r = (b0 + i) * T + t;
        hs[i] = gru_h_sums(a, pre + r * G, a.hz + (b0 + i) * G, a.gates + r * G, a.hz_h + r * H,
                           mean + 3 * i, a.ln.rstd + r * 3);
      }
      for (Index i = 0; i < nb; ++i)
        if (!masked(b0 + i))
          block_moments(hs[i], H, a.ln.epsilon, mean + 3 * i + 2,
                        a.ln.rstd + ((b0 + i) * T + t) * 3 + 2);
      for (Index i = 0; i < nb; ++i) {
        if (masked(b0 + i)) continue;
        const Index r = (b0 + i) * T + t;
        gru_h_write(a, pre + r * G, a.gates + r * G, a.outputs + r * H, h_prev(b0 + i),
                    mean + 3 * i + 2, a.ln.rstd + r * 3 + 2);
      }
    }
  }
  copy_units(a.h_last, H, a.outputs + (T - 1) * H, T * H, u, B);
}

// Backward through the gate math of one (b, t) = r, in four passes, each run over a chunk of
// rows before the next (see backward_rows). dh (H): the gradient reaching h_t (the output's
// d_out already added) on entry, its direct part reaching h_{t-1} (dh z) on return; h_prev may
// be nullptr (zeros). Writes d_xz, d_hz (3H each): the gradients of the input and recurrent
// sums; d_gamma_beta: this row's (2, 3H).
template <typename F>
struct GruRow {
  const LnGruBackwardArgs<F>& a;
  Index b, r;
  F* dh;
  const F* h_prev;
  F* dxz() const { return a.d_xz + r * 3 * a.H; }
  F* dhz() const { return a.d_hz + r * 3 * a.H; }
  const F* gate() const { return a.gates + r * 3 * a.H; }  // z, r, cand
  const F* xhat() const { return a.ln.xhat + r * 3 * a.H; }
  const F* rstd() const { return a.ln.rstd + r * 3; }
  F* d_gamma() const { return a.ln.d_gamma_beta + b * 6 * a.H; }
  F* d_beta() const { return d_gamma() + 3 * a.H; }
};

// d n_h: h = ... + (1 - z) cand, through the tanh; the candidate LN's sums.
template <typename F>
EIGEN_ALWAYS_INLINE BackwardSums<F, 1> gru_h_backward(const GruRow<F>& w) {
  using P = pk::Packet<F>;
  const Index H = w.a.H;
  return backward_sums<F, 1>(
      w.dxz() + 2 * H, w.xhat() + 2 * H, w.a.ln.gamma + 2 * H, w.d_gamma() + 2 * H,
      w.d_beta() + 2 * H, H, std::array<const F*, 3>{w.dh, w.gate(), w.gate() + 2 * H},
      std::array<F*, 0>{}, [](P* dn, const auto& ld, const auto&) {
        using namespace Eigen::internal;
        const P one = pk::one<P>(), cand = ld(2);
        dn[0] = pmul(pmul(ld(0), psub(one, ld(1))), psub(one, pmul(cand, cand)));
      });
}

// d a_h known: d n_z (h = cand + z (h_{t-1} - cand)) and d n_r (a_h = xz_h + r hz_h), via the
// sigmoids, and d hz_h; the zr LNs' sums.
template <typename F>
EIGEN_ALWAYS_INLINE BackwardSums<F, 2> gru_zr_backward(const GruRow<F>& w) {
  using P = pk::Packet<F>;
  const Index H = w.a.H;
  const F* gate = w.gate();
  return backward_sums<F, 2>(
      w.dxz(), w.xhat(), w.a.ln.gamma, w.d_gamma(), w.d_beta(), H,
      std::array<const F*, 7>{w.dxz() + 2 * H, gate + H, w.a.hz_h + w.r * H, w.dh, w.h_prev,
                              gate, gate + 2 * H},
      std::array<F*, 1>{w.dhz() + 2 * H}, [](P* dn, const auto& ld, const auto& st) {
        using namespace Eigen::internal;
        const P one = pk::one<P>(), d_ah = ld(0), rr = ld(1), z = ld(5);
        dn[0] = pmul(pmul(ld(3), psub(ld(4), ld(6))), pmul(z, psub(one, z)));
        dn[1] = pmul(pmul(d_ah, ld(2)), pmul(rr, psub(one, rr)));
        st(0, pmul(d_ah, rr));  // d hz_h
      });
}

// d a_zr known: z, r's xz and hz enter as a sum; h_{t-1} enters h_t directly, times z.
template <typename F>
EIGEN_ALWAYS_INLINE void gru_zr_write(const GruRow<F>& w, const BackwardSums<F, 2>& sums) {
  const Index H = w.a.H;
  F* dxz = w.dxz();
  F* dhz = w.dhz();
  backward_write<F, 2>(dxz, w.xhat(), w.rstd(), w.a.ln.gamma, sums, H);
  row_pass<F, 4, 3>(H, {dxz, dxz + H, w.dh, w.gate()}, {dhz, dhz + H, w.dh},
                    [](const auto& ld, const auto& st) {
                       using namespace Eigen::internal;
                       st(0, ld(0)), st(1, ld(1));
                       st(2, pmul(ld(2), ld(3)));
                    });
}

template <typename F>
FASTRNN_FLATTEN void gru_backward_steps(const LnGruBackwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 3 * H;
  const Units u = all_units(H);
  std::fill(a.ln.d_gamma_beta, a.ln.d_gamma_beta + B * 2 * G, F(0));
  init_carry_units(a.d_h, a.d_h_last, u, B, H);  // gradient reaching h_t from later steps
  constexpr Index kChunk = 16;
  BackwardSums<F, 1> hs[kChunk];
  BackwardSums<F, 2> zr[kChunk];
  for (Index t = T - 1; t >= 0; --t) {
    const auto row = [&](Index b) {
      const Index r = b * T + t;
      return GruRow<F>{a, b, r, a.d_h + b * H,
                       t > 0 ? a.outputs + (r - 1) * H : at(a.h0, b * H)};
    };
    const auto masked = [&](Index b) { return masked_step(a.step_mask, b, T, t); };
    for (Index b0 = 0; b0 < B; b0 += kChunk) {  // the rows in chunks, a pass at a time
      const Index nb = std::min(kChunk, B - b0);
      for (Index i = 0; i < nb; ++i) {
        if (masked(b0 + i)) continue;
        const GruRow<F> w = row(b0 + i);
        if (a.d_outputs != nullptr) Vec<F>(w.dh, H) += CVec<F>(a.d_outputs + w.r * H, H);
        hs[i] = gru_h_backward(w);
      }
      for (Index i = 0; i < nb; ++i) {
        if (masked(b0 + i)) continue;
        const GruRow<F> w = row(b0 + i);
        backward_write<F, 1>(w.dxz() + 2 * H, w.xhat() + 2 * H, w.rstd() + 2,
                             a.ln.gamma + 2 * H, hs[i], H);
        zr[i] = gru_zr_backward(w);
      }
      for (Index i = 0; i < nb; ++i)
        if (!masked(b0 + i)) gru_zr_write(row(b0 + i), zr[i]);
    }
    // Masked rows: no d_xz, d_hz; d_h passes on, and the product below adds nothing to it.
    if (a.step_mask != nullptr)
      hold_masked_rows(a.step_mask, t, B, T, H, u, 3, a.d_xz, a.d_hz, a.d_h, a.d_h,
                       a.d_outputs);
    if (cut_before(t, T, a.truncate)) {  // h entering step t is a constant
      std::fill(a.d_h, a.d_h + B * H, F(0));
      continue;
    }
    // d_h_{t-1} = dh z (already in d_h) + (d_hz_t U^T) * m
    const F* d_hz_t = a.d_hz + t * G;
    if (a.recurrent_mask == nullptr) {
      step_product(a.recurrent_t_packed, a.recurrent_t_panels, u, 1, H, B, G, d_hz_t, T * G,
                   a.recurrent_kernel_t, F(1), a.d_h, H);
    } else {
      step_product(a.recurrent_t_packed, a.recurrent_t_panels, u, 1, H, B, G, d_hz_t, T * G,
                   a.recurrent_kernel_t, F(0), a.d_h_rec, H);
      Vec<F>(a.d_h, B * H) += CVec<F>(a.d_h_rec, B * H) * CVec<F>(a.recurrent_mask, B * H);
    }
  }
  copy_units(a.d_h0, H, a.d_h, H, u, B);
  gru::backward_inputs<F>(a);
}

template <typename F>
void gru_backward_inputs(const LnGruBackwardArgs<F>& a) {
  gru::backward_inputs<F>(a);
}
template <typename F>
void gru_backward_weights(const LnGruBackwardArgs<F>& a) {
  gru::backward_weights<F>(a);
}

}  // namespace ln_rnn
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
