// fastrnn._core: the only file that knows Python.
// Every entry point: check every argument (dtype, shape, contiguity) and throw a ValueError
// naming it; allocate outputs while holding the GIL; release the GIL around the kernel only.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cblas.h>

#include <climits>
#include <cstring>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "dispatch.hpp"
#include "parallel.hpp"

namespace py = pybind11;

std::atomic<int>& fastrnn::configured_threads() {
  static std::atomic<int> threads = [] {
    const int n = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    scipy_openblas_set_num_threads(1);  // fastrnn threads its own work (parallel.hpp)
    return n;
  }();
  return threads;
}
using fastrnn::Index;
using Opt = std::optional<py::array>;

namespace {

std::string shape_str(const std::vector<Index>& s) {
  std::ostringstream o;
  o << "(";
  for (std::size_t k = 0; k < s.size(); ++k) o << (k ? ", " : "") << s[k];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

template <typename F>
const char* dtype_name() {
  return sizeof(F) == 4 ? "float32" : "float64";
}

// Checks that `a` is a C-contiguous F array of exactly `shape`; returns its data.
template <typename F>
const F* checked(const py::array& a, const char* name, const std::vector<Index>& shape) {
  std::vector<Index> got(a.shape(), a.shape() + a.ndim());
  const bool dtype_ok = a.dtype().is(py::dtype::of<F>());
  if (!dtype_ok || got != shape) {
    std::ostringstream o;
    o << "argument `" << name << "`: expected a " << dtype_name<F>() << " array of shape "
      << shape_str(shape) << ", got " << py::str(a.dtype()).cast<std::string>() << " "
      << shape_str(got);
    throw std::invalid_argument(o.str());
  }
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string("argument `") + name + "`: must be C-contiguous");
  return static_cast<const F*>(a.data());
}

template <typename F>
const F* checked(const Opt& a, const char* name, const std::vector<Index>& shape) {
  return a ? checked<F>(*a, name, shape) : nullptr;
}

// A step mask (see args.hpp): a C-contiguous bool or uint8 array (B, T), or none.
const std::uint8_t* checked_step_mask(const Opt& m, Index B, Index T) {
  if (!m) return nullptr;
  const py::array& a = *m;
  std::vector<Index> got(a.shape(), a.shape() + a.ndim());
  const bool dtype_ok =
      a.dtype().is(py::dtype::of<bool>()) || a.dtype().is(py::dtype::of<std::uint8_t>());
  if (!dtype_ok || got != std::vector<Index>{B, T}) {
    std::ostringstream o;
    o << "argument `step_mask`: expected a bool or uint8 array of shape " << shape_str({B, T})
      << " (batch, time), got " << py::str(a.dtype()).cast<std::string>() << " "
      << shape_str(got);
    throw std::invalid_argument(o.str());
  }
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument("argument `step_mask`: must be C-contiguous");
  return static_cast<const std::uint8_t*>(a.data());
}

// Recycles the memory of large returned arrays (outputs, tapes, gradients). Training asks for
// the same shapes every batch; memory fresh from the OS costs a page fault and a zeroing per
// 4 KiB page (about 10% of a Jena-shaped LSTM step), so freed buffers wait here, up to a
// limit, for the next array of exactly their size.
class BufferPool {
 public:
  static constexpr std::size_t kMinBytes = std::size_t(1) << 16;  // smaller: malloc is fine
  static constexpr std::size_t kMaxPooled = std::size_t(1) << 28;  // 256 MiB held at most

  std::unique_ptr<char[]> take(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end()) {
        std::unique_ptr<char[]> buffer = std::move(it->second);
        free_.erase(it);
        pooled_ -= bytes;
        return buffer;
      }
    }
    return std::make_unique<char[]>(bytes);  // zeroed once; reused buffers are not
  }

  void give(std::size_t bytes, std::unique_ptr<char[]> buffer) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pooled_ + bytes > kMaxPooled) return;  // over the limit: freed here
    free_.emplace(bytes, std::move(buffer));
    pooled_ += bytes;
  }

 private:
  std::mutex mutex_;
  std::multimap<std::size_t, std::unique_ptr<char[]>> free_;
  std::size_t pooled_ = 0;
};

// Set when the pool is destroyed at exit; an array freed after that frees its own buffer.
std::atomic<bool> buffer_pool_closed{false};

struct ClosingBufferPool : BufferPool {
  ~ClosingBufferPool() { buffer_pool_closed = true; }
};

BufferPool& buffer_pool() {
  static ClosingBufferPool pool;
  return pool;
}

// The owner of a pooled buffer, kept alive by the array's base capsule.
struct PooledBuffer {
  PooledBuffer(std::size_t size, std::unique_ptr<char[]> buffer)
      : bytes(size), data(std::move(buffer)) {}
  ~PooledBuffer() {
    if (!buffer_pool_closed) buffer_pool().give(bytes, std::move(data));
  }
  std::size_t bytes;
  std::unique_ptr<char[]> data;
};

// An uninitialised C-contiguous array of `shape` (every kernel writes all of its outputs).
template <typename F>
py::array_t<F> empty(const std::vector<Index>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  std::size_t count = 1;
  for (Index d : shape) count *= std::size_t(d);
  const std::size_t bytes = count * sizeof(F);
  if (bytes < BufferPool::kMinBytes) return py::array_t<F>(dims);
  auto owner = std::make_unique<PooledBuffer>(bytes, buffer_pool().take(bytes));
  F* data = reinterpret_cast<F*>(owner->data.get());
  py::capsule base(owner.get(), [](void* p) {
    std::unique_ptr<PooledBuffer>(static_cast<PooledBuffer*>(p));  // returns it to the pool
  });
  owner.release();  // the capsule owns it now
  return py::array_t<F>(dims, data, base);
}

template <typename F>
F* data(py::array_t<F>& a) {
  return a.mutable_data();
}

// Per-thread scratch memory, reused across calls (kernels never allocate).
template <typename F>
struct Workspace {
  std::unique_ptr<F[]> buffer;
  std::size_t size = 0;
  F* get(std::size_t n) {
    if (n > size) {
      buffer = std::make_unique<F[]>(n);
      size = n;
    }
    return buffer.get();
  }
};
template <typename F, int Slot = 0>
Workspace<F>& workspace() {
  thread_local Workspace<F> ws;
  return ws;
}

// fastrnn threads its own work and needs OpenBLAS single-threaded inside it (parallel.hpp);
// something else in the process (threadpoolctl, another library sharing this OpenBLAS) may
// have changed that, so every entry point puts it back. Cheap: one call when it is right.
void keep_blas_single_threaded() {
  if (scipy_openblas_get_num_threads() != 1) scipy_openblas_set_num_threads(1);
}

// Sizes of one call, read from x (B, T, I) and recurrent_kernel (H, gates * H), and the
// threads it may use, read once (buffers per thread are sized from it).
struct Dims {
  Index B, T, I, H, G;
  int threads;
};
int call_threads() { return std::max(1, fastrnn::configured_threads().load()); }

// How a call's time loop is threaded (see plan_steps), decided once per call.
fastrnn::StepPlan plan_of(const Dims& d, bool masked) {
  return fastrnn::plan_steps(d.threads, d.B, d.H, d.G, d.T, masked);
}

