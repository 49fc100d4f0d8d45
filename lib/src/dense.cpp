// Dense: the variants' names, the fast variant (nn::gemm) inside the dispatch,
// and the layer. The naive reference is in dense_naive.cpp.
#include "nn/dense.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "nn/error.hpp"
#include "nn/gemm.hpp"
#include "nn/init.hpp"

namespace nn {

namespace {
constexpr std::array kVariants{DenseVariant::naive, DenseVariant::fast};

void check_shapes(const Tensor& x, const Tensor& kernel, const Tensor& bias) {
  if (kernel.rank() != 2 || bias.rank() != 1 || bias.dim(0) != kernel.dim(1))
    throw Error(fmt::format("Dense: kernel {} and bias {} do not fit together", kernel.shape().str(),
                            bias.shape().str()));
  if (x.rank() != 2 || x.dim(1) != kernel.dim(0))
    throw Error(fmt::format("Dense: input {} does not match a kernel of shape {} (expected (N, {}))",
                            x.shape().str(), kernel.shape().str(), kernel.dim(0)));
}
}  // namespace

std::span<const DenseVariant> dense_variants() { return kVariants; }

std::string_view dense_variant_name(DenseVariant v) { return v == DenseVariant::naive ? "naive" : "fast"; }

DenseVariant dense_variant(std::string_view name) {
  for (auto v : kVariants)
    if (dense_variant_name(v) == name) return v;
  throw Error(fmt::format("unknown Dense variant '{}' (naive, fast)", name));
}

void dense_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Tensor& y, DenseVariant variant) {
  check_shapes(x, kernel, bias);
  const std::size_t n = x.dim(0), in = kernel.dim(0), out = kernel.dim(1);
  if (!(y.shape() == Shape{n, out}))
    throw Error(fmt::format("Dense: output is {}, expected ({}, {})", y.shape().str(), n, out));
  if (variant == DenseVariant::naive) {
    dense_forward_naive(n, in, out, x.data(), kernel.data(), bias.data(), y.data());
    return;
  }
  // [snippet dense-forward]
  for (std::size_t i = 0; i < n; ++i)  // y starts as the bias in every row: y = b
    std::copy(bias.data(), bias.data() + out, y.data() + i * out);
  // y += x W  with  x: (n, in), W: (in, out), y: (n, out)
  gemm({.m = n, .n = out, .k = in, .a = x.data(), .b = kernel.data(), .c = y.data(), .beta = 1.0f,
        .threaded = true});
  // [end snippet dense-forward]
}

DenseGradients dense_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, DenseVariant variant,
                              bool input_gradient) {
  DenseGradients grads;
  dense_backward(x, kernel, dy, variant, grads.dkernel, grads.dbias, input_gradient ? &grads.dx : nullptr);
  return grads;
}

void dense_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, DenseVariant variant, Tensor& dkernel,
                    Tensor& dbias, Tensor* dx) {
  const std::size_t n = x.dim(0), in = kernel.dim(0), out = kernel.dim(1);
  if (x.rank() != 2 || x.dim(1) != in || !(dy.shape() == Shape{n, out}))
    throw Error(fmt::format("Dense backward: x {}, kernel {} and dy {} do not fit together", x.shape().str(),
                            kernel.shape().str(), dy.shape().str()));
  ensure_shape(dkernel, {in, out});
  ensure_shape(dbias, {out});
  if (dx) ensure_shape(*dx, {n, in});
  if (variant == DenseVariant::naive) {
    dense_backward_naive(n, in, out, x.data(), kernel.data(), dy.data(), dkernel.data(), dbias.data(),
                         dx ? dx->data() : nullptr);
    return;
  }
  dbias.fill(0.0f);
  // [snippet dense-backward]
  // dW = x^T dy:  (in, n) x (n, out)
  gemm({.m = in, .n = out, .k = n, .a = x.data(), .transpose_a = true, .b = dy.data(), .c = dkernel.data(),
        .threaded = true});
  // db = the sum of dy over the batch
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < out; ++j) dbias[j] += dy[i * out + j];
  // dx = dy W^T:  (n, out) x (out, in)
  if (dx)
    gemm({.m = n, .n = in, .k = out, .a = dy.data(), .b = kernel.data(), .transpose_b = true, .c = dx->data(),
          .threaded = true});
  // [end snippet dense-backward]
}

}  // namespace nn
