#pragma once
// A layer written as its forward pass alone, with the gradient tape's
// operations (nn/tape.hpp, chapter 13): its backward pass is the tape's. It
// is how a Keras user writes a layer of their own (a `call` method, no
// backward) and how a block that is not a stack enters a Sequential model:
//
//   nn::TapeLayer block({.type = "Residual", .base_name = "residual"},
//                       {nn::Parameter("kernel", w), nn::Parameter("bias", b)},
//                       [](nn::Var x, std::span<const nn::Var> w) {
//                         return nn::relu(nn::add(x, nn::dense(x, w[0], w[1])));   // x + f(x)
//                       });
//   model.add(std::move(block));
//
// forward records the function on the layer's own tape, with x as a variable
// and every weight as a parameter; backward plays that tape back from dy.
// backward follows the last forward on the same x, as Sequential calls them.
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nn/layer.hpp"
#include "nn/tape.hpp"

namespace nn {

struct TapeLayerOptions {
  std::string type = "TapeLayer";       // what summary() shows, as a Keras class name
  std::string base_name = "tape_layer";  // Keras's automatic name: then "tape_layer_1", ...
};

class TapeLayer final : public Layer {
 public:
  // y = function(x, weights): the weights as the tape's parameters, in the order given.
  using Function = std::function<Var(Var x, std::span<const Var> weights)>;
  TapeLayer(TapeLayerOptions options, std::vector<Parameter> weights, Function function);

  std::string type() const override { return options_.type; }
  std::string base_name() const override { return options_.base_name; }
  // The function's output shape for x's shape: recorded once on zeros of that shape.
  Shape output_shape(const Shape& x) const override;
  ConstView forward(const Tensor& x) override;
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) override;
  std::vector<Parameter*> parameters() override;
  Var record(Var x) override;  // the function, on x's tape
  // The tape of the last forward pass (its listing, its bytes).
  const Tape& tape() const { return *tape_; }

 private:
  TapeLayerOptions options_;
  std::vector<Parameter> weights_;
  Function function_;
  std::unique_ptr<Tape> tape_ = std::make_unique<Tape>();  // a pointer, so that the layer can move
  Var in_, out_;
};

// Chapter 13's residual block on `width` features: relu(x + f(x)) with
// f(x) = relu(x W1 + b1) W2 + b2, both kernels (width, width) glorot_uniform
// from `seed` and `seed + 1`, the biases zero (Keras's defaults). x reaches
// the output by two paths, which no stack of layers can express.
TapeLayer make_residual_block(std::size_t width, std::uint64_t seed);

}  // namespace nn
