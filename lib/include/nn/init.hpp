#pragma once
// Weight initialisers, as Keras names them. Conv2D (chapter 04) and Dense
// (chapter 07) start their kernels with glorot_uniform and their biases at 0.
#include <cstddef>
#include <cstdint>

#include "nn/tensor.hpp"

namespace nn {

// Glorot (Xavier) uniform: every weight drawn from U(-limit, limit) with
// limit = sqrt(6 / (fan_in + fan_out)), so that the variance of the signal is
// about the same going forward and backward through the layer.
//   Dense (in, out):              fan_in = in,             fan_out = out
//   Conv2D (KH, KW, C_in, C_out): fan_in = KH * KW * C_in, fan_out = KH * KW * C_out
// The same seed gives the same weights on every machine (std::mt19937_64, and
// our own mapping of its bits to floats, not a library distribution).
//
// `scale` multiplies the limit (and so the standard deviation): 1 is Keras's
// glorot_uniform, bit for bit; chapter 10's --init-scale tries 0.1 and 10 to
// show what the variance argument protects against. It must be finite and > 0.
void glorot_uniform(Tensor& w, std::size_t fan_in, std::size_t fan_out, std::uint64_t seed, float scale = 1.0f);

// The limit above.
float glorot_limit(std::size_t fan_in, std::size_t fan_out);

}  // namespace nn
