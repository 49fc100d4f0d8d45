#pragma once
// The project's one matrix multiply (GEMM), row-major, as in BLAS:
//
//   C = alpha * op(A) * op(B) + beta * C
//
//   op(A): (m, k), A itself (m, k) or, with transpose_a, (k, m)
//   op(B): (k, n), B itself (k, n) or, with transpose_b, (n, k)
//   C:     (m, n)
//
// Chapter 04 uses it for im2col convolution and its backward pass (both
// transposes appear there), chapter 07 for the dense layers.
//
//   nn::gemm({.m = M, .n = N, .k = K, .a = a, .b = b, .c = c});
//
// Leading dimensions (the distance between rows in memory) default to the
// packed ones: the stored row length of each matrix.
#include <cstddef>

namespace nn {

struct GemmArgs {
  std::size_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  std::size_t lda = 0;  // 0: packed (k, or m with transpose_a)
  bool transpose_a = false;
  const float* b = nullptr;
  std::size_t ldb = 0;  // 0: packed (n, or k with transpose_b)
  bool transpose_b = false;
  float* c = nullptr;
  std::size_t ldc = 0;  // 0: packed (n)
  float alpha = 1.0f;
  float beta = 0.0f;     // 0 means C is only written, never read (NaN in C is fine)
  bool threaded = false;  // split the rows of C across nn::parallel_for
};

// Three nested loops, straight from the definition: the reference.
void gemm_naive(const GemmArgs& args);

// Blocked for the caches, with packed panels and a SIMD micro-kernel.
void gemm(const GemmArgs& args);

}  // namespace nn