template <typename F>
Dims read_dims(const py::array& x, const py::array& recurrent_kernel, Index gates) {
  keep_blas_single_threaded();
  if (x.ndim() != 3)
    throw std::invalid_argument("argument `x`: expected a 3-D array (batch, time, features), got " +
                                std::to_string(x.ndim()) + "-D");
  if (recurrent_kernel.ndim() != 2 || recurrent_kernel.shape(0) < 1)
    throw std::invalid_argument("argument `recurrent_kernel`: expected a 2-D array (units, " +
                                std::to_string(gates) + " * units) with units >= 1");
  Dims d{x.shape(0), x.shape(1), x.shape(2), recurrent_kernel.shape(0), 0, call_threads()};
  d.G = gates * d.H;
  if (d.I < 1) throw std::invalid_argument("argument `x`: needs at least one feature");
  checked<F>(x, "x", {d.B, d.T, d.I});
  checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  // OpenBLAS takes 32-bit sizes and strides.
  const double biggest = static_cast<double>(d.B) * static_cast<double>(d.T) *
                         static_cast<double>(std::max(std::max(d.G, d.I), Index(1)));
  if (biggest >= static_cast<double>(INT_MAX))
    throw std::invalid_argument("arrays too large for 32-bit BLAS indexing: batch * time * "
                                "max(features, gates * units) must stay below 2**31");
  return d;
}

// Runs a time loop (forward, or backward_steps) threaded as plan_steps says. For a backward,
// `inputs` is the per-row work after the loop: a batch slice does its own rows' right after
// its loop; after a unit split it follows as a phase of its own, split by rows when it is big
// enough.
template <typename Args>
void run_steps(void (*steps)(const Args&), const Args& a, const Dims& d,
               const fastrnn::StepPlan& plan, void (*inputs)(const Args&) = nullptr) {
  if (plan.slices <= 1) return steps(a);
  if (!plan.units) return fastrnn::run_batch_sliced(steps, a, plan.slices);
  Args threaded = a;
  threaded.split.inputs_later = inputs != nullptr;
  fastrnn::run_unit_sliced(steps, threaded, plan.slices);
  if (inputs != nullptr) {
    const double flops = 2.0 * double(d.B) * double(d.T) * double(d.I) * double(d.G);
    fastrnn::run_batch_sliced(inputs, a, fastrnn::slices_for(d.threads, flops, d.B, 4));
  }
}
// U^T (G, H) and K^T (G, I), stored at ws for backward: its products with them (d_h_{t-1} =
// dz_t U^T every step, d_x = dz K^T) then run as plain GEMMs, which OpenBLAS computes with its
// small-matrix kernels at small sizes. As transposed products they took its general path at
// small sizes, which packs the operands and takes a buffer from an allocator behind a lock,
// every step (and threads calling it every step queue on that lock).
void transpose(const float* src, Index rows, Index cols, float* dst) {
  scipy_cblas_somatcopy(CblasRowMajor, CblasTrans, static_cast<int>(rows), static_cast<int>(cols),
                        1.0f, src, static_cast<int>(cols), dst, static_cast<int>(rows));
}
void transpose(const double* src, Index rows, Index cols, double* dst) {
  scipy_cblas_domatcopy(CblasRowMajor, CblasTrans, static_cast<int>(rows), static_cast<int>(cols),
                        1.0, src, static_cast<int>(cols), dst, static_cast<int>(rows));
}
template <typename F, typename Args>
void store_transposed_weights(Args& a, const Dims& d, F* ws) {
  transpose(a.recurrent_kernel, d.H, d.G, ws);
  transpose(a.kernel, d.I, d.G, ws + d.H * d.G);
  a.recurrent_kernel_t = ws, a.kernel_t = ws + d.H * d.G;
}
std::size_t transposed_weights_size(const Dims& d) { return std::size_t((d.H + d.I) * d.G); }

// The weight phase (see stacked_width in args.hpp): its workspace holds the stacked rows
// (B*T, S), the stacked gradients (S, G) and the row split's partial sums ((threads-1) S G).
std::size_t weight_phase_size(const Dims& d, bool gru) {
  const Index S = fastrnn::stacked_width(d.I, d.H, gru);
  const Index threads = d.threads;
  return std::size_t(d.B * d.T * S + threads * S * d.G);
}

// Points a.stacked and a.d_weights into ws (weight_phase_size elements); returns the partials.
template <typename F, typename Args>
F* place_weight_phase(Args& a, const Dims& d, bool gru, F* ws) {
  const Index S = fastrnn::stacked_width(d.I, d.H, gru);
  a.stacked = ws, a.d_weights = ws + d.B * d.T * S;
  return a.d_weights + S * d.G;
}

// The phases of a backward, once its workspace is placed: the time loop and the per-row work
// after it (threaded as plan_steps says), then the weight gradients, unstacked into d_kernel
// (I, G), d_rec (H, G) and d_bias (G,), or for GRU (2, G) (its stack is d_kernel, d_bias[0],
// d_rec, d_bias[1]). A split by batch rows with narrow gradients runs as one phase.
template <typename F, typename Args>
void run_backward(void (*steps)(const Args&), void (*inputs)(const Args&),
                  void (*weights)(const Args&), const Args& a, const Dims& d,
                  const fastrnn::StepPlan& plan, bool gru, F* partials, F* d_kernel, F* d_rec,
                  F* d_bias) {
  const Index S = fastrnn::stacked_width(d.I, d.H, gru), G = d.G;
  if (!plan.units && plan.slices > 1 && G < fastrnn::kMinColumnSplit) {
    fastrnn::run_row_sliced(steps, weights, a, G, S * G, plan.slices, partials);
  } else {
    run_steps(steps, a, d, plan, inputs);
    const double flops = 2.0 * double(d.B) * double(d.T) * double(S) * double(G);
    fastrnn::run_weights(weights, a, G, S * G, flops, partials, d.threads);
  }
  const F* w = a.d_weights;
  std::copy(w, w + d.I * G, d_kernel);
  const Index rec = gru ? d.I + 1 : d.I;
  std::copy(w + rec * G, w + (rec + d.H) * G, d_rec);
  std::copy(w + (S - 1) * G, w + S * G, d_bias + (gru ? G : 0));
  if (gru) std::copy(w + d.I * G, w + (d.I + 1) * G, d_bias);
}

// U (forward, transposed = false) or U^T (backward) in panels for the recurrent products of
// a call (see Panels in args.hpp), in a workspace of their own; none when they would not pay:
// OpenBLAS without in-place kernels, W whole small enough for them already, no width small
// enough, or a unit split (which multiplies by its own columns of W instead).
template <typename F>
fastrnn::Panels<F> recurrent_panels(const F* W, const Dims& d, bool transposed,
                                    const fastrnn::StepPlan& plan) {
  const Index K = transposed ? d.G : d.H, N = transposed ? d.H : d.G;
  if (!fastrnn::blas_reads_small_in_place() ||
      double(d.B) * double(N) * double(K) <= fastrnn::kSmallProduct ||
      16.0 * double(K) > fastrnn::kSmallProduct || plan.units)
    return {};
  // 64 columns: panel_product multiplies a whole panel, or half or a quarter of one, whichever
  // is the widest its rows multiply in place.
  const Index width = 64;
  F* panels = workspace<F, 1>().get(std::size_t(K * N));
  for (Index c = 0; c < N; c += width) {
    const Index w = std::min(width, N - c);
    for (Index k = 0; k < K; ++k)
      std::copy(W + k * N + c, W + k * N + c + w, panels + c * K + k * w);
  }
  return {panels, width};
}

