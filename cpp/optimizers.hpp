// ======================================================================================
// Optimizer updates, fused: one pass over a flat parameter buffer of n elements reads the
// gradient and the slots once and writes the parameter and the slots once (a NumPy version
// needs a dozen passes and as many Python calls per step). Keras 3 formulas.
// ======================================================================================
#pragma once
#include "common.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace optim {

// w -= lr g; with momentum: v = mu v - lr g, then w += v (or w += mu v - lr g, Nesterov).
template <typename F>
void sgd(const SgdArgs<F>& a) {
  Vec<F> w(a.param, a.n);
  CVec<F> g(a.grad, a.n);
  if (a.velocity == nullptr) {
    w -= a.learning_rate * g;
    return;
  }
  Vec<F> v(a.velocity, a.n);
  v = a.momentum * v - a.learning_rate * g;
  if (a.nesterov)
    w += a.momentum * v - a.learning_rate * g;
  else
    w += v;
}

// m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps), with
// alpha = lr sqrt(1 - b2^t) / (1 - b1^t) computed by the caller. AMSGrad: v_hat = max(v_hat, v)
// replaces v in the last step.
template <typename F>
void adam(const AdamArgs<F>& a) {
  Vec<F> w(a.param, a.n), m(a.m, a.n), v(a.v, a.n);
  CVec<F> g(a.grad, a.n);
  m += (g - m) * (F(1) - a.beta_1);
  v += (g * g - v) * (F(1) - a.beta_2);
  if (a.v_hat == nullptr) {
    w -= a.alpha * m / (v.sqrt() + a.epsilon);
  } else {
    Vec<F> vh(a.v_hat, a.n);
    vh = vh.max(v);
    w -= a.alpha * m / (vh.sqrt() + a.epsilon);
  }
}

// v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g, d = max(v - a^2, 0) + eps
// (rounding can push the variance below 0 for a constant gradient), else d = v + eps;
// step = lr g / sqrt(d); with momentum: mom = momentum mom + step, w -= mom; else w -= step.
template <typename F>
void rmsprop(const RmspropArgs<F>& a) {
  Vec<F> w(a.param, a.n), v(a.v, a.n);
  CVec<F> g(a.grad, a.n);
  v = a.rho * v + (F(1) - a.rho) * g * g;
  if (a.average_grad != nullptr) {
    Vec<F> avg(a.average_grad, a.n);
    avg = a.rho * avg + (F(1) - a.rho) * g;
    const auto step = a.learning_rate * g / ((v - avg * avg).max(F(0)) + a.epsilon).sqrt();
    if (a.momentum_buffer != nullptr) {
      Vec<F> mom(a.momentum_buffer, a.n);
      mom = a.momentum * mom + step;
      w -= mom;
    } else {
      w -= step;
    }
    return;
  }
  const auto step = a.learning_rate * g / (v + a.epsilon).sqrt();
  if (a.momentum_buffer != nullptr) {
    Vec<F> mom(a.momentum_buffer, a.n);
    mom = a.momentum * mom + step;
    w -= mom;
  } else {
    w -= step;
  }
}

}  // namespace optim
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
