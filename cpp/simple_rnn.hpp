// ======================================================================================
// SimpleRNN, forward and backward.
//   B batch, T time, I inputs, H hidden units.  h_t = act(x_t K + (m * h_{t-1}) U + b)
//   act in {tanh, relu, linear}; m is an optional recurrent dropout mask (B, H).
// ======================================================================================
#pragma once
#include "packed_gemm.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace simple_rnn {

// One step's activation, in place on n units of the pre-activations (+ bias) of B rows, ld
// apart. The activation is chosen once a step and everything is inlined into the loop over
// the rows (a call per row, and Eigen's tanh left out of line, cost more than the math at
// H = 20).
template <typename F>
FASTRNN_FLATTEN void activate_step(F* pre, Index ld, Index B, const F* bias, Index n,
                                   Activation act) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  const auto each_row = [&](const auto& op) {
    for (Index b = 0; b < B; ++b)
      row_pass<F, 2, 1>(n, {pre + b * ld, bias}, {pre + b * ld}, op);
  };
  switch (act) {
    case Activation::tanh:
      return each_row([](const auto& ld_, const auto& st) {
        st(0, pk::tanh(padd(ld_(0), ld_(1))));
      });
    case Activation::relu:
      return each_row([](const auto& ld_, const auto& st) {
        st(0, pmax(padd(ld_(0), ld_(1)), pzero(P())));
      });
    case Activation::linear:
      return each_row([](const auto& ld_, const auto& st) { st(0, padd(ld_(0), ld_(1))); });
  }
}

// One step of backward through the activation, for n units of B rows: d_pre = (d_h + d_out)
// * act'(pre), with act' written through the output h = act(pre). d_pre, d_out and h rows are
// ld apart, d_h rows ld_dh apart. Chosen and inlined as activate_step.
template <typename F>
FASTRNN_FLATTEN void activation_grad_step(F* d_pre, Index ld, Index B, const F* d_h,
                                          Index ld_dh, const F* d_out, const F* h, Index n,
                                          Activation act) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  const auto each_row = [&](const auto& op) {
    for (Index b = 0; b < B; ++b) {
      if (b + kPrefetchRows < B) {  // a later row's tape, ld apart (see prefetch_row)
        const Index ba = (b + kPrefetchRows) * ld;
        prefetch_row(h + ba, n), prefetch_row(at(d_out, ba), n);
        prefetch_row_for_writing(d_pre + ba, n);
      }
      row_pass<F, 3, 1>(n, {d_h + b * ld_dh, at(d_out, b * ld), h + b * ld}, {d_pre + b * ld},
                        op);
    }
  };
  switch (act) {
    case Activation::tanh:
      return each_row([](const auto& ld_, const auto& st) {
        const P y = ld_(2);
        st(0, pmul(padd(ld_(0), ld_(1)), psub(pk::one<P>(), pmul(y, y))));
      });
    case Activation::relu:
      return each_row([](const auto& ld_, const auto& st) {
        const P dh = padd(ld_(0), ld_(1));
        st(0, pselect(pcmp_lt(pzero(dh), ld_(2)), dh, pzero(dh)));
      });
    case Activation::linear:
      return each_row([](const auto& ld_, const auto& st) { st(0, padd(ld_(0), ld_(1))); });
  }
}

