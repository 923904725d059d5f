// Threads. The recurrence of one batch row never reads another row, and the arrays are
// batch-major, so a contiguous slice of rows is itself a valid kernel call: with n threads,
// each runs the whole time loop (input projection included) on B/n rows, with no
// synchronisation per step. Multi-threaded BLAS on a 64-row step GEMM spends much of its time
// waking and joining threads, and its idle workers spin on the cores our threads need, so
// OpenBLAS itself always runs single-threaded here; the weight gradients (sums over all rows)
// are split by columns or rows (partial sums). The threads are a pool kept across calls
// (WorkerPool), so even a book-sized layer (32 x 50 x 20) gains from them.
#pragma once
#include <cblas.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "args.hpp"

namespace fastrnn {

// Threads the core may use (OpenBLAS is kept at one thread, see above). set_num_threads may
// change it while other Python threads are inside kernels (they run without the GIL), so a
// call reads it once and hands that reading to everything below that splits its work (the
// `threads` arguments), which also sizes its per-thread buffers from it.
std::atomic<int>& configured_threads();

// At most this many slices a phase (the pool's job word holds the count in 8 bits).
inline constexpr int kMaxSlices = 255;
// set_num_threads caps its count here: no phase could use more threads than slices, and
// buffers sized per slice (the weight phase's partial sums) must stay bounded.
inline constexpr int kMaxThreads = kMaxSlices;
// Below this much work (flops) a phase runs on one thread.
inline constexpr double kMinParallelFlops = 1.0e6;
// Weight gradients with at least this many gate columns are split by columns, narrower ones
// by batch rows (see run_weights). Measured (whole processes, fwd+bwd): rows are 2-4% faster
// for LSTM at H = 128 and 256 (G = 512, 1024), even for GRU at H = 512 (G = 1536), and 1.4%
// slower for LSTM at H = 512 (G = 2048): each thread then packs only its rows of both factors.
inline constexpr Index kMinColumnSplit = 2048;

namespace detail {
template <typename P>
P* rows(P* p, Index first_row, Index row_size) {
  return p == nullptr ? nullptr : p + first_row * row_size;
}
}  // namespace detail

// The slice [b0, b0 + nb) of a call: every batch-dimension pointer offset, B = nb.
template <typename F>
SimpleRnnForwardArgs<F> batch_slice(SimpleRnnForwardArgs<F> a, Index b0, Index nb) {
  using detail::rows;
  const Index T = a.T, I = a.I, H = a.H;
  a.outputs = rows(a.outputs, b0, T * H), a.h_last = rows(a.h_last, b0, H);
  a.x = rows(a.x, b0, T * I), a.h0 = rows(a.h0, b0, H);
  a.recurrent_mask = rows(a.recurrent_mask, b0, H), a.h_scratch = rows(a.h_scratch, b0, H);
  a.step_mask = rows(a.step_mask, b0, T);
  a.B = nb;
  return a;
}

template <typename F>
LstmForwardArgs<F> batch_slice(LstmForwardArgs<F> a, Index b0, Index nb) {
  using detail::rows;
  const Index T = a.T, I = a.I, H = a.H;
  a.outputs = rows(a.outputs, b0, T * H), a.h_last = rows(a.h_last, b0, H);
  const Index steps = a.no_tape ? 1 : T;  // without a tape, cells hold one step
  const Index gate_steps = a.no_tape && !a.project_all ? 1 : T;  // and gates, unless project_all
  a.c_last = rows(a.c_last, b0, H), a.gates = rows(a.gates, b0, gate_steps * 4 * H);
  a.cells = rows(a.cells, b0, steps * H), a.x = rows(a.x, b0, T * I);
  a.h0 = rows(a.h0, b0, H), a.c0 = rows(a.c0, b0, H);
  a.recurrent_mask = rows(a.recurrent_mask, b0, H), a.h_scratch = rows(a.h_scratch, b0, H);
  a.step_mask = rows(a.step_mask, b0, T);
  a.B = nb;
  return a;
}

template <typename F>
GruForwardArgs<F> batch_slice(GruForwardArgs<F> a, Index b0, Index nb) {
  using detail::rows;
  const Index T = a.T, I = a.I, H = a.H;
  a.outputs = rows(a.outputs, b0, T * H), a.h_last = rows(a.h_last, b0, H);
  const Index steps = a.no_tape ? 1 : T;  // without a tape, hz_h holds one step
  const Index gate_steps = a.no_tape && !a.project_all ? 1 : T;  // and gates, unless project_all
  a.gates = rows(a.gates, b0, gate_steps * 3 * H), a.hz_h = rows(a.hz_h, b0, steps * H);
  a.x = rows(a.x, b0, T * I), a.h0 = rows(a.h0, b0, H);
  a.recurrent_mask = rows(a.recurrent_mask, b0, H), a.h_scratch = rows(a.h_scratch, b0, H);
  a.step_mask = rows(a.step_mask, b0, T);
  a.hz = rows(a.hz, b0, 3 * H);
  a.B = nb;
  return a;
}

// Backward slices cover what backward_steps touches (backward_weights splits by columns).
template <typename F>
SimpleRnnBackwardArgs<F> batch_slice(SimpleRnnBackwardArgs<F> a, Index b0, Index nb) {
  using detail::rows;
  const Index T = a.T, H = a.H;
  a.d_x = rows(a.d_x, b0, T * a.I);
  a.stacked = rows(a.stacked, b0, T * stacked_width(a.I, H, false)), a.x = rows(a.x, b0, T * a.I);
  a.d_h0 = rows(a.d_h0, b0, H), a.d_pre = rows(a.d_pre, b0, T * H), a.d_h = rows(a.d_h, b0, H);
  a.outputs = rows(a.outputs, b0, T * H), a.h0 = rows(a.h0, b0, H);
  a.recurrent_mask = rows(a.recurrent_mask, b0, H);
  a.step_mask = rows(a.step_mask, b0, T), a.d_h_masked_rows = rows(a.d_h_masked_rows, b0, H);
  a.d_outputs = rows(a.d_outputs, b0, T * H), a.d_h_last = rows(a.d_h_last, b0, H);
  a.B = nb;
  return a;
}

template <typename F>
LstmBackwardArgs<F> batch_slice(LstmBackwardArgs<F> a, Index b0, Index nb) {
  using detail::rows;
  const Index T = a.T, H = a.H;
  a.d_x = rows(a.d_x, b0, T * a.I);
  a.stacked = rows(a.stacked, b0, T * stacked_width(a.I, H, false)), a.x = rows(a.x, b0, T * a.I);
  a.d_h0 = rows(a.d_h0, b0, H), a.d_c0 = rows(a.d_c0, b0, H);
  a.d_gates = rows(a.d_gates, b0, T * 4 * H), a.d_h = rows(a.d_h, b0, H);
  a.d_c = rows(a.d_c, b0, H), a.outputs = rows(a.outputs, b0, T * H);
  a.gates = rows(a.gates, b0, T * 4 * H), a.cells = rows(a.cells, b0, T * H);
  a.h0 = rows(a.h0, b0, H), a.c0 = rows(a.c0, b0, H);
  a.recurrent_mask = rows(a.recurrent_mask, b0, H);
  a.step_mask = rows(a.step_mask, b0, T), a.d_h_masked_rows = rows(a.d_h_masked_rows, b0, H);
  a.d_outputs = rows(a.d_outputs, b0, T * H), a.d_h_last = rows(a.d_h_last, b0, H);
  a.d_c_last = rows(a.d_c_last, b0, H);
  a.B = nb;
  return a;
}

template <typename F>
GruBackwardArgs<F> batch_slice(GruBackwardArgs<F> a, Index b0, Index nb) {
  using detail::rows;
  const Index T = a.T, H = a.H;
  a.d_x = rows(a.d_x, b0, T * a.I);
  a.stacked = rows(a.stacked, b0, T * stacked_width(a.I, H, true)), a.x = rows(a.x, b0, T * a.I);
  a.d_h0 = rows(a.d_h0, b0, H), a.d_xz = rows(a.d_xz, b0, T * 3 * H);
  a.d_hz = rows(a.d_hz, b0, T * 3 * H), a.d_h = rows(a.d_h, b0, H);
  a.d_h_rec = rows(a.d_h_rec, b0, H), a.outputs = rows(a.outputs, b0, T * H);
  a.gates = rows(a.gates, b0, T * 3 * H), a.hz_h = rows(a.hz_h, b0, T * H);
  a.h0 = rows(a.h0, b0, H), a.recurrent_mask = rows(a.recurrent_mask, b0, H);
  a.step_mask = rows(a.step_mask, b0, T);
  a.d_outputs = rows(a.d_outputs, b0, T * H), a.d_h_last = rows(a.d_h_last, b0, H);
  a.B = nb;
  return a;
}

// The weight-gradient phase on the batch rows [b0, b0 + nb) only, into `dw` (the stacked
// gradients, see stacked_width): a partial sum over those rows.
template <typename F>
SimpleRnnBackwardArgs<F> weight_rows(SimpleRnnBackwardArgs<F> a, Index b0, Index nb, F* dw) {
  using detail::rows;
  a.stacked = rows(a.stacked, b0, a.T * stacked_width(a.I, a.H, false));
  a.d_pre = rows(a.d_pre, b0, a.T * a.H);
  a.d_weights = dw, a.B = nb;
  return a;
}

template <typename F>
LstmBackwardArgs<F> weight_rows(LstmBackwardArgs<F> a, Index b0, Index nb, F* dw) {
  using detail::rows;
  a.stacked = rows(a.stacked, b0, a.T * stacked_width(a.I, a.H, false));
  a.d_gates = rows(a.d_gates, b0, a.T * 4 * a.H);
  a.d_weights = dw, a.B = nb;
  return a;
}

template <typename F>
GruBackwardArgs<F> weight_rows(GruBackwardArgs<F> a, Index b0, Index nb, F* dw) {
  using detail::rows;
  a.stacked = rows(a.stacked, b0, a.T * stacked_width(a.I, a.H, true));
  a.d_xz = rows(a.d_xz, b0, a.T * 3 * a.H), a.d_hz = rows(a.d_hz, b0, a.T * 3 * a.H);
  a.d_weights = dw, a.B = nb;
  return a;
}

// Layer-normalized cells (args.hpp): the plain cell's slice, plus the rows of their tape and of
// the per-row d_gamma, d_beta sums. (Chosen over the plain overloads for these types: an exact
// match; SFINAE keeps it away from every other type.)
namespace detail {
template <typename F>
LayerNormForward<F> ln_rows(LayerNormForward<F> ln, Index b0, Index T, Index G, Index gates) {
  ln.xhat = rows(ln.xhat, b0, T * G), ln.rstd = rows(ln.rstd, b0, T * gates);
  return ln;
}
template <typename F>
LayerNormBackward<F> ln_rows(LayerNormBackward<F> ln, Index b0, Index T, Index G, Index gates) {
  ln.xhat = rows(ln.xhat, b0, T * G), ln.rstd = rows(ln.rstd, b0, T * gates);
  ln.d_gamma_beta = rows(ln.d_gamma_beta, b0, 2 * G);
  return ln;
}
}  // namespace detail

template <typename Ln, typename Base = typename Ln::Base>
Ln batch_slice(const Ln& a, Index b0, Index nb) {
  Ln s = a;
  static_cast<Base&>(s) = batch_slice(static_cast<const Base&>(a), b0, nb);
  s.ln = detail::ln_rows(a.ln, b0, a.T, Ln::kGates * a.H, Ln::kGates);
  return s;
}

template <typename Ln, typename F, typename Base = typename Ln::Base>
Ln weight_rows(const Ln& a, Index b0, Index nb, F* dw) {
  Ln s = a;  // the weight phase reads only the plain cell's arrays
  static_cast<Base&>(s) = weight_rows(static_cast<const Base&>(a), b0, nb, dw);
  return s;
}

// Tells the core a spin-wait loop is running (less power, and the other hyperthread runs).
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waiting for a condition another thread makes true. It usually comes within microseconds
// (the other threads do the same work), so the waiter spins first (with pause); but when the
// cores are shared (other processes, other libraries' idle threads still spinning) the
// thread it waits for may not be running, so after `spin` it sleeps on a condition variable
// instead of burning the time slice that thread needs. The condition must be read and made
// true with sequentially consistent atomics, and made true before notify().
class Waiter {
 public:
  template <typename Ready>
  void wait(const Ready& ready, std::chrono::microseconds spin) {
    const auto until = std::chrono::steady_clock::now() + spin;
    for (int spins = 0;; ++spins) {
      if (ready()) return;
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until) break;
      cpu_pause();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);  // then `ready` is read once more
    wake_.wait(lock, ready);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Wakes the sleepers (a no-op when none sleeps, the common case).
  void notify() {
    if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);  // a waiter between its check and its sleep
    wake_.notify_all();                        // holds this, so the wake cannot be lost
  }