template <typename F>
void copy_or_zero(F* dst, const F* src, Index n) {
  if (src != nullptr)
    std::memcpy(dst, src, sizeof(F) * static_cast<std::size_t>(n));
  else
    std::fill(dst, dst + n, F(0));
}

template <typename F>
void zero(py::array_t<F>& a) {
  std::fill(a.mutable_data(), a.mutable_data() + a.size(), F(0));
}

template <typename F>
const fastrnn::KernelSet<F>& kernel_set();
template <>
const fastrnn::KernelSet<float>& kernel_set<float>() {
  return fastrnn::kernels().f32;
}
template <>
const fastrnn::KernelSet<double>& kernel_set<double>() {
  return fastrnn::kernels().f64;
}

// W (K, N) packed for the kernel set's recurrent micro-kernel (see Packed in args.hpp), into
// `out` (packed_size elements).
template <typename F>
std::size_t packed_size(Index K, Index N) {
  const Index w = kernel_set<F>().packed_width;
  return std::size_t((N + w - 1) / w * w * K);
}
template <typename F>
fastrnn::Packed<F> pack(const F* W, Index K, Index N, F* out) {
  const Index width = kernel_set<F>().packed_width;
  for (Index c = 0; c < N; c += width) {
    const Index w = std::min(width, N - c);
    F* panel = out + c * K;  // (K, width)
    for (Index k = 0; k < K; ++k) {
      std::copy(W + k * N + c, W + k * N + c + w, panel + k * width);
      std::fill(panel + k * width + w, panel + (k + 1) * width, F(0));
    }
  }
  return {out, K, N};
}

// Whether the per-step recurrent products go to the packed micro-kernel: by the rule below
// (auto), never, or always (the last two for tests and measurements, set_packed_products).
enum class PackedMode : int { automatic = 0, never = 1, always = 2 };
std::atomic<int>& packed_mode() {
  static std::atomic<int> mode{0};
  return mode;
}

// U (forward, (H, G)) or U^T (backward, (G, H)) packed once per call for the micro-kernel of
// packed_gemm.hpp, in a workspace of its own, or none (the products then go to OpenBLAS, by
// `panels` when there are some, else whole). The rule, from measurements on a busy 2-core EPYC
// (benchmarks/bench_packed.py: one thread, float32, thread CPU time, packed / OpenBLAS): the
// micro-kernel wins where OpenBLAS would copy W on every step, i.e. where one call's product
// (rows a thread multiplies x N x K) is beyond its in-place bound (kSmallProduct): 32x512x128
// 0.75-0.85, 16x1024x256 0.46, 64x2048x512 0.84, 32x1024x4096 0.92; below it OpenBLAS
// multiplies in place and is faster (32x256x64 1.10, 32x80x20 1.5, 128x16x64 3.9). Where W's
// panels let OpenBLAS multiply in place anyway (H about 100-300), whole runs measured the same
// or 1-4% slower with the micro-kernel (LSTM and GRU 64x100x32x128, interleaved processes), so
// panels are kept there. Whole runs where it is used (fwd+bwd, 2 threads, CPU time, packed /
// not): LSTM 32x50x512x1024 0.82, LSTM 64x100x256x512 0.95, GRU 0.95, SimpleRNN 0.97. Only the
// AVX-512 set was measured to win at the large sizes (AVX2: 32x4096x1024 1.14), so the others
// keep OpenBLAS. The modes never/always (set_packed_products) are for tests and measurements.
template <typename F>
fastrnn::Packed<F> recurrent_packed(const F* W, const Dims& d, bool transposed,
                                    const fastrnn::StepPlan& plan,
                                    const fastrnn::Panels<F>& panels) {
  const Index K = transposed ? d.G : d.H, N = transposed ? d.H : d.G;
  const auto mode = static_cast<PackedMode>(packed_mode().load());
  if (mode == PackedMode::never) return {};
  if (mode == PackedMode::automatic) {
    const Index rows = plan.units ? d.B : (d.B + plan.slices - 1) / std::max(1, plan.slices);
    const bool large = double(rows) * double(N) * double(K) > fastrnn::kSmallProduct;
    const bool panels_in_place =  // (panel_product multiplies 16 columns at least)
        panels.data != nullptr && 16.0 * double(rows) * double(K) <= fastrnn::kSmallProduct;
    if (!large || panels_in_place || std::string(fastrnn::kernels().name) != "avx512") return {};
  }
  return pack(W, K, N, workspace<F, 2>().get(packed_size<F>(K, N)));
}

fastrnn::Activation parse_activation(const std::string& name) {
  if (name == "tanh") return fastrnn::Activation::tanh;
  if (name == "relu") return fastrnn::Activation::relu;
  if (name == "linear") return fastrnn::Activation::linear;
  throw std::invalid_argument("argument `activation`: expected 'tanh', 'relu' or 'linear', got '" +
                              name + "'");
}

Index parse_truncate(Index truncate) {
  if (truncate < 0)
    throw std::invalid_argument("argument `truncate`: expected 0 (full BPTT) or a positive "
                                "number of steps, got " + std::to_string(truncate));
  return truncate;
}

// ---------------------------------------------------------------------------- SimpleRNN
template <typename F>
py::tuple simple_rnn_forward(const py::array& x, const Opt& h0, const py::array& kernel,
                             const py::array& recurrent_kernel, const Opt& bias, const Opt& mask,
                             const std::string& activation, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 1);
  fastrnn::SimpleRnnForwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.bias = checked<F>(bias, "bias", {d.G});
  a.recurrent_mask = checked<F>(mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  a.activation = parse_activation(activation);
  auto outputs = empty<F>({d.B, d.T, d.H});
  auto h_last = empty<F>({d.B, d.H});
  a.outputs = data(outputs);
  a.h_last = data(h_last);
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      copy_or_zero(a.h_last, a.h0, d.B * d.H);
    } else {
      a.h_scratch = workspace<F>().get(std::size_t(d.B * d.H));
      const fastrnn::StepPlan plan = plan_of(d, a.recurrent_mask != nullptr);
      a.recurrent_panels = recurrent_panels(a.recurrent_kernel, d, false, plan);
      a.recurrent_packed = recurrent_packed(a.recurrent_kernel, d, false, plan, a.recurrent_panels);
      run_steps(kernel_set<F>().simple_rnn_forward, a, d, plan);
    }
  }
  return py::make_tuple(outputs, h_last);
}

