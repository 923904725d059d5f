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
#include "packed_gemm.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace lstm {

// Gate math of n units of one (b, t), gate blocks H apart: activates z (+ bias) in place and
// writes c_t and h_t.
template <typename F>
EIGEN_ALWAYS_INLINE void cell_forward(F* z, F* c, F* h, const F* c_prev, const F* bias, Index n,
                                      Index H) {
  using P = pk::Packet<F>;
  row_pass<F, 9, 6>(
      n, {z, z + H, z + 2 * H, z + 3 * H, at(bias, 0), at(bias, H), at(bias, 2 * H),
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

// With a tape, gates and cells hold every step, (B, T, 4H) and (B, T, H); without (inference,
// a.no_tape), they are one step's scratch, (B, 4H) and (B, H), overwritten in place, and the
// input projection is done step by step, so memory beyond the outputs is O(B * H).
template <typename F>
void forward(const LstmForwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 4 * H;
  const Units u = units_of(a.split, H);
  const bool step_gates = a.no_tape && !a.project_all;  // gates hold one step
  const Index gb = step_gates ? G : T * G, gt = step_gates ? 0 : G;  // row strides: b, t
  const Index cb = a.no_tape ? H : T * H, ct = a.no_tape ? 0 : H;
  // x K for every step in one GEMM: gates (B*T, 4H) = x (B*T, I) K (I, 4H).
  if (!step_gates) gate_columns_gemm(u, 4, H, B * T, a.I, a.x, a.I, a.kernel, F(0), a.gates, G);
  for (Index t = 0; t < T; ++t) {
    if (step_gates)  // this step's x_t K only
      gate_columns_gemm(u, 4, H, B, a.I, a.x + t * a.I, T * a.I, a.kernel, F(0), a.gates, G);
    Index ldh = H;
    const F* h_prev = state_into_step(t, a.outputs, a.h0, a.recurrent_mask, a.h_scratch, B, T,
                                      H, &ldh);
    F* gates_t = a.gates + t * gt;
    if (h_prev != nullptr)  // gates_t += h_{t-1} U
      step_product(a.recurrent_packed, a.recurrent_panels, u, 4, H, B, H, h_prev, ldh,
                   a.recurrent_kernel, F(1), gates_t, gb);
    for (Index b = 0; b < B; ++b) {
      if (!a.no_tape && b + kPrefetchRows < B) {  // a later row's tape (see prefetch_row)
        const Index ba = b + kPrefetchRows;
        prefetch_row_for_writing(a.gates + ba * gb + t * gt + u.u0, G - u.u0);
        prefetch_row_for_writing(a.cells + ba * cb + t * ct + u.u0, u.n);
        prefetch_row_for_writing(a.outputs + (ba * T + t) * H + u.u0, u.n);
      }
      F* c = a.cells + b * cb + t * ct;  // c_t (no tape: c_{t-1}, updated in place)
      const F* c_prev = t > 0 ? c - ct : at(a.c0, b * H);
      if (masked_step(a.step_mask, b, T, t)) {  // (h, c) carried over the masked step
        F* h = a.outputs + (b * T + t) * H;
        hold_state(h, t > 0 ? h - H : at(a.h0, b * H), u);
        if (c != c_prev) hold_state(c, c_prev, u);
        continue;
      }
      cell_forward(a.gates + b * gb + t * gt + u.u0, c + u.u0, a.outputs + (b * T + t) * H + u.u0,
                   at(c_prev, u.u0), at(a.bias, u.u0), u.n, H);
    }
    step_done(a.split);  // h_t complete before step t+1 multiplies by it
  }
  copy_units(a.h_last, H, a.outputs + (T - 1) * H, T * H, u, B);
  copy_units(a.c_last, H, a.cells + (T - 1) * ct, cb, u, B);
}

// Backward through the gate math of one (b, t). dh: gradient reaching h_t from step t+1 (and
// d_out from the output, if any); dc_io: gradient reaching c_t on entry, c_{t-1} on return.
// Writes dz (4H): the gradient of the pre-activations. Recomputes tanh(c_t), nothing else.
template <typename F>
EIGEN_ALWAYS_INLINE void cell_backward(F* dz, F* dc_io, const F* dh, const F* d_out, const F* gate,
                                       const F* c, const F* c_prev, Index n, Index H) {
  using P = pk::Packet<F>;
  row_pass<F, 9, 5>(
      n, {dh, d_out, dc_io, gate, gate + H, gate + 2 * H, gate + 3 * H, c, c_prev},
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

// After the time loop, for a slice of rows: the stacked rows of the weight gradients and
// d_x = d_gates K^T.
template <typename F>
void backward_inputs(const LstmBackwardArgs<F>& a) {
  gather_stacked(a.stacked, a.x, a.outputs, a.h0, a.recurrent_mask, a.B, a.T, a.I, a.H, false);
  if (a.d_x != nullptr) input_gradient(a.d_x, a.d_gates, a.kernel_t, a.B * a.T, a.I, 4 * a.H);
}

// The time loop of backward: d_gates for every step, d_h0 and d_c0. Rows are independent, so
// the caller may run it on batch slices in parallel, or split the units (a.split). With all
// units, it goes on with backward_inputs (otherwise the caller runs that afterwards).
template <typename F>
void backward_steps(const LstmBackwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H, G = 4 * H;
  const Units u = units_of(a.split, H);
  init_carry_units(a.d_h, a.d_h_last, u, B, H);  // gradients reaching h_t and c_t
  init_carry_units(a.d_c, a.d_c_last, u, B, H);
  for (Index t = T - 1; t >= 0; --t) {
    for (Index b = 0; b < B; ++b) {
      if (b + kPrefetchRows < B) {  // a later row's tape, T rows apart (see prefetch_row)
        const Index ra = (b + kPrefetchRows) * T + t;
        prefetch_row(a.gates + ra * G + u.u0, G - u.u0);
        prefetch_row(a.cells + (ra - 1) * H + u.u0, 2 * H);
        prefetch_row(at(a.d_outputs, ra * H + u.u0), u.n);
        prefetch_row_for_writing(a.d_gates + ra * G + u.u0, G - u.u0);
      }
      if (masked_step(a.step_mask, b, T, t)) continue;  // d_c passes on as it is
      const Index r = b * T + t;
      const F* c_prev = t > 0 ? a.cells + (r - 1) * H : at(a.c0, b * H);
      cell_backward(a.d_gates + r * G + u.u0, a.d_c + b * H + u.u0, a.d_h + b * H + u.u0,
                    at(a.d_outputs, r * H + u.u0), a.gates + r * G + u.u0,
                    a.cells + r * H + u.u0, at(c_prev, u.u0), u.n, H);
    }
    if (a.step_mask != nullptr)  // masked rows: no dz, (d_h, d_c) pass on (d_h in d_h_masked_rows)
      hold_masked_rows(a.step_mask, t, B, T, H, u, 4, a.d_gates, static_cast<F*>(nullptr),
                       a.d_h_masked_rows, a.d_h, a.d_outputs);
    step_done(a.split);  // every unit's dz_t is written before the product below reads them
    if (cut_before(t, T, a.truncate)) {  // (h, c) entering step t are constants
      for (Index b = 0; b < B; ++b) {
        std::fill(a.d_h + b * H + u.u0, a.d_h + b * H + u.u0 + u.n, F(0));
        std::fill(a.d_c + b * H + u.u0, a.d_c + b * H + u.u0 + u.n, F(0));
      }
      continue;
    }
    // d_h_{t-1} = (dz_t U^T) * m, its units u: the only product on the critical path.
    const F* dz_t = a.d_gates + t * G;
    step_product(a.recurrent_t_packed, a.recurrent_t_panels, u, 1, H, B, G, dz_t, T * G,
                 a.recurrent_kernel_t, F(0), a.d_h, H);
    if (a.recurrent_mask != nullptr) mask_units(a.d_h, a.recurrent_mask, u, B, H);
    if (a.step_mask != nullptr)
      restore_masked_rows(a.step_mask, t, B, T, H, u, a.d_h, a.d_h_masked_rows);
  }
  copy_units(a.d_h0, H, a.d_h, H, u, B);
  copy_units(a.d_c0, H, a.d_c, H, u, B);
  if (u.all && !a.split.inputs_later) backward_inputs(a);
}

// After the time loop, over the whole batch: columns [g_begin, g_end) of the weight gradients.
template <typename F>
void backward_weights(const LstmBackwardArgs<F>& a) {
  const Index S = stacked_width(a.I, a.H, false);
  stacked_weight_gradient(a.d_weights, a.stacked, S, S, a.d_gates, a.B * a.T, 4 * a.H,
                          a.g_begin, a.g_end);
}

}  // namespace lstm
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
