// ======================================================================================
// LSTM, forward and backward.   B batch, T time, I inputs, H hidden units, G = 4H.
// Keras layout and gate order i, f, c, o (the candidate "c" gate is called g below):
//   z = x_t K + (m * h_{t-1}) U + b
//   i = sigmoid(z_i)  f = sigmoid(z_f)  g = tanh(z_g)  o = sigmoid(z_o)
//   c_t = f * c_{t-1} + i * g           h_t = o * tanh(c_t)
// The tape keeps the activated gates (B, T, 4H) and the cells (B, T, H), so backward
// recomputes nothing but tanh(c_t).
// ======================================================================================
#pragma once
#include "common.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace lstm {

// Gate math of one (b, t): activates z in place and writes c_t and h_t.
template <typename F>
inline void cell_forward(F* z, F* c, F* h, const F* c_prev, const F* bias, Index H) {
  Vec<F> all(z, 4 * H);
  if (bias != nullptr) all += CVec<F>(bias, 4 * H);
  Vec<F>(z, 2 * H) = Vec<F>(z, 2 * H).logistic();  // i and f are adjacent
  Vec<F> i(z, H), f(z + H, H), g(z + 2 * H, H), o(z + 3 * H, H);
  g = g.tanh();
  o = o.logistic();
  Vec<F> ct(c, H);
  if (c_prev != nullptr)
    ct = f * CVec<F>(c_prev, H) + i * g;
  else
    ct = i * g;
  Vec<F>(h, H) = o * ct.tanh();
}

template <typename F>
void forward(const LstmForwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 4 * H;
  // x K for every step in one GEMM: gates (B*T, 4H) = x (B*T, I) K (I, 4H).
  gemm(false, false, B * T, G, a.I, F(1), a.x, a.I, a.kernel, G, F(0), a.gates, G);
  for (Index t = 0; t < T; ++t) {
    Index ldh = H;
    const F* h_prev = state_into_step(t, a.outputs, a.h0, a.recurrent_mask, a.h_scratch, B, T,
                                      H, &ldh);
    recurrent_gemm(a.gates + t * G, T * G, h_prev, ldh, a.recurrent_kernel, B, H, G, F(1));
    for (Index b = 0; b < B; ++b) {
      const Index r = b * T + t;
      const F* c_prev = t > 0 ? a.cells + (r - 1) * H : (a.c0 ? a.c0 + b * H : nullptr);
      cell_forward(a.gates + r * G, a.cells + r * H, a.outputs + r * H, c_prev, a.bias, H);
    }
  }
  for (Index b = 0; b < B; ++b) {
    const Index r = b * T + T - 1;
    std::memcpy(a.h_last + b * H, a.outputs + r * H, sizeof(F) * std::size_t(H));
    std::memcpy(a.c_last + b * H, a.cells + r * H, sizeof(F) * std::size_t(H));
  }
}

// Backward through the gate math of one (b, t). dh, dc: gradients reaching h_t and c_t;
// on return dc holds the gradient reaching c_{t-1}. dz receives d(pre-activations).
template <typename F>
inline void cell_backward(F* dz, F* dc_io, const F* dh_in, const F* gate, const F* c,
                          const F* c_prev, Index H) {
  CVec<F> i(gate, H), f(gate + H, H), g(gate + 2 * H, H), o(gate + 3 * H, H);
  CVec<F> dh(dh_in, H);
  Vec<F> dc(dc_io, H);
  const auto tc = CVec<F>(c, H).tanh().eval();
  dc += dh * o * (F(1) - tc * tc);
  Vec<F>(dz, H) = dc * g * i * (F(1) - i);                                     // d z_i
  if (c_prev != nullptr)
    Vec<F>(dz + H, H) = dc * CVec<F>(c_prev, H) * f * (F(1) - f);             // d z_f
  else
    Vec<F>(dz + H, H).setZero();
  Vec<F>(dz + 2 * H, H) = dc * i * (F(1) - g * g);                             // d z_g
  Vec<F>(dz + 3 * H, H) = dh * tc * o * (F(1) - o);                            // d z_o
  dc *= f;                                                                      // to c_{t-1}
}

// The time loop of backward, then d_x and the states entering each step (h_prev): d_gates for every step, d_h0 and d_c0. Rows are independent, so
// the caller may run it on batch slices in parallel.
template <typename F>
void backward_steps(const LstmBackwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 4 * H;
  init_carry(a.d_h, a.d_h_last, B * H);
  init_carry(a.d_c, a.d_c_last, B * H);
  for (Index t = T - 1; t >= 0; --t) {
    for (Index b = 0; b < B; ++b) {
      const Index r = b * T + t;
      Vec<F> dh(a.d_h + b * H, H);
      if (a.d_outputs != nullptr) dh += CVec<F>(a.d_outputs + r * H, H);
      const F* c_prev = t > 0 ? a.cells + (r - 1) * H : (a.c0 ? a.c0 + b * H : nullptr);
      cell_backward(a.d_gates + r * G, a.d_c + b * H, a.d_h + b * H, a.gates + r * G,
                    a.cells + r * H, c_prev, H);
    }
    if (cut_before(t, T, a.truncate)) {  // (h, c) entering step t are constants
      std::fill(a.d_h, a.d_h + B * H, F(0));
      std::fill(a.d_c, a.d_c + B * H, F(0));
      continue;
    }
    // d_h_{t-1} = (dz_t U^T) * m: the only product on the critical path.
    gemm(false, true, B, H, G, F(1), a.d_gates + t * G, T * G, a.recurrent_kernel, G, F(0),
         a.d_h, H);
    if (a.recurrent_mask != nullptr) Vec<F>(a.d_h, B * H) *= CVec<F>(a.recurrent_mask, B * H);
  }
  std::memcpy(a.d_h0, a.d_h, sizeof(F) * std::size_t(B * H));
  std::memcpy(a.d_c0, a.d_c, sizeof(F) * std::size_t(B * H));
  gather_previous_states(a.h_prev, a.outputs, a.h0, a.recurrent_mask, B, T, H);
  input_gradient(a.d_x, a.d_gates, a.kernel, B * T, a.I, G);
}

// After the time loop, over the whole batch: columns [g_begin, g_end) of the weight gradients.
template <typename F>
void backward_weights(const LstmBackwardArgs<F>& a) {
  const Index rows = a.B * a.T, G = 4 * a.H;
  weight_gradients(a.d_kernel, a.d_recurrent_kernel, a.x, a.h_prev, a.d_gates, a.d_gates, rows,
                   a.I, a.H, G, a.g_begin, a.g_end);
  column_sums(a.d_bias, a.d_gates, rows, G, a.g_begin, a.g_end);
}

}  // namespace lstm
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
