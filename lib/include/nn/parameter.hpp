#pragma once
// nn::Parameter: one weight tensor of a layer, with its name and its gradient.
// Its own header, below both the layers (nn/layer.hpp) and the optimizers
// (nn/optimizer.hpp), which both work on it.
#include <cstddef>
#include <string>
#include <utility>

#include "nn/shape.hpp"
#include "nn/tensor.hpp"

namespace nn {

// A weight tensor with its name and its gradient, as one object: backward
// writes `grad`, the optimizer reads it and updates `value`, and save/load
// name the file after it ("dense_1.kernel.npy"). `grad` is kept by
// Layer::backward (Sequential::compute_gradients); a training step
// (train_on_batch, fit) need not keep it: a layer may update its weights
// from each block of the gradient as it is computed and never write `grad`
// (Dense's kernel does), so after a training step `grad` holds whatever the
// last backward pass left there. Call compute_gradients to read gradients.
//
// A non-trainable weight (trainable = false, Keras's non_trainable_weights,
// e.g. BatchNormalization's moving_mean) is state the layer updates itself
// in its forward pass: it is saved, loaded and counted like the others
// ("Non-trainable params" in summary()), but has no gradient (`grad` stays
// empty), and the optimizers never touch it nor keep state for it.
// [snippet parameter]
struct Parameter {
  std::string name;  // "kernel", "bias": the model puts the layer's name in front
  Tensor value;
  Tensor grad;       // dL/dvalue from the last backward pass; the shape of value (empty when not trainable)
  bool trainable = true;
  Parameter(std::string parameter_name, Tensor initial, bool is_trainable = true)
      : name(std::move(parameter_name)), value(std::move(initial)),
        grad(is_trainable ? Tensor(value.shape()) : Tensor()), trainable(is_trainable) {}
  const Shape& shape() const { return value.shape(); }
  std::size_t size() const { return value.size(); }
};
// [end snippet parameter]

}  // namespace nn
