// Shared pieces of the kernels: the instruction-set namespace, Eigen, the BLAS calls and the
// few passes every cell uses. Everything here lives in fastrnn::FASTRNN_ARCH, because this
// header is compiled once per instruction set (see CMakeLists.txt) and the copies must not
// be merged by the linker.
#pragma once

#ifndef FASTRNN_ARCH
#define FASTRNN_ARCH generic
#endif

// Eigen is header-only and compiled here once per instruction set: renaming its namespace
// per variant keeps the AVX-512 copy of an inline Eigen function from being linked into the
// baseline variant (the technique TensorFlow Lite uses for its own Eigen copy).
#define FASTRNN_CAT_(a, b) a##_##b
#define FASTRNN_CAT(a, b) FASTRNN_CAT_(a, b)
#define Eigen FASTRNN_CAT(Eigen, FASTRNN_ARCH)
#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cblas.h>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "args.hpp"

namespace fastrnn {
namespace FASTRNN_ARCH {

template <typename F>
using Vec = Eigen::Map<Eigen::Array<F, Eigen::Dynamic, 1>>;
template <typename F>
using CVec = Eigen::Map<const Eigen::Array<F, Eigen::Dynamic, 1>>;

// ------------------------------------------------------------------ gate math in one pass
// The gate math of a step is one pass over each row: every gate's value is loaded once, all
// activations and the state update computed in registers, every result stored once. Packets
// are Eigen's (its vectorised, accurate logistic and tanh: a rational approximation, not
// -ffast-math); float uses the widest the variant has (16 lanes with AVX-512), double runs one
// lane at a time (it is only used for gradient checks).
namespace pk {
using namespace Eigen::internal;
// (GCC warns that the vector type's alignment attribute is dropped in the template argument;
// only the type is selected here, values are always loaded and stored unaligned.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
template <typename F>
using Packet = std::conditional_t<std::is_same_v<F, float>, packet_traits<float>::type, double>;
#pragma GCC diagnostic pop
template <typename F>
constexpr Index lanes = unpacket_traits<Packet<F>>::size;

template <typename P>
EIGEN_ALWAYS_INLINE P sigmoid(const P& x) {
  return scalar_logistic_op<typename unpacket_traits<P>::type>().packetOp(x);
}
template <typename P>
EIGEN_ALWAYS_INLINE P tanh(const P& x) {
  return ptanh(x);
}
template <typename P>
EIGEN_ALWAYS_INLINE P one() {
  return pset1<P>(typename unpacket_traits<P>::type(1));
}
template <typename P>
EIGEN_ALWAYS_INLINE P load(const typename unpacket_traits<P>::type* p) {
  return ploadu<P>(p);
}
template <typename P>
EIGEN_ALWAYS_INLINE void store(typename unpacket_traits<P>::type* p, const P& x) {
  pstoreu(p, x);
}
}  // namespace pk

// Runs op(ld, st) over a row of n elements, one packet of lanes at a time: ld(k) loads the
// packet of input k (a null input reads as zeros), st(k, p) stores p to output k. op must load
// everything before it stores, since outputs may alias inputs. The last n % lanes elements
// use masked loads and stores where the instruction set has them (AVX2, AVX-512), else
// zero-padded copies, so op only ever sees whole packets.
template <typename F, std::size_t NI, std::size_t NO, typename Op>
EIGEN_ALWAYS_INLINE void row_pass(Index n, const std::array<const F*, NI>& in,
                                   const std::array<F*, NO>& out, const Op& op) {
  using P = pk::Packet<F>;
  using Traits = Eigen::internal::unpacket_traits<P>;
  constexpr Index lanes = pk::lanes<F>;
  const P zero = Eigen::internal::pset1<P>(F(0));
  Index j = 0;
  for (; j + lanes <= n; j += lanes) {
    op([&](std::size_t k) { return in[k] != nullptr ? pk::load<P>(in[k] + j) : zero; },
       [&](std::size_t k, const P& v) { pk::store(out[k] + j, v); });
  }
  if (j == n) return;
  const Index r = n - j;
  if constexpr (Traits::masked_load_available && Traits::masked_store_available) {
    using Mask = typename Traits::mask_t;
    const Mask mask = static_cast<Mask>((Mask(1) << r) - 1);
    op([&](std::size_t k) {
         return in[k] != nullptr ? Eigen::internal::ploadu<P>(in[k] + j, mask) : zero;
       },
       [&](std::size_t k, const P& v) { Eigen::internal::pstoreu(out[k] + j, v, mask); });
  } else {
    alignas(64) F tin[NI][lanes] = {};
    alignas(64) F tout[NO][lanes] = {};
    for (std::size_t k = 0; k < NI; ++k)
      if (in[k] != nullptr) std::copy(in[k] + j, in[k] + n, tin[k]);
    op([&](std::size_t k) { return pk::load<P>(tin[k]); },
       [&](std::size_t k, const P& v) { pk::store(tout[k], v); });
    for (std::size_t k = 0; k < NO; ++k) std::copy(tout[k], tout[k] + r, out[k] + j);
  }
}

// x with its lanes from `valid` on set to zero (the padding lanes of a row's last packet).
template <typename P>
EIGEN_ALWAYS_INLINE P keep_lanes(const P& x, Index valid) {
  using namespace Eigen::internal;
  using F = typename unpacket_traits<P>::type;
  if constexpr (unpacket_traits<P>::size > 1) {
    if (valid < unpacket_traits<P>::size)
      return pselect(pcmp_lt(plset<P>(F(0)), pset1<P>(F(valid))), x, pzero(x));
  }
  return x;
}

// sum_j term(a_j, b_j) over j in [0, n), term taking and giving packets (b may be nullptr:
// term then gets zeros for it). The packets start at a and b themselves, whatever their
// alignment: Eigen's reductions (`.sum()` of a Map) begin at the first aligned address, so
// the same row gave other bits when NumPy placed it 16 bytes further. The last packet is
// zero-padded and its padding lanes dropped after term.
template <typename F, typename Term>
EIGEN_ALWAYS_INLINE F packet_sum(Index n, const F* a, const F* b, const Term& term) {
  using P = pk::Packet<F>;
  using Eigen::internal::padd;
  constexpr Index L = pk::lanes<F>;
  const P zero = Eigen::internal::pset1<P>(F(0));
  auto ld = [&](const F* p, Index j) { return p != nullptr ? pk::load<P>(p + j) : zero; };
  P acc0 = zero, acc1 = zero;
  Index j = 0;
  for (; j + 2 * L <= n; j += 2 * L) {
    acc0 = padd(acc0, term(ld(a, j), ld(b, j)));
    acc1 = padd(acc1, term(ld(a, j + L), ld(b, j + L)));
  }
  if (j + L <= n) acc0 = padd(acc0, term(ld(a, j), ld(b, j))), j += L;
  if (j < n) {
    using Traits = Eigen::internal::unpacket_traits<P>;
    if constexpr (Traits::masked_load_available) {
      using Mask = typename Traits::mask_t;
      const Mask mask = static_cast<Mask>((Mask(1) << (n - j)) - 1);
      auto part = [&](const F* p) {
        return p != nullptr ? Eigen::internal::ploadu<P>(p + j, mask) : zero;
      };
      acc1 = padd(acc1, keep_lanes(term(part(a), part(b)), n - j));
    } else {
      alignas(64) F ta[L] = {}, tb[L] = {};
      std::copy(a + j, a + n, ta);
      if (b != nullptr) std::copy(b + j, b + n, tb);
      acc1 = padd(acc1, keep_lanes(term(pk::load<P>(ta), pk::load<P>(tb)), n - j));
    }
  }
  return Eigen::internal::predux(padd(acc0, acc1));
}

// Inlines every call in the function's body (GCC, Clang): for the per-step gate loops, whose
// activations Eigen leaves out of line otherwise.
#if defined(__GNUC__)
#define FASTRNN_FLATTEN __attribute__((flatten))
#else
#define FASTRNN_FLATTEN
#endif

// Offset of an optional pointer (nullptr stays nullptr).
// Asks for n elements from p on into the cache (nothing when p is nullptr): the rows a step
// reads from a batch-major tape are T rows apart, each in another page, and the hardware
// prefetchers do not follow them.
template <typename F>
EIGEN_ALWAYS_INLINE void prefetch_row(const F* p, Index n) {
  if (p == nullptr) return;
  constexpr Index line = 64 / sizeof(F);
  for (Index j = 0; j < n; j += line) __builtin_prefetch(p + j, 0, 3);
}
// How many rows ahead the loops over a step's rows ask for their tape.
constexpr Index kPrefetchRows = 4;
// The same for n elements about to be written.
template <typename F>
EIGEN_ALWAYS_INLINE void prefetch_row_for_writing(F* p, Index n) {
  constexpr Index line = 64 / sizeof(F);
  for (Index j = 0; j < n; j += line) __builtin_prefetch(p + j, 1, 3);
}

template <typename P>
inline P* at(P* p, Index offset) {
  return p == nullptr ? nullptr : p + offset;
}

// Row-major C (M, N) = alpha * op(A) op(B) + beta * C, through OpenBLAS.
inline void gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, float alpha,
                 const float* A, Index lda, const float* Bm, Index ldb, float beta, float* C,
                 Index ldc) {
  scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(M),
                    static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(lda),
                    Bm, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}
inline void gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, double alpha,
                 const double* A, Index lda, const double* Bm, Index ldb, double beta,
                 double* C, Index ldc) {
  scipy_cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(M),
                    static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(lda),
                    Bm, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

// ------------------------------------------------------------------ products over many rows
// On its AVX-512 cores OpenBLAS multiplies a small problem (M * N * K up to 1e6) with kernels
// that read the operands in place; above that it copies (packs) both operands first, which
// for a skinny product over many rows (the input projection, d_x, the weight gradients of a
// small layer) is a whole extra pass over them. Such products are therefore cut into pieces of
// rows that each stay small. Measured, 1 thread, this machine: LSTM(16) at batch 256 x 120
// steps, input projection 30720x64x14 0.86 -> 0.51 ms, weight gradient 31x64 over 30720 rows
// 1.78 -> 1.00 ms; Hands-On ML's SimpleRNN(20) weight gradient 41x20 over 1600 rows 40 -> 25
// us. Products with wide rows (H >= 128) are left whole: their pieces would not be small.

// Rows per piece for a product of `rows` rows of n_times_k work each (N * K), or 0 to do it
// whole: pieces of the most rows that keep the product small, and at least `min_rows`.
inline Index small_piece_rows(Index rows, Index n_times_k, Index min_rows) {
  if (!blas_reads_small_in_place()) return 0;
  const double per_row = static_cast<double>(n_times_k);
  if (per_row * static_cast<double>(rows) <= kSmallProduct) return 0;  // already small
  const Index piece = static_cast<Index>(kSmallProduct / per_row);
  return piece >= min_rows ? piece : 0;
}

// C (M, N) = A (M, K) W (K, N) + beta C, row-major, cut into small pieces of at least
// min_rows rows when that pays (see above).
template <typename F>
inline void gemm_rows(Index M, Index N, Index K, const F* A, Index lda, const F* W, Index ldw,
                      F beta, F* C, Index ldc, Index min_rows = 64) {
  const Index piece = small_piece_rows(M, N * K, min_rows);
  if (piece == 0) return gemm(false, false, M, N, K, F(1), A, lda, W, ldw, beta, C, ldc);
  for (Index r = 0; r < M; r += piece)
    gemm(false, false, std::min(piece, M - r), N, K, F(1), A + r * lda, lda, W, ldw, beta,
         C + r * ldc, ldc);
}

// The recurrent product of a step, C (M, N) (+)= A (M, K) W (K, N) over all N columns, from
// W's panels (see Panels in args.hpp): one product per panel, or per part of one, the widest
// part (64, 32 or 16 columns) that M rows still multiply in place. Measured, one thread, over
// M = 8..64 and K = 128..2048: the widest in-place part is the fastest, 0.45-0.8 of the time of
// W whole; 16-column parts pay only up to 32 rows. Returns false, having done nothing, when
// there are no panels or they do not pay for M rows; the caller then multiplies by W whole.
template <typename F>
inline bool panel_product(const Panels<F>& p, Index M, Index N, Index K, const F* A, Index lda,
                          F beta, F* C, Index ldc) {
  if (p.data == nullptr) return false;
  const double rows_k = static_cast<double>(M) * static_cast<double>(K);
  if (rows_k * static_cast<double>(N) <= kSmallProduct) return false;  // W whole is in place
  Index w = p.width;
  while (w > 16 && rows_k * static_cast<double>(w) > kSmallProduct) w /= 2;
  if (rows_k * static_cast<double>(w) > kSmallProduct || (w == 16 && M > 32)) return false;
  for (Index c = 0; c < N; c += p.width) {
    const Index pw = std::min(p.width, N - c);
    for (Index s = 0; s < pw; s += w)
      gemm(false, false, M, std::min(w, pw - s), K, F(1), A, lda, p.data + c * K + s, pw, beta,
           C + c + s, ldc);
  }
  return true;
}

// The hidden units a call computes (see StepSplit): [u0, u0 + n), and whether that is all H.
struct Units {
  Index u0, n;
  bool all;
};
inline Units units_of(const StepSplit& split, Index H) {
  const Index u1 = split.u_end < 0 ? H : split.u_end;
  return {split.u_begin, u1 - split.u_begin, split.u_begin == 0 && u1 == H};
}
// Waits for the calls that compute the other units of this step (no-op when alone).
inline void step_done(const StepSplit& split) {
  if (split.sync != nullptr) split.sync(split.sync_ctx);
}

// C (M rows, ldc) (+)= A (M, K; lda) W (K, gates * H), restricted to the columns of units u of
// every gate block: one GEMM when u covers all units, else one per gate block.
template <typename F>
inline void gate_columns_gemm(const Units& u, Index gates, Index H, Index M, Index K,
                              const F* A, Index lda, const F* W, F beta, F* C, Index ldc) {
  const Index G = gates * H;
  if (u.all) return gemm_rows(M, G, K, A, lda, W, G, beta, C, ldc);
  for (Index g = 0; g < gates; ++g)
    gemm_rows(M, u.n, K, A, lda, W + g * H + u.u0, G, beta, C + g * H + u.u0, ldc);
}

// Sets columns of units u of every gate block of B rows (ldc apart) to zero.
template <typename F>
inline void zero_gate_columns(const Units& u, Index gates, Index H, Index B, F* C, Index ldc) {
  for (Index b = 0; b < B; ++b)
    for (Index g = 0; g < gates; ++g)
      std::fill(C + b * ldc + g * H + u.u0, C + b * ldc + g * H + u.u0 + u.n, F(0));
}

// The carried gradient of units u: rows of `given` (B, H), or zeros.
template <typename F>
inline void init_carry_units(F* carry, const F* given, const Units& u, Index B, Index H) {
  for (Index b = 0; b < B; ++b) {
    F* dst = carry + b * H + u.u0;
    if (given != nullptr)
      std::copy(given + b * H + u.u0, given + b * H + u.u0 + u.n, dst);
    else
      std::fill(dst, dst + u.n, F(0));
  }
}

// dst[b, u] = src[b * ld_src + u] for the units u, every row b.
template <typename F>
inline void copy_units(F* dst, Index ld_dst, const F* src, Index ld_src, const Units& u,
                       Index B) {
  for (Index b = 0; b < B; ++b)
    std::copy(src + b * ld_src + u.u0, src + b * ld_src + u.u0 + u.n, dst + b * ld_dst + u.u0);
}

// d_h[b, u] *= m[b, u] for the units u (a recurrent dropout mask reaches h_{t-1} this way).
template <typename F>
inline void mask_units(F* d_h, const F* mask, const Units& u, Index B, Index H) {
  for (Index b = 0; b < B; ++b)
    Vec<F>(d_h + b * H + u.u0, u.n) *= CVec<F>(mask + b * H + u.u0, u.n);
}

// The state that enters step t, as the recurrent GEMM sees it: m * h_{t-1} when a recurrent
// dropout mask is set (written to scratch), otherwise h_{t-1} itself (rows ld apart).
// Returns nullptr for a zero state; *ld_out receives the row stride of the result.
template <typename F>
inline const F* state_into_step(Index t, const F* outputs, const F* h0, const F* mask,
                                F* scratch, Index B, Index T, Index H, Index* ld_out) {
  const F* h = t > 0 ? outputs + (t - 1) * H : h0;
  Index ld = t > 0 ? T * H : H;
  if (h == nullptr) return nullptr;
  if (mask == nullptr) {
    *ld_out = ld;
    return h;
  }
  for (Index b = 0; b < B; ++b)
    Vec<F>(scratch + b * H, H) = CVec<F>(h + b * ld, H) * CVec<F>(mask + b * H, H);
  *ld_out = H;
  return scratch;
}

// stacked (B, T, S): row (b, t) = [x_t, m * h_{t-1}, 1] (GRU: [x_t, 1, m * h_{t-1}, 1]), with
// h_{-1} = h0 or zeros: the left factor of the weight gradients (see stacked_width).
template <typename F>
inline void gather_stacked(F* stacked, const F* x, const F* outputs, const F* h0, const F* mask,
                           Index B, Index T, Index I, Index H, bool gru) {
  const Index S = stacked_width(I, H, gru), h_at = gru ? I + 1 : I;
  for (Index b = 0; b < B; ++b) {
    for (Index t = 0; t < T; ++t) {
      F* row = stacked + (b * T + t) * S;
      std::copy(x + (b * T + t) * I, x + (b * T + t + 1) * I, row);
      const F* h = t > 0 ? outputs + (b * T + t - 1) * H : at(h0, b * H);
      if (h == nullptr)
        std::fill(row + h_at, row + h_at + H, F(0));
      else if (mask == nullptr)
        std::copy(h, h + H, row + h_at);
      else
        Vec<F>(row + h_at, H) = CVec<F>(h, H) * CVec<F>(mask + b * H, H);
      row[S - 1] = F(1);
      if (gru) row[I] = F(1);
    }
  }
}

// d_x (rows, I) = d_pre (rows, G) K^T (G, I) over all the rows of a batch slice (kernel_t is
// K^T, stored), in small pieces of rows down to 24: for a few inputs and a wide G, OpenBLAS
// would otherwise copy all of d_pre (rows x G) before multiplying. Measured (one thread,
// OpenBLAS whole -> in pieces): 3200x32x512 (LSTM 64x100x32x128, a thread's rows) 1.36 ->
// 1.01 ms in 61-row pieces, 1600x32x1024 1.23 -> 0.91 ms in 30-row pieces; 16-row pieces
// were slower again.
template <typename F>
inline void input_gradient(F* d_x, const F* d_pre, const F* kernel_t, Index rows, Index I,
                           Index G) {
  gemm_rows(rows, I, G, d_pre, G, kernel_t, I, F(0), d_x, I, 24);
}

// Columns [g0, g1) of d_w (n, G) = A^T D, a sum over all `rows`: A is n columns of the
// stacked rows (row stride lda), D the gate gradients (rows, G). Column slices are
// independent, so the caller may compute them in parallel. A small layer's sum is taken in
// pieces of 64 rows, each a small product (see gemm_rows; 64 measured best for these).
template <typename F>
inline void stacked_weight_gradient(F* d_w, const F* A, Index n, Index lda, const F* D,
                                    Index rows, Index G, Index g0, Index g1) {
  const Index N = g1 - g0, piece = small_piece_rows(rows, n * N, 64) > 0 ? 64 : rows;
  Index r = 0;
  do {  // once at least, so that no rows still write d_w = 0
    gemm(true, false, n, N, std::min(piece, rows - r), F(1), A + r * lda, lda, D + r * G + g0,
         G, r > 0 ? F(1) : F(0), d_w + g0, G);
    r += piece;
  } while (r < rows);
}

// ------------------------------------------------------------------------ step masks
// (see args.hpp) A masked (b, t) keeps the state: forward copies the state entering the step
// over what the gate math wrote; backward zeroes the step's gate gradients and hands the
// gradient reaching h_t (plus the output's) on to h_{t-1} past the recurrent product.

// Whether row b's step t is masked (never, without a mask).
inline bool masked_step(const std::uint8_t* step_mask, Index b, Index T, Index t) {
  return step_mask != nullptr && step_mask[b * T + t] == 0;
}

// Units u of a masked step's state: dst = prev (the state entering the step), or zeros when
// prev is nullptr (a zero initial state).
template <typename F>
inline void hold_state(F* dst, const F* prev, const Units& u) {
  if (prev == nullptr)
    std::fill(dst + u.u0, dst + u.u0 + u.n, F(0));
  else
    std::copy(prev + u.u0, prev + u.u0 + u.n, dst + u.u0);
}

// Forward at step t, after the gate math wrote every row: the masked rows' h_t (in outputs
// (B, T, H)) becomes h_{t-1}, or h0, or zeros.
template <typename F>
inline void hold_masked_outputs(const std::uint8_t* step_mask, Index t, Index B, Index T,
                                Index H, const Units& u, F* outputs, const F* h0) {
  for (Index b = 0; b < B; ++b) {
    if (!masked_step(step_mask, b, T, t)) continue;
    const F* prev = t > 0 ? outputs + (b * T + t - 1) * H : at(h0, b * H);
    hold_state(outputs + (b * T + t) * H, prev, u);
  }
}

// Backward at step t, for the masked rows: units u of their gate gradients (`gates` blocks H
// apart, in rows of dz (B, T, G); dz2 likewise, or nullptr) become zeros, and held[b] = d_h[b]
// + d_outputs[b, t]: the gradient that passes on to h_{t-1} unchanged. held may be d_h itself.
template <typename F>
inline void hold_masked_rows(const std::uint8_t* step_mask, Index t, Index B, Index T, Index H,
                             const Units& u, Index gates, F* dz, F* dz2, F* held, const F* d_h,
                             const F* d_outputs) {
  const Index G = gates * H;
  for (Index b = 0; b < B; ++b) {
    if (!masked_step(step_mask, b, T, t)) continue;
    const Index r = b * T + t;
    for (Index g = 0; g < gates; ++g) {
      std::fill(dz + r * G + g * H + u.u0, dz + r * G + g * H + u.u0 + u.n, F(0));
      if (dz2 != nullptr)
        std::fill(dz2 + r * G + g * H + u.u0, dz2 + r * G + g * H + u.u0 + u.n, F(0));
    }
    Vec<F> dst(held + b * H + u.u0, u.n);
    if (d_outputs != nullptr)
      dst = CVec<F>(d_h + b * H + u.u0, u.n) + CVec<F>(d_outputs + r * H + u.u0, u.n);
    else if (held != d_h)
      dst = CVec<F>(d_h + b * H + u.u0, u.n);
  }
}

// After the recurrent product of step t has overwritten d_h: the masked rows get back the
// gradient hold_masked_rows kept for them.
template <typename F>
inline void restore_masked_rows(const std::uint8_t* step_mask, Index t, Index B, Index T,
                                Index H, const Units& u, F* d_h, const F* held) {
  for (Index b = 0; b < B; ++b)
    if (masked_step(step_mask, b, T, t))
      std::copy(held + b * H + u.u0, held + b * H + u.u0 + u.n, d_h + b * H + u.u0);
}

// Truncated BPTT: the state entering step t is a constant when t = T-k, T-2k, ... and t > 0.
inline bool cut_before(Index t, Index T, Index truncate) {
  return truncate > 0 && t > 0 && (T - t) % truncate == 0;
}

}  // namespace FASTRNN_ARCH
}  // namespace fastrnn
