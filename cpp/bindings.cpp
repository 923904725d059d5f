// fastrnn._core: the only file that knows Python.
// Every entry point: check every argument (dtype, shape, contiguity) and throw a ValueError
// naming it; allocate outputs while holding the GIL; release the GIL around the kernel only.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cblas.h>
#include <pthread.h>

#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <limits>
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
#include "model_stepper.hpp"
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

// FASTRNN_DEBUG_FILL_NAN=1 (read once, at the first array or workspace handed out): every
// output array and per-thread workspace a kernel gets is filled with NaN first. Recycled
// buffers (BufferPool, Workspace) are not zeroed, so a kernel path that leaves an element
// unwritten would otherwise return stale values that look plausible; with this, the test
// suite sees NaN. CI runs the whole suite in this mode too (.ci/run).
bool debug_fill_nan() {
  static const bool on = [] {
    const char* value = std::getenv("FASTRNN_DEBUG_FILL_NAN");
    return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
  }();
  return on;
}

template <typename F>
void fill_nan_when_debugging(F* p, std::size_t n) {
  if (debug_fill_nan()) std::fill(p, p + n, std::numeric_limits<F>::quiet_NaN());
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

  // Held across fork() (see install_fork_handlers), so a child never inherits it locked.
  void lock_for_fork() { mutex_.lock(); }
  void unlock_after_fork() { mutex_.unlock(); }

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
  if (bytes < BufferPool::kMinBytes) {
    py::array_t<F> small(dims);
    fill_nan_when_debugging(small.mutable_data(), count);
    return small;
  }
  auto owner = std::make_unique<PooledBuffer>(bytes, buffer_pool().take(bytes));
  F* data = reinterpret_cast<F*>(owner->data.get());
  fill_nan_when_debugging(data, count);
  py::capsule base(owner.get(), [](void* p) {
    std::unique_ptr<PooledBuffer>(static_cast<PooledBuffer*>(p));  // returns it to the pool
  });
  owner.release();  // the capsule owns it now
  return py::array_t<F>(dims, data, base);
}

// fork() copies only the calling thread: a lock another thread held at that moment stays
// locked for ever in the child, and the child's first kernel would hang on it. These
// handlers take the core's process-wide locks before fork and release them after, in the
// parent and in the child (a kernel running in the parent during the fork keeps only its own
// pool, which the child never uses: it starts a pool of its own).
void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    const int failed = ::pthread_atfork(
        [] {
          fastrnn::WorkerPool::instance_guard().lock();
          buffer_pool().lock_for_fork();
        },
        [] {
          buffer_pool().unlock_after_fork();
          fastrnn::WorkerPool::instance_guard().unlock();
        },
        [] {
          buffer_pool().unlock_after_fork();
          fastrnn::WorkerPool::instance_guard().unlock();
        });
    if (failed != 0) throw std::runtime_error("pthread_atfork failed");
  });
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
    fill_nan_when_debugging(buffer.get(), n);
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
// (B*T, S), the stacked gradients (S, G) and the row split's partial sums ((slices-1) S G),
// for the row slices the phase can actually use (not the thread count asked for).
std::size_t weight_phase_size(const Dims& d, bool gru) {
  const Index S = fastrnn::stacked_width(d.I, d.H, gru);
  const Index slices = fastrnn::max_weight_row_slices(d.threads, d.B, d.G);
  return std::size_t(d.B * d.T * S + slices * S * d.G);
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
PackedMode parse_packed_mode(const std::string& mode) {
  if (mode == "auto") return PackedMode::automatic;
  if (mode == "never") return PackedMode::never;
  if (mode == "always") return PackedMode::always;
  throw std::invalid_argument("argument `mode`: expected 'auto', 'never' or 'always', got '" +
                              mode + "'");
}
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
    // Panels pay while OpenBLAS multiplies whole 64-column panels in place; when only parts of
    // 32 or 16 columns fit its bound (deep products: backward, K = G), the micro-kernel wins.
    // Measured, one thread, thread CPU time, packed / panels, rows x N x K with a batch-major
    // lda: 16x256x1024 0.90-0.91, 32x256x1024 0.76-0.93, 16x300x1200 0.89, 32x384x1536 0.92
    // (parts of 32 or 16); 16x256x768 1.12, 16x192x768 1.12, 16x1024x256 1.01-1.03 (whole
    // panels); 32x128x512 (parts of 32) 0.95-1.02.
    const bool panels_in_place =
        panels.data != nullptr && 64.0 * double(rows) * double(K) <= fastrnn::kSmallProduct;
    if (!large || panels_in_place || std::string(fastrnn::kernels().name) != "avx512") return {};
  }
  return pack(W, K, N, workspace<F, 2>().get(packed_size<F>(K, N)));
}

// U (H, gates * H) packed by unit blocks for the fused step (packed_gemm.hpp, fused_gates):
// block j is (H, gates * L) for the L units [j L, (j + 1) L), gate after gate, zero-padded
// past H; ceil(H / L) * gates * L * H elements.
template <typename F>
std::size_t gate_blocks_size(Index H, Index gates) {
  const Index L = kernel_set<F>().fused_unit_block;
  return std::size_t((H + L - 1) / L * gates * L * H);
}
template <typename F>
fastrnn::Packed<F> pack_gate_blocks(const F* U, Index H, Index gates, F* out) {
  const Index L = kernel_set<F>().fused_unit_block, N = gates * H;
  for (Index j0 = 0; j0 < H; j0 += L) {
    const Index w = std::min(L, H - j0);
    F* block = out + j0 * gates * H;  // (H, gates * L)
    for (Index k = 0; k < H; ++k)
      for (Index g = 0; g < gates; ++g) {
        F* dst = block + (k * gates + g) * L;
        std::copy(U + k * N + g * H + j0, U + k * N + g * H + j0 + w, dst);
        std::fill(dst + w, dst + L, F(0));
      }
  }
  return {out, H, H};
}

// Whether an LSTM forward uses the fused step (see fused_gates): always, or not (auto and
// never: see recurrent_fused; tests and measurements, _set_fused_steps).
std::atomic<int>& fused_mode() {
  static std::atomic<int> mode{0};
  return mode;
}

