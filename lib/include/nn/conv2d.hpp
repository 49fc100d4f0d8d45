#pragma once
// Conv2D as Keras does it: channels last, padding "valid", stride 1.
//
//   x:      (N, H, W, C_in)          a batch of images
//   kernel: (KH, KW, C_in, C_out)    as Keras stores it
//   bias:   (C_out,)
//   y:      (N, H - KH + 1, W - KW + 1, C_out)
//
//   y[n, oh, ow, co] = bias[co] + sum over i, j, ci of
//                      x[n, oh + i, ow + j, ci] * kernel[i, j, ci, co]
//
// (a cross-correlation: the kernel is not flipped). Conv2D(32, (3, 3),
// activation="relu") on (N, 28, 28, 1) gives (N, 26, 26, 32). These are the
// kernels, functions of plain tensors; the layer that owns a kernel and a
// bias and calls them is nn::Conv2D (nn/layers/conv2d.hpp).
//
// Every implementation is kept and selectable by name, in course order:
//   naive      the nested loops of the definition
//   reordered  the same sums, loops reordered so the innermost one runs over
//              C_out (contiguous, vectorized), indexing hoisted out of it
//   im2col     the image unrolled into a matrix, then one GEMM (nn::gemm)
//   threaded   im2col + GEMM per image, images split across nn::parallel_for
//   direct3x3  for a 3x3 kernel and C_out a multiple of 16 on every CPU: no
//              im2col matrix, a block of pixels times a block of channels
//              held in registers (for C_in = 1, the 9 kernel vectors), ReLU
//              fused into the store, threaded over the batch; other shapes,
//              and builds without SIMD, fall back to `threaded`
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "nn/activations.hpp"
#include "nn/tensor.hpp"

namespace nn {

enum class Conv2DVariant { naive, reordered, im2col, threaded, direct3x3 };

// All variants, in the order the chapter presents them.
std::span<const Conv2DVariant> conv2d_variants();
std::string_view conv2d_variant_name(Conv2DVariant v);
// The variant called `name`; throws nn::Error listing the valid names.
Conv2DVariant conv2d_variant(std::string_view name);
// "naive, reordered, im2col, threaded, direct3x3"
std::string conv2d_variant_names();

// The sizes of one convolution, checked and derived from the shapes.
struct Conv2DDims {
  std::size_t n = 0, h = 0, w = 0, c_in = 0;  // x: (n, h, w, c_in)
  std::size_t kh = 0, kw = 0, c_out = 0;      // kernel: (kh, kw, c_in, c_out)
  std::size_t oh() const { return h - kh + 1; }  // "valid": every output sees a full window
  std::size_t ow() const { return w - kw + 1; }
  Shape x_shape() const { return {n, h, w, c_in}; }
  Shape kernel_shape() const { return {kh, kw, c_in, c_out}; }
  Shape y_shape() const { return {n, oh(), ow(), c_out}; }
  // 2 * N * OH * OW * KH * KW * C_in * C_out: one multiply and one add per term.
  double forward_flops() const;
};

// Checks x (N, H, W, C_in) against kernel (KH, KW, C_in, C_out): rank 4, the
// same C_in, a kernel no larger than the image, no zero dimension. Throws
// nn::Error naming both shapes.
Conv2DDims conv2d_dims(const Shape& x, const Shape& kernel);

// The naive reference, on plain arrays of float or double (the gradient
// checks run it in double). Layouts as above; dkernel, dbias and dx are
// overwritten; dx may be null to skip the input gradient.
template <class T>
void conv2d_forward_naive(const Conv2DDims& d, const T* x, const T* kernel, const T* bias, T* y);
template <class T>
void conv2d_backward_naive(const Conv2DDims& d, const T* x, const T* kernel, const T* dy, T* dkernel, T* dbias,
                           T* dx);
extern template void conv2d_forward_naive<float>(const Conv2DDims&, const float*, const float*, const float*,
                                                 float*);
extern template void conv2d_forward_naive<double>(const Conv2DDims&, const double*, const double*,
                                                  const double*, double*);
extern template void conv2d_backward_naive<float>(const Conv2DDims&, const float*, const float*, const float*,
                                                  float*, float*, float*);
extern template void conv2d_backward_naive<double>(const Conv2DDims&, const double*, const double*,
                                                   const double*, double*, double*, double*);

// y = activation(conv(x, kernel) + bias) with the chosen implementation.
Tensor conv2d_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Conv2DVariant variant,
                      Activation activation = Activation::linear);
// The same into an existing y of shape (N, OH, OW, C_out), as a training loop
// that reuses its buffers does (and the benchmarks, so that they time the
// convolution and not the zero-fill of a fresh tensor).
void conv2d_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Tensor& y, Conv2DVariant variant,
                    Activation activation = Activation::linear);

struct Conv2DGradients {
  Tensor dkernel;  // (KH, KW, C_in, C_out)
  Tensor dbias;    // (C_out,)
  Tensor dx;       // (N, H, W, C_in); empty when the input gradient was skipped
};

// The gradients of a loss L given dy = dL/dy, for the convolution before any
// activation (the layer, nn::Conv2D, applies the ReLU's backward pass first). With input_gradient false,
// dx is not computed: the first layer of a network does not need it.
Conv2DGradients conv2d_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, Conv2DVariant variant,
                                bool input_gradient = true);
// The same into existing tensors, allocated only when their shape is not
// already right (a training loop calls it every batch without allocating):
// dkernel (KH, KW, C_in, C_out), dbias (C_out,) and, unless dx is null,
// dx (N, H, W, C_in), all overwritten.
void conv2d_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, Conv2DVariant variant,
                     Tensor& dkernel, Tensor& dbias, Tensor* dx);

}  // namespace nn
