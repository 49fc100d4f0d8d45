#include "nn/init.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "nn/error.hpp"

namespace nn {

float glorot_limit(std::size_t fan_in, std::size_t fan_out) {
  if (fan_in + fan_out == 0) throw Error("glorot_uniform: fan_in + fan_out is 0");
  return static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
}

void glorot_uniform(Tensor& w, std::size_t fan_in, std::size_t fan_out, std::uint64_t seed, float scale) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw Error(fmt::format("glorot_uniform: the scale must be a finite number > 0, not {}", scale));
  const float limit = glorot_limit(fan_in, fan_out) * scale;  // * 1.0f changes no bit
  std::mt19937_64 rng(seed);
  for (float& v : w.span()) {
    // The top 24 bits give a uniform float in [0, 1), exactly representable.
    const float u = static_cast<float>(rng() >> 40) * 0x1.0p-24f;
    v = (2.0f * u - 1.0f) * limit;
  }
}

}  // namespace nn
