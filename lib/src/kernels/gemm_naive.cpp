// The reference GEMM: three nested loops, straight from the definition.
// nn::gemm (gemm.cpp) is tested against it.
#include <cstddef>

#include "gemm_internal.hpp"
#include "nn/gemm.hpp"

namespace nn {

using gemm_impl::with_defaults;

namespace {

// op(A)(i, p) and op(B)(p, j).
inline float at_a(const GemmArgs& g, std::size_t i, std::size_t p) {
  return g.transpose_a ? g.a[p * g.lda + i] : g.a[i * g.lda + p];
}
inline float at_b(const GemmArgs& g, std::size_t p, std::size_t j) {
  return g.transpose_b ? g.b[j * g.ldb + p] : g.b[p * g.ldb + j];
}

}  // namespace

// [snippet gemm-naive]
void gemm_naive(const GemmArgs& args) {
  const GemmArgs g = with_defaults(args);
  for (std::size_t i = 0; i < g.m; ++i)       // C: (m, n)
    for (std::size_t j = 0; j < g.n; ++j) {
      float sum = 0.0f;
      for (std::size_t p = 0; p < g.k; ++p) sum += at_a(g, i, p) * at_b(g, p, j);
      float& c = g.c[i * g.ldc + j];
      c = g.alpha * sum + (g.beta == 0.0f ? 0.0f : g.beta * c);
    }
}
// [end snippet gemm-naive]

}  // namespace nn
