#pragma once
// The MaxPooling2D layer: MaxPooling2D((2, 2)) in the Keras program.
//
//   nn::MaxPooling2D pool({.pool = 2});
//   nn::ConstView pooled = pool.forward(maps);   // (N, 26, 26, 32) -> (N, 13, 13, 32)
//
// No weights. The arithmetic is chapter 05's kernels (nn/pooling.hpp).
#include <cstddef>

#include "nn/layer.hpp"
#include "nn/pooling.hpp"

namespace nn {

struct MaxPooling2DOptions {
  std::size_t pool = 2;
  MaxPoolVariant variant = MaxPoolVariant::vectorized;
};

class MaxPooling2D final : public Layer {
 public:
  explicit MaxPooling2D(const MaxPooling2DOptions& options = {}) : options_(options) {}
  const MaxPooling2DOptions& options() const { return options_; }

  std::string type() const override { return "MaxPooling2D"; }
  std::string base_name() const override { return "max_pooling2d"; }
  Shape output_shape(const Shape& x) const override { return max_pool2d_output_shape(x, options_.pool); }
  // x: (N, H, W, C) -> y: (N, H / pool, W / pool, C)
  ConstView forward(const Tensor& x) override;
  Var record(Var x) override { return max_pool2d(x, options_.pool); }
  // dy: the shape of y -> dx: the shape of x, each gradient routed to its window's maximum.
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) override;
  // max_pool: the plan fuses it with a Conv2D(relu) before it.
  FusionRole fusion_role() override { return {.kind = FusionRole::Kind::max_pool, .pool = options_.pool}; }

 private:
  MaxPooling2DOptions options_;
  Tensor y_, dx_;  // reused from batch to batch
};

}  // namespace nn