// U packed for the fused step of an LSTM forward, or none (the step then goes to
// step_product). Not chosen automatically: measured against the unfused step (AVX-512 set,
// float32, whole processes A/B paired on a busy 2-core EPYC, CPU time fused / unfused, LSTM
// forward or fwd+bwd): 256x120x14x16 0.87 and 0.93, 64x100x256x512 0.94, 32x120x14x16 1.06,
// 128x50x8x32 1.02, 64x100x16x64 1.02, 64x100x32x128 1.03, 32x50x512x1024 1.09, 32x50x1x20
// 1.12, 32x50x1x8 1.15. Its product runs at the rate of OpenBLAS's in-place kernels (about
// 110 GFLOP/s a thread here, both), and the gate math is the same work wherever it runs, so
// nothing pays for its smaller blocks of gate math and its padding of H to whole packets.
// It stays for tests and measurements (_set_fused_steps "always").
template <typename F>
fastrnn::Packed<F> recurrent_fused(const F* U, const Dims& d) {
  if (static_cast<PackedMode>(fused_mode().load()) != PackedMode::always) return {};
  return pack_gate_blocks(U, d.H, 4, workspace<F, 3>().get(gate_blocks_size<F>(d.H, 4)));
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
      a.recurrent_fused = recurrent_fused(a.recurrent_kernel, d);
      if (a.recurrent_fused.data == nullptr) {
        a.recurrent_panels = recurrent_panels(a.recurrent_kernel, d, false, plan);
        a.recurrent_packed =
            recurrent_packed(a.recurrent_kernel, d, false, plan, a.recurrent_panels);
      }
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

// ------------------------------------------------- layer-normalized cells (issue 14)
// The plain cells' checks and phases (the LN arguments derive from theirs), plus gamma, beta
// (G,), epsilon and the LN tape: xhat (B, T, G) and rstd (B, T, gates). The time loops split by
// batch rows only (plan_of with `masked` set never splits the units: a row's normalization
// needs all of them).
template <typename F>
const fastrnn::LayerNormRnnKernels<F>& ln_kernels() {
  return kernel_set<F>().layer_norm;
}

template <typename F>
fastrnn::LayerNormForward<F> ln_forward_args(const py::array& gamma, const py::array& beta,
                                             double epsilon, const Dims& d,
                                             py::array_t<F>& xhat, py::array_t<F>& rstd) {
  if (!(epsilon > 0.0) || !std::isfinite(epsilon))
    throw std::invalid_argument("argument `epsilon`: expected a positive finite number, got " +
                                std::to_string(epsilon));
  fastrnn::LayerNormForward<F> ln{};
  ln.gamma = checked<F>(gamma, "gamma", {d.G});
  ln.beta = checked<F>(beta, "beta", {d.G});
  ln.xhat = data(xhat), ln.rstd = data(rstd), ln.epsilon = static_cast<F>(epsilon);
  return ln;
}

template <typename F>
fastrnn::LayerNormBackward<F> ln_backward_args(const py::array& gamma, const py::array& xhat,
                                               const py::array& rstd, const Dims& d,
                                               Index gates) {
  fastrnn::LayerNormBackward<F> ln{};
  ln.gamma = checked<F>(gamma, "gamma", {d.G});
  ln.xhat = checked<F>(xhat, "xhat", {d.B, d.T, d.G});
  ln.rstd = checked<F>(rstd, "rstd", {d.B, d.T, gates});
  return ln;
}

// The time loop of a layer-normalized forward, once its arguments are set.
template <typename Args>
void run_ln_forward(void (*forward)(const Args&), Args& a, const Dims& d) {
  const fastrnn::StepPlan plan = plan_of(d, true);  // rows only
  a.recurrent_panels = recurrent_panels(a.recurrent_kernel, d, false, plan);
  a.recurrent_packed = recurrent_packed(a.recurrent_kernel, d, false, plan, a.recurrent_panels);
  run_steps(forward, a, d, plan);
}

// The arrays every layer-normalized call checks alike (x, h0, the weights, the masks), and
// the sizes, into a.
template <typename F, typename Args>
void ln_common(Args& a, const Dims& d, const py::array& x, const Opt& h0,
               const py::array& kernel, const py::array& recurrent_kernel, const Opt& mask,
               const Opt& step_mask) {
  a.x = checked<F>(x, "x", {d.B, d.T, d.I});
  a.h0 = checked<F>(h0, "h0", {d.B, d.H});
  a.kernel = checked<F>(kernel, "kernel", {d.I, d.G});
  a.recurrent_kernel = checked<F>(recurrent_kernel, "recurrent_kernel", {d.H, d.G});
  a.recurrent_mask = checked<F>(mask, "recurrent_mask", {d.B, d.H});
  a.step_mask = checked_step_mask(step_mask, d.B, d.T);
  a.B = d.B, a.T = d.T, a.I = d.I, a.H = d.H;
}

// What a layer-normalized backward returns: d_x (B, T, I) or None, d_h0, d_c0 (LSTM only),
// d_kernel, d_recurrent_kernel, d_bias ((2, G) for GRU), d_gamma, d_beta.
template <typename F>
struct LnGrads {
  LnGrads(const Dims& d, bool input_grad_, bool lstm_, bool gru)
      : d_x(empty<F>({input_grad_ ? d.B : 0, d.T, d.I})), d_h0(empty<F>({d.B, d.H})),
        d_c0(empty<F>({lstm_ ? d.B : 0, d.H})), d_kernel(empty<F>({d.I, d.G})),
        d_rec(empty<F>({d.H, d.G})),
        d_bias(gru ? empty<F>({2, d.G}) : empty<F>({d.G})), d_gamma(empty<F>({d.G})),
        d_beta(empty<F>({d.G})), input_grad(input_grad_), lstm(lstm_) {}
  py::tuple result() {
    const py::object dx = input_grad ? py::object(d_x) : py::none();
    if (lstm) return py::make_tuple(dx, d_h0, d_c0, d_kernel, d_rec, d_bias, d_gamma, d_beta);
    return py::make_tuple(dx, d_h0, d_kernel, d_rec, d_bias, d_gamma, d_beta);
  }
  py::array_t<F> d_x, d_h0, d_c0, d_kernel, d_rec, d_bias, d_gamma, d_beta;
  bool input_grad, lstm;
};

// A layer-normalized backward once its arguments are set: the carried gradients straight
// through for an empty call, else the workspace (`own` elements first, handed to
// place(ws) for the cell's buffers), the plain cell's phases (see run_backward, with the rows'
// d_gamma, d_beta), then d_gamma and d_beta (G,): the sums of the rows'.
template <typename F, typename Args, typename Place>
void run_ln_backward(void (*steps)(const Args&), void (*inputs)(const Args&),
                     void (*weights)(const Args&), Args& a, const Dims& d, bool gru,
                     LnGrads<F>& g, std::size_t own, const Place& place) {
  a.d_x = g.input_grad ? data(g.d_x) : nullptr, a.d_h0 = data(g.d_h0);
  py::gil_scoped_release release;
  if (d.B == 0 || d.T == 0) {
    zero(g.d_x), zero(g.d_kernel), zero(g.d_rec), zero(g.d_bias), zero(g.d_gamma);
    zero(g.d_beta);
    copy_or_zero(a.d_h0, a.d_h_last, d.B * d.H);
    return;
  }
  const fastrnn::StepPlan plan = plan_of(d, true);  // rows only
  F* ws = workspace<F>().get(own + transposed_weights_size(d) + std::size_t(2 * d.B * d.G) +
                             weight_phase_size(d, gru));
  place(ws);
  F* next = ws + own;
  store_transposed_weights(a, d, next);
  next += transposed_weights_size(d);
  a.ln.d_gamma_beta = next;  // (B, 2, G)
  next += 2 * d.B * d.G;
  a.recurrent_t_panels = recurrent_panels(a.recurrent_kernel_t, d, true, plan);
  a.recurrent_t_packed =
      recurrent_packed(a.recurrent_kernel_t, d, true, plan, a.recurrent_t_panels);
  F* partials = place_weight_phase(a, d, gru, next);
  run_backward(steps, inputs, weights, a, d, plan, gru, partials, data(g.d_kernel),
               data(g.d_rec), data(g.d_bias));
  F* d_gamma = data(g.d_gamma);
  F* d_beta = data(g.d_beta);
  std::fill(d_gamma, d_gamma + d.G, F(0));
  std::fill(d_beta, d_beta + d.G, F(0));
  for (Index b = 0; b < d.B; ++b) {
    const F* row = a.ln.d_gamma_beta + b * 2 * d.G;
    for (Index j = 0; j < d.G; ++j) d_gamma[j] += row[j], d_beta[j] += row[d.G + j];
  }
}

template <typename F>
py::tuple ln_simple_rnn_forward(const py::array& x, const Opt& h0, const py::array& kernel,
                                const py::array& recurrent_kernel, const Opt& bias,
                                const py::array& gamma, const py::array& beta, double epsilon,
                                const Opt& mask, const std::string& activation,
                                const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 1);
  fastrnn::LnSimpleRnnForwardArgs<F> a{};
  ln_common<F>(a, d, x, h0, kernel, recurrent_kernel, mask, step_mask);
  a.bias = checked<F>(bias, "bias", {d.G});
  a.activation = parse_activation(activation);
  auto outputs = empty<F>({d.B, d.T, d.H});
  auto h_last = empty<F>({d.B, d.H});
  auto xhat = empty<F>({d.B, d.T, d.G});
  auto rstd = empty<F>({d.B, d.T, 1});
  a.ln = ln_forward_args<F>(gamma, beta, epsilon, d, xhat, rstd);
  a.outputs = data(outputs), a.h_last = data(h_last);
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      copy_or_zero(a.h_last, a.h0, d.B * d.H);
    } else {
      a.h_scratch = workspace<F>().get(std::size_t(d.B * d.H));
      run_ln_forward(ln_kernels<F>().simple_rnn_forward, a, d);
    }
  }
  return py::make_tuple(outputs, h_last, xhat, rstd);
}

