// Variant "direct3x3": a 3x3 kernel computed directly, without the im2col
// matrix, for any C_in and C_out a multiple of 16 (simd::kLanes). Two kernels:
//   C_in = 1 (the model's first layer): the 9 kernel vectors held in SIMD
//     registers, 8 neighbouring pixels per block;
//   C_in > 1 (Keras's second layer, 32 -> 64 channels on 13x13): a block of
//     pixels times a block of output channels held in registers, each input
//     value broadcast and multiplied by a row of the kernel.
// ReLU fused into the store, threaded over the batch. Without SIMD vectors the
// dispatch falls back to "threaded".
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "conv2d_internal.hpp"
#include "nn/parallel.hpp"
#include "nn/simd.hpp"

#if NN_HAVE_SIMD
namespace nn::conv2d_impl {

// C_out a multiple of kLanes (16), not of this CPU's vector width: every CPU
// runs this variant for the same layers, and gets the same bits.
bool direct3x3_applies(const Conv2DDims& d) {
  return d.kh == 3 && d.kw == 3 && d.c_out % simd::kLanes == 0;
}

using simd::Vec;
constexpr std::size_t kV = simd::kVecWidth;

namespace {

// ---------------------------------------------------------------- C_in = 1

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

// Output rows [oh0, oh1) of image n into y (row oh at y + (oh - oh0) * OW * C).
void c1_rows(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, bool relu, std::size_t n,
             std::size_t oh0, std::size_t oh1, float* y) {
  const std::size_t OW = d.ow(), C = d.c_out;
  constexpr std::size_t P = 8;  // pixels per block: 8 accumulators + 9 kernel vectors in registers
  for (std::size_t oh = oh0; oh < oh1; ++oh) {
    const float* row = x + (n * d.h + oh) * d.w;           // x: (N, H, W), C_in = 1
    float* out = y + (oh - oh0) * OW * C;                  // out: (OW, C_out)
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
}

void forward_direct3x3_c1(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                          bool relu) {
  const std::size_t image = d.oh() * d.ow() * d.c_out;  // one image's output
  parallel_for(0, d.n, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t n = lo; n < hi; ++n) c1_rows(d, x, kernel, bias, relu, n, 0, d.oh(), y + n * image);
  });
}
// [end snippet conv-direct3x3]

// [snippet conv-direct3x3-dx]
// dx[n, h, w] = sum over the taps (i, j) that reach it from a valid output
// pixel (h - i, w - j) of dot(dy[n, h - i, w - j, :], kernel[i, j, 0, :]).
// All the taps add into kLanes = 16 partial sums over C_out (one AVX-512
// vector, two AVX2 vectors), reduced to a single number once per input pixel.
void input_gradient_direct3x3(const Conv2DDims& d, const float* kernel, const float* dy, float* dx,
                              std::size_t n0, std::size_t n1) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  for (std::size_t n = n0; n < n1; ++n)
    for (std::size_t h = 0; h < d.h; ++h)
      for (std::size_t w = 0; w < d.w; ++w) {
        simd::Lanes acc{};
        for (std::size_t i = 0; i < 3; ++i) {
          if (h < i || h - i >= OH) continue;  // no output row h - i
          for (std::size_t j = 0; j < 3; ++j) {
            if (w < j || w - j >= OW) continue;
            const float* dy_pixel = dy + ((n * OH + h - i) * OW + w - j) * C;  // dy_pixel: (C_out,)
            const float* k = kernel + (i * 3 + j) * C;                  // k: (C_out,)
            for (std::size_t cb = 0; cb < C; cb += simd::kLanes) simd::multiply_add_lanes(acc, dy_pixel + cb, k + cb);
          }
        }
        dx[(n * d.h + h) * d.w + w] = simd::sum_lanes(acc);
      }
}
// [end snippet conv-direct3x3-dx]

