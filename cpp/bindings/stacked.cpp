// Stacked recurrent layers over one sequence (batch 1, inference) as a wavefront on two
// threads: the first layers run chunk k + 1 of the time steps while the later ones run chunk
// k, each group's recurrent kernels staying in its own core's cache. At batch 1 a layer's step
// is one row times U, bound by reading U (64 KB for an LSTM(64)); two layers one after the
// other read both every step on one core, the wavefront reads one per core.
//
// Each chunk is an ordinary forward call of the layer's kernel (no tape) over a few steps,
// its state carried from the chunk before, with the recurrent product in the form a whole
// call would use (U in panels or packed once per layer, when the rules say so). Only stacks
// whose every layer would run on one thread anyway (one row, no unit split) take this path.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "bindings/cells.hpp"

namespace fastrnn {
namespace bindings {
namespace {

// One layer of the stack: its arguments, set up once, its own copy of U's panels or packed
// form, its state (h, c), and the chunks it has finished.
template <typename F>
struct StackLayer {
  std::string kind;
  Dims d{};
  SimpleRnnForwardArgs<F> rnn{};
  LstmForwardArgs<F> lstm{};
  GruForwardArgs<F> gru{};
  std::vector<F> packed, panels, h, c;
  const F* x = nullptr;  // (T, I): the stack's input or the outputs of the layer before
  F* outputs = nullptr;  // (T, H)
  std::atomic<Index> done{0};     // chunks finished
  std::atomic<Index> claimed{0};  // chunks taken by a thread (done, or done + 1 while running)

  // The recurrent product's form a whole call would use, into this layer's own buffers (the
  // per-thread workspaces the whole call keeps it in are shared by the layers of a thread).
  // False when the whole call would split the layer over threads.
  template <typename Args>
  bool plan(Args& a) {
    const StepPlan p = plan_of(a, d);
    if (p.slices > 1) return false;
    const Panels<F> pn = recurrent_panels(a.recurrent_kernel, d, false, p);
    if (pn.data != nullptr) {
      panels.assign(pn.data, pn.data + d.H * d.G);
      a.recurrent_panels = {panels.data(), pn.width};
    }
    const Packed<F> pk = recurrent_packed(a.recurrent_kernel, d, false, p, a.recurrent_panels);
    if (pk.data != nullptr) {
      packed.assign(pk.data, pk.data + packed_size<F>(d.H, d.G));
      a.recurrent_packed = {packed.data(), pk.K, pk.N};
    }
    return true;
  }

  void run(const KernelSet<F>& ks, Index t0, Index n) {
    if (kind == "lstm") return run_chunk(ks.lstm.forward, lstm, t0, n);
    if (kind == "gru") return run_chunk(ks.gru.forward, gru, t0, n);
    run_chunk(ks.simple_rnn.forward, rnn, t0, n);
  }