template <typename F>
py::tuple ln_simple_rnn_backward(const py::array& x, const Opt& h0, const py::array& kernel,
                                 const py::array& recurrent_kernel, const py::array& gamma,
                                 const Opt& mask, const py::array& outputs,
                                 const py::array& xhat, const py::array& rstd,
                                 const Opt& d_outputs, const Opt& d_h_last,
                                 const std::string& activation, Index truncate, bool input_grad,
                                 const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 1);
  fastrnn::LnSimpleRnnBackwardArgs<F> a{};
  ln_common<F>(a, d, x, h0, kernel, recurrent_kernel, mask, step_mask);
  a.outputs = checked<F>(outputs, "outputs", {d.B, d.T, d.H});
  a.ln = ln_backward_args<F>(gamma, xhat, rstd, d, 1);
  a.d_outputs = checked<F>(d_outputs, "d_outputs", {d.B, d.T, d.H});
  a.d_h_last = checked<F>(d_h_last, "d_h_last", {d.B, d.H});
  a.activation = parse_activation(activation);
  a.truncate = parse_truncate(truncate);
  LnGrads<F> g(d, input_grad, false, false);
  const std::size_t bth = std::size_t(d.B * d.T * d.H), bh = std::size_t(d.B * d.H);
  const auto& ks = ln_kernels<F>();
  run_ln_backward(ks.simple_rnn_backward_steps, ks.simple_rnn_backward_inputs,
                  ks.simple_rnn_backward_weights, a, d, false, g, bth + 2 * bh, [&](F* ws) {
                    a.d_pre = ws, a.d_h = ws + bth, a.d_h_held = ws + bth + bh;
                  });
  return g.result();
}

template <typename F>
py::tuple ln_lstm_forward(const py::array& x, const Opt& h0, const Opt& c0,
                          const py::array& kernel, const py::array& recurrent_kernel,
                          const Opt& bias, const py::array& gamma, const py::array& beta,
                          double epsilon, const Opt& mask, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 4);
  fastrnn::LnLstmForwardArgs<F> a{};
  ln_common<F>(a, d, x, h0, kernel, recurrent_kernel, mask, step_mask);
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  a.bias = checked<F>(bias, "bias", {d.G});
  auto outputs = empty<F>({d.B, d.T, d.H});
  auto h_last = empty<F>({d.B, d.H});
  auto c_last = empty<F>({d.B, d.H});
  auto gates = empty<F>({d.B, d.T, d.G});
  auto cells = empty<F>({d.B, d.T, d.H});
  auto xhat = empty<F>({d.B, d.T, d.G});
  auto rstd = empty<F>({d.B, d.T, 4});
  a.ln = ln_forward_args<F>(gamma, beta, epsilon, d, xhat, rstd);
  a.outputs = data(outputs), a.h_last = data(h_last), a.c_last = data(c_last);
  a.gates = data(gates), a.cells = data(cells), a.no_tape = false;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      copy_or_zero(a.h_last, a.h0, d.B * d.H);
      copy_or_zero(a.c_last, a.c0, d.B * d.H);
    } else {
      a.h_scratch = workspace<F>().get(std::size_t(d.B * d.H));
      run_ln_forward(ln_kernels<F>().lstm_forward, a, d);
    }
  }
  return py::make_tuple(outputs, h_last, c_last, gates, cells, xhat, rstd);
}

template <typename F>
py::tuple ln_lstm_backward(const py::array& x, const Opt& h0, const Opt& c0,
                           const py::array& kernel, const py::array& recurrent_kernel,
                           const py::array& gamma, const Opt& mask, const py::array& outputs,
                           const py::array& gates, const py::array& cells,
                           const py::array& xhat, const py::array& rstd, const Opt& d_outputs,
                           const Opt& d_h_last, const Opt& d_c_last, Index truncate,
                           bool input_grad, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 4);
  fastrnn::LnLstmBackwardArgs<F> a{};
  ln_common<F>(a, d, x, h0, kernel, recurrent_kernel, mask, step_mask);
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  a.outputs = checked<F>(outputs, "outputs", {d.B, d.T, d.H});
  a.gates = checked<F>(gates, "gates", {d.B, d.T, d.G});
  a.cells = checked<F>(cells, "cells", {d.B, d.T, d.H});
  a.ln = ln_backward_args<F>(gamma, xhat, rstd, d, 4);
  a.d_outputs = checked<F>(d_outputs, "d_outputs", {d.B, d.T, d.H});
  a.d_h_last = checked<F>(d_h_last, "d_h_last", {d.B, d.H});
  a.d_c_last = checked<F>(d_c_last, "d_c_last", {d.B, d.H});
  a.truncate = parse_truncate(truncate);
  LnGrads<F> g(d, input_grad, true, false);
  a.d_c0 = data(g.d_c0);
  if (d.B == 0 || d.T == 0) copy_or_zero(a.d_c0, a.d_c_last, d.B * d.H);
  const std::size_t btg = std::size_t(d.B * d.T * d.G), bh = std::size_t(d.B * d.H);
  const auto& ks = ln_kernels<F>();
  run_ln_backward(ks.lstm_backward_steps, ks.lstm_backward_inputs, ks.lstm_backward_weights, a,
                  d, false, g, btg + 3 * bh, [&](F* ws) {
                    a.d_gates = ws, a.d_h = ws + btg, a.d_c = ws + btg + bh;
                    a.d_h_held = ws + btg + 2 * bh;
                  });
  return g.result();
}

template <typename F>
py::tuple ln_gru_forward(const py::array& x, const Opt& h0, const py::array& kernel,
                         const py::array& recurrent_kernel, const Opt& bias,
                         const py::array& gamma, const py::array& beta, double epsilon,
                         const Opt& mask, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 3);
  fastrnn::LnGruForwardArgs<F> a{};
  ln_common<F>(a, d, x, h0, kernel, recurrent_kernel, mask, step_mask);
  a.bias = checked<F>(bias, "bias", {2, d.G});
  auto outputs = empty<F>({d.B, d.T, d.H});
  auto h_last = empty<F>({d.B, d.H});
  auto gates = empty<F>({d.B, d.T, d.G});
  auto hz_h = empty<F>({d.B, d.T, d.H});
  auto xhat = empty<F>({d.B, d.T, d.G});
  auto rstd = empty<F>({d.B, d.T, 3});
  a.ln = ln_forward_args<F>(gamma, beta, epsilon, d, xhat, rstd);
  a.outputs = data(outputs), a.h_last = data(h_last), a.gates = data(gates), a.hz_h = data(hz_h);
  a.no_tape = false;
  {
    py::gil_scoped_release release;
    if (d.B == 0 || d.T == 0) {
      copy_or_zero(a.h_last, a.h0, d.B * d.H);
    } else {
      const std::size_t bh = std::size_t(d.B * d.H), bg = std::size_t(d.B * d.G);
      F* ws = workspace<F>().get(bh + bg);
      a.h_scratch = ws, a.hz = ws + bh;
      run_ln_forward(ln_kernels<F>().gru_forward, a, d);
    }
  }
  return py::make_tuple(outputs, h_last, gates, hz_h, xhat, rstd);
}

