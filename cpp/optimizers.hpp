// ======================================================================================
// Optimizer updates, each in one pass over a flat parameter buffer of n elements reads the
// gradient and the slots once and writes the parameter and the slots once (a NumPy version
// needs a dozen passes and as many Python calls per step). Keras 3 formulas.
// ======================================================================================
#pragma once
#include "common.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace optim {

// Each update is one row_pass (whole packets, masked tail), so every element takes the
// same instructions wherever the buffer sits in memory: training is bit-reproducible.

// w -= lr g; with momentum: v = mu v - lr g, then w += v (or w += mu v - lr g, Nesterov).
template <typename F>
void sgd(const SgdArgs<F>& a) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  const P lr = pset1<P>(a.learning_rate), mu = pset1<P>(a.momentum);
  if (a.velocity == nullptr)
    return row_pass<F, 2, 1>(a.n, {a.param, a.grad}, {a.param},
                             [&](const auto& ld, const auto& st) {
                                st(0, psub(ld(0), pmul(lr, ld(1))));  // w -= lr g
                             });
  const bool nesterov = a.nesterov;
  row_pass<F, 3, 2>(a.n, {a.param, a.grad, a.velocity}, {a.param, a.velocity},
                    [&](const auto& ld, const auto& st) {
                       const P step = pmul(lr, ld(1));
                       const P v = psub(pmul(mu, ld(2)), step);  // v = mu v - lr g
                       st(0, padd(ld(0), nesterov ? psub(pmul(mu, v), step) : v));
                       st(1, v);
                    });
}

// m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps), with
// alpha = lr sqrt(1 - b2^t) / (1 - b1^t) computed by the caller. AMSGrad: v_hat = max(v_hat, v)
// replaces v in the last step.
template <typename F>
void adam(const AdamArgs<F>& a) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  const P alpha = pset1<P>(a.alpha), eps = pset1<P>(a.epsilon);
  const P c1 = pset1<P>(F(1) - a.beta_1), c2 = pset1<P>(F(1) - a.beta_2);
  const bool ams = a.v_hat != nullptr;
  F* vh = ams ? a.v_hat : a.v;  // without AMSGrad the v_hat slot aliases v (written twice)
  row_pass<F, 5, 4>(a.n, {a.param, a.grad, a.m, a.v, vh}, {a.param, a.m, a.v, vh},
                    [&](const auto& ld, const auto& st) {
                       const P g = ld(1);
                       P m = ld(2), v = ld(3);
                       m = padd(m, pmul(psub(g, m), c1));
                       v = padd(v, pmul(psub(pmul(g, g), v), c2));
                       const P denom_v = ams ? pmax(ld(4), v) : v;
                       st(0, psub(ld(0), pdiv(pmul(alpha, m), padd(psqrt(denom_v), eps))));
                       st(1, m), st(2, v), st(3, denom_v);
                    });
}

// v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g, d = max(v - a^2, 0) + eps
// (rounding can push the variance below 0 for a constant gradient), else d = v + eps;
// step = lr g / sqrt(d); with momentum: mom = momentum mom + step, w -= mom; else w -= step.
template <typename F>
void rmsprop(const RmspropArgs<F>& a) {
  using P = pk::Packet<F>;
  using namespace Eigen::internal;
  const P lr = pset1<P>(a.learning_rate), rho = pset1<P>(a.rho), mu = pset1<P>(a.momentum);
  const P one_rho = pset1<P>(F(1) - a.rho), eps = pset1<P>(a.epsilon), zero = pset1<P>(F(0));
  const bool centered = a.average_grad != nullptr, momentum = a.momentum_buffer != nullptr;
  // Absent slots alias v (read and written back unchanged, last).
  F* avg = centered ? a.average_grad : a.v;
  F* mom = momentum ? a.momentum_buffer : a.v;
  row_pass<F, 5, 4>(a.n, {a.param, a.grad, a.v, avg, mom}, {avg, mom, a.param, a.v},
                    [&](const auto& ld, const auto& st) {
                       const P g = ld(1);
                       const P v = padd(pmul(rho, ld(2)), pmul(one_rho, pmul(g, g)));
                       P d = v;
                       P av = ld(3);
                       if (centered) {
                         av = padd(pmul(rho, av), pmul(one_rho, g));
                         d = pmax(psub(v, pmul(av, av)), zero);
                       }
                       const P step = pdiv(pmul(lr, g), psqrt(padd(d, eps)));
                       P mo = ld(4);
                       if (momentum) mo = padd(pmul(mu, mo), step);
                       st(0, av), st(1, mo);
                       st(2, psub(ld(0), momentum ? mo : step));
                       st(3, v);
                    });
}

}  // namespace optim
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
