#pragma once
// Dense(10, activation="softmax") and loss="categorical_crossentropy".
//
//   softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z)     (N, K) -> (N, K)
//   loss = mean over the batch of  -sum_k y_k log softmax(z)_k
//        = mean over the batch of   sum_k y_k (logsumexp(z) - z_k)
//
// Subtracting the row's maximum changes nothing mathematically (it cancels in
// the ratio) and keeps exp() from overflowing: the largest term becomes
// exp(0) = 1.
//
// Keras computes this loss from the logits z, not from the probabilities:
// its softmax remembers its input, and categorical_crossentropy uses it
// (tf.keras, and Keras 3 with the TensorFlow backend). So there is no clip and
// no ceiling: a confident wrong answer with logit gap 50 costs 50. The clipped
// form, -sum y log(clip(p, 1e-7, 1 - 1e-7)), is what Keras applies to
// probabilities that did not come from a softmax layer (and what Keras 3 on
// JAX uses everywhere); the library keeps it as categorical_crossentropy.
#include <cstddef>
#include <span>

#include "nn/tensor.hpp"

namespace nn {

constexpr float kEpsilon = 1e-7f;  // Keras's backend epsilon, the clip of p

// The row-wise kernels, for float (the layers) and double (the gradient checks).
template <typename T>
void softmax_rows(const T* z, T* p, std::size_t n, std::size_t k);     // z, p: (n, k)
template <typename T>
double crossentropy_rows(const T* p, const T* y, std::size_t n, std::size_t k);   // clipped p
template <typename T>
double softmax_crossentropy_rows(const T* z, const T* y, std::size_t n, std::size_t k);  // from logits
extern template void softmax_rows<float>(const float*, float*, std::size_t, std::size_t);
extern template void softmax_rows<double>(const double*, double*, std::size_t, std::size_t);
extern template double crossentropy_rows<float>(const float*, const float*, std::size_t, std::size_t);
extern template double crossentropy_rows<double>(const double*, const double*, std::size_t, std::size_t);
extern template double softmax_crossentropy_rows<float>(const float*, const float*, std::size_t, std::size_t);
extern template double softmax_crossentropy_rows<double>(const double*, const double*, std::size_t, std::size_t);

Tensor softmax(const Tensor& logits);                // (N, K) -> (N, K), rows sum to 1
void softmax(const Tensor& logits, Tensor& p);       // into a preallocated p

// Keras's loss for Dense(10, activation="softmax") + categorical_crossentropy:
// the batch mean of -sum(y * log softmax(z)), computed from the logits z.
double softmax_crossentropy(const Tensor& logits, const Tensor& y);

// The batch mean of -sum(y * log(clip(p, 1e-7, 1 - 1e-7))): Keras's loss for
// probabilities p that did not come from a softmax layer.
double categorical_crossentropy(const Tensor& p, const Tensor& y);

// d loss / d p, Keras's way: -y / (clip(p) * N) where p is inside the clip
// range, and 0 where the clip is active (clip has no slope there).
Tensor categorical_crossentropy_backward(const Tensor& p, const Tensor& y);

// d loss / d z through the softmax, given d loss / d p:
//   dz_k = p_k * (dp_k - sum_j dp_j p_j)
Tensor softmax_backward(const Tensor& p, const Tensor& dp);

// The two backward passes above on plain (n, k) arrays of float or double
// (the gradient checks run them in double); the Tensor functions call them.
template <typename T>
void crossentropy_backward_rows(const T* p, const T* y, T* dp, std::size_t n, std::size_t k);
template <typename T>
void softmax_backward_rows(const T* p, const T* dp, T* dz, std::size_t n, std::size_t k);
extern template void crossentropy_backward_rows<float>(const float*, const float*, float*, std::size_t,
                                                       std::size_t);
extern template void crossentropy_backward_rows<double>(const double*, const double*, double*, std::size_t,
                                                        std::size_t);
extern template void softmax_backward_rows<float>(const float*, const float*, float*, std::size_t, std::size_t);
extern template void softmax_backward_rows<double>(const double*, const double*, double*, std::size_t,
                                                   std::size_t);

// The two above fused: d loss / d z = (p - y) / N, the exact gradient of
// softmax_crossentropy (the loss from the logits). It equals the chain of the
// clipped loss's two backward passes wherever no p is clipped.
Tensor softmax_crossentropy_backward(const Tensor& p, const Tensor& y);
void softmax_crossentropy_backward(const Tensor& p, const Tensor& y, Tensor& dz);

// ---- Mean squared error on the softmax output (chapter 10's experiment) ----
//
// Keras's loss="mean_squared_error" after Dense(10, activation="softmax"):
//   loss = mean over the batch of  (1/K) sum_k (p_k - y_k)^2,   p = softmax(z)
//   d loss / d p = 2 (p - y) / (N K)
// and d loss / d z goes through the softmax's Jacobian (softmax_backward):
//   dz_k = p_k (dp_k - sum_j dp_j p_j)
// Every term carries a factor p: where the network is confidently wrong
// (p of the true class near 0, the wrong class near 1) the gradient vanishes,
// where cross-entropy's (p - y) / N stays near its largest.
template <typename T>
double squared_error_rows(const T* p, const T* y, std::size_t n, std::size_t k);
template <typename T>
void squared_error_backward_rows(const T* p, const T* y, T* dp, std::size_t n, std::size_t k);
extern template double squared_error_rows<float>(const float*, const float*, std::size_t, std::size_t);
extern template double squared_error_rows<double>(const double*, const double*, std::size_t, std::size_t);
extern template void squared_error_backward_rows<float>(const float*, const float*, float*, std::size_t,
                                                        std::size_t);
extern template void squared_error_backward_rows<double>(const double*, const double*, double*, std::size_t,
                                                         std::size_t);

// The batch mean of mean_k (p_k - y_k)^2: Keras's mean_squared_error on probabilities p.
double mean_squared_error(const Tensor& p, const Tensor& y);
// d loss / d z for p = softmax(z): the two backward passes above chained.
Tensor softmax_mean_squared_error_backward(const Tensor& p, const Tensor& y);
void softmax_mean_squared_error_backward(const Tensor& p, const Tensor& y, Tensor& dz);

// The fraction of rows whose argmax of p equals the argmax of y.
double accuracy(const Tensor& p, const Tensor& y);
// The number of such rows.
std::size_t correct_count(const Tensor& p, const Tensor& y);

}  // namespace nn
