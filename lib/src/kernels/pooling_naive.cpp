// The naive reference max pooling: the loops of the definition, in float and
// in double. The vectorized variant (pooling.cpp) is tested against it.
#include <algorithm>
#include <cstddef>

#include "nn/pooling.hpp"

namespace nn {

// [snippet pool-naive]
template <class T>
void max_pool2d_forward_naive(const Shape& x_shape, std::size_t pool, const T* x, T* y) {
  const Shape out = max_pool2d_output_shape(x_shape, pool);
  const std::size_t n = out[0], oh = out[1], ow = out[2], c = out[3], h = x_shape[1], w = x_shape[2];
  auto X = [&](std::size_t b, std::size_t i, std::size_t j, std::size_t ch) {  // x: (N, H, W, C)
    return x[((b * h + i) * w + j) * c + ch];
  };
  for (std::size_t b = 0; b < n; ++b)                // y: (N, OH, OW, C)
    for (std::size_t i = 0; i < oh; ++i)
      for (std::size_t j = 0; j < ow; ++j)
        for (std::size_t ch = 0; ch < c; ++ch) {
          T best = X(b, i * pool, j * pool, ch);
          for (std::size_t p = 0; p < pool; ++p)       // the pool x pool window
            for (std::size_t q = 0; q < pool; ++q)
              best = std::max(best, X(b, i * pool + p, j * pool + q, ch));
          y[((b * oh + i) * ow + j) * c + ch] = best;
        }
}
// [end snippet pool-naive]

template <class T>
void max_pool2d_backward_naive(const Shape& x_shape, std::size_t pool, const T* x, const T* dy, T* dx) {
  const Shape out = max_pool2d_output_shape(x_shape, pool);
  const std::size_t n = out[0], oh = out[1], ow = out[2], c = out[3], h = x_shape[1], w = x_shape[2];
  auto at = [&](std::size_t b, std::size_t i, std::size_t j, std::size_t ch) {  // an index into x and dx
    return ((b * h + i) * w + j) * c + ch;
  };
  std::fill(dx, dx + x_shape.size(), T(0));  // inputs that win no window get 0
  for (std::size_t b = 0; b < n; ++b)
    for (std::size_t i = 0; i < oh; ++i)
      for (std::size_t j = 0; j < ow; ++j)
        for (std::size_t ch = 0; ch < c; ++ch) {
          // The first maximum in row-major window order takes the gradient.
          std::size_t bp = 0, bq = 0;
          for (std::size_t p = 0; p < pool; ++p)
            for (std::size_t q = 0; q < pool; ++q)
              if (x[at(b, i * pool + p, j * pool + q, ch)] > x[at(b, i * pool + bp, j * pool + bq, ch)]) bp = p, bq = q;
          dx[at(b, i * pool + bp, j * pool + bq, ch)] = dy[((b * oh + i) * ow + j) * c + ch];
        }
}

template void max_pool2d_forward_naive<float>(const Shape&, std::size_t, const float*, float*);
template void max_pool2d_forward_naive<double>(const Shape&, std::size_t, const double*, double*);
template void max_pool2d_backward_naive<float>(const Shape&, std::size_t, const float*, const float*, float*);
template void max_pool2d_backward_naive<double>(const Shape&, std::size_t, const double*, const double*,
                                                double*);

}  // namespace nn
