#pragma once
// The Conv2D layer: Conv2D(32, (3, 3), activation="relu") in the Keras program.
//
//   nn::Conv2D conv({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = 1});
//   nn::ConstView y = conv.forward(x);         // (N, 28, 28, 1) -> (N, 26, 26, 32)
//   conv.backward(x, y, dy, /*need_dx=*/false); // -> conv.kernel.grad, conv.bias.grad
//
// Its weights, as Keras stores them:
//   kernel: (KH, KW, C_in, C_out)   glorot_uniform from the seed
//   bias:   (C_out,)                zeros
// As in Keras, the input's channels come from the input: build() (called by
// Sequential::add with the shape of the layer before, or by the first
// forward) makes the kernel for them. input_channels, when given, makes the
// kernel at once, and must then match the input the layer is built for.
//
// The arithmetic is chapter 04's kernels (nn/conv2d.hpp), with the variant
// chosen in the options; the activation comes after the convolution forward
// and before it backward.
#include <cstddef>
#include <cstdint>

#include "nn/activations.hpp"
#include "nn/conv2d.hpp"
#include "nn/layer.hpp"

namespace nn {

// Keras' kernel_size: Conv2D(32, 3) and Conv2D(32, (3, 5)) both work.
struct KernelSize {
  std::size_t h = 3, w = 3;
  constexpr KernelSize(std::size_t k) : h(k), w(k) {}  // NOLINT: implicit on purpose, `.kernel = 3`
  constexpr KernelSize(std::size_t kh, std::size_t kw) : h(kh), w(kw) {}
};

struct Conv2DOptions {
  std::size_t filters = 32;       // C_out
  KernelSize kernel = 3;          // (KH, KW)
  std::size_t input_channels = 0; // C_in; 0: from the input, at build (as Keras infers it)
  Activation activation = Activation::linear;
  std::uint64_t seed = 0;         // for glorot_uniform
  Conv2DVariant variant = Conv2DVariant::direct3x3;
  float init_scale = 1.0f;        // times glorot_uniform's limit (1: Keras's)
};

class Conv2D final : public Layer {
 public:
  explicit Conv2D(const Conv2DOptions& options);

  Parameter kernel;  // (KH, KW, C_in, C_out); empty until built when input_channels is 0
  Parameter bias;    // (C_out,)

  const Conv2DOptions& options() const { return options_; }
  void set_variant(Conv2DVariant v) { options_.variant = v; }

  std::string type() const override { return "Conv2D"; }
  std::string base_name() const override { return "conv2d"; }
  // x: (N, H, W, C_in): makes the kernel for C_in = x[3] the first time
  // (glorot_uniform from the seed: the same values as input_channels = C_in
  // gives); then, and with input_channels given, checks that C_in is the kernel's.
  void build(const Shape& x) override;
  bool built() const { return kernel.value.rank() == 4; }
  Shape output_shape(const Shape& x) const override;
  // x: (N, H, W, C_in) -> y: (N, OH, OW, C_out), the activation applied.
  ConstView forward(const Tensor& x) override;
  // dy: (N, OH, OW, C_out) -> dx: (N, H, W, C_in); y (forward's output) gives the ReLU's mask.
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) override;
  std::vector<Parameter*> parameters() override { return {&kernel, &bias}; }
  // conv_relu with activation relu: the plan fuses it with a MaxPooling2D after it.
  FusionRole fusion_role() override;
  Var record(Var x) override;  // conv2d, then relu with activation relu

 private:
  Conv2DOptions options_;
  Tensor y_, dx_, relu_grad_;  // reused from batch to batch
};

}  // namespace nn