template <typename F>
py::tuple ln_gru_backward(const py::array& x, const Opt& h0, const py::array& kernel,
                          const py::array& recurrent_kernel, const py::array& gamma,
                          const Opt& mask, const py::array& outputs, const py::array& gates,
                          const py::array& hz_h, const py::array& xhat, const py::array& rstd,
                          const Opt& d_outputs, const Opt& d_h_last, Index truncate,
                          bool input_grad, const Opt& step_mask) {
  const Dims d = read_dims<F>(x, recurrent_kernel, 3);
  fastrnn::LnGruBackwardArgs<F> a{};
  ln_common<F>(a, d, x, h0, kernel, recurrent_kernel, mask, step_mask);
  a.outputs = checked<F>(outputs, "outputs", {d.B, d.T, d.H});
  a.gates = checked<F>(gates, "gates", {d.B, d.T, d.G});
  a.hz_h = checked<F>(hz_h, "hz_h", {d.B, d.T, d.H});
  a.ln = ln_backward_args<F>(gamma, xhat, rstd, d, 3);
  a.d_outputs = checked<F>(d_outputs, "d_outputs", {d.B, d.T, d.H});
  a.d_h_last = checked<F>(d_h_last, "d_h_last", {d.B, d.H});
  a.truncate = parse_truncate(truncate);
  LnGrads<F> g(d, input_grad, false, true);
  const std::size_t btg = std::size_t(d.B * d.T * d.G), bh = std::size_t(d.B * d.H);
  const auto& ks = ln_kernels<F>();
  run_ln_backward(ks.gru_backward_steps, ks.gru_backward_inputs, ks.gru_backward_weights, a, d,
                  true, g, 2 * btg + 2 * bh, [&](F* ws) {
                    a.d_xz = ws, a.d_hz = ws + btg, a.d_h = ws + 2 * btg;
                    a.d_h_rec = ws + 2 * btg + bh;
                  });
  return g.result();
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

// ------------------------------------------------------------------- whole-model streaming
// A chain of stages stepped together (model_stepper.hpp): made once from the stages' weights
// (copied), then step(x) runs every stage in one call, without the GIL, allocating nothing
// but the returned array (none when `out` is given). A mutex per stepper keeps two Python
// threads from stepping one stepper at once.
class PyModelStepper {
 public:
  PyModelStepper(const py::list& stages, Index batch_size, const std::string& dtype) {
    if (batch_size < 1)
      throw std::invalid_argument("argument `batch_size`: expected a positive integer, got " +
                                  std::to_string(batch_size));
    if (dtype == "float32")
      f32_ = std::make_unique<fastrnn::stream::ModelStepper<float>>(specs<float>(stages),
                                                                     batch_size);
    else if (dtype == "float64")
      f64_ = std::make_unique<fastrnn::stream::ModelStepper<double>>(specs<double>(stages),
                                                                      batch_size);
    else
      throw std::invalid_argument("argument `dtype`: expected 'float32' or 'float64', got '" +
                                  dtype + "'");
  }

  py::array step(const py::array& x, const Opt& out) {
    return f32_ ? step_as<float>(*f32_, x, out) : step_as<double>(*f64_, x, out);
  }

  void reset() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    if (f32_) f32_->reset(); else f64_->reset();
  }

  // The state of stage s: [h] or [h, c] (copies), or [] for a stage without state.
  py::list get_state(Index s) {
    return f32_ ? state_as<float>(*f32_, s) : state_as<double>(*f64_, s);
  }
  void set_state(Index s, const py::list& values) {
    if (f32_) set_state_as<float>(*f32_, s, values); else set_state_as<double>(*f64_, s, values);
  }

  Index batch_size() const { return f32_ ? f32_->batch() : f64_->batch(); }
  Index in_features() const { return f32_ ? f32_->in_features() : f64_->in_features(); }
  Index vocabulary() const { return f32_ ? f32_->vocabulary() : f64_->vocabulary(); }
  Index out_features() const { return f32_ ? f32_->out_features() : f64_->out_features(); }
  std::string dtype() const { return f32_ ? "float32" : "float64"; }

 private:
  // Each stage: a tuple (kind, activation, kernel or None, recurrent_kernel or None, bias or
  // None), kind one of "simple_rnn", "lstm", "gru", "dense", "activation", "embedding" (the
  // first only; kernel: the table).
  template <typename F>
  static std::vector<fastrnn::stream::StageSpec<F>> specs(const py::list& stages) {
    using fastrnn::stream::StageKind;
    std::vector<fastrnn::stream::StageSpec<F>> out;
    for (std::size_t s = 0; s < stages.size(); ++s) {
      const auto t = stages[s].cast<py::tuple>();
      if (t.size() != 5)
        throw std::invalid_argument("argument `stages`: each stage is (kind, activation, "
                                    "kernel, recurrent_kernel, bias)");
      const auto kind = t[0].cast<std::string>();
      const auto act = t[1].cast<std::string>();
      fastrnn::stream::StageSpec<F> st;
      const std::string name = "stages[" + std::to_string(s) + "]";
      auto weights = [&](const py::handle& h, const char* what, std::vector<Index> shape,
                         bool optional) {
        const std::string arg = name + "." + what;
        if (h.is_none()) {
          if (optional) return std::vector<F>{};
          throw std::invalid_argument("argument `" + arg + "`: required");
        }
        if (!py::isinstance<py::array>(h))
          throw std::invalid_argument("argument `" + arg + "`: expected a NumPy array");
        const py::array a = py::reinterpret_borrow<py::array>(h);
        if (shape.empty()) {  // learn the shape: a 2-D array
          if (a.ndim() != 2)
            throw std::invalid_argument("argument `" + arg + "`: expected a 2-D array");
          shape = {a.shape(0), a.shape(1)};
        }
        const F* p = checked<F>(a, arg.c_str(), shape);
        return std::vector<F>(p, p + a.size());
      };
      if (kind == "simple_rnn" || kind == "lstm" || kind == "gru") {
        st.kind = kind == "lstm" ? StageKind::lstm
                  : kind == "gru" ? StageKind::gru : StageKind::simple_rnn;
        const Index gates = fastrnn::stream::gates_of(st.kind);
        if (!py::isinstance<py::array>(t[3]) || py::array(t[3].cast<py::array>()).ndim() != 2)
          throw std::invalid_argument("argument `" + name + ".recurrent_kernel`: expected a "
                                      "2-D array (units, gates * units)");
        const Index H = t[3].cast<py::array>().shape(0);
        if (H < 1) throw std::invalid_argument("argument `" + name + "`: no units");
        st.recurrent_kernel = weights(t[3], "recurrent_kernel", {H, gates * H}, false);
        st.kernel = weights(t[2], "kernel", {}, false);
        st.in = Index(st.kernel.size()) / (gates * H), st.out = H;
        weights(t[2], "kernel", {st.in, gates * H}, false);  // the width, named in the error
        st.bias = weights(t[4], "bias", st.kind == StageKind::gru
                                            ? std::vector<Index>{2, gates * H}
                                            : std::vector<Index>{gates * H}, true);
        if (st.kind == StageKind::simple_rnn) st.cell_activation = parse_activation(act);
        else if (act != "tanh")
          throw std::invalid_argument("argument `" + name + ".activation`: LSTM and GRU use "
                                      "'tanh', got '" + act + "'");
      } else if (kind == "dense") {
        st.kind = StageKind::dense;
        st.kernel = weights(t[2], "kernel", {}, false);
        const Index in = t[2].cast<py::array>().shape(0), n = t[2].cast<py::array>().shape(1);
        st.in = in, st.out = n;
        st.bias = weights(t[4], "bias", {n}, true);
        st.act = fastrnn::stream::parse_act(act);
      } else if (kind == "embedding") {
        st.kind = StageKind::embedding;
        if (!out.empty())
          throw std::invalid_argument("argument `" + name + "`: an embedding must be the "
                                      "first stage");
        st.kernel = weights(t[2], "kernel", {}, false);
        st.in = 1, st.out = t[2].cast<py::array>().shape(1);
      } else if (kind == "activation") {
        st.kind = StageKind::activation;
        if (out.empty())
          throw std::invalid_argument("argument `" + name + "`: an activation stage needs a "
                                      "stage before it (its width)");
        st.in = st.out = out.back().out;
        st.act = fastrnn::stream::parse_act(act);
      } else {
        throw std::invalid_argument("argument `" + name + "`: unknown stage kind '" + kind +
                                    "'");
      }
      out.push_back(std::move(st));
    }
    return out;
  }

  template <typename F>
  py::array step_as(fastrnn::stream::ModelStepper<F>& m, const py::array& x, const Opt& out) {
    keep_blas_single_threaded();
    const F* px = nullptr;
    const std::int64_t* ids = nullptr;
    if (m.vocabulary() > 0) {  // token ids (B,), every one checked before anything runs
      std::vector<Index> got(x.shape(), x.shape() + x.ndim());
      if (!x.dtype().is(py::dtype::of<std::int64_t>()) || got != std::vector<Index>{m.batch()} ||
          !(x.flags() & py::array::c_style))
        throw std::invalid_argument("argument `x`: expected a C-contiguous int64 array of " +
                                    shape_str({m.batch()}) + " token ids, got " +
                                    py::str(x.dtype()).cast<std::string>() + " " +
                                    shape_str(got));
      ids = static_cast<const std::int64_t*>(x.data());
      for (Index b = 0; b < m.batch(); ++b)
        if (ids[b] < 0 || ids[b] >= m.vocabulary())
          throw std::invalid_argument("argument `x`: token ids must be in [0, " +
                                      std::to_string(m.vocabulary()) + "), got " +
                                      std::to_string(ids[b]));
    } else {
      if (x.ndim() != 2)
        throw std::invalid_argument("argument `x`: expected a 2-D array (batch, features), "
                                    "got " + std::to_string(x.ndim()) + "-D");
      px = checked<F>(x, "x", {m.batch(), m.in_features()});
    }
    py::array result;
    if (out) {
      checked<F>(*out, "out", {m.batch(), m.out_features()});
      result = *out;
      if (!result.writeable())
        throw std::invalid_argument("argument `out`: must be writeable");
      const auto* o = static_cast<const char*>(result.data());
      const auto* i = static_cast<const char*>(x.data());
      if (o < i + x.nbytes() && i < o + result.nbytes())  // a stage would read what it wrote
        throw std::invalid_argument("argument `out`: must not overlap `x`");
    } else {
      result = py::array_t<F>(std::vector<py::ssize_t>{m.batch(), m.out_features()});
    }
    F* py_out = static_cast<F*>(result.mutable_data());
    const int threads = call_threads();
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      m.step(kernel_set<F>(), px, ids, py_out, threads);
    }
    return result;
  }

  template <typename F>
  py::list state_as(fastrnn::stream::ModelStepper<F>& m, Index s) {
    check_stage(m.stages().size(), s);
    std::lock_guard<std::mutex> lock(mutex_);
    py::list states;
    for (const std::vector<F>* v : {&m.h(std::size_t(s)), &m.c(std::size_t(s))}) {
      if (v->empty()) continue;
      py::array_t<F> a(std::vector<py::ssize_t>{m.batch(), Index(v->size()) / m.batch()});
      std::copy(v->begin(), v->end(), a.mutable_data());
      states.append(a);
    }
    return states;
  }

  template <typename F>
  void set_state_as(fastrnn::stream::ModelStepper<F>& m, Index s, const py::list& values) {
    check_stage(m.stages().size(), s);
    std::vector<std::vector<F>*> dst;
    for (std::vector<F>* v : {&m.h(std::size_t(s)), &m.c(std::size_t(s))})
      if (!v->empty()) dst.push_back(v);
    if (values.size() != dst.size())
      throw std::invalid_argument("argument `states`: stage " + std::to_string(s) +
                                  " expects " + std::to_string(dst.size()) + " arrays, got " +
                                  std::to_string(values.size()));
    std::vector<const F*> src;  // every array checked before anything changes
    for (std::size_t k = 0; k < dst.size(); ++k) {
      const std::string arg = "states[" + std::to_string(k) + "]";
      src.push_back(checked<F>(values[k].cast<py::array>(), arg.c_str(),
                               {m.batch(), Index(dst[k]->size()) / m.batch()}));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t k = 0; k < dst.size(); ++k)
      std::copy(src[k], src[k] + dst[k]->size(), dst[k]->begin());
  }

  static void check_stage(std::size_t n, Index s) {
    if (s < 0 || std::size_t(s) >= n)
      throw std::invalid_argument("argument `stage`: expected 0 <= stage < " +
                                  std::to_string(n) + ", got " + std::to_string(s));
  }

  std::unique_ptr<fastrnn::stream::ModelStepper<float>> f32_;
  std::unique_ptr<fastrnn::stream::ModelStepper<double>> f64_;
  std::mutex mutex_;
};

