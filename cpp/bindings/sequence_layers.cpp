// Conv1D, pooling, normalization: checks, then the kernels of layer_kernels() over slices of
// the batch (or of the rows) on the core's threads.
#include <climits>
#include <cstdint>

#include "bindings/common.hpp"
#include "parallel.hpp"

namespace fastrnn {
namespace bindings {
namespace {

// A 3-D (B, T, C) array's dimensions, checked (dtype F, C-contiguous).
template <typename F>
std::vector<Index> sequence_dims(const py::array& x, const char* name) {
  if (x.ndim() != 3)
    throw std::invalid_argument(std::string("argument `") + name +
                                "`: expected a 3-D array (batch, steps, channels), got " +
                                std::to_string(x.ndim()) + "-D");
  std::vector<Index> d{x.shape(0), x.shape(1), x.shape(2)};
  checked<F>(x, name, d);
  if (double(d[0]) * double(d[1]) * double(std::max<Index>(d[2], 1)) >= double(INT_MAX))
    throw std::invalid_argument(std::string("argument `") + name +
                                "`: too large (batch * steps * channels must stay below 2**31)");
  return d;
}

// Output length of a window of `extent` steps (kernel (K-1)*dilation+1, or the pool) moved
// `stride` steps at a time over T steps padded by pad_left and pad_right. Padding beyond
// extent - 1 on either side would only add windows of padding alone, so it is refused
// (and with it any output far larger than the input).
Index window_count(Index T, Index extent, Index stride, Index pad_left, Index pad_right,
                   const char* what) {
  check_at_least("stride", stride, 1);
  check_at_least("pad_left", pad_left, 0);
  check_at_least("pad_right", pad_right, 0);
  if (pad_left > extent - 1 || pad_right > extent - 1)
    throw std::invalid_argument("arguments `pad_left`, `pad_right`: expected at most " +
                                std::to_string(extent - 1) + " (the " + what +
                                " minus one), got " + std::to_string(pad_left) + " and " +
                                std::to_string(pad_right));
  if (T + pad_left + pad_right < extent)
    throw std::invalid_argument(std::string("argument `x`: its ") + std::to_string(T) +
                                " steps (padded: " + std::to_string(T + pad_left + pad_right) +
                                ") are fewer than the " + what + " (" + std::to_string(extent) +
                                "); the output would be empty");
  return (T + pad_left + pad_right - extent) / stride + 1;
}

// Runs fn(slice, first, count) over `slices` contiguous ranges of n items in parallel.
template <typename Fn>
void over_slices(int slices, Index n, const Fn& fn) {
  run_parallel(slices, [&](int s) {
    const Index i0 = n * s / slices, i1 = n * (s + 1) / slices;
    fn(s, i0, i1 - i0);
  });
}

// Slice 0 of a call writes the weight gradients, slice k > 0 partial sums of n values at
// partials + k * per: adds those to total.
template <typename F>
void add_partials(F* total, const F* partials, std::size_t per, Index n, int slices) {
  for (int k = 1; k < slices; ++k)
    for (Index j = 0; j < n; ++j) total[j] += partials[per * std::size_t(k) + std::size_t(j)];
}

// ------------------------------------------------------------------------------- Conv1D
// At least one tap, channel and filter, and a kernel that 32-bit BLAS can index.
void check_taps_and_channels(const Conv1dShape& s) {
  if (s.K < 1 || s.O < 1 || s.C < 1)
    throw std::invalid_argument("arguments `x`, `kernel`: need at least one channel, tap and "
                                "filter");
  if (double(s.K) * double(s.C) * double(s.O) >= double(INT_MAX))
    throw std::invalid_argument("argument `kernel`: too large for 32-bit BLAS indexing");
}

struct ConvCall {
  Conv1dShape s;
  int slices;
};

// The shape and threads of a Conv1D call, its x and kernel checked and into a.
template <typename F, typename Args>
ConvCall conv_call(Args& a, const py::array& x, const py::array& kernel, Index stride,
                   Index dilation, Index pad_left, Index pad_right, Index groups) {
  keep_blas_single_threaded();
  const auto xd = sequence_dims<F>(x, "x");
  check_at_least("dilation", dilation, 1);
  check_at_least("groups", groups, 1);
  if (kernel.ndim() != 3)
    throw std::invalid_argument("argument `kernel`: expected a 3-D array (kernel_size, "
                                "channels / groups, filters), got " +
                                std::to_string(kernel.ndim()) + "-D");
  Conv1dShape s{};
  s.B = xd[0], s.T = xd[1], s.C = xd[2], s.K = kernel.shape(0), s.O = kernel.shape(2);
  s.stride = stride, s.dilation = dilation, s.pad_left = pad_left, s.groups = groups;
  if (s.C % groups != 0 || s.O % groups != 0)
    throw std::invalid_argument("argument `groups`: must divide the input channels (" +
                                std::to_string(s.C) + ") and the filters (" +
                                std::to_string(s.O) + "), got " + std::to_string(groups));
  checked<F>(kernel, "kernel", {s.K, s.C / groups, s.O});
  check_taps_and_channels(s);
  const double extent = double(s.K - 1) * double(dilation) + 1.0;
  if (extent >= double(INT_MAX))
    throw std::invalid_argument("arguments `kernel`, `dilation`: the receptive field is too "
                                "large");
  s.L = window_count(s.T, Index(extent), stride, pad_left, pad_right, "receptive field");
  // Chunks of about 256 KiB of unrolled rows (in L2), at least 32 rows (a GEMM's worth).
  const Index KC = s.K * (s.C / groups);
  s.chunk_rows = std::max<Index>(32, Index(256 * 1024) / Index(sizeof(F)) / KC);
  const int threads = call_threads();
  const double flops = 2.0 * double(s.B) * double(s.L) * double(KC) * double(s.O);
  a.s = s, a.x = static_cast<const F*>(x.data()), a.kernel = static_cast<const F*>(kernel.data());
  return {s, slices_for(threads, flops, s.B, 1)};
}

// The workspace of a slice: its chunk (R, K*Cg) (backward: two), and its partial gradients.
std::size_t conv_chunk_size(const Conv1dShape& s) {
  return std::size_t(s.chunk_rows * s.K * (s.C / s.groups));
}

// kernel(part) over `slices` slices of the batch a.s.B: part is a for items [b0, b0 + nb)
// (move(part, b0) offsets its batch pointers) with a chunk of `chunk` values of its own.
template <typename F, typename Args, typename Move>
void over_batch_chunks(const Args& a, int slices, std::size_t chunk, void (*kernel)(const Args&),
                       const Move& move) {
  F* ws = workspace<F, 2>().get(chunk * std::size_t(slices));
  over_slices(slices, a.s.B, [&](int k, Index b0, Index nb) {
    Args part = a;
    move(part, b0);
    part.s.B = nb, part.cols = ws + chunk * std::size_t(k);
    kernel(part);
  });
}

template <typename F>
py::object conv1d_forward(const py::array& x, const py::array& kernel, const OptionalArray& bias,
                          Index stride, Index dilation, Index pad_left, Index pad_right,
                          Index groups) {
  Conv1dForwardArgs<F> a{};
  const ConvCall c = conv_call<F>(a, x, kernel, stride, dilation, pad_left, pad_right, groups);
  const Conv1dShape& s = c.s;
  a.bias = checked<F>(bias, "bias", {s.O});
  auto y = empty<F>({s.B, s.L, s.O});
  a.y = data(y);
  if (s.B == 0) return std::move(y);
  py::gil_scoped_release release;
  over_batch_chunks<F>(a, c.slices, conv_chunk_size(s), layer_kernel_set<F>().conv1d_forward,
                       [&](Conv1dForwardArgs<F>& part, Index b0) {
                         part.x += b0 * s.T * s.C, part.y += b0 * s.L * s.O;
                       });
  return std::move(y);
}

template <typename F>
py::object conv1d_backward(const py::array& x, const py::array& kernel, const py::array& d_y,
                           Index stride, Index dilation, Index pad_left, Index pad_right,
                           Index groups, bool use_bias, bool input_grad) {
  Conv1dBackwardArgs<F> a{};
  const ConvCall c = conv_call<F>(a, x, kernel, stride, dilation, pad_left, pad_right, groups);
  const Conv1dShape& s = c.s;
  a.d_y = checked<F>(d_y, "d_y", {s.B, s.L, s.O});
  auto d_x = empty<F>({input_grad ? s.B : 0, s.T, s.C});
  auto d_kernel = empty<F>({s.K, s.C / s.groups, s.O});
  auto d_bias = empty<F>({use_bias ? s.O : 0});
  a.d_x = input_grad ? data(d_x) : nullptr;
  a.d_kernel = data(d_kernel), a.d_bias = use_bias ? data(d_bias) : nullptr;
  const Index wsize = s.K * (s.C / s.groups) * s.O + s.O;  // a slice's partial gradients
  const std::size_t flipped = std::size_t(s.K * s.C * s.O);  // a slice's reversed kernel
  {
    py::gil_scoped_release release;
    if (s.B == 0) {
      zero(d_kernel), zero(d_bias);
    } else {
      const std::size_t chunk = conv_chunk_size(s);
      const std::size_t per = 2 * chunk + std::size_t(wsize) + flipped;
      F* ws = workspace<F, 2>().get(per * std::size_t(c.slices));
      over_slices(c.slices, s.B, [&](int k, Index b0, Index nb) {
        Conv1dBackwardArgs<F> part = a;
        F* mine = ws + per * std::size_t(k);
        part.x += b0 * s.T * s.C, part.d_y += b0 * s.L * s.O, part.s.B = nb;
        if (part.d_x != nullptr) part.d_x += b0 * s.T * s.C;
        part.cols = mine, part.d_cols = mine + chunk;
        part.flipped = mine + 2 * chunk + wsize;
        if (k > 0) {  // slice 0 writes the outputs, the others partial sums
          part.d_kernel = mine + 2 * chunk;
          if (part.d_bias != nullptr) part.d_bias = part.d_kernel + (wsize - s.O);
        }
        layer_kernel_set<F>().conv1d_backward(part);
      });
      add_partials(a.d_kernel, ws + 2 * chunk, per, wsize - s.O, c.slices);
      if (a.d_bias != nullptr)
        add_partials(a.d_bias, ws + 2 * chunk + (wsize - s.O), per, s.O, c.slices);
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_kernel,
                        use_bias ? py::object(d_bias) : py::none());
}

// ---------------------------------------------------------------------- Conv1DTranspose
// x (B, T, C) with Keras's kernel (K, F, C) -> y (B, length, F): the output steps [left, left +
// length) of the full transposed convolution (conv1d.hpp). In the Conv1dShape the transposed
// convolution is the input gradient of (layer_args.hpp), x's T and C are its L and O, and y's
// steps and filters its T and C.
template <typename F>
ConvCall transpose_call(Conv1dTransposeArgs<F>& a, const py::array& x, const py::array& kernel,
                        Index stride, Index dilation, Index left, Index length) {
  keep_blas_single_threaded();
  const auto xd = sequence_dims<F>(x, "x");
  check_at_least("stride", stride, 1);
  check_at_least("dilation", dilation, 1);
  check_at_least("left", left, 0);
  check_at_least("length", length, 0);
  if (kernel.ndim() != 3)
    throw std::invalid_argument("argument `kernel`: expected a 3-D array (kernel_size, "
                                "filters, channels), got " + std::to_string(kernel.ndim()) +
                                "-D");
  Conv1dShape s{};
  s.B = xd[0], s.L = xd[1], s.O = xd[2], s.K = kernel.shape(0), s.C = kernel.shape(1);
  s.T = length, s.stride = stride, s.dilation = dilation, s.pad_left = left, s.groups = 1;
  checked<F>(kernel, "kernel", {s.K, s.C, s.O});
  check_taps_and_channels(s);
  const double span = double(s.K - 1) * double(dilation) + 1.0;
  // Keras crops at most span - 1 steps on the left and pads fewer than `stride` on the right
  const double most = double(std::max<Index>(s.L - 1, 0)) * double(stride) + span +
                      double(stride) - 1.0;
  if (double(left) > span - 1.0 || double(left) + double(length) > most)
    throw std::invalid_argument("arguments `left`, `length`: expected left <= " +
                                std::to_string(Index(span) - 1) + " and left + length <= " +
                                std::to_string(Index(most)) + ", got " + std::to_string(left) +
                                " and " + std::to_string(length));
  if (double(s.B) * double(length) * double(s.C) >= double(INT_MAX))
    throw std::invalid_argument("arguments `x`, `length`: the output is too large");
  // Chunks of at least 256 rows: each chunk's products pack the whole kernel (K*C x O) again,
  // and d_kernel's product sums over the chunk's rows only. Measured (1 thread, 32 x 50 steps,
  // k=4, s=2, C = F, forward / backward, best of 15): C=128 2.43 / 4.72 -> 2.22 / 4.33 ms,
  // C=256 10.5 / 18.2 -> 9.2 / 17.4 ms (the L2 rule alone gave 128 and 64 rows); C=64 (256
  // rows either way) unchanged; 512 rows and more were no better.
  s.chunk_rows = std::max<Index>(256, Index(256 * 1024) / Index(sizeof(F)) / (s.K * s.C));
  a.s = s, a.x = static_cast<const F*>(x.data()), a.kernel = static_cast<const F*>(kernel.data());
  const double flops = 2.0 * double(s.B) * double(s.L) * double(s.K * s.C) * double(s.O);
  return {s, slices_for(call_threads(), flops, s.B, 1)};
}

template <typename F>
py::object conv1d_transpose_forward(const py::array& x, const py::array& kernel,
                                    const OptionalArray& bias, Index stride, Index dilation,
                                    Index left, Index length) {
  Conv1dTransposeArgs<F> a{};
  const ConvCall c = transpose_call<F>(a, x, kernel, stride, dilation, left, length);
  const Conv1dShape& s = c.s;
  a.bias = checked<F>(bias, "bias", {s.C});
  auto y = empty<F>({s.B, s.T, s.C});
  a.y = data(y);
  py::gil_scoped_release release;
  over_batch_chunks<F>(a, c.slices, conv_chunk_size(s),
                       layer_kernel_set<F>().conv1d_transpose_forward,
                       [&](Conv1dTransposeArgs<F>& part, Index b0) {
                         part.x += b0 * s.L * s.O, part.y += b0 * s.T * s.C;
                       });
  return std::move(y);
}

template <typename F>
py::object conv1d_transpose_backward(const py::array& x, const py::array& kernel,
                                     const py::array& d_y, Index stride, Index dilation,
                                     Index left, bool use_bias, bool input_grad) {
  Conv1dTransposeArgs<F> a{};
  const Index length = d_y.ndim() == 3 ? d_y.shape(1) : 0;
  const ConvCall c = transpose_call<F>(a, x, kernel, stride, dilation, left, length);
  const Conv1dShape& s = c.s;
  a.d_y = checked<F>(d_y, "d_y", {s.B, s.T, s.C});
  auto d_x = empty<F>({input_grad ? s.B : 0, s.L, s.O});
  auto d_kernel = empty<F>({s.K, s.C, s.O});
  auto d_bias = empty<F>({use_bias ? s.C : 0});
  a.d_x = input_grad ? data(d_x) : nullptr;
  a.d_kernel = data(d_kernel), a.d_bias = use_bias ? data(d_bias) : nullptr;
  if (s.B == 0) {
    zero(d_kernel), zero(d_bias);
  } else {
    py::gil_scoped_release release;
    const std::size_t chunk = conv_chunk_size(s), KCO = std::size_t(s.K * s.C * s.O);
    const std::size_t per = chunk + KCO + std::size_t(s.C);
    F* ws = workspace<F, 2>().get(per * std::size_t(c.slices));
    over_slices(c.slices, s.B, [&](int k, Index b0, Index nb) {
      Conv1dTransposeArgs<F> part = a;
      F* mine = ws + per * std::size_t(k);
      part.x += b0 * s.L * s.O, part.d_y += b0 * s.T * s.C, part.s.B = nb, part.cols = mine;
      if (part.d_x != nullptr) part.d_x += b0 * s.L * s.O;
      if (k > 0) {  // slice 0 writes the outputs, the others partial sums
        part.d_kernel = mine + chunk;
        if (part.d_bias != nullptr) part.d_bias = mine + chunk + KCO;
      }
      layer_kernel_set<F>().conv1d_transpose_backward(part);
    });
    add_partials(a.d_kernel, ws + chunk, per, Index(KCO), c.slices);
    if (a.d_bias != nullptr) add_partials(a.d_bias, ws + chunk + KCO, per, s.C, c.slices);
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_kernel,
                        use_bias ? py::object(d_bias) : py::none());
}

// ----------------------------------------------------------------------------- attention
// q (B, Tq, H, Dk), k (B, Tv, Hkv, Dk), v (B, Tv, Hkv, Dv), checked; the shape and threads of
// the call (slices of the (batch item, key/value head) pairs).
template <typename F>
std::pair<AttentionShape, int> attention_call(const py::array& q, const py::array& k,
                                              const py::array& v, bool causal) {
  keep_blas_single_threaded();
  const std::pair<const char*, const py::array*> all[] = {{"q", &q}, {"k", &k}, {"v", &v}};
  for (const auto& [name, a] : all)
    if (a->ndim() != 4)
      throw std::invalid_argument(std::string("argument `") + name +
                                  "`: expected a 4-D array (batch, steps, heads, head size), got " +
                                  std::to_string(a->ndim()) + "-D");
  AttentionShape s{};
  s.B = q.shape(0), s.Tq = q.shape(1), s.H = q.shape(2), s.Dk = q.shape(3);
  s.Tv = k.shape(1), s.Hkv = k.shape(2), s.Dv = v.shape(3), s.causal = causal;
  checked<F>(q, "q", {s.B, s.Tq, s.H, s.Dk});
  if (s.H < 1 || s.Dk < 1)
    throw std::invalid_argument("argument `q`: needs at least one head and one feature");
  if (s.Hkv < 1 || s.H % s.Hkv != 0)
    throw std::invalid_argument("argument `k`: its heads must divide the query's " +
                                std::to_string(s.H) + ", got " + std::to_string(s.Hkv));
  checked<F>(k, "k", {s.B, s.Tv, s.Hkv, s.Dk});
  checked<F>(v, "v", {s.B, s.Tv, s.Hkv, s.Dv});
  if (s.Tv < 1) throw std::invalid_argument("argument `k`: needs at least one step");
  if (s.Dv < 1) throw std::invalid_argument("argument `v`: needs at least one feature");
  if (double(s.H) * double(std::max(s.Dk, s.Dv)) >= double(INT_MAX) ||
      double(s.Tq) * double(s.Tv) >= double(INT_MAX))
    throw std::invalid_argument("arguments `q`, `k`, `v`: too large for 32-bit BLAS indexing");
  const double flops = 4.0 * double(s.B) * double(s.H) * double(s.Tq) * double(s.Tv) *
                       double(s.Dk + s.Dv);
  return {s, slices_for(call_threads(), flops, s.B * s.Hkv, 1)};
}

template <typename F>
py::object attention_forward(const py::array& q, const py::array& k, const py::array& v,
                             const OptionalArray& keep, const OptionalArray& drop, bool causal) {
  const auto [s, slices] = attention_call<F>(q, k, v, causal);
  AttentionForwardArgs<F> a{};
  a.q = static_cast<const F*>(q.data()), a.k = static_cast<const F*>(k.data());
  a.v = static_cast<const F*>(v.data());
  a.keep = checked_mask(keep, "keep", {s.B, s.Tq, s.Tv}, " (batch, query steps, key steps)");
  a.drop = checked<F>(drop, "drop", {s.B, s.H, s.Tq, s.Tv});
  auto p = empty<F>({s.B, s.H, s.Tq, s.Tv});
  auto ctx = empty<F>({s.B, s.Tq, s.H, s.Dv});
  a.p = data(p), a.ctx = data(ctx), a.s = s;
  {
    py::gil_scoped_release release;
    const std::size_t per = a.drop != nullptr ? std::size_t(s.Tq * s.Tv) : 0;
    F* ws = workspace<F, 2>().get(per * std::size_t(slices));
    over_slices(slices, s.B * s.Hkv, [&](int j, Index pair0, Index pairs) {
      AttentionForwardArgs<F> part = a;
      part.s.pair0 = pair0, part.s.pairs = pairs, part.scratch = ws + per * std::size_t(j);
      layer_kernel_set<F>().attention_forward(part);
    });
  }
  return py::make_tuple(p, ctx);
}

template <typename F>
py::object attention_backward(const py::array& q, const py::array& k, const py::array& v,
                              const py::array& p, const py::array& d_ctx,
                              const OptionalArray& drop, const OptionalArray& d_p, bool causal,
                              double d_q_scale) {
  const auto [s, slices] = attention_call<F>(q, k, v, causal);
  AttentionBackwardArgs<F> a{};
  a.q = static_cast<const F*>(q.data()), a.k = static_cast<const F*>(k.data());
  a.v = static_cast<const F*>(v.data());
  a.p = checked<F>(p, "p", {s.B, s.H, s.Tq, s.Tv});
  a.d_ctx = checked<F>(d_ctx, "d_ctx", {s.B, s.Tq, s.H, s.Dv});
  a.drop = checked<F>(drop, "drop", {s.B, s.H, s.Tq, s.Tv});
  a.d_p = checked<F>(d_p, "d_p", {s.B, s.H, s.Tq, s.Tv});
  a.d_q_scale = F(d_q_scale), a.s = s;
  auto d_q = empty<F>({s.B, s.Tq, s.H, s.Dk});
  auto d_k = empty<F>({s.B, s.Tv, s.Hkv, s.Dk});
  auto d_v = empty<F>({s.B, s.Tv, s.Hkv, s.Dv});
  a.d_q = data(d_q), a.d_k = data(d_k), a.d_v = data(d_v);
  {
    py::gil_scoped_release release;
    const std::size_t per = 2 * std::size_t(s.Tq * s.Tv);
    F* ws = workspace<F, 2>().get(per * std::size_t(slices));
    over_slices(slices, s.B * s.Hkv, [&](int j, Index pair0, Index pairs) {
      AttentionBackwardArgs<F> part = a;
      part.s.pair0 = pair0, part.s.pairs = pairs, part.scratch = ws + per * std::size_t(j);
      layer_kernel_set<F>().attention_backward(part);
    });
  }
  return py::make_tuple(d_q, d_k, d_v);
}

// ------------------------------------------------------------------------------- pooling
Pool1dShape pool_shape(Index B, Index T, Index C, Index pool, Index stride,
                                Index pad_left, Index pad_right) {
  check_at_least("pool_size", pool, 1);
  Pool1dShape s{B, T, C, 0, pool, stride, pad_left};
  s.L = window_count(T, pool, stride, pad_left, pad_right, "pool size");
  return s;
}

int rows_slices(double work, Index rows) {
  return slices_for(call_threads(), work, rows, 1);
}

template <typename F>
py::object pool1d_forward(const py::array& x, Index pool, Index stride, Index pad_left,
                          Index pad_right, const std::string& mode, bool keep_argmax) {
  const auto xd = sequence_dims<F>(x, "x");
  if (mode != "max" && mode != "average")
    throw std::invalid_argument("argument `mode`: expected 'max' or 'average', got '" + mode +
                                "'");
  const Pool1dShape s =
      pool_shape(xd[0], xd[1], xd[2], pool, stride, pad_left, pad_right);
  const bool argmax = keep_argmax && mode == "max";
  if (argmax && s.T > INT32_MAX)
    throw std::invalid_argument("argument `x`: too many steps for 32-bit argmax indices");
  auto y = empty<F>({s.B, s.L, s.C});
  auto arg = py::array_t<std::int32_t>(std::vector<py::ssize_t>{argmax ? s.B : 0, s.L, s.C});
  Pool1dForwardArgs<F> a{data(y), argmax ? arg.mutable_data() : nullptr,
                                  static_cast<const F*>(x.data()), s};
  {
    py::gil_scoped_release release;
    const auto kernel = mode == "max" ? layer_kernel_set<F>().pool1d_forward_max
                                      : layer_kernel_set<F>().pool1d_forward_average;
    const double work = double(s.B) * double(s.L) * double(s.C) * double(pool);
    over_slices(rows_slices(work, s.B), s.B, [&](int, Index b0, Index nb) {
      Pool1dForwardArgs<F> part = a;
      part.x += b0 * s.T * s.C, part.y += b0 * s.L * s.C, part.s.B = nb;
      if (part.argmax != nullptr) part.argmax += b0 * s.L * s.C;
      kernel(part);
    });
  }
  return py::make_tuple(y, argmax ? py::object(arg) : py::none());
}

template <typename F>
py::object pool1d_backward(const py::array& d_y, const OptionalArray& argmax, Index steps,
                           Index pool,
                           Index stride, Index pad_left, Index pad_right) {
  const auto dd = sequence_dims<F>(d_y, "d_y");
  check_at_least("steps", steps, 0);
  const Pool1dShape s = pool_shape(dd[0], steps, dd[2], pool, stride, pad_left,
                                            pad_right);
  if (s.L != dd[1])
    throw std::invalid_argument("argument `d_y`: expected " + std::to_string(s.L) +
                                " steps (the pooled length of " + std::to_string(steps) +
                                "), got " + std::to_string(dd[1]));
  const std::int32_t* arg = nullptr;
  if (argmax) {
    const py::array& am = *argmax;
    std::vector<Index> got(am.shape(), am.shape() + am.ndim());
    if (!am.dtype().equal(py::dtype::of<std::int32_t>()) || got != dd ||
        !(am.flags() & py::array::c_style))
      throw std::invalid_argument("argument `argmax`: expected a C-contiguous int32 array of "
                                  "shape " + shape_str(dd) + " (from the forward)");
    arg = static_cast<const std::int32_t*>(am.data());
    for (py::ssize_t k = 0; k < am.size(); ++k)  // never write outside d_x
      if (arg[k] < 0 || arg[k] >= steps)
        throw std::invalid_argument("argument `argmax`: holds a step outside [0, " +
                                    std::to_string(steps) + ")");
  }
  auto d_x = empty<F>({s.B, s.T, s.C});
  Pool1dBackwardArgs<F> a{data(d_x), static_cast<const F*>(d_y.data()), arg, s};
  {
    py::gil_scoped_release release;
    const double work = double(s.B) * double(s.L) * double(s.C) * double(pool);
    over_slices(rows_slices(work, s.B), s.B, [&](int, Index b0, Index nb) {
      Pool1dBackwardArgs<F> part = a;
      part.d_x += b0 * s.T * s.C, part.d_y += b0 * s.L * s.C, part.s.B = nb;
      if (part.argmax != nullptr) part.argmax += b0 * s.L * s.C;
      layer_kernel_set<F>().pool1d_backward(part);
    });
  }
  return std::move(d_x);
}

// ------------------------------------------------------------------------- normalization
// A 2-D (N, C) array's dimensions, checked.
template <typename F>
std::pair<Index, Index> rows_dims(const py::array& x, const char* name) {
  if (x.ndim() != 2)
    throw std::invalid_argument(std::string("argument `") + name +
                                "`: expected a 2-D array (rows, channels), got " +
                                std::to_string(x.ndim()) + "-D");
  checked<F>(x, name, {x.shape(0), x.shape(1)});
  if (x.shape(1) < 1)
    throw std::invalid_argument(std::string("argument `") + name + "`: needs at least one "
                                "channel");
  return {x.shape(0), x.shape(1)};
}

template <typename F>
py::object layer_norm_forward(const py::array& x, const OptionalArray& gamma,
                              const OptionalArray& beta,
                              double epsilon) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  if (!(epsilon > 0.0))
    throw std::invalid_argument("argument `epsilon`: expected a positive float, got " +
                                std::to_string(epsilon));
  auto y = empty<F>({N, C});
  auto mean = empty<F>({N});
  auto rstd = empty<F>({N});
  LayerNormForwardArgs<F> a{data(y), data(mean), data(rstd),
                                     static_cast<const F*>(x.data()),
                                     checked<F>(gamma, "gamma", {C}),
                                     checked<F>(beta, "beta", {C}), N, C, F(epsilon)};
  {
    py::gil_scoped_release release;
    over_slices(rows_slices(8.0 * double(N) * double(C), N), N, [&](int, Index n0, Index n) {
      LayerNormForwardArgs<F> part = a;
      part.x += n0 * C, part.y += n0 * C, part.mean += n0, part.rstd += n0, part.N = n;
      layer_kernel_set<F>().layer_norm_forward(part);
    });
  }
  return py::make_tuple(y, mean, rstd);
}

template <typename F>
py::object layer_norm_backward(const py::array& d_y, const py::array& x, const py::array& mean,
                               const py::array& rstd, const OptionalArray& gamma, bool want_gamma,
                               bool want_beta, bool input_grad) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  LayerNormBackwardArgs<F> a{};
  a.d_y = checked<F>(d_y, "d_y", {N, C});
  a.x = static_cast<const F*>(x.data());
  a.mean = checked<F>(mean, "mean", {N});
  a.rstd = checked<F>(rstd, "rstd", {N});
  a.gamma = checked<F>(gamma, "gamma", {C});
  a.N = N, a.C = C;
  auto d_x = empty<F>({input_grad ? N : 0, C});
  auto d_gamma = empty<F>({want_gamma ? C : 0});
  auto d_beta = empty<F>({want_beta ? C : 0});
  a.d_x = input_grad ? data(d_x) : nullptr;
  a.d_gamma = want_gamma ? data(d_gamma) : nullptr;
  a.d_beta = want_beta ? data(d_beta) : nullptr;
  {
    py::gil_scoped_release release;
    const int slices = rows_slices(10.0 * double(N) * double(C), N);
    F* partials = workspace<F, 2>().get(std::size_t(2 * C * std::max(slices - 1, 1)));
    over_slices(slices, N, [&](int k, Index n0, Index n) {
      LayerNormBackwardArgs<F> part = a;
      part.d_y += n0 * C, part.x += n0 * C, part.mean += n0, part.rstd += n0, part.N = n;
      if (part.d_x != nullptr) part.d_x += n0 * C;
      if (k > 0) {
        F* mine = partials + 2 * C * (k - 1);
        if (part.d_gamma != nullptr) part.d_gamma = mine;
        if (part.d_beta != nullptr) part.d_beta = mine + C;
      }
      layer_kernel_set<F>().layer_norm_backward(part);
    });
    for (int k = 1; k < slices; ++k) {
      const F* mine = partials + 2 * C * (k - 1);
      for (Index j = 0; j < C; ++j) {
        if (a.d_gamma != nullptr) a.d_gamma[j] += mine[j];
        if (a.d_beta != nullptr) a.d_beta[j] += mine[C + j];
      }
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(),
                        want_gamma ? py::object(d_gamma) : py::none(),
                        want_beta ? py::object(d_beta) : py::none());
}

// Column sums of a batch-norm pass over all rows (kernel: moments or backward_sums), in
// double: sums (2, C) (the second row only for backward_sums).
template <typename F>
std::vector<double> batch_norm_sums(void (*kernel)(const BatchNormArgs<F>&),
                                    const BatchNormArgs<F>& a, bool two) {
  const Index N = a.N, C = a.C;
  const int slices = rows_slices(4.0 * double(N) * double(C), N);
  std::vector<double> sums(std::size_t(2 * C * slices), 0.0);
  over_slices(slices, N, [&](int k, Index n0, Index n) {
    BatchNormArgs<F> part = a;
    part.x += n0 * C, part.N = n;
    if (part.d_y != nullptr) part.d_y += n0 * C;
    part.sum_a = sums.data() + 2 * C * k;
    part.sum_b = two ? part.sum_a + C : nullptr;
    kernel(part);
  });
  for (int k = 1; k < slices; ++k)
    for (Index j = 0; j < 2 * C; ++j) sums[std::size_t(j)] += sums[std::size_t(2 * C * k + j)];
  sums.resize(std::size_t(2 * C));
  return sums;
}

template <typename F>
py::object batch_norm_moments(const py::array& x) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  if (N < 1) throw std::invalid_argument("argument `x`: needs at least one row");
  auto mean = empty<F>({C});
  auto var = empty<F>({C});
  BatchNormArgs<F> a{};
  a.x = static_cast<const F*>(x.data()), a.N = N, a.C = C;
  {
    py::gil_scoped_release release;
    const auto kernel = layer_kernel_set<F>().batch_norm_moments;
    const std::vector<double> s1 = batch_norm_sums(kernel, a, false);
    for (Index c = 0; c < C; ++c) data(mean)[c] = F(s1[std::size_t(c)] / double(N));
    a.mean = data(mean);  // second pass: squared deviations from the mean (no cancellation)
    const std::vector<double> s2 = batch_norm_sums(kernel, a, false);
    for (Index c = 0; c < C; ++c) data(var)[c] = F(s2[std::size_t(c)] / double(N));
  }
  return py::make_tuple(mean, var);
}

template <typename F>
py::object batch_norm_apply(const py::array& x, const py::array& scale, const py::array& shift) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  BatchNormArgs<F> a{};
  a.x = static_cast<const F*>(x.data()), a.N = N, a.C = C;
  a.scale = checked<F>(scale, "scale", {C});
  a.shift = checked<F>(shift, "shift", {C});
  auto y = empty<F>({N, C});
  a.y = data(y);
  {
    py::gil_scoped_release release;
    over_slices(rows_slices(2.0 * double(N) * double(C), N), N, [&](int, Index n0, Index n) {
      BatchNormArgs<F> part = a;
      part.x += n0 * C, part.y += n0 * C, part.N = n;
      layer_kernel_set<F>().batch_norm_apply(part);
    });
  }
  return std::move(y);
}

template <typename F>
py::object batch_norm_backward(const py::array& d_y, const py::array& x, const py::array& mean,
                               const py::array& rstd, const py::array& scale, bool input_grad) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  BatchNormArgs<F> a{};
  a.x = static_cast<const F*>(x.data()), a.N = N, a.C = C, a.n_all = std::max<Index>(N, 1);
  a.d_y = checked<F>(d_y, "d_y", {N, C});
  a.mean = checked<F>(mean, "mean", {C});
  a.rstd = checked<F>(rstd, "rstd", {C});
  a.scale = checked<F>(scale, "scale", {C});
  auto d_x = empty<F>({input_grad ? N : 0, C});
  auto d_gamma = empty<F>({C});
  auto d_beta = empty<F>({C});
  {
    py::gil_scoped_release release;
    const auto& ks = layer_kernel_set<F>();
    const std::vector<double> s = batch_norm_sums(ks.batch_norm_backward_sums, a, true);
    std::vector<F> sums(std::size_t(2 * C));
    for (Index c = 0; c < 2 * C; ++c) sums[std::size_t(c)] = F(s[std::size_t(c)]);
    std::copy(sums.begin(), sums.begin() + C, data(d_beta));
    std::copy(sums.begin() + C, sums.end(), data(d_gamma));
    if (input_grad) {
      a.sums = sums.data(), a.y = data(d_x);
      over_slices(rows_slices(6.0 * double(N) * double(C), N), N, [&](int, Index n0, Index n) {
        BatchNormArgs<F> part = a;
        part.x += n0 * C, part.d_y += n0 * C, part.y += n0 * C, part.N = n;
        ks.batch_norm_backward(part);
      });
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_gamma, d_beta);
}

constexpr char kDy[] = "d_y";
constexpr char kQ[] = "q";

}  // namespace

