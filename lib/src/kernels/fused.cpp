#include "nn/fused.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "conv2d_internal.hpp"
#include "nn/error.hpp"
#include "nn/parallel.hpp"
#include "nn/pooling.hpp"
#include "nn/simd.hpp"

namespace nn {

namespace {

#if NN_HAVE_SIMD
constexpr std::size_t kV = simd::kVecWidth;
typedef std::int32_t VecI __attribute__((vector_size(sizeof(simd::Vec))));
typedef std::uint8_t VecB __attribute__((vector_size(kV)));

// kV window positions (bytes) widened to 32-bit lanes: one instruction with
// AVX-512 or AVX2 (GCC compiles the generic conversion byte by byte, which
// cost more than the arithmetic around it).
inline VecI load_positions(const std::uint8_t* where) {
  VecI at;
#if defined(__AVX512F__)
  // (the maskz form: GCC 12 warns that the plain one's undefined register "may be used uninitialized")
  const __m512i v = _mm512_maskz_cvtepu8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(where)));
  std::memcpy(&at, &v, sizeof at);
#elif defined(__AVX2__)
  const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(where)));
  std::memcpy(&at, &v, sizeof at);
#else
  VecB bytes;
  std::memcpy(&bytes, where, sizeof bytes);
  at = __builtin_convertvector(bytes, VecI);
#endif
  return at;
}

// The reverse: kV positions (each < 256) narrowed to bytes at `where`.
inline void store_positions(VecI at, std::uint8_t* where) {
#if defined(__AVX512F__)
  __m512i v;
  std::memcpy(&v, &at, sizeof v);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(where), _mm512_maskz_cvtepi32_epi8(0xffff, v));  // maskz: see load_positions
#elif defined(__AVX2__)
  __m256i v;
  std::memcpy(&v, &at, sizeof v);
  const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(where), _mm_packus_epi16(words, words));
#else
  const VecB bytes = __builtin_convertvector(at, VecB);
  std::memcpy(where, &bytes, sizeof bytes);
#endif
}
#endif

// The maximum of one pool x pool window of an (H, W, C) map, for each of its
// c channels, and the window position p * pool + q where it was found first.
// `first` points at the window's top-left pixel; a row of the map is
// row_stride floats.
// (Pool: the pool size when known at compile time, whose loops the compiler
// then unrolls; 0 for any size, given in `pool`.)
template <std::size_t Pool = 0>
void pool_window(const float* first, std::size_t row_stride, std::size_t c, std::size_t pool_size,
                 float* __restrict out, std::uint8_t* __restrict where) {
  const std::size_t pool = Pool ? Pool : pool_size;
  std::size_t ch = 0;
#if NN_HAVE_SIMD
  // kV channels per step: compare, then select the value and its position.
  for (; ch + kV <= c; ch += kV) {
    simd::Vec best = simd::load(first + ch);
    VecI best_at = VecI{};
    for (std::size_t p = 0; p < pool; ++p)
      for (std::size_t q = 0; q < pool; ++q) {
        const simd::Vec v = simd::load(first + p * row_stride + q * c + ch);
        const auto more = v > best;  // strictly greater: the first maximum wins a tie
        best = more ? v : best;
        best_at = more ? VecI{} + static_cast<std::int32_t>(p * pool + q) : best_at;
      }
    simd::store(out + ch, best);
    store_positions(best_at, where + ch);
  }
#endif
  for (; ch < c; ++ch) {  // channels left over (all of them without SIMD)
    float best = first[ch];
    std::uint8_t best_at = 0;
    for (std::size_t p = 0; p < pool; ++p)
      for (std::size_t q = 0; q < pool; ++q) {
        const float v = first[p * row_stride + q * c + ch];
        if (v > best) best = v, best_at = static_cast<std::uint8_t>(p * pool + q);
      }
    out[ch] = best;
    where[ch] = best_at;
  }
}

