#pragma once
// The Dropout layer: Dropout(0.5) in Keras's "Simple MNIST convnet" (chapter 12).
//
//   nn::Dropout drop({.rate = 0.5, .seed = 7});
//   drop.training = true;                  // Sequential sets it: true in fit, false in evaluate/predict
//   nn::ConstView y = drop.forward(x);     // each element kept with probability 1 - rate
//
// As Keras 3 does it (keras/src/layers/regularization/dropout.py and the
// backends' random.dropout): in training, every element is kept when a uniform
// number in [0, 1) falls below keep = 1 - rate, and a kept element is divided
// by keep ("inverted dropout": the expected value of every output equals its
// input, so inference needs no rescaling); a dropped one becomes 0. Outside
// training the layer is the identity. rate = 0 is always the identity,
// rate = 1 drops everything.
//
// Each training call draws a new mask. The mask of the k-th training call
// (k = 0, 1, ...) depends only on (seed, k): `draws` counts them, and a test
// that sets it back replays a mask. The numbers are not the ones Keras's
// backends draw (each has its own generator); the distribution is the same.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nn/layer.hpp"

namespace nn {

struct DropoutOptions {
  double rate = 0.5;        // the fraction of the inputs dropped, in [0, 1]
  std::uint64_t seed = 0;   // for the masks
};

class Dropout final : public Layer {
 public:
  explicit Dropout(const DropoutOptions& options);

  const DropoutOptions& options() const { return options_; }
  std::uint64_t draws = 0;  // training calls so far: the next mask is number `draws`
  // The row of a larger global batch that this layer's batches start at: 0,
  // except in data-parallel training (chapter 14), where each process's
  // rows then get the global batch's mask for those rows.
  std::uint64_t first_row = 0;

  std::string type() const override { return "Dropout"; }
  std::string base_name() const override { return "dropout"; }
  Shape output_shape(const Shape& x) const override { return x; }
  // x -> y, any shape: in training, y = x / (1 - rate) where kept, else 0;
  // otherwise y = x (a view of x, no copy).
  ConstView forward(const Tensor& x) override;
  // In training, the tape's dropout with this layer's next mask (`draws`
  // counts it, as forward does); otherwise x itself.
  Var record(Var x) override;
  // dx = dy / (1 - rate) where the last training forward kept, else 0; dy
  // itself (a view) when that forward was not in training.
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) override;

 private:
  std::uint64_t first_element(const Shape& x) const;  // first_row's first element in the global batch
  DropoutOptions options_;
  bool masked_ = false;              // did the last forward apply a mask?
  std::vector<std::uint8_t> keep_;   // its mask: 1 kept, 0 dropped
  Tensor y_, dx_;
};

}  // namespace nn
