#pragma once
// The course's model checked in double (chapter 09's `ch09-sgd --gradcheck`
// and the tests): Conv2D(relu) -> MaxPooling2D -> Flatten -> Dense(relu) ->
// Dense rebuilt in double from the library's naive kernels (they are
// templates, written once; nothing here re-implements one), so that the
// differences are not drowned by float rounding. Part of nn_course: it knows
// the course's one architecture. The generic checks are in nn/gradcheck.hpp.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/gradcheck.hpp"
#include "nn/model.hpp"
#include "nn/tensor.hpp"

namespace nn {

// The smallest |v|: how far the closest pre-activation is from the ReLU's kink.
double smallest_magnitude(std::span<const double> v);

// Over the pool x pool windows of a (shape (N, H, W, C)) whose maximum is
// positive: the smallest gap between the maximum and the runner-up. A step
// smaller than half of it cannot change which input wins a window.
double smallest_pool_gap(const Shape& shape, std::size_t pool, std::span<const double> a);

// Conv2D(relu) then MaxPooling2D in double, from the naive kernels: the
// reference of the fused step (nn/fused.hpp).
struct ConvReluPool {
  std::vector<double> z;       // the convolution before the ReLU: (N, OH, OW, C_out)
  std::vector<double> a;       // after it
  std::vector<double> pooled;  // (N, OH / pool, OW / pool, C_out)
};
ConvReluPool conv_relu_pool(const Conv2DDims& d, std::size_t pool, std::span<const double> x,
                            std::span<const double> kernel, std::span<const double> bias);
// The kernel and bias gradients of that chain for d loss / d pooled = dpooled.
void conv_relu_pool_backward(const Conv2DDims& d, std::size_t pool, std::span<const double> x,
                             std::span<const double> kernel, const ConvReluPool& pass,
                             std::span<const double> dpooled, std::vector<double>& dkernel,
                             std::vector<double>& dbias);

// The course's model in double: Conv2D(relu) -> MaxPooling2D -> Flatten ->
// Dense(relu) -> Dense -> softmax with categorical cross-entropy from the
// logits (the model's loss), on a batch of conv.n images.
struct DoubleModel {
  Conv2DDims conv;
  std::size_t pool = 2, hidden = 0, classes = 0;
  // In the order of Sequential::named_parameters(): conv2d.kernel, conv2d.bias,
  // dense.kernel, dense.bias, dense_1.kernel, dense_1.bias.
  std::array<std::vector<double>, 6> w;
  // A planted bug, to see what a broken gradient looks like: the layer named
  // here ("conv2d", "dense" or "dense_1") gives its kernel and bias gradients
  // with the wrong sign. Empty: no bug.
  std::string broken;

  struct Pass {
    ConvReluPool conv;
    std::vector<double> hidden_z, hidden_a, logits, p;
  };
  // The weights of a float model of that architecture, for a batch x of
  // shape (N, H, W, C_in).
  static DoubleModel of(Sequential& model, const Shape& x);
  std::size_t flat() const;  // the Flatten width: 5408 for the course's model
  Pass forward(std::span<const double> x) const;
  // The layers after the pooling, on pass.conv.pooled (fills the rest of pass).
  void forward_dense(Pass& pass) const;
  double loss(std::span<const double> x, std::span<const double> y) const;
  // The loss after a step in column `unit` of Dense(100)'s kernel or in its
  // bias `unit`: only that unit's pre-activations change. They are summed
  // again (the same sums, in the same order, as forward_dense), the others
  // are taken from pass.hidden_z, so the result is the same to the bit.
  double loss_from_hidden_unit(const Pass& pass, std::size_t unit, std::span<const double> y) const;
  // The loss from pass.hidden_z on: a step in Dense(10) changes nothing before it.
  double loss_from_hidden(const Pass& pass, std::span<const double> y) const;
  // d loss / d w, in the order of w.
  std::array<std::vector<double>, 6> gradients(std::span<const double> x, std::span<const double> y) const;

