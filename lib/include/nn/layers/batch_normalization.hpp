#pragma once
// The BatchNormalization layer: Keras's BatchNormalization() with its
// defaults (axis=-1, momentum=0.99, epsilon=0.001), e.g. after a Conv2D.
//
//   nn::BatchNormalization bn({.channels = 32});
//   bn.training = true;                     // Sequential sets it: true in fit, false in evaluate/predict
//   nn::ConstView y = bn.forward(x);        // (N, ..., 32) -> the same shape
//
// In training each channel is normalized with the batch's mean and biased
// variance, and the moving statistics move toward them (momentum 0.99);
// outside training the moving statistics are used. The kernels and the Keras
// and TensorFlow.js facts behind them: nn/batch_norm.hpp.
//
// Its weights, as Keras stores them, all of shape (C,):
//   gamma            ones    trainable
//   beta             zeros   trainable
//   moving_mean      zeros   not trainable: updated by the forward pass
//   moving_variance  ones    not trainable
// The moving statistics are non-trainable (Parameter::trainable false):
// saved, loaded and counted ("Non-trainable params"), never moved by the
// optimizer, and without a gradient.
#include <cstddef>

#include "nn/batch_norm.hpp"
#include "nn/layer.hpp"

namespace nn {

struct BatchNormalizationOptions {
  std::size_t channels = 0;  // C, the last axis; 0: from the first input (build)
  double momentum = 0.99;    // Keras's default
  double epsilon = 0.001;    // Keras's default
};

class BatchNormalization final : public Layer {
 public:
  explicit BatchNormalization(const BatchNormalizationOptions& options = {});

  Parameter gamma;            // (C,)
  Parameter beta;             // (C,)
  Parameter moving_mean;      // (C,)
  Parameter moving_variance;  // (C,)

  const BatchNormalizationOptions& options() const { return options_; }

  std::string type() const override { return "BatchNormalization"; }
  std::string base_name() const override { return "batch_normalization"; }
  // Keras's build(input_shape) (Sequential::add calls it): makes the four
  // weights for C = x's last axis the first time; afterwards checks that the
  // last axis is C. Throws nn::Error on a shape without a channel axis or a
  // mismatch.
  void build(const Shape& x) override;
  bool built() const { return gamma.value.rank() == 1; }
  Shape output_shape(const Shape& x) const override;
  // x: (N, ..., C) -> y, the same shape (builds the layer on its first call).
  ConstView forward(const Tensor& x) override;
  // After a training forward: dgamma, dbeta and dx through the batch
  // statistics. After an inference forward: throws nn::Error (Keras trains
  // this layer in training mode; a frozen layer's gradient is not written).
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) override;
  // gamma, beta, moving_mean, moving_variance: Keras's layer.weights order.
  std::vector<Parameter*> parameters() override { return {&gamma, &beta, &moving_mean, &moving_variance}; }

 private:
  BatchNormalizationOptions options_;
  bool trained_forward_ = false;  // was the last forward in training?
  Tensor y_, dx_;
  Tensor batch_mean_, batch_variance_;  // (C,): the last training forward's statistics
};

}  // namespace nn