void def_sequence_layers(py::module_& m) {
  const auto none = py::none();
  m.def("conv1d_forward", by_dtype<conv1d_forward<float>, conv1d_forward<double>>, py::arg("x"),
        py::arg("kernel"), py::arg("bias") = none, py::arg("stride") = 1,
        py::arg("dilation") = 1, py::arg("pad_left") = 0, py::arg("pad_right") = 0,
        py::arg("groups") = 1, "-> y (B, L, O)");
  m.def("conv1d_backward", by_dtype<conv1d_backward<float>, conv1d_backward<double>>,
        py::arg("x"), py::arg("kernel"), py::arg("d_y"), py::arg("stride") = 1,
        py::arg("dilation") = 1, py::arg("pad_left") = 0, py::arg("pad_right") = 0,
        py::arg("groups") = 1, py::arg("use_bias") = true, py::arg("input_grad") = true,
        "-> (d_x or None, d_kernel, d_bias or None)");
  m.def("conv1d_transpose_forward",
        by_dtype<conv1d_transpose_forward<float>, conv1d_transpose_forward<double>>,
        py::arg("x"), py::arg("kernel"), py::arg("bias") = none, py::arg("stride") = 1,
        py::arg("dilation") = 1, py::arg("left") = 0, py::arg("length") = 0,
        "-> y (B, length, F): steps [left, left + length) of the transposed convolution of "
        "x (B, T, C) by kernel (K, F, C)");
  m.def("conv1d_transpose_backward",
        by_dtype<conv1d_transpose_backward<float>, conv1d_transpose_backward<double>>,
        py::arg("x"), py::arg("kernel"), py::arg("d_y"), py::arg("stride") = 1,
        py::arg("dilation") = 1, py::arg("left") = 0, py::arg("use_bias") = true,
        py::arg("input_grad") = true, "-> (d_x or None, d_kernel, d_bias or None)");
  m.def("attention_forward", by_dtype_of<kQ, 0, attention_forward<float>, attention_forward<double>>,
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("keep") = none,
        py::arg("drop") = none, py::arg("causal") = false,
        "-> (p (B, H, Tq, Tv), ctx (B, Tq, H, Dv)); q (B, Tq, H, Dk) already scaled");
  m.def("attention_backward",
        by_dtype_of<kQ, 0, attention_backward<float>, attention_backward<double>>, py::arg("q"),
        py::arg("k"), py::arg("v"), py::arg("p"), py::arg("d_ctx"), py::arg("drop") = none,
        py::arg("d_p") = none, py::arg("causal") = false, py::arg("d_q_scale") = 1.0,
        "-> (d_q (B, Tq, H, Dk) times d_q_scale, d_k (B, Tv, Hkv, Dk), d_v (B, Tv, Hkv, Dv))");
  m.def("pool1d_forward", by_dtype<pool1d_forward<float>, pool1d_forward<double>>, py::arg("x"),
        py::arg("pool_size"), py::arg("stride"), py::arg("pad_left") = 0,
        py::arg("pad_right") = 0, py::arg("mode") = "max", py::arg("keep_argmax") = true,
        "-> (y (B, L, C), argmax int32 (B, L, C) or None)");
  m.def("pool1d_backward", by_dtype_of<kDy, 0, pool1d_backward<float>, pool1d_backward<double>>,
        py::arg("d_y"), py::arg("argmax"), py::arg("steps"), py::arg("pool_size"),
        py::arg("stride"), py::arg("pad_left") = 0, py::arg("pad_right") = 0,
        "-> d_x (B, steps, C); argmax None: average pooling");
  m.def("layer_norm_forward", by_dtype<layer_norm_forward<float>, layer_norm_forward<double>>,
        py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("epsilon"),
        "-> (y (N, C), mean (N,), rstd (N,))");
  m.def("layer_norm_backward",
        by_dtype_of<kX, 1, layer_norm_backward<float>, layer_norm_backward<double>>,
        py::arg("d_y"), py::arg("x"), py::arg("mean"), py::arg("rstd"), py::arg("gamma"),
        py::arg("want_gamma") = true, py::arg("want_beta") = true, py::arg("input_grad") = true,
        "-> (d_x or None, d_gamma or None, d_beta or None)");
  m.def("batch_norm_moments", by_dtype<batch_norm_moments<float>, batch_norm_moments<double>>,
        py::arg("x"), "-> (mean (C,), biased variance (C,)) over the rows of x (N, C)");
  m.def("batch_norm_apply", by_dtype<batch_norm_apply<float>, batch_norm_apply<double>>,
        py::arg("x"), py::arg("scale"), py::arg("shift"), "-> x * scale + shift (N, C)");
  m.def("batch_norm_backward",
        by_dtype_of<kX, 1, batch_norm_backward<float>, batch_norm_backward<double>>,
        py::arg("d_y"), py::arg("x"), py::arg("mean"), py::arg("rstd"), py::arg("scale"),
        py::arg("input_grad") = true, "-> (d_x or None, d_gamma (C,), d_beta (C,))");
}

}  // namespace bindings
}  // namespace fastrnn
