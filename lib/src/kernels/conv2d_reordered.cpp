// Variant "reordered": the naive sums in another loop order, so that the
// innermost loop runs over C_out, contiguous in memory, and vectorizes.
#include <algorithm>
#include <cstddef>

#include "conv2d_internal.hpp"

namespace nn::conv2d_impl {

// [snippet conv-forward-reordered]
// The same sums in another order. For one output pixel, the KW * C_in inputs
// under kernel row i are contiguous in x, and so are the matching KW * C_in
// rows of C_out weights in the kernel. So: for each input value, add
// value * (a row of C_out weights) to the pixel's C_out outputs. The innermost
// loop runs over C_out, contiguous in both y and kernel: the compiler turns it
// into SIMD instructions.
void forward_reordered(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  const std::size_t window_row = d.kw * d.c_in;  // contiguous values per kernel row
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t oh = 0; oh < OH; ++oh)
      for (std::size_t ow = 0; ow < OW; ++ow) {
        float* out = y + ((n * OH + oh) * OW + ow) * C;  // out: (C_out,)
        std::copy(bias, bias + C, out);
        for (std::size_t i = 0; i < d.kh; ++i) {
          const float* in = x + ((n * d.h + oh + i) * d.w + ow) * d.c_in;  // in: (KW * C_in,)
          const float* k = kernel + i * window_row * C;                    // k: (KW * C_in, C_out)
          for (std::size_t q = 0; q < window_row; ++q) {
            const float v = in[q];
            const float* kq = k + q * C;
            for (std::size_t co = 0; co < C; ++co) out[co] += v * kq[co];
          }
        }
      }
}
// [end snippet conv-forward-reordered]

void backward_reordered(const Conv2DDims& d, const float* x, const float* kernel, const float* dy,
                        float* dkernel, float* dbias, float* dx) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  const std::size_t window_row = d.kw * d.c_in;
  std::fill(dkernel, dkernel + d.kh * window_row * C, 0.0f);
  std::fill(dbias, dbias + C, 0.0f);
  if (dx) std::fill(dx, dx + d.n * d.h * d.w * d.c_in, 0.0f);
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t oh = 0; oh < OH; ++oh)
      for (std::size_t ow = 0; ow < OW; ++ow) {
        const float* dy_pixel = dy + ((n * OH + oh) * OW + ow) * C;  // dy_pixel: (C_out,)
        for (std::size_t co = 0; co < C; ++co) dbias[co] += dy_pixel[co];
        for (std::size_t i = 0; i < d.kh; ++i) {
          const std::size_t at = ((n * d.h + oh + i) * d.w + ow) * d.c_in;
          const float* in = x + at;                        // in: (KW * C_in,)
          float* dk = dkernel + i * window_row * C;        // dk: (KW * C_in, C_out)
          for (std::size_t q = 0; q < window_row; ++q) {
            const float v = in[q];
            float* dkq = dk + q * C;
            for (std::size_t co = 0; co < C; ++co) dkq[co] += v * dy_pixel[co];
          }
          if (!dx) continue;
          const float* k = kernel + i * window_row * C;
          float* din = dx + at;
          for (std::size_t q = 0; q < window_row; ++q) {
            const float* kq = k + q * C;
            float s = 0.0f;  // a dot product over C_out
            for (std::size_t co = 0; co < C; ++co) s += kq[co] * dy_pixel[co];
            din[q] += s;
          }
        }
      }
}

}  // namespace nn::conv2d_impl
