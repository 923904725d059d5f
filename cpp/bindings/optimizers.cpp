// Optimizer updates over a flat parameter buffer, in place.
#include "bindings/common.hpp"

namespace fastrnn {
namespace bindings {
namespace {

// The parameter buffer and every slot: C-contiguous arrays of one float dtype and one shape.
template <typename F>
F* slot(const OptionalArray& a, const char* name, const py::array& param) {
  if (!a) return nullptr;
  const std::vector<Index> shape(param.shape(), param.shape() + param.ndim());
  return checked_writeable<F>(*a, name, shape);
}

template <typename F>
F* param_data(const py::array& param) {
  return slot<F>(OptionalArray(param), "param", param);
}

template <typename F>
py::tuple sgd_update(const py::array& param, const py::array& grad, const OptionalArray& velocity,
                     double learning_rate, double momentum, bool nesterov) {
  SgdArgs<F> a{};
  a.param = param_data<F>(param);
  a.grad = slot<F>(OptionalArray(grad), "grad", param);
  a.velocity = slot<F>(velocity, "velocity", param);
  a.n = param.size();
  a.learning_rate = F(learning_rate), a.momentum = F(momentum), a.nesterov = nesterov;
  py::gil_scoped_release release;
  kernel_set<F>().optimizers.sgd(a);
  return py::tuple();
}

template <typename F>
py::tuple adam_update(const py::array& param, const py::array& grad, const py::array& m,
                      const py::array& v, const OptionalArray& v_hat, double alpha, double beta_1,
                      double beta_2, double epsilon) {
  AdamArgs<F> a{};
  a.param = param_data<F>(param);
  a.grad = slot<F>(OptionalArray(grad), "grad", param);
  a.m = slot<F>(OptionalArray(m), "m", param);
  a.v = slot<F>(OptionalArray(v), "v", param);
  a.v_hat = slot<F>(v_hat, "v_hat", param);
  a.n = param.size();
  a.alpha = F(alpha), a.beta_1 = F(beta_1), a.beta_2 = F(beta_2), a.epsilon = F(epsilon);
  py::gil_scoped_release release;
  kernel_set<F>().optimizers.adam(a);
  return py::tuple();
}

template <typename F>
py::tuple rmsprop_update(const py::array& param, const py::array& grad, const py::array& v,
                         const OptionalArray& average_grad, const OptionalArray& momentum_buffer,
                         double learning_rate, double rho, double momentum, double epsilon) {
  RmspropArgs<F> a{};
  a.param = param_data<F>(param);
  a.grad = slot<F>(OptionalArray(grad), "grad", param);
  a.v = slot<F>(OptionalArray(v), "v", param);
  a.average_grad = slot<F>(average_grad, "average_grad", param);
  a.momentum_buffer = slot<F>(momentum_buffer, "momentum_buffer", param);
  a.n = param.size();
  a.learning_rate = F(learning_rate), a.rho = F(rho), a.momentum = F(momentum);
  a.epsilon = F(epsilon);
  py::gil_scoped_release release;
  kernel_set<F>().optimizers.rmsprop(a);
  return py::tuple();
}

constexpr char kParam[] = "param";

}  // namespace

void def_optimizers(py::module_& m) {
  m.def("sgd_update", by_dtype_of<kParam, 0, sgd_update<float>, sgd_update<double>>,
        py::arg("param"), py::arg("grad"), py::arg("velocity"), py::arg("learning_rate"),
        py::arg("momentum"), py::arg("nesterov"), "SGD step, in place.");
  m.def("adam_update", by_dtype_of<kParam, 0, adam_update<float>, adam_update<double>>,
        py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("v_hat"),
        py::arg("alpha"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
        "Adam step, in place; alpha is the bias-corrected learning rate.");
  m.def("rmsprop_update", by_dtype_of<kParam, 0, rmsprop_update<float>, rmsprop_update<double>>,
        py::arg("param"), py::arg("grad"), py::arg("v"), py::arg("average_grad"),
        py::arg("momentum_buffer"), py::arg("learning_rate"), py::arg("rho"),
        py::arg("momentum"), py::arg("epsilon"), "RMSprop step, in place.");
}

}  // namespace bindings
}  // namespace fastrnn