void def_model_stepper(py::module_& m) {
  py::class_<PyModelStepper>(m, "ModelStepper")
      .def(py::init<const py::list&, Index, const std::string&>(), py::arg("stages"),
           py::arg("batch_size"), py::arg("dtype"),
           "stages: [(kind, activation, kernel, recurrent_kernel, bias)], first to last.")
      .def("step", &PyModelStepper::step, py::arg("x"), py::arg("out") = py::none(),
           "x (B, I) -> (B, O), every state advanced one step; written into `out` if given.")
      .def("reset", &PyModelStepper::reset, "Every state to zeros.")
      .def("get_state", &PyModelStepper::get_state, py::arg("stage"))
      .def("set_state", &PyModelStepper::set_state, py::arg("stage"), py::arg("states"))
      .def_property_readonly("batch_size", &PyModelStepper::batch_size)
      .def_property_readonly("in_features", &PyModelStepper::in_features)
      .def_property_readonly("vocabulary", &PyModelStepper::vocabulary)
      .def_property_readonly("out_features", &PyModelStepper::out_features)
      .def_property_readonly("dtype", &PyModelStepper::dtype);
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

// The float32 or float64 instantiation, from the dtype of `x` (named `name` in errors).
template <typename Fn32, typename Fn64, typename... Args>
auto by_dtype_of(const char* name, Fn32 f32, Fn64 f64, const py::array& x, Args&&... args)
    -> decltype(f32(x, std::forward<Args>(args)...)) {
  if (x.dtype().is(py::dtype::of<float>())) return f32(x, std::forward<Args>(args)...);
  if (x.dtype().is(py::dtype::of<double>())) return f64(x, std::forward<Args>(args)...);
  throw std::invalid_argument(std::string("argument `") + name +
                              "`: expected float32 or float64, got " +
                              py::str(x.dtype()).cast<std::string>());
}

// The same for the recurrent kernels, whose first argument is always `x`.
template <typename Fn32, typename Fn64, typename... Args>
auto by_dtype(Fn32 f32, Fn64 f64, const py::array& x, Args&&... args) {
  return by_dtype_of("x", f32, f64, x, std::forward<Args>(args)...);
}


// =========================================================== sequence layers (issue 11)
// Conv1D, pooling, normalization: checks, then the kernels of layer_kernels() over slices of
// the batch (or of the rows) on the core's threads.
template <typename F>
const fastrnn::LayerKernelSet<F>& layer_kernel_set();
template <>
const fastrnn::LayerKernelSet<float>& layer_kernel_set<float>() {
  return fastrnn::layer_kernels().f32;
}
template <>
const fastrnn::LayerKernelSet<double>& layer_kernel_set<double>() {
  return fastrnn::layer_kernels().f64;
}

void check_at_least(const char* name, Index value, Index least) {
  if (value < least)
    throw std::invalid_argument(std::string("argument `") + name + "`: expected an integer >= " +
                                std::to_string(least) + ", got " + std::to_string(value));
}

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
  fastrnn::run_parallel(slices, [&](int s) {
    const Index i0 = n * s / slices, i1 = n * (s + 1) / slices;
    fn(s, i0, i1 - i0);
  });
}

// ------------------------------------------------------------------------------- Conv1D
struct ConvCall {
  fastrnn::Conv1dShape s;
  int slices;
};