 private:
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

// How many slices to run at once, with up to `threads`: one per thread when the work
// (`flops`, about 10 us per 1e6 on one core) pays for handing it to a pooled thread (a few
// microseconds), and each slice keeps at least `min_size` rows or columns.
inline int slices_for(int threads, double flops, Index size, Index min_size) {
  threads = std::min(threads, kMaxSlices);
  if (threads <= 1 || flops < kMinParallelFlops) return 1;
  return static_cast<int>(std::max<Index>(1, std::min<Index>(threads, size / min_size)));
}

// The threads that run the slices of a call. Starting a std::thread costs 30-50 us, as much
// as a whole book-sized forward pass, so the workers are started once and kept: after a job
// each spins for a while (the next phase of a training step usually comes within
// microseconds), then sleeps on a condition variable. One call uses the pool at a time; a
// call made while it is busy (another Python thread, the GIL being released around kernels)
// runs on threads of its own instead.
//
// Slices are claimed, not assigned: the caller and the workers take the next unclaimed slice
// until none is left, so when the cores are busy with other work and a worker is slow to
// wake, the caller runs its slices instead of waiting for it (at worst the call runs at the
// speed of one thread). Only a job whose slices synchronise with each other (`together`: a
// unit split, with a barrier every step) gives slice s to worker s, since all must run at once.
class WorkerPool {
 public:
  // The process's pool, created on first use. It is never destroyed: its workers may still
  // be parked when the interpreter exits. A child process after fork() gets a new one (the
  // parent's workers do not exist there).
  static WorkerPool& instance() {
    static WorkerPool* pool = nullptr;  // deliberately never deleted
    std::lock_guard<std::mutex> lock(instance_guard());
    if (pool == nullptr || pool->owner_ != ::getpid())  // (a forked copy's threads are gone)
      pool = std::make_unique<WorkerPool>().release();
    return *pool;
  }

