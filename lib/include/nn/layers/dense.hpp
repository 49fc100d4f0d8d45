#pragma once
// The Dense layer: Dense(100, activation="relu") and Dense(10) in the Keras program.
//
//   nn::Dense hidden({.units = 100, .activation = nn::Activation::relu, .seed = 2});
//   nn::ConstView h = hidden.forward(features);   // (N, 5408) -> (N, 100)
//
// As in Keras, the input width comes from the input: build() (called by
// Sequential::add with the shape of the layer before, or by the first
// forward) makes the kernel for it. input_dim, when given, makes the kernel
// at once, and must then match the input the layer is built for.
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
  std::size_t input_dim = 0;     // in; 0: from the input, at build (as Keras infers it)
  Activation activation = Activation::linear;
  std::uint64_t seed = 0;        // for glorot_uniform
  DenseVariant variant = DenseVariant::fast;
  float init_scale = 1.0f;       // times glorot_uniform's limit (1: Keras's)
};

class Dense final : public Layer {
 public:
  explicit Dense(const DenseOptions& options);

  Parameter kernel;  // (in, out); empty until built when input_dim is 0
  Parameter bias;    // (out,)

  const DenseOptions& options() const { return options_; }
  void set_variant(DenseVariant v) { options_.variant = v; }

  std::string type() const override { return "Dense"; }
  std::string base_name() const override { return "dense"; }
  // x: (N, in): makes the kernel (in, out) for in = x[1] the first time
  // (glorot_uniform from the seed: the same values as input_dim = in gives);
  // then, and with input_dim given, checks that in is the kernel's.
  void build(const Shape& x) override;
  bool built() const { return kernel.value.rank() == 2; }
  Shape output_shape(const Shape& x) const override;
  // x: (N, in) -> y = activation(x W + b): (N, out)
  ConstView forward(const Tensor& x) override;
  Var record(Var x) override;  // dense, then relu with activation relu (the fast variant's kernels)
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
