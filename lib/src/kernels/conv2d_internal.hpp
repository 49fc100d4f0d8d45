#pragma once
// Private to lib/src: the optimized convolutions, one file per variant, that
// the dispatch in conv2d.cpp calls. Arrays and layouts as in nn/conv2d.hpp:
//   x: (N, H, W, C_in)   kernel: (KH, KW, C_in, C_out)   bias: (C_out,)   y, dy: (N, OH, OW, C_out)
// The backward passes overwrite dkernel and dbias; dx may be null to skip the
// input gradient.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/parallel.hpp"
#include "nn/simd.hpp"

namespace nn::conv2d_impl {

// The sizes of the im2col matrix: one row of window_size values per output pixel.
inline std::size_t window_size(const Conv2DDims& d) { return d.kh * d.kw * d.c_in; }
inline std::size_t pixels(const Conv2DDims& d) { return d.oh() * d.ow(); }

// conv2d_reordered.cpp: the naive sums, loops reordered for SIMD.
void forward_reordered(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y);
void backward_reordered(const Conv2DDims& d, const float* x, const float* kernel, const float* dy,
                        float* dkernel, float* dbias, float* dx);

// conv2d_im2col.cpp: im2col + GEMM over the images [n0, n1) (cols: scratch
// space for their im2col matrix; with accumulate, dkernel and dbias are added
// to instead of overwritten) ...
void forward_gemm(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                  std::size_t n0, std::size_t n1, float* cols);
void backward_gemm(const Conv2DDims& d, const float* x, const float* kernel, const float* dy, float* dkernel,
                   float* dbias, float* dx, std::size_t n0, std::size_t n1, bool accumulate,
                   std::vector<float>& cols);
// ... and the same one image at a time, the images split across threads.
void forward_threaded(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                      bool relu);
void backward_threaded(const Conv2DDims& d, const float* x, const float* kernel, const float* dy, float* dkernel,
                       float* dbias, float* dx);

// dkernel and dbias are sums over the batch: each thread sums its images into
// its own partial result, and the partials are added in a fixed order (the
// same answer on every run).
template <class ChunkFn>
void backward_partials(const Conv2DDims& d, float* dkernel, float* dbias, ChunkFn chunk) {
  const std::size_t parts = std::min(d.n, thread_count());
  const std::size_t K = window_size(d), C = d.c_out;
  std::vector<float> dk_parts(parts * K * C), db_parts(parts * C);
  parallel_for(0, parts, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t c = lo; c < hi; ++c) {
      const Range images = split_range(d.n, parts, c);
      chunk(images.begin, images.end, dk_parts.data() + c * K * C, db_parts.data() + c * C);
    }
  });
  std::fill(dkernel, dkernel + K * C, 0.0f);
  std::fill(dbias, dbias + C, 0.0f);
  for (std::size_t c = 0; c < parts; ++c) {
    for (std::size_t i = 0; i < K * C; ++i) dkernel[i] += dk_parts[c * K * C + i];
    for (std::size_t i = 0; i < C; ++i) dbias[i] += db_parts[c * C + i];
  }
}

#if NN_HAVE_SIMD
// conv2d_direct3x3.cpp: a 3x3 kernel, C_out a multiple of 16 (simd::kLanes), any C_in.
bool direct3x3_applies(const Conv2DDims& d);
void forward_direct3x3(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                       bool relu);
void backward_direct3x3(const Conv2DDims& d, const float* x, const float* kernel, const float* dy,
                        float* dkernel, float* dbias, float* dx);
// The C_in = 1 forward pass for output rows [oh0, oh1) of image n only, into
// y (row oh at y + (oh - oh0) * OW * C_out): for the fused Conv2D+MaxPooling2D
// step, which pools each pair of rows while they are in L1.
void forward_direct3x3_c1_rows(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, bool relu,
                               std::size_t n, std::size_t oh0, std::size_t oh1, float* y);
// One output pixel's share of a C_in = 1, 3x3 kernel's gradients, for kV
// output channels: the bias gets dy, each of the 9 taps the input under it
// times dy. `window` is the pixel's 3x3 input window's top-left value, rows
// w floats apart. The C_in = 1 backward pass and the fused step's (which makes
// dy from the pooled gradient) both sum with it, so their sums are the same.
inline void accumulate_c1_pixel(const float* window, std::size_t w, simd::Vec dy, simd::Vec (&acc)[9],
                                simd::Vec& acc_b) {
  acc_b += dy;
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j) acc[i * 3 + j] += window[i * w + j] * dy;
}
#endif

}  // namespace nn::conv2d_impl
