// The naive reference convolution: the nested loops of the definition, in
// float and in double (the gradient checks run it in double). Every other
// variant is tested against it.
#include <algorithm>
#include <cstddef>

#include "nn/conv2d.hpp"

namespace nn {

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
  // gradient, grad_out = dy[n, oh, ow, co], back to every term of its sum.
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t oh = 0; oh < OH; ++oh)
      for (std::size_t ow = 0; ow < OW; ++ow)
        for (std::size_t co = 0; co < d.c_out; ++co) {
          const T grad_out = dy[((n * OH + oh) * OW + ow) * d.c_out + co];
          dbias[co] += grad_out;
          for (std::size_t i = 0; i < d.kh; ++i)
            for (std::size_t j = 0; j < d.kw; ++j)
              for (std::size_t ci = 0; ci < d.c_in; ++ci) {
                dkernel[ki(i, j, ci, co)] += x[xi(n, oh + i, ow + j, ci)] * grad_out;
                if (dx) dx[xi(n, oh + i, ow + j, ci)] += kernel[ki(i, j, ci, co)] * grad_out;
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

}  // namespace nn
