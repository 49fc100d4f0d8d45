#include "nn/layers/dropout.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/parallel.hpp"
#include "nn/random.hpp"

namespace nn {

Dropout::Dropout(const DropoutOptions& options) : options_(options) {
  if (!(options.rate >= 0.0 && options.rate <= 1.0))
    throw Error(fmt::format("Dropout: rate {} is outside [0, 1]", options.rate));
}

ConstView Dropout::forward(const Tensor& x) {
  masked_ = training && options_.rate > 0.0;
  if (!masked_) return x;  // inference, or nothing to drop: the identity
  ensure_shape(y_, x.shape());
  keep_.resize(x.size());
  // [snippet dropout-forward]
  const float keep_probability = static_cast<float>(1.0 - options_.rate);
  const std::uint64_t key = draw_key(options_.seed, draws++);
  const float* in = x.data();
  float* out = y_.data();
  parallel_for(0, x.size(), [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) {
      keep_[i] = uniform01(key, i) < keep_probability;
      out[i] = keep_[i] ? in[i] / keep_probability : 0.0f;  // Keras divides: x / keep
    }
  });
  // [end snippet dropout-forward]
  return y_;
}

ConstView Dropout::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, bool need_dx) {
  if (!need_dx) return {};  // no weights: the input gradient is all there is
  if (!masked_) return dy;
  if (dy.shape() != x.shape() || keep_.size() != x.size())
    throw Error(fmt::format("Dropout: dy {} does not match the last forward's input {}", dy.shape().str(),
                            x.shape().str()));
  ensure_shape(dx_, x.shape());
  const float keep_probability = static_cast<float>(1.0 - options_.rate);
  const float* g = dy.data();
  float* out = dx_.data();
  // y = x / keep where kept: dy/dx = 1 / keep there, 0 elsewhere.
  parallel_for(0, x.size(), [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) out[i] = keep_[i] ? g[i] / keep_probability : 0.0f;
  });
  return dx_;
}

}  // namespace nn
