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
  std::uint8_t* keep = keep_.data();
  parallel_for(0, x.size(), [=](std::size_t lo, std::size_t hi) {
    // Locals, not the lambda's members, so that the compiler knows the stores
    // below cannot change them, and vectorizes the loop.
    const std::uint64_t k = key;
    const float p = keep_probability;
    const float* x_in = in;
    float* y_out = out;
    std::uint8_t* mask = keep;
    for (std::size_t i = lo; i < hi; ++i) {
      const bool kept = uniform01(k, i) < p;
      const float scaled = x_in[i] / p;  // Keras divides: x / keep (computed always: no branch)
      mask[i] = kept;
      y_out[i] = kept ? scaled : 0.0f;
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
  const std::uint8_t* keep = keep_.data();
  // y = x / keep where kept: dy/dx = 1 / keep there, 0 elsewhere.
  parallel_for(0, x.size(), [=](std::size_t lo, std::size_t hi) {
    const float p = keep_probability;
    const float* dy_in = g;
    float* dx_out = out;
    const std::uint8_t* mask = keep;
    for (std::size_t i = lo; i < hi; ++i) {
      const float scaled = dy_in[i] / p;
      dx_out[i] = mask[i] ? scaled : 0.0f;
    }
  });
  return dx_;
}

}  // namespace nn
