#include "nn/fused.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "nn/error.hpp"
#include "nn/parallel.hpp"
#include "nn/pooling.hpp"

namespace nn {

namespace {

Shape pooled_shape(const Tensor& x, const Tensor& kernel, std::size_t pool) {
  return max_pool2d_output_shape(conv2d_dims(x.shape(), kernel.shape()).y_shape(), pool);
}

// The images [lo, hi) of a batch of n split into `parts` contiguous ranges.
std::pair<std::size_t, std::size_t> range(std::size_t n, std::size_t parts, std::size_t part) {
  const std::size_t q = n / parts, r = n % parts;
  const std::size_t lo = part * q + std::min(part, r);
  return {lo, lo + q + (part < r ? 1 : 0)};
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
  // [snippet fused-forward]
  parallel_for(0, n, [&](std::size_t lo, std::size_t hi) {
    thread_local Tensor map;  // one image's conv + ReLU output: (1, OH, OW, C), about 86 KB
    thread_local std::vector<std::int32_t> pos;  // the window position of the running maximum, per channel
    ensure_shape(map, map_shape);
    pos.resize(c);
    for (std::size_t b = lo; b < hi; ++b) {
      conv2d_forward(x.batch_view(b, 1), kernel, bias, map, variant, Activation::relu);
      for (std::size_t i = 0; i < ph; ++i)
        for (std::size_t j = 0; j < pw; ++j) {
          float* __restrict out = y.data() + ((b * ph + i) * pw + j) * c;  // out: (C,)
          std::int32_t* __restrict at = pos.data();
          const float* first = map.data() + ((i * pool) * ow + j * pool) * c;
          std::copy(first, first + c, out);
          std::fill(at, at + c, 0);
          for (std::size_t p = 0; p < pool; ++p)
            for (std::size_t q = 0; q < pool; ++q) {
              const float* __restrict in = first + (p * ow + q) * c;  // in: (C,), contiguous
              const auto here = static_cast<std::int32_t>(p * pool + q);
              for (std::size_t ch = 0; ch < c; ++ch) {  // strictly greater: the first maximum wins a tie
                const bool more = in[ch] > out[ch];
                out[ch] = more ? in[ch] : out[ch];
                at[ch] = more ? here : at[ch];
              }
            }
          std::uint8_t* dst = where.data() + ((b * ph + i) * pw + j) * c;
          for (std::size_t ch = 0; ch < c; ++ch) dst[ch] = static_cast<std::uint8_t>(at[ch]);
        }
    }
  });
  // [end snippet fused-forward]
}

void conv2d_relu_maxpool_backward(const Tensor& x, const Tensor& kernel, const Tensor& y,
                                  const std::vector<std::uint8_t>& where, const Tensor& dy, std::size_t pool,
                                  Conv2DVariant variant, Conv2DGradients& out) {
  const Shape ys = pooled_shape(x, kernel, pool);
  if (!(y.shape() == ys) || !(dy.shape() == ys) || where.size() != ys.size())
    throw Error(fmt::format("fused Conv2D+MaxPooling2D backward: y {} and dy {} must be {}", y.shape().str(),
                            dy.shape().str(), ys.str()));
  const std::size_t n = x.dim(0), ph = ys[1], pw = ys[2], c = ys[3];
  const Shape map_shape = conv2d_dims(x.batch_view(0, std::min<std::size_t>(n, 1)).shape(), kernel.shape()).y_shape();
  const std::size_t ow = map_shape[2];
  ensure_shape(out.dkernel, kernel.shape());
  ensure_shape(out.dbias, Shape{kernel.dim(3)});
  out.dx = Tensor();
  // Per-part sums, added in a fixed order at the end: the result depends on
  // the thread count, not on which thread finishes first.
  const std::size_t parts = std::max<std::size_t>(1, std::min(n, thread_count()));
  // Window position p * pool + q -> its offset from the window's top-left pixel in the map.
  std::vector<std::size_t> offset(pool * pool);
  for (std::size_t p = 0; p < pool; ++p)
    for (std::size_t q = 0; q < pool; ++q) offset[p * pool + q] = (p * ow + q) * c;
  const float* yp = y.data();
  const float* gp = dy.data();
  const std::uint8_t* wp = where.data();
  std::vector<Conv2DGradients> partial(parts);
  parallel_for(0, parts, [&](std::size_t lo, std::size_t hi) {
    thread_local Tensor dmap;  // one image's gradient at the conv output
    thread_local Conv2DGradients one;
    ensure_shape(dmap, map_shape);
    for (std::size_t part = lo; part < hi; ++part) {
      Conv2DGradients& sum = partial[part];
      sum.dkernel = Tensor(kernel.shape());
      sum.dbias = Tensor({kernel.dim(3)});
      auto [b0, b1] = range(n, parts, part);
      for (std::size_t b = b0; b < b1; ++b) {
        // [snippet fused-backward]
        dmap.fill(0.0f);
        float* __restrict d = dmap.data();
        const float* __restrict yb = yp + b * ph * pw * c;
        const float* __restrict gb = gp + b * ph * pw * c;
        const std::uint8_t* __restrict wb = wp + b * ph * pw * c;
        const std::size_t* __restrict off = offset.data();
        for (std::size_t i = 0; i < ph; ++i)
          for (std::size_t j = 0; j < pw; ++j) {
            const std::size_t o = (i * pw + j) * c;
            float* corner = d + ((i * pool) * ow + j * pool) * c;  // the window's top-left pixel
            for (std::size_t ch = 0; ch < c; ++ch)  // the ReLU passed the maximum only if it was > 0
              corner[off[wb[o + ch]] + ch] = yb[o + ch] > 0.0f ? gb[o + ch] : 0.0f;
          }
        conv2d_backward(x.batch_view(b, 1), kernel, dmap, variant, one, /*input_gradient=*/false);
        // [end snippet fused-backward]
        for (std::size_t k = 0; k < one.dkernel.size(); ++k) sum.dkernel[k] += one.dkernel[k];
        for (std::size_t k = 0; k < one.dbias.size(); ++k) sum.dbias[k] += one.dbias[k];
      }
    }
  });
  out.dkernel.fill(0.0f);
  out.dbias.fill(0.0f);
  for (const Conv2DGradients& p : partial) {
    for (std::size_t k = 0; k < out.dkernel.size(); ++k) out.dkernel[k] += p.dkernel[k];
    for (std::size_t k = 0; k < out.dbias.size(); ++k) out.dbias[k] += p.dbias[k];
  }
}

}  // namespace nn
