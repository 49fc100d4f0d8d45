#pragma once
// Private to lib/src: what gemm_naive.cpp and gemm.cpp share.
#include <cstddef>
#include <vector>

#include "nn/gemm.hpp"
#include "nn/simd.hpp"

namespace nn::gemm_impl {

// Fills in the packed leading dimensions.
inline GemmArgs with_defaults(GemmArgs g) {
  if (g.lda == 0) g.lda = g.transpose_a ? g.m : g.k;
  if (g.ldb == 0) g.ldb = g.transpose_b ? g.k : g.n;
  if (g.ldc == 0) g.ldc = g.n;
  return g;
}

// The blocking of Goto's algorithm (as in BLIS): C is cut into MC x NC
// blocks, the sum over k into KC slices. A KC x NC slice of B is packed into
// NR-column panels (it stays in L3), an MC x KC block of A into MR-row panels
// (it stays in L2), and the micro-kernel multiplies one A panel by one B
// panel into an MR x NR tile of C held in registers (the B panel stays in L1).
#if NN_HAVE_SIMD
constexpr std::size_t kV = simd::kVecWidth;       // floats in one vector
constexpr std::size_t NR = 2 * kV;                // 32 columns with AVX-512
constexpr std::size_t MR = kV == 16 ? 8 : 6;      // 8 x 2 = 16 accumulator registers
#else
constexpr std::size_t NR = 8;
constexpr std::size_t MR = 4;
#endif
constexpr std::size_t KC = 256;
constexpr std::size_t MC = MR * 16;
constexpr std::size_t NC = NR * 32;

// How gemm shares a product among `threads` threads: not at all, by blocks
// of rows of C, by columns of C, or by splitting the sum over k. Only the
// last changes the arithmetic (each thread's partial sum is added to C at
// the end), so results depend on the thread count only where it is chosen.
enum class Sharing { none, rows, columns, sum };
Sharing sharing(const GemmArgs& g, std::size_t threads);

// The pieces of gemm (gemm.cpp) that a fused operation built from the same
// arithmetic uses: dense_backward_update (dense.cpp) computes the products of
// a Dense layer's backward pass with these, so its results are gemm's bit for
// bit.

// A 64-byte aligned scratch buffer in `storage`, grown on demand.
float* scratch(std::vector<float>& storage, std::size_t n);
// Packs op(A)[i0:i0+mc, p0:p0+kc] as MR-row panels (rows past mc are 0).
void pack_a(const GemmArgs& g, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, float* out);
// Packs op(B)[p0:p0+kc, j0:j0+nc] as NR-column panels (columns past nc are 0).
void pack_b(const GemmArgs& g, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, float* out);
// C[0:mr, 0:nr] = alpha * (A panel) * (B panel) + beta * C for one MR x NR tile.
void micro_kernel(std::size_t kc, const float* a, std::size_t a_stride, const float* b, std::size_t b_stride,
                  float alpha, float beta, float* c, std::size_t ldc, std::size_t mr, std::size_t nr);
// The same sums for an A whose mr <= MR rows are read in place from a
// row-major matrix (element (i, p) at a[i * lda + p]), into `tile`: kTileRows
// rows of NR floats, of which the first mr are written.
constexpr std::size_t kTileRows = MR > 8 ? MR : 8;
void micro_kernel_rows_in_place(std::size_t kc, const float* a, std::size_t lda, std::size_t mr, const float* b,
                                std::size_t b_stride, std::size_t nr, float* tile);
// C[j][i] = alpha * tile[i][j] + beta * C[j][i] for i < mr, j < nr: a tile of
// C^T (as micro_kernel_rows_in_place leaves it) stored into C.
void store_tile_transposed(const float* tile, std::size_t mr, std::size_t nr, float alpha, float beta, float* c,
                           std::size_t ldc);

}  // namespace nn::gemm_impl
