// The naive reference Dense layer: y = x W + b and its gradients, each output
// element one sum, in float and in double. The fast variant (dense.cpp) is
// tested against it.
#include <cstddef>

#include "nn/dense.hpp"

namespace nn {

// The three definitions as they are written: each output element is one sum.
template <class T>
void dense_forward_naive(std::size_t n, std::size_t in, std::size_t out, const T* x, const T* kernel, const T* bias,
                         T* y) {
  for (std::size_t i = 0; i < n; ++i)  // y[i, j] = b[j] + sum_p x[i, p] W[p, j]
    for (std::size_t j = 0; j < out; ++j) {
      T sum = bias[j];
      for (std::size_t p = 0; p < in; ++p) sum += x[i * in + p] * kernel[p * out + j];
      y[i * out + j] = sum;
    }
}

template <class T>
void dense_backward_naive(std::size_t n, std::size_t in, std::size_t out, const T* x, const T* kernel, const T* dy,
                          T* dkernel, T* dbias, T* dx) {
  for (std::size_t p = 0; p < in; ++p)  // dW[p, j] = sum_i x[i, p] dy[i, j]
    for (std::size_t j = 0; j < out; ++j) {
      T sum = 0;
      for (std::size_t i = 0; i < n; ++i) sum += x[i * in + p] * dy[i * out + j];
      dkernel[p * out + j] = sum;
    }
  for (std::size_t j = 0; j < out; ++j) {  // db[j] = sum_i dy[i, j]
    T sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += dy[i * out + j];
    dbias[j] = sum;
  }
  if (!dx) return;
  for (std::size_t i = 0; i < n; ++i)  // dx[i, p] = sum_j dy[i, j] W[p, j]
    for (std::size_t p = 0; p < in; ++p) {
      T sum = 0;
      for (std::size_t j = 0; j < out; ++j) sum += dy[i * out + j] * kernel[p * out + j];
      dx[i * in + p] = sum;
    }
}

template void dense_forward_naive<float>(std::size_t, std::size_t, std::size_t, const float*, const float*,
                                         const float*, float*);
template void dense_forward_naive<double>(std::size_t, std::size_t, std::size_t, const double*, const double*,
                                          const double*, double*);
template void dense_backward_naive<float>(std::size_t, std::size_t, std::size_t, const float*, const float*,
                                          const float*, float*, float*, float*);
template void dense_backward_naive<double>(std::size_t, std::size_t, std::size_t, const double*, const double*,
                                           const double*, double*, double*, double*);

}  // namespace nn
