#pragma once
// Gradient checking: a backward pass against central differences, in double
// precision. The finite differences themselves (chapter 00), and the check of
// any layer through the nn::Layer interface: the course's layers and a
// learner's alike. The course's whole model in double (chapter 09's
// `ch09-sgd --gradcheck`) is in nn_course: nn/model_gradcheck.hpp.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nn/layer.hpp"
#include "nn/tensor.hpp"

namespace nn {

// A tensor's values, in double.
std::vector<double> as_double(const Tensor& t);

// (f(w + h) - f(w)) / h: the one-sided difference, error O(h).
double forward_difference(const std::function<double(double)>& f, double w, double h);

// (f(w + h) - f(w - h)) / (2 h): the centred difference, error O(h^2).
double central_difference(const std::function<double(double)>& f, double w, double h);

// The centred difference of loss() in each entry `which` of `param` (every
// entry when `which` is empty), with step eps; `param` is restored after each.
std::vector<double> central_differences(std::vector<double>& param, const std::function<double()>& loss,
                                        double eps, std::span<const std::size_t> which = {});

// |analytic - numeric| / max(|analytic|, |numeric|), 0 when both are 0: an
// error that means the same for a gradient of 1e-4 and one of 1e4. With a
// floor, the denominator is never below it: an entry whose gradient is
// nearly 0 is judged by its absolute error in units of `floor`, since its
// own size, as small as the rounding noise, says nothing.
double relative_error(double analytic, double numeric, double floor = 0);

// The largest relative_error over a tensor's entries, with the floor at
// `fraction` of the tensor's largest |numeric|: entries above that floor are
// judged each against its own size, smaller ones against the floor. 0 when
// both are all zeros. Every gradient check in the library reports this.
double tensor_relative_error(std::span<const double> analytic, std::span<const double> numeric, double fraction);

// The entries `which` of v (all of v when `which` is empty).
std::vector<double> pick(std::span<const double> v, std::span<const std::size_t> which);

// `count` distinct indices in [0, n), drawn from `seed`, sorted.
std::vector<std::size_t> sample_indices(std::size_t n, std::size_t count, std::uint64_t seed);

// n uniform random doubles in [lo, hi), the same for the same seed.
std::vector<double> random_doubles(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0);

// ---- Any layer, through the nn::Layer interface ---------------------------
//
// The gradients a layer's backward pass gives, against central differences
// of L = sum(r * layer(x)) with r random (so dL/dy = r): dL/dx, and dL/dw for
// every parameter w. It needs nothing but the interface. In a test:
//
//   nn::Dense layer({.units = 3, .input_dim = 5, .seed = 1});
//   const nn::Tensor x({4, 5}, values);               // a batch the layer takes
//   EXPECT_EQ(nn::layer_gradient_problems(layer, x, /*seed=*/7), "");
//
// The layer runs as it is set: set layer.training first for a layer that
// computes otherwise while training. Each call of forward must give the same
// output for the same x and weights (no randomness drawn per call), and
// backward must follow the forward pass on the same x.
//
// The layer computes in float; the loss and the differences are taken in
// double, and the step each difference divides by is the one that the
// rounded float inputs actually took. Where the layer is linear between
// kinks (products and sums, ReLU's 0, a window's maximum) a central
// difference is exact whatever the step: what is left is the float rounding
// of the outputs, about 1e-7 of them per step, divided by 2h. An entry whose
// step crosses a kink (the two one-sided differences disagree) is skipped
// and counted. A smooth but curved layer (a normalization, a softmax) has an
// O(h^2) difference error on top: choose h (and the tolerance) for it.
struct LayerGradientCheck {
  std::string tensor;           // "x", "kernel", "bias", ...
  std::size_t checked = 0;      // entries compared
  std::size_t at_kink = 0;      // entries skipped: a kink within the step
  double largest = 0;           // the largest |numeric gradient| seen
  double worst = 0;             // the largest |analytic - numeric|
  std::size_t worst_index = 0;  // where
  double analytic = 0, numeric = 0;  // the two values there
  // The worst entry's nn::relative_error with the floor at the tensor's
  // largest gradient: a float layer's rounding is a fraction of that scale.
  double relative_error() const { return nn::relative_error(analytic, numeric, largest); }
};

// One report for x, then one for each trainable parameter (non-trainable state has no gradient) in the order of
// layer.parameters(): up to `samples` entries of each (all of them when a
// tensor is smaller), chosen from `seed`, with steps of h. Leaves the
// weights as they were and the layer as after a forward pass on x. Throws
// nn::Error when a gradient has another size than its tensor.
std::vector<LayerGradientCheck> check_layer_gradients(Layer& layer, const Tensor& x, std::uint64_t seed,
                                                      double h = 1e-2, std::size_t samples = 300);
// "" when, for x and every parameter, some entries were checked, at most a
// tenth sat at a kink, and the worst error is within `tolerance` of the
// tensor's largest gradient; else one line per failing tensor, naming the
// layer type, the tensor, the index and both values.
std::string layer_gradient_problems(Layer& layer, const Tensor& x, std::uint64_t seed, double tolerance = 1e-3,
                                    double h = 1e-2);

}  // namespace nn
