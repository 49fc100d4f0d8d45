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
inline Vec max(Vec a, Vec b) { return a > b ? a : b; }
#endif

}  // namespace nn::simd
