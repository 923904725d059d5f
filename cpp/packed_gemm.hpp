// ======================================================================================
// The packed recurrent product: C (M, N) = A (M, K) W (K, N) + beta C for the few rows (M, a
// step's batch rows) of a recurrent step, W packed once per call.
//   M rows (batch), K the product's depth, N its columns; `width` columns a panel.
// OpenBLAS has no packed-GEMM interface: every per-step call copies all of W into its own
// panel layout again (measured: 19% of an H = 512 LSTM's time was that copy). Here W is stored once
// per call, by the bindings, in the layout this micro-kernel reads (see Packed in args.hpp):
// panel p holds columns [p width, (p + 1) width) of W, all K rows, row after row (K, width),
// the last panel padded with zeros. A register block of R rows x width columns (two packets
// per row) stays in registers over all K: per k, two packet loads of the panel and R
// broadcasts of A feed 2R multiply-adds. The panel (K x 2 packets) stays in L2 while every
// row block of A passes over it; A is first copied k-major by blocks of R rows (in a buffer of
// each thread's, grown once and kept), so a block's broadcasts read one stream. R is the most
// rows whose accumulators fit the variant's registers: 12 with AVX-512 (32 registers), 6 with
// AVX2 (16), 4 for the baseline (16 registers, no FMA). float and double use the same code (a
// double packet has half the lanes).
// ======================================================================================
#pragma once
#include <memory>

#include "common.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace packed {

// The widest packet of F this variant has (also for double, unlike pk::Packet).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
template <typename F>
using Packet = typename Eigen::internal::packet_traits<F>::type;
#pragma GCC diagnostic pop
template <typename F>
constexpr Index kLanes = Eigen::internal::unpacket_traits<Packet<F>>::size;
// Columns of a panel: two packets.
template <typename F>
constexpr Index kWidth = 2 * kLanes<F>;

#if defined(__AVX512F__)
constexpr Index kRows = 12;
#elif defined(__AVX2__)
constexpr Index kRows = 6;
#else
constexpr Index kRows = 4;
#endif