// dkernel[i, j, 0, cb:cb+kV] = sum over pixels of x[n, oh+i, ow+j] * dy[n, oh, ow, cb:cb+kV]:
// 9 accumulators in registers for a whole range of images.
void backward_direct3x3_c1(const Conv2DDims& d, const float* x, const float* kernel, const float* dy,
                           float* dkernel, float* dbias, float* dx) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  backward_partials(d, dkernel, dbias, [&](std::size_t n0, std::size_t n1, float* dk, float* db) {
    for (std::size_t cb = 0; cb < C; cb += kV) {
      Vec acc[9] = {}, acc_b = {};
      for (std::size_t n = n0; n < n1; ++n)
        for (std::size_t oh = 0; oh < OH; ++oh) {
          const float* row = x + (n * d.h + oh) * d.w;
          const float* dy_row = dy + (n * OH + oh) * OW * C + cb;
          for (std::size_t ow = 0; ow < OW; ++ow) accumulate_c1_pixel(row + ow, d.w, simd::load(dy_row + ow * C), acc, acc_b);
        }
      for (std::size_t t = 0; t < 9; ++t) simd::store(dk + t * C + cb, acc[t]);
      simd::store(db + cb, acc_b);
    }
    if (dx) input_gradient_direct3x3(d, kernel, dy, dx, n0, n1);
  });
}

// ---------------------------------------------------------------- C_in > 1

// The register block: P output pixels times NV vectors of output channels:
// P * NV accumulators, plus NV kernel vectors and one broadcast input value,
// as many as fit in the vector registers. AVX-512 and aarch64 have 32 (NV = 4:
// 6 pixels, 24 + 4 + 1 registers), AVX2 and SSE 16 (NV = 2: 6 pixels,
// 12 + 2 + 1). With fewer channel vectors (C_out = 32 is 2 AVX-512 vectors)
// the block takes more pixels (14 with 2 vectors: 28 + 2 + 1 registers).
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr std::size_t kVecRegisters = 32;
constexpr std::size_t kBlockVecs = 4;
#else
constexpr std::size_t kVecRegisters = 16;
constexpr std::size_t kBlockVecs = 2;
#endif
// The pixels (or, for dkernel, the kernel rows) of a block of NV vectors; at most 16.
constexpr std::size_t block_pixels(std::size_t nv) { return std::min<std::size_t>(16, (kVecRegisters - 1 - nv) / nv); }