template <typename F>
void forward(const SimpleRnnForwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H;
  const Units u = units_of(a.split, H);
  // x K for all B*T rows at once, straight into the outputs: (B*T, I) x (I, H).
  gate_columns_gemm(u, 1, H, B * T, a.I, a.x, a.I, a.kernel, F(0), a.outputs, H);
  for (Index t = 0; t < T; ++t) {
    F* out_t = a.outputs + t * H;  // rows b * T * H apart
    Index ldh = H;
    const F* h_prev = state_into_step(t, a.outputs, a.h0, a.recurrent_mask, a.h_scratch, B, T,
                                      H, &ldh);
    if (h_prev != nullptr)  // pre_t += h_{t-1} U
      step_product(a.recurrent_packed, a.recurrent_panels, u, 1, H, B, H, h_prev, ldh,
                   a.recurrent_kernel, F(1), out_t, T * H);
    activate_step(out_t + u.u0, T * H, B, at(a.bias, u.u0), u.n, a.activation);
    if (a.step_mask != nullptr) hold_masked_outputs(a.step_mask, t, B, T, H, u, a.outputs, a.h0);
    step_done(a.split);  // h_t complete before step t+1 multiplies by it
  }
  copy_units(a.h_last, H, a.outputs + (T - 1) * H, T * H, u, B);
}

// After the time loop, for a slice of rows: the stacked rows of the weight gradients and
// d_x = d_pre K^T.
template <typename F>
void backward_inputs(const SimpleRnnBackwardArgs<F>& a) {
  gather_stacked(a.stacked, a.x, a.outputs, a.h0, a.recurrent_mask, a.B, a.T, a.I, a.H, false);
  if (a.d_x != nullptr) input_gradient(a.d_x, a.d_pre, a.kernel_t, a.B * a.T, a.I, a.H);
}

// The time loop of backward: d_pre for every step, and d_h0. Rows are independent, so the
// caller may run it on batch slices in parallel, or split the units (a.split). With all
// units, it goes on with backward_inputs (otherwise the caller runs that afterwards).
template <typename F>
void backward_steps(const SimpleRnnBackwardArgs<F>& a) {
  const Index B = a.B, T = a.T, H = a.H;
  const Units u = units_of(a.split, H);
  init_carry_units(a.d_h, a.d_h_last, u, B, H);  // gradient reaching h_t from later steps
  for (Index t = T - 1; t >= 0; --t) {
    const Index r = t * H + u.u0;  // row b of step t: (b * T + t) * H
    activation_grad_step(a.d_pre + r, T * H, B, a.d_h + u.u0, H, at(a.d_outputs, r),
                         a.outputs + r, u.n, a.activation);
    if (a.step_mask != nullptr)  // masked rows: no d_pre, d_h passes on (kept in d_h_masked_rows)
      hold_masked_rows(a.step_mask, t, B, T, H, u, 1, a.d_pre, static_cast<F*>(nullptr),
                       a.d_h_masked_rows, a.d_h, a.d_outputs);
    step_done(a.split);  // every unit's d_pre_t is written before the product below reads them
    if (cut_before(t, T, a.truncate)) {  // h_{t-1} is a constant here
      for (Index b = 0; b < B; ++b)
        std::fill(a.d_h + b * H + u.u0, a.d_h + b * H + u.u0 + u.n, F(0));
      continue;
    }
    // d_h_{t-1} = (d_pre_t U^T) * m, its units u: the only product on the critical path.
    const F* d_pre_t = a.d_pre + t * H;
    step_product(a.recurrent_t_packed, a.recurrent_t_panels, u, 1, H, B, H, d_pre_t, T * H,
                 a.recurrent_kernel_t, F(0), a.d_h, H);
    if (a.recurrent_mask != nullptr) mask_units(a.d_h, a.recurrent_mask, u, B, H);
    if (a.step_mask != nullptr)
      restore_masked_rows(a.step_mask, t, B, T, H, u, a.d_h, a.d_h_masked_rows);
  }
  copy_units(a.d_h0, H, a.d_h, H, u, B);
  if (u.all && !a.split.inputs_later) backward_inputs(a);
}

// After the time loop, over the whole batch: columns [g_begin, g_end) of the weight gradients.
template <typename F>
void backward_weights(const SimpleRnnBackwardArgs<F>& a) {
  const Index S = stacked_width(a.I, a.H, false);
  stacked_weight_gradient(a.d_weights, a.stacked, S, S, a.d_pre, a.B * a.T, a.H, a.g_begin,
                          a.g_end);
}

}  // namespace simple_rnn
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