template <typename F>
py::tuple simple_rnn_backward(const py::array& x, const Opt& h0, const py::array& kernel,
                              const py::array& recurrent_kernel, const Opt& mask,
                              const py::array& outputs, const Opt& d_outputs, const Opt& d_h_last,
                              const std::string& activation, Index truncate, bool input_grad,
                              const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 1);
  fastrnn::SimpleRnnBackwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.recurrent_mask = checked<F>(mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  a.outputs = checked<F>(outputs, "outputs", {d.B, d.T, d.H});
  a.d_outputs = checked<F>(d_outputs, "d_outputs", {d.B, d.T, d.H});
  a.d_h_last = checked<F>(d_h_last, "d_h_last", {d.B, d.H});
  a.activation = parse_activation(activation);
  a.truncate = parse_truncate(truncate);
  auto d_x = empty<F>({input_grad ? d.B : 0, d.T, d.I});
  auto d_h0 = empty<F>({d.B, d.H});
  auto d_kernel = empty<F>({d.I, d.G});
  auto d_rec = empty<F>({d.H, d.G});
  auto d_bias = empty<F>({d.G});
  a.d_x = input_grad ? data(d_x) : nullptr, a.d_h0 = data(d_h0);
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      zero(d_x), zero(d_kernel), zero(d_rec), zero(d_bias);
      copy_or_zero(a.d_h0, a.d_h_last, d.B * d.H);
    } else {
      const std::size_t bth = std::size_t(d.B * d.T * d.H), bh = std::size_t(d.B * d.H);
      const std::size_t main = bth + bh + transposed_weights_size(d) + weight_phase_size(d, false);
      F* ws = workspace<F>().get(main + (a.step_mask != nullptr ? bh : 0));
      a.d_pre = ws, a.d_h = ws + bth, a.d_h_held = ws + main;
      store_transposed_weights(a, d, ws + bth + bh);
      const fastrnn::StepPlan plan = plan_of(d, a.recurrent_mask != nullptr);
      a.recurrent_t_panels = recurrent_panels(a.recurrent_kernel_t, d, true, plan);
      a.recurrent_t_packed =
          recurrent_packed(a.recurrent_kernel_t, d, true, plan, a.recurrent_t_panels);
      F* partials = place_weight_phase(a, d, false, ws + bth + bh + transposed_weights_size(d));
      const auto& ks = kernel_set<F>();
      run_backward(ks.simple_rnn_backward_steps, ks.simple_rnn_backward_inputs,
                   ks.simple_rnn_backward_weights, a, d, plan, false, partials, data(d_kernel),
                   data(d_rec), data(d_bias));
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_h0, d_kernel, d_rec, d_bias);
}

// ---------------------------------------------------------------------------- LSTM
template <typename F>
py::tuple lstm_forward(const py::array& x, const Opt& h0, const Opt& c0, const py::array& kernel,
                       const py::array& recurrent_kernel, const Opt& bias, const Opt& mask,
                       bool keep_tape, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 4);
  fastrnn::LstmForwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.bias = checked<F>(bias, "bias", {d.G});
  a.recurrent_mask = checked<F>(mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  auto outputs = empty<F>({d.B, d.T, d.H});
  auto h_last = empty<F>({d.B, d.H});
  auto c_last = empty<F>({d.B, d.H});
  // Without a tape (inference), gates and cells are one step's scratch in the workspace.
  const Index steps = keep_tape ? d.T : 0;
  auto gates = empty<F>({d.B, steps, d.G});
  auto cells = empty<F>({d.B, steps, d.H});
  a.outputs = data(outputs), a.h_last = data(h_last), a.c_last = data(c_last);
  a.gates = data(gates), a.cells = data(cells), a.no_tape = !keep_tape;
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      copy_or_zero(a.h_last, a.h0, d.B * d.H);
      copy_or_zero(a.c_last, a.c0, d.B * d.H);
    } else {
      const std::size_t bh = std::size_t(d.B * d.H), bg = std::size_t(d.B * d.G);
      F* ws = workspace<F>().get(bh + (keep_tape ? 0 : bg + bh));
      a.h_scratch = ws;
      if (!keep_tape) a.gates = ws + bh, a.cells = ws + bh + bg;
      const fastrnn::StepPlan plan = plan_of(d, a.recurrent_mask != nullptr);
      a.recurrent_panels = recurrent_panels(a.recurrent_kernel, d, false, plan);
      a.recurrent_packed = recurrent_packed(a.recurrent_kernel, d, false, plan, a.recurrent_panels);
      run_steps(kernel_set<F>().lstm_forward, a, d, plan);
    }
  }
  if (!keep_tape) return py::make_tuple(outputs, h_last, c_last, py::none(), py::none());
  return py::make_tuple(outputs, h_last, c_last, gates, cells);
}

template <typename F>
py::tuple lstm_backward(const py::array& x, const Opt& h0, const Opt& c0, const py::array& kernel,
                        const py::array& recurrent_kernel, const Opt& mask,
                        const py::array& outputs, const py::array& gates, const py::array& cells,
                        const Opt& d_outputs, const Opt& d_h_last, const Opt& d_c_last,
                        Index truncate, bool input_grad, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 4);
  fastrnn::LstmBackwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.recurrent_mask = checked<F>(mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  a.outputs = checked<F>(outputs, "outputs", {d.B, d.T, d.H});
  a.gates = checked<F>(gates, "gates", {d.B, d.T, d.G});
  a.cells = checked<F>(cells, "cells", {d.B, d.T, d.H});
  a.d_outputs = checked<F>(d_outputs, "d_outputs", {d.B, d.T, d.H});
  a.d_h_last = checked<F>(d_h_last, "d_h_last", {d.B, d.H});
  a.d_c_last = checked<F>(d_c_last, "d_c_last", {d.B, d.H});
  a.truncate = parse_truncate(truncate);
  auto d_x = empty<F>({input_grad ? d.B : 0, d.T, d.I});
  auto d_h0 = empty<F>({d.B, d.H});
  auto d_c0 = empty<F>({d.B, d.H});
  auto d_kernel = empty<F>({d.I, d.G});
  auto d_rec = empty<F>({d.H, d.G});
  auto d_bias = empty<F>({d.G});
  a.d_x = input_grad ? data(d_x) : nullptr, a.d_h0 = data(d_h0), a.d_c0 = data(d_c0);
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      zero(d_x), zero(d_kernel), zero(d_rec), zero(d_bias);
      copy_or_zero(a.d_h0, a.d_h_last, d.B * d.H);
      copy_or_zero(a.d_c0, a.d_c_last, d.B * d.H);
    } else {
      const std::size_t btg = std::size_t(d.B * d.T * d.G), bh = std::size_t(d.B * d.H);
      const std::size_t main =
          btg + 2 * bh + transposed_weights_size(d) + weight_phase_size(d, false);
      F* ws = workspace<F>().get(main + (a.step_mask != nullptr ? bh : 0));
      a.d_gates = ws, a.d_h = ws + btg, a.d_c = ws + btg + bh, a.d_h_held = ws + main;
      store_transposed_weights(a, d, ws + btg + 2 * bh);
      const fastrnn::StepPlan plan = plan_of(d, a.recurrent_mask != nullptr);
      a.recurrent_t_panels = recurrent_panels(a.recurrent_kernel_t, d, true, plan);
      a.recurrent_t_packed =
          recurrent_packed(a.recurrent_kernel_t, d, true, plan, a.recurrent_t_panels);
      F* partials = place_weight_phase(a, d, false, ws + btg + 2 * bh + transposed_weights_size(d));
      const auto& ks = kernel_set<F>();
      run_backward(ks.lstm_backward_steps, ks.lstm_backward_inputs, ks.lstm_backward_weights, a,
                   d, plan, false, partials, data(d_kernel), data(d_rec), data(d_bias));
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_h0, d_c0, d_kernel, d_rec,
                        d_bias);
}

