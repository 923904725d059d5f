// The measurement behind cpp/conv1d.hpp's choice: a Conv1D forward as one GEMM per tap
// (x's rows, `stride` apart, times the tap's (C, O) slice, accumulated into the output) against
// one GEMM per chunk of unrolled rows, at the books' shapes; float32, one thread, OpenBLAS.
// Build and run (from the repository root, in the environment that builds fastrnn):
//   D=$(python -c "import scipy_openblas32 as s; print(s.get_lib_dir())")
//   I=$(python -c "import scipy_openblas32 as s; print(s.get_include_dir())")
//   g++ -O2 -std=c++17 benchmarks/conv1d_per_tap.cpp -I$I -L$D -lscipy_openblas \
//       -Wl,-rpath,$D -o /tmp/conv1d_per_tap && /tmp/conv1d_per_tap
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
#include <algorithm>
#include <random>
using Clock = std::chrono::steady_clock;
static void sg(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
}
int main(int argc, char** argv) {
  scipy_openblas_set_num_threads(1);
  struct Case { int B, T, C, K, O, S; };
  Case cases[] = {{256,120,14,24,8,1},{256,48,8,12,8,1},{32,50,1,4,20,2},{256,50,1,4,20,2},{32,50,20,2,20,1}};
  for (auto c : cases) {
    int L = (c.T - c.K) / c.S + 1, KC = c.K * c.C;
    std::vector<float> x(size_t(c.B) * c.T * c.C), w(size_t(KC) * c.O), y(size_t(c.B) * L * c.O), y2(y.size());
    std::mt19937 g(0); std::normal_distribution<float> n;
    for (auto& v : x) v = n(g); for (auto& v : w) v = n(g);
    auto pertap = [&] {
      std::fill(y.begin(), y.end(), 0.f);
      for (int b = 0; b < c.B; ++b)
        for (int k = 0; k < c.K; ++k)
          sg(L, c.O, c.C, x.data() + (size_t(b) * c.T + k) * c.C, c.S * c.C, w.data() + size_t(k) * c.C * c.O, c.O, 1.f, y.data() + size_t(b) * L * c.O, c.O);
    };
    int R = std::max(32, 65536 / KC); std::vector<float> cols(size_t(R) * KC);
    auto unrolled = [&] {
      int rows = c.B * L;
      for (int r0 = 0; r0 < rows; r0 += R) {
        int nr = std::min(R, rows - r0);
        for (int r = 0; r < nr; ++r) { int b = (r0 + r) / L, l = (r0 + r) % L;
          std::memcpy(cols.data() + size_t(r) * KC, x.data() + (size_t(b) * c.T + size_t(l) * c.S) * c.C, sizeof(float) * KC); }
        sg(nr, c.O, KC, cols.data(), KC, w.data(), c.O, 0.f, y2.data() + size_t(r0) * c.O, c.O);
      }
    };
    auto time = [&](auto f) { f(); std::vector<double> t; for (int i = 0; i < 30; ++i) { auto a = Clock::now(); f(); t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count()); } std::sort(t.begin(), t.end()); return t[15]; };
    double a = time(pertap), b = time(unrolled);
    double diff = 0; for (size_t i = 0; i < y.size(); ++i) diff = std::max(diff, double(std::abs(y[i] - y2[i])));
    std::printf("B%d T%d C%d K%d O%d S%d: per-tap %.3f ms, unrolled %.3f ms (max diff %.2g)\n", c.B, c.T, c.C, c.K, c.O, c.S, a, b, diff);
  }
}
