#include "bindings/common.hpp"

#include <cblas.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "parallel.hpp"

std::atomic<int>& fastrnn::configured_threads() {
  static std::atomic<int> threads = [] {
    const int n = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    scipy_openblas_set_num_threads(1);  // fastrnn threads its own work (parallel.hpp)
    return n;
  }();
  return threads;
}

namespace fastrnn {
namespace bindings {

std::string shape_str(const std::vector<Index>& s) {
  std::ostringstream o;
  o << "(";
  for (std::size_t k = 0; k < s.size(); ++k) o << (k ? ", " : "") << s[k];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

const std::uint8_t* checked_mask(const OptionalArray& m, const char* name,
                                 const std::vector<Index>& shape, const char* what) {
  if (!m) return nullptr;
  const py::array& a = *m;
  std::vector<Index> got(a.shape(), a.shape() + a.ndim());
  const bool dtype_ok =
      a.dtype().equal(py::dtype::of<bool>()) || a.dtype().equal(py::dtype::of<std::uint8_t>());
  if (!dtype_ok || got != shape)
    throw std::invalid_argument(std::string("argument `") + name +
                                "`: expected a bool or uint8 array of shape " + shape_str(shape) +
                                what + ", got " + dtype_str(a) + " " + shape_str(got));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string("argument `") + name + "`: must be C-contiguous");
  return static_cast<const std::uint8_t*>(a.data());
}

void check_at_least(const char* name, Index value, Index least) {
  if (value < least)
    throw std::invalid_argument(std::string("argument `") + name + "`: expected an integer >= " +
                                std::to_string(least) + ", got " + std::to_string(value));
}

bool debug_fill_nan() {
  static const bool on = [] {
    const char* value = std::getenv("FASTRNN_DEBUG_FILL_NAN");
    return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
  }();
  return on;
}

void keep_blas_single_threaded() {
  if (scipy_openblas_get_num_threads() != 1) scipy_openblas_set_num_threads(1);
}

int call_threads() { return std::max(1, configured_threads().load()); }

namespace {

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

}  // namespace

py::array empty_array(const py::dtype& dtype, const std::vector<Index>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  std::size_t count = 1;
  for (Index d : shape) count *= std::size_t(d);
  const std::size_t bytes = count * std::size_t(dtype.itemsize());
  if (bytes < BufferPool::kMinBytes) return py::array(dtype, dims);
  auto owner = std::make_unique<PooledBuffer>(bytes, buffer_pool().take(bytes));
  void* data = owner->data.get();
  py::capsule base(owner.get(), [](void* p) {
    std::unique_ptr<PooledBuffer>(static_cast<PooledBuffer*>(p));  // returns it to the pool
  });
  owner.release();  // the capsule owns it now
  return py::array(dtype, dims, data, base);
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
          WorkerPool::instance_guard().lock();
          buffer_pool().lock_for_fork();
        },
        [] {
          buffer_pool().unlock_after_fork();
          WorkerPool::instance_guard().unlock();
        },
        [] {
          buffer_pool().unlock_after_fork();
          WorkerPool::instance_guard().unlock();
        });
    if (failed != 0) throw std::runtime_error("pthread_atfork failed");
  });
}

void hold_process_locks(int milliseconds) {
  std::lock_guard<std::mutex> pool(WorkerPool::instance_guard());
  buffer_pool().lock_for_fork();
  std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
  buffer_pool().unlock_after_fork();
}

}  // namespace bindings
}  // namespace fastrnn
