#include "nn/conv2d.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "nn/error.hpp"
#include "nn/gemm.hpp"
#include "nn/init.hpp"
#include "nn/parallel.hpp"
#include "nn/shape.hpp"
#include "nn/simd.hpp"

namespace nn {

// ---------------------------------------------------------------- names, shapes

namespace {

constexpr std::array kVariants = {Conv2DVariant::naive, Conv2DVariant::reordered, Conv2DVariant::im2col,
                                  Conv2DVariant::threaded, Conv2DVariant::direct3x3};
constexpr std::array<std::string_view, kVariants.size()> kNames = {"naive", "reordered", "im2col", "threaded",
                                                                   "direct3x3"};

}  // namespace

std::span<const Conv2DVariant> conv2d_variants() { return kVariants; }

std::string_view conv2d_variant_name(Conv2DVariant v) { return kNames.at(static_cast<std::size_t>(v)); }

std::string conv2d_variant_names() {
  std::string all;
  for (auto name : kNames) all += (all.empty() ? "" : ", ") + std::string(name);
  return all;
}

Conv2DVariant conv2d_variant(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return kVariants[i];
  throw Error(fmt::format("unknown convolution variant '{}'; the variants are: {}", name, conv2d_variant_names()));
}

double Conv2DDims::forward_flops() const {
  return 2.0 * static_cast<double>(n) * static_cast<double>(oh()) * static_cast<double>(ow()) *
         static_cast<double>(kh * kw * c_in * c_out);
}

Conv2DDims conv2d_dims(const Shape& x, const Shape& kernel) {
  auto fail = [&](const std::string& why) {
    return Error(fmt::format("Conv2D: input {} and kernel {}: {}", x.str(), kernel.str(), why));
  };
  if (x.rank() != 4) throw fail("the input must be (N, H, W, C_in)");
  if (kernel.rank() != 4) throw fail("the kernel must be (KH, KW, C_in, C_out)");
  for (std::size_t i = 0; i < 4; ++i)
    if (x[i] == 0 || kernel[i] == 0) throw fail("a dimension is 0");
  if (x[3] != kernel[2])
    throw fail(fmt::format("the input has {} channels but the kernel expects {}", x[3], kernel[2]));
  if (kernel[0] > x[1] || kernel[1] > x[2])
    throw fail(fmt::format("a {}x{} kernel does not fit in a {}x{} image (padding \"valid\")", kernel[0],
                           kernel[1], x[1], x[2]));
  return {x[0], x[1], x[2], x[3], kernel[0], kernel[1], kernel[3]};
}

// ---------------------------------------------------------------- 1. naive

// [snippet conv-forward-naive]
template <class T>
void conv2d_forward_naive(const Conv2DDims& d, const T* x, const T* kernel, const T* bias, T* y) {
  const std::size_t OH = d.oh(), OW = d.ow();
  // x: (N, H, W, C_in)   kernel: (KH, KW, C_in, C_out)   y: (N, OH, OW, C_out)
  auto X = [&](std::size_t n, std::size_t h, std::size_t w, std::size_t c) {
    return x[((n * d.h + h) * d.w + w) * d.c_in + c];
  };
  auto K = [&](std::size_t i, std::size_t j, std::size_t ci, std::size_t co) {
    return kernel[((i * d.kw + j) * d.c_in + ci) * d.c_out + co];
  };
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t oh = 0; oh < OH; ++oh)
      for (std::size_t ow = 0; ow < OW; ++ow)
        for (std::size_t co = 0; co < d.c_out; ++co) {
          T sum = bias[co];
          for (std::size_t i = 0; i < d.kh; ++i)          // the window under the kernel
            for (std::size_t j = 0; j < d.kw; ++j)
              for (std::size_t ci = 0; ci < d.c_in; ++ci)
                sum += X(n, oh + i, ow + j, ci) * K(i, j, ci, co);
          y[((n * OH + oh) * OW + ow) * d.c_out + co] = sum;
        }
}
// [end snippet conv-forward-naive]