// The reverse of pool_window for the backward pass: writes every element of
// one window of the map's gradient, dy at the recorded maximum where the ReLU
// was active (the pooled value y > 0), 0 everywhere else.
void unpool_window(const float* dy, const float* y, const std::uint8_t* where, std::size_t row_stride, std::size_t c,
                   std::size_t pool, float* __restrict first) {
  std::size_t ch = 0;
#if NN_HAVE_SIMD
  for (; ch + kV <= c; ch += kV) {
    const VecI at = load_positions(where + ch);
    const simd::Vec g = simd::load(y + ch) > 0.0f ? simd::load(dy + ch) : simd::Vec{};
    for (std::size_t p = 0; p < pool; ++p)
      for (std::size_t q = 0; q < pool; ++q)
        simd::store(first + p * row_stride + q * c + ch,
                    at == static_cast<std::int32_t>(p * pool + q) ? g : simd::Vec{});
  }
#endif
  for (; ch < c; ++ch) {
    const float g = y[ch] > 0.0f ? dy[ch] : 0.0f;
    for (std::size_t p = 0; p < pool; ++p)
      for (std::size_t q = 0; q < pool; ++q)
        first[p * row_stride + q * c + ch] = where[ch] == p * pool + q ? g : 0.0f;
  }
}

#if NN_HAVE_SIMD
// One image's kernel and bias gradients for a first layer (C_in = 1, 3x3,
// C_out a multiple of kLanes) straight from the pooled gradient: the loop of
// conv2d_direct3x3.cpp's C_in = 1 backward pass (9 accumulators per kV
// channels, the pixels in row-major order, each added by the same
// accumulate_c1_pixel), with each pixel's gradient made
// as it is needed (dy at the window's recorded maximum where the ReLU was
// active, 0 elsewhere) instead of first written into a 26x26x32 map and read
// back. The same multiply-adds in the same order: the same sums, bit for bit.
void dkernel_c1_from_pooled(const float* x, std::size_t h, std::size_t w, const float* dy, const float* y,
                            const std::uint8_t* where, std::size_t ph, std::size_t pw, std::size_t c, std::size_t pool,
                            float* dk, float* db) {
  const std::size_t oh_count = h - 2, ow_count = w - 2;  // the conv's output map
  for (std::size_t cb = 0; cb < c; cb += kV) {
    simd::Vec acc[9] = {}, acc_b = {};
    const auto pixel = [&](std::size_t oh, std::size_t ow, simd::Vec g) {
      conv2d_impl::accumulate_c1_pixel(x + oh * w + ow, w, g, acc, acc_b);
    };
    for (std::size_t oh = 0; oh < oh_count; ++oh) {
      const std::size_t pi = oh / pool, p = oh % pool;
      std::size_t ow = 0;
      if (pi < ph)
        for (std::size_t pj = 0; pj < pw; ++pj) {
          const std::size_t o = (pi * pw + pj) * c + cb;
          const VecI at = load_positions(where + o);
          const simd::Vec g = simd::load(y + o) > 0.0f ? simd::load(dy + o) : simd::Vec{};
          for (std::size_t q = 0; q < pool; ++q, ++ow)
            pixel(oh, ow, at == static_cast<std::int32_t>(p * pool + q) ? g : simd::Vec{});
        }
      for (; ow < ow_count; ++ow) pixel(oh, ow, simd::Vec{});  // past the last window: 0
    }
    for (std::size_t t = 0; t < 9; ++t) simd::store(dk + t * c + cb, acc[t]);
    simd::store(db + cb, acc_b);
  }
}
#endif

// One input channel (what a model's first layer on gray images has), a 3x3
// kernel, the direct variant, C_out a multiple of kLanes (16, whatever the
// vector width, so that every CPU takes the same path): the kernels of
// conv2d_direct3x3.cpp's C_in = 1 path, which the fused step then calls a few
// rows at a time. The test is on the shapes, not on the layer's place.
bool one_channel_direct3x3(const Tensor& kernel, Conv2DVariant variant, std::size_t c) {
  return variant == Conv2DVariant::direct3x3 && kernel.dim(0) == 3 && kernel.dim(1) == 3 && kernel.dim(2) == 1 &&
         c % simd::kLanes == 0;
}

