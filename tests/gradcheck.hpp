#pragma once
// What the gradient checks share: central differences in double and the
// course's model in double come from the library (nn/gradcheck.hpp); here,
// the check of any layer through the nn::Layer interface.
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

// From the library (nn/gradcheck.hpp), where chapter 09's
// `ch09-sgd --gradcheck` runs the same code as these tests.
using nn::as_double;
using nn::central_differences;
using nn::conv_relu_pool;
using nn::conv_relu_pool_backward;
using nn::ConvReluPool;
using nn::DoubleModel;
using nn::pick;
using nn::sample_indices;
using nn::smallest_magnitude;
using nn::smallest_pool_gap;

// n uniform random doubles in [lo, hi), the same for the same seed.
std::vector<double> random_doubles(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0);

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

// Checks up to `samples` entries of x and of each trainable parameter (all of them when
// a tensor is smaller), chosen from `seed`, with steps of h.
std::vector<LayerGradientCheck> check_layer_gradients(nn::Layer& layer, const nn::Tensor& x, std::uint64_t seed,
                                                      double h = 1e-2, std::size_t samples = 300);
// "" when, for x and every parameter, some entries were checked, at most a
// tenth sat at a kink, and the worst error is within `tolerance` of the
// tensor's largest gradient; else what failed, naming the tensor, the index
// and both values.
std::string layer_gradient_problems(nn::Layer& layer, const nn::Tensor& x, std::uint64_t seed,
                                    double tolerance = 1e-3, double h = 1e-2);

}  // namespace testing_nn
