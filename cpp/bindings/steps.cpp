// One time step of a cell, and a whole model stepped one time step at a time (streaming
// inference): the state is updated in place, nothing is taped.
#include <mutex>

#include "bindings/cells.hpp"
#include "model_stepper.hpp"

namespace fastrnn {
namespace bindings {
namespace {

// ---------------------------------------------------------------------------- single steps
// x (B, I), h and c (B, H) read and overwritten. For online inference: no allocation (the
// step's gates live in the per-thread workspace), no tape, checks only.
template <typename F>
void simple_rnn_step(const py::array& x, const py::array& h, const py::array& kernel,
                     const py::array& recurrent_kernel, const OptionalArray& bias,
                     const std::string& activation) {
  SimpleRnnForwardArgs<F> a{};
  const Dims d = check_step_arguments<F>(a, 1, x, h, kernel, recurrent_kernel);
  a.bias = checked<F>(bias, "bias", {d.G});
  a.activation = parse_activation(activation);
  py::gil_scoped_release release;
  a.outputs = workspace<F>().get(std::size_t(d.B * d.H));
  kernel_set<F>().simple_rnn.forward(a);
}

template <typename F>
void lstm_step(const py::array& x, const py::array& h, const py::array& c,
               const py::array& kernel, const py::array& recurrent_kernel,
               const OptionalArray& bias) {
  LstmForwardArgs<F> a{};
  const Dims d = check_step_arguments<F>(a, 4, x, h, kernel, recurrent_kernel);
  a.c0 = a.c_last = checked_writeable<F>(c, "c", {d.B, d.H});
  a.bias = checked<F>(bias, "bias", {d.G});
  py::gil_scoped_release release;
  F* ws = workspace<F>().get(std::size_t(d.B * (d.G + 2 * d.H)));
  a.gates = ws, a.cells = ws + d.B * d.G, a.outputs = ws + d.B * (d.G + d.H);
  kernel_set<F>().lstm.forward(a);
}

template <typename F>
void gru_step(const py::array& x, const py::array& h, const py::array& kernel,
              const py::array& recurrent_kernel, const OptionalArray& bias) {
  GruForwardArgs<F> a{};
  const Dims d = check_step_arguments<F>(a, 3, x, h, kernel, recurrent_kernel);
  a.bias = checked<F>(bias, "bias", {2, d.G});
  py::gil_scoped_release release;
  F* ws = workspace<F>().get(std::size_t(d.B * (2 * d.G + 2 * d.H)));
  a.gates = ws, a.hz = ws + d.B * d.G, a.hz_h = ws + 2 * d.B * d.G;
  a.outputs = ws + d.B * (2 * d.G + d.H);
  kernel_set<F>().gru.forward(a);
}

// ------------------------------------------------------------------- whole-model streaming
// A chain of stages stepped together (model_stepper.hpp): made once from the stages' weights
// (copied), then step(x) runs every stage in one call, without the GIL, allocating nothing
// but the returned array (none when `out` is given). A mutex per stepper keeps two Python
// threads from stepping one stepper at once.
class PyModelStepper {
 public:
  PyModelStepper(const py::list& stages, Index batch_size, const std::string& dtype,
                 Index in_features) {
    if (batch_size < 1)
      throw std::invalid_argument("argument `batch_size`: expected a positive integer, got " +
                                  std::to_string(batch_size));
    if (in_features < 0)
      throw std::invalid_argument("argument `in_features`: expected 0 (not known) or a "
                                  "positive integer, got " + std::to_string(in_features));
    if (dtype == "float32")
      f32_ = std::make_unique<stream::ModelStepper<float>>(specs<float>(stages, batch_size),
                                                           batch_size, in_features);
    else if (dtype == "float64")
      f64_ = std::make_unique<stream::ModelStepper<double>>(specs<double>(stages, batch_size),
                                                            batch_size, in_features);
    else
      throw std::invalid_argument("argument `dtype`: expected 'float32' or 'float64', got '" +
                                  dtype + "'");
  }

  py::array step(const py::array& x, const OptionalArray& out) {
    return f32_ ? step_as<float>(*f32_, x, out) : step_as<double>(*f64_, x, out);
  }

  void reset() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    if (f32_) f32_->reset(); else f64_->reset();
  }