// One register block: R rows of A, packed k-major (K, R), times one panel (K, width), into
// tile (R, width) (row stride ldt): tile = beta tile + A panel, or only A panel when beta is 0
// (tile is then not read, as in BLAS).
template <typename F, int R>
EIGEN_ALWAYS_INLINE void block(const F* a, const F* panel, Index K, F beta, F* tile, Index ldt) {
  using namespace Eigen::internal;
  using P = Packet<F>;
  constexpr Index L = kLanes<F>;
  P acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = pset1<P>(F(0)), acc1[r] = pset1<P>(F(0));
  for (Index k = 0; k < K; ++k) {
    const P b0 = ploadu<P>(panel + k * 2 * L), b1 = ploadu<P>(panel + k * 2 * L + L);
    for (int r = 0; r < R; ++r) {
      const P x = pset1<P>(a[k * R + r]);
      acc0[r] = pmadd(x, b0, acc0[r]);
      acc1[r] = pmadd(x, b1, acc1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    F* t = tile + r * ldt;
    if (beta != F(0)) {
      const P bt = pset1<P>(beta);
      acc0[r] = pmadd(bt, ploadu<P>(t), acc0[r]);
      acc1[r] = pmadd(bt, ploadu<P>(t + L), acc1[r]);
    }
    pstoreu(t, acc0[r]);
    pstoreu(t + L, acc1[r]);
  }
}

// Few rows (a batch-1 step): R rows times S consecutive whole panels at once, so that 2 R S
// accumulators are in flight. One panel of one row leaves two multiply-add chains of K
// dependent steps, a quarter of what two FMA units with 4-cycle latency can issue; S panels
// of the same rows are independent chains. The product is then bound by reading W from L2
// (each of its values used R times; measured 1x256x64 avx2 1.0 -> 0.6 us, about 100 GB/s),
// which a step of few rows cannot avoid. Panel s is (K, width) at panel + s K width; tile
// (R, S width), row stride ldt.
template <typename F, int R, int S>
EIGEN_ALWAYS_INLINE void wide_block(const F* a, const F* panel, Index K, F beta, F* tile,
                                    Index ldt) {
  using namespace Eigen::internal;
  using P = Packet<F>;
  constexpr Index L = kLanes<F>, W = 2 * L;
  P acc[R][2 * S];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 2 * S; ++j) acc[r][j] = pset1<P>(F(0));
  for (Index k = 0; k < K; ++k) {
    P x[R];
    for (int r = 0; r < R; ++r) x[r] = pset1<P>(a[k * R + r]);
    for (int s = 0; s < S; ++s) {
      const F* b = panel + s * K * W + k * W;
      const P b0 = ploadu<P>(b), b1 = ploadu<P>(b + L);
      for (int r = 0; r < R; ++r) {
        acc[r][2 * s] = pmadd(x[r], b0, acc[r][2 * s]);
        acc[r][2 * s + 1] = pmadd(x[r], b1, acc[r][2 * s + 1]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 2 * S; ++j) {
      F* t = tile + r * ldt + j * L;
      if (beta != F(0)) acc[r][j] = pmadd(pset1<P>(beta), ploadu<P>(t), acc[r][j]);
      pstoreu(t, acc[r][j]);
    }
}

// Panels at a time for R rows in wide_block: 8 accumulators for 1 and 2 rows, 12 for 3; from
// 4 rows on the plain block (one panel) has 8 already.
template <int R>
constexpr int kWidePanels = R == 1 ? 4 : 2;
inline constexpr Index kWideRows = 3;

// The first n whole panels at `panels` for M = R rows, S panels at a time (C's columns from
// 0); returns how many were done (the rest, fewer than S, are left to the plain block).
template <typename F, int R>
EIGEN_ALWAYS_INLINE Index wide_panels(const F* a, const F* panels, Index K, Index n, F beta,
                                      F* C, Index ldc) {
  constexpr int S = kWidePanels<R>;
  constexpr Index W = kWidth<F>;
  Index p = 0;
  for (; p + S <= n; p += S) wide_block<F, R, S>(a, panels + p * K * W, K, beta, C + p * W, ldc);
  return p;
}
template <typename F>
Index wide_panels_of(Index rows, const F* a, const F* panels, Index K, Index n, F beta, F* C,
                     Index ldc) {
  switch (rows) {
    case 1: return wide_panels<F, 1>(a, panels, K, n, beta, C, ldc);
    case 2: return wide_panels<F, 2>(a, panels, K, n, beta, C, ldc);
    case 3: return wide_panels<F, 3>(a, panels, K, n, beta, C, ldc);
    default: return 0;
  }
}

// A block of R <= kRows rows (R a run-time value; the tail of M), by its compile-time case.
template <typename F, int R = kRows>
EIGEN_ALWAYS_INLINE void block_of(Index rows, const F* a, const F* panel, Index K, F beta,
                                  F* tile, Index ldt) {
  if constexpr (R > 1) {
    if (rows < R) return block_of<F, R - 1>(rows, a, panel, K, beta, tile, ldt);
  }
  block<F, R>(a, panel, K, beta, tile, ldt);
}

// The rows of A, k-major by blocks of `block_rows` rows: block m0 (rows [m0, m0 + R)) is
// stored (K, R) at m0 * K, so a block's broadcasts read one stream instead of R rows lda apart
// (whose addresses, lda a multiple of 4 KiB as in batch-major (B, T, H) arrays, would share
// one set of the L1 cache). Per thread, grown once and reused.
template <typename F>
const F* pack_rows(Index M, Index K, const F* A, Index lda, Index block_rows = kRows) {
  thread_local std::unique_ptr<F[]> buffer;  // (M, K), by blocks (K, R)
  thread_local Index size = 0;
  if (size < M * K) buffer = std::make_unique<F[]>(std::size_t(M * K)), size = M * K;
  F* out = buffer.get();
  for (Index m0 = 0; m0 < M; m0 += block_rows) {
    const Index R = std::min(block_rows, M - m0);
    for (Index r = 0; r < R; ++r) {
      const F* row = A + (m0 + r) * lda;
      F* dst = out + m0 * K + r;
      for (Index k = 0; k < K; ++k) dst[k * R] = row[k];
    }
  }
  return out;
}

// Columns [c0, c1) of C (M, ldc) = A W + beta C, W packed (see above), A (M, K) already
// packed by pack_rows, panel by panel. Panels entirely inside [c0, c1) are computed in place
// in C; a panel cut by c0, c1 or N goes through a tile of R x width on the stack (its columns
// outside are computed and dropped).
template <typename F>
void panel_by_panel(const Packed<F>& w, Index M, const F* a, F beta, F* C, Index ldc, Index c0,
                    Index c1) {
  constexpr Index W = kWidth<F>;
  const Index K = w.K;
  alignas(64) F tile[kRows * W];  // (kRows, W) for the cut panels
  for (Index p0 = c0 / W * W; p0 < c1; p0 += W) {
    const F* panel = w.data + p0 * K;  // (K, W)
    const Index lo = std::max(p0, c0), hi = std::min({p0 + W, c1, w.N});
    const bool whole = lo == p0 && hi == p0 + W;
    for (Index m = 0; m < M; m += kRows) {
      const Index rows = std::min(kRows, M - m);
      if (whole) {
        block_of<F>(rows, a + m * K, panel, K, beta, C + m * ldc + p0, ldc);
        continue;
      }
      if (beta != F(0))  // C's columns [lo, hi) into the tile (the others are dropped)
        for (Index r = 0; r < rows; ++r)
          std::copy(C + (m + r) * ldc + lo, C + (m + r) * ldc + hi, tile + r * W + (lo - p0));
      block_of<F>(rows, a + m * K, panel, K, beta, tile, W);
      for (Index r = 0; r < rows; ++r)
        std::copy(tile + r * W + (lo - p0), tile + r * W + (hi - p0), C + (m + r) * ldc + lo);
    }
  }
}

// Columns [c0, c1) of C (M, ldc) = A W + beta C, W packed, A packed by pack_rows: with few
// rows (M <= kWideRows) the whole panels inside [c0, c1) several at a time (wide_block), the
// cut ones and the remainder panel by panel.
template <typename F>
void product_of_packed(const Packed<F>& w, Index M, const F* a, F beta, F* C, Index ldc,
                       Index c0, Index c1) {
  constexpr Index W = kWidth<F>;
  const Index lo = (c0 + W - 1) / W * W, hi = std::min(c1, w.N) / W * W;
  if (M > kWideRows || lo >= hi) return panel_by_panel(w, M, a, beta, C, ldc, c0, c1);
  const Index done = wide_panels_of(M, a, w.data + lo * w.K, w.K, (hi - lo) / W, beta, C + lo, ldc);
  panel_by_panel(w, M, a, beta, C, ldc, c0, lo);
  panel_by_panel(w, M, a, beta, C, ldc, lo + done * W, c1);
}

// Columns [c0, c1) of C (M, ldc) = A (M, K; lda) W + beta C, W packed.
template <typename F>
void product(const Packed<F>& w, Index M, const F* A, Index lda, F beta, F* C, Index ldc,
             Index c0, Index c1) {
  product_of_packed(w, M, pack_rows(M, w.K, A, lda), beta, C, ldc, c0, c1);
}

// C (M rows, ldc) (+)= A (M, K; lda) W (K, gates * H) restricted to the columns of units u of
// every gate block (as gate_columns_gemm), W packed; A is packed once for all gate blocks.
template <typename F>
inline void gate_columns(const Packed<F>& w, const Units& u, Index gates, Index H, Index M,
                         const F* A, Index lda, F beta, F* C, Index ldc) {
  const F* a = pack_rows(M, w.K, A, lda);  // (M, K) in blocks (K, R)
  if (u.all) return product_of_packed(w, M, a, beta, C, ldc, 0, gates * H);
  for (Index g = 0; g < gates; ++g)
    product_of_packed(w, M, a, beta, C, ldc, g * H + u.u0, g * H + u.u0 + u.n);
}

}  // namespace packed

// The recurrent product of a step, C (M rows, ldc) (+)= A (M, K; lda) W (K, gates * H) over the
// columns of units u of every gate block: by the packed micro-kernel when the caller packed W,
// else panel by panel (all units; see panel_product), else by OpenBLAS (W whole).
template <typename F>
inline void step_product(const Packed<F>& packed_w, const Panels<F>& panels, const Units& u,
                         Index gates, Index H, Index M, Index K, const F* A, Index lda,
                         const F* W, F beta, F* C, Index ldc) {
  if (packed_w.data != nullptr)
    return packed::gate_columns(packed_w, u, gates, H, M, A, lda, beta, C, ldc);
  if (u.all && panel_product(panels, M, gates * H, K, A, lda, beta, C, ldc)) return;
  gate_columns_gemm(u, gates, H, M, K, A, lda, W, beta, C, ldc);
}
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