template <typename F>
ConvCall conv_call(const py::array& x, const py::array& kernel, Index stride, Index dilation,
                   Index pad_left, Index pad_right, Index groups) {
  keep_blas_single_threaded();
  const auto xd = sequence_dims<F>(x, "x");
  check_at_least("dilation", dilation, 1);
  check_at_least("groups", groups, 1);
  if (kernel.ndim() != 3)
    throw std::invalid_argument("argument `kernel`: expected a 3-D array (kernel_size, "
                                "channels / groups, filters), got " +
                                std::to_string(kernel.ndim()) + "-D");
  fastrnn::Conv1dShape s{};
  s.B = xd[0], s.T = xd[1], s.C = xd[2], s.K = kernel.shape(0), s.O = kernel.shape(2);
  s.stride = stride, s.dilation = dilation, s.pad_left = pad_left, s.groups = groups;
  if (s.C % groups != 0 || s.O % groups != 0)
    throw std::invalid_argument("argument `groups`: must divide the input channels (" +
                                std::to_string(s.C) + ") and the filters (" +
                                std::to_string(s.O) + "), got " + std::to_string(groups));
  checked<F>(kernel, "kernel", {s.K, s.C / groups, s.O});
  if (s.K < 1 || s.O < 1 || s.C < 1)
    throw std::invalid_argument("arguments `x`, `kernel`: need at least one channel, tap and "
                                "filter");
  if (double(s.K) * double(s.C) * double(s.O) >= double(INT_MAX))
    throw std::invalid_argument("argument `kernel`: too large for 32-bit BLAS indexing");
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
  return {s, fastrnn::slices_for(threads, flops, s.B, 1)};
}

// The workspace of a slice: its chunk (R, K*Cg) (backward: two), and its partial gradients.
std::size_t conv_chunk_size(const fastrnn::Conv1dShape& s) {
  return std::size_t(s.chunk_rows * s.K * (s.C / s.groups));
}

template <typename F>
py::object conv1d_forward(const py::array& x, const py::array& kernel, const Opt& bias,
                          Index stride, Index dilation, Index pad_left, Index pad_right,
                          Index groups) {
  const ConvCall c = conv_call<F>(x, kernel, stride, dilation, pad_left, pad_right, groups);
  const fastrnn::Conv1dShape& s = c.s;
  fastrnn::Conv1dForwardArgs<F> a{};
  a.s = s;
  a.x = checked<F>(x, "x", {s.B, s.T, s.C});
  a.kernel = checked<F>(kernel, "kernel", {s.K, s.C / s.groups, s.O});
  a.bias = checked<F>(bias, "bias", {s.O});
  auto y = empty<F>({s.B, s.L, s.O});
  a.y = data(y);
  if (s.B == 0) return std::move(y);
  py::gil_scoped_release release;
  const std::size_t chunk = conv_chunk_size(s);
  F* ws = workspace<F, 2>().get(chunk * std::size_t(c.slices));
  over_slices(c.slices, s.B, [&](int k, Index b0, Index nb) {
    fastrnn::Conv1dForwardArgs<F> part = a;
    part.x += b0 * s.T * s.C, part.y += b0 * s.L * s.O, part.s.B = nb;
    part.cols = ws + chunk * std::size_t(k);
    layer_kernel_set<F>().conv1d_forward(part);
  });
  return std::move(y);
}

template <typename F>
py::object conv1d_backward(const py::array& x, const py::array& kernel, const py::array& d_y,
                           Index stride, Index dilation, Index pad_left, Index pad_right,
                           Index groups, bool use_bias, bool input_grad) {
  const ConvCall c = conv_call<F>(x, kernel, stride, dilation, pad_left, pad_right, groups);
  const fastrnn::Conv1dShape& s = c.s;
  fastrnn::Conv1dBackwardArgs<F> a{};
  a.s = s;
  a.x = checked<F>(x, "x", {s.B, s.T, s.C});
  a.kernel = checked<F>(kernel, "kernel", {s.K, s.C / s.groups, s.O});
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
        fastrnn::Conv1dBackwardArgs<F> part = a;
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
      for (int k = 1; k < c.slices; ++k) {
        const F* p = ws + per * std::size_t(k) + 2 * chunk;  // slice k's d_kernel, d_bias
        for (Index j = 0; j < wsize - s.O; ++j) a.d_kernel[j] += p[j];
        if (a.d_bias != nullptr)
          for (Index j = 0; j < s.O; ++j) a.d_bias[j] += p[wsize - s.O + j];
      }
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_kernel,
                        use_bias ? py::object(d_bias) : py::none());
}

// ------------------------------------------------------------------------------- pooling
fastrnn::Pool1dShape pool_shape(Index B, Index T, Index C, Index pool, Index stride,
                                Index pad_left, Index pad_right) {
  check_at_least("pool_size", pool, 1);
  fastrnn::Pool1dShape s{B, T, C, 0, pool, stride, pad_left};
  s.L = window_count(T, pool, stride, pad_left, pad_right, "pool size");
  return s;
}

int rows_slices(double work, Index rows) {
  return fastrnn::slices_for(call_threads(), work, rows, 1);
}

template <typename F>
py::object pool1d_forward(const py::array& x, Index pool, Index stride, Index pad_left,
                          Index pad_right, const std::string& mode, bool keep_argmax) {
  const auto xd = sequence_dims<F>(x, "x");
  if (mode != "max" && mode != "average")
    throw std::invalid_argument("argument `mode`: expected 'max' or 'average', got '" + mode +
                                "'");
  const fastrnn::Pool1dShape s =
      pool_shape(xd[0], xd[1], xd[2], pool, stride, pad_left, pad_right);
  const bool argmax = keep_argmax && mode == "max";
  if (argmax && s.T > INT32_MAX)
    throw std::invalid_argument("argument `x`: too many steps for 32-bit argmax indices");
  auto y = empty<F>({s.B, s.L, s.C});
  auto arg = py::array_t<std::int32_t>(std::vector<py::ssize_t>{argmax ? s.B : 0, s.L, s.C});
  fastrnn::Pool1dForwardArgs<F> a{data(y), argmax ? arg.mutable_data() : nullptr,
                                  static_cast<const F*>(x.data()), s};
  {
    py::gil_scoped_release release;
    const auto kernel = mode == "max" ? layer_kernel_set<F>().pool1d_forward_max
                                      : layer_kernel_set<F>().pool1d_forward_average;
    const double work = double(s.B) * double(s.L) * double(s.C) * double(pool);
    over_slices(rows_slices(work, s.B), s.B, [&](int, Index b0, Index nb) {
      fastrnn::Pool1dForwardArgs<F> part = a;
      part.x += b0 * s.T * s.C, part.y += b0 * s.L * s.C, part.s.B = nb;
      if (part.argmax != nullptr) part.argmax += b0 * s.L * s.C;
      kernel(part);
    });
  }
  return py::make_tuple(y, argmax ? py::object(arg) : py::none());
}