// [snippet conv-direct3x3-channels]
// P neighbouring output pixels of one row, NV * kV output channels from
// channel cb. `in` is the first pixel's window corner x[n, oh, ow, :], a row of
// the image is row_stride floats, and `k` is kernel[:, :, :, cb:]. For kernel
// row i the window's 3 * C_in inputs are contiguous in x, and so are the
// matching kernel rows: the inner loop runs over them, each input value
// broadcast and multiplied by NV kernel vectors. Kernel rows outside
// [i0, i1) are skipped (the input gradient's rows of zero padding), and so are
// the terms of the first `zero_lo` and last `zero_hi` (0 to 2) of the P + 2
// input columns (its columns of zero padding: see input_gradient_flipped).
template <std::size_t P, std::size_t NV>
inline void channels_pixels(const float* in, std::size_t row_stride, std::size_t c_in, const float* k,
                            std::size_t c_out, std::size_t i0, std::size_t i1, std::size_t zero_lo,
                            std::size_t zero_hi, const float* bias, bool relu, float* out) {
  Vec acc[P][NV];
  for (std::size_t v = 0; v < NV; ++v) {
    const Vec b = bias ? simd::load(bias + v * kV) : Vec{};
    for (std::size_t p = 0; p < P; ++p) acc[p][v] = b;
  }
  const std::size_t span = 3 * c_in;  // (KW, C_in) of one kernel row, contiguous in x and in the kernel
  // Kernel column j's terms, q in [j * C_in, (j + 1) * C_in), for pixels [LO, P - HI).
  auto column = [&]<std::size_t LO, std::size_t HI>(const float* x_row, const float* k_row, std::size_t j) {
    if constexpr (LO + HI < P)
      for (std::size_t q = j * c_in; q < (j + 1) * c_in; ++q) {
        Vec kv[NV];
        for (std::size_t v = 0; v < NV; ++v) kv[v] = simd::load(k_row + q * c_out + v * kV);
        for (std::size_t p = LO; p < P - HI; ++p) {
          const float value = x_row[p * c_in + q];
          for (std::size_t v = 0; v < NV; ++v) acc[p][v] += value * kv[v];  // one FMA
        }
      }
  };
  for (std::size_t i = i0; i < i1; ++i) {
    const float* x_row = in + i * row_stride;   // x_row: (P + 2, C_in)
    const float* k_row = k + i * span * c_out;  // k_row: (3 * C_in, C_out)
    if (zero_lo == 0 && zero_hi == 0) {
      for (std::size_t q = 0; q < span; ++q) {
        Vec kv[NV];
        for (std::size_t v = 0; v < NV; ++v) kv[v] = simd::load(k_row + q * c_out + v * kV);
        for (std::size_t p = 0; p < P; ++p) {
          const float value = x_row[p * c_in + q];
          for (std::size_t v = 0; v < NV; ++v) acc[p][v] += value * kv[v];  // one FMA
        }
      }
      continue;
    }
    for (std::size_t j = 0; j < 3; ++j) {
      // Pixel p, column j reads input column p + j: zero when p + j < zero_lo
      // or p + j >= P + 2 - zero_hi. Skipped: the first LO pixels, the last HI.
      const std::size_t lo = zero_lo > j ? zero_lo - j : 0, hi = zero_hi > 2 - j ? zero_hi - (2 - j) : 0;
      switch (lo * 3 + hi) {
        case 0: column.template operator()<0, 0>(x_row, k_row, j); break;
        case 1: column.template operator()<0, 1>(x_row, k_row, j); break;
        case 2: column.template operator()<0, 2>(x_row, k_row, j); break;
        case 3: column.template operator()<1, 0>(x_row, k_row, j); break;
        case 4: column.template operator()<1, 1>(x_row, k_row, j); break;
        case 5: column.template operator()<1, 2>(x_row, k_row, j); break;
        case 6: column.template operator()<2, 0>(x_row, k_row, j); break;
        case 7: column.template operator()<2, 1>(x_row, k_row, j); break;
        default: column.template operator()<2, 2>(x_row, k_row, j); break;
      }
    }
  }
  for (std::size_t p = 0; p < P; ++p)
    for (std::size_t v = 0; v < NV; ++v)
      simd::store(out + p * c_out + v * kV, relu ? simd::max(acc[p][v], Vec{}) : acc[p][v]);
}
// [end snippet conv-direct3x3-channels]

// A block of `count` (1 to P) pixels: channels_pixels<count, NV>.
template <std::size_t P, std::size_t NV>
void channels_pixels_n(std::size_t count, const float* in, std::size_t row_stride, std::size_t c_in,
                       const float* k, std::size_t c_out, std::size_t i0, std::size_t i1, std::size_t zero_lo,
                       std::size_t zero_hi, const float* bias, bool relu, float* out) {
  if (count == P)
    channels_pixels<P, NV>(in, row_stride, c_in, k, c_out, i0, i1, zero_lo, zero_hi, bias, relu, out);
  else if constexpr (P > 1)
    channels_pixels_n<P - 1, NV>(count, in, row_stride, c_in, k, c_out, i0, i1, zero_lo, zero_hi, bias, relu,
                                 out);
}