Shape pooled_shape(const Tensor& x, const Tensor& kernel, std::size_t pool) {
  return max_pool2d_output_shape(conv2d_dims(x.shape(), kernel.shape()).y_shape(), pool);
}

}  // namespace

void conv2d_relu_maxpool_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, std::size_t pool,
                                 Conv2DVariant variant, Tensor& y, std::vector<std::uint8_t>& where) {
  const Shape ys = pooled_shape(x, kernel, pool);
  if (!(y.shape() == ys)) throw Error(fmt::format("fused Conv2D+MaxPooling2D: y is {}, expected {}", y.shape().str(), ys.str()));
  if (pool * pool > 256) throw Error("fused Conv2D+MaxPooling2D: pool too large");
  where.resize(y.size());
  const std::size_t n = x.dim(0), ph = ys[1], pw = ys[2], c = ys[3];
  const Shape map_shape = conv2d_dims(x.batch_view(0, std::min<std::size_t>(n, 1)).shape(), kernel.shape()).y_shape();
  const std::size_t ow = map_shape[2];
  std::uint8_t* const where_base = where.data();
#if NN_HAVE_SIMD
  if (one_channel_direct3x3(kernel, variant, c)) {
    // One input channel: the convolution a window row at a time (pool rows of the
    // map, 6.6 KB, in L1), pooled at once; the map's last row of an odd-sized
    // map, which no window reads, is never computed.
    const Conv2DDims d = conv2d_dims(x.shape(), kernel.shape());
    parallel_for(0, n, [&](std::size_t lo, std::size_t hi) {
      thread_local std::vector<float> rows_storage;
      rows_storage.resize(pool * ow * c);
      float* rows = rows_storage.data();  // (pool, OW, C)
      for (std::size_t b = lo; b < hi; ++b)
        for (std::size_t i = 0; i < ph; ++i) {
          conv2d_impl::forward_direct3x3_c1_rows(d, x.data(), kernel.data(), bias.data(), /*relu=*/true, b, i * pool,
                                                 (i + 1) * pool, rows);
          for (std::size_t j = 0; j < pw; ++j) {
            const std::size_t o = ((b * ph + i) * pw + j) * c;
            if (pool == 2)  // Keras's default pool_size, with unrolled loops
              pool_window<2>(rows + j * pool * c, ow * c, c, pool, y.data() + o, where_base + o);
            else
              pool_window(rows + j * pool * c, ow * c, c, pool, y.data() + o, where_base + o);
          }
        }
    });
    return;
  }
#endif
  // [snippet fused-forward]
  parallel_for(0, n, [&](std::size_t lo, std::size_t hi) {
    thread_local Tensor map_storage;  // one image's conv + ReLU output: (1, OH, OW, C), about 86 KB
    Tensor& map = map_storage;        // (a thread_local looked up once, not in the loops)
    ensure_shape(map, map_shape);
    for (std::size_t b = lo; b < hi; ++b) {
      conv2d_forward(x.batch_view(b, 1), kernel, bias, map, variant, Activation::relu);
      for (std::size_t i = 0; i < ph; ++i)
        for (std::size_t j = 0; j < pw; ++j) {
          const std::size_t o = ((b * ph + i) * pw + j) * c;
          pool_window(map.data() + ((i * pool) * ow + j * pool) * c, ow * c, c, pool, y.data() + o, where_base + o);
        }
    }
  });
  // [end snippet fused-forward]
}

