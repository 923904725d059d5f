// fastrnn._core: the module, its error translation and settings; every op family registers its
// own functions (def_* in common.hpp).
#include <cblas.h>

#include <algorithm>

#include "bindings/common.hpp"
#include "parallel.hpp"

namespace fastrnn {
namespace bindings {
namespace {

void set_num_threads(long long n) {
  if (n < 1)
    throw std::invalid_argument("argument `n`: expected a positive number of threads, got " +
                                std::to_string(n));
  // No phase splits into more than kMaxThreads slices, so more threads could never run.
  configured_threads().store(static_cast<int>(std::min<long long>(n, kMaxThreads)));
}

int get_num_threads() { return configured_threads().load(); }

std::string blas_config() {
  return std::string(scipy_openblas_get_config()) + " core=" + scipy_openblas_get_corename();
}

std::string kernel_set_name() { return kernels().name; }

py::array debug_empty(Index n) {
  if (n < 0) throw std::invalid_argument("argument `n`: expected a non-negative size");
  return empty<double>({n});
}

void debug_hold_locks(int milliseconds) {
  py::gil_scoped_release release;
  hold_process_locks(milliseconds);
}

}  // namespace
}  // namespace bindings
}  // namespace fastrnn

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using namespace fastrnn::bindings;
  m.doc() = "fastrnn C++ kernels (batch-major, Keras weight layout). Use fastrnn.ops instead.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  fastrnn::configured_threads();  // pins OpenBLAS to one thread before the first kernel
  install_fork_handlers();

  def_recurrent_cells(m);
  def_layer_norm_cells(m);
  def_steps(m);
  def_optimizers(m);
  def_products(m);
  def_sequence_layers(m);
  def_stacked(m);

  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads used by the core (at most kMaxThreads; larger counts are capped).");
  m.def("get_num_threads", &get_num_threads);
  m.attr("MAX_THREADS") = fastrnn::kMaxThreads;
  m.def("blas_config", &blas_config,
        "OpenBLAS build configuration and the kernel (core) it chose for this CPU.");
  m.def("kernel_set", &kernel_set_name, "The instruction-set variant of the kernels in use.");
  m.def("available_kernel_sets", &fastrnn::available_kernel_sets);
  m.def("select_kernel_set", &fastrnn::select_kernel_set, py::arg("name"));
  // For the tests of the reliability machinery only (tests/test_core_reliability.py).
  m.def("_debug_fill_nan", &debug_fill_nan,
        "Whether FASTRNN_DEBUG_FILL_NAN was set when the core first handed out a buffer.");
  m.def("_debug_empty", &debug_empty, py::arg("n"),
        "An array as a kernel gets it for an output (NaN in the debug mode).");
  m.def("_debug_hold_locks", &debug_hold_locks, py::arg("milliseconds"),
        "Holds the core's process-wide locks for a while (fork tests).");
#ifdef VERSION_INFO
#define FASTRNN_STRINGIFY_(x) #x
#define FASTRNN_STRINGIFY(x) FASTRNN_STRINGIFY_(x)
  m.attr("__version__") = FASTRNN_STRINGIFY(VERSION_INFO);
#endif
}
