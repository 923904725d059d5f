// ======================================================================================
// GRU, forward and backward.   B batch, T time, I inputs, H hidden units, G = 3H.
// Keras reset_after=True layout (the form PyTorch uses), gate order z, r, h;
// bias (2, 3H) = [input bias b_in; recurrent bias b_rec]:
//   xz = x_t K + b_in                  hz = (m * h_{t-1}) U + b_rec
//   z = sigmoid(xz_z + hz_z)           r = sigmoid(xz_r + hz_r)
//   n = tanh(xz_h + r * hz_h)          h_t = z * h_{t-1} + (1 - z) * n
// One recurrent GEMM per step ("linear before reset"). The tape keeps z, r, n (B, T, 3H)
// and hz_h (B, T, H).
// ======================================================================================
#pragma once
#include "packed_gemm.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace gru {

// Gate math of `units` units of one (b, t), gate blocks H apart. gate: xz on entry (no
// bias), z r n on return; hz: this row of the recurrent GEMM (no bias); writes hz_h (with
// bias) and h_t.
template <typename F>
EIGEN_ALWAYS_INLINE void cell_forward(F* gate, F* hzh_out, F* h, const F* hz, const F* h_prev,
                                      const F* bias, Index units, Index H) {
  using P = pk::Packet<F>;
  row_pass<F, 13, 5>(
      units, {gate, gate + H, gate + 2 * H, hz, hz + H, hz + 2 * H, at(bias, 0), at(bias, H),
          at(bias, 2 * H), at(bias, 3 * H), at(bias, 4 * H), at(bias, 5 * H), h_prev},
      {gate, gate + H, gate + 2 * H, hzh_out, h}, [](const auto& ld, const auto& st) {
        using namespace Eigen::internal;
        const P z = pk::sigmoid(padd(padd(ld(0), ld(3)),
                                     padd(ld(6), ld(9))));
        const P r = pk::sigmoid(padd(padd(ld(1), ld(4)),
                                     padd(ld(7), ld(10))));
        const P hzh = padd(ld(5), ld(11));
        const P n = pk::tanh(pmadd(r, hzh, padd(ld(2), ld(8))));
        st(0, z), st(1, r), st(2, n), st(3, hzh);
        st(4, pmadd(z, psub(ld(12), n), n));  // z h_{t-1} + (1-z) n
      });
}

// With a tape, gates and hz_h hold every step, (B, T, 3H) and (B, T, H); without (inference,
// a.no_tape), they are one step's scratch, (B, 3H) and (B, H), and the input projection is done
// step by step, so memory beyond the outputs is O(B * H).
template <typename F>
void forward(const GruForwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 3 * H;
  const Units u = units_of(a.split, H);
  const bool step_gates = a.no_tape && !a.project_all;  // gates hold one step
  const Index gb = step_gates ? G : T * G, gt = step_gates ? 0 : G;  // row strides: b, t
  const Index hb = a.no_tape ? H : T * H, ht = a.no_tape ? 0 : H;
  // xz for every step in one GEMM: (B*T, I) x (I, 3H).
  if (!step_gates) gate_columns_gemm(u, 3, H, B * T, a.I, a.x, a.I, a.kernel, F(0), a.gates, G);
  for (Index t = 0; t < T; ++t) {
    if (step_gates)  // this step's x_t K only
      gate_columns_gemm(u, 3, H, B, a.I, a.x + t * a.I, T * a.I, a.kernel, F(0), a.gates, G);
    Index ldh = H;
    const F* h_rec = state_into_step(t, a.outputs, a.h0, a.recurrent_mask, a.h_scratch, B, T,
                                     H, &ldh);
    if (h_rec == nullptr)
      zero_gate_columns(u, 3, H, B, a.hz, G);
    else  // hz = h U
      step_product(a.recurrent_packed, a.recurrent_panels, u, 3, H, B, H, h_rec, ldh,
                   a.recurrent_kernel, F(0), a.hz, G);
    for (Index b = 0; b < B; ++b) {
      if (!a.no_tape && b + kPrefetchRows < B) {  // a later row's tape (see prefetch_row)
        const Index ba = b + kPrefetchRows;
        prefetch_row_for_writing(a.gates + ba * gb + t * gt + u.u0, G - u.u0);
        prefetch_row_for_writing(a.hz_h + ba * hb + t * ht + u.u0, u.n);
        prefetch_row_for_writing(a.outputs + (ba * T + t) * H + u.u0, u.n);
      }
      const Index r = b * T + t;
      const F* h_prev = t > 0 ? a.outputs + (r - 1) * H : at(a.h0, b * H);
      if (masked_step(a.step_mask, b, T, t)) {  // h carried over the masked step
        hold_state(a.outputs + r * H, h_prev, u);
        continue;
      }
      cell_forward(a.gates + b * gb + t * gt + u.u0, a.hz_h + b * hb + t * ht + u.u0,
                   a.outputs + r * H + u.u0, a.hz + b * G + u.u0, at(h_prev, u.u0),
                   at(a.bias, u.u0), u.n, H);
    }
    step_done(a.split);  // h_t complete before step t+1 multiplies by it
  }
  copy_units(a.h_last, H, a.outputs + (T - 1) * H, T * H, u, B);
}

