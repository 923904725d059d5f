#include "bindings/cells.hpp"

#include <cblas.h>

#include <atomic>

namespace fastrnn {
namespace bindings {

Activation parse_activation(const std::string& name) {
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "linear") return Activation::linear;
  throw std::invalid_argument("argument `activation`: expected 'tanh', 'relu' or 'linear', got '" +
                              name + "'");
}

Index parse_truncate(Index truncate) {
  if (truncate < 0)
    throw std::invalid_argument("argument `truncate`: expected 0 (full BPTT) or a positive "
                                "number of steps, got " + std::to_string(truncate));
  return truncate;
}

const std::uint8_t* checked_step_mask(const OptionalArray& m, Index B, Index T) {
  return checked_mask(m, "step_mask", {B, T}, " (batch, time)");
}

void transpose(const float* src, Index rows, Index cols, float* dst) {
  scipy_cblas_somatcopy(CblasRowMajor, CblasTrans, static_cast<int>(rows), static_cast<int>(cols),
                        1.0f, src, static_cast<int>(cols), dst, static_cast<int>(rows));
}
void transpose(const double* src, Index rows, Index cols, double* dst) {
  scipy_cblas_domatcopy(CblasRowMajor, CblasTrans, static_cast<int>(rows), static_cast<int>(cols),
                        1.0, src, static_cast<int>(cols), dst, static_cast<int>(rows));
}

std::size_t weight_phase_size(const Dims& d, bool gru) {
  const Index S = stacked_width(d.I, d.H, gru);
  const Index slices = max_weight_row_slices(d.threads, d.B, d.G);
  return std::size_t(d.B * d.T * S + slices * S * d.G);
}

namespace {
std::atomic<int> packed_mode_{int(PackedMode::automatic)};
}  // namespace

void set_packed_mode(const std::string& mode) {
  PackedMode m;
  if (mode == "auto")
    m = PackedMode::automatic;
  else if (mode == "never")
    m = PackedMode::never;
  else if (mode == "always")
    m = PackedMode::always;
  else
    throw std::invalid_argument("argument `mode`: expected 'auto', 'never' or 'always', got '" +
                                mode + "'");
  packed_mode_ = int(m);
}

PackedMode packed_mode() { return static_cast<PackedMode>(packed_mode_.load()); }

}  // namespace bindings
}  // namespace fastrnn
