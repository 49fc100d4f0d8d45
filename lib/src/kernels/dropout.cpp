#include "nn/dropout.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/parallel.hpp"
#include "nn/random.hpp"

namespace nn {

void dropout_forward(const Tensor& x, double rate, std::uint64_t key, Tensor& y, std::vector<std::uint8_t>& keep_mask,
                     std::uint64_t first) {
  ensure_shape(y, x.shape());
  keep_mask.resize(x.size());
  // [snippet dropout-forward]
  const float keep_probability = static_cast<float>(1.0 - rate);
  const float* in = x.data();
  float* out = y.data();
  std::uint8_t* keep = keep_mask.data();
  parallel_for(0, x.size(), [=](std::size_t lo, std::size_t hi) {
    // Locals, not the lambda's members, so that the compiler knows the stores
    // below cannot change them, and vectorizes the loop.
    const std::uint64_t k = key, offset = first;
    const float p = keep_probability;
    const float* x_in = in;
    float* y_out = out;
    std::uint8_t* mask = keep;
    for (std::size_t i = lo; i < hi; ++i) {
      const bool kept = uniform01(k, offset + i) < p;
      const float scaled = x_in[i] / p;  // Keras divides: x / keep (computed always: no branch)
      mask[i] = kept;
      y_out[i] = kept ? scaled : 0.0f;
    }
  });
  // [end snippet dropout-forward]
}

void dropout_backward(const Tensor& dy, double rate, std::span<const std::uint8_t> keep_mask, Tensor& dx) {
  if (keep_mask.size() != dy.size())
    throw Error(fmt::format("dropout: dy {} does not match the mask of {} elements", dy.shape().str(),
                            keep_mask.size()));
  ensure_shape(dx, dy.shape());
  const float keep_probability = static_cast<float>(1.0 - rate);
  const float* g = dy.data();
  float* out = dx.data();
  const std::uint8_t* keep = keep_mask.data();
  // y = x / keep where kept: dy/dx = 1 / keep there, 0 elsewhere.
  parallel_for(0, dy.size(), [=](std::size_t lo, std::size_t hi) {
    const float p = keep_probability;
    const float* dy_in = g;
    float* dx_out = out;
    const std::uint8_t* mask = keep;
    for (std::size_t i = lo; i < hi; ++i) {
      const float scaled = dy_in[i] / p;
      dx_out[i] = mask[i] ? scaled : 0.0f;
    }
  });
}

}  // namespace nn
