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

// Gate math of one (b, t): activates z (4H, + bias) in place and writes c_t and h_t.
template <typename F>
inline void cell_forward(F* z, F* c, F* h, const F* c_prev, const F* bias, Index H) {
  using P = pk::Packet<F>;
  fused_row<F, 9, 6>(
      H, {z, z + H, z + 2 * H, z + 3 * H, at(bias, 0), at(bias, H), at(bias, 2 * H),
          at(bias, 3 * H), c_prev},
      {z, z + H, z + 2 * H, z + 3 * H, c, h}, [](const auto& ld, const auto& st) {
        using namespace Eigen::internal;
        const P i = pk::sigmoid(padd(ld(0), ld(4)));
        const P f = pk::sigmoid(padd(ld(1), ld(5)));
        const P g = pk::tanh(padd(ld(2), ld(6)));
        const P o = pk::sigmoid(padd(ld(3), ld(7)));
        const P ct = pmadd(f, ld(8), pmul(i, g));  // c_t = f c_{t-1} + i g
        st(0, i), st(1, f), st(2, g), st(3, o);
        st(4, ct);
        st(5, pmul(o, pk::tanh(ct)));  // h_t = o tanh(c_t)
      });
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

// Backward through the gate math of one (b, t). dh: gradient reaching h_t from step t+1 (and
// d_out from the output, if any); dc_io: gradient reaching c_t on entry, c_{t-1} on return.
// Writes dz (4H): the gradient of the pre-activations. Recomputes tanh(c_t), nothing else.
template <typename F>
inline void cell_backward(F* dz, F* dc_io, const F* dh, const F* d_out, const F* gate,
                          const F* c, const F* c_prev, Index H) {
  using P = pk::Packet<F>;
  fused_row<F, 9, 5>(
      H, {dh, d_out, dc_io, gate, gate + H, gate + 2 * H, gate + 3 * H, c, c_prev},
      {dz, dz + H, dz + 2 * H, dz + 3 * H, dc_io}, [](const auto& ld, const auto& st) {
        using namespace Eigen::internal;
        const P one = pk::one<P>();
        const P dh_t = padd(ld(0), ld(1));
        const P i = ld(3), f = ld(4);
        const P g = ld(5), o = ld(6);
        const P tc = pk::tanh(ld(7));
        // dc = dc_next + dh o (1 - tanh(c)^2): c_t feeds h_t and c_{t+1}
        const P dc = pmadd(pmul(dh_t, o), psub(one, pmul(tc, tc)), ld(2));
        st(0, pmul(pmul(dc, g), pmul(i, psub(one, i))));               // d z_i
        st(1, pmul(pmul(dc, ld(8)), pmul(f, psub(one, f))));  // d z_f
        st(2, pmul(pmul(dc, i), psub(one, pmul(g, g))));               // d z_g
        st(3, pmul(pmul(dh_t, tc), pmul(o, psub(one, o))));            // d z_o
        st(4, pmul(dc, f));                                            // to c_{t-1}
      });
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
      const F* c_prev = t > 0 ? a.cells + (r - 1) * H : at(a.c0, b * H);
      cell_backward(a.d_gates + r * G, a.d_c + b * H, a.d_h + b * H, at(a.d_outputs, r * H),
                    a.gates + r * G, a.cells + r * H, c_prev, H);
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
  if (a.d_x != nullptr) input_gradient(a.d_x, a.d_gates, a.kernel, B * T, a.I, G);
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