// [snippet conv-backward-naive]
template <class T>
void conv2d_backward_naive(const Conv2DDims& d, const T* x, const T* kernel, const T* dy, T* dkernel, T* dbias,
                           T* dx) {
  const std::size_t OH = d.oh(), OW = d.ow();
  std::fill(dkernel, dkernel + d.kh * d.kw * d.c_in * d.c_out, T(0));
  std::fill(dbias, dbias + d.c_out, T(0));
  if (dx) std::fill(dx, dx + d.n * d.h * d.w * d.c_in, T(0));
  auto xi = [&](std::size_t n, std::size_t h, std::size_t w, std::size_t c) {
    return ((n * d.h + h) * d.w + w) * d.c_in + c;
  };
  auto ki = [&](std::size_t i, std::size_t j, std::size_t ci, std::size_t co) {
    return ((i * d.kw + j) * d.c_in + ci) * d.c_out + co;
  };
  // Each output y[n, oh, ow, co] = bias[co] + sum x * kernel sends its
  // gradient g back to every term of its sum.
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t oh = 0; oh < OH; ++oh)
      for (std::size_t ow = 0; ow < OW; ++ow)
        for (std::size_t co = 0; co < d.c_out; ++co) {
          const T g = dy[((n * OH + oh) * OW + ow) * d.c_out + co];
          dbias[co] += g;
          for (std::size_t i = 0; i < d.kh; ++i)
            for (std::size_t j = 0; j < d.kw; ++j)
              for (std::size_t ci = 0; ci < d.c_in; ++ci) {
                dkernel[ki(i, j, ci, co)] += x[xi(n, oh + i, ow + j, ci)] * g;
                if (dx) dx[xi(n, oh + i, ow + j, ci)] += kernel[ki(i, j, ci, co)] * g;
              }
        }
}
// [end snippet conv-backward-naive]

template void conv2d_forward_naive<float>(const Conv2DDims&, const float*, const float*, const float*, float*);
template void conv2d_forward_naive<double>(const Conv2DDims&, const double*, const double*, const double*,
                                           double*);
template void conv2d_backward_naive<float>(const Conv2DDims&, const float*, const float*, const float*, float*,
                                           float*, float*);
template void conv2d_backward_naive<double>(const Conv2DDims&, const double*, const double*, const double*,
                                            double*, double*, double*);

namespace {

// ---------------------------------------------------------------- 2. reordered

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
        const float* g = dy + ((n * OH + oh) * OW + ow) * C;  // g: (C_out,)
        for (std::size_t co = 0; co < C; ++co) dbias[co] += g[co];
        for (std::size_t i = 0; i < d.kh; ++i) {
          const std::size_t at = ((n * d.h + oh + i) * d.w + ow) * d.c_in;
          const float* in = x + at;                        // in: (KW * C_in,)
          float* dk = dkernel + i * window_row * C;        // dk: (KW * C_in, C_out)
          for (std::size_t q = 0; q < window_row; ++q) {
            const float v = in[q];
            float* dkq = dk + q * C;
            for (std::size_t co = 0; co < C; ++co) dkq[co] += v * g[co];
          }
          if (!dx) continue;
          const float* k = kernel + i * window_row * C;
          float* din = dx + at;
          for (std::size_t q = 0; q < window_row; ++q) {
            const float* kq = k + q * C;
            float s = 0.0f;  // a dot product over C_out
            for (std::size_t co = 0; co < C; ++co) s += kq[co] * g[co];
            din[q] += s;
          }
        }
      }
}

// ---------------------------------------------------------------- 3. im2col + GEMM

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

std::size_t window_size(const Conv2DDims& d) { return d.kh * d.kw * d.c_in; }
std::size_t pixels(const Conv2DDims& d) { return d.oh() * d.ow(); }

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
  const float* g = dy + n0 * pixels(d) * C;  // g: (M, C_out)
  cols.resize(M * K);
  im2col(d, x, n0, n1, cols.data());
  // dkernel: (K, C_out) = cols^T (K, M) * g (M, C_out)
  gemm({.m = K, .n = C, .k = M, .a = cols.data(), .transpose_a = true, .b = g, .c = dkernel,
        .beta = accumulate ? 1.0f : 0.0f});
  if (!accumulate) std::fill(dbias, dbias + C, 0.0f);
  for (std::size_t r = 0; r < M; ++r)
    for (std::size_t co = 0; co < C; ++co) dbias[co] += g[r * C + co];
  if (dx) backward_input_gemm(d, kernel, dy, dx, n0, n1, cols);
}

