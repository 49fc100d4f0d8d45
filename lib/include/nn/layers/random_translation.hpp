#pragma once
// The RandomTranslation layer: data augmentation inside the model, as
// keras.layers.RandomTranslation(height_factor, width_factor) does it
// (Keras 3: keras/src/layers/preprocessing/image_preprocessing/random_translation.py).
//
//   model.add(nn::RandomTranslation({.height_factor = 2.0 / 28, .width_factor = 2.0 / 28, .seed = s}));
//
// In training (Layer::training true) every image of the batch is shifted by
// its own random amount: dy uniform in [-height_factor, height_factor) * H
// pixels down, dx likewise * W pixels right, fractions of a pixel included.
// The output pixel (i, j) reads the input at (i - dy, j - dx), interpolated
// bilinearly; what lies outside the image comes from fill_mode. Outside
// training (evaluate, predict) the layer passes its input through unchanged.
// No weights.
//
// The shifts of the k-th training call (k = 0, 1, ... counted by `draws`, as
// in Dropout) depend only on (seed, k): the same on every machine and at every
// thread count, and replayable by setting `draws` back. They are not Keras's random
// numbers (Keras draws from its backend's generator).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "nn/layer.hpp"

namespace nn {

// What the pixels outside the image are (Keras's fill_mode), for an image row a b c d:
enum class FillMode {
  reflect,   // d c b a | a b c d | d c b a   (Keras's default)
  constant,  // k k k k | a b c d | k k k k   with k = fill_value
  nearest,   // a a a a | a b c d | d d d d
  wrap,      // a b c d | a b c d | a b c d
};

// How a pixel between pixels is read (Keras's interpolation).
enum class Interpolation {
  bilinear,  // the four pixels around it, weighted by closeness (Keras's default)
  nearest,   // the closest pixel
};

struct RandomTranslationOptions {
  // The largest shift as a fraction of the height and of the width, in
  // [0, 1]: 2.0 / 28 shifts a 28 x 28 image by up to 2 pixels each way.
  // (Keras also takes a (lower, upper) pair; the course takes the symmetric
  // range only. A negative factor is taken as its absolute value, as in Keras.)
  double height_factor = 0.0;
  double width_factor = 0.0;
  FillMode fill_mode = FillMode::reflect;
  Interpolation interpolation = Interpolation::bilinear;
  std::uint64_t seed = 0;
  float fill_value = 0.0f;  // for FillMode::constant
};

// One image's shift in pixels: its content moves dx to the right and dy down
// (Keras's translation matrix [[1, 0, -dx], [0, 1, -dy], [0, 0, 1]]).
struct Translation {
  float dx = 0.0f, dy = 0.0f;
};

// y = x with image n shifted by shifts[n]: x and y (N, H, W, C), shifts N
// long. y is resized when its shape differs. Keras's affine_transform for a
// pure translation, per channel.
void translate_images(const Tensor& x, std::span<const Translation> shifts, FillMode fill_mode,
                      Interpolation interpolation, float fill_value, Tensor& y);

// The adjoint of translate_images (its transpose, as a linear map of x):
// dx = dL/dx from dy = dL/dy, both (N, H, W, C). Every input pixel gets back
// the weighted gradient of each output pixel that read it; fill_value does not
// depend on x and gets nothing.
void translate_images_adjoint(const Tensor& dy, std::span<const Translation> shifts, FillMode fill_mode,
                              Interpolation interpolation, Tensor& dx);

class RandomTranslation final : public Layer {
 public:
  // Throws nn::Error for a factor outside [-1, 1] or not a number.
  explicit RandomTranslation(const RandomTranslationOptions& options = {});
  const RandomTranslationOptions& options() const { return options_; }

  std::string type() const override { return "RandomTranslation"; }
  std::string base_name() const override { return "random_translation"; }
  Shape output_shape(const Shape& x) const override;  // x itself; it must be (N, H, W, C)
  // x: (N, H, W, C) -> y: (N, H, W, C); x itself when not training.
  ConstView forward(const Tensor& x) override;
  // dx = the adjoint of the last forward's shifts applied to dy (dy itself
  // after a forward outside training). Nothing when need_dx is false, as when
  // the layer comes first.
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx = true) override;

  // The shifts of training call k for n images of h x w pixels: n values of
  // dy drawn first, then n values of dx, as Keras draws them.
  std::vector<Translation> translations(std::uint64_t k, std::size_t n, std::size_t h, std::size_t w) const;
  // The shifts the last training forward applied.
  const std::vector<Translation>& last_translations() const { return shifts_; }

  std::uint64_t draws = 0;  // training calls so far: the next one draws shifts number `draws`

 private:
  RandomTranslationOptions options_;
  std::vector<Translation> shifts_;  // of the last training forward
  bool translated_ = false;          // whether the last forward shifted (training) or passed x through
  Tensor y_, dx_;                    // reused from batch to batch
};

}  // namespace nn