// ---------------------------------------------------------------------------- GRU
template <typename F>
py::tuple gru_forward(const py::array& x, const Opt& h0, const py::array& kernel,
                      const py::array& recurrent_kernel, const Opt& bias, const Opt& mask,
                      bool keep_tape, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 3);
  fastrnn::GruForwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.bias = checked<F>(bias, "bias", {2, d.G});
  a.recurrent_mask = checked<F>(mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  auto outputs = empty<F>({d.B, d.T, d.H});
  auto h_last = empty<F>({d.B, d.H});
  // Without a tape (inference), gates and hz_h are one step's scratch in the workspace.
  const Index steps = keep_tape ? d.T : 0;
  auto gates = empty<F>({d.B, steps, d.G});
  auto hz_h = empty<F>({d.B, steps, d.H});
  a.outputs = data(outputs), a.h_last = data(h_last), a.gates = data(gates), a.hz_h = data(hz_h);
  a.no_tape = !keep_tape;
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      copy_or_zero(a.h_last, a.h0, d.B * d.H);
    } else {
      const std::size_t bh = std::size_t(d.B * d.H), bg = std::size_t(d.B * d.G);
      F* ws = workspace<F>().get(bh + bg + (keep_tape ? 0 : bg + bh));
      a.h_scratch = ws, a.hz = ws + bh;
      if (!keep_tape) a.gates = ws + bh + bg, a.hz_h = ws + bh + 2 * bg;
      const fastrnn::StepPlan plan = plan_of(d, a.recurrent_mask != nullptr);
      a.recurrent_panels = recurrent_panels(a.recurrent_kernel, d, false, plan);
      a.recurrent_packed = recurrent_packed(a.recurrent_kernel, d, false, plan, a.recurrent_panels);
      run_steps(kernel_set<F>().gru_forward, a, d, plan);
    }
  }
  if (!keep_tape) return py::make_tuple(outputs, h_last, py::none(), py::none());
  return py::make_tuple(outputs, h_last, gates, hz_h);
}

template <typename F>
py::tuple gru_backward(const py::array& x, const Opt& h0, const py::array& kernel,
                       const py::array& recurrent_kernel, const Opt& mask,
                       const py::array& outputs, const py::array& gates, const py::array& hz_h,
                       const Opt& d_outputs, const Opt& d_h_last, Index truncate,
                       bool input_grad, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 3);
  fastrnn::GruBackwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.recurrent_mask = checked<F>(mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  a.outputs = checked<F>(outputs, "outputs", {d.B, d.T, d.H});
  a.gates = checked<F>(gates, "gates", {d.B, d.T, d.G});
  a.hz_h = checked<F>(hz_h, "hz_h", {d.B, d.T, d.H});
  a.d_outputs = checked<F>(d_outputs, "d_outputs", {d.B, d.T, d.H});
  a.d_h_last = checked<F>(d_h_last, "d_h_last", {d.B, d.H});
  a.truncate = parse_truncate(truncate);
  auto d_x = empty<F>({input_grad ? d.B : 0, d.T, d.I});
  auto d_h0 = empty<F>({d.B, d.H});
  auto d_kernel = empty<F>({d.I, d.G});
  auto d_rec = empty<F>({d.H, d.G});
  auto d_bias = empty<F>({2, d.G});
  a.d_x = input_grad ? data(d_x) : nullptr, a.d_h0 = data(d_h0);
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      zero(d_x), zero(d_kernel), zero(d_rec), zero(d_bias);
      copy_or_zero(a.d_h0, a.d_h_last, d.B * d.H);
    } else {
      const std::size_t btg = std::size_t(d.B * d.T * d.G), bh = std::size_t(d.B * d.H);
      F* ws = workspace<F>().get(2 * btg + 2 * bh + transposed_weights_size(d) +
                                 weight_phase_size(d, true));
      a.d_xz = ws, a.d_hz = ws + btg, a.d_h = ws + 2 * btg, a.d_h_rec = ws + 2 * btg + bh;
      store_transposed_weights(a, d, ws + 2 * btg + 2 * bh);
      const fastrnn::StepPlan plan = plan_of(d, a.recurrent_mask != nullptr);
      a.recurrent_t_panels = recurrent_panels(a.recurrent_kernel_t, d, true, plan);
      a.recurrent_t_packed =
          recurrent_packed(a.recurrent_kernel_t, d, true, plan, a.recurrent_t_panels);
      F* partials =
          place_weight_phase(a, d, true, ws + 2 * btg + 2 * bh + transposed_weights_size(d));
      const auto& ks = kernel_set<F>();
      run_backward(ks.gru_backward_steps, ks.gru_backward_inputs, ks.gru_backward_weights, a, d,
                   plan, true, partials, data(d_kernel), data(d_rec), data(d_bias));
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_h0, d_kernel, d_rec, d_bias);
}

// ---------------------------------------------------------------------------- streaming
// One time step with the state updated in place: x (B, I), h and c (B, H) read and
// overwritten. For online inference: no allocation (the step's gates live in the per-thread
// workspace), no tape, checks only.
template <typename F>
Dims step_dims(const py::array& x, const py::array& recurrent_kernel, Index gates) {
  keep_blas_single_threaded();
  if (x.ndim() != 2)
    throw std::invalid_argument("argument `x`: expected a 2-D array (batch, features), got " +
                                std::to_string(x.ndim()) + "-D");
  if (recurrent_kernel.ndim() != 2 || recurrent_kernel.shape(0) < 1)
    throw std::invalid_argument("argument `recurrent_kernel`: expected a 2-D array");
  Dims d{x.shape(0), 1, x.shape(1), recurrent_kernel.shape(0), 0, call_threads()};
  d.G = gates * d.H;
  if (d.I < 1 || d.B < 1) throw std::invalid_argument("argument `x`: must not be empty");
  checked<F>(x, "x", {d.B, d.I});
  checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  return d;
}

template <typename F>
F* inout(const py::array& a, const char* name, const Dims& d) {
  checked<F>(a, name, {d.B, d.H});
  py::array arr = a;
  if (!arr.writeable())
    throw std::invalid_argument(std::string("argument `") + name + "`: must be writeable");
  return static_cast<F*>(arr.mutable_data());
}

template <typename F>
void simple_rnn_step(const py::array& x, const py::array& h, const py::array& kernel,
                     const py::array& recurrent_kernel, const Opt& bias,
                     const std::string& activation) {
  const Dims d = step_dims<F>(x, recurrent_kernel, 1);
  fastrnn::SimpleRnnForwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.I});
  a.h0 = a.h_last = inout<F>(h, "h", d);
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.bias = checked<F>(bias, "bias", {d.G});
  a.activation = parse_activation(activation);
  a.B = d.B, a.T = 1, a.I = d.I, a.H = d.H;
  py::gil_scoped_release release;
  a.outputs = workspace<F>().get(std::size_t(d.B * d.H));
  kernel_set<F>().simple_rnn_forward(a);
}