// One output row: OW pixels, NV * kV channels, in blocks of at most P pixels
// of nearly equal sizes (were P 12, 13 pixels would be 7 and 6, not 12 and 1:
// a block of few pixels does few FMAs per kernel vector loaded).
// The row's first and last `zero_cols` input columns are zeros (padding).
template <std::size_t NV>
void channels_block_row(const float* in, std::size_t row_stride, std::size_t c_in, const float* k, std::size_t c_out,
                        std::size_t ow_count, std::size_t i0, std::size_t i1, std::size_t zero_cols,
                        const float* bias, bool relu, float* out) {
  constexpr std::size_t P = block_pixels(NV);
  const std::size_t blocks = (ow_count + P - 1) / P;
  for (std::size_t block = 0; block < blocks; ++block) {
    const Range pixels = split_range(ow_count, blocks, block);
    const std::size_t zero_lo = zero_cols > pixels.begin ? zero_cols - pixels.begin : 0;
    const std::size_t after = ow_count - pixels.end;  // input columns of the row after the block's last window
    const std::size_t zero_hi = zero_cols > after ? zero_cols - after : 0;
    channels_pixels_n<P, NV>(pixels.end - pixels.begin, in + pixels.begin * c_in, row_stride, c_in, k, c_out, i0,
                             i1, zero_lo, zero_hi, bias, relu, out + pixels.begin * c_out);
  }
}

// One output row, all C_out channels: blocks of kBlockVecs vectors, then of
// fewer for the channels left over. The row's first and last `zero_cols`
// (0 or 2) input columns are padding, their terms skipped.
// (BlockVecs: the most channel vectors per block, kBlockVecs but for the
// input gradient with 16 registers: see input_gradient_flipped.)
template <std::size_t BlockVecs = kBlockVecs>
void channels_row(const float* in, std::size_t row_stride, std::size_t c_in, const float* kernel,
                  std::size_t c_out, std::size_t ow_count, std::size_t i0, std::size_t i1, const float* bias,
                  bool relu, float* out, std::size_t zero_cols = 0) {
  std::size_t cb = 0;
  auto blocks = [&]<std::size_t NV>(std::integral_constant<std::size_t, NV>) {
    for (; cb + NV * kV <= c_out; cb += NV * kV)
      channels_block_row<NV>(in, row_stride, c_in, kernel + cb, c_out, ow_count, i0, i1, zero_cols,
                             bias ? bias + cb : nullptr, relu, out + cb);
  };
  blocks(std::integral_constant<std::size_t, BlockVecs>{});
  if constexpr (BlockVecs > 2) blocks(std::integral_constant<std::size_t, 2>{});
  if constexpr (BlockVecs > 1) blocks(std::integral_constant<std::size_t, 1>{});
}

void forward_direct3x3_channels(const Conv2DDims& d, const float* x, const float* kernel, const float* bias,
                                float* y, bool relu) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  parallel_for(0, d.n, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t n = lo; n < hi; ++n)
      for (std::size_t oh = 0; oh < OH; ++oh)
        channels_row(x + (n * d.h + oh) * d.w * d.c_in, d.w * d.c_in, d.c_in, kernel, C, OW, 0, 3, bias, relu,
                     y + (n * OH + oh) * OW * C);  // one output row: (OW, C_out)
  });
}

// dkernel[i, :, :, cb:cb+NV*kV] += sum over one image's output pixels of
// x[n, oh + i, ow:ow+3, :] (3 * C_in values, contiguous) times dy[n, oh, ow, cb:...]:
// Q kernel rows times NV channel vectors of dkernel in registers while the
// pixels go by, loaded from dk and stored back once per image.
// Not inlined: inlined into backward_direct3x3_channels, GCC 12 kept half of
// the AVX2 build's accumulators on the stack, each multiply-add loading and
// storing one, and the kernel gradient ran at half the speed
// (conv2d_backward_weights_32to64/direct3x3/128 with -march=haswell: about
// 100 GFLOP/s inlined, 190 not).
template <std::size_t Q, std::size_t NV>
[[gnu::noinline]] void dkernel_rows(const Conv2DDims& d, const float* x_image, const float* dy_image, std::size_t i,
                                    std::size_t q0, std::size_t cb, float* dk) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out, span = 3 * d.c_in;
  float* dk_rows = dk + (i * span + q0) * C + cb;  // dk_rows: (Q, C_out) from channel cb
  Vec acc[Q][NV];
  for (std::size_t r = 0; r < Q; ++r)
    for (std::size_t v = 0; v < NV; ++v) acc[r][v] = simd::load(dk_rows + r * C + v * kV);
  for (std::size_t oh = 0; oh < OH; ++oh) {
    const float* x_row = x_image + (oh + i) * d.w * d.c_in + q0;
    const float* dy_row = dy_image + oh * OW * C + cb;
    for (std::size_t ow = 0; ow < OW; ++ow) {
      Vec g[NV];
      for (std::size_t v = 0; v < NV; ++v) g[v] = simd::load(dy_row + ow * C + v * kV);
      for (std::size_t r = 0; r < Q; ++r) {
        const float value = x_row[ow * d.c_in + r];
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] += value * g[v];  // one FMA
      }
    }
  }
  for (std::size_t r = 0; r < Q; ++r)
    for (std::size_t v = 0; v < NV; ++v) simd::store(dk_rows + r * C + v * kV, acc[r][v]);
}