  // Runs fn(s) for s in [0, n) (see above for `together`). Returns false (nothing run) when
  // the pool is busy with another call or cannot start its threads.
  template <typename Fn>
  bool run(int n, const Fn& fn, bool together) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || n > kMaxSlices || !grow(n - 1)) return false;
    call_ = [](const void* f, int s) { (*static_cast<const Fn*>(f))(s); };
    fn_ = &fn;
    error_ = nullptr;
    const std::uint64_t id = (state_.load(std::memory_order_relaxed) >> 16) + 1;
    done_.store(0, std::memory_order_relaxed);
    claims_.store(id << 32, std::memory_order_release);  // slice 0 of job `id` is next
    state_.store(id << 16 | std::uint64_t(together) << 8 | std::uint64_t(n),
                 std::memory_order_seq_cst);
    idle_.notify();
    if (together)
      run_slice(0);
    else
      run_claimed(id, n);
    for (int spins = 0; done_.load(std::memory_order_acquire) != n; ++spins) {
      if (spins > 2000) std::this_thread::yield();
      cpu_pause();
    }
    if (error_ != nullptr) std::rethrow_exception(error_);
    return true;
  }

  // Held while instance() looks at the pool. A fork() while another thread holds it would
  // leave the child's copy locked for ever, so the module's pthread_atfork handlers
  // (bindings/common.cpp) take it around every fork. (Nothing else of the parent's pool is
  // used in a child: it makes its own.)
  static std::mutex& instance_guard() {
    static std::mutex guard;
    return guard;
  }

  WorkerPool() : owner_(::getpid()) {}
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

 private:
  // Makes sure `count` workers exist (called with busy_ held).
  bool grow(int count) {
    try {
      while (static_cast<int>(workers_.size()) < count) {
        const int index = static_cast<int>(workers_.size());
        // The current job is passed in: the thread may first run after the job that started
        // it is published, and must not take that job as already seen.
        const std::uint64_t seen = state_.load(std::memory_order_relaxed) >> 16;
        workers_.emplace_back([this, index, seen] { work(index + 1, seen); });
        workers_.back().detach();
      }
    } catch (const std::exception&) {
      return false;
    }
    return true;
  }

  // Runs slice s of the current job and counts it done (an exception is kept for the caller).
  void run_slice(int s) {
    try {
      call_(fn_, s);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (error_ == nullptr) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
  }

  // Claims and runs slices of job `id` until none is left. A claim names its job, so a
  // worker that wakes late can never take a slice of a later job for one of this job.
  void run_claimed(std::uint64_t id, int n) {
    std::uint64_t c = claims_.load(std::memory_order_acquire);
    for (;;) {
      if ((c >> 32) != id || static_cast<int>(c & 0xffffffffu) >= n) return;
      if (claims_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                        std::memory_order_acquire))
        run_slice(static_cast<int>(c & 0xffffffffu));
    }
  }

  // Worker loop: on every new job, claims slices (or runs slice `slice` of a together job).
  void work(int slice, std::uint64_t seen) {
    for (;;) {
      const std::uint64_t job = await(seen);
      seen = job >> 16;
      const int n = static_cast<int>(job & 0xff);
      if ((job >> 8) & 1) {
        if (slice < n) run_slice(slice);
      } else {
        run_claimed(seen, n);
      }
    }
  }

  // Waits for a job newer than `seen` (spinning for about 300 us first).
  std::uint64_t await(std::uint64_t seen) {
    std::uint64_t job = 0;
    idle_.wait(
        [&] {
          job = state_.load(std::memory_order_seq_cst);
          return (job >> 16) != seen;
        },
        std::chrono::microseconds(300));
    return job;
  }

  const pid_t owner_;
  std::mutex busy_;
  std::vector<std::thread> workers_;
  // The job: id << 16 | together << 8 | number of slices. Workers read call_ and fn_ after
  // seeing a new id (or claiming a slice of it); the caller rewrites them only once every
  // slice of the last job is done.
  std::atomic<std::uint64_t> state_{0};
  std::atomic<std::uint64_t> claims_{0};  // id << 32 | next unclaimed slice
  std::atomic<int> done_{0};
  void (*call_)(const void*, int) = nullptr;
  const void* fn_ = nullptr;
  std::exception_ptr error_;
  std::mutex error_mutex_;
  Waiter idle_;  // workers waiting for a job
};

