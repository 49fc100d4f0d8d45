// Variant "direct3x3": for C_in = 1 and a 3x3 kernel (the model's first
// layer), the 9 kernel vectors held in SIMD registers, ReLU fused into the
// store, threaded over the batch. Without SIMD vectors the dispatch falls back
// to "threaded".
#include <cstddef>

#include "conv2d_internal.hpp"
#include "nn/parallel.hpp"
#include "nn/simd.hpp"

#if NN_HAVE_SIMD
namespace nn::conv2d_impl {

bool direct3x3_applies(const Conv2DDims& d) {
  return d.c_in == 1 && d.kh == 3 && d.kw == 3 && d.c_out % simd::kVecWidth == 0;
}

using simd::Vec;
constexpr std::size_t kV = simd::kVecWidth;

// [snippet conv-direct3x3]
// P neighbouring output pixels of one row, kV output channels: each of the 9
// taps is one input value (broadcast) times one kernel vector, added into P
// accumulators. The kernel vectors k[0..8] stay in registers for a whole row;
// bias and ReLU are applied before the single store of each result.
template <std::size_t P>
inline void direct3x3_pixels(const float* row0, const float* row1, const float* row2, const Vec (&k)[9],
                             Vec bias, bool relu, float* out, std::size_t c_out) {
  Vec acc[P];
  for (std::size_t p = 0; p < P; ++p) acc[p] = bias;
  const float* rows[3] = {row0, row1, row2};  // input rows oh, oh+1, oh+2 from column ow
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t p = 0; p < P; ++p) acc[p] += rows[i][p + j] * k[i * 3 + j];  // one FMA
  for (std::size_t p = 0; p < P; ++p)
    simd::store(out + p * c_out, relu ? simd::max(acc[p], Vec{}) : acc[p]);
}

void forward_direct3x3(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                       bool relu) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  constexpr std::size_t P = 8;  // pixels per block: 8 accumulators + 9 kernel vectors in registers
  parallel_for(0, d.n, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t n = lo; n < hi; ++n)
      for (std::size_t oh = 0; oh < OH; ++oh) {
        const float* row = x + (n * d.h + oh) * d.w;           // x: (N, H, W), C_in = 1
        float* out = y + (n * OH + oh) * OW * C;               // out: (OW, C_out)
        for (std::size_t cb = 0; cb < C; cb += kV) {           // kV output channels at a time
          Vec k[9];                                            // kernel[i, j, 0, cb:cb+kV]
          for (std::size_t t = 0; t < 9; ++t) k[t] = simd::load(kernel + t * C + cb);
          const Vec b = simd::load(bias + cb);
          std::size_t ow = 0;
          for (; ow + P <= OW; ow += P)
            direct3x3_pixels<P>(row + ow, row + d.w + ow, row + 2 * d.w + ow, k, b, relu, out + ow * C + cb, C);
          for (; ow < OW; ++ow)
            direct3x3_pixels<1>(row + ow, row + d.w + ow, row + 2 * d.w + ow, k, b, relu, out + ow * C + cb, C);
        }
      }
  });
}
// [end snippet conv-direct3x3]

// [snippet conv-direct3x3-dx]
// dx[n, h, w] = sum over the taps (i, j) that reach it from a valid output
// pixel (h - i, w - j) of dot(dy[n, h - i, w - j, :], kernel[i, j, 0, :]).
// All the taps add into one vector of partial sums over C_out, reduced to a
// single number once per input pixel.
void input_gradient_direct3x3(const Conv2DDims& d, const float* kernel, const float* dy, float* dx,
                              std::size_t n0, std::size_t n1) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  for (std::size_t n = n0; n < n1; ++n)
    for (std::size_t h = 0; h < d.h; ++h)
      for (std::size_t w = 0; w < d.w; ++w) {
        Vec acc{};
        for (std::size_t i = 0; i < 3; ++i) {
          if (h < i || h - i >= OH) continue;  // no output row h - i
          for (std::size_t j = 0; j < 3; ++j) {
            if (w < j || w - j >= OW) continue;
            const float* dy_pixel = dy + ((n * OH + h - i) * OW + w - j) * C;  // dy_pixel: (C_out,)
            const float* k = kernel + (i * 3 + j) * C;                  // k: (C_out,)
            for (std::size_t cb = 0; cb < C; cb += kV) acc += simd::load(dy_pixel + cb) * simd::load(k + cb);
          }
        }
        float sum = 0.0f;
        for (std::size_t v = 0; v < kV; ++v) sum += acc[v];
        dx[(n * d.h + h) * d.w + w] = sum;
      }
}
// [end snippet conv-direct3x3-dx]

// dkernel[i, j, 0, cb:cb+kV] = sum over pixels of x[n, oh+i, ow+j] * dy[n, oh, ow, cb:cb+kV]:
// 9 accumulators in registers for a whole range of images.
void backward_direct3x3(const Conv2DDims& d, const float* x, const float* kernel, const float* dy,
                        float* dkernel, float* dbias, float* dx) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  backward_partials(d, dkernel, dbias, [&](std::size_t n0, std::size_t n1, float* dk, float* db) {
    for (std::size_t cb = 0; cb < C; cb += kV) {
      Vec acc[9] = {}, acc_b = {};
      for (std::size_t n = n0; n < n1; ++n)
        for (std::size_t oh = 0; oh < OH; ++oh) {
          const float* row = x + (n * d.h + oh) * d.w;
          const float* dy_row = dy + (n * OH + oh) * OW * C + cb;
          for (std::size_t ow = 0; ow < OW; ++ow) {
            const Vec dy_vec = simd::load(dy_row + ow * C);
            acc_b += dy_vec;
            for (std::size_t i = 0; i < 3; ++i)
              for (std::size_t j = 0; j < 3; ++j) acc[i * 3 + j] += row[i * d.w + ow + j] * dy_vec;
          }
        }
      for (std::size_t t = 0; t < 9; ++t) simd::store(dk + t * C + cb, acc[t]);
      simd::store(db + cb, acc_b);
    }
    if (dx) input_gradient_direct3x3(d, kernel, dy, dx, n0, n1);
  });
}

}  // namespace nn::conv2d_impl
#endif
