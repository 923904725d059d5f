// What every Python entry point of fastrnn._core shares: argument checks, output arrays,
// workspaces, the kernel set in use and the float32/float64 dispatch. The files of this folder
// are the only ones that know Python. Every entry point: check every argument (dtype, shape,
// contiguity) and throw std::invalid_argument (a ValueError) naming it; allocate outputs while
// holding the GIL; release the GIL around the kernel only.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "args.hpp"
#include "dispatch.hpp"

namespace fastrnn {
namespace bindings {

namespace py = pybind11;
using OptionalArray = std::optional<py::array>;  // an array argument that may be None

// ------------------------------------------------------------------------- argument checks
std::string shape_str(const std::vector<Index>& s);  // "(2, 3)", "(4,)"
std::string dtype_str(const py::array& a);           // "float32", "int64", ...

template <typename F>
const char* dtype_name() {
  return sizeof(F) == 4 ? "float32" : "float64";
}

// Checks that `a` is a C-contiguous F array of exactly `shape`; returns its data.
template <typename F>
const F* checked(const py::array& a, const char* name, const std::vector<Index>& shape) {
  std::vector<Index> got(a.shape(), a.shape() + a.ndim());
  if (!a.dtype().equal(py::dtype::of<F>()) || got != shape)
    throw std::invalid_argument(std::string("argument `") + name + "`: expected a " +
                                dtype_name<F>() + " array of shape " + shape_str(shape) +
                                ", got " + dtype_str(a) + " " + shape_str(got));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string("argument `") + name + "`: must be C-contiguous");
  return static_cast<const F*>(a.data());
}

// The same for an optional array: nullptr when None.
template <typename F>
const F* checked(const OptionalArray& a, const char* name, const std::vector<Index>& shape) {
  return a ? checked<F>(*a, name, shape) : nullptr;
}

// The same for an array the call writes into.
template <typename F>
F* checked_writeable(const py::array& a, const char* name, const std::vector<Index>& shape) {
  checked<F>(a, name, shape);
  py::array arr = a;
  if (!arr.writeable())
    throw std::invalid_argument(std::string("argument `") + name + "`: must be writeable");
  return static_cast<F*>(arr.mutable_data());
}

// A C-contiguous bool or uint8 mask of exactly `shape` (`what` follows the shape in the
// message, e.g. " (batch, time)"); nullptr when None.
const std::uint8_t* checked_mask(const OptionalArray& m, const char* name,
                                 const std::vector<Index>& shape, const char* what);

// An integer argument with a lower bound.
void check_at_least(const char* name, Index value, Index least);

// ------------------------------------------------------------------ the float dtype dispatch
// An entry point is a function template over the float type F; Python sees one function that
// runs the float32 or float64 instance by the dtype of its argument number `Which` (named
// `Name` in the error), with the parameters, and so the Python argument list, of the two.
template <const char* Name, std::size_t Which, auto Fn32, auto Fn64>
struct ByDtype;
template <const char* Name, std::size_t Which, typename R, typename... A, R (*Fn32)(A...),
          R (*Fn64)(A...)>
struct ByDtype<Name, Which, Fn32, Fn64> {
  static R call(A... args) {
    const py::array& decides = std::get<Which>(std::forward_as_tuple(args...));
    if (decides.dtype().equal(py::dtype::of<float>())) return Fn32(std::forward<A>(args)...);
    if (decides.dtype().equal(py::dtype::of<double>())) return Fn64(std::forward<A>(args)...);
    throw std::invalid_argument(std::string("argument `") + Name +
                                "`: expected float32 or float64, got " + dtype_str(decides));
  }
};
inline constexpr char kX[] = "x";
// By the dtype of the first argument, `x`: by_dtype<f<float>, f<double>>, a function pointer.
template <auto Fn32, auto Fn64>
inline constexpr auto by_dtype = &ByDtype<kX, 0, Fn32, Fn64>::call;
// By the dtype of argument number Which, named Name (a constexpr char array).
template <const char* Name, std::size_t Which, auto Fn32, auto Fn64>
inline constexpr auto by_dtype_of = &ByDtype<Name, Which, Fn32, Fn64>::call;

// ------------------------------------------------------------------------- outputs, memory
// FASTRNN_DEBUG_FILL_NAN=1 (read once, at the first array or workspace handed out): every
// output array and per-thread workspace a kernel gets is filled with NaN first. Recycled
// buffers (the pool of `empty`, Workspace) are not zeroed, so a kernel path that leaves an
// element unwritten would otherwise return stale values that look plausible; with this, the
// test suite sees NaN. CI runs the whole suite in this mode too (.ci/run).
bool debug_fill_nan();

template <typename F>
void fill_nan_when_debugging(F* p, std::size_t n) {
  if (debug_fill_nan()) std::fill(p, p + n, std::numeric_limits<F>::quiet_NaN());
}

// An uninitialised C-contiguous array of `shape` (every kernel writes all of its outputs);
// large ones reuse freed buffers (common.cpp).
py::array empty_array(const py::dtype& dtype, const std::vector<Index>& shape);

template <typename F>
py::array_t<F> empty(const std::vector<Index>& shape) {
  py::array a = empty_array(py::dtype::of<F>(), shape);
  fill_nan_when_debugging(static_cast<F*>(a.mutable_data()), std::size_t(a.size()));
  return py::reinterpret_steal<py::array_t<F>>(a.release());
}

template <typename F>
F* data(py::array_t<F>& a) {
  return a.mutable_data();
}

template <typename F>
void zero(py::array_t<F>& a) {
  std::fill(a.mutable_data(), a.mutable_data() + a.size(), F(0));
}

template <typename F>
void copy_or_zero(F* dst, const F* src, Index n) {
  if (src != nullptr)
    std::memcpy(dst, src, sizeof(F) * static_cast<std::size_t>(n));
  else
    std::fill(dst, dst + n, F(0));
}

// Per-thread scratch memory, reused across calls (kernels never allocate); Slot tells apart
// the buffers one call needs at once.
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

// fork() safety: the process-wide locks taken before a fork and released after (common.cpp).
void install_fork_handlers();
// Holds those locks for a while (the fork tests).
void hold_process_locks(int milliseconds);

// --------------------------------------------------------------------------- the kernels
// fastrnn threads its own work and needs OpenBLAS single-threaded inside it (parallel.hpp);
// something else in the process (threadpoolctl, another library sharing this OpenBLAS) may
// have changed that, so every entry point puts it back. Cheap: one call when it is right.
void keep_blas_single_threaded();

// The threads a call may use, read once per call (buffers per thread are sized from it).
int call_threads();

// The kernels of the kernel set in use (dispatch.cpp), for float or double.
template <typename F, typename Table>
const auto& for_dtype(const Table& table) {
  if constexpr (sizeof(F) == 4)
    return table.f32;
  else
    return table.f64;
}
template <typename F>
const KernelSet<F>& kernel_set() {
  return for_dtype<F>(kernels());
}
template <typename F>
const LayerKernelSet<F>& layer_kernel_set() {
  return for_dtype<F>(layer_kernels());
}

// ------------------------------------------------------------------ the families' bindings
void def_recurrent_cells(py::module_& m);    // recurrent_cells.cpp
void def_layer_norm_cells(py::module_& m);   // layer_norm_cells.cpp
void def_steps(py::module_& m);              // steps.cpp: single steps, the model stepper
void def_products(py::module_& m);           // products.cpp: matmul, the packed product
void def_optimizers(py::module_& m);         // optimizers.cpp
void def_sequence_layers(py::module_& m);    // sequence_layers.cpp: conv, pooling, norms
void def_stacked(py::module_& m);            // stacked.cpp: stacked layers' wavefront

}  // namespace bindings
}  // namespace fastrnn
