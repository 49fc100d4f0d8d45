#include "nn/fused.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "nn/error.hpp"
#include "nn/parallel.hpp"
#include "nn/pooling.hpp"
#include "nn/simd.hpp"

namespace nn {

namespace {

#if NN_HAVE_SIMD
constexpr std::size_t kV = simd::kVecWidth;
#endif

// The maximum of one pool x pool window of an (H, W, C) map, for each of its
// c channels, and the window position p * pool + q where it was found first.
// `first` points at the window's top-left pixel; a row of the map is
// row_stride floats.
void pool_window(const float* first, std::size_t row_stride, std::size_t c, std::size_t pool, float* __restrict out,
                 std::uint8_t* __restrict where) {
  std::size_t ch = 0;
#if NN_HAVE_SIMD
  // kV channels per step: compare, then select the value and its position.
  typedef std::int32_t VecI __attribute__((vector_size(sizeof(simd::Vec))));
  typedef std::uint8_t VecB __attribute__((vector_size(kV)));
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
    const VecB bytes = __builtin_convertvector(best_at, VecB);
    std::memcpy(where + ch, &bytes, sizeof bytes);
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
  typedef std::int32_t VecI __attribute__((vector_size(sizeof(simd::Vec))));
  typedef std::uint8_t VecB __attribute__((vector_size(kV)));
  for (; ch + kV <= c; ch += kV) {
    VecB bytes;
    std::memcpy(&bytes, where + ch, sizeof bytes);
    const VecI at = __builtin_convertvector(bytes, VecI);
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
  parallel_for(0, parts, [&](std::size_t lo, std::size_t hi) {
    thread_local Tensor dmap_storage;  // one image's gradient at the conv output
    thread_local Conv2DGradients one_storage;
    Tensor& dmap = dmap_storage;  // (looked up once: see the forward pass)
    Conv2DGradients& one = one_storage;
    ensure_shape(dmap, map_shape);
    // The windows write all of dmap, except the last row or column of an odd-sized map.
    dmap.fill(0.0f);
    for (std::size_t part = lo; part < hi; ++part) {
      Conv2DGradients& sum = partial[part];
      sum.dkernel = Tensor(kernel.shape());
      sum.dbias = Tensor({kernel.dim(3)});
      const Range images = split_range(n, parts, part);
      for (std::size_t b = images.begin; b < images.end; ++b) {
        // [snippet fused-backward]
        for (std::size_t i = 0; i < ph; ++i)
          for (std::size_t j = 0; j < pw; ++j) {
            const std::size_t o = ((b * ph + i) * pw + j) * c;
            unpool_window(gp + o, yp + o, wp + o, ow * c, c, pool, dmap.data() + ((i * pool) * ow + j * pool) * c);
          }
        Tensor dx_image = dx ? dx->batch_view(b, 1) : Tensor();  // a view: image b of dx, written in place
        conv2d_backward(x.batch_view(b, 1), kernel, dmap, variant, one.dkernel, one.dbias, dx ? &dx_image : nullptr);
        // [end snippet fused-backward]
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
