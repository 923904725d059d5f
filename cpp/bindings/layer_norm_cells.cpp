// The layer-normalized SimpleRNN, LSTM and GRU: the plain cells' arguments (checked alike) plus
// gamma, beta (G,), epsilon and the layer normalization's tape, xhat (B, T, G) and rstd
// (B, T, gates). Always with a tape.
#include <cmath>

#include "bindings/cells.hpp"

namespace fastrnn {
namespace bindings {
namespace {

// gamma, beta (G,) and epsilon of a forward (its outputs xhat, rstd are set by run_forward).
template <typename F>
LayerNormForward<F> layer_norm_forward_arguments(const py::array& gamma, const py::array& beta,
                                                 double epsilon, const Dims& d) {
  if (!(epsilon > 0.0) || !std::isfinite(epsilon))
    throw std::invalid_argument("argument `epsilon`: expected a positive finite number, got " +
                                std::to_string(epsilon));
  LayerNormForward<F> ln{};
  ln.gamma = checked<F>(gamma, "gamma", {d.G});
  ln.beta = checked<F>(beta, "beta", {d.G});
  ln.epsilon = static_cast<F>(epsilon);
  return ln;
}

template <typename F>
LayerNormBackward<F> layer_norm_backward_arguments(const py::array& gamma,
                                                   const py::array& xhat, const py::array& rstd,
                                                   const Dims& d, Index gates) {
  LayerNormBackward<F> ln{};
  ln.gamma = checked<F>(gamma, "gamma", {d.G});
  ln.xhat = checked<F>(xhat, "xhat", {d.B, d.T, d.G});
  ln.rstd = checked<F>(rstd, "rstd", {d.B, d.T, gates});
  return ln;
}

template <typename F>
py::tuple ln_simple_rnn_forward(const py::array& x, const OptionalArray& h0,
                                const py::array& kernel, const py::array& recurrent_kernel,
                                const OptionalArray& bias, const py::array& gamma,
                                const py::array& beta, double epsilon,
                                const OptionalArray& recurrent_mask,
                                const std::string& activation, const OptionalArray& step_mask) {
  LnSimpleRnnForwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 1, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.bias = checked<F>(bias, "bias", {d.G});
  a.activation = parse_activation(activation);
  a.ln = layer_norm_forward_arguments<F>(gamma, beta, epsilon, d);
  return run_forward<F>(kernel_set<F>().layer_norm_simple_rnn, a, d);
}

template <typename F>
py::tuple ln_simple_rnn_backward(const py::array& x, const OptionalArray& h0,
                                 const py::array& kernel, const py::array& recurrent_kernel,
                                 const py::array& gamma, const OptionalArray& recurrent_mask,
                                 const py::array& outputs, const py::array& xhat,
                                 const py::array& rstd, const OptionalArray& d_outputs,
                                 const OptionalArray& d_h_last, const std::string& activation,
                                 Index truncate, bool input_grad,
                                 const OptionalArray& step_mask) {
  LnSimpleRnnBackwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 1, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  check_backward_arguments<F>(a, d, outputs, d_outputs, d_h_last, truncate);
  a.ln = layer_norm_backward_arguments<F>(gamma, xhat, rstd, d, 1);
  a.activation = parse_activation(activation);
  return run_backward<F>(kernel_set<F>().layer_norm_simple_rnn, a, d, input_grad);
}

template <typename F>
py::tuple ln_lstm_forward(const py::array& x, const OptionalArray& h0, const OptionalArray& c0,
                          const py::array& kernel, const py::array& recurrent_kernel,
                          const OptionalArray& bias, const py::array& gamma,
                          const py::array& beta, double epsilon,
                          const OptionalArray& recurrent_mask, const OptionalArray& step_mask) {
  LnLstmForwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 4, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  a.bias = checked<F>(bias, "bias", {d.G});
  a.ln = layer_norm_forward_arguments<F>(gamma, beta, epsilon, d);
  return run_forward<F>(kernel_set<F>().layer_norm_lstm, a, d);
}

template <typename F>
py::tuple ln_lstm_backward(const py::array& x, const OptionalArray& h0, const OptionalArray& c0,
                           const py::array& kernel, const py::array& recurrent_kernel,
                           const py::array& gamma, const OptionalArray& recurrent_mask,
                           const py::array& outputs, const py::array& gates,
                           const py::array& cells, const py::array& xhat, const py::array& rstd,
                           const OptionalArray& d_outputs, const OptionalArray& d_h_last,
                           const OptionalArray& d_c_last, Index truncate, bool input_grad,
                           const OptionalArray& step_mask) {
  LnLstmBackwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 4, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  check_tape<F>(a, d, gates, cells);
  check_backward_arguments<F>(a, d, outputs, d_outputs, d_h_last, truncate);
  a.d_c_last = checked<F>(d_c_last, "d_c_last", {d.B, d.H});
  a.ln = layer_norm_backward_arguments<F>(gamma, xhat, rstd, d, 4);
  return run_backward<F>(kernel_set<F>().layer_norm_lstm, a, d, input_grad);
}

template <typename F>
py::tuple ln_gru_forward(const py::array& x, const OptionalArray& h0, const py::array& kernel,
                         const py::array& recurrent_kernel, const OptionalArray& bias,
                         const py::array& gamma, const py::array& beta, double epsilon,
                         const OptionalArray& recurrent_mask, const OptionalArray& step_mask) {
  LnGruForwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 3, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.bias = checked<F>(bias, "bias", {2, d.G});
  a.ln = layer_norm_forward_arguments<F>(gamma, beta, epsilon, d);
  return run_forward<F>(kernel_set<F>().layer_norm_gru, a, d);
}

template <typename F>
py::tuple ln_gru_backward(const py::array& x, const OptionalArray& h0, const py::array& kernel,
                          const py::array& recurrent_kernel, const py::array& gamma,
                          const OptionalArray& recurrent_mask, const py::array& outputs,
                          const py::array& gates, const py::array& hz_h, const py::array& xhat,
                          const py::array& rstd, const OptionalArray& d_outputs,
                          const OptionalArray& d_h_last, Index truncate, bool input_grad,
                          const OptionalArray& step_mask) {
  LnGruBackwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 3, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  check_tape<F>(a, d, gates, hz_h);
  check_backward_arguments<F>(a, d, outputs, d_outputs, d_h_last, truncate);
  a.ln = layer_norm_backward_arguments<F>(gamma, xhat, rstd, d, 3);
  return run_backward<F>(kernel_set<F>().layer_norm_gru, a, d, input_grad);
}

}  // namespace

void def_layer_norm_cells(py::module_& m) {
  const auto none = py::none();
  m.def("layer_norm_simple_rnn_forward",
        by_dtype<ln_simple_rnn_forward<float>, ln_simple_rnn_forward<double>>, py::arg("x"),
        py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"),
        py::arg("gamma"), py::arg("beta"), py::arg("epsilon"), py::arg("recurrent_mask") = none,
        py::arg("activation") = "tanh", py::arg("step_mask") = none,
        "-> (outputs, h_last, xhat, rstd)");
  m.def("layer_norm_simple_rnn_backward",
        by_dtype<ln_simple_rnn_backward<float>, ln_simple_rnn_backward<double>>, py::arg("x"),
        py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("gamma"),
        py::arg("recurrent_mask"), py::arg("outputs"), py::arg("xhat"), py::arg("rstd"),
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("activation") = "tanh",
        py::arg("truncate") = 0, py::arg("input_grad") = true, py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)");
  m.def("layer_norm_lstm_forward", by_dtype<ln_lstm_forward<float>, ln_lstm_forward<double>>,
        py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("bias"), py::arg("gamma"), py::arg("beta"),
        py::arg("epsilon"), py::arg("recurrent_mask") = none, py::arg("step_mask") = none,
        "-> (outputs, h_last, c_last, gates, cells, xhat, rstd)");
  m.def("layer_norm_lstm_backward", by_dtype<ln_lstm_backward<float>, ln_lstm_backward<double>>,
        py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("gamma"), py::arg("recurrent_mask"),
        py::arg("outputs"), py::arg("gates"), py::arg("cells"), py::arg("xhat"), py::arg("rstd"),
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("d_c_last"), py::arg("truncate") = 0,
        py::arg("input_grad") = true, py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_c0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)");
  m.def("layer_norm_gru_forward", by_dtype<ln_gru_forward<float>, ln_gru_forward<double>>,
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("gamma"), py::arg("beta"), py::arg("epsilon"),
        py::arg("recurrent_mask") = none, py::arg("step_mask") = none,
        "-> (outputs, h_last, gates, hz_h, xhat, rstd)");
  m.def("layer_norm_gru_backward", by_dtype<ln_gru_backward<float>, ln_gru_backward<double>>,
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("gamma"), py::arg("recurrent_mask"), py::arg("outputs"), py::arg("gates"),
        py::arg("hz_h"), py::arg("xhat"), py::arg("rstd"), py::arg("d_outputs"),
        py::arg("d_h_last"), py::arg("truncate") = 0, py::arg("input_grad") = true,
        py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)");
}

}  // namespace bindings
}  // namespace fastrnn
