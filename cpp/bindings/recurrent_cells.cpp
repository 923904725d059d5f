// SimpleRNN, LSTM and GRU over whole sequences: forward (with or without a tape) and backward.
#include "bindings/cells.hpp"

namespace fastrnn {
namespace bindings {
namespace {

// ---------------------------------------------------------------------------- SimpleRNN
template <typename F>
py::tuple simple_rnn_forward(const py::array& x, const OptionalArray& h0, const py::array& kernel,
                             const py::array& recurrent_kernel, const OptionalArray& bias,
                             const OptionalArray& recurrent_mask, const std::string& activation,
                             const OptionalArray& step_mask) {
  SimpleRnnForwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 1, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.bias = checked<F>(bias, "bias", {d.G});
  a.activation = parse_activation(activation);
  return run_forward<F>(kernel_set<F>().simple_rnn, a, d);
}

template <typename F>
py::tuple simple_rnn_backward(const py::array& x, const OptionalArray& h0,
                              const py::array& kernel, const py::array& recurrent_kernel,
                              const OptionalArray& recurrent_mask, const py::array& outputs,
                              const OptionalArray& d_outputs, const OptionalArray& d_h_last,
                              const std::string& activation, Index truncate, bool input_grad,
                              const OptionalArray& step_mask) {
  SimpleRnnBackwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 1, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  check_backward_arguments<F>(a, d, outputs, d_outputs, d_h_last, truncate);
  a.activation = parse_activation(activation);
  return run_backward<F>(kernel_set<F>().simple_rnn, a, d, input_grad);
}

// ---------------------------------------------------------------------------- LSTM
template <typename F>
py::tuple lstm_forward(const py::array& x, const OptionalArray& h0, const OptionalArray& c0,
                       const py::array& kernel, const py::array& recurrent_kernel,
                       const OptionalArray& bias, const OptionalArray& recurrent_mask,
                       bool keep_tape, const OptionalArray& step_mask) {
  LstmForwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 4, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  a.bias = checked<F>(bias, "bias", {d.G});
  return run_forward<F>(kernel_set<F>().lstm, a, d, keep_tape);
}

template <typename F>
py::tuple lstm_backward(const py::array& x, const OptionalArray& h0, const OptionalArray& c0,
                        const py::array& kernel, const py::array& recurrent_kernel,
                        const OptionalArray& recurrent_mask, const py::array& outputs,
                        const py::array& gates, const py::array& cells,
                        const OptionalArray& d_outputs, const OptionalArray& d_h_last,
                        const OptionalArray& d_c_last, Index truncate, bool input_grad,
                        const OptionalArray& step_mask) {
  LstmBackwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 4, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.c0 = checked<F>(c0, "c0", {d.B, d.H});
  check_tape<F>(a, d, gates, cells);
  check_backward_arguments<F>(a, d, outputs, d_outputs, d_h_last, truncate);
  a.d_c_last = checked<F>(d_c_last, "d_c_last", {d.B, d.H});
  return run_backward<F>(kernel_set<F>().lstm, a, d, input_grad);
}

// ---------------------------------------------------------------------------- GRU
template <typename F>
py::tuple gru_forward(const py::array& x, const OptionalArray& h0, const py::array& kernel,
                      const py::array& recurrent_kernel, const OptionalArray& bias,
                      const OptionalArray& recurrent_mask, bool keep_tape,
                      const OptionalArray& step_mask) {
  GruForwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 3, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  a.bias = checked<F>(bias, "bias", {2, d.G});
  return run_forward<F>(kernel_set<F>().gru, a, d, keep_tape);
}

template <typename F>
py::tuple gru_backward(const py::array& x, const OptionalArray& h0, const py::array& kernel,
                       const py::array& recurrent_kernel, const OptionalArray& recurrent_mask,
                       const py::array& outputs, const py::array& gates, const py::array& hz_h,
                       const OptionalArray& d_outputs, const OptionalArray& d_h_last,
                       Index truncate, bool input_grad, const OptionalArray& step_mask) {
  GruBackwardArgs<F> a{};
  const Dims d = check_cell_arguments<F>(a, 3, x, h0, kernel, recurrent_kernel, recurrent_mask,
                                         step_mask);
  check_tape<F>(a, d, gates, hz_h);
  check_backward_arguments<F>(a, d, outputs, d_outputs, d_h_last, truncate);
  return run_backward<F>(kernel_set<F>().gru, a, d, input_grad);
}

}  // namespace

void def_recurrent_cells(py::module_& m) {
  const auto none = py::none();
  m.def("simple_rnn_forward", by_dtype<simple_rnn_forward<float>, simple_rnn_forward<double>>,
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("recurrent_mask") = none, py::arg("activation") = "tanh",
        py::arg("step_mask") = none, "-> (outputs, h_last)");
  m.def("simple_rnn_backward", by_dtype<simple_rnn_backward<float>, simple_rnn_backward<double>>,
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("recurrent_mask"), py::arg("outputs"), py::arg("d_outputs"), py::arg("d_h_last"),
        py::arg("activation") = "tanh", py::arg("truncate") = 0, py::arg("input_grad") = true,
        py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias)");
  m.def("lstm_forward", by_dtype<lstm_forward<float>, lstm_forward<double>>, py::arg("x"),
        py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("recurrent_mask") = none, py::arg("keep_tape") = true,
        py::arg("step_mask") = none,
        "-> (outputs, h_last, c_last, gates, cells); gates and cells are None without a tape");
  m.def("lstm_backward", by_dtype<lstm_backward<float>, lstm_backward<double>>, py::arg("x"),
        py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("recurrent_mask"), py::arg("outputs"), py::arg("gates"), py::arg("cells"),
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("d_c_last"), py::arg("truncate") = 0,
        py::arg("input_grad") = true, py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_c0, d_kernel, d_recurrent_kernel, d_bias)");
  m.def("gru_forward", by_dtype<gru_forward<float>, gru_forward<double>>, py::arg("x"),
        py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"),
        py::arg("recurrent_mask") = none, py::arg("keep_tape") = true,
        py::arg("step_mask") = none,
        "-> (outputs, h_last, gates, hz_h); gates and hz_h are None without a tape");
  m.def("gru_backward", by_dtype<gru_backward<float>, gru_backward<double>>, py::arg("x"),
        py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("recurrent_mask"),
        py::arg("outputs"), py::arg("gates"), py::arg("hz_h"), py::arg("d_outputs"),
        py::arg("d_h_last"), py::arg("truncate") = 0, py::arg("input_grad") = true,
        py::arg("step_mask") = none,
        "-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias)");
}

}  // namespace bindings
}  // namespace fastrnn