// Backward through the gate math of one (b, t). dh_io: gradient reaching h_t from step t+1 on
// entry (d_out adds the output's), the direct part of the gradient reaching h_{t-1} (dh z) on
// return. Writes d_xz and d_hz (3H each): the gradients of the two pre-activation sums.
template <typename F>
EIGEN_ALWAYS_INLINE void cell_backward(F* dxz, F* dhz, F* dh_io, const F* d_out, const F* gate,
                                       const F* hzh, const F* h_prev, Index units, Index H) {
  using P = pk::Packet<F>;
  row_pass<F, 7, 7>(
      units, {dh_io, d_out, gate, gate + H, gate + 2 * H, hzh, h_prev},
      {dxz, dxz + H, dxz + 2 * H, dhz, dhz + H, dhz + 2 * H, dh_io},
      [](const auto& ld, const auto& st) {
        using namespace Eigen::internal;
        const P one = pk::one<P>();
        const P dh = padd(ld(0), ld(1));
        const P z = ld(2), r = ld(3), n = ld(4);
        const P dzz = pmul(pmul(dh, psub(ld(6), n)), pmul(z, psub(one, z)));
        const P dzn = pmul(pmul(dh, psub(one, z)), psub(one, pmul(n, n)));  // through tanh
        const P dzr = pmul(pmul(dzn, ld(5)), pmul(r, psub(one, r)));
        st(0, dzz), st(1, dzr), st(2, dzn);
        st(3, dzz), st(4, dzr), st(5, pmul(dzn, r));
        st(6, pmul(dh, z));  // h_{t-1} also enters h_t directly, times z
      });
}

// After the time loop, for a slice of rows: the stacked rows of the weight gradients and
// d_x = d_xz K^T.
template <typename F>
void backward_inputs(const GruBackwardArgs<F>& a) {
  gather_stacked(a.stacked, a.x, a.outputs, a.h0, a.recurrent_mask, a.B, a.T, a.I, a.H, true);
  if (a.d_x != nullptr) input_gradient(a.d_x, a.d_xz, a.kernel_t, a.B * a.T, a.I, 3 * a.H);
}

