// The core of dot-product attention (MultiHeadAttention, GroupQueryAttention): forward and
// backward, on the projected queries, keys and values in the layout the layer has them.
//
// Dimension letters (see layer_args.hpp): B batch, Tq query steps, Tv key/value steps, H query
// heads, Hkv key/value heads (r = H / Hkv query heads share one), Dk, Dv per-head sizes. Per
// batch item b and query head h, with g = h / r its key/value head:
//
//   S = Q_bh K_bg^T                      (Tq, Tv); Q already scaled by 1 / sqrt(Dk)
//   p = softmax over each row of S, over the kept entries only (keep mask, causal j <= i);
//       the others are 0, and a row with none kept is all 0 (attends to nothing)
//   ctx_bh = (p * drop) V_bg             (Tq, Dv); drop: the dropout keep-scale, or 1
// backward, from d_ctx and an optional gradient d_p on the returned p:
//   d_V_bg += (p * drop)^T d_ctx_bh,  dP = (d_ctx_bh V_bg^T) * drop + d_p
//   dS = p * (dP - rowsum(dP * p))      (0 wherever p is 0: masked entries get no gradient)
//   d_Q_bh = d_q_scale * dS K_bg,  d_K_bg += dS^T Q_bh
//
// Q (B, Tq, H, Dk), K (B, Tv, Hkv, Dk), V and ctx are the projections' (B*T, heads*D) rows, so
// head h's matrix is every H*Dk-th row from column h*Dk: the products read and write them in
// place through the BLAS leading dimension, with no transposed copies (NumPy's batched matmul
// needed (B, H, T, D) views, copied, and ran single-threaded over 256 small products).
//
// Work is split over (batch item, key/value head) pairs, each with all its query heads, so a
// pair's d_K and d_V (sums over those heads) have one writer. Every product is OpenBLAS's,
// 100x100x16 at the benchmark's shapes; the softmax rows run on Eigen's vectorised exp.
//
// Causal attention never looks at the upper triangle: the query rows are taken in blocks of
// kCausalRows, and block [r0, r1) multiplies only against key steps [0, r1) (at T = 100, blocks
// of 32 rows: 73% of the columns on average, 27% fewer flops in all six products). Measured
// (1 thread, B=32 T=100, H=8 Dk=32, backward, best of 30): one block of all 100 rows 13.5 ms,
// blocks of 24-48 rows 10.5-11.3 ms; 16 rows no better than 32 (more, smaller products).
#pragma once

#include <cmath>
#include <limits>