// The last `count` (< Q) kernel rows of a kernel row's span, as one block.
template <std::size_t Q, std::size_t NV>
void dkernel_rows_tail(std::size_t count, const Conv2DDims& d, const float* x_image, const float* dy_image,
                       std::size_t i, std::size_t q0, std::size_t cb, float* dk) {
  if constexpr (Q > 1) {
    if (count == Q - 1)
      dkernel_rows<Q - 1, NV>(d, x_image, dy_image, i, q0, cb, dk);
    else
      dkernel_rows_tail<Q - 1, NV>(count, d, x_image, dy_image, i, q0, cb, dk);
  }
}

template <std::size_t NV>
void dkernel_image(const Conv2DDims& d, const float* x_image, const float* dy_image, std::size_t cb, float* dk) {
  constexpr std::size_t Q = block_pixels(NV);  // kernel rows per block
  const std::size_t span = 3 * d.c_in;
  for (std::size_t i = 0; i < 3; ++i) {
    std::size_t q = 0;
    for (; q + Q <= span; q += Q) dkernel_rows<Q, NV>(d, x_image, dy_image, i, q, cb, dk);
    dkernel_rows_tail<Q, NV>(span - q, d, x_image, dy_image, i, q, cb, dk);
  }
}

// dx for C_in not a multiple of kLanes: as input_gradient_direct3x3, 16
// partial sums over C_out per input value, reduced once.
void input_gradient_dot(const Conv2DDims& d, const float* kernel, const float* dy, float* dx, std::size_t n) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  for (std::size_t h = 0; h < d.h; ++h)
    for (std::size_t w = 0; w < d.w; ++w)
      for (std::size_t ci = 0; ci < d.c_in; ++ci) {
        simd::Lanes acc{};
        for (std::size_t i = 0; i < 3; ++i) {
          if (h < i || h - i >= OH) continue;  // no output row h - i
          for (std::size_t j = 0; j < 3; ++j) {
            if (w < j || w - j >= OW) continue;
            const float* dy_pixel = dy + ((n * OH + h - i) * OW + w - j) * C;  // dy_pixel: (C_out,)
            const float* k = kernel + ((i * 3 + j) * d.c_in + ci) * C;         // k: (C_out,)
            for (std::size_t cb = 0; cb < C; cb += simd::kLanes) simd::multiply_add_lanes(acc, dy_pixel + cb, k + cb);
          }
        }
        dx[((n * d.h + h) * d.w + w) * d.c_in + ci] = simd::sum_lanes(acc);
      }
}

// flipped[a, b, co, ci] = kernel[2 - a, 2 - b, ci, co]: the kernel turned by 180
// degrees, C_in and C_out swapped (see input_gradient_flipped).
void flip_kernel(const Conv2DDims& d, const float* kernel, float* flipped) {
  const std::size_t CI = d.c_in, C = d.c_out;
  for (std::size_t a = 0; a < 3; ++a)
    for (std::size_t b = 0; b < 3; ++b) {
      const float* from = kernel + ((2 - a) * 3 + (2 - b)) * CI * C;  // from: (C_in, C_out)
      float* to = flipped + (a * 3 + b) * C * CI;                     // to: (C_out, C_in)
      for (std::size_t ci = 0; ci < CI; ++ci)
        for (std::size_t co = 0; co < C; ++co) to[co * CI + ci] = from[ci * C + co];
    }
}