void conv2d_relu_maxpool_backward(const Tensor& x, const Tensor& kernel, const Tensor& y,
                                  const std::vector<std::uint8_t>& where, const Tensor& dy, std::size_t pool,
                                  Conv2DVariant variant, Tensor& dkernel, Tensor& dbias, Tensor* dx) {
  const Shape ys = pooled_shape(x, kernel, pool);
  if (!(y.shape() == ys) || !(dy.shape() == ys) || where.size() != ys.size())
    throw Error(fmt::format("fused Conv2D+MaxPooling2D backward: y {} and dy {} must be {}", y.shape().str(),
                            dy.shape().str(), ys.str()));
  const std::size_t n = x.dim(0), ph = ys[1], pw = ys[2], c = ys[3];
  const Shape map_shape = conv2d_dims(x.batch_view(0, std::min<std::size_t>(n, 1)).shape(), kernel.shape()).y_shape();
  const std::size_t ow = map_shape[2];
  ensure_shape(dkernel, kernel.shape());
  ensure_shape(dbias, Shape{kernel.dim(3)});
  if (dx) ensure_shape(*dx, x.shape());
  // Per-part sums, added in a fixed order at the end: the result depends on
  // the thread count, not on which thread finishes first.
  const std::size_t parts = std::max<std::size_t>(1, std::min(n, thread_count()));
  const float* yp = y.data();
  const float* gp = dy.data();
  const std::uint8_t* wp = where.data();
  std::vector<Conv2DGradients> partial(parts);
  // One input channel and no input gradient: dkernel_c1_from_pooled, which needs no map.
  const bool c1_no_map = NN_HAVE_SIMD && one_channel_direct3x3(kernel, variant, c) && !dx;
  parallel_for(0, parts, [&](std::size_t lo, std::size_t hi) {
    thread_local Tensor dmap_storage;  // one image's gradient at the conv output
    thread_local Conv2DGradients one_storage;
    Tensor& dmap = dmap_storage;  // (looked up once: see the forward pass)
    Conv2DGradients& one = one_storage;
    ensure_shape(one.dkernel, kernel.shape());
    ensure_shape(one.dbias, Shape{kernel.dim(3)});
    if (!c1_no_map) {
      ensure_shape(dmap, map_shape);
      // The windows write all of dmap, except the last row or column of an odd-sized map.
      dmap.fill(0.0f);
    }
    for (std::size_t part = lo; part < hi; ++part) {
      Conv2DGradients& sum = partial[part];
      sum.dkernel = Tensor(kernel.shape());
      sum.dbias = Tensor({kernel.dim(3)});
      const Range images = split_range(n, parts, part);
      for (std::size_t b = images.begin; b < images.end; ++b) {
        if (c1_no_map) {  // no map at all: the gradients straight from the pooled dy
#if NN_HAVE_SIMD
          dkernel_c1_from_pooled(x.data() + b * x.dim(1) * x.dim(2), x.dim(1), x.dim(2), gp + b * ph * pw * c,
                                 yp + b * ph * pw * c, wp + b * ph * pw * c, ph, pw, c, pool, one.dkernel.data(),
                                 one.dbias.data());
#endif
        } else {
          // [snippet fused-backward]
          for (std::size_t i = 0; i < ph; ++i)
            for (std::size_t j = 0; j < pw; ++j) {
              const std::size_t o = ((b * ph + i) * pw + j) * c;
              unpool_window(gp + o, yp + o, wp + o, ow * c, c, pool, dmap.data() + ((i * pool) * ow + j * pool) * c);
            }
          Tensor dx_image = dx ? dx->batch_view(b, 1) : Tensor();  // a view: image b of dx, written in place
          conv2d_backward(x.batch_view(b, 1), kernel, dmap, variant, one.dkernel, one.dbias, dx ? &dx_image : nullptr);
          // [end snippet fused-backward]
        }
        for (std::size_t k = 0; k < one.dkernel.size(); ++k) sum.dkernel[k] += one.dkernel[k];
        for (std::size_t k = 0; k < one.dbias.size(); ++k) sum.dbias[k] += one.dbias[k];
      }
    }
  });
  dkernel.fill(0.0f);
  dbias.fill(0.0f);
  for (const Conv2DGradients& p : partial) {
    for (std::size_t k = 0; k < dkernel.size(); ++k) dkernel[k] += p.dkernel[k];
    for (std::size_t k = 0; k < dbias.size(); ++k) dbias[k] += p.dbias[k];
  }
}

}  // namespace nn
