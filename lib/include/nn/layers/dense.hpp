#pragma once
// The Dense layer: Dense(100, activation="relu") and Dense(10) in the Keras program.
//
//   nn::Dense hidden({.units = 100, .input_dim = 5408, .activation = nn::Activation::relu, .seed = 2});
//   nn::ConstView h = hidden.forward(features);   // (N, 5408) -> (N, 100)
//
// Its weights, as Keras stores them:
//   kernel: (in, out)   glorot_uniform from the seed
//   bias:   (out,)      zeros
// The arithmetic is chapter 07's kernels (nn/dense.hpp); the activation comes
// after the product forward and before it backward.
#include <cstddef>
#include <cstdint>

#include "nn/activations.hpp"
#include "nn/dense.hpp"
#include "nn/layer.hpp"

namespace nn {

struct DenseOptions {
  std::size_t units = 100;       // out
  std::size_t input_dim = 5408;  // in (Keras infers it from the layer before)
  Activation activation = Activation::linear;
  std::uint64_t seed = 0;        // for glorot_uniform
  DenseVariant variant = DenseVariant::fast;
};

class Dense final : public Layer {
 public:
  explicit Dense(const DenseOptions& options);

  Parameter kernel;  // (in, out)
  Parameter bias;    // (out,)

  const DenseOptions& options() const { return options_; }
  void set_variant(DenseVariant v) { options_.variant = v; }

  std::string type() const override { return "Dense"; }
  std::string base_name() const override { return "dense"; }
  Shape output_shape(const Shape& x) const override;
  // x: (N, in) -> y = activation(x W + b): (N, out)
  ConstView forward(const Tensor& x) override;
  // dy: (N, out) -> dx: (N, in); y (forward's output) gives the ReLU's mask.
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) override;
  // The fast variant updates the kernel block by block during the backward
  // pass (dense_backward_update), leaving kernel.grad unwritten.
  ConstView backward_and_update(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx,
                                Optimizer& optimizer) override;
  std::vector<Parameter*> parameters() override { return {&kernel, &bias}; }

 private:
  DenseOptions options_;
  Tensor y_, dx_, relu_grad_;  // reused from batch to batch
};

}  // namespace nn