template <typename F>
void lstm_step(const py::array& x, const py::array& h, const py::array& c,
               const py::array& kernel, const py::array& recurrent_kernel, const Opt& bias) {
  const Dims d = step_dims<F>(x, recurrent_kernel, 4);
  fastrnn::LstmForwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.I});
  a.h0 = a.h_last = inout<F>(h, "h", d);
  a.c0 = a.c_last = inout<F>(c, "c", d);
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.bias = checked<F>(bias, "bias", {d.G});
  a.B = d.B, a.T = 1, a.I = d.I, a.H = d.H;
  py::gil_scoped_release release;
  F* ws = workspace<F>().get(std::size_t(d.B * (d.G + 2 * d.H)));
  a.gates = ws, a.cells = ws + d.B * d.G, a.outputs = ws + d.B * (d.G + d.H);
  kernel_set<F>().lstm_forward(a);
}

template <typename F>
void gru_step(const py::array& x, const py::array& h, const py::array& kernel,
              const py::array& recurrent_kernel, const Opt& bias) {
  const Dims d = step_dims<F>(x, recurrent_kernel, 3);
  fastrnn::GruForwardArgs<F> a{};
  a.x = checked<F>(x, "x", {d.B, d.I});
  a.h0 = a.h_last = inout<F>(h, "h", d);
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.bias = checked<F>(bias, "bias", {2, d.G});
  a.B = d.B, a.T = 1, a.I = d.I, a.H = d.H;
  py::gil_scoped_release release;
  F* ws = workspace<F>().get(std::size_t(d.B * (2 * d.G + 2 * d.H)));
  a.gates = ws, a.hz = ws + d.B * d.G, a.hz_h = ws + 2 * d.B * d.G;
  a.outputs = ws + d.B * (2 * d.G + d.H);
  kernel_set<F>().gru_forward(a);
}

// ---------------------------------------------------------------------------- optimizers
// The parameter buffer and every slot: C-contiguous arrays of one float dtype and one shape.
template <typename F>
F* slot(const Opt& a, const char* name, const py::array& param) {
  if (!a) return nullptr;
  std::vector<Index> shape(param.shape(), param.shape() + param.ndim());
  checked<F>(*a, name, shape);
  py::array arr = *a;
  if (!arr.writeable())
    throw std::invalid_argument(std::string("argument `") + name + "`: must be writeable");
  return static_cast<F*>(arr.mutable_data());
}

template <typename F>
F* param_data(const py::array& param) {
  return slot<F>(Opt(param), "param", param);
}

template <typename F>
py::tuple sgd_update(const py::array& param, const py::array& grad, const Opt& velocity,
                     double learning_rate, double momentum, bool nesterov) {
  fastrnn::SgdArgs<F> a{};
  a.param = param_data<F>(param);
  a.grad = slot<F>(Opt(grad), "grad", param);
  a.velocity = slot<F>(velocity, "velocity", param);
  a.n = param.size();
  a.learning_rate = F(learning_rate), a.momentum = F(momentum), a.nesterov = nesterov;
  py::gil_scoped_release release;
  kernel_set<F>().sgd(a);
  return py::tuple();
}

template <typename F>
py::tuple adam_update(const py::array& param, const py::array& grad, const py::array& m,
                      const py::array& v, const Opt& v_hat, double alpha, double beta_1,
                      double beta_2, double epsilon) {
  fastrnn::AdamArgs<F> a{};
  a.param = param_data<F>(param);
  a.grad = slot<F>(Opt(grad), "grad", param);
  a.m = slot<F>(Opt(m), "m", param);
  a.v = slot<F>(Opt(v), "v", param);
  a.v_hat = slot<F>(v_hat, "v_hat", param);
  a.n = param.size();
  a.alpha = F(alpha), a.beta_1 = F(beta_1), a.beta_2 = F(beta_2), a.epsilon = F(epsilon);
  py::gil_scoped_release release;
  kernel_set<F>().adam(a);
  return py::tuple();
}

template <typename F>
py::tuple rmsprop_update(const py::array& param, const py::array& grad, const py::array& v,
                         const Opt& average_grad, const Opt& momentum_buffer,
                         double learning_rate, double rho, double momentum, double epsilon) {
  fastrnn::RmspropArgs<F> a{};
  a.param = param_data<F>(param);
  a.grad = slot<F>(Opt(grad), "grad", param);
  a.v = slot<F>(Opt(v), "v", param);
  a.average_grad = slot<F>(average_grad, "average_grad", param);
  a.momentum_buffer = slot<F>(momentum_buffer, "momentum_buffer", param);
  a.n = param.size();
  a.learning_rate = F(learning_rate), a.rho = F(rho), a.momentum = F(momentum);
  a.epsilon = F(epsilon);
  py::gil_scoped_release release;
  kernel_set<F>().rmsprop(a);
  return py::tuple();
}

// ---------------------------------------------------------------------------- packed product
// For tests and measurements only: columns [c0, c1) of c (M, N) = a (M, K) w (K, N) + beta c,
// by the packed micro-kernel of the current kernel set (w packed first), or by OpenBLAS when
// `blas`; `repeat` times, so that a caller can time one shape (with beta != 0 each call adds
// to the last one's result).
void blas_product(Index M, Index N, Index K, const float* A, const float* W, Index ldw,
                  float beta, float* C) {
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, A,
                    int(K), W, int(ldw), beta, C, int(ldw));
}
void blas_product(Index M, Index N, Index K, const double* A, const double* W, Index ldw,
                  double beta, double* C) {
  scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0, A,
                    int(K), W, int(ldw), beta, C, int(ldw));
}
template <typename F>
py::array packed_product(const py::array& a, const py::array& w, const py::array& c, double beta,
                         Index c0, Index c1, bool blas, Index repeat) {
  keep_blas_single_threaded();
  if (a.ndim() != 2 || w.ndim() != 2 || c.ndim() != 2)
    throw std::invalid_argument("arguments `a`, `w`, `c`: expected 2-D arrays");
  const Index M = a.shape(0), K = a.shape(1), N = w.shape(1);
  const F* pa = checked<F>(a, "a", {M, K});
  const F* pw = checked<F>(w, "w", {K, N});
  checked<F>(c, "c", {M, N});
  if (c1 < 0) c1 = N;
  if (c0 < 0 || c0 > c1 || c1 > N)
    throw std::invalid_argument("arguments `c0`, `c1`: expected 0 <= c0 <= c1 <= " +
                                std::to_string(N) + ", got " + std::to_string(c0) + " and " +
                                std::to_string(c1));
  if (repeat < 1 || repeat > 100000)
    throw std::invalid_argument("argument `repeat`: expected 1 to 100000, got " +
                                std::to_string(repeat));
  if (K < 1 || std::max({M, K, N}) >= Index(INT_MAX))
    throw std::invalid_argument("argument `a`: expected 1 <= columns < 2**31");
  py::array_t<F> out(std::vector<py::ssize_t>{M, N});
  F* po = out.mutable_data();
  std::memcpy(po, c.data(), sizeof(F) * std::size_t(M * N));
  std::vector<F> packed(blas ? 0 : packed_size<F>(K, N));
  {
    py::gil_scoped_release release;
    const fastrnn::Packed<F> p = blas ? fastrnn::Packed<F>{} : pack(pw, K, N, packed.data());
    for (Index r = 0; r < repeat; ++r) {
      if (blas)
        blas_product(M, c1 - c0, K, pa, pw + c0, N, F(beta), po + c0);
      else
        kernel_set<F>().packed_product(p, M, pa, K, F(beta), po, N, c0, c1);
    }
  }
  return std::move(out);
}