// Runs fn(s) for s in [0, n), slices that do not wait for each other: on the pool when it is
// free, else on threads started for this call.
template <typename Fn>
void run_parallel(int n, const Fn& fn) {
  if (n <= 1) return fn(0);
  if (WorkerPool::instance().run(n, fn, false)) return;
  std::vector<std::thread> workers;
  int started = 1;
  try {
    for (; started < n; ++started) workers.emplace_back(fn, started);
  } catch (const std::exception&) {
    for (int s = started; s < n; ++s) fn(s);  // could not start a thread: run it here
  }
  fn(0);
  for (auto& w : workers) w.join();
}

// A barrier for the threads of one call: the step loops of a unit split wait here once per
// step (a Waiter: spinning for up to 200 us, then sleeping).
class StepBarrier {
 public:
  explicit StepBarrier(int parties) : parties_(parties) {}

  void wait() {
    const unsigned generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == parties_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_seq_cst);
      waiter_.notify();
      return;
    }
    waiter_.wait([&] { return generation_.load(std::memory_order_seq_cst) != generation; },
                 std::chrono::microseconds(200));
  }

  static void wait_on(void* barrier) { static_cast<StepBarrier*>(barrier)->wait(); }

 private:
  const int parties_;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
  Waiter waiter_;
};

