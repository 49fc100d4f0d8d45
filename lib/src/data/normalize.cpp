#include "nn/normalize.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "nn/compiler.hpp"
#include "nn/error.hpp"

namespace nn {

namespace {
void check_sizes(std::span<const std::uint8_t> in, std::span<float> out) {
  if (in.size() != out.size())
    throw Error(fmt::format("normalize: {} pixels in but room for {} out", in.size(), out.size()));
}
}  // namespace

// NN_SCALAR: the compiler would vectorize this loop by itself at -O3; this
// keeps it the scalar reference the chapter measures against.
NN_SCALAR void normalize_naive(std::span<const std::uint8_t> in, std::span<float> out) {
  check_sizes(in, out);
  // [snippet normalize-naive]
  NN_SCALAR_LOOP
  for (std::size_t i = 0; i < in.size(); ++i)  // in, out: (n,)
    out[i] = static_cast<float>(in[i]) / 255.0f;
  // [end snippet normalize-naive]
}

void normalize_vectorized(std::span<const std::uint8_t> in, std::span<float> out) {
  check_sizes(in, out);
  // [snippet normalize-vectorized]
  // GCC vector types: 16 bytes in, 16 floats out (one AVX-512 register, or
  // two AVX2 ones; the compiler picks the instructions for this machine).
  typedef std::uint8_t u8x16 __attribute__((vector_size(16)));
  typedef float f32x16 __attribute__((vector_size(64)));
  const std::size_t n = in.size(), whole = n / 16 * 16;
  for (std::size_t i = 0; i < whole; i += 16) {
    u8x16 bytes;
    std::memcpy(&bytes, &in[i], sizeof bytes);  // an unaligned 16-byte load
    f32x16 pixels = __builtin_convertvector(bytes, f32x16) / 255.0f;
    std::memcpy(&out[i], &pixels, sizeof pixels);
  }
  for (std::size_t i = whole; i < n; ++i) out[i] = static_cast<float>(in[i]) / 255.0f;  // the tail
  // [end snippet normalize-vectorized]
}

// GCC 12's AVX-512 headers trip its own -Wmaybe-uninitialized (a known false
// positive on _mm512_undefined_*); silence it for this function only. Clang
// has no such warning (and warns about the unknown name): GCC only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void normalize_streaming(std::span<const std::uint8_t> in, std::span<float> out) {
  check_sizes(in, out);
#if defined(__AVX512F__)
  // [snippet normalize-streaming]
  // Scalar steps until `out` reaches a 64-byte boundary, as streaming stores need.
  std::size_t i = 0;
  for (; i < in.size() && reinterpret_cast<std::uintptr_t>(&out[i]) % 64 != 0; ++i)
    out[i] = static_cast<float>(in[i]) / 255.0f;
  const __m512 divisor = _mm512_set1_ps(255.0f);
  for (; i + 16 <= in.size(); i += 16) {
    __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&in[i]));   // 16 x uint8
    __m512 pixels = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));              // 16 x float
    _mm512_stream_ps(&out[i], _mm512_div_ps(pixels, divisor));  // bypasses the cache
  }
  _mm_sfence();  // streaming stores are weakly ordered: finish them before returning
  for (; i < in.size(); ++i) out[i] = static_cast<float>(in[i]) / 255.0f;
  // [end snippet normalize-streaming]
#else
  normalize_vectorized(in, out);  // no AVX-512 on this machine: the portable version
#endif
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

Tensor images_to_tensor(const IdxArray& images) {
  if (images.shape.size() != 3)
    throw Error(fmt::format("images_to_tensor: expected (N, H, W) images, got rank {}", images.shape.size()));
  // [snippet images-to-tensor]
  Tensor x({images.shape[0], images.shape[1], images.shape[2], 1});  // x: (N, H, W, 1), NHWC
  normalize_streaming(images.data, x.span());                        // 0..255 -> 0..1
  // [end snippet images-to-tensor]
  return x;
}

namespace {
template <typename T>
PixelStats stats(std::span<const T> v) {
  if (v.empty()) return {};
  PixelStats s{static_cast<double>(v[0]), static_cast<double>(v[0]), 0, 0};
  double sum = 0;
  for (T p : v) {
    s.min = std::min<double>(s.min, p);
    s.max = std::max<double>(s.max, p);
    sum += p;
  }
  s.mean = sum / static_cast<double>(v.size());
  double sq = 0;  // a second pass: no cancellation from sum(x^2) - n*mean^2
  for (T p : v) sq += (p - s.mean) * (p - s.mean);
  s.stddev = std::sqrt(sq / static_cast<double>(v.size()));
  return s;
}
}  // namespace

PixelStats pixel_stats(std::span<const std::uint8_t> pixels) { return stats(pixels); }
PixelStats pixel_stats(std::span<const float> pixels) { return stats(pixels); }

std::vector<std::size_t> histogram(std::span<const float> values, std::size_t bins, float lo, float hi) {
  // A finite hi - lo keeps (v - lo) / (hi - lo) in [0, 1] for every v counted,
  // so the cast to a bin index below is always in range.
  if (bins == 0 || !(hi > lo) || !std::isfinite(hi - lo))
    throw Error(fmt::format("histogram: need bins > 0 and a finite range lo < hi (bins {}, range {}..{})", bins, lo, hi));
  std::vector<std::size_t> counts(bins);
  for (float v : values) {
    if (!(v >= lo && v <= hi)) continue;  // outside the range, or NaN
    auto b = static_cast<std::size_t>((v - lo) / (hi - lo) * static_cast<float>(bins));
    ++counts[std::min(b, bins - 1)];
  }
  return counts;
}

Tensor mean_image_per_class(const Tensor& x, std::span<const std::uint8_t> labels, std::size_t num_classes) {
  if (x.rank() != 4 || labels.size() != x.dim(0))
    throw Error(fmt::format("mean_image_per_class: x {} and {} labels do not match", x.shape().str(),
                            labels.size()));
  const std::size_t image = x.dim(1) * x.dim(2) * x.dim(3);
  std::vector<double> sums(num_classes * image, 0.0);
  std::vector<std::size_t> counts(num_classes, 0);
  for (std::size_t n = 0; n < labels.size(); ++n) {
    if (labels[n] >= num_classes)
      throw Error(fmt::format("label {} at index {} is outside [0, {})", labels[n], n, num_classes));
    ++counts[labels[n]];
    const float* src = x.data() + n * image;
    double* dst = &sums[labels[n] * image];
    for (std::size_t i = 0; i < image; ++i) dst[i] += src[i];
  }
  Tensor mean({num_classes, x.dim(1), x.dim(2), x.dim(3)});  // (classes, H, W, C)
  for (std::size_t c = 0; c < num_classes; ++c)
    for (std::size_t i = 0; i < image; ++i)
      mean[c * image + i] = counts[c] ? static_cast<float>(sums[c * image + i] / counts[c]) : 0.0f;
  return mean;
}

}  // namespace nn