// ---------------------------------------------------------------------------- matmul
void blas_gemm(bool ta, bool tb, Index M, Index N, Index K, const float* A, Index lda,
               const float* B, Index ldb, float* C, Index ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    int(M), int(N), int(K), 1.0f, A, int(lda), B, int(ldb), 0.0f, C, int(ldc));
}
void blas_gemm(bool ta, bool tb, Index M, Index N, Index K, const double* A, Index lda,
               const double* B, Index ldb, double* C, Index ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    int(M), int(N), int(K), 1.0, A, int(lda), B, int(ldb), 0.0, C, int(ldc));
}

// C (M, N) = op(a) op(b) for 2-D arrays, through the kernels' OpenBLAS (kept single-threaded)
// with the rows of C split over the core's threads when the product is large. The Dense
// layers use it, so a training step never wakes a second BLAS thread pool (NumPy's, whose idle
// workers then spin on the cores the kernels' threads need).
template <typename F>
py::array matmul(const py::array& a, const py::array& b, bool trans_a, bool trans_b) {
  keep_blas_single_threaded();
  if (a.ndim() != 2 || b.ndim() != 2)
    throw std::invalid_argument("arguments `a` and `b`: expected 2-D arrays, got " +
                                std::to_string(a.ndim()) + "-D and " + std::to_string(b.ndim()) +
                                "-D");
  const Index ra = a.shape(0), ca = a.shape(1), rb = b.shape(0), cb = b.shape(1);
  const Index M = trans_a ? ca : ra, K = trans_a ? ra : ca, N = trans_b ? rb : cb;
  if ((trans_b ? cb : rb) != K)
    throw std::invalid_argument("arguments `a` and `b`: the inner dimensions differ (" +
                                std::to_string(K) + " and " + std::to_string(trans_b ? cb : rb) +
                                ")");
  if (std::max({ra, ca, rb, cb}) >= Index(INT_MAX))
    throw std::invalid_argument("arguments `a` and `b`: too large for 32-bit BLAS indexing");
  const F* pa = checked<F>(a, "a", {ra, ca});
  const F* pb = checked<F>(b, "b", {rb, cb});
  auto c = empty<F>({M, N});
  F* pc = data(c);
  {
    py::gil_scoped_release release;
    if (K == 0) {
      std::fill(pc, pc + M * N, F(0));
    } else if (M > 0 && N > 0) {
      const double flops = 2.0 * double(M) * double(N) * double(K);
      const int slices = fastrnn::slices_for(call_threads(), flops, M, 16);
      fastrnn::run_parallel(slices, [&](int s) {
        const Index r0 = M * s / slices, r1 = M * (s + 1) / slices;
        // Rows r0.. of C come from rows r0.. of a, or from its columns r0.. when transposed.
        blas_gemm(trans_a, trans_b, r1 - r0, N, K, pa + (trans_a ? r0 : r0 * ca), ca, pb, cb,
                  pc + r0 * N, N);
      });
    }
  }
  return std::move(c);
}

// The same for functions that return nothing.
template <typename Fn32, typename Fn64, typename... Args>
void by_dtype_void(Fn32 f32, Fn64 f64, const py::array& x, Args&&... args) {
  if (x.dtype().is(py::dtype::of<float>())) return f32(x, std::forward<Args>(args)...);
  if (x.dtype().is(py::dtype::of<double>())) return f64(x, std::forward<Args>(args)...);
  throw std::invalid_argument("argument `x`: expected float32 or float64, got " +
                              py::str(x.dtype()).cast<std::string>());
}

