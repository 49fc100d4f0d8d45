// Conv2D: the variants' names, the shape checks, the dispatch to the variant
// asked for, and the layer. The variants live beside this file:
//   conv2d_naive.cpp      naive (the reference)
//   conv2d_reordered.cpp  reordered
//   conv2d_im2col.cpp     im2col, threaded
//   conv2d_direct3x3.cpp  direct3x3
#include "nn/conv2d.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <vector>

#include "conv2d_internal.hpp"
#include "nn/error.hpp"
#include "nn/shape.hpp"
#include "nn/simd.hpp"

namespace nn {

// ---------------------------------------------------------------- names, shapes

namespace {

constexpr std::array kVariants = {Conv2DVariant::naive, Conv2DVariant::reordered, Conv2DVariant::im2col,
                                  Conv2DVariant::threaded, Conv2DVariant::direct3x3};
constexpr std::array<std::string_view, kVariants.size()> kNames = {"naive", "reordered", "im2col", "threaded",
                                                                   "direct3x3"};

}  // namespace

std::span<const Conv2DVariant> conv2d_variants() { return kVariants; }

std::string_view conv2d_variant_name(Conv2DVariant v) { return kNames.at(static_cast<std::size_t>(v)); }

std::string conv2d_variant_names() {
  std::string all;
  for (auto name : kNames) all += (all.empty() ? "" : ", ") + std::string(name);
  return all;
}

Conv2DVariant conv2d_variant(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return kVariants[i];
  throw Error(fmt::format("unknown convolution variant '{}'; the variants are: {}", name, conv2d_variant_names()));
}

double Conv2DDims::forward_flops() const {
  return 2.0 * static_cast<double>(n) * static_cast<double>(oh()) * static_cast<double>(ow()) *
         static_cast<double>(kh * kw * c_in * c_out);
}

Conv2DDims conv2d_dims(const Shape& x, const Shape& kernel) {
  auto fail = [&](const std::string& why) {
    return Error(fmt::format("Conv2D: input {} and kernel {}: {}", x.str(), kernel.str(), why));
  };
  if (x.rank() != 4) throw fail("the input must be (N, H, W, C_in)");
  if (kernel.rank() != 4) throw fail("the kernel must be (KH, KW, C_in, C_out)");
  for (std::size_t i = 0; i < 4; ++i)
    if (x[i] == 0 || kernel[i] == 0) throw fail("a dimension is 0");
  if (x[3] != kernel[2])
    throw fail(fmt::format("the input has {} channels but the kernel expects {}", x[3], kernel[2]));
  if (kernel[0] > x[1] || kernel[1] > x[2])
    throw fail(fmt::format("a {}x{} kernel does not fit in a {}x{} image (padding \"valid\")", kernel[0],
                           kernel[1], x[1], x[2]));
  return {x[0], x[1], x[2], x[3], kernel[0], kernel[1], kernel[3]};
}

// The variants other than naive, one file each: see conv2d_internal.hpp.
using namespace conv2d_impl;

// ---------------------------------------------------------------- dispatch

void conv2d_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Tensor& y, Conv2DVariant variant,
                    Activation activation) {
  const Conv2DDims d = conv2d_dims(x.shape(), kernel.shape());
  if (bias.shape() != Shape{d.c_out})
    throw Error(fmt::format("Conv2D: bias is {} but the kernel {} has {} filters", bias.shape().str(),
                            kernel.shape().str(), d.c_out));
  if (y.shape() != d.y_shape())
    throw Error(fmt::format("Conv2D: the output buffer is {}, the output is {}", y.shape().str(),
                            d.y_shape().str()));
  const bool relu = activation == Activation::relu;
  bool fused = false;
  switch (variant) {
    case Conv2DVariant::naive:
      conv2d_forward_naive(d, x.data(), kernel.data(), bias.data(), y.data());
      break;
    case Conv2DVariant::reordered:
      forward_reordered(d, x.data(), kernel.data(), bias.data(), y.data());
      break;
    case Conv2DVariant::im2col: {
      std::vector<float> cols(d.n * pixels(d) * window_size(d));
      forward_gemm(d, x.data(), kernel.data(), bias.data(), y.data(), 0, d.n, cols.data());
      break;
    }
    case Conv2DVariant::direct3x3:
#if NN_HAVE_SIMD
      if (direct3x3_applies(d)) {
        forward_direct3x3(d, x.data(), kernel.data(), bias.data(), y.data(), relu);
        fused = true;
        break;
      }
#endif
      [[fallthrough]];
    case Conv2DVariant::threaded:
      forward_threaded(d, x.data(), kernel.data(), bias.data(), y.data(), relu);
      fused = true;
      break;
  }
  if (relu && !fused) relu_inplace(y);
}

Tensor conv2d_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Conv2DVariant variant,
                      Activation activation) {
  Tensor y(conv2d_dims(x.shape(), kernel.shape()).y_shape());
  conv2d_forward(x, kernel, bias, y, variant, activation);
  return y;
}

void conv2d_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, Conv2DVariant variant,
                     Tensor& dkernel, Tensor& dbias, Tensor* dx) {
  const Conv2DDims d = conv2d_dims(x.shape(), kernel.shape());
  if (dy.shape() != d.y_shape())
    throw Error(fmt::format("Conv2D backward: dy is {} but the output is {}", dy.shape().str(),
                            d.y_shape().str()));
  ensure_shape(dkernel, d.kernel_shape());
  ensure_shape(dbias, Shape{d.c_out});
  dkernel.fill(0.0f);
  dbias.fill(0.0f);
  if (dx) {
    ensure_shape(*dx, d.x_shape());
    dx->fill(0.0f);
  }
  float* const dx_data = dx ? dx->data() : nullptr;
  switch (variant) {
    case Conv2DVariant::naive:
      conv2d_backward_naive(d, x.data(), kernel.data(), dy.data(), dkernel.data(), dbias.data(), dx_data);
      break;
    case Conv2DVariant::reordered:
      backward_reordered(d, x.data(), kernel.data(), dy.data(), dkernel.data(), dbias.data(), dx_data);
      break;
    case Conv2DVariant::im2col: {
      std::vector<float> cols;
      backward_gemm(d, x.data(), kernel.data(), dy.data(), dkernel.data(), dbias.data(), dx_data, 0, d.n, false,
                    cols);
      break;
    }
    case Conv2DVariant::direct3x3:
#if NN_HAVE_SIMD
      if (direct3x3_applies(d)) {
        backward_direct3x3(d, x.data(), kernel.data(), dy.data(), dkernel.data(), dbias.data(), dx_data);
        break;
      }
#endif
      [[fallthrough]];
    case Conv2DVariant::threaded:
      backward_threaded(d, x.data(), kernel.data(), dy.data(), dkernel.data(), dbias.data(), dx_data);
      break;
  }
}

Conv2DGradients conv2d_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, Conv2DVariant variant,
                                bool input_gradient) {
  Conv2DGradients grads;
  conv2d_backward(x, kernel, dy, variant, grads.dkernel, grads.dbias, input_gradient ? &grads.dx : nullptr);
  return grads;
}

}  // namespace nn
