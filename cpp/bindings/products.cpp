// Matrix products: matmul for the layers, and the packed recurrent micro-kernel for tests and
// measurements.
#include <climits>
#include <cstring>

#include <cblas.h>

#include "bindings/cells.hpp"

namespace fastrnn {
namespace bindings {
namespace {

// ---------------------------------------------------------------------------- packed product
// For tests and measurements only: columns [c0, c1) of c (M, N) = a (M, K) w (K, N) + beta c,
// by the packed micro-kernel of the current kernel set (w packed first), or by OpenBLAS when
// `blas`; `repeat` times, so that a caller can time one shape (with beta != 0 each call adds
// to the last one's result).
void blas_product(Index M, Index N, Index K, const float* A, const float* W, Index ldw,
                  float beta, float* C) {
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, A,
                    int(K), W, int(ldw), beta, C, int(ldw));
}
void blas_product(Index M, Index N, Index K, const double* A, const double* W, Index ldw,
                  double beta, double* C) {
  scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0, A,
                    int(K), W, int(ldw), beta, C, int(ldw));
}
template <typename F>
py::array packed_product(const py::array& a, const py::array& w, const py::array& c, double beta,
                         Index c0, Index c1, bool blas, Index repeat) {
  keep_blas_single_threaded();
  if (a.ndim() != 2 || w.ndim() != 2 || c.ndim() != 2)
    throw std::invalid_argument("arguments `a`, `w`, `c`: expected 2-D arrays");
  const Index M = a.shape(0), K = a.shape(1), N = w.shape(1);
  const F* pa = checked<F>(a, "a", {M, K});
  const F* pw = checked<F>(w, "w", {K, N});
  checked<F>(c, "c", {M, N});
  if (c1 < 0) c1 = N;
  if (c0 < 0 || c0 > c1 || c1 > N)
    throw std::invalid_argument("arguments `c0`, `c1`: expected 0 <= c0 <= c1 <= " +
                                std::to_string(N) + ", got " + std::to_string(c0) + " and " +
                                std::to_string(c1));
  if (repeat < 1 || repeat > 100000)
    throw std::invalid_argument("argument `repeat`: expected 1 to 100000, got " +
                                std::to_string(repeat));
  if (K < 1 || std::max({M, K, N}) >= Index(INT_MAX))
    throw std::invalid_argument("argument `a`: expected 1 <= columns < 2**31");
  py::array_t<F> out(std::vector<py::ssize_t>{M, N});
  F* po = out.mutable_data();
  std::memcpy(po, c.data(), sizeof(F) * std::size_t(M * N));
  std::vector<F> packed(blas ? 0 : packed_size<F>(K, N));
  {
    py::gil_scoped_release release;
    const Packed<F> p = blas ? Packed<F>{} : pack(pw, K, N, packed.data());
    for (Index r = 0; r < repeat; ++r) {
      if (blas)
        blas_product(M, c1 - c0, K, pa, pw + c0, N, F(beta), po + c0);
      else
        kernel_set<F>().packed.product(p, M, pa, K, F(beta), po, N, c0, c1);
    }
  }
  return std::move(out);
}

// ---------------------------------------------------------------------------- matmul
void blas_gemm(bool ta, bool tb, Index M, Index N, Index K, const float* A, Index lda,
               const float* B, Index ldb, float beta, float* C, Index ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    int(M), int(N), int(K), 1.0f, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
void blas_gemm(bool ta, bool tb, Index M, Index N, Index K, const double* A, Index lda,
               const double* B, Index ldb, double beta, double* C, Index ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    int(M), int(N), int(K), 1.0, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// C (M, N) = op(a) op(b) (+ bias, a row of N added to every row) for 2-D arrays, through the
// kernels' OpenBLAS (kept single-threaded) with the rows of C split over the core's threads when
// the product is large. The Dense layers use it, so a training step never wakes a second BLAS
// thread pool (NumPy's, whose idle workers then spin on the cores the kernels' threads need).
template <typename F>
py::array matmul(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                 const OptionalArray& bias) {
  keep_blas_single_threaded();
  if (a.ndim() != 2 || b.ndim() != 2)
    throw std::invalid_argument("arguments `a` and `b`: expected 2-D arrays, got " +
                                std::to_string(a.ndim()) + "-D and " + std::to_string(b.ndim()) +
                                "-D");
  const Index ra = a.shape(0), ca = a.shape(1), rb = b.shape(0), cb = b.shape(1);
  const Index M = trans_a ? ca : ra, K = trans_a ? ra : ca, N = trans_b ? rb : cb;
  if ((trans_b ? cb : rb) != K)
    throw std::invalid_argument("arguments `a` and `b`: the inner dimensions differ (" +
                                std::to_string(K) + " and " + std::to_string(trans_b ? cb : rb) +
                                ")");
  if (std::max({ra, ca, rb, cb}) >= Index(INT_MAX))
    throw std::invalid_argument("arguments `a` and `b`: too large for 32-bit BLAS indexing");
  const F* pa = checked<F>(a, "a", {ra, ca});
  const F* pb = checked<F>(b, "b", {rb, cb});
  const F* pbias = checked<F>(bias, "bias", {N});
  auto c = empty<F>({M, N});
  F* pc = data(c);
  {
    py::gil_scoped_release release;
    if (K == 0 || M == 0 || N == 0) {
      for (Index r = 0; r < M; ++r)
        for (Index j = 0; j < N; ++j) pc[r * N + j] = pbias != nullptr ? pbias[j] : F(0);
    } else {
      const double flops = 2.0 * double(M) * double(N) * double(K);
      const int slices = slices_for(call_threads(), flops, M, 16);
      run_parallel(slices, [&](int s) {
        const Index r0 = M * s / slices, r1 = M * (s + 1) / slices;
        if (pbias != nullptr)  // C starts as the bias, and the product adds to it (beta 1)
          for (Index r = r0; r < r1; ++r) std::copy(pbias, pbias + N, pc + r * N);
        // Rows r0.. of C come from rows r0.. of a, or from its columns r0.. when transposed.
        blas_gemm(trans_a, trans_b, r1 - r0, N, K, pa + (trans_a ? r0 : r0 * ca), ca, pb, cb,
                  F(pbias != nullptr ? 1 : 0), pc + r0 * N, N);
      });
    }
  }
  return std::move(c);
}

constexpr char kA[] = "a";

}  // namespace

void def_products(py::module_& m) {
  m.def("matmul", by_dtype_of<kA, 0, matmul<float>, matmul<double>>, py::arg("a"), py::arg("b"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("bias") = py::none(),
        "op(a) @ op(b) (+ bias, shape (N,)) for 2-D float arrays of one dtype -> (M, N)");
  m.def("_packed_product", by_dtype_of<kA, 0, packed_product<float>, packed_product<double>>,
        py::arg("a"), py::arg("w"), py::arg("c"), py::arg("beta") = 0.0, py::arg("c0") = 0,
        py::arg("c1") = -1, py::arg("blas") = false, py::arg("repeat") = 1,
        "Test-only: columns [c0, c1) of a @ w + beta c by the packed recurrent micro-kernel "
        "(or OpenBLAS when blas).");
  m.def("_set_packed_products", &set_packed_mode, py::arg("mode"),
        "Test-only: whether the recurrent products use the packed micro-kernel ('auto': where "
        "the rule in the core chooses it, 'never', 'always').");
}

}  // namespace bindings
}  // namespace fastrnn
