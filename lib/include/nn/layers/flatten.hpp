#pragma once
// The Flatten layer: Flatten() in the Keras program, (N, 13, 13, 32) -> (N, 5408).
//
// The elements are already laid out one image after another, and inside an
// image in NHWC order (row, column, channel), so flattening changes only the
// shape: it is a view of the same buffer, not a copy. Its backward pass is the
// reverse reshape of the gradient, also a view. Both views are read-only
// (nn::ConstView): Flatten reads its input, it never owns or changes it.
#include "nn/layer.hpp"

namespace nn {

// (N, H, W, C) -> (N, H*W*C); throws nn::Error for an input without a batch
// axis and at least one more.
Shape flatten_output_shape(const Shape& x);

class Flatten final : public Layer {
 public:
  std::string type() const override { return "Flatten"; }
  std::string base_name() const override { return "flatten"; }
  Shape output_shape(const Shape& x) const override { return flatten_output_shape(x); }
  // [snippet flatten]
  // x: (N, H, W, C) -> (N, H*W*C), the same buffer, read-only.
  ConstView forward(const Tensor& x) override { return x.reshape(flatten_output_shape(x.shape())); }
  // dy: (N, H*W*C) -> dx: (N, H, W, C), the same buffer, read-only.
  ConstView backward(const Tensor& x, const Tensor&, const Tensor& dy, bool = true) override {
    return dy.reshape(x.shape());
  }
  // [end snippet flatten]
  Var record(Var x) override { return flatten(x); }  // chapter 13: the tape's reshape, a view too
};

}  // namespace nn
