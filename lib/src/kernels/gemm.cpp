// nn::gemm: blocked for the caches, packed panels, a SIMD micro-kernel, and
// the threads shared out by the product's shape. The reference it is tested
// against, gemm_naive, is in gemm_naive.cpp.
#include "nn/gemm.hpp"

#include <algorithm>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "gemm_internal.hpp"
#include "nn/parallel.hpp"
#include "nn/simd.hpp"

namespace nn {

using gemm_impl::with_defaults;

namespace gemm_impl {

#if NN_HAVE_SIMD
using simd::Vec;
#endif

// A 64-byte aligned scratch buffer, one per thread, grown on demand.
float* scratch(std::vector<float>& storage, std::size_t n) {
  if (storage.size() < n + 16) storage.resize(n + 16);
  auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
  return storage.data() + ((64 - addr % 64) % 64) / sizeof(float);
}

#if defined(__AVX__)
// dst[c * ld_dst + r] = src[r * ld_src + c] for an 8 x 8 block: the classic
// AVX transpose (unpack pairs, shuffle quads, swap 128-bit halves).
inline void transpose_8x8(const float* src, std::size_t ld_src, float* dst, std::size_t ld_dst) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// Packs op(A)[i0:i0+mc, p0:p0+kc] as MR-row panels: panel r holds, for each p,
// the MR values op(A)(i0 + r*MR + 0..MR-1, p) side by side. Rows past mc are 0.
void pack_a(const GemmArgs& g, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, float* out) {
  for (std::size_t r = 0; r < mc; r += MR) {
    const std::size_t rows = std::min(MR, mc - r);
    if (rows < MR) std::fill(out, out + MR * kc, 0.0f);  // the rows past mc stay 0
    if (g.transpose_a) {
      // op(A)(i, p) = a[p][i]: the MR values of one p are side by side in memory.
      for (std::size_t p = 0; p < kc; ++p) {
        const float* src = g.a + (p0 + p) * g.lda + i0 + r;
        // A fixed count of MR with a condition, not std::copy of `rows`
        // floats: that became a call to memmove per p.
        for (std::size_t i = 0; i < MR; ++i) out[p * MR + i] = i < rows ? src[i] : 0.0f;
      }
    } else {
      // op(A)(i, p) = a[i][p]: a transpose. With 8-row panels (AVX-512), 8 x 8
      // blocks go through registers; the rest, element by element: read each
      // row along p, write it with a stride of MR.
      std::size_t p_done = 0;
#if defined(__AVX__)
      if constexpr (MR == 8)
        if (rows == MR)
          for (; p_done + 8 <= kc; p_done += 8) transpose_8x8(g.a + (i0 + r) * g.lda + p0 + p_done, g.lda, out + p_done * MR, MR);
#endif
      for (std::size_t i = 0; i < rows; ++i) {
        const float* src = g.a + (i0 + r + i) * g.lda + p0;
        for (std::size_t p = p_done; p < kc; ++p) out[p * MR + i] = src[p];
      }
    }
    out += MR * kc;
  }
}


// Packs op(B)[p0:p0+kc, j0:j0+nc] as NR-column panels: panel s holds, for each
// p, the NR values op(B)(p, j0 + s*NR + 0..NR-1). Columns past nc are 0.
void pack_b(const GemmArgs& g, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, float* out) {
  for (std::size_t s = 0; s < nc; s += NR) {
    const std::size_t cols = std::min(NR, nc - s);
    if (!g.transpose_b) {
      // op(B)(p, j) = b[p][j]: NR consecutive values of each row.
      for (std::size_t p = 0; p < kc; ++p) {
        const float* row = g.b + (p0 + p) * g.ldb + j0 + s;
        float* o = out + p * NR;
        // A fixed count of NR with a condition (masked vector loads), not
        // std::copy and std::fill: those were two calls to libc per row.
        for (std::size_t j = 0; j < NR; ++j) o[j] = j < cols ? row[j] : 0.0f;
      }
    } else {
      // op(B)(p, j) = b[j][p]: a transpose. 8 x 8 blocks go through registers
      // (AVX); the rest, element by element.
      if (cols < NR) std::fill(out, out + NR * kc, 0.0f);
      std::size_t j = 0;
#if defined(__AVX__)
      for (; j + 8 <= cols; j += 8) {
        std::size_t p = 0;
        for (; p + 8 <= kc; p += 8) transpose_8x8(g.b + (j0 + s + j) * g.ldb + p0 + p, g.ldb, out + p * NR + j, NR);
        for (; p < kc; ++p)
          for (std::size_t jj = j; jj < j + 8; ++jj) out[p * NR + jj] = g.b[(j0 + s + jj) * g.ldb + p0 + p];
      }
#endif
      for (; j < cols; ++j) {
        const float* src = g.b + (j0 + s + j) * g.ldb + p0;
        for (std::size_t p = 0; p < kc; ++p) out[p * NR + j] = src[p];
      }
    }
    out += NR * kc;
  }
}

// Writes an MR x NR tile (row-major, `tile`) into C: only the first mr rows and
// nr columns, C = alpha * tile + beta * C.
void store_tile(const float* tile, std::size_t mr, std::size_t nr, float alpha, float beta, float* c,
                std::size_t ldc) {
  for (std::size_t i = 0; i < mr; ++i)
    for (std::size_t j = 0; j < nr; ++j) {
      // The same operations as a full tile's vector stores: which tiles are
      // full depends on the vector width, the result must not.
      float& dst = c[i * ldc + j];
      float out = alpha * tile[i * NR + j];
      if (beta != 0.0f) out += beta * dst;
      dst = out;
    }
}

// [snippet gemm-micro-kernel]
// C[0:mr, 0:nr] = alpha * (A panel) * (B panel) + beta * C, for the first R
// rows of an MR x kc panel of A and a kc x NR panel of B. Element (i, p) of
// the A panel is a[p * a_stride + i] and element (p, j) of the B panel is
// b[p * b_stride + j]: a panel packed as above (a_stride = MR, b_stride = NR),
// or the matrix itself where its memory already has that shape. The R x NR
// sums live in registers. R = MR but for the last panel of a matrix whose
// rows do not fill it (a batch of 1: R = 1), which then costs R/MR as much.
template <std::size_t R>
void micro_kernel_rows(std::size_t kc, const float* a, std::size_t a_stride, const float* b, std::size_t b_stride,
                       float alpha, float beta, float* c, std::size_t ldc, std::size_t mr, std::size_t nr) {
#if NN_HAVE_SIMD
  Vec acc[R][2];                             // R rows x (2 vectors = NR columns)
#pragma GCC unroll 16
  for (std::size_t i = 0; i < R; ++i) acc[i][0] = acc[i][1] = Vec{};
  if (nr > kV) {
    for (std::size_t p = 0; p < kc; ++p) {
      const Vec b0 = simd::load(b + p * b_stride), b1 = simd::load(b + p * b_stride + kV);
      for (std::size_t i = 0; i < R; ++i) {  // unrolled by the compiler
        const float ai = a[p * a_stride + i];  // broadcast one value of A ...
        acc[i][0] += ai * b0;                // ... times a row of B: 2 FMAs
        acc[i][1] += ai * b1;
      }
    }
  } else {                                   // a narrow edge panel: its second
    for (std::size_t p = 0; p < kc; ++p) {   // half is padding, so skip it
      const Vec b0 = simd::load(b + p * b_stride);
      for (std::size_t i = 0; i < R; ++i) acc[i][0] += a[p * a_stride + i] * b0;
    }
  }
  if (mr == MR && nr == NR) {                // a full tile: vector stores
#pragma GCC unroll 16
    for (std::size_t i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (std::size_t v = 0; v < 2; ++v) {
        float* dst = c + i * ldc + v * kV;
        Vec out = alpha * acc[i][v];
        if (beta != 0.0f) out += beta * simd::load(dst);
        simd::store(dst, out);
      }
    return;
  }
  alignas(64) float tile[R * NR];            // an edge tile: through memory
#pragma GCC unroll 16
  for (std::size_t i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (std::size_t v = 0; v < 2; ++v) simd::store(tile + i * NR + v * kV, acc[i][v]);
#else
  float tile[R * NR] = {};                   // the portable scalar path
  for (std::size_t p = 0; p < kc; ++p)
    for (std::size_t i = 0; i < R; ++i)
      for (std::size_t j = 0; j < NR; ++j) tile[i * NR + j] += a[p * a_stride + i] * b[p * b_stride + j];
#endif
  store_tile(tile, mr, nr, alpha, beta, c, ldc);
}
// [end snippet gemm-micro-kernel]

template <std::size_t... R>
void micro_kernel_dispatch(std::index_sequence<R...>, std::size_t kc, const float* a, std::size_t a_stride,
                           const float* b, std::size_t b_stride, float alpha, float beta, float* c, std::size_t ldc,
                           std::size_t mr, std::size_t nr) {
  // Runs micro_kernel_rows<mr> (mr = 1 .. MR): the one R that equals mr.
  ((mr == R + 1 ? micro_kernel_rows<R + 1>(kc, a, a_stride, b, b_stride, alpha, beta, c, ldc, mr, nr) : void()), ...);
}

void micro_kernel(std::size_t kc, const float* a, std::size_t a_stride, const float* b, std::size_t b_stride,
                  float alpha, float beta, float* c, std::size_t ldc, std::size_t mr, std::size_t nr) {
  if (mr == MR) return micro_kernel_rows<MR>(kc, a, a_stride, b, b_stride, alpha, beta, c, ldc, mr, nr);
  micro_kernel_dispatch(std::make_index_sequence<MR - 1>(), kc, a, a_stride, b, b_stride, alpha, beta, c, ldc, mr,
                        nr);
}

// A tile of A B whose A rows are read where a row-major matrix keeps them:
// element (i, p) at a[i * lda + p], for i < R. Each of the R rows is read
// along p, so no panel of A is packed (as micro_kernel_rows reads a packed or
// transposed A: there element (i, p) is at a[p * a_stride + i]). The sums
// are micro_kernel_rows's, product for product in the same order (a b = b a
// exactly), written to `tile` (R rows of NR floats) for the caller to store.
template <std::size_t R>
void micro_kernel_a_rows(std::size_t kc, const float* a, std::size_t lda, const float* b, std::size_t b_stride,
                         std::size_t nr, float* tile) {
#if NN_HAVE_SIMD
  Vec acc[R][2];
#pragma GCC unroll 16
  for (std::size_t i = 0; i < R; ++i) acc[i][0] = acc[i][1] = Vec{};
  if (nr > kV) {
    for (std::size_t p = 0; p < kc; ++p) {
      const Vec b0 = simd::load(b + p * b_stride), b1 = simd::load(b + p * b_stride + kV);
      for (std::size_t i = 0; i < R; ++i) {
        const float ai = a[i * lda + p];
        acc[i][0] += ai * b0;
        acc[i][1] += ai * b1;
      }
    }
  } else {
    for (std::size_t p = 0; p < kc; ++p) {
      const Vec b0 = simd::load(b + p * b_stride);
      for (std::size_t i = 0; i < R; ++i) acc[i][0] += a[i * lda + p] * b0;
    }
  }
#pragma GCC unroll 16
  for (std::size_t i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (std::size_t v = 0; v < 2; ++v) simd::store(tile + i * NR + v * kV, acc[i][v]);
#else
  for (std::size_t i = 0; i < R * NR; ++i) tile[i] = 0.0f;
  for (std::size_t p = 0; p < kc; ++p)
    for (std::size_t i = 0; i < R; ++i)
      for (std::size_t j = 0; j < NR; ++j) tile[i * NR + j] += a[i * lda + p] * b[p * b_stride + j];
#endif
}

template <std::size_t... R>
void micro_kernel_a_rows_dispatch(std::index_sequence<R...>, std::size_t kc, const float* a, std::size_t lda,
                                  std::size_t mr, const float* b, std::size_t b_stride, std::size_t nr, float* tile) {
  ((mr == R + 1 ? micro_kernel_a_rows<R + 1>(kc, a, lda, b, b_stride, nr, tile) : void()), ...);
}

void micro_kernel_rows_in_place(std::size_t kc, const float* a, std::size_t lda, std::size_t mr, const float* b,
                                std::size_t b_stride, std::size_t nr, float* tile) {
  micro_kernel_a_rows_dispatch(std::make_index_sequence<MR>(), kc, a, lda, mr, b, b_stride, nr, tile);
}

// C[j][i] = alpha * tile[i][j] + beta * C[j][i] for i < mr, j < nr, with
// store_tile's arithmetic. With AVX, 8 x 8 blocks of the tile go through
// registers (transpose_8x8: the tile has kTileRows rows, those past mr
// unused) and each row of C gets one masked store of its mr values.
void store_tile_transposed(const float* tile, std::size_t mr, std::size_t nr, float alpha, float beta, float* c,
                           std::size_t ldc) {
#if defined(__AVX__)
  static_assert(MR <= 8 && kTileRows == 8);
  typedef float V8 __attribute__((vector_size(8 * sizeof(float))));
  alignas(32) float t[8 * 8];
  alignas(32) int lanes[8];
  for (int i = 0; i < 8; ++i) lanes[i] = static_cast<std::size_t>(i) < mr ? -1 : 0;
  const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
  for (std::size_t j0 = 0; j0 < nr; j0 += 8) {
    transpose_8x8(tile + j0, NR, t, 8);  // t[j][i] = tile[i][j0 + j]
    for (std::size_t j = 0; j < std::min<std::size_t>(8, nr - j0); ++j) {
      float* dst = c + (j0 + j) * ldc;
      V8 tj;
      std::memcpy(&tj, t + j * 8, sizeof tj);
      V8 out = alpha * tj;
      if (beta != 0.0f) {
        const __m256 d = _mm256_maskload_ps(dst, mask);
        V8 dv;
        std::memcpy(&dv, &d, sizeof dv);
        out += beta * dv;
      }
      __m256 o;
      std::memcpy(&o, &out, sizeof o);
      _mm256_maskstore_ps(dst, mask, o);
    }
  }
#else
  // Column j of the tile (mr values, NR apart) is row j of C (mr values side by side).
  for (std::size_t j = 0; j < nr; ++j) store_tile(tile + j, mr, 1, alpha, beta, c + j * ldc, 1);
#endif
}

}  // namespace gemm_impl

namespace {

using namespace gemm_impl;

// The blocked product, over all of C. With parallel_m the MC-row blocks of C
// are shared out among the threads.
void gemm_transposed(const GemmArgs& g);
#if NN_HAVE_SIMD
void gemm_one_row(const GemmArgs& g);
#endif

void gemm_blocked(const GemmArgs& g, bool parallel_m) {
#if NN_HAVE_SIMD
  if (g.m == 1 && !g.transpose_b) return gemm_one_row(g);
#endif
  // A short, wide product (a batch of up to 32 rows: one NR panel with
  // AVX-512, two with AVX2) as its transpose, below. (Up to NR rows only,
  // AVX2's y = x W at batch 32 ran at 75 GFLOP/s on one core, 86 this way.)
  // Wider than short, so that the transpose is not short and wide again.
  constexpr std::size_t kShort = std::max<std::size_t>(NR, 32);
  if (!parallel_m && g.m >= MR && g.m <= kShort && g.n > kShort && g.n >= 4 * MR && !g.transpose_b)
    return gemm_transposed(g);
  thread_local std::vector<float> b_storage;
  const std::size_t m_blocks = (g.m + MC - 1) / MC;
  // Where op(A) or op(B) already lies in memory as the micro-kernel reads it
  // (B not transposed: NR consecutive floats of each row; A transposed: MR
  // consecutive floats for each p), its full panels can be read in place and
  // only an edge panel packed, with its zero padding. That pays when a panel
  // is used only a few times, as in the short, wide products of a dense layer;
  // a panel reused across many blocks is worth packing (the 1024 x 1024 case
  // runs faster packed: its rows are a power of two apart and would collide
  // in the cache).
  const bool b_in_place = !g.transpose_b && g.m <= 2 * MC;
  const bool a_in_place = g.transpose_a && g.n <= 2 * MC;
  for (std::size_t jc = 0; jc < g.n; jc += NC) {
    const std::size_t nc = std::min(NC, g.n - jc);
    const std::size_t nc_full = b_in_place ? nc / NR * NR : 0;  // columns read in place
    const std::size_t nc_packed = (nc - nc_full + NR - 1) / NR * NR;
    for (std::size_t pc = 0; pc < g.k; pc += KC) {
      const std::size_t kc = std::min(KC, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;  // later k slices add to C
      float* bp = scratch(b_storage, kc * nc_packed);
      if (nc_full < nc) pack_b(g, pc, kc, jc + nc_full, nc - nc_full, bp);
      // The MC-row blocks of C are independent: each thread takes a range.
      auto blocks = [&](std::size_t lo, std::size_t hi) {
        thread_local std::vector<float> a_storage;
        float* ap = scratch(a_storage, MC * kc);
        for (std::size_t blk = lo; blk < hi; ++blk) {
          const std::size_t ic = blk * MC, mc = std::min(MC, g.m - ic);
          const std::size_t mc_full = a_in_place ? mc / MR * MR : 0;  // rows read in place
          if (mc_full < mc) pack_a(g, ic + mc_full, mc - mc_full, pc, kc, ap);
          for (std::size_t jr = 0; jr < nc; jr += NR) {
            const bool b_direct = jr < nc_full;
            const float* b = b_direct ? g.b + (pc * g.ldb + jc + jr) : bp + (jr - nc_full) * kc;
            const std::size_t b_stride = b_direct ? g.ldb : NR;
            for (std::size_t ir = 0; ir < mc; ir += MR) {
              const bool a_direct = ir < mc_full;
              const float* a = a_direct ? g.a + (pc * g.lda + ic + ir) : ap + (ir - mc_full) * kc;
              micro_kernel(kc, a, a_direct ? g.lda : MR, b, b_stride, g.alpha, beta,
                           g.c + (ic + ir) * g.ldc + jc + jr, g.ldc, std::min(MR, mc - ir), std::min(NR, nc - jr));
            }
          }
        }
      };
      if (parallel_m)
        parallel_for(0, m_blocks, blocks);
      else
        blocks(0, m_blocks);
    }
  }
}

// C = alpha op(A) op(B) + beta C computed as its transpose, C^T = op(B)^T op(A)^T,
// into a scratch C^T that is then transposed into C. For a product with few
// rows and many columns (y = x W at batch 32: 32 x 100, k = 5408) this pays:
// W becomes the A side, read in place (MR values of each of its rows side by
// side), so that only x is packed, and the whole batch of 32 is one B panel
// (two with AVX2) that stays in L1 while every row panel of W passes by. Each element of C
// gets the same products summed in the same order (a b = b a exactly), so the
// result is gemm_blocked's bit for bit.
void gemm_transposed(const GemmArgs& g) {
  thread_local std::vector<float> ct_storage;
  float* ct = scratch(ct_storage, g.n * g.m);  // C^T: (n, m)
  if (g.beta != 0.0f)
    for (std::size_t i = 0; i < g.m; ++i)
      for (std::size_t j = 0; j < g.n; ++j) ct[j * g.m + i] = g.c[i * g.ldc + j];
  gemm_blocked({.m = g.n, .n = g.m, .k = g.k, .a = g.b, .lda = g.ldb, .transpose_a = true, .b = g.a, .ldb = g.lda,
                .transpose_b = !g.transpose_a, .c = ct, .ldc = g.m, .alpha = g.alpha, .beta = g.beta},
               false);
  for (std::size_t i = 0; i < g.m; ++i)
    for (std::size_t j = 0; j < g.n; ++j) g.c[i * g.ldc + j] = ct[j * g.m + i];
}

#if NN_HAVE_SIMD
// One row of C, c[0:n] = alpha * a b + beta * c, for up to V vectors of
// columns at once, reading B in place (row p at b + p * ldb) and a's value p
// at a[p * a_stride]: V independent sums, where the MR x NR micro-kernel with
// one row has only two, each FMA waiting for the one before.
template <std::size_t V>
void row_kernel(std::size_t kc, const float* a, std::size_t a_stride, const float* b, std::size_t ldb, float alpha,
                float beta, float* c, std::size_t n) {
  Vec acc[V] = {};
  const std::size_t tail = n - (V - 1) * kV;  // 1 .. kV columns in the last vector
  for (std::size_t p = 0; p < kc; ++p) {
    const float ap = a[p * a_stride];
    const float* row = b + p * ldb;
    for (std::size_t v = 0; v + 1 < V; ++v) acc[v] += ap * simd::load(row + v * kV);
    acc[V - 1] += ap * (tail == kV ? simd::load(row + (V - 1) * kV) : simd::load_first(row + (V - 1) * kV, tail));
  }
  // Stored as the micro-kernel stores a tile of fewer than MR rows.
  alignas(64) float tile[V * kV];
  for (std::size_t v = 0; v < V; ++v) simd::store(tile + v * kV, acc[v]);
  store_tile(tile, 1, n, alpha, beta, c, 0);
}

template <std::size_t... V>
void row_kernel_dispatch(std::index_sequence<V...>, std::size_t vectors, std::size_t kc, const float* a,
                         std::size_t a_stride, const float* b, std::size_t ldb, float alpha, float beta, float* c,
                         std::size_t n) {
  ((vectors == V + 1 ? row_kernel<V + 1>(kc, a, a_stride, b, ldb, alpha, beta, c, n) : void()), ...);
}

// C = alpha op(A) B + beta C for a single row of C (a batch of one), B not
// transposed: the same sums as gemm_blocked, in the same KC slices and order.
void gemm_one_row(const GemmArgs& g) {
  // Up to 128 columns at once with AVX-512 (8 vectors), 104 with AVX2 or
  // narrower vectors (13 of their 16 registers hold sums), so that Dense(100)'s
  // kernel is read in one pass, row after row. (With 64 columns at a time,
  // AVX2 read each slice of W twice and predicted one image at half the speed.)
  constexpr std::size_t kMaxVectors = std::min<std::size_t>(13, 128 / kV);
  const std::size_t a_stride = g.transpose_a ? g.lda : 1;
  for (std::size_t pc = 0; pc < g.k; pc += KC) {
    const std::size_t kc = std::min(KC, g.k - pc);
    const float beta = pc == 0 ? g.beta : 1.0f;
    for (std::size_t j = 0; j < g.n; j += kMaxVectors * kV) {
      const std::size_t n = std::min(kMaxVectors * kV, g.n - j);
      row_kernel_dispatch(std::make_index_sequence<kMaxVectors>(), (n + kV - 1) / kV, kc, g.a + pc * a_stride,
                          a_stride, g.b + pc * g.ldb + j, g.ldb, g.alpha, beta, g.c + j, n);
    }
  }
}
#endif

// op(A) restricted to the columns [p0, p1) and op(B) to the rows [p0, p1):
// the part of the sum over k that one thread computes in a split-k product.
GemmArgs k_slice(GemmArgs g, std::size_t p0, std::size_t p1) {
  g.a += g.transpose_a ? p0 * g.lda : p0;
  g.b += g.transpose_b ? p0 : p0 * g.ldb;
  g.k = p1 - p0;
  return g;
}

// op(B) and C restricted to the columns [j0, j1).
GemmArgs n_slice(GemmArgs g, std::size_t j0, std::size_t j1) {
  g.b += g.transpose_b ? j0 * g.ldb : j0;
  g.c += j0;
  g.n = j1 - j0;
  return g;
}

}  // namespace

// [snippet gemm-threads]
// How the threads share a product depends on its shape. Dense layers at
// batch 32 are short and wide: C has too few rows for every thread to get a
// block of MC rows, so the threads split the columns of C instead (dx = dy W^T,
// 32 x 5408), or the sum over k (y = x W: 32 x 100, k = 5408), each thread
// adding its partial product of C in a fixed order.
//
// Splitting the sum changes the arithmetic, so the choice is made from the
// shape and the thread count alone, never from the vector width's block
// sizes: 128 rows and 32 columns per thread (AVX-512's MC and NR; AVX2's
// smaller blocks give each thread at least as many), so that every CPU splits
// the same sums.
gemm_impl::Sharing gemm_impl::sharing(const GemmArgs& g, std::size_t threads) {
  constexpr std::size_t kRowsPerThread = 128, kColumnsPerThread = 32;
  static_assert(MC <= kRowsPerThread && NR <= kColumnsPerThread);
  const double work = static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
  if (threads == 1 || work < 1e6) return Sharing::none;                                       // too small to share
  if ((g.m + kRowsPerThread - 1) / kRowsPerThread >= threads) return Sharing::rows;           // enough row blocks
  if (g.n >= g.k && g.n >= threads * kColumnsPerThread) return Sharing::columns;              // dx = dy W^T
  return Sharing::sum;                                                                        // y = x W
}

void gemm(const GemmArgs& args) {
  const GemmArgs g = with_defaults(args);
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {  // C = beta * C
    for (std::size_t i = 0; i < g.m; ++i)
      for (std::size_t j = 0; j < g.n; ++j) {
        float& c = g.c[i * g.ldc + j];
        c = g.beta == 0.0f ? 0.0f : g.beta * c;
      }
    return;
  }
  const std::size_t threads = g.threaded ? thread_count() : 1;
  const Sharing share = sharing(g, threads);
  if (share == Sharing::none) return gemm_blocked(g, false);
  if (share == Sharing::rows) return gemm_blocked(g, true);
  if (share == Sharing::columns) {
    // Split the columns of C, in whole NR-wide panels.
    const std::size_t panels = (g.n + NR - 1) / NR;
    parallel_for(0, threads, [&](std::size_t lo, std::size_t hi) {
      for (std::size_t t = lo; t < hi; ++t) {
        const std::size_t j0 = std::min(g.n, panels * t / threads * NR), j1 = std::min(g.n, panels * (t + 1) / threads * NR);
        if (j1 > j0) gemm_blocked(n_slice(g, j0, j1), false);
      }
    });
    return;
  }
  // Split the sum over k: part 0 writes C itself (with beta), the others
  // their partial products, added to C afterwards in a fixed order. Never
  // more parts than terms in the sum: a part with an empty slice of k would
  // write nothing, and C would keep stale values (NaN with beta = 0).
  const std::size_t parts = std::min(threads, g.k);
  thread_local std::vector<float> partial_storage;
  const std::size_t mn = g.m * g.n;
  partial_storage.resize((parts - 1) * mn);
  float* partial = partial_storage.data();
  parallel_for(0, parts, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t t = lo; t < hi; ++t) {
      const std::size_t p0 = g.k * t / parts, p1 = g.k * (t + 1) / parts;  // p1 > p0 since parts <= k
      GemmArgs part = k_slice(g, p0, p1);
      if (t > 0) part.c = partial + (t - 1) * mn, part.ldc = g.n, part.beta = 0.0f;
      gemm_blocked(part, false);
    }
  });
  for (std::size_t t = 1; t < parts; ++t)
    for (std::size_t i = 0; i < g.m; ++i)
      for (std::size_t j = 0; j < g.n; ++j) g.c[i * g.ldc + j] += partial[(t - 1) * mn + i * g.n + j];
}
// [end snippet gemm-threads]

}  // namespace nn