#include "common.hpp"
#include "layer_args.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {
namespace attention {

inline constexpr Index kCausalRows = 32;

// Query row i attends to key steps [0, row_cols(i)) at most (the causal limit, else all).
inline Index row_cols(const AttentionShape& s, Index i) {
  return s.causal ? std::min(i + 1, s.Tv) : s.Tv;
}

// The query rows of one block, and the key columns [0, cols) they can reach.
struct Block {
  Index r0, rows, cols;
};
template <typename Fn>
inline void for_blocks(const AttentionShape& s, const Fn& fn) {
  const Index step = s.causal ? kCausalRows : std::max<Index>(s.Tq, 1);
  for (Index r0 = 0; r0 < s.Tq; r0 += step) {
    const Index rows = std::min(step, s.Tq - r0);
    fn(Block{r0, rows, s.causal ? std::min(r0 + rows, s.Tv) : s.Tv});
  }
}

// One (batch item, query head)'s matrices: row-major with leading dimensions ld*.
struct Head {
  Index ldq, ldk, ldv, ldc;  // Q and d_Q; K and d_K; V and d_V; ctx and d_ctx
  Index q, k, v, c, p;       // offsets of the head's first element in Q, K, V, ctx, p
};
inline Head head(const AttentionShape& s, Index b, Index h) {
  const Index g = h / (s.H / s.Hkv);
  Head x{};
  x.ldq = s.H * s.Dk, x.ldk = s.Hkv * s.Dk, x.ldv = s.Hkv * s.Dv, x.ldc = s.H * s.Dv;
  x.q = b * s.Tq * x.ldq + h * s.Dk, x.k = b * s.Tv * x.ldk + g * s.Dk;
  x.v = b * s.Tv * x.ldv + g * s.Dv, x.c = b * s.Tq * x.ldc + h * s.Dv;
  x.p = (b * s.H + h) * s.Tq * s.Tv;
  return x;
}

// Runs fn(b, h) over every query head of the call's pairs, pair by pair.
template <typename Fn>
inline void for_heads(const AttentionShape& s, const Fn& fn) {
  const Index r = s.H / s.Hkv;
  for (Index pair = s.pair0; pair < s.pair0 + s.pairs; ++pair) {
    const Index b = pair / s.Hkv, g = pair % s.Hkv;
    for (Index h = g * r; h < (g + 1) * r; ++h) fn(b, h);
  }
}

// row[j] = exp(row[j] - m) for j < n, every element by the same packet code (Eigen's array
// expressions do the elements before the first aligned address with the scalar exp, whose
// last bit differs: the row's placement in memory would change the result).
template <typename F>
inline void exp_shifted(F* row, Index n, F m) {
  using P = pk::Packet<F>;
  const P shift = Eigen::internal::pset1<P>(m);
  row_pass<F, 1, 1>(n, {row}, {row}, [&](const auto& ld, const auto& st) {
    st(0, Eigen::internal::pexp(Eigen::internal::psub(ld(0), shift)));
  });
}

// The softmax of row[0, n) in place over the kept entries (keep: nullptr keeps all); the
// others and row[n, Tv) become 0, and so does the whole row when nothing is kept.
template <typename F>
inline void softmax_row(F* row, Index n, Index Tv, const std::uint8_t* keep) {
  if (keep == nullptr) {
    exp_shifted(row, n, n > 0 ? CVec<F>(row, n).maxCoeff() : F(0));
  } else {
    F m = -std::numeric_limits<F>::infinity();
    Index kept = 0;
    for (Index j = 0; j < n; ++j)
      if (keep[j]) m = std::max(m, row[j]), ++kept;
    if (kept == 0) n = 0;
    else exp_shifted(row, n, m);
    for (Index j = 0; j < n; ++j)
      if (!keep[j]) row[j] = F(0);
  }
  const auto itself = [](auto v, auto) { return v; };
  if (n > 0) Vec<F>(row, n) *= F(1) / packet_sum<F>(n, row, nullptr, itself);
  std::fill(row + n, row + Tv, F(0));
}

// rows x cols of p * drop (rows Tv apart) into out (likewise); p itself without a drop.
template <typename F>
inline const F* dropped(const F* p, const F* drop, F* out, Index rows, Index cols, Index Tv) {
  if (drop == nullptr) return p;
  for (Index i = 0; i < rows; ++i)
    Vec<F>(out + i * Tv, cols) = CVec<F>(p + i * Tv, cols) * CVec<F>(drop + i * Tv, cols);
  return out;
}

template <typename F>
void forward(const AttentionForwardArgs<F>& a) {
  const AttentionShape& s = a.s;
  for_heads(s, [&](Index b, Index h) {
    const Head x = head(s, b, h);
    F* p = a.p + x.p;
    const F* drop = a.drop != nullptr ? a.drop + x.p : nullptr;
    const std::uint8_t* keep = a.keep != nullptr ? a.keep + b * s.Tq * s.Tv : nullptr;
    for_blocks(s, [&](const Block& k) {
      F* pb = p + k.r0 * s.Tv;  // (rows, Tv)
      gemm(false, true, k.rows, k.cols, s.Dk, F(1), a.q + x.q + k.r0 * x.ldq, x.ldq, a.k + x.k,
           x.ldk, F(0), pb, s.Tv);
      for (Index i = k.r0; i < k.r0 + k.rows; ++i)
        softmax_row(p + i * s.Tv, row_cols(s, i), s.Tv,
                    keep != nullptr ? keep + i * s.Tv : nullptr);
      const F* used = dropped(pb, drop != nullptr ? drop + k.r0 * s.Tv : nullptr, a.scratch,
                              k.rows, k.cols, s.Tv);
      gemm(false, false, k.rows, s.Dv, k.cols, F(1), used, s.Tv, a.v + x.v, x.ldv, F(0),
           a.ctx + x.c + k.r0 * x.ldc, x.ldc);
    });
  });
}

template <typename F>
void backward(const AttentionBackwardArgs<F>& a) {
  const AttentionShape& s = a.s;
  for (Index pair = s.pair0; pair < s.pair0 + s.pairs; ++pair) {  // d_K, d_V: sums, from 0
    const Head x = head(s, pair / s.Hkv, (pair % s.Hkv) * (s.H / s.Hkv));
    for (Index t = 0; t < s.Tv; ++t) {
      std::fill(a.d_k + x.k + t * x.ldk, a.d_k + x.k + t * x.ldk + s.Dk, F(0));
      std::fill(a.d_v + x.v + t * x.ldv, a.d_v + x.v + t * x.ldv + s.Dv, F(0));
    }
  }
  F* d_s = a.scratch + s.Tq * s.Tv;  // (rows, Tv) of the block: dP, then dS
  for_heads(s, [&](Index b, Index h) {
    const Head x = head(s, b, h);
    const F* drop = a.drop != nullptr ? a.drop + x.p : nullptr;
    for_blocks(s, [&](const Block& k) {
      const F* p = a.p + x.p + k.r0 * s.Tv;  // (rows, Tv)
      const F* d_ctx = a.d_ctx + x.c + k.r0 * x.ldc;
      const F* q = a.q + x.q + k.r0 * x.ldq;
      const F* used = dropped(p, drop != nullptr ? drop + k.r0 * s.Tv : nullptr, a.scratch,
                              k.rows, k.cols, s.Tv);
      // d_V[0, cols) += used^T (cols, rows) d_ctx (rows, Dv)
      gemm(true, false, k.cols, s.Dv, k.rows, F(1), used, s.Tv, d_ctx, x.ldc, F(1),
           a.d_v + x.v, x.ldv);
      // dP (rows, cols) = d_ctx V[0, cols)^T
      gemm(false, true, k.rows, k.cols, s.Dv, F(1), d_ctx, x.ldc, a.v + x.v, x.ldv, F(0), d_s,
           s.Tv);
      for (Index i = 0; i < k.rows; ++i) {  // columns past the causal limit have p = 0: dS = 0
        Vec<F> dp(d_s + i * s.Tv, k.cols);
        CVec<F> pi(p + i * s.Tv, k.cols);
        if (drop != nullptr) dp *= CVec<F>(drop + (k.r0 + i) * s.Tv, k.cols);
        if (a.d_p != nullptr) dp += CVec<F>(a.d_p + x.p + (k.r0 + i) * s.Tv, k.cols);
        const F dot = packet_sum<F>(k.cols, dp.data(), pi.data(), [](auto g, auto w) {
          return Eigen::internal::pmul(g, w);
        });
        dp = pi * (dp - dot);
      }
      // d_Q rows = d_q_scale * dS (rows, cols) K[0, cols);  d_K[0, cols) += dS^T Q rows
      gemm(false, false, k.rows, s.Dk, k.cols, a.d_q_scale, d_s, s.Tv, a.k + x.k, x.ldk, F(0),
           a.d_q + x.q + k.r0 * x.ldq, x.ldq);
      gemm(true, false, k.cols, s.Dk, k.rows, F(1), d_s, s.Tv, q, x.ldq, F(1), a.d_k + x.k,
           x.ldk);
    });
  });
}

}  // namespace attention
}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