// The time loop of backward: d_xz and d_hz for every step, and d_h0. Rows are independent,
// so the caller may run it on batch slices in parallel, or split the units (a.split). With
// all units, it goes on with backward_inputs (otherwise the caller runs that afterwards).
template <typename F>
void backward_steps(const GruBackwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 3 * H;
  const Units u = units_of(a.split, H);
  init_carry_units(a.d_h, a.d_h_last, u, B, H);  // gradient reaching h_t from later steps
  for (Index t = T - 1; t >= 0; --t) {
    for (Index b = 0; b < B; ++b) {
      if (b + kPrefetchRows < B) {  // a later row's tape, T rows apart (see prefetch_row)
        const Index ra = (b + kPrefetchRows) * T + t;
        prefetch_row(a.gates + ra * G + u.u0, G - u.u0);
        prefetch_row(a.hz_h + ra * H + u.u0, u.n);
        prefetch_row(t > 0 ? a.outputs + (ra - 1) * H + u.u0 : nullptr, u.n);
        prefetch_row(at(a.d_outputs, ra * H + u.u0), u.n);
        prefetch_row_for_writing(a.d_xz + ra * G + u.u0, G - u.u0);
        prefetch_row_for_writing(a.d_hz + ra * G + u.u0, G - u.u0);
      }
      if (masked_step(a.step_mask, b, T, t)) continue;
      const Index r = b * T + t;
      const F* h_prev = t > 0 ? a.outputs + (r - 1) * H : at(a.h0, b * H);
      cell_backward(a.d_xz + r * G + u.u0, a.d_hz + r * G + u.u0, a.d_h + b * H + u.u0,
                    at(a.d_outputs, r * H + u.u0), a.gates + r * G + u.u0,
                    a.hz_h + r * H + u.u0, at(h_prev, u.u0), u.n, H);
    }
    // Masked rows: no d_xz, d_hz; d_h passes on, and the product below adds nothing to it.
    if (a.step_mask != nullptr)
      hold_masked_rows(a.step_mask, t, B, T, H, u, 3, a.d_xz, a.d_hz, a.d_h, a.d_h,
                       a.d_outputs);
    step_done(a.split);  // every unit's d_hz_t is written before the product below reads them
    if (cut_before(t, T, a.truncate)) {  // h entering step t is a constant
      for (Index b = 0; b < B; ++b)
        std::fill(a.d_h + b * H + u.u0, a.d_h + b * H + u.u0 + u.n, F(0));
      continue;
    }
    // d_h_{t-1} = dh * z (already in d_h) + (d_hz_t U^T) * m, its units u.
    const F* d_hz_t = a.d_hz + t * G;
    const auto d_hz_ut = [&](F beta, F* out) {  // out (+)= d_hz_t U^T, units u
      step_product(a.recurrent_t_packed, a.recurrent_t_panels, u, 1, H, B, G, d_hz_t, T * G,
                   a.recurrent_kernel_t, beta, out, H);
    };
    if (a.recurrent_mask == nullptr) {
      d_hz_ut(F(1), a.d_h);
    } else {
      d_hz_ut(F(0), a.d_h_rec);
      mask_units(a.d_h_rec, a.recurrent_mask, u, B, H);
      for (Index b = 0; b < B; ++b)
        Vec<F>(a.d_h + b * H + u.u0, u.n) += CVec<F>(a.d_h_rec + b * H + u.u0, u.n);
    }
  }
  copy_units(a.d_h0, H, a.d_h, H, u, B);
  if (u.all && !a.split.inputs_later) backward_inputs(a);
}

// After the time loop, over the whole batch: columns [g_begin, g_end) of the weight gradients.
// [d_kernel; d_bias[0]] = [x, 1]^T d_xz and [d_recurrent_kernel; d_bias[1]] = [m h, 1]^T d_hz.
template <typename F>
void backward_weights(const GruBackwardArgs<F>& a) {
  const Index S = stacked_width(a.I, a.H, true), rows = a.B * a.T, G = 3 * a.H;
  stacked_weight_gradient(a.d_weights, a.stacked, a.I + 1, S, a.d_xz, rows, G, a.g_begin,
                          a.g_end);
  stacked_weight_gradient(a.d_weights + (a.I + 1) * G, a.stacked + a.I + 1, a.H + 1, S, a.d_hz,
                          rows, G, a.g_begin, a.g_end);
}

}  // namespace gru
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
