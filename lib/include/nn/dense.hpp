#pragma once
// Dense(100, activation="relu") and Dense(10): a fully connected layer.
//
//   y = x W + b        x: (N, in)   W: (in, out), as Keras stores it   b: (out,)   y: (N, out)
//
// Backward, for dy = d loss / d y of shape (N, out):
//   dW = x^T dy        (in, out)
//   db = sum_n dy      (out,)
//   dx = dy W^T        (N, in)
//
// The fast variant runs all three products through chapter 04's GEMM
// (nn::gemm). The naive variant is the loops of the definitions above,
// written once on plain arrays of float or double so that the gradient checks
// can run them in double: the reference the fast variant is tested against.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "nn/activations.hpp"
#include "nn/tensor.hpp"

namespace nn {

enum class DenseVariant { naive, fast };

std::span<const DenseVariant> dense_variants();
std::string_view dense_variant_name(DenseVariant v);
DenseVariant dense_variant(std::string_view name);  // throws nn::Error listing the names

// The naive reference. x: (n, in), kernel: (in, out), bias and dbias: (out,),
// y and dy: (n, out), dkernel: (in, out), dx: (n, in). The gradients are
// overwritten; dx may be null to skip the input gradient.
template <class T>
void dense_forward_naive(std::size_t n, std::size_t in, std::size_t out, const T* x, const T* kernel, const T* bias,
                         T* y);
template <class T>
void dense_backward_naive(std::size_t n, std::size_t in, std::size_t out, const T* x, const T* kernel, const T* dy,
                          T* dkernel, T* dbias, T* dx);
extern template void dense_forward_naive<float>(std::size_t, std::size_t, std::size_t, const float*, const float*,
                                                const float*, float*);
extern template void dense_forward_naive<double>(std::size_t, std::size_t, std::size_t, const double*,
                                                 const double*, const double*, double*);
extern template void dense_backward_naive<float>(std::size_t, std::size_t, std::size_t, const float*, const float*,
                                                 const float*, float*, float*, float*);
extern template void dense_backward_naive<double>(std::size_t, std::size_t, std::size_t, const double*,
                                                  const double*, const double*, double*, double*, double*);

// y = x W + b into a preallocated y (N, out).
void dense_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Tensor& y, DenseVariant variant);

struct DenseGradients {
  Tensor dkernel;  // (in, out)
  Tensor dbias;    // (out,)
  Tensor dx;       // (N, in); empty when the input gradient was skipped
};

DenseGradients dense_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, DenseVariant variant,
                              bool input_gradient = true);
// The same into existing tensors, allocated only when their shape is not
// already right: dkernel (in, out), dbias (out,) and, unless dx is null,
// dx (N, in), all overwritten.
void dense_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, DenseVariant variant, Tensor& dkernel,
                    Tensor& dbias, Tensor* dx);

// The fast variant's backward pass fused with the weight update, for a
// training step: dx and db as dense_backward computes them, and the kernel
// moved by `update_kernel(g, lo, n)`, which receives the gradient of kernel
// elements [lo, lo + n) in g (an optimizer's update_block). It works through
// W in blocks of rows: for each block, the part of dx that reads those rows
// (dx = dy W^T, from the old weights), then that block of dW = x^T dy, handed
// to update_kernel while it is still in the cache; the block's weights change
// only then. dW is never written to memory, and W is read once for dx and
// the update together instead of three times. The values are
// dense_backward's, then an update from its dkernel, bit for bit; where
// dense_backward would split a product's sum over threads (a shape the
// course's models do not have), it runs exactly that, in dkernel, instead.
using KernelUpdate = std::function<void(const float* g, std::size_t lo, std::size_t n)>;
void dense_backward_update(const Tensor& x, const Tensor& kernel, const Tensor& dy, Tensor& dkernel, Tensor& dbias,
                           Tensor* dx, const KernelUpdate& update_kernel);

}  // namespace nn
