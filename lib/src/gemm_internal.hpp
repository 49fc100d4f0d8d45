#pragma once
// Private to lib/src: what gemm_naive.cpp and gemm.cpp share.
#include "nn/gemm.hpp"

namespace nn::gemm_impl {

// Fills in the packed leading dimensions.
inline GemmArgs with_defaults(GemmArgs g) {
  if (g.lda == 0) g.lda = g.transpose_a ? g.m : g.k;
  if (g.ldb == 0) g.ldb = g.transpose_b ? g.k : g.n;
  if (g.ldc == 0) g.ldc = g.n;
  return g;
}

}  // namespace nn::gemm_impl
