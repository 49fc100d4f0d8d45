#pragma once
// The SIMD vector the fast kernels compute with: kVecWidth floats in one
// register, written with GCC/Clang vector extensions so that the same source
// compiles to AVX-512 (16 floats), AVX2 (8) or SSE/NEON (4). `a * b + c` on
// these types becomes one fused multiply-add instruction where the CPU has it.
//
// Define NN_NO_SIMD (or use a compiler without vector extensions) to get the
// portable scalar code paths instead.
#include <cstddef>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#if !defined(NN_NO_SIMD) && (defined(__GNUC__) || defined(__clang__))
#define NN_HAVE_SIMD 1
#else
#define NN_HAVE_SIMD 0
#endif

namespace nn::simd {

#if defined(__AVX512F__)
inline constexpr std::size_t kVecWidth = 16;
#elif defined(__AVX__)
inline constexpr std::size_t kVecWidth = 8;
#else
inline constexpr std::size_t kVecWidth = 4;
#endif

#if NN_HAVE_SIMD
typedef float Vec __attribute__((vector_size(kVecWidth * sizeof(float))));

// Loads and stores at any alignment (memcpy compiles to one unaligned move).
inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }
inline Vec broadcast(float s) { return Vec{} + s; }
// The first n < kVecWidth floats at p, the other lanes 0; reads nothing past
// p + n (a masked load where the CPU has one).
inline Vec load_first(const float* p, std::size_t n) {
#if defined(__AVX512F__)
  Vec v;
  const __m512 m = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
  std::memcpy(&v, &m, sizeof v);
  return v;
#else
  Vec v{};
  for (std::size_t i = 0; i < n; ++i) v[i] = p[i];
  return v;
#endif
}
inline Vec max(Vec a, Vec b) { return a > b ? a : b; }
#endif

}  // namespace nn::simd