// kernel(args) with the hidden units split into `slices` ranges (multiples of 16 units where
// possible, so gate math keeps whole packets), one per thread, in step with each other.
template <typename Args>
void run_unit_sliced(void (*kernel)(const Args&), const Args& args, int slices) {
  StepBarrier barrier(slices);
  const Index H = args.H, blocks = (H + 15) / 16;
  const auto slice = [&](int s) {
    Args part = args;
    part.split.u_begin = std::min(H, blocks * s / slices * 16);
    part.split.u_end = std::min(H, blocks * (s + 1) / slices * 16);
    part.split.sync = &StepBarrier::wait_on;
    part.split.sync_ctx = &barrier;
    kernel(part);
  };
  // The slices meet at a barrier every step, so all must run at once: on the pool's threads,
  // or, when another call has the pool (a server's concurrent calls), on threads of this
  // call's own, every one started before any slice runs (a slice that never started would
  // stall the others at the barrier); if one cannot start, all units run on this thread.
  if (WorkerPool::instance().run(slices, slice, true)) return;
  std::atomic<int> go{0};  // 0: wait, 1: run, -1: give up
  std::vector<std::thread> workers;
  try {
    for (int s = 1; s < slices; ++s)
      workers.emplace_back([&go, &slice, s] {
        int state;
        while ((state = go.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
        if (state == 1) slice(s);
      });
  } catch (const std::exception&) {
    go.store(-1, std::memory_order_release);
    for (auto& w : workers) w.join();
    return kernel(args);
  }
  go.store(1, std::memory_order_release);
  slice(0);
  for (auto& w : workers) w.join();
}

// How the time loop is threaded: split the batch rows (each thread a whole smaller problem,
// no synchronisation), or split the hidden units (each thread all rows, a share of the
// recurrent kernel, one barrier per step). Splitting units pays when rows per thread would
// be few or the recurrent kernel is large (its per-step packing then dominates); it needs no
// recurrent dropout mask (whose masked state every thread would write).
struct StepPlan {
  int slices;
  bool units;
};

inline StepPlan plan_steps(int max_threads, Index B, Index H, Index G, Index T,
                           bool masked) {
  const double step_flops = 2.0 * double(B) * double(H) * double(G);
  const int threads = slices_for(max_threads, step_flops * double(T), Index(1) << 30, 1);
  if (threads <= 1) return {1, false};
  // A unit split synchronises every step: only worth it when each thread's share of a step
  // is long (about 50 us or more) next to a barrier, and when the recurrent kernel is large
  // (measured here: rows win up to H = 256 even with 16 rows a thread, units win at 512).
  const bool units = !masked && H >= 384 && H >= 32 * threads && step_flops / threads >= 5.0e6;
  if (units) return {threads, true};
  return {static_cast<int>(std::max<Index>(1, std::min<Index>(threads, B / 4))), false};
}

// kernel(args) on `slices` contiguous batch slices in parallel.
template <typename Args>
void run_batch_sliced(void (*kernel)(const Args&), const Args& args, int slices) {
  if (slices <= 1) return kernel(args);
  const Index B = args.B;
  run_parallel(slices, [&](int s) {
    const Index b0 = B * s / slices, b1 = B * (s + 1) / slices;
    kernel(batch_slice(args, b0, b1 - b0));
  });
}

// The most row slices a backward's weight phase can use, each but the first with its own
// partial sums (so its workspace is sized by this, not by the thread count asked for): none
// when the gradients are wide enough for a column split; else at most one per 4 batch rows
// (plan_steps's row split, run_row_sliced) or per 8 (run_weights), and kMaxSlices.
inline Index max_weight_row_slices(int threads, Index B, Index G) {
  if (G >= kMinColumnSplit) return 1;
  return std::max<Index>(1, std::min<Index>({Index(threads), Index(kMaxSlices), B / 4}));
}

// backward_weights(args) on `slices` column ranges of the G gate columns in parallel.
template <typename Args>
void run_column_sliced(void (*kernel)(const Args&), Args args, Index G, int slices) {
  if (slices <= 1) {
    args.g_begin = 0, args.g_end = G;
    return kernel(args);
  }
  run_parallel(slices, [&](int s) {
    Args part = args;
    part.g_begin = G * s / slices, part.g_end = G * (s + 1) / slices;
    kernel(part);
  });
}

// (Keeps a parameter out of template argument deduction, so it may be passed nullptr.)
template <typename T>
struct NotDeduced {
  using type = T;
};

// Row slices of a backward, in one parallel phase: slice s runs the time loop on its rows and
// the per-row work after it (its stacked rows, its d_x) when `steps` is given, then its rows'
// share of the weight gradients, summed into its own buffer of `size` elements (slice 0:
// args.d_weights; the others: `partials`, slices - 1 of them), and the shares are added up at
// the end. Weights alone: for skinny gradients (small G) this keeps each GEMM's output whole,
// where a column split would leave every thread a sliver. With the time loop: one phase
// instead of three (time loop, rows, weights); a book-sized backward is tens of
// microseconds, each phase costs the hand-over to the pool and back, and a slice's rows are
// still in its core's cache when it multiplies them.
template <typename Args, typename F>
void run_row_sliced(typename NotDeduced<void (*)(const Args&)>::type steps,
                    void (*weights)(const Args&), Args args, Index G, Index size, int slices,
                    F* partials) {
  args.g_begin = 0, args.g_end = G;
  if (slices <= 1) {
    if (steps != nullptr) steps(args);
    return weights(args);
  }
  const Index B = args.B;
  run_parallel(slices, [&](int s) {
    const Index b0 = B * s / slices, b1 = B * (s + 1) / slices;
    if (steps != nullptr) steps(batch_slice(args, b0, b1 - b0));
    weights(weight_rows(args, b0, b1 - b0, s == 0 ? args.d_weights : partials + (s - 1) * size));
  });
  for (int s = 1; s < slices; ++s) {
    const F* p = partials + (s - 1) * size;
    for (Index k = 0; k < size; ++k) args.d_weights[k] += p[k];
  }
}

// The weight phase, split the cheaper way: by gate columns when G is wide, by batch rows
// (with partial sums) when it is narrow. `partials` must hold (threads - 1) * size elements,
// size being that of the stacked gradients (stacked_width(I, H, gru) * G).
template <typename Args, typename F>
void run_weights(void (*kernel)(const Args&), const Args& args, Index G, Index size,
                 double flops, F* partials, int threads) {
  if (G >= kMinColumnSplit)
    return run_column_sliced(kernel, args, G, slices_for(threads, flops, G, 128));
  const int slices = slices_for(threads, flops, args.B, 8);
  run_row_sliced(nullptr, kernel, args, G, size, slices, partials);
}

}  // namespace fastrnn
