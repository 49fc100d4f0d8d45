#pragma once
// Conv2D(activation="relu") followed by MaxPooling2D, fused (chapter 10's
// speed-up). The unfused pair writes the (N, 26, 26, 32) convolution output
// to memory, reads it back to pool it, and in the backward pass writes and
// reads two more tensors of that size (the pooling gradient and the ReLU
// gradient). Fused, each image's 26x26x32 map exists only in a small
// per-thread buffer that stays in the cache:
//
//   forward, per image:  conv + ReLU into the buffer -> 2x2 max -> y (13x13x32)
//                        and the position of each maximum (one byte)
//   backward, per image: the buffer gets dy at each recorded maximum where the
//                        ReLU was active, 0 elsewhere -> the kernel and bias
//                        gradients of that image, added up per thread (and
//                        the image's input gradient, when one is asked for)
//
// The results equal those of the unfused layers (same tie rule: the first
// maximum in row-major window order) up to the order of the float sums.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/tensor.hpp"

namespace nn {

// x (N, H, W, C_in) -> y (N, OH / pool, OW / pool, C_out); `where` receives,
// per element of y, the window position p * pool + q of its maximum.
void conv2d_relu_maxpool_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, std::size_t pool,
                                 Conv2DVariant variant, Tensor& y, std::vector<std::uint8_t>& where);

// From the forward pass's x, y and `where`, and dy (the shape of y): the
// kernel and bias gradients into dkernel (KH, KW, C_in, C_out) and dbias
// (C_out,) and, unless dx is null, the input gradient into dx (the shape of
// x), each image's part computed while its map is in the cache.
void conv2d_relu_maxpool_backward(const Tensor& x, const Tensor& kernel, const Tensor& y,
                                  const std::vector<std::uint8_t>& where, const Tensor& dy, std::size_t pool,
                                  Conv2DVariant variant, Tensor& dkernel, Tensor& dbias, Tensor* dx);

}  // namespace nn
