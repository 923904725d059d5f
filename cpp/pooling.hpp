// MaxPooling1D and AveragePooling1D: forward and backward, channels-last.
//
// Dimension letters (see layer_args.hpp): B batch, T input steps, C channels, L output steps.
//
//   window(l) = [l*stride - pad_left, l*stride - pad_left + pool) clipped to [0, T)
//   max:      y[b, l, c] = max_{t in window(l)} x[b, t, c]     (argmax: the first such t)
//   average:  y[b, l, c] = mean_{t in window(l)} x[b, t, c]    (padding not counted, as TF's
//                                                               "same" average pooling)
// Backward sends d_y[b, l, c] to the argmax step (max), or spreads it evenly over the window
// (average). The loops run over channels innermost, which the compiler vectorises; the work
// is a few passes over x, memory-bound, so no BLAS is involved.
#pragma once

#include "common.hpp"
#include "layer_args.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace pool1d {

struct Window {
  Index lo, hi;
};
inline Window window(const Pool1dShape& s, Index l) {
  const Index start = l * s.stride - s.pad_left;
  return {std::max<Index>(start, 0), std::min<Index>(start + s.pool, s.T)};
}

template <typename F>
void forward_max(const Pool1dForwardArgs<F>& a) {
  const Pool1dShape& s = a.s;
  const Index C = s.C;
  for (Index b = 0; b < s.B; ++b) {
    for (Index l = 0; l < s.L; ++l) {
      const Window w = window(s, l);
      const F* x = a.x + b * s.T * C;           // (T, C)
      F* y = a.y + (b * s.L + l) * C;           // (C,)
      std::copy(x + w.lo * C, x + (w.lo + 1) * C, y);
      if (a.argmax == nullptr) {
        for (Index t = w.lo + 1; t < w.hi; ++t)
          for (Index c = 0; c < C; ++c) y[c] = std::max(y[c], x[t * C + c]);
        continue;
      }
      std::int32_t* arg = a.argmax + (b * s.L + l) * C;  // (C,)
      std::fill(arg, arg + C, static_cast<std::int32_t>(w.lo));
      for (Index t = w.lo + 1; t < w.hi; ++t)
        for (Index c = 0; c < C; ++c)
          if (x[t * C + c] > y[c]) y[c] = x[t * C + c], arg[c] = static_cast<std::int32_t>(t);
    }
  }
}

template <typename F>
void forward_average(const Pool1dForwardArgs<F>& a) {
  const Pool1dShape& s = a.s;
  const Index C = s.C;
  for (Index b = 0; b < s.B; ++b) {
    for (Index l = 0; l < s.L; ++l) {
      const Window w = window(s, l);
      const F* x = a.x + b * s.T * C;  // (T, C)
      Vec<F> y(a.y + (b * s.L + l) * C, C);
      y = CVec<F>(x + w.lo * C, C);
      for (Index t = w.lo + 1; t < w.hi; ++t) y += CVec<F>(x + t * C, C);
      y *= F(1) / F(w.hi - w.lo);
    }
  }
}

template <typename F>
void backward(const Pool1dBackwardArgs<F>& a) {
  const Pool1dShape& s = a.s;
  const Index C = s.C;
  std::fill(a.d_x, a.d_x + s.B * s.T * C, F(0));
  for (Index b = 0; b < s.B; ++b) {
    F* dx = a.d_x + b * s.T * C;  // (T, C)
    for (Index l = 0; l < s.L; ++l) {
      const F* dy = a.d_y + (b * s.L + l) * C;  // (C,)
      if (a.argmax != nullptr) {
        const std::int32_t* arg = a.argmax + (b * s.L + l) * C;
        for (Index c = 0; c < C; ++c) dx[Index(arg[c]) * C + c] += dy[c];
        continue;
      }
      const Window w = window(s, l);
      const F share = F(1) / F(w.hi - w.lo);
      for (Index t = w.lo; t < w.hi; ++t) Vec<F>(dx + t * C, C) += share * CVec<F>(dy, C);
    }
  }
}

}  // namespace pool1d
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
