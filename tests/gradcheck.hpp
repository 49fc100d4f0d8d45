#pragma once
// What the gradient checks share: central differences in double, and the
// course's model in double, composed from the library's naive kernels (the
// kernels are written once, as templates; nothing here re-implements one).
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/gradcheck.hpp"
#include "nn/layer.hpp"
#include "nn/model.hpp"
#include "nn/tensor.hpp"

namespace testing_nn {

// A tensor's values, in double.
std::vector<double> as_double(const nn::Tensor& t);

// n uniform random doubles in [lo, hi), the same for the same seed.
std::vector<double> random_doubles(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0);

// (L(w + eps) - L(w - eps)) / (2 eps) for each entry `which` of `param`
// (every entry when `which` is empty), `param` restored after each: the
// library's, chapter 00's.
using nn::central_differences;

// ---- Any layer, through the nn::Layer interface ---------------------------
//
// The gradients a layer's backward pass gives, against central differences
// of L = sum(r * layer(x)) with r random (so dL/dy = r): dL/dx, and dL/dw for
// every parameter w. It needs nothing but the interface, so it checks the
// course's layers and a learner's alike.
//
// The layer computes in float; the loss and the differences are taken in
// double, and the step each difference divides by is the one that the
// rounded float inputs actually took. The course's layers are linear between
// kinks (products and sums, ReLU's 0, a window's maximum), where a central
// difference is exact whatever the step: what is left is the float rounding
// of the outputs, about 1e-7 of them per step, divided by 2h. An entry whose
// step crosses a kink (the two one-sided differences disagree) is skipped
// and counted.
struct LayerGradientCheck {
  std::string tensor;           // "x", "kernel", "bias", ...
  std::size_t checked = 0;      // entries compared
  std::size_t at_kink = 0;      // entries skipped: a kink within the step
  double largest = 0;           // the largest |numeric gradient| seen
  double worst = 0;             // the largest |analytic - numeric|
  std::size_t worst_index = 0;  // where
  double analytic = 0, numeric = 0;  // the two values there
  // worst relative to the tensor's largest gradient
  double relative_error() const { return largest > 0 ? worst / largest : worst; }
};

// Checks up to `samples` entries of x and of each parameter (all of them when
// a tensor is smaller), chosen from `seed`, with steps of h.
std::vector<LayerGradientCheck> check_layer_gradients(nn::Layer& layer, const nn::Tensor& x, std::uint64_t seed,
                                                      double h = 1e-2, std::size_t samples = 300);
// "" when, for x and every parameter, some entries were checked, at most a
// tenth sat at a kink, and the worst error is within `tolerance` of the
// tensor's largest gradient; else what failed, naming the tensor, the index
// and both values.
std::string layer_gradient_problems(nn::Layer& layer, const nn::Tensor& x, std::uint64_t seed,
                                    double tolerance = 1e-3, double h = 1e-2);

// The entries `which` of v (all of v when `which` is empty).
std::vector<double> pick(std::span<const double> v, std::span<const std::size_t> which);

// `count` distinct indices in [0, n), drawn from `seed`, sorted.
std::vector<std::size_t> sample_indices(std::size_t n, std::size_t count, std::uint64_t seed);

// The smallest |v|: how far the closest pre-activation is from the ReLU's kink.
double smallest_magnitude(std::span<const double> v);

// Over the pool x pool windows of a (shape (N, H, W, C)) whose maximum is
// positive: the smallest gap between the maximum and the runner-up. A step
// smaller than half of it cannot change which input wins a window.
double smallest_pool_gap(const nn::Shape& shape, std::size_t pool, std::span<const double> a);

// Conv2D(relu) then MaxPooling2D in double, from the naive kernels: the
// reference of the fused step (nn/fused.hpp).
struct ConvReluPool {
  std::vector<double> z;       // the convolution before the ReLU: (N, OH, OW, C_out)
  std::vector<double> a;       // after it
  std::vector<double> pooled;  // (N, OH / pool, OW / pool, C_out)
};
ConvReluPool conv_relu_pool(const nn::Conv2DDims& d, std::size_t pool, std::span<const double> x,
                            std::span<const double> kernel, std::span<const double> bias);
// The kernel and bias gradients of that chain for d loss / d pooled = dpooled.
void conv_relu_pool_backward(const nn::Conv2DDims& d, std::size_t pool, std::span<const double> x,
                             std::span<const double> kernel, const ConvReluPool& pass,
                             std::span<const double> dpooled, std::vector<double>& dkernel,
                             std::vector<double>& dbias);

// The course's model in double: Conv2D(relu) -> MaxPooling2D -> Flatten ->
// Dense(relu) -> Dense -> softmax with categorical cross-entropy from the
// logits (the model's loss), on a batch of conv.n images.
struct DoubleModel {
  nn::Conv2DDims conv;
  std::size_t pool = 2, hidden = 0, classes = 0;
  // In the order of Sequential::named_parameters(): conv2d.kernel, conv2d.bias,
  // dense.kernel, dense.bias, dense_1.kernel, dense_1.bias.
  std::array<std::vector<double>, 6> w;

  struct Pass {
    ConvReluPool conv;
    std::vector<double> hidden_z, hidden_a, logits, p;
  };
  // The weights of a float model of that architecture, for a batch x of
  // shape (N, H, W, C_in).
  static DoubleModel of(nn::Sequential& model, const nn::Shape& x);
  std::size_t flat() const;  // the Flatten width: 5408 for the course's model
  Pass forward(std::span<const double> x) const;
  // The layers after the pooling, on pass.conv.pooled (fills the rest of pass).
  void forward_dense(Pass& pass) const;
  double loss(std::span<const double> x, std::span<const double> y) const;
  // The loss from pass.conv.pooled on: for a step in a Dense weight, the
  // convolution's output stays the same and need not be recomputed.
  double loss_from_pooled(Pass& pass, std::span<const double> y) const;
  // d loss / d w, in the order of w.
  std::array<std::vector<double>, 6> gradients(std::span<const double> x, std::span<const double> y) const;
};

}  // namespace testing_nn