 private:
  // ReLU, Dense(10), softmax and the loss from Dense(100)'s pre-activations z (N, hidden).
  double head_loss(std::span<const double> z, std::vector<double>& a, std::vector<double>& logits,
                   std::vector<double>& p, std::span<const double> y) const;
};

// How far the analytic and the numeric gradient of a tensor may be apart
// (tensor_relative_error, with the floor at kGradientFloor of the tensor's
// largest gradient) for the check to call it right. A right gradient is off
// by the double rounding of the loss divided by 2h, about 5e-10, which is
// about 1e-6 of a floor of 1% of a gradient of 0.05; a wrong one is off by
// its own size: 1, or exactly 2 for a flipped sign.
inline constexpr double kGradientFloor = 1e-2;
inline constexpr double kGradientTolerance = 1e-4;

// The whole model's check: for each weight tensor, the analytic gradient of
// the double model against central differences with step eps, on every
// entry, except the (5408, 100) Dense kernel, of which `dense_samples`
// entries drawn from `seed` are checked.
struct TensorGradientCheck {
  std::string name;                   // "conv2d.kernel", ...
  std::vector<std::size_t> which;     // the entries checked (empty: all)
  std::vector<double> analytic;       // the backward pass's gradient there
  std::vector<double> numeric;        // central differences there
  std::size_t checked() const { return numeric.size(); }
  // tensor_relative_error: each entry's |analytic - numeric| over
  // max(|analytic|, |numeric|, floor), the floor at `fraction` of the
  // largest |numeric|. An entry near 0 is judged by its absolute error:
  // against its own size, the rounding noise of the loss would look large.
  double max_relative_error(double fraction = kGradientFloor) const;
  double max_abs_error() const;
  double largest() const;  // the largest |numeric|
};
// How far the model's units are from a kink on a batch: the smallest
// |pre-activation| of the convolution and of Dense(100), and the smallest gap
// between a pooling window's maximum and its runner-up. A central difference
// is exact (up to rounding) only where no step of h crosses a kink.
struct KinkMargins {
  double conv = 0, pool_gap = 0, hidden = 0;
  // The most a step of 1 in any one weight moves a Dense(100)
  // pre-activation, from the weights and the batch: a step in Dense(100)'s
  // kernel moves it by a pooled value, in its bias by 1, and in a conv weight
  // of channel c through all of c's pooled values at once, each moved by at
  // most 1: by the sum of |kernel| over c's rows.
  double hidden_reach = 1;
  // A step of h in a conv weight moves a conv unit by h times a pixel (in
  // [0, 1]) or, in a bias, by h: at most h. So every |z| above h stays on
  // its side of the ReLU's kink, and a window's winner that leads by more
  // than h keeps winning (both move by at most h in the same direction, and
  // the gap by at most h). Twice that leaves room; a Dense(100) unit the same
  // with its reach.
  bool clear(double h) const { return conv > 2 * h && pool_gap > 2 * h && hidden > 2 * hidden_reach * h; }
};
KinkMargins kink_margins(Sequential& model, const Tensor& x);

struct ModelGradientCheck {
  double eps = 0;
  double loss = 0;
  KinkMargins margins;
  std::vector<TensorGradientCheck> tensors;
};
ModelGradientCheck check_model_gradients(Sequential& model, const Tensor& x, const Tensor& y, double eps,
                                         std::size_t dense_samples, std::uint64_t seed,
                                         const std::string& broken = "");

// The names of the tensors whose max_relative_error is above `tolerance`, in order.
std::vector<std::string> wrong_tensors(const ModelGradientCheck& check, double tolerance = kGradientTolerance);

// Chapter 09's `ch09-sgd --gradcheck` from one seed: the course's model made
// from `seed`, its biases drawn from [-0.1, 0.1) (Keras's zeros put every
// unit on a blank patch on the ReLU's kink), `images` images of random pixels
// (a digit's blank background makes pooling windows tie), drawn again, up to
// 100 times, until the margins clear h; labels 3, 8, 3, 8, ...; then
// check_model_gradients with 2000 samples of the big kernel.
struct SeededGradientCheck {
  Sequential model;
  Tensor x, y;    // (images, 28, 28, 1), (images, 10)
  int draws = 0;  // the draw of the pixels that was used
  ModelGradientCheck check;
};
SeededGradientCheck seeded_gradient_check(std::uint64_t seed, const std::string& broken = "", double h = 1e-6,
                                          std::size_t images = 2);

}  // namespace nn
