// BatchNormalization's kernels (nn/batch_norm.hpp): the loops of the
// definition, rows outside and channels inside, so that each row is one
// contiguous run of C values and the per-channel sums are a vector of C.
#include "nn/batch_norm.hpp"

#include <cmath>
#include <vector>

namespace nn {

template <class T>
void batch_norm_forward_training(std::size_t rows, std::size_t channels, const T* x, const T* gamma,
                                 const T* beta, double epsilon, T* y, T* mean, T* variance) {
  // Two passes (the mean, then the mean square distance from it) in double:
  // E[x^2] - E[x]^2 would cancel for a channel far from 0.
  std::vector<double> sum(channels, 0.0), square(channels, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < channels; ++c) sum[c] += x[r * channels + c];
  for (std::size_t c = 0; c < channels; ++c) sum[c] /= static_cast<double>(rows);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < channels; ++c) {
      const double d = x[r * channels + c] - sum[c];
      square[c] += d * d;
    }
  for (std::size_t c = 0; c < channels; ++c) {
    mean[c] = static_cast<T>(sum[c]);
    variance[c] = static_cast<T>(square[c] / static_cast<double>(rows));  // biased, as Keras 3
  }
  batch_norm_forward_inference(rows, channels, x, gamma, beta, mean, variance, epsilon, y);
}

template <class T>
void batch_norm_forward_inference(std::size_t rows, std::size_t channels, const T* x, const T* gamma,
                                  const T* beta, const T* mean, const T* variance, double epsilon, T* y) {
  // y = x * scale + shift per channel, scale = gamma / sqrt(var + eps),
  // shift = beta - mean * scale (what TensorFlow's batch_normalization does).
  std::vector<T> scale(channels), shift(channels);
  for (std::size_t c = 0; c < channels; ++c) {
    scale[c] = static_cast<T>(gamma[c] / std::sqrt(static_cast<double>(variance[c]) + epsilon));
    shift[c] = beta[c] - mean[c] * scale[c];
  }
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < channels; ++c) y[r * channels + c] = x[r * channels + c] * scale[c] + shift[c];
}

template <class T>
void batch_norm_update_moving(std::size_t channels, const T* mean, const T* variance, double momentum,
                              T* moving_mean, T* moving_variance) {
  const T m = static_cast<T>(momentum), rest = static_cast<T>(1.0 - momentum);
  for (std::size_t c = 0; c < channels; ++c) {
    moving_mean[c] = moving_mean[c] * m + mean[c] * rest;
    moving_variance[c] = moving_variance[c] * m + variance[c] * rest;
  }
}

template <class T>
void batch_norm_backward(std::size_t rows, std::size_t channels, const T* x, const T* gamma, const T* mean,
                         const T* variance, double epsilon, const T* dy, T* dx, T* dgamma, T* dbeta) {
  std::vector<double> inv_std(channels), sum_dy(channels, 0.0), sum_dy_xhat(channels, 0.0);
  for (std::size_t c = 0; c < channels; ++c) inv_std[c] = 1.0 / std::sqrt(static_cast<double>(variance[c]) + epsilon);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < channels; ++c) {
      const double g = dy[r * channels + c];
      sum_dy[c] += g;
      sum_dy_xhat[c] += g * (x[r * channels + c] - mean[c]) * inv_std[c];
    }
  for (std::size_t c = 0; c < channels; ++c) {
    dbeta[c] = static_cast<T>(sum_dy[c]);
    dgamma[c] = static_cast<T>(sum_dy_xhat[c]);
  }
  if (dx == nullptr) return;
  // The mean and the variance depend on every x of the channel: the two
  // sums carry those paths (d mean / dx = 1/M, d var / dx = 2 (x - mean) / M).
  const double count = static_cast<double>(rows);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < channels; ++c) {
      const double xhat = (x[r * channels + c] - mean[c]) * inv_std[c];
      dx[r * channels + c] = static_cast<T>(gamma[c] * inv_std[c] *
                                            (dy[r * channels + c] - sum_dy[c] / count - xhat * sum_dy_xhat[c] / count));
    }
}

#define NN_BATCH_NORM_INSTANTIATE(T)                                                                          \
  template void batch_norm_forward_training<T>(std::size_t, std::size_t, const T*, const T*, const T*, double, \
                                               T*, T*, T*);                                                   \
  template void batch_norm_forward_inference<T>(std::size_t, std::size_t, const T*, const T*, const T*,       \
                                                const T*, const T*, double, T*);                              \
  template void batch_norm_update_moving<T>(std::size_t, const T*, const T*, double, T*, T*);                 \
  template void batch_norm_backward<T>(std::size_t, std::size_t, const T*, const T*, const T*, const T*, double, \
                                       const T*, T*, T*, T*);
NN_BATCH_NORM_INSTANTIATE(float)
NN_BATCH_NORM_INSTANTIATE(double)

}  // namespace nn
