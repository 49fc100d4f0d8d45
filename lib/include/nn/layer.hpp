#pragma once
// The one interface every layer implements, the course's own and a learner's.
//
//   class Scale : public nn::Layer {                 // y = s * x, one weight
//    public:
//     nn::Parameter s{"scale", nn::Tensor({1}, 1.0f)};
//     std::string type() const override { return "Scale"; }
//     std::string base_name() const override { return "scale"; }
//     nn::Shape output_shape(const nn::Shape& x) const override { return x; }
//     nn::ConstView forward(const nn::Tensor& x) override;                 // y = s x
//     nn::ConstView backward(const nn::Tensor& x, const nn::Tensor& y,
//                            const nn::Tensor& dy, bool need_dx) override; // ds = sum(x dy), dx = s dy
//     std::vector<nn::Parameter*> parameters() override { return {&s}; }
//   };
//   model.add(Scale());
//
// A model runs forward through its layers, computes the loss and its gradient
// dL/dz at the last output, then runs backward from the last layer to the
// first: each layer turns the gradient of its output into the gradient of
// its input, and on the way stores the gradient of each of its parameters.
// The optimizer then moves every parameter against its gradient.
#include <cstddef>
#include <string>
#include <vector>

#include "nn/parameter.hpp"
#include "nn/shape.hpp"
#include "nn/tape.hpp"
#include "nn/tensor.hpp"

namespace nn {

class Optimizer;
enum class Conv2DVariant;  // nn/conv2d.hpp

// What a layer tells Sequential's execution plan (lib/src/model/model_plan.cpp)
// about itself, for fusion: a layer that declares conv_relu, directly
// followed by one that declares max_pool, runs as one fused step
// (nn/fused.hpp) that computes with the first one's kernel and bias and
// writes their gradients. A layer that declares nothing (the default, and
// every layer of your own) runs as itself.
struct FusionRole {
  enum class Kind { none, conv_relu, max_pool };
  Kind kind = Kind::none;
  // conv_relu: y = relu(conv2d(x, kernel) + bias), "valid" padding, stride 1,
  // computed with `variant`; kernel (KH, KW, C_in, C_out), bias (C_out,).
  Parameter* kernel = nullptr;
  Parameter* bias = nullptr;
  Conv2DVariant variant{};
  // max_pool: the maximum of each non-overlapping pool x pool window.
  std::size_t pool = 0;
};

// [snippet layer-interface]
class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string type() const = 0;       // the Keras class: "Conv2D"
  virtual std::string base_name() const = 0;  // Keras's automatic name: "conv2d" (then "conv2d_1", ...)

  // Keras's build(input_shape): Sequential::add calls it once, with the
  // output shape of the layer before (batch axis included, of size 1), before
  // it asks output_shape or uses any weight. A layer whose weights depend on
  // its input (Dense's kernel on the input width) makes them here; it throws
  // nn::Error when it cannot take that input. The default does nothing.
  virtual void build(const Shape& /*input_shape*/) {}

  // The output shape for an input shape, batch axis included; throws
  // nn::Error when the layer cannot take that input.
  virtual Shape output_shape(const Shape& x) const = 0;

  // y = layer(x). Returns a read-only view of a buffer the layer keeps and
  // reuses, valid until the layer's next call: after the first batch a
  // training step allocates nothing.
  virtual ConstView forward(const Tensor& x) = 0;

  // From forward's input x, its output y and dy = dL/dy: writes dL/dw into
  // the `grad` of every trainable parameter and returns dx = dL/dx (a view, like
  // forward's). With need_dx false it may return an empty view: the first
  // layer's input gradient is never used, and skipping it saves time.
  virtual ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) = 0;

  // backward, then the optimizer's update of this layer's parameters, in a
  // training step (the optimizer's begin_step has run). The default does
  // exactly that. A layer may instead update each block of a weight as soon
  // as that block's gradient is known, while it is still in the cache (Dense
  // does), and then need not write `grad`.
  virtual ConstView backward_and_update(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx,
                                        Optimizer& optimizer);

  // The layer's weights, in Keras's order (kernel, then bias); none for
  // layers without weights. Non-trainable state (Parameter::trainable false,
  // e.g. a moving mean) is listed here too, after the trainable weights as
  // Keras's layer.weights lists it: it is saved and loaded with them, and
  // the optimizers skip it.
  virtual std::vector<Parameter*> parameters() { return {}; }

  std::size_t param_count();  // the sum of the parameters' sizes, trainable or not: Keras's "Param #"

  // What the layer can be fused as (see FusionRole); asked when the plan is
  // built and at every call of a fused step. The default: nothing.
  virtual FusionRole fusion_role() { return {}; }

  // The forward pass as gradient-tape operations (nn/tape.hpp, chapter 13),
  // recorded on x's tape: the same values as forward, so that the tape can
  // find the gradients without this layer's backward. Every layer of the
  // course's models has one; the default throws nn::Error naming the layer.
  virtual Var record(Var x);

  std::string name;  // "dense_1": given by Sequential::add

  // Keras's `training` argument of call(): Sequential sets it on every layer
  // before each forward pass, true in a training step (fit, train_on_batch,
  // compute_gradients), false in evaluate and predict. Only layers that act
  // differently while training read it (Dropout, RandomTranslation).
  bool training = false;
};
// [end snippet layer-interface]

}  // namespace nn