// ---------------------------------------------------------------- 4. threaded

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

void backward_threaded(const Conv2DDims& d, const float* x, const float* kernel, const float* dy, float* dkernel,
                       float* dbias, float* dx) {
  backward_partials(d, dkernel, dbias, [&](std::size_t n0, std::size_t n1, float* dk, float* db) {
    std::vector<float> cols;
    for (std::size_t n = n0; n < n1; ++n)
      backward_gemm(d, x, kernel, dy, dk, db, dx, n, n + 1, /*accumulate=*/n > n0, cols);
  });
}

// ---------------------------------------------------------------- 5. direct 3x3, C_in = 1

#if NN_HAVE_SIMD
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
            const float* g = dy + ((n * OH + h - i) * OW + w - j) * C;  // g: (C_out,)
            const float* k = kernel + (i * 3 + j) * C;                  // k: (C_out,)
            for (std::size_t cb = 0; cb < C; cb += kV) acc += simd::load(g + cb) * simd::load(k + cb);
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
          const float* g = dy + (n * OH + oh) * OW * C + cb;
          for (std::size_t ow = 0; ow < OW; ++ow) {
            const Vec gv = simd::load(g + ow * C);
            acc_b += gv;
            for (std::size_t i = 0; i < 3; ++i)
              for (std::size_t j = 0; j < 3; ++j) acc[i * 3 + j] += row[i * d.w + ow + j] * gv;
          }
        }
      for (std::size_t t = 0; t < 9; ++t) simd::store(dk + t * C + cb, acc[t]);
      simd::store(db + cb, acc_b);
    }
    if (dx) input_gradient_direct3x3(d, kernel, dy, dx, n0, n1);
  });
}
#endif

}  // namespace

// ---------------------------------------------------------------- dispatch

void conv2d_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Tensor& y, Conv2DVariant variant,
                    Activation activation) {
  const Conv2DDims d = conv2d_dims(x.shape(), kernel.shape());
  if (bias.shape() != Shape{d.c_out})
    throw Error(fmt::format("Conv2D: bias is {} but the kernel {} has {} filters", bias.shape().str(),
                            kernel.shape().str(), d.c_out));
  if (y.shape() != d.y_shape())
    throw Error(fmt::format("Conv2D: the output buffer is {}, the output is {}", y.shape().str(),
                            d.y_shape().str()));
  const bool relu = activation == Activation::relu;
  bool fused = false;
  switch (variant) {
    case Conv2DVariant::naive:
      conv2d_forward_naive(d, x.data(), kernel.data(), bias.data(), y.data());
      break;
    case Conv2DVariant::reordered:
      forward_reordered(d, x.data(), kernel.data(), bias.data(), y.data());
      break;
    case Conv2DVariant::im2col: {
      std::vector<float> cols(d.n * pixels(d) * window_size(d));
      forward_gemm(d, x.data(), kernel.data(), bias.data(), y.data(), 0, d.n, cols.data());
      break;
    }
    case Conv2DVariant::direct3x3:
#if NN_HAVE_SIMD
      if (direct3x3_applies(d)) {
        forward_direct3x3(d, x.data(), kernel.data(), bias.data(), y.data(), relu);
        fused = true;
        break;
      }
#endif
      [[fallthrough]];
    case Conv2DVariant::threaded:
      forward_threaded(d, x.data(), kernel.data(), bias.data(), y.data(), relu);
      fused = true;
      break;
  }
  if (relu && !fused) relu_inplace(y);
}

