// MaxPooling2D: the variants' names, the output shape, the vectorized
// variant and the dispatch. The naive reference is in pooling_naive.cpp.
#include "nn/pooling.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <vector>

#include "nn/error.hpp"

namespace nn {

namespace {
constexpr std::array kVariants{MaxPoolVariant::naive, MaxPoolVariant::vectorized};
}

std::span<const MaxPoolVariant> max_pool_variants() { return kVariants; }

std::string_view max_pool_variant_name(MaxPoolVariant v) {
  return v == MaxPoolVariant::naive ? "naive" : "vectorized";
}

MaxPoolVariant max_pool_variant(std::string_view name) {
  for (auto v : kVariants)
    if (max_pool_variant_name(v) == name) return v;
  throw Error(fmt::format("unknown max-pooling variant '{}' (naive, vectorized)", name));
}

Shape max_pool2d_output_shape(const Shape& x, std::size_t pool) {
  if (x.rank() != 4) throw Error(fmt::format("MaxPooling2D expects (N, H, W, C), got {}", x.str()));
  if (pool == 0) throw Error("MaxPooling2D: pool size must be at least 1");
  if (x[1] < pool || x[2] < pool)
    throw Error(fmt::format("MaxPooling2D: a {}x{} pool does not fit in the input {}", pool, pool, x.str()));
  return {x[0], x[1] / pool, x[2] / pool, x[3]};
}

namespace {

void check_backward(const Tensor& x, const Tensor& dy, std::size_t pool, const Tensor& dx) {
  Shape y = max_pool2d_output_shape(x.shape(), pool);
  if (!(dy.shape() == y))
    throw Error(fmt::format("MaxPooling2D backward: dy is {}, expected {}", dy.shape().str(), y.str()));
  if (!(dx.shape() == x.shape()))
    throw Error(fmt::format("MaxPooling2D backward: dx is {}, expected {}", dx.shape().str(), x.shape().str()));
}

// [snippet pool-vectorized]
void forward_vectorized(const Tensor& x, std::size_t pool, Tensor& y) {
  const std::size_t n = y.dim(0), oh = y.dim(1), ow = y.dim(2), c = y.dim(3);
  const std::size_t w = x.dim(2), h = x.dim(1);
  for (std::size_t b = 0; b < n; ++b)
    for (std::size_t i = 0; i < oh; ++i)
      for (std::size_t j = 0; j < ow; ++j) {
        float* out = y.data() + ((b * oh + i) * ow + j) * c;                    // out: (C,)
        const float* first = x.data() + ((b * h + i * pool) * w + j * pool) * c;
        std::copy(first, first + c, out);
        for (std::size_t p = 0; p < pool; ++p)
          for (std::size_t q = 0; q < pool; ++q) {
            const float* in = first + (p * w + q) * c;                  // in: (C,), contiguous
            for (std::size_t ch = 0; ch < c; ++ch) out[ch] = std::max(out[ch], in[ch]);  // vectorized
          }
      }
}
// [end snippet pool-vectorized]

void backward_vectorized(const Tensor& x, const Tensor& dy, std::size_t pool, Tensor& dx) {
  const std::size_t n = dy.dim(0), oh = dy.dim(1), ow = dy.dim(2), c = dy.dim(3);
  const std::size_t w = x.dim(2), h = x.dim(1);
  // Rows and columns that no window covers (odd sizes) get no gradient.
  if (h % pool != 0 || w % pool != 0) dx.fill(0.0f);
  std::vector<float> best(c), left(c);
  for (std::size_t b = 0; b < n; ++b)
    for (std::size_t i = 0; i < oh; ++i)
      for (std::size_t j = 0; j < ow; ++j) {
        const float* g = dy.data() + ((b * oh + i) * ow + j) * c;                 // g: (C,)
        const float* first = x.data() + ((b * h + i * pool) * w + j * pool) * c;
        float* dfirst = dx.data() + ((b * h + i * pool) * w + j * pool) * c;
        // The window's maximum per channel, as in the forward pass.
        std::copy(first, first + c, best.begin());
        for (std::size_t p = 0; p < pool; ++p)
          for (std::size_t q = 0; q < pool; ++q) {
            const float* in = first + (p * w + q) * c;
            for (std::size_t ch = 0; ch < c; ++ch) best[ch] = std::max(best[ch], in[ch]);  // vectorized
          }
        // Every input of the window is written: g where it is the first
        // maximum of its channel, 0 elsewhere. No separate zero-fill pass.
        // `left` is the gradient not yet handed out: g until the first
        // maximum (in row-major order) takes it, 0 after, so later ties get 0.
        // Every value is read unconditionally and chosen with a select: a
        // load under a condition would vectorize only with masked loads.
        std::copy(g, g + c, left.begin());
        for (std::size_t p = 0; p < pool; ++p)
          for (std::size_t q = 0; q < pool; ++q) {
            const float* in = first + (p * w + q) * c;
            float* d = dfirst + (p * w + q) * c;
            for (std::size_t ch = 0; ch < c; ++ch) {  // vectorized
              const bool is_max = in[ch] == best[ch];
              const float l = left[ch];
              d[ch] = is_max ? l : 0.0f;
              left[ch] = is_max ? 0.0f : l;
            }
          }
      }
}

}  // namespace

void max_pool2d_forward(const Tensor& x, std::size_t pool, Tensor& y, MaxPoolVariant variant) {
  Shape shape = max_pool2d_output_shape(x.shape(), pool);
  if (!(y.shape() == shape))
    throw Error(fmt::format("MaxPooling2D forward: y is {}, expected {}", y.shape().str(), shape.str()));
  if (variant == MaxPoolVariant::naive) max_pool2d_forward_naive(x.shape(), pool, x.data(), y.data());
  else forward_vectorized(x, pool, y);
}

Tensor max_pool2d_forward(const Tensor& x, std::size_t pool, MaxPoolVariant variant) {
  Tensor y(max_pool2d_output_shape(x.shape(), pool));
  max_pool2d_forward(x, pool, y, variant);
  return y;
}

void max_pool2d_backward(const Tensor& x, const Tensor& dy, std::size_t pool, Tensor& dx, MaxPoolVariant variant) {
  check_backward(x, dy, pool, dx);
  if (variant == MaxPoolVariant::naive) max_pool2d_backward_naive(x.shape(), pool, x.data(), dy.data(), dx.data());
  else backward_vectorized(x, dy, pool, dx);
}

Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, std::size_t pool, MaxPoolVariant variant) {
  Tensor dx(x.shape());
  max_pool2d_backward(x, dy, pool, dx, variant);
  return dx;
}

}  // namespace nn