// Picks the float32 or float64 instantiation from the dtype of x.
template <typename Fn32, typename Fn64, typename... Args>
py::tuple by_dtype(Fn32 f32, Fn64 f64, const py::array& x, Args&&... args) {
  if (x.dtype().is(py::dtype::of<float>())) return f32(x, std::forward<Args>(args)...);
  if (x.dtype().is(py::dtype::of<double>())) return f64(x, std::forward<Args>(args)...);
  throw std::invalid_argument("argument `x`: expected float32 or float64, got " +
                              py::str(x.dtype()).cast<std::string>());
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastrnn C++ kernels (batch-major, Keras weight layout). Use fastrnn.ops instead.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  const auto none = py::none();
  fastrnn::configured_threads();  // pins OpenBLAS to one thread before the first kernel

  m.def("simple_rnn_forward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const Opt& b, const Opt& mask, const std::string& act, const Opt& step_mask) {
          return by_dtype(simple_rnn_forward<float>, simple_rnn_forward<double>, x, h0, k, u, b,
                          mask, act, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("recurrent_mask") = none, py::arg("activation") = "tanh",
        py::arg("step_mask") = none, "-> (outputs, h_last)");
  m.def("simple_rnn_backward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const Opt& mask, const py::array& out, const Opt& d_out, const Opt& d_h_last,
           const std::string& act, Index truncate, bool input_grad, const Opt& step_mask) {
          return by_dtype(simple_rnn_backward<float>, simple_rnn_backward<double>, x, h0, k, u,
                          mask, out, d_out, d_h_last, act, truncate, input_grad, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("recurrent_mask"), py::arg("outputs"), py::arg("d_outputs"), py::arg("d_h_last"),
        py::arg("activation") = "tanh", py::arg("truncate") = 0, py::arg("input_grad") = true,
        py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias)");
  m.def("lstm_forward",
        [](const py::array& x, const Opt& h0, const Opt& c0, const py::array& k,
           const py::array& u, const Opt& b, const Opt& mask, bool keep_tape,
           const Opt& step_mask) {
          return by_dtype(lstm_forward<float>, lstm_forward<double>, x, h0, c0, k, u, b, mask,
                          keep_tape, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("recurrent_mask") = none, py::arg("keep_tape") = true,
        py::arg("step_mask") = none,
        "-> (outputs, h_last, c_last, gates, cells); gates and cells are None without a tape");
  m.def("lstm_backward",
        [](const py::array& x, const Opt& h0, const Opt& c0, const py::array& k,
           const py::array& u, const Opt& mask, const py::array& out, const py::array& gates,
           const py::array& cells, const Opt& d_out, const Opt& d_h_last, const Opt& d_c_last,
           Index truncate, bool input_grad, const Opt& step_mask) {
          return by_dtype(lstm_backward<float>, lstm_backward<double>, x, h0, c0, k, u, mask, out,
                          gates, cells, d_out, d_h_last, d_c_last, truncate, input_grad,
                          step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("recurrent_mask"), py::arg("outputs"), py::arg("gates"), py::arg("cells"),
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("d_c_last"), py::arg("truncate") = 0,
        py::arg("input_grad") = true, py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_c0, d_kernel, d_recurrent_kernel, d_bias)");
  m.def("gru_forward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const Opt& b, const Opt& mask, bool keep_tape, const Opt& step_mask) {
          return by_dtype(gru_forward<float>, gru_forward<double>, x, h0, k, u, b, mask,
                          keep_tape, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("recurrent_mask") = none, py::arg("keep_tape") = true,
        py::arg("step_mask") = none,
        "-> (outputs, h_last, gates, hz_h); gates and hz_h are None without a tape");
  m.def("gru_backward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const Opt& mask, const py::array& out, const py::array& gates, const py::array& hz_h,
           const Opt& d_out, const Opt& d_h_last, Index truncate, bool input_grad,
           const Opt& step_mask) {
          return by_dtype(gru_backward<float>, gru_backward<double>, x, h0, k, u, mask, out, gates,
                          hz_h, d_out, d_h_last, truncate, input_grad, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("recurrent_mask"), py::arg("outputs"), py::arg("gates"), py::arg("hz_h"),
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("truncate") = 0,
        py::arg("input_grad") = true, py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias)");

  m.def("simple_rnn_step",
        [](const py::array& x, const py::array& h, const py::array& k, const py::array& u,
           const Opt& b, const std::string& act) {
          by_dtype_void(simple_rnn_step<float>, simple_rnn_step<double>, x, h, k, u, b, act);
        },
        py::arg("x"), py::arg("h"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("activation") = "tanh", "One step; h (B, H) updated in place.");
  m.def("lstm_step",
        [](const py::array& x, const py::array& h, const py::array& c, const py::array& k,
           const py::array& u, const Opt& b) {
          by_dtype_void(lstm_step<float>, lstm_step<double>, x, h, c, k, u, b);
        },
        py::arg("x"), py::arg("h"), py::arg("c"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), "One step; h and c (B, H) updated in place.");
  m.def("gru_step",
        [](const py::array& x, const py::array& h, const py::array& k, const py::array& u,
           const Opt& b) { by_dtype_void(gru_step<float>, gru_step<double>, x, h, k, u, b); },
        py::arg("x"), py::arg("h"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), "One step; h (B, H) updated in place.");
  m.def("sgd_update",
        [](const py::array& p, const py::array& g, const Opt& vel, double lr, double mu,
           bool nesterov) {
          return by_dtype(sgd_update<float>, sgd_update<double>, p, g, vel, lr, mu, nesterov);
        },
        py::arg("param"), py::arg("grad"), py::arg("velocity"), py::arg("learning_rate"),
        py::arg("momentum"), py::arg("nesterov"), "SGD step, in place.");
  m.def("adam_update",
        [](const py::array& p, const py::array& g, const py::array& m_, const py::array& v,
           const Opt& vh, double alpha, double b1, double b2, double eps) {
          return by_dtype(adam_update<float>, adam_update<double>, p, g, m_, v, vh, alpha, b1, b2,
                          eps);
        },
        py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("v_hat"),
        py::arg("alpha"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
        "Adam step, in place; alpha is the bias-corrected learning rate.");
  m.def("rmsprop_update",
        [](const py::array& p, const py::array& g, const py::array& v, const Opt& avg,
           const Opt& mom, double lr, double rho, double mu, double eps) {
          return by_dtype(rmsprop_update<float>, rmsprop_update<double>, p, g, v, avg, mom, lr,
                          rho, mu, eps);
        },
        py::arg("param"), py::arg("grad"), py::arg("v"), py::arg("average_grad"),
        py::arg("momentum_buffer"), py::arg("learning_rate"), py::arg("rho"),
        py::arg("momentum"), py::arg("epsilon"), "RMSprop step, in place.");

  m.def(
      "matmul",
      [](const py::array& a, const py::array& b, bool trans_a, bool trans_b) -> py::array {
        if (a.dtype().is(py::dtype::of<float>())) return matmul<float>(a, b, trans_a, trans_b);
        if (a.dtype().is(py::dtype::of<double>())) return matmul<double>(a, b, trans_a, trans_b);
        throw std::invalid_argument("argument `a`: expected float32 or float64, got " +
                                    py::str(a.dtype()).cast<std::string>());
      },
      py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
      "op(a) @ op(b) for 2-D float arrays of one dtype -> (M, N)");
  m.def("_packed_product",
        [](const py::array& a, const py::array& w, const py::array& c, double beta, Index c0,
           Index c1, bool blas, Index repeat) {
          if (a.dtype().is(py::dtype::of<float>()))
            return packed_product<float>(a, w, c, beta, c0, c1, blas, repeat);
          if (a.dtype().is(py::dtype::of<double>()))
            return packed_product<double>(a, w, c, beta, c0, c1, blas, repeat);
          throw std::invalid_argument("argument `a`: expected float32 or float64");
        },
        py::arg("a"), py::arg("w"), py::arg("c"), py::arg("beta") = 0.0, py::arg("c0") = 0,
        py::arg("c1") = -1, py::arg("blas") = false, py::arg("repeat") = 1,
        "Test-only: columns [c0, c1) of a @ w + beta c by the packed recurrent micro-kernel "
        "(or OpenBLAS when blas).");
  m.def("_set_packed_products",
        [](const std::string& mode) {
          if (mode == "auto")
            packed_mode() = int(PackedMode::automatic);
          else if (mode == "never")
            packed_mode() = int(PackedMode::never);
          else if (mode == "always")
            packed_mode() = int(PackedMode::always);
          else
            throw std::invalid_argument("argument `mode`: expected 'auto', 'never' or 'always', "
                                        "got '" + mode + "'");
        },
        py::arg("mode"),
        "Test-only: whether the recurrent products use the packed micro-kernel (auto: where "
        "it measured faster).");
  m.def("set_num_threads", [](int n) {
    if (n < 1)
      throw std::invalid_argument("argument `n`: expected a positive number of threads, got " +
                                  std::to_string(n));
    fastrnn::configured_threads().store(n);
  }, py::arg("n"), "Threads used by the core.");
  m.def("get_num_threads", [] { return fastrnn::configured_threads().load(); });
  m.def("blas_config", [] {
    return std::string(scipy_openblas_get_config()) + " core=" + scipy_openblas_get_corename();
  }, "OpenBLAS build configuration and the kernel (core) it chose for this CPU.");
  m.def("kernel_set", [] { return std::string(fastrnn::kernels().name); },
        "The instruction-set variant of the kernels in use.");
  m.def("available_kernel_sets", &fastrnn::available_kernel_sets);
  m.def("select_kernel_set", &fastrnn::select_kernel_set, py::arg("name"));
#ifdef VERSION_INFO
#define FASTRNN_STRINGIFY_(x) #x
#define FASTRNN_STRINGIFY(x) FASTRNN_STRINGIFY_(x)
  m.attr("__version__") = FASTRNN_STRINGIFY(VERSION_INFO);
#endif
}