Tensor conv2d_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Conv2DVariant variant,
                      Activation activation) {
  Tensor y(conv2d_dims(x.shape(), kernel.shape()).y_shape());
  conv2d_forward(x, kernel, bias, y, variant, activation);
  return y;
}

void conv2d_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, Conv2DVariant variant,
                     Conv2DGradients& g, bool input_gradient) {
  const Conv2DDims d = conv2d_dims(x.shape(), kernel.shape());
  if (dy.shape() != d.y_shape())
    throw Error(fmt::format("Conv2D backward: dy is {} but the output is {}", dy.shape().str(),
                            d.y_shape().str()));
  ensure_shape(g.dkernel, d.kernel_shape());
  ensure_shape(g.dbias, Shape{d.c_out});
  g.dkernel.fill(0.0f);
  g.dbias.fill(0.0f);
  if (input_gradient) {
    ensure_shape(g.dx, d.x_shape());
    g.dx.fill(0.0f);
  } else {
    g.dx = Tensor();
  }
  float* dx = input_gradient ? g.dx.data() : nullptr;
  switch (variant) {
    case Conv2DVariant::naive:
      conv2d_backward_naive(d, x.data(), kernel.data(), dy.data(), g.dkernel.data(), g.dbias.data(), dx);
      break;
    case Conv2DVariant::reordered:
      backward_reordered(d, x.data(), kernel.data(), dy.data(), g.dkernel.data(), g.dbias.data(), dx);
      break;
    case Conv2DVariant::im2col: {
      std::vector<float> cols;
      backward_gemm(d, x.data(), kernel.data(), dy.data(), g.dkernel.data(), g.dbias.data(), dx, 0, d.n, false,
                    cols);
      break;
    }
    case Conv2DVariant::direct3x3:
#if NN_HAVE_SIMD
      if (direct3x3_applies(d)) {
        backward_direct3x3(d, x.data(), kernel.data(), dy.data(), g.dkernel.data(), g.dbias.data(), dx);
        break;
      }
#endif
      [[fallthrough]];
    case Conv2DVariant::threaded:
      backward_threaded(d, x.data(), kernel.data(), dy.data(), g.dkernel.data(), g.dbias.data(), dx);
      break;
  }
}

Conv2DGradients conv2d_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, Conv2DVariant variant,
                                bool input_gradient) {
  Conv2DGradients g;
  conv2d_backward(x, kernel, dy, variant, g, input_gradient);
  return g;
}

// ---------------------------------------------------------------- the layer

Conv2D::Conv2D(const Conv2DOptions& options)
    : kernel({options.kernel.h, options.kernel.w, options.input_channels, options.filters}),
      bias({options.filters}),
      options_(options) {
  if (options.filters == 0 || options.kernel.h == 0 || options.kernel.w == 0 || options.input_channels == 0)
    throw Error(fmt::format("Conv2D: filters ({}), kernel ({}x{}) and input_channels ({}) must all be positive",
                            options.filters, options.kernel.h, options.kernel.w, options.input_channels));
  const std::size_t taps = options.kernel.h * options.kernel.w;
  glorot_uniform(kernel, taps * options.input_channels, taps * options.filters, options.seed);
}

Shape Conv2D::output_shape(const Shape& x) const { return conv2d_dims(x, kernel.shape()).y_shape(); }

Tensor Conv2D::forward(const Tensor& x) const {
  return conv2d_forward(x, kernel, bias, options_.variant, options_.activation);
}

void Conv2D::forward(const Tensor& x, Tensor& y) const {
  conv2d_forward(x, kernel, bias, y, options_.variant, options_.activation);
}

void Conv2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Conv2DGradients& out, Tensor& relu_grad,
                      bool input_gradient) const {
  // Through the activation first, then the convolution.
  conv2d_backward(x, kernel, activation_backward(options_.activation, y, dy, relu_grad), options_.variant, out,
                  input_gradient);
}

Conv2DGradients Conv2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool input_gradient) const {
  Conv2DGradients g;
  Tensor relu_grad;
  backward(x, y, dy, g, relu_grad, input_gradient);
  return g;
}

}  // namespace nn
