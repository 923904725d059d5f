#include "dispatch.hpp"

#include <cblas.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace fastrnn {

bool blas_reads_small_in_place() {
  static const bool yes = [] {
    const std::string core = scipy_openblas_get_corename();
    return core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
  }();
  return yes;
}

#ifdef FASTRNN_HAVE_native
namespace native { const KernelTable& kernel_table(); }
#endif
#ifdef FASTRNN_HAVE_generic
namespace generic { const KernelTable& kernel_table(); }
#endif
#ifdef FASTRNN_HAVE_avx2
namespace avx2 { const KernelTable& kernel_table(); }
#endif
#ifdef FASTRNN_HAVE_avx512
namespace avx512 { const KernelTable& kernel_table(); }
#endif

namespace {

struct Variant {
  const char* name;
  const KernelTable* (*get)();
  bool (*supported)();
};

bool always() { return true; }
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
// (unused in a FASTRNN_NATIVE build, which has one kernel set and no run-time choice)
[[maybe_unused]] bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
[[maybe_unused]] bool has_avx512() {
  __builtin_cpu_init();
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}
#endif

// Best last.
const std::vector<Variant>& variants() {
  static const std::vector<Variant> all = {
#ifdef FASTRNN_HAVE_native
      {"native", [] { return &native::kernel_table(); }, always},
#endif
#ifdef FASTRNN_HAVE_generic
      {"generic", [] { return &generic::kernel_table(); }, always},
#endif
#ifdef FASTRNN_HAVE_avx2
      {"avx2", [] { return &avx2::kernel_table(); }, has_avx2},
#endif
#ifdef FASTRNN_HAVE_avx512
      {"avx512", [] { return &avx512::kernel_table(); }, has_avx512},
#endif
  };
  return all;
}

const KernelTable* find(const std::string& name) {
  for (const auto& v : variants())
    if (name == v.name) {
      if (!v.supported())
        throw std::invalid_argument("kernel set '" + name + "' is not supported by this CPU");
      return v.get();
    }
  throw std::invalid_argument("unknown kernel set '" + name + "'");
}

// The best kernel set this CPU runs. (FASTRNN_KERNELS is read by the Python package when it
// loads the core, which then selects that set or refuses it with the sets this CPU runs.)
const KernelTable* best() {
  const KernelTable* chosen = nullptr;
  for (const auto& v : variants())
    if (v.supported()) chosen = v.get();
  return chosen;
}

std::atomic<const KernelTable*>& current() {
  static std::atomic<const KernelTable*> table{best()};
  return table;
}

}  // namespace

const KernelTable& kernels() { return *current().load(std::memory_order_relaxed); }

std::vector<std::string> available_kernel_sets() {
  std::vector<std::string> names;
  for (const auto& v : variants())
    if (v.supported()) names.emplace_back(v.name);
  return names;
}

void select_kernel_set(const std::string& name) { current().store(find(name)); }

}  // namespace fastrnn

// ------------------------------------------------------------------------ sequence layers
namespace fastrnn {

#ifdef FASTRNN_HAVE_native
namespace native { const LayerKernelTable& layer_kernel_table(); }
#endif
#ifdef FASTRNN_HAVE_generic
namespace generic { const LayerKernelTable& layer_kernel_table(); }
#endif
#ifdef FASTRNN_HAVE_avx2
namespace avx2 { const LayerKernelTable& layer_kernel_table(); }
#endif
#ifdef FASTRNN_HAVE_avx512
namespace avx512 { const LayerKernelTable& layer_kernel_table(); }
#endif

// Follows select_kernel_set: the table of the variant whose name kernels() reports (every
// variant builds both tables).
const LayerKernelTable& layer_kernels() {
  const std::string name = kernels().name;
#ifdef FASTRNN_HAVE_native
  if (name == "native") return native::layer_kernel_table();
#endif
#ifdef FASTRNN_HAVE_avx512
  if (name == "avx512") return avx512::layer_kernel_table();
#endif
#ifdef FASTRNN_HAVE_avx2
  if (name == "avx2") return avx2::layer_kernel_table();
#endif
#ifdef FASTRNN_HAVE_generic
  if (name == "generic") return generic::layer_kernel_table();
#endif
  throw std::logic_error("no layer kernels for the kernel set '" + name + "'");
}

}  // namespace fastrnn