// The flipped kernel and a copy of the kernel it was made from.
// Compared bit for bit (memcmp: -0.0 is not 0.0 here, NaN is NaN), and with
// C_in: the same floats as (3, 3, C_in, C_out) for another C_in flip differently.
struct FlippedKernel {
  std::vector<float> values, from;
  std::size_t c_in = 0;
  void update(const Conv2DDims& d, const float* kernel) {
    const std::size_t size = 9 * d.c_in * d.c_out;
    if (c_in == d.c_in && from.size() == size && std::memcmp(kernel, from.data(), size * sizeof(float)) == 0)
      return;
    from.assign(kernel, kernel + size);
    c_in = d.c_in;
    values.resize(size);
    flip_kernel(d, kernel, values.data());
  }
};

// One image's dy with its zero border: (OH + 4, OW + 4, C_out), kept per
// thread. The border is zeroed when the buffer is made for a shape, and only
// the inside is written after that.
struct PaddedImage {
  std::vector<float> values;
  std::size_t rows = 0, cols = 0, channels = 0;
};

float* padded_dy(PaddedImage& pad, const Conv2DDims& d, const float* dy_image) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  if (pad.rows != OH + 4 || pad.cols != OW + 4 || pad.channels != C) {
    pad.values.assign((OH + 4) * (OW + 4) * C, 0.0f);
    pad.rows = OH + 4, pad.cols = OW + 4, pad.channels = C;
  }
  for (std::size_t oh = 0; oh < OH; ++oh)  // dy's row oh into padded row oh + 2, from column 2
    std::copy(dy_image + oh * OW * C, dy_image + (oh + 1) * OW * C,
              pad.values.data() + ((oh + 2) * (OW + 4) + 2) * C);
  return pad.values.data();
}

// With 16 vector registers (AVX2, SSE), dx's blocks are one vector of
// channels wide: a row of 13 pixels is then one block of 13 pixels, where
// blocks of two vectors (6 pixels at most) split it into 5, 4 and 4, each
// loading every kernel vector for only 8 or 10 multiply-adds. (The whole
// backward pass, conv2d_backward_32to64/direct3x3/128 with -march=haswell:
// 100 -> 177 GFLOP/s.) The sums are the same: each pixel's terms in the same
// order, whatever its block.
constexpr std::size_t kDxBlockVecs = kVecRegisters == 16 ? 1 : kBlockVecs;

// [snippet conv-direct3x3-channels-dx]
// dx is the "full" correlation of dy with the kernel turned by 180 degrees and
// transposed (C_out <-> C_in):
//   dx[n, h, w, ci] = sum over a, b, co of dy_padded[n, h + a, w + b, co] * flipped[a, b, co, ci]
//   flipped[a, b, co, ci] = kernel[2 - a, 2 - b, ci, co]
// where dy_padded is dy with a border of 2 zeros. That is the forward
// convolution again, C_out channels in and C_in out: channels_row computes it,
// and skips the terms that fall on the padding: the kernel rows on its zero
// rows, and each block's pixels whose kernel column falls on its zero
// columns (on 13 columns, 6 of the 39 pixel-columns of a row). Skipping
// a zero term changes no sum: each is the same nonzero terms in the same
// order, less terms 0 * k (k finite) added to a sum that starts at +0 and so
// is never -0.
void input_gradient_flipped(const Conv2DDims& d, const float* flipped, const float* dy_image, float* dx_image,
                            PaddedImage& pad) {
  const std::size_t OH = d.oh(), C = d.c_out;
  const float* dyp = padded_dy(pad, d, dy_image);  // dyp: (OH + 4, OW + 4, C_out)
  const std::size_t row_stride = (d.ow() + 4) * C;
  for (std::size_t h = 0; h < d.h; ++h) {
    // Padded rows h + a hold dy's row h + a - 2 when 2 <= h + a < OH + 2, zeros otherwise.
    const std::size_t a0 = h < 2 ? 2 - h : 0, a1 = std::min<std::size_t>(3, OH + 2 - h);
    channels_row<kDxBlockVecs>(dyp + h * row_stride, row_stride, C, flipped, d.c_in, d.w, a0, a1, nullptr, false,
                               dx_image + h * d.w * d.c_in, 2);  // one row of dx: (W, C_in)
  }
}
// [end snippet conv-direct3x3-channels-dx]