  // The state of stage s (copies): [h] or [h, c] for a cell, [window] (B, span, C) for a
  // conv1d stage, or [] for a stage without state.
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
  // None[, options]), kind one of "simple_rnn", "lstm", "gru", "dense", "activation",
  // "embedding" (the first only; kernel: the table), "layer_norm", "batch_norm", "conv1d",
  // or a merge: "add", "subtract", "multiply", "average", "maximum", "minimum",
  // "concatenate"; options a dict of the kind's other arguments: "gamma", "beta" (arrays or
  // None), "epsilon" (a float), for batch_norm "moving_mean", "moving_variance", for conv1d
  // "dilation" and "groups" (integers; its kernel is (K, C / groups, O)), for "relu" "slope"
  // (an array of one value or one per feature), "threshold", "max_value" (floats, None: no
  // cap) and "inclusive" (bool), for "rms_norm" "scale" (an array) and "epsilon", for an
  // elu activation "alpha"; "unit_norm" takes none; and for any stage
  // "inputs", the stages it reads (a list of earlier stage numbers, -1 the model's input;
  // default: the stage before). A cell with gamma and beta (G,) is the layer-normalized cell.
  template <typename F>
  static std::vector<stream::StageSpec<F>> specs(const py::list& stages, Index batch_size) {
    using stream::StageKind;
    std::vector<stream::StageSpec<F>> out;
    for (std::size_t s = 0; s < stages.size(); ++s) {
      if (!py::isinstance<py::tuple>(stages[s]) && !py::isinstance<py::list>(stages[s]))
        throw std::invalid_argument("argument `stages`: each stage is a tuple");
      const auto t = py::tuple(stages[s]);
      if (t.size() != 5 && t.size() != 6)
        throw std::invalid_argument("argument `stages`: each stage is (kind, activation, "
                                    "kernel, recurrent_kernel, bias[, options])");
      const py::dict options = t.size() == 6 ? t[5].cast<py::dict>() : py::dict();
      const auto kind = t[0].cast<std::string>();
      const auto act = t[1].cast<std::string>();
      stream::StageSpec<F> st;
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
      // An option's array, 1-D (of `n` values, or any length when n is 0), or empty when it
      // is absent or None.
      auto option = [&](const char* key, Index n) {
        const std::string arg = name + "." + key;
        if (!options.contains(key) || options[key].is_none()) return std::vector<F>{};
        const py::object h = options[key];
        if (!py::isinstance<py::array>(h))
          throw std::invalid_argument("argument `" + arg + "`: expected a NumPy array");
        const py::array a = py::reinterpret_borrow<py::array>(h);
        if (a.ndim() != 1)
          throw std::invalid_argument("argument `" + arg + "`: expected a 1-D array");
        const F* p = checked<F>(a, arg.c_str(), {n > 0 ? n : Index(a.shape(0))});
        return std::vector<F>(p, p + a.size());
      };
      auto epsilon = [&]() {
        const double e = options.contains("epsilon") ? options["epsilon"].cast<double>() : 1e-3;
        if (!(e > 0.0))
          throw std::invalid_argument("argument `" + name + ".epsilon`: expected a positive "
                                      "float, got " + std::to_string(e));
        return F(e);
      };
      if (kind == "simple_rnn" || kind == "lstm" || kind == "gru") {
        st.kind = kind == "lstm" ? StageKind::lstm
                  : kind == "gru" ? StageKind::gru : StageKind::simple_rnn;
        const Index gates = stream::gates_of(st.kind);
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
        // The stepper's steps are many: U packed once where the micro-kernel pays (see
        // packed_product_pays; the batch's rows as the rows of a step's product).
        if (packed_product_pays(double(batch_size), H, gates * H, Index(1) << 30, false)) {
          st.recurrent_packed.resize(packed_size<F>(H, gates * H));
          pack(st.recurrent_kernel.data(), H, gates * H, st.recurrent_packed.data());
        }
        // The layer-normalized cell: gamma and beta (G,) in the options.
        if (options.contains("gamma") || options.contains("beta")) {
          st.layer_norm = true;
          st.gamma = option("gamma", gates * H);
          st.beta = option("beta", gates * H);
          if (st.gamma.empty() || st.beta.empty())
            throw std::invalid_argument("argument `" + name + "`: a layer-normalized cell "
                                        "needs both gamma and beta");
          st.epsilon = epsilon();
        }
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
        st.act = stream::parse_stage_activation(act);
      } else if (kind == "embedding") {
        st.kind = StageKind::embedding;
        if (!out.empty())
          throw std::invalid_argument("argument `" + name + "`: an embedding must be the "
                                      "first stage");
        st.kernel = weights(t[2], "kernel", {}, false);
        st.in = 1, st.out = t[2].cast<py::array>().shape(1);
      } else if (kind == "activation") {
        st.kind = StageKind::activation;  // its width: its input's
        st.act = stream::parse_stage_activation(act);
        if (options.contains("alpha")) st.alpha = F(options["alpha"].cast<double>());
      } else if (kind == "relu") {
        st.kind = StageKind::relu;
        st.slope = option("slope", 0);
        if (st.slope.empty())
          throw std::invalid_argument("argument `" + name + ".slope`: required");
        if (st.slope.size() > 1) st.in = st.out = Index(st.slope.size());  // else its input's
        if (options.contains("threshold")) st.threshold = F(options["threshold"].cast<double>());
        if (options.contains("max_value") && !options["max_value"].is_none())
          st.max_value = F(options["max_value"].cast<double>());
        if (options.contains("inclusive")) st.inclusive = options["inclusive"].cast<bool>();
      } else if (kind == "unit_norm") {
        st.kind = StageKind::unit_norm;  // its width: its input's
      } else if (kind == "rms_norm") {
        st.kind = StageKind::rms_norm;
        st.scale = option("scale", 0);
        if (st.scale.empty())
          throw std::invalid_argument("argument `" + name + ".scale`: required");
        st.in = st.out = Index(st.scale.size());
        st.epsilon = options.contains("epsilon") ? F(options["epsilon"].cast<double>()) : F(1e-6);
      } else if (kind == "conv1d") {  // a causal convolution of stride 1
        st.kind = StageKind::conv1d;
        if (!py::isinstance<py::array>(t[2]) || t[2].cast<py::array>().ndim() != 3)
          throw std::invalid_argument("argument `" + name + ".kernel`: expected a 3-D array "
                                      "(kernel_size, channels / groups, filters)");
        const py::array k = t[2].cast<py::array>();
        const Index K = k.shape(0), Cg = k.shape(1), O = k.shape(2);
        st.kernel = weights(t[2], "kernel", {K, Cg, O}, false);
        st.bias = weights(t[4], "bias", {O}, true);
        st.taps = K;
        st.dilation = options.contains("dilation") ? options["dilation"].cast<Index>() : 1;
        st.groups = options.contains("groups") ? options["groups"].cast<Index>() : 1;
        st.in = Cg * st.groups, st.out = O;
        st.act = stream::parse_stage_activation(act);
      } else if (const auto op = merge_op(kind)) {  // its widths: its inputs'
        st.kind = StageKind::merge;
        st.merge_op = *op;
      } else if (kind == "layer_norm") {
        st.kind = StageKind::layer_norm;
        st.gamma = option("gamma", 0);
        st.beta = option("beta", st.gamma.empty() ? 0 : Index(st.gamma.size()));
        st.in = st.out = Index(!st.gamma.empty() ? st.gamma.size() : st.beta.size());
        st.epsilon = epsilon();
      } else if (kind == "batch_norm") {
        st.kind = StageKind::batch_norm;
        st.moving_mean = option("moving_mean", 0);
        const Index C = Index(st.moving_mean.size());
        if (C < 1)
          throw std::invalid_argument("argument `" + name + ".moving_mean`: required");
        st.moving_variance = option("moving_variance", C);
        st.gamma = option("gamma", C);
        st.beta = option("beta", C);
        st.in = st.out = C;
        st.epsilon = epsilon();
      } else {
        throw std::invalid_argument("argument `" + name + "`: unknown stage kind '" + kind +
                                    "'");
      }
      if (options.contains("inputs")) st.inputs = options["inputs"].cast<std::vector<Index>>();
      out.push_back(std::move(st));
    }
    return out;
  }

