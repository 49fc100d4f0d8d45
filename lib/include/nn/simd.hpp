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
#include <string_view>
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

// The instruction set these kernels were compiled for: "AVX-512+FMA",
// "AVX2+FMA", "AVX", "SSE4.2", "SSE2", "NEON", "WebAssembly SIMD" or "scalar"
// (the build's flags decide, not the CPU the program runs on).
std::string_view instruction_set();

// A kernel's results must not depend on the vector width, so that every CPU
// gets the same bits: where a sum is split across the lanes of a vector and
// the lanes are added at the end (a dot product over channels), it keeps
// kLanes = 16 partial sums on every CPU, as one AVX-512 vector, two AVX2
// vectors or four SSE or NEON vectors, and adds them in lane order; and the
// kernels that need whole vectors of channels require a multiple of kLanes,
// so every CPU picks the same kernel for a given layer.
inline constexpr std::size_t kLanes = 16;
static_assert(kLanes % kVecWidth == 0);

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

// kLanes partial sums: kLanes / kVecWidth vectors.
inline constexpr std::size_t kLaneVecs = kLanes / kVecWidth;
using Lanes = Vec[kLaneVecs];
// acc += a[0:kLanes] * b[0:kLanes], lane by lane.
inline void multiply_add_lanes(Vec (&acc)[kLaneVecs], const float* a, const float* b) {
  for (std::size_t u = 0; u < kLaneVecs; ++u) acc[u] += load(a + u * kVecWidth) * load(b + u * kVecWidth);
}
// The kLanes partial sums added in lane order, 0 to 15, whatever the width.
inline float sum_lanes(const Vec (&acc)[kLaneVecs]) {
  float sum = 0.0f;
  for (std::size_t u = 0; u < kLaneVecs; ++u)
    for (std::size_t v = 0; v < kVecWidth; ++v) sum += acc[u][v];
  return sum;
}
#endif

}  // namespace nn::simd
