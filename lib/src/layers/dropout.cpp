#include "nn/layers/dropout.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/dropout.hpp"
#include "nn/random.hpp"

namespace nn {

std::uint64_t Dropout::first_element(const Shape& x) const {
  return x.rank() == 0 || x[0] == 0 ? 0 : first_row * (x.size() / x[0]);  // rows before ours, times a row's elements
}

Dropout::Dropout(const DropoutOptions& options) : options_(options) {
  if (!(options.rate >= 0.0 && options.rate <= 1.0))
    throw Error(fmt::format("Dropout: rate {} is outside [0, 1]", options.rate));
}

ConstView Dropout::forward(const Tensor& x) {
  masked_ = training && options_.rate > 0.0;
  if (!masked_) return x;  // inference, or nothing to drop: the identity
  // Each training call draws the next mask: number `draws` of this seed.
  dropout_forward(x, options_.rate, draw_key(options_.seed, draws++), y_, keep_, first_element(x.shape()));
  return y_;
}

Var Dropout::record(Var x) {
  if (!training || options_.rate == 0.0) return x;
  return dropout(x, options_.rate, draw_key(options_.seed, draws++), first_element(x.shape()));
}

ConstView Dropout::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, bool need_dx) {
  if (!need_dx) return {};  // no weights: the input gradient is all there is
  if (!masked_) return dy;
  if (dy.shape() != x.shape() || keep_.size() != x.size())
    throw Error(fmt::format("Dropout: dy {} does not match the last forward's input {}", dy.shape().str(),
                            x.shape().str()));
  dropout_backward(dy, options_.rate, keep_, dx_);
  return dx_;
}

}  // namespace nn