  static std::optional<stream::MergeOp> merge_op(const std::string& kind) {
    using stream::MergeOp;
    static const std::pair<const char*, MergeOp> names[] = {
        {"add", MergeOp::add},         {"subtract", MergeOp::subtract},
        {"multiply", MergeOp::multiply}, {"average", MergeOp::average},
        {"maximum", MergeOp::maximum}, {"minimum", MergeOp::minimum},
        {"concatenate", MergeOp::concatenate}};
    for (const auto& [n, op] : names)
      if (kind == n) return op;
    return std::nullopt;
  }

  template <typename F>
  py::array step_as(stream::ModelStepper<F>& m, const py::array& x, const OptionalArray& out) {
    keep_blas_single_threaded();
    const F* px = nullptr;
    const std::int64_t* ids = nullptr;
    if (m.vocabulary() > 0) {  // token ids (B,), every one checked before anything runs
      std::vector<Index> got(x.shape(), x.shape() + x.ndim());
      if (!x.dtype().equal(py::dtype::of<std::int64_t>()) || got != std::vector<Index>{m.batch()} ||
          !(x.flags() & py::array::c_style))
        throw std::invalid_argument("argument `x`: expected a C-contiguous int64 array of " +
                                    shape_str({m.batch()}) + " token ids, got " +
                                    dtype_str(x) + " " +
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
      m.step(kernel_set<F>(), layer_kernel_set<F>(), px, ids, py_out, threads);
    }
    return result;
  }

  template <typename F>
  py::list state_as(stream::ModelStepper<F>& m, Index s) {
    check_stage(m.stages().size(), s);
    std::lock_guard<std::mutex> lock(mutex_);
    py::list states;
    for (const std::vector<F>* v : {&m.h(std::size_t(s)), &m.c(std::size_t(s))}) {
      if (v->empty()) continue;
      py::array_t<F> a(std::vector<py::ssize_t>{m.batch(), Index(v->size()) / m.batch()});
      std::copy(v->begin(), v->end(), a.mutable_data());
      states.append(a);
    }
    const std::vector<F> window = m.window(std::size_t(s));
    if (!window.empty()) {
      const auto& st = m.stages()[std::size_t(s)];
      py::array_t<F> a(std::vector<py::ssize_t>{m.batch(), stream::span_of(st), st.in});
      std::copy(window.begin(), window.end(), a.mutable_data());
      states.append(a);
    }
    return states;
  }

  template <typename F>
  void set_state_as(stream::ModelStepper<F>& m, Index s, const py::list& values) {
    check_stage(m.stages().size(), s);
    const auto& st = m.stages()[std::size_t(s)];
    if (st.kind == stream::StageKind::conv1d) {  // one array: the window, oldest step first
      if (values.size() != 1)
        throw std::invalid_argument("argument `states`: stage " + std::to_string(s) +
                                    " expects 1 array, got " + std::to_string(values.size()));
      const F* src = checked<F>(values[0].cast<py::array>(), "states[0]",
                                {m.batch(), stream::span_of(st), st.in});
      std::lock_guard<std::mutex> lock(mutex_);
      m.set_window(std::size_t(s), src);
      return;
    }
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

  std::unique_ptr<stream::ModelStepper<float>> f32_;
  std::unique_ptr<stream::ModelStepper<double>> f64_;
  std::mutex mutex_;
};

}  // namespace

void def_steps(py::module_& m) {
  m.def("simple_rnn_step", by_dtype<simple_rnn_step<float>, simple_rnn_step<double>>,
        py::arg("x"), py::arg("h"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("activation") = "tanh", "One step; h (B, H) updated in place.");
  m.def("lstm_step", by_dtype<lstm_step<float>, lstm_step<double>>, py::arg("x"), py::arg("h"),
        py::arg("c"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"),
        "One step; h and c (B, H) updated in place.");
  m.def("gru_step", by_dtype<gru_step<float>, gru_step<double>>, py::arg("x"), py::arg("h"),
        py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"),
        "One step; h (B, H) updated in place.");
  py::class_<PyModelStepper>(m, "ModelStepper")
      .def(py::init<const py::list&, Index, const std::string&, Index>(), py::arg("stages"),
           py::arg("batch_size"), py::arg("dtype"), py::arg("in_features") = 0,
           "stages: [(kind, activation, kernel, recurrent_kernel, bias[, options])], first to "
           "last; in_features: the input's width (0: from the first stage's weights).")
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


}  // namespace bindings
}  // namespace fastrnn
