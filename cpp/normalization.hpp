// LayerNormalization and BatchNormalization: forward and backward over the last axis.
//
// Dimension letters (see layer_args.hpp): N rows (every position but the last axis), C values
// of the normalized (last) axis.
//
// LayerNormalization, each row on its own (biased variance, as Keras):
//   mean = sum_c x / C;  var = sum_c (x - mean)^2 / C;  rstd = 1 / sqrt(var + epsilon)
//   xhat = (x - mean) * rstd;  y = xhat * gamma + beta
//   backward, with g = d_y * gamma:  d_x = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//   d_gamma = sum_n d_y * xhat;  d_beta = sum_n d_y
//
// BatchNormalization, each channel over all N rows of the batch (training; inference is the
// same affine map with the moving statistics): the bindings split the rows over threads, so
// the kernels here are the per-rows passes: column sums (kept in double: a float running sum
// over 30,000 rows would lose digits), the per-channel affine map y = x * scale + shift, and
//   d_x = scale * (d_y - sum_n(d_y) / N - xhat * sum_n(d_y * xhat) / N),  scale = gamma * rstd.
#pragma once

#include <cmath>

#include "common.hpp"
#include "layer_args.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace norm {

template <typename F>
void layer_norm_forward(const LayerNormForwardArgs<F>& a) {
  const Index C = a.C;
  for (Index n = 0; n < a.N; ++n) {
    CVec<F> x(a.x + n * C, C);
    Vec<F> y(a.y + n * C, C);
    const F mean = packet_sum<F>(C, a.x + n * C, nullptr, [](auto v, auto) { return v; }) / F(C);
    const auto shift = Eigen::internal::pset1<pk::Packet<F>>(mean);
    const F var = packet_sum<F>(C, a.x + n * C, nullptr, [&](auto v, auto) {
                    const auto d = Eigen::internal::psub(v, shift);
                    return Eigen::internal::pmul(d, d);
                  }) / F(C);
    const F rstd = F(1) / std::sqrt(var + a.epsilon);
    a.mean[n] = mean, a.rstd[n] = rstd;
    y = (x - mean) * rstd;
    if (a.gamma != nullptr) y *= CVec<F>(a.gamma, C);
    if (a.beta != nullptr) y += CVec<F>(a.beta, C);
  }
}

template <typename F>
void layer_norm_backward(const LayerNormBackwardArgs<F>& a) {
  const Index C = a.C;
  if (a.d_gamma != nullptr) std::fill(a.d_gamma, a.d_gamma + C, F(0));
  if (a.d_beta != nullptr) std::fill(a.d_beta, a.d_beta + C, F(0));
  for (Index n = 0; n < a.N; ++n) {
    CVec<F> x(a.x + n * C, C), dy(a.d_y + n * C, C);
    const F mean = a.mean[n], rstd = a.rstd[n];
    if (a.d_gamma != nullptr) Vec<F>(a.d_gamma, C) += dy * (x - mean) * rstd;
    if (a.d_beta != nullptr) Vec<F>(a.d_beta, C) += dy;
    if (a.d_x == nullptr) continue;
    Vec<F> dx(a.d_x + n * C, C);
    if (a.gamma != nullptr)
      dx = dy * CVec<F>(a.gamma, C);  // g, built in d_x's row
    else
      dx = dy;
    const F mean_g = packet_sum<F>(C, dx.data(), nullptr, [](auto g, auto) { return g; }) / F(C);
    const auto shift = Eigen::internal::pset1<pk::Packet<F>>(mean);
    const F mean_gx = packet_sum<F>(C, dx.data(), a.x + n * C, [&](auto g, auto v) {
                        return Eigen::internal::pmul(g, Eigen::internal::psub(v, shift));
                      }) * rstd / F(C);
    dx = rstd * (dx - mean_g - (x - mean) * rstd * mean_gx);
  }
}

// sum_a[c] = sum_n x[n, c], or sum_n (x[n, c] - mean[c])^2 when mean is given.
template <typename F>
void batch_norm_moments(const BatchNormArgs<F>& a) {
  const Index C = a.C;
  std::fill(a.sum_a, a.sum_a + C, 0.0);
  for (Index n = 0; n < a.N; ++n) {
    const F* x = a.x + n * C;
    if (a.mean == nullptr) {
      for (Index c = 0; c < C; ++c) a.sum_a[c] += double(x[c]);
    } else {
      for (Index c = 0; c < C; ++c) {
        const double d = double(x[c]) - double(a.mean[c]);
        a.sum_a[c] += d * d;
      }
    }
  }
}

// y = x * scale + shift, per channel.
template <typename F>
void batch_norm_apply(const BatchNormArgs<F>& a) {
  const Index C = a.C;
  CVec<F> scale(a.scale, C), shift(a.shift, C);
  for (Index n = 0; n < a.N; ++n) Vec<F>(a.y + n * C, C) = CVec<F>(a.x + n * C, C) * scale + shift;
}

// sum_a[c] = sum_n d_y[n, c];  sum_b[c] = sum_n d_y[n, c] * xhat[n, c].
template <typename F>
void batch_norm_backward_sums(const BatchNormArgs<F>& a) {
  const Index C = a.C;
  std::fill(a.sum_a, a.sum_a + C, 0.0);
  std::fill(a.sum_b, a.sum_b + C, 0.0);
  for (Index n = 0; n < a.N; ++n) {
    const F *x = a.x + n * C, *dy = a.d_y + n * C;
    for (Index c = 0; c < C; ++c) {
      a.sum_a[c] += double(dy[c]);
      a.sum_b[c] += double(dy[c]) * (double(x[c]) - double(a.mean[c])) * double(a.rstd[c]);
    }
  }
}

// d_x (into y) = scale * (d_y - sums[0] / n_all - xhat * sums[1] / n_all).
template <typename F>
void batch_norm_backward(const BatchNormArgs<F>& a) {
  const Index C = a.C;
  const F inv_n = F(1) / F(a.n_all);
  CVec<F> scale(a.scale, C), mean(a.mean, C), rstd(a.rstd, C);
  CVec<F> mean_dy(a.sums, C), mean_dyx(a.sums + C, C);
  for (Index n = 0; n < a.N; ++n) {
    CVec<F> x(a.x + n * C, C), dy(a.d_y + n * C, C);
    Vec<F>(a.y + n * C, C) =
        scale * (dy - mean_dy * inv_n - (x - mean) * rstd * mean_dyx * inv_n);
  }
}

}  // namespace norm
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