void backward_direct3x3_channels(const Conv2DDims& d, const float* x, const float* kernel, const float* dy,
                                 float* dkernel, float* dbias, float* dx) {
  const std::size_t OH = d.oh(), OW = d.ow(), C = d.c_out;
  // (kLanes, not the vector width: every CPU chooses the same way.)
  const bool flipped_dx = dx && d.c_in % simd::kLanes == 0;
  // The flipped kernel, kept per thread with the kernel it was made from: the
  // fused Conv2D + MaxPooling2D step calls this once per image, with the same
  // kernel for a whole batch, and comparing costs less than flipping again.
  thread_local FlippedKernel flipped_storage;
  FlippedKernel& flipped = flipped_storage;
  if (flipped_dx) flipped.update(d, kernel);
  auto chunk = [&](std::size_t n0, std::size_t n1, float* dk, float* db) {
    thread_local PaddedImage pad_storage;
    PaddedImage& pad = pad_storage;
    std::fill(dk, dk + 9 * d.c_in * C, 0.0f);
    for (std::size_t n = n0; n < n1; ++n) {
      const float* x_image = x + n * d.h * d.w * d.c_in;  // (H, W, C_in)
      const float* dy_image = dy + n * OH * OW * C;       // (OH, OW, C_out)
      std::size_t cb = 0;
      auto blocks = [&]<std::size_t NV>(std::integral_constant<std::size_t, NV>) {
        for (; cb + NV * kV <= C; cb += NV * kV) dkernel_image<NV>(d, x_image, dy_image, cb, dk);
      };
      blocks(std::integral_constant<std::size_t, kBlockVecs>{});
      if constexpr (kBlockVecs > 2) blocks(std::integral_constant<std::size_t, 2>{});
      blocks(std::integral_constant<std::size_t, 1>{});
      if (flipped_dx)
        input_gradient_flipped(d, flipped.values.data(), dy_image, dx + n * d.h * d.w * d.c_in, pad);
      else if (dx)
        input_gradient_dot(d, kernel, dy, dx, n);
    }
    for (std::size_t cb = 0; cb < C; cb += kV) {  // dbias: the sum of dy over the pixels, in order
      Vec acc{};
      for (std::size_t p = n0 * OH * OW; p < n1 * OH * OW; ++p) acc += simd::load(dy + p * C + cb);
      simd::store(db + cb, acc);
    }
  };
  // One part (one image, or one thread): its sums are the result, written in
  // place without the partials' buffers.
  if (std::min(d.n, thread_count()) == 1)
    chunk(0, d.n, dkernel, dbias);
  else
    backward_partials(d, dkernel, dbias, chunk);
}

}  // namespace

void forward_direct3x3_c1_rows(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, bool relu,
                               std::size_t n, std::size_t oh0, std::size_t oh1, float* y) {
  c1_rows(d, x, kernel, bias, relu, n, oh0, oh1, y);
}

void forward_direct3x3(const Conv2DDims& d, const float* x, const float* kernel, const float* bias, float* y,
                       bool relu) {
  if (d.c_in == 1)
    forward_direct3x3_c1(d, x, kernel, bias, y, relu);
  else
    forward_direct3x3_channels(d, x, kernel, bias, y, relu);
}

void backward_direct3x3(const Conv2DDims& d, const float* x, const float* kernel, const float* dy,
                        float* dkernel, float* dbias, float* dx) {
  if (d.c_in == 1)
    backward_direct3x3_c1(d, x, kernel, dy, dkernel, dbias, dx);
  else
    backward_direct3x3_channels(d, x, kernel, dy, dkernel, dbias, dx);
}

}  // namespace nn::conv2d_impl
#endif