  // Steps [t0, t0 + n), from the state the chunk before left.
  template <typename Args>
  void run_chunk(void (*forward)(const Args&), Args a, Index t0, Index n) {
    Dims dc = d;
    dc.T = a.T = n;
    a.x = x + t0 * d.I, a.outputs = outputs + t0 * d.H;
    a.h0 = t0 == 0 ? nullptr : h.data(), a.h_last = h.data();
    if constexpr (HasCellState<Args>::value) {
      a.c0 = t0 == 0 ? nullptr : c.data(), a.c_last = c.data();
    }
    if constexpr (HasCellState<Args>::value || IsGru<Args>::value) a.no_tape = true;
    F* ws = workspace<F>().get(forward_workspace(a, dc, static_cast<F*>(nullptr)));
    forward_workspace(a, dc, ws);
    forward(a);
  }
};

// The stack's layers from (kind, kernel, recurrent_kernel, bias, activation) tuples, checked
// as the single-layer calls check theirs; layer l reads layer l - 1's outputs (arrays kept in
// `arrays`). Returns false when some layer would not run on one thread.
template <typename F>
bool set_up(std::vector<std::unique_ptr<StackLayer<F>>>& stack, const py::list& layers,
            const py::array& x, std::vector<py::array>& arrays) {
  py::array input = x;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string name = "layers[" + std::to_string(l) + "]";
    if (!py::isinstance<py::tuple>(layers[l]) || py::len(layers[l]) != 5)
      throw std::invalid_argument("argument `" + name + "`: expected (kind, kernel, "
                                  "recurrent_kernel, bias, activation)");
    const auto t = layers[l].cast<py::tuple>();
    auto layer = std::make_unique<StackLayer<F>>();
    layer->kind = t[0].cast<std::string>();
    const Index gates = layer->kind == "lstm" ? 4 : layer->kind == "gru" ? 3 : 1;
    if (gates == 1 && layer->kind != "simple_rnn")
      throw std::invalid_argument("argument `" + name + "`: unknown kind '" + layer->kind +
                                  "' (simple_rnn, lstm, gru)");
    const auto kernel = t[1].cast<py::array>(), recurrent = t[2].cast<py::array>();
    const OptionalArray bias = t[3].is_none() ? OptionalArray() : t[3].cast<py::array>();
    const OptionalArray none;
    StackLayer<F>& s = *layer;
    bool single = false;
    if (gates == 4) {
      s.d = check_cell_arguments<F>(s.lstm, 4, input, none, kernel, recurrent, none, none);
      s.lstm.bias = checked<F>(bias, "bias", {s.d.G});
      single = s.plan(s.lstm);
    } else if (gates == 3) {
      s.d = check_cell_arguments<F>(s.gru, 3, input, none, kernel, recurrent, none, none);
      s.gru.bias = checked<F>(bias, "bias", {2, s.d.G});
      single = s.plan(s.gru);
    } else {
      s.d = check_cell_arguments<F>(s.rnn, 1, input, none, kernel, recurrent, none, none);
      s.rnn.bias = checked<F>(bias, "bias", {s.d.G});
      s.rnn.activation = parse_activation(t[4].cast<std::string>());
      single = s.plan(s.rnn);
    }
    if (s.d.B != 1)
      throw std::invalid_argument("argument `x`: the stacked forward takes one sequence "
                                  "(batch 1)");
    if (!single) return false;
    s.x = checked<F>(input, "x", {1, s.d.T, s.d.I});
    py::array_t<F> outputs = empty<F>({1, s.d.T, s.d.H});
    s.outputs = data(outputs);
    arrays.push_back(outputs);
    s.h.assign(std::size_t(s.d.H), F(0));
    s.c.assign(std::size_t(s.d.H), F(0));
    input = arrays.back();
    stack.push_back(std::move(layer));
  }
  return true;
}

// Runs chunks of the stack until every layer has done all `chunks` of them; called by each
// thread of the call. Chunk k of layer l is ready once layer l - 1 has done chunk k and no
// chunk of layer l is running; a thread claims the deepest ready one (so a lone thread runs
// the wavefront in order, and a second one, once awake, takes whatever is ready then).
// `abort`: set by a thread that failed, so that the other stops waiting.
template <typename F>
void run_chunks(std::vector<std::unique_ptr<StackLayer<F>>>& stack, Index T, Index chunk,
                Index chunks, std::atomic<bool>& abort) {
  const KernelSet<F>& ks = kernel_set<F>();
  const std::size_t L = stack.size();
  try {
    for (int idle = 0;;) {
      if (abort.load(std::memory_order_relaxed)) return;
      if (stack[L - 1]->done.load(std::memory_order_acquire) == chunks) return;
      bool ran = false;
      for (std::size_t l = L; l-- > 0 && !ran;) {
        StackLayer<F>& layer = *stack[l];
        Index k = layer.done.load(std::memory_order_acquire);
        if (k == chunks || layer.claimed.load(std::memory_order_relaxed) != k) continue;
        if (l > 0 && stack[l - 1]->done.load(std::memory_order_acquire) <= k) continue;
        if (!layer.claimed.compare_exchange_strong(k, k + 1, std::memory_order_acq_rel))
          continue;
        const Index t0 = k * chunk;
        layer.run(ks, t0, std::min(chunk, T - t0));
        layer.done.store(k + 1, std::memory_order_release);
        ran = true;
      }
      if (ran) {
        idle = 0;
      } else {
        if (++idle > 256) std::this_thread::yield();  // a busy machine: give the core up
        cpu_pause();
      }
    }
  } catch (...) {
    abort.store(true);
    throw;
  }
}

// stacked_forward(x (1, T, I), layers, chunk) -> (outputs (1, T, H), h_last (1, H)) of the
// last layer, or None when some layer would be split over threads by a whole call, or the BLAS
// copies W for small products (use the layer-by-layer path then).
template <typename F>
py::object stacked_forward(const py::array& x, const py::list& layers, Index chunk) {
  if (layers.size() < 1)
    throw std::invalid_argument("argument `layers`: at least one layer");
  if (chunk < 1) throw std::invalid_argument("argument `chunk`: must be positive");
  std::vector<std::unique_ptr<StackLayer<F>>> stack;
  std::vector<py::array> arrays;
  if (!set_up<F>(stack, layers, x, arrays)) return py::none();
  // Only where OpenBLAS multiplies small products in place: elsewhere each chunk's input
  // product copies the layer's W (measured, serving model 2x LSTM(64), 50 steps, avx2 set
  // with OpenBLAS's Haswell kernels: layers one by one 125 us, chunks 137-179 us).
  if (!blas_reads_small_in_place()) return py::none();
  StackLayer<F>& top = *stack.back();
  py::array_t<F> h_last = empty<F>({1, top.d.H});
  {
    py::gil_scoped_release release;
    const Index T = top.d.T;
    if (T > 0) {
      std::atomic<bool> abort{false};
      const Index chunks = (T + chunk - 1) / chunk;
      const auto work = [&](int) { run_chunks(stack, T, chunk, chunks, abort); };
      // Both threads claim chunks (the pool's second slice starts when its worker wakes, and
      // finds nothing left if the caller was faster); one thread when the pool is busy.
      if (stack.size() == 1 || call_threads() < 2 || !WorkerPool::instance().run(2, work, false))
        work(0);
    }
    std::copy(top.h.begin(), top.h.end(), data(h_last));
  }
  return py::make_tuple(arrays.back(), h_last);
}

}  // namespace

void def_stacked(py::module_& m) {
  m.def("stacked_forward", by_dtype<stacked_forward<float>, stacked_forward<double>>,
        py::arg("x"), py::arg("layers"), py::arg("chunk") = 6,
        "-> (outputs, h_last) of the last layer, or None (see cpp/bindings/stacked.cpp)");
}

}  // namespace bindings
}  // namespace fastrnn