template <typename F>
py::object pool1d_backward(const py::array& d_y, const Opt& argmax, Index steps, Index pool,
                           Index stride, Index pad_left, Index pad_right) {
  const auto dd = sequence_dims<F>(d_y, "d_y");
  check_at_least("steps", steps, 0);
  const fastrnn::Pool1dShape s = pool_shape(dd[0], steps, dd[2], pool, stride, pad_left,
                                            pad_right);
  if (s.L != dd[1])
    throw std::invalid_argument("argument `d_y`: expected " + std::to_string(s.L) +
                                " steps (the pooled length of " + std::to_string(steps) +
                                "), got " + std::to_string(dd[1]));
  const std::int32_t* arg = nullptr;
  if (argmax) {
    const py::array& am = *argmax;
    std::vector<Index> got(am.shape(), am.shape() + am.ndim());
    if (!am.dtype().is(py::dtype::of<std::int32_t>()) || got != dd ||
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
  fastrnn::Pool1dBackwardArgs<F> a{data(d_x), static_cast<const F*>(d_y.data()), arg, s};
  {
    py::gil_scoped_release release;
    const double work = double(s.B) * double(s.L) * double(s.C) * double(pool);
    over_slices(rows_slices(work, s.B), s.B, [&](int, Index b0, Index nb) {
      fastrnn::Pool1dBackwardArgs<F> part = a;
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
py::object layer_norm_forward(const py::array& x, const Opt& gamma, const Opt& beta,
                              double epsilon) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  if (!(epsilon > 0.0))
    throw std::invalid_argument("argument `epsilon`: expected a positive float, got " +
                                std::to_string(epsilon));
  auto y = empty<F>({N, C});
  auto mean = empty<F>({N});
  auto rstd = empty<F>({N});
  fastrnn::LayerNormForwardArgs<F> a{data(y), data(mean), data(rstd),
                                     static_cast<const F*>(x.data()),
                                     checked<F>(gamma, "gamma", {C}),
                                     checked<F>(beta, "beta", {C}), N, C, F(epsilon)};
  {
    py::gil_scoped_release release;
    over_slices(rows_slices(8.0 * double(N) * double(C), N), N, [&](int, Index n0, Index n) {
      fastrnn::LayerNormForwardArgs<F> part = a;
      part.x += n0 * C, part.y += n0 * C, part.mean += n0, part.rstd += n0, part.N = n;
      layer_kernel_set<F>().layer_norm_forward(part);
    });
  }
  return py::make_tuple(y, mean, rstd);
}

template <typename F>
py::object layer_norm_backward(const py::array& x, const py::array& d_y, const py::array& mean,
                               const py::array& rstd, const Opt& gamma, bool want_gamma,
                               bool want_beta, bool input_grad) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  fastrnn::LayerNormBackwardArgs<F> a{};
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
      fastrnn::LayerNormBackwardArgs<F> part = a;
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
std::vector<double> batch_norm_sums(void (*kernel)(const fastrnn::BatchNormArgs<F>&),
                                    const fastrnn::BatchNormArgs<F>& a, bool two) {
  const Index N = a.N, C = a.C;
  const int slices = rows_slices(4.0 * double(N) * double(C), N);
  std::vector<double> sums(std::size_t(2 * C * slices), 0.0);
  over_slices(slices, N, [&](int k, Index n0, Index n) {
    fastrnn::BatchNormArgs<F> part = a;
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
  fastrnn::BatchNormArgs<F> a{};
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
  fastrnn::BatchNormArgs<F> a{};
  a.x = static_cast<const F*>(x.data()), a.N = N, a.C = C;
  a.scale = checked<F>(scale, "scale", {C});
  a.shift = checked<F>(shift, "shift", {C});
  auto y = empty<F>({N, C});
  a.y = data(y);
  {
    py::gil_scoped_release release;
    over_slices(rows_slices(2.0 * double(N) * double(C), N), N, [&](int, Index n0, Index n) {
      fastrnn::BatchNormArgs<F> part = a;
      part.x += n0 * C, part.y += n0 * C, part.N = n;
      layer_kernel_set<F>().batch_norm_apply(part);
    });
  }
  return std::move(y);
}

template <typename F>
py::object batch_norm_backward(const py::array& x, const py::array& d_y, const py::array& mean,
                               const py::array& rstd, const py::array& scale, bool input_grad) {
  const auto nc = rows_dims<F>(x, "x");
  const Index N = nc.first, C = nc.second;
  fastrnn::BatchNormArgs<F> a{};
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
        fastrnn::BatchNormArgs<F> part = a;
        part.x += n0 * C, part.d_y += n0 * C, part.y += n0 * C, part.N = n;
        ks.batch_norm_backward(part);
      });
    }
  }
  return py::make_tuple(input_grad ? py::object(d_x) : py::none(), d_gamma, d_beta);
}

void def_layer_ops(py::module_& m) {
  const auto none = py::none();
  m.def("conv1d_forward",
        [](const py::array& x, const py::array& k, const Opt& b, Index stride, Index dilation,
           Index pl, Index pr, Index groups) {
          return by_dtype_of("x", conv1d_forward<float>, conv1d_forward<double>, x, k, b,
                             stride, dilation, pl, pr, groups);
        },
        py::arg("x"), py::arg("kernel"), py::arg("bias") = none, py::arg("stride") = 1,
        py::arg("dilation") = 1, py::arg("pad_left") = 0, py::arg("pad_right") = 0,
        py::arg("groups") = 1, "-> y (B, L, O)");
  m.def("conv1d_backward",
        [](const py::array& x, const py::array& k, const py::array& d_y, Index stride,
           Index dilation, Index pl, Index pr, Index groups, bool use_bias, bool input_grad) {
          return by_dtype_of("x", conv1d_backward<float>, conv1d_backward<double>, x, k, d_y,
                             stride, dilation, pl, pr, groups, use_bias, input_grad);
        },
        py::arg("x"), py::arg("kernel"), py::arg("d_y"), py::arg("stride") = 1,
        py::arg("dilation") = 1, py::arg("pad_left") = 0, py::arg("pad_right") = 0,
        py::arg("groups") = 1, py::arg("use_bias") = true, py::arg("input_grad") = true,
        "-> (d_x or None, d_kernel, d_bias or None)");
  m.def("pool1d_forward",
        [](const py::array& x, Index pool, Index stride, Index pl, Index pr,
           const std::string& mode, bool keep_argmax) {
          return by_dtype_of("x", pool1d_forward<float>, pool1d_forward<double>, x, pool,
                             stride, pl, pr, mode, keep_argmax);
        },
        py::arg("x"), py::arg("pool_size"), py::arg("stride"), py::arg("pad_left") = 0,
        py::arg("pad_right") = 0, py::arg("mode") = "max", py::arg("keep_argmax") = true,
        "-> (y (B, L, C), argmax int32 (B, L, C) or None)");
  m.def("pool1d_backward",
        [](const py::array& d_y, const Opt& argmax, Index steps, Index pool, Index stride,
           Index pl, Index pr) {
          return by_dtype_of("d_y", pool1d_backward<float>, pool1d_backward<double>, d_y,
                             argmax, steps, pool, stride, pl, pr);
        },
        py::arg("d_y"), py::arg("argmax"), py::arg("steps"), py::arg("pool_size"),
        py::arg("stride"), py::arg("pad_left") = 0, py::arg("pad_right") = 0,
        "-> d_x (B, steps, C); argmax None: average pooling");
  m.def("layer_norm_forward",
        [](const py::array& x, const Opt& g, const Opt& b, double eps) {
          return by_dtype_of("x", layer_norm_forward<float>, layer_norm_forward<double>, x, g,
                             b, eps);
        },
        py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("epsilon"),
        "-> (y (N, C), mean (N,), rstd (N,))");
  m.def("layer_norm_backward",
        [](const py::array& d_y, const py::array& x, const py::array& mean,
           const py::array& rstd, const Opt& g, bool want_gamma, bool want_beta,
           bool input_grad) {
          return by_dtype_of("x", layer_norm_backward<float>, layer_norm_backward<double>, x,
                             d_y, mean, rstd, g, want_gamma, want_beta, input_grad);
        },
        py::arg("d_y"), py::arg("x"), py::arg("mean"), py::arg("rstd"), py::arg("gamma"),
        py::arg("want_gamma") = true, py::arg("want_beta") = true, py::arg("input_grad") = true,
        "-> (d_x or None, d_gamma or None, d_beta or None)");
  m.def("batch_norm_moments",
        [](const py::array& x) {
          return by_dtype_of("x", batch_norm_moments<float>, batch_norm_moments<double>, x);
        },
        py::arg("x"), "-> (mean (C,), biased variance (C,)) over the rows of x (N, C)");
  m.def("batch_norm_apply",
        [](const py::array& x, const py::array& scale, const py::array& shift) {
          return by_dtype_of("x", batch_norm_apply<float>, batch_norm_apply<double>, x, scale,
                             shift);
        },
        py::arg("x"), py::arg("scale"), py::arg("shift"), "-> x * scale + shift (N, C)");
  m.def("batch_norm_backward",
        [](const py::array& d_y, const py::array& x, const py::array& mean,
           const py::array& rstd, const py::array& scale, bool input_grad) {
          return by_dtype_of("x", batch_norm_backward<float>, batch_norm_backward<double>, x,
                             d_y, mean, rstd, scale, input_grad);
        },
        py::arg("d_y"), py::arg("x"), py::arg("mean"), py::arg("rstd"), py::arg("scale"),
        py::arg("input_grad") = true, "-> (d_x or None, d_gamma (C,), d_beta (C,))");
}


void def_layer_norm_cells(py::module_& m) {
  const auto none = py::none();
  m.def("layer_norm_simple_rnn_forward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const Opt& b, const py::array& gamma, const py::array& beta, double eps,
           const Opt& mask, const std::string& act, const Opt& step_mask) {
          return by_dtype(ln_simple_rnn_forward<float>, ln_simple_rnn_forward<double>, x, h0, k,
                          u, b, gamma, beta, eps, mask, act, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("gamma"), py::arg("beta"), py::arg("epsilon"),
        py::arg("recurrent_mask") = none, py::arg("activation") = "tanh",
        py::arg("step_mask") = none, "-> (outputs, h_last, xhat, rstd)");
  m.def("layer_norm_simple_rnn_backward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const py::array& gamma, const Opt& mask, const py::array& out, const py::array& xhat,
           const py::array& rstd, const Opt& d_out, const Opt& d_h_last, const std::string& act,
           Index truncate, bool input_grad, const Opt& step_mask) {
          return by_dtype(ln_simple_rnn_backward<float>, ln_simple_rnn_backward<double>, x, h0, k,
                          u, gamma, mask, out, xhat, rstd, d_out, d_h_last, act, truncate,
                          input_grad, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("gamma"), py::arg("recurrent_mask"), py::arg("outputs"), py::arg("xhat"),
        py::arg("rstd"), py::arg("d_outputs"), py::arg("d_h_last"),
        py::arg("activation") = "tanh", py::arg("truncate") = 0, py::arg("input_grad") = true,
        py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)");
  m.def("layer_norm_lstm_forward",
        [](const py::array& x, const Opt& h0, const Opt& c0, const py::array& k,
           const py::array& u, const Opt& b, const py::array& gamma, const py::array& beta,
           double eps, const Opt& mask, const Opt& step_mask) {
          return by_dtype(ln_lstm_forward<float>, ln_lstm_forward<double>, x, h0, c0, k, u, b,
                          gamma, beta, eps, mask, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("gamma"), py::arg("beta"), py::arg("epsilon"),
        py::arg("recurrent_mask") = none, py::arg("step_mask") = none,
        "-> (outputs, h_last, c_last, gates, cells, xhat, rstd)");
  m.def("layer_norm_lstm_backward",
        [](const py::array& x, const Opt& h0, const Opt& c0, const py::array& k,
           const py::array& u, const py::array& gamma, const Opt& mask, const py::array& out,
           const py::array& gates, const py::array& cells, const py::array& xhat,
           const py::array& rstd, const Opt& d_out, const Opt& d_h_last, const Opt& d_c_last,
           Index truncate, bool input_grad, const Opt& step_mask) {
          return by_dtype(ln_lstm_backward<float>, ln_lstm_backward<double>, x, h0, c0, k, u,
                          gamma, mask, out, gates, cells, xhat, rstd, d_out, d_h_last, d_c_last,
                          truncate, input_grad, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("gamma"), py::arg("recurrent_mask"), py::arg("outputs"), py::arg("gates"),
        py::arg("cells"), py::arg("xhat"), py::arg("rstd"), py::arg("d_outputs"),
        py::arg("d_h_last"), py::arg("d_c_last"), py::arg("truncate") = 0,
        py::arg("input_grad") = true, py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_c0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)");
  m.def("layer_norm_gru_forward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const Opt& b, const py::array& gamma, const py::array& beta, double eps,
           const Opt& mask, const Opt& step_mask) {
          return by_dtype(ln_gru_forward<float>, ln_gru_forward<double>, x, h0, k, u, b, gamma,
                          beta, eps, mask, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("gamma"), py::arg("beta"), py::arg("epsilon"),
        py::arg("recurrent_mask") = none, py::arg("step_mask") = none,
        "-> (outputs, h_last, gates, hz_h, xhat, rstd)");
  m.def("layer_norm_gru_backward",
        [](const py::array& x, const Opt& h0, const py::array& k, const py::array& u,
           const py::array& gamma, const Opt& mask, const py::array& out, const py::array& gates,
           const py::array& hz_h, const py::array& xhat, const py::array& rstd,
           const Opt& d_out, const Opt& d_h_last, Index truncate, bool input_grad,
           const Opt& step_mask) {
          return by_dtype(ln_gru_backward<float>, ln_gru_backward<double>, x, h0, k, u, gamma,
                          mask, out, gates, hz_h, xhat, rstd, d_out, d_h_last, truncate,
                          input_grad, step_mask);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("gamma"), py::arg("recurrent_mask"), py::arg("outputs"), py::arg("gates"),
        py::arg("hz_h"), py::arg("xhat"), py::arg("rstd"), py::arg("d_outputs"),
        py::arg("d_h_last"), py::arg("truncate") = 0, py::arg("input_grad") = true,
        py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)");
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
  install_fork_handlers();

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

  def_layer_norm_cells(m);  // the layer-normalized cells (issue 14)

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
          packed_mode() = int(parse_packed_mode(mode));
        },
        py::arg("mode"),
        "Test-only: whether the recurrent products use the packed micro-kernel (auto: where "
        "it measured faster).");
  m.def("_set_fused_steps",
        [](const std::string& mode) {
          fused_mode() = int(parse_packed_mode(mode));
        },
        py::arg("mode"),
        "Test-only: whether an LSTM forward's steps use the fused step (the gate math as the "
        "packed product's epilogue; auto: where it measured faster).");
  m.def("set_num_threads", [](long long n) {
    if (n < 1)
      throw std::invalid_argument("argument `n`: expected a positive number of threads, got " +
                                  std::to_string(n));
    // No phase splits into more than kMaxThreads slices, so more threads could never run.
    fastrnn::configured_threads().store(
        static_cast<int>(std::min<long long>(n, fastrnn::kMaxThreads)));
  }, py::arg("n"), "Threads used by the core (at most kMaxThreads; larger counts are capped).");
  m.attr("MAX_THREADS") = fastrnn::kMaxThreads;
  // For the tests of the reliability machinery only (tests/test_core_reliability.py).
  m.def("_debug_fill_nan", [] { return debug_fill_nan(); },
        "Whether FASTRNN_DEBUG_FILL_NAN was set when the core first handed out a buffer.");
  m.def("_debug_empty", [](Index n) {
    if (n < 0) throw std::invalid_argument("argument `n`: expected a non-negative size");
    return empty<double>({n});
  }, py::arg("n"), "An array as a kernel gets it for an output (NaN in the debug mode).");
  m.def("_debug_hold_locks", [](int milliseconds) {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> pool(fastrnn::WorkerPool::instance_guard());
    buffer_pool().lock_for_fork();
    std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
    buffer_pool().unlock_after_fork();
  }, py::arg("milliseconds"), "Holds the core's process-wide locks for a while (fork tests).");
  m.def("get_num_threads", [] { return fastrnn::configured_threads().load(); });
  m.def("blas_config", [] {
    return std::string(scipy_openblas_get_config()) + " core=" + scipy_openblas_get_corename();
  }, "OpenBLAS build configuration and the kernel (core) it chose for this CPU.");
  m.def("kernel_set", [] { return std::string(fastrnn::kernels().name); },
        "The instruction-set variant of the kernels in use.");
  m.def("available_kernel_sets", &fastrnn::available_kernel_sets);
  m.def("select_kernel_set", &fastrnn::select_kernel_set, py::arg("name"));
  def_layer_ops(m);  // Conv1D, pooling, normalization (issue 11)
  def_model_stepper(m);  // whole-model streaming (issue 14)
#ifdef VERSION_INFO
#define FASTRNN_STRINGIFY_(x) #x
#define FASTRNN_STRINGIFY(x) FASTRNN_STRINGIFY_(x)
  m.attr("__version__") = FASTRNN_STRINGIFY(VERSION_INFO);
#endif
}

