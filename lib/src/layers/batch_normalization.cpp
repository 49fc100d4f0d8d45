#include "nn/layers/batch_normalization.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"

namespace nn {

BatchNormalization::BatchNormalization(const BatchNormalizationOptions& options)
    : gamma("gamma", Tensor()),
      beta("beta", Tensor()),
      moving_mean("moving_mean", Tensor(), false),
      moving_variance("moving_variance", Tensor(), false),
      options_(options) {
  if (!(options.momentum >= 0.0 && options.momentum <= 1.0))
    throw Error(fmt::format("BatchNormalization: momentum {} is outside [0, 1]", options.momentum));
  if (!(options.epsilon > 0.0))
    throw Error(fmt::format("BatchNormalization: epsilon {} must be positive", options.epsilon));
  if (options.channels > 0) build(Shape({1, options.channels}));
}

void BatchNormalization::build(const Shape& x) {
  if (x.rank() < 2 || x.dims().back() == 0)
    throw Error(fmt::format("BatchNormalization: input {} has no channel axis (want (N, ..., C))", x.str()));
  const std::size_t c = x.dims().back();
  if (built()) {
    if (c != gamma.size())
      throw Error(fmt::format("BatchNormalization: input {} has {} channels, the layer was built for {}", x.str(), c,
                              gamma.size()));
    return;
  }
  gamma = Parameter("gamma", Tensor({c}, 1.0f));
  beta = Parameter("beta", Tensor({c}, 0.0f));
  moving_mean = Parameter("moving_mean", Tensor({c}, 0.0f), /*is_trainable=*/false);
  moving_variance = Parameter("moving_variance", Tensor({c}, 1.0f), /*is_trainable=*/false);
  batch_mean_ = Tensor({c});
  batch_variance_ = Tensor({c});
}

Shape BatchNormalization::output_shape(const Shape& x) const {
  if (x.rank() < 2) throw Error(fmt::format("BatchNormalization: input {} has no channel axis", x.str()));
  if (built() && x.dims().back() != gamma.size())
    throw Error(fmt::format("BatchNormalization: input {} has {} channels, the layer was built for {}", x.str(),
                            x.dims().back(), gamma.size()));
  return x;
}

ConstView BatchNormalization::forward(const Tensor& x) {
  build(x.shape());
  ensure_shape(y_, x.shape());
  const std::size_t c = gamma.size(), rows = x.size() / c;
  trained_forward_ = training;
  if (training) {
    batch_norm_forward_training(rows, c, x.data(), gamma.value.data(), beta.value.data(), options_.epsilon, y_.data(),
                                batch_mean_.data(), batch_variance_.data());
    // Keras updates the moving statistics in the training call itself.
    batch_norm_update_moving(c, batch_mean_.data(), batch_variance_.data(), options_.momentum,
                             moving_mean.value.data(), moving_variance.value.data());
  } else {
    batch_norm_forward_inference(rows, c, x.data(), gamma.value.data(), beta.value.data(), moving_mean.value.data(),
                                 moving_variance.value.data(), options_.epsilon, y_.data());
  }
  return y_;
}

ConstView BatchNormalization::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, bool need_dx) {
  if (!trained_forward_)
    throw Error("BatchNormalization: backward needs a training forward (training = true) before it");
  if (dy.shape() != x.shape())
    throw Error(fmt::format("BatchNormalization: dy {} does not match the input {}", dy.shape().str(), x.shape().str()));
  const std::size_t c = gamma.size(), rows = x.size() / c;
  float* dx = nullptr;
  if (need_dx) {
    ensure_shape(dx_, x.shape());
    dx = dx_.data();
  }
  batch_norm_backward(rows, c, x.data(), gamma.value.data(), batch_mean_.data(), batch_variance_.data(),
                      options_.epsilon, dy.data(), dx, gamma.grad.data(), beta.grad.data());
  if (!need_dx) return {};
  return dx_;
}

}  // namespace nn
