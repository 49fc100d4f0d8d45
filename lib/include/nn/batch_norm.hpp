#pragma once
// BatchNormalization's kernels, as Keras's BatchNormalization() with its
// defaults (axis=-1, momentum=0.99, epsilon=0.001, center and scale on):
// every axis but the last is reduced, so each channel c has its own
//
//   y = gamma[c] * (x - mean[c]) / sqrt(variance[c] + epsilon) + beta[c]
//
// x is (N, ..., C), channels last; the kernels see it as `rows` x `channels`
// with rows = N * (every axis between), which is the same memory.
//
// Training: mean and variance are the batch's, over the rows, and the
// variance is the BIASED one (divided by rows, not rows - 1), in the
// normalization and in the moving average alike. The course follows Keras 3
// (keras/src/layers/normalization/batch_normalization.py, `call`: both come
// from ops.moments, which divides by the count). TensorFlow.js 4.22 does the
// same (tfjs-layers/dist/layers/normalization.js: tfc.moments for both).
// tf.keras 2.x's fused path is the odd one: TensorFlow's fused_batch_norm
// returns the variance with Bessel's correction, which that layer adds and
// removes around it (_maybe_add_or_remove_bessels_correction). See
// tools/keras-reference/README.md, "BatchNormalization".
// Inference: the moving statistics take the batch's place.
//
// The moving average after each training step:
//   moving = moving * momentum + batch * (1 - momentum)
//
// The templates are the reference and, instantiated for float, the layer's
// kernels too: the loops run over rows with the channels innermost
// (contiguous), accumulating per channel in double. The gradient checks run
// them in double.
#include <cstddef>

namespace nn {

struct BatchNormOptions {
  double momentum = 0.99;  // Keras's default
  double epsilon = 0.001;  // Keras's default: added to the variance
};

// y = gamma * (x - mean) / sqrt(variance + epsilon) + beta with the batch's
// statistics, which it writes to mean and variance (C each, variance biased).
// x, y: rows x channels; gamma, beta: C.
template <class T>
void batch_norm_forward_training(std::size_t rows, std::size_t channels, const T* x, const T* gamma,
                                 const T* beta, double epsilon, T* y, T* mean, T* variance);

// The same with given statistics (the moving ones, in inference).
template <class T>
void batch_norm_forward_inference(std::size_t rows, std::size_t channels, const T* x, const T* gamma,
                                  const T* beta, const T* mean, const T* variance, double epsilon, T* y);

// moving = moving * momentum + batch * (1 - momentum), for the mean and the
// variance (C each).
template <class T>
void batch_norm_update_moving(std::size_t channels, const T* mean, const T* variance, double momentum,
                              T* moving_mean, T* moving_variance);

// The backward pass of the training forward, through the batch statistics
// (mean and variance as that forward wrote them): with xhat = (x - mean) / s,
// s = sqrt(variance + epsilon), and M = rows,
//   dbeta  = sum over rows of dy
//   dgamma = sum over rows of dy * xhat
//   dx     = gamma / s * (dy - dbeta / M - xhat * dgamma / M)
// dx may be null (not computed). dgamma, dbeta: C, overwritten.
template <class T>
void batch_norm_backward(std::size_t rows, std::size_t channels, const T* x, const T* gamma, const T* mean,
                         const T* variance, double epsilon, const T* dy, T* dx, T* dgamma, T* dbeta);

#define NN_BATCH_NORM_EXTERN(T)                                                                                  \
  extern template void batch_norm_forward_training<T>(std::size_t, std::size_t, const T*, const T*, const T*,  \
                                                      double, T*, T*, T*);                                     \
  extern template void batch_norm_forward_inference<T>(std::size_t, std::size_t, const T*, const T*, const T*, \
                                                       const T*, const T*, double, T*);                        \
  extern template void batch_norm_update_moving<T>(std::size_t, const T*, const T*, double, T*, T*);           \
  extern template void batch_norm_backward<T>(std::size_t, std::size_t, const T*, const T*, const T*, const T*, \
                                              double, const T*, T*, T*, T*);
NN_BATCH_NORM_EXTERN(float)
NN_BATCH_NORM_EXTERN(double)
#undef NN_BATCH_NORM_EXTERN

}  // namespace nn
