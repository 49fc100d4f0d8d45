#include "nn/layers/random_translation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "nn/error.hpp"
#include "nn/parallel.hpp"
#include "nn/random.hpp"

// Keras 3's RandomTranslation
// (keras/src/layers/preprocessing/image_preprocessing/random_translation.py)
// draws one (dx, dy) per image and calls backend.image.affine_transform with
// the matrix [[1, 0, -dx], [0, 1, -dy]]: output pixel (i, j) reads the input at
// (i - dy, j - dx). A bilinear read takes the pixels at floor(c) and
// floor(c) + 1 of each axis with the weights 1 - frac(c) and frac(c); a pixel
// index outside the image is mapped back in by the fill mode, or reads
// fill_value in constant mode (the index fixers of map_coordinates in
// keras/src/backend/tensorflow/image.py; TensorFlow's own projective-transform
// kernel, which the TensorFlow backend's affine_transform runs, gives the same
// values for reflect, nearest and constant).

namespace nn {

namespace {

// Where output index o of one axis reads: two input indices and their weights.
// An index of -1 reads fill_value (constant mode, outside the image).
struct AxisTaps {
  std::ptrdiff_t i0 = 0, i1 = 0;
  float w0 = 1.0f, w1 = 0.0f;
};

// An index outside [0, size) brought back in by the fill mode (Keras's index fixers).
std::ptrdiff_t fix_index(std::ptrdiff_t i, std::ptrdiff_t size, FillMode mode) {
  if (i >= 0 && i < size) return i;
  switch (mode) {
    case FillMode::constant: return -1;
    case FillMode::nearest: return i < 0 ? 0 : size - 1;
    case FillMode::wrap: return ((i % size) + size) % size;
    case FillMode::reflect: {
      // d c b a | a b c d | d c b a repeats every 2 * size indices.
      const std::ptrdiff_t period = 2 * size;
      const std::ptrdiff_t m = ((i % period) + period) % period;
      return m < size ? m : period - 1 - m;
    }
  }
  return -1;
}

// The taps of every output index of an axis of `size` pixels shifted by `shift`.
void axis_taps(std::size_t size, float shift, FillMode mode, Interpolation interpolation,
               std::vector<AxisTaps>& taps) {
  taps.resize(size);
  const auto n = static_cast<std::ptrdiff_t>(size);
  for (std::size_t o = 0; o < size; ++o) {
    const float c = static_cast<float>(o) - shift;  // the input coordinate output o reads
    if (interpolation == Interpolation::nearest) {
      const auto i = static_cast<std::ptrdiff_t>(std::nearbyint(c));  // halves to even, as tf.round
      taps[o] = {fix_index(i, n, mode), fix_index(i, n, mode), 1.0f, 0.0f};
    } else {
      const float lower = std::floor(c);
      const float upper_weight = c - lower;
      const auto i = static_cast<std::ptrdiff_t>(lower);
      taps[o] = {fix_index(i, n, mode), fix_index(i + 1, n, mode), 1.0f - upper_weight, upper_weight};
    }
  }
}

void check_images(const char* what, const Tensor& t, std::span<const Translation> shifts) {
  if (t.rank() != 4)
    throw Error(fmt::format("{}: images must be (N, H, W, C), not {}", what, t.shape().str()));
  if (shifts.size() != t.dim(0))
    throw Error(fmt::format("{}: {} shifts for a batch of {} images", what, shifts.size(), t.dim(0)));
}

}  // namespace

void translate_images(const Tensor& x, std::span<const Translation> shifts, FillMode fill_mode,
                      Interpolation interpolation, float fill_value, Tensor& y) {
  check_images("translate_images", x, shifts);
  ensure_shape(y, x.shape());
  const std::size_t H = x.dim(1), W = x.dim(2), C = x.dim(3), image = H * W * C;
  parallel_for(0, x.dim(0), [&](std::size_t lo, std::size_t hi) {
    std::vector<AxisTaps> rows, cols;
    for (std::size_t n = lo; n < hi; ++n) {
      axis_taps(H, shifts[n].dy, fill_mode, interpolation, rows);
      axis_taps(W, shifts[n].dx, fill_mode, interpolation, cols);
      const float* xn = x.data() + n * image;  // (H, W, C)
      float* yn = y.data() + n * image;
      for (std::size_t i = 0; i < H; ++i) {
        const AxisTaps& r = rows[i];
        for (std::size_t j = 0; j < W; ++j) {
          const AxisTaps& c = cols[j];
          for (std::size_t ch = 0; ch < C; ++ch) {
            const auto at = [&](std::ptrdiff_t row, std::ptrdiff_t col) {
              return row < 0 || col < 0 ? fill_value
                                        : xn[(static_cast<std::size_t>(row) * W + static_cast<std::size_t>(col)) * C + ch];
            };
            // [snippet translate-bilinear]
            // Along the row first, then between the two rows.
            const float upper = c.w0 * at(r.i0, c.i0) + c.w1 * at(r.i0, c.i1);
            const float lower = c.w0 * at(r.i1, c.i0) + c.w1 * at(r.i1, c.i1);
            yn[(i * W + j) * C + ch] = r.w0 * upper + r.w1 * lower;
            // [end snippet translate-bilinear]
          }
        }
      }
    }
  });
}

void translate_images_adjoint(const Tensor& dy, std::span<const Translation> shifts, FillMode fill_mode,
                              Interpolation interpolation, Tensor& dx) {
  check_images("translate_images_adjoint", dy, shifts);
  ensure_shape(dx, dy.shape());
  const std::size_t H = dy.dim(1), W = dy.dim(2), C = dy.dim(3), image = H * W * C;
  // Images are independent: each thread scatters into its own images only.
  parallel_for(0, dy.dim(0), [&](std::size_t lo, std::size_t hi) {
    std::vector<AxisTaps> rows, cols;
    for (std::size_t n = lo; n < hi; ++n) {
      axis_taps(H, shifts[n].dy, fill_mode, interpolation, rows);
      axis_taps(W, shifts[n].dx, fill_mode, interpolation, cols);
      const float* gn = dy.data() + n * image;  // (H, W, C)
      float* dn = dx.data() + n * image;
      std::fill(dn, dn + image, 0.0f);
      for (std::size_t i = 0; i < H; ++i) {
        const AxisTaps& r = rows[i];
        for (std::size_t j = 0; j < W; ++j) {
          const AxisTaps& c = cols[j];
          for (std::size_t ch = 0; ch < C; ++ch) {
            const float g = gn[(i * W + j) * C + ch];
            const auto add = [&](std::ptrdiff_t row, std::ptrdiff_t col, float weight) {
              if (row < 0 || col < 0) return;  // read fill_value: no input pixel to credit
              dn[(static_cast<std::size_t>(row) * W + static_cast<std::size_t>(col)) * C + ch] += weight * g;
            };
            add(r.i0, c.i0, r.w0 * c.w0);
            add(r.i0, c.i1, r.w0 * c.w1);
            add(r.i1, c.i0, r.w1 * c.w0);
            add(r.i1, c.i1, r.w1 * c.w1);
          }
        }
      }
    }
  });
}

// ---- the layer -------------------------------------------------------------

RandomTranslation::RandomTranslation(const RandomTranslationOptions& options) : options_(options) {
  for (const auto& [name, factor] : {std::pair{"height_factor", options_.height_factor},
                                     std::pair{"width_factor", options_.width_factor}})
    if (!(factor >= -1.0 && factor <= 1.0))
      throw Error(fmt::format("RandomTranslation: {} must be a fraction in [-1, 1], not {}", name, factor));
}

Shape RandomTranslation::output_shape(const Shape& x) const {
  if (x.rank() != 4)
    throw Error(fmt::format("RandomTranslation needs images (N, H, W, C): got {}", x.str()));
  return x;
}

std::vector<Translation> RandomTranslation::translations(std::uint64_t k, std::size_t n, std::size_t h,
                                                         std::size_t w) const {
  // Counter-based numbers (nn/random.hpp): call k's shifts depend only on
  // (seed, k), not on how many calls came before or on the threads.
  const std::uint64_t key = draw_key(options_.seed, k);
  const float fh = std::abs(static_cast<float>(options_.height_factor));
  const float fw = std::abs(static_cast<float>(options_.width_factor));
  std::vector<Translation> shifts(n);
  // [snippet translate-shifts]
  // Keras: uniform(minval=-factor, maxval=factor) times the size, the heights
  // first (numbers 0 .. n-1 of the draw), then the widths (n .. 2n-1).
  for (std::size_t i = 0; i < n; ++i) shifts[i].dy = (-fh + 2.0f * fh * uniform01(key, i)) * static_cast<float>(h);
  for (std::size_t i = 0; i < n; ++i) shifts[i].dx = (-fw + 2.0f * fw * uniform01(key, n + i)) * static_cast<float>(w);
  // [end snippet translate-shifts]
  return shifts;
}

ConstView RandomTranslation::forward(const Tensor& x) {
  output_shape(x.shape());  // throws for anything but (N, H, W, C)
  if (!training) {  // Keras: transform_images returns the images unchanged
    translated_ = false;
    return x;
  }
  shifts_ = translations(draws++, x.dim(0), x.dim(1), x.dim(2));
  translated_ = true;
  translate_images(x, shifts_, options_.fill_mode, options_.interpolation, options_.fill_value, y_);
  return y_;
}

ConstView RandomTranslation::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, bool need_dx) {
  if (!need_dx) return {};  // no weights: the input gradient is all there is
  if (!(dy.shape() == x.shape()))
    throw Error(fmt::format("RandomTranslation backward: dy is {} but x is {}", dy.shape().str(), x.shape().str()));
  if (!translated_) return dy;  // the identity's adjoint
  translate_images_adjoint(dy, shifts_, options_.fill_mode, options_.interpolation, dx_);
  return dx_;
}

}  // namespace nn
