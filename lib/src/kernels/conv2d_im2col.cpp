// Variants "im2col" and "threaded": the images unrolled into a matrix, one
// row per output pixel, so that the convolution is one GEMM (nn::gemm);
// "threaded" does it one image at a time, the images split across threads.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "conv2d_internal.hpp"
#include "nn/gemm.hpp"
#include "nn/parallel.hpp"

namespace nn::conv2d_impl {

namespace {

// [snippet im2col]
// Unrolls images [n0, n1) into a matrix, one row per output pixel:
//   cols: ((n1 - n0) * OH * OW, KH * KW * C_in)
// Row (n, oh, ow) holds the window x[n, oh:oh+KH, ow:ow+KW, :] in the order
// (i, j, ci), the order of the kernel's rows seen as a (KH*KW*C_in, C_out)
// matrix. Then y = cols * kernel is one GEMM.
void im2col(const Conv2DDims& d, const float* x, std::size_t n0, std::size_t n1, float* cols) {
  const std::size_t window_row = d.kw * d.c_in;  // contiguous in x
  for (std::size_t n = n0; n < n1; ++n)
    for (std::size_t oh = 0; oh < d.oh(); ++oh)
      for (std::size_t ow = 0; ow < d.ow(); ++ow)
        for (std::size_t i = 0; i < d.kh; ++i) {
          const float* in = x + ((n * d.h + oh + i) * d.w + ow) * d.c_in;
          cols = std::copy(in, in + window_row, cols);
        }
}
// [end snippet im2col]

// The reverse, for the input gradient: adds each row of dcols back where it
// came from. dx must be zeroed first (windows overlap).
void col2im_add(const Conv2DDims& d, const float* dcols, std::size_t n0, std::size_t n1, float* dx) {
  const std::size_t window_row = d.kw * d.c_in;
  for (std::size_t n = n0; n < n1; ++n)
    for (std::size_t oh = 0; oh < d.oh(); ++oh)
      for (std::size_t ow = 0; ow < d.ow(); ++ow)
        for (std::size_t i = 0; i < d.kh; ++i) {
          float* out = dx + ((n * d.h + oh + i) * d.w + ow) * d.c_in;
          for (std::size_t q = 0; q < window_row; ++q) out[q] += dcols[q];
          dcols += window_row;
        }
}

}  // namespace

// y rows for images [n0, n1) = bias + cols * kernel.
// [snippet conv-forward-im2col]
void forward_gemm(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                  std::size_t n0, std::size_t n1, float* cols) {
  const std::size_t M = (n1 - n0) * pixels(d), K = window_size(d), C = d.c_out;
  im2col(d, x, n0, n1, cols);                          // cols: (M, K)
  float* out = y + n0 * pixels(d) * C;                 // out: (M, C_out)
  for (std::size_t r = 0; r < M; ++r) std::copy(bias, bias + C, out + r * C);
  gemm({.m = M, .n = C, .k = K, .a = cols, .b = kernel, .c = out, .beta = 1.0f});  // out += cols * kernel
}
// [end snippet conv-forward-im2col]

// dx for images [n0, n1): dcols (M, K) = dy (M, C_out) * kernel^T (C_out, K),
// then each row scattered back onto the window it came from.
void backward_input_gemm(const Conv2DDims& d, const float* kernel, const float* dy, float* dx, std::size_t n0,
                         std::size_t n1, std::vector<float>& cols) {
  const std::size_t M = (n1 - n0) * pixels(d), K = window_size(d), C = d.c_out;
  cols.resize(M * K);
  gemm({.m = M, .n = K, .k = C, .a = dy + n0 * pixels(d) * C, .b = kernel, .transpose_b = true,
        .c = cols.data()});
  std::fill(dx + n0 * d.h * d.w * d.c_in, dx + n1 * d.h * d.w * d.c_in, 0.0f);
  col2im_add(d, cols.data(), n0, n1, dx);
}

// dkernel (+)= cols^T * dy, dbias (+)= column sums of dy, dx = col2im(dy * kernel^T)
// for images [n0, n1). With accumulate false, dkernel and dbias are overwritten.
void backward_gemm(const Conv2DDims& d, const float* x, const float* kernel, const float* dy, float* dkernel,
                   float* dbias, float* dx, std::size_t n0, std::size_t n1, bool accumulate,
                   std::vector<float>& cols) {
  const std::size_t M = (n1 - n0) * pixels(d), K = window_size(d), C = d.c_out;
  const float* dy_rows = dy + n0 * pixels(d) * C;  // dy_rows: (M, C_out)
  cols.resize(M * K);
  im2col(d, x, n0, n1, cols.data());
  // dkernel: (K, C_out) = cols^T (K, M) * dy_rows (M, C_out)
  gemm({.m = K, .n = C, .k = M, .a = cols.data(), .transpose_a = true, .b = dy_rows, .c = dkernel,
        .beta = accumulate ? 1.0f : 0.0f});
  if (!accumulate) std::fill(dbias, dbias + C, 0.0f);
  for (std::size_t r = 0; r < M; ++r)
    for (std::size_t co = 0; co < C; ++co) dbias[co] += dy_rows[r * C + co];
  if (dx) backward_input_gemm(d, kernel, dy, dx, n0, n1, cols);
}

// [snippet conv-forward-threaded]
// Each thread takes a range of images and convolves them one at a time, so
// that one image's cols matrix (26*26 x 9 floats for the model) stays in cache.
void forward_threaded(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                      bool relu) {
  parallel_for(0, d.n, [&](std::size_t lo, std::size_t hi) {
    std::vector<float> cols(pixels(d) * window_size(d));
    for (std::size_t n = lo; n < hi; ++n) {
      forward_gemm(d, x, kernel, bias, y, n, n + 1, cols.data());
      if (relu) {  // fused: this image's output is still in cache
        float* out = y + n * pixels(d) * d.c_out;
        for (std::size_t i = 0; i < pixels(d) * d.c_out; ++i) out[i] = std::max(out[i], 0.0f);
      }
    }
  });
}
// [end snippet conv-forward-threaded]

void backward_threaded(const Conv2DDims& d, const float* x, const float* kernel, const float* dy, float* dkernel,
                       float* dbias, float* dx) {
  backward_partials(d, dkernel, dbias, [&](std::size_t n0, std::size_t n1, float* dk, float* db) {
    std::vector<float> cols;
    for (std::size_t n = n0; n < n1; ++n)
      backward_gemm(d, x, kernel, dy, dk, db, dx, n, n + 1, /*accumulate=*/n > n0, cols);
  });
}

}  // namespace nn::conv2d_impl
