#include "nn/softmax.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "nn/error.hpp"

namespace nn {

namespace {
void check_pair(const char* what, const Tensor& a, const Tensor& b) {
  if (a.rank() != 2 || !(a.shape() == b.shape()))
    throw Error(fmt::format("{}: expected two (N, K) tensors of the same shape, got {} and {}", what,
                            a.shape().str(), b.shape().str()));
}
// The index of the first largest entry of row[0..k).
std::size_t row_argmax(const float* row, std::size_t k) {
  return static_cast<std::size_t>(std::max_element(row, row + k) - row);
}
}  // namespace

template <typename T>
void softmax_rows(const T* z_all, T* p_all, std::size_t n, std::size_t k) {
  // [snippet softmax]
  for (std::size_t i = 0; i < n; ++i) {
    const T* z = z_all + i * k;  // z: (K,)
    T* out = p_all + i * k;      // out: (K,)
    const T max = *std::max_element(z, z + k);
    T sum = 0;
    for (std::size_t j = 0; j < k; ++j) {
      out[j] = std::exp(z[j] - max);  // <= exp(0) = 1: never overflows
      sum += out[j];                  // >= 1: the max term alone is 1, so never 0
    }
    for (std::size_t j = 0; j < k; ++j) out[j] /= sum;
  }
  // [end snippet softmax]
}

template <typename T>
double crossentropy_rows(const T* p_all, const T* y_all, std::size_t n, std::size_t k) {
  // [snippet crossentropy]
  double total = 0.0;
  for (std::size_t i = 0; i < n * k; ++i) {
    const T p = std::clamp(p_all[i], T(kEpsilon), T(1) - T(kEpsilon));  // log(0) would be -inf
    total -= static_cast<double>(y_all[i]) * std::log(static_cast<double>(p));
  }
  return n == 0 ? 0.0 : total / static_cast<double>(n);  // the mean over the batch
  // [end snippet crossentropy]
}

template <typename T>
double softmax_crossentropy_rows(const T* z_all, const T* y_all, std::size_t n, std::size_t k) {
  // [snippet softmax-crossentropy]
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const T* z = z_all + i * k;  // z, y: (K,)
    const T* y = y_all + i * k;
    const double max = static_cast<double>(*std::max_element(z, z + k));
    double sum = 0.0;
    for (std::size_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j]) - max);
    const double log_sum_exp = max + std::log(sum);  // log sum_j exp(z_j), without overflow
    for (std::size_t j = 0; j < k; ++j)
      total += static_cast<double>(y[j]) * (log_sum_exp - static_cast<double>(z[j]));  // -y log p
  }
  return n == 0 ? 0.0 : total / static_cast<double>(n);  // the mean over the batch
  // [end snippet softmax-crossentropy]
}

template void softmax_rows<float>(const float*, float*, std::size_t, std::size_t);
template void softmax_rows<double>(const double*, double*, std::size_t, std::size_t);
template double crossentropy_rows<float>(const float*, const float*, std::size_t, std::size_t);
template double crossentropy_rows<double>(const double*, const double*, std::size_t, std::size_t);
template double softmax_crossentropy_rows<float>(const float*, const float*, std::size_t, std::size_t);
template double softmax_crossentropy_rows<double>(const double*, const double*, std::size_t, std::size_t);

void softmax(const Tensor& logits, Tensor& p) {
  check_pair("softmax", logits, p);
  softmax_rows(logits.data(), p.data(), logits.dim(0), logits.dim(1));
}

Tensor softmax(const Tensor& logits) {
  Tensor p(logits.shape());
  softmax(logits, p);
  return p;
}

double softmax_crossentropy(const Tensor& logits, const Tensor& y) {
  check_pair("softmax_crossentropy", logits, y);
  return softmax_crossentropy_rows(logits.data(), y.data(), logits.dim(0), logits.dim(1));
}

double categorical_crossentropy(const Tensor& p, const Tensor& y) {
  check_pair("categorical_crossentropy", p, y);
  return crossentropy_rows(p.data(), y.data(), p.dim(0), p.dim(1));
}

template <typename T>
void crossentropy_backward_rows(const T* p, const T* y, T* dp, std::size_t n, std::size_t k) {
  const T inv_n = T(1) / static_cast<T>(n);
  for (std::size_t i = 0; i < n * k; ++i) {
    const bool clipped = p[i] < T(kEpsilon) || p[i] > T(1) - T(kEpsilon);
    dp[i] = clipped ? T(0) : -y[i] / p[i] * inv_n;
  }
}

template <typename T>
void softmax_backward_rows(const T* p_all, const T* dp_all, T* dz_all, std::size_t n, std::size_t k) {
  for (std::size_t i = 0; i < n; ++i) {
    const T* p = p_all + i * k;     // p, dp, dz: (K,)
    const T* dp = dp_all + i * k;
    T* dz = dz_all + i * k;
    double dot = 0.0;  // sum_j dp_j p_j
    for (std::size_t j = 0; j < k; ++j) dot += static_cast<double>(dp[j]) * p[j];
    for (std::size_t j = 0; j < k; ++j) dz[j] = p[j] * static_cast<T>(dp[j] - dot);
  }
}

template void crossentropy_backward_rows<float>(const float*, const float*, float*, std::size_t, std::size_t);
template void crossentropy_backward_rows<double>(const double*, const double*, double*, std::size_t, std::size_t);
template void softmax_backward_rows<float>(const float*, const float*, float*, std::size_t, std::size_t);
template void softmax_backward_rows<double>(const double*, const double*, double*, std::size_t, std::size_t);

Tensor categorical_crossentropy_backward(const Tensor& p, const Tensor& y) {
  check_pair("categorical_crossentropy_backward", p, y);
  Tensor dp(p.shape());
  crossentropy_backward_rows(p.data(), y.data(), dp.data(), p.dim(0), p.dim(1));
  return dp;
}

Tensor softmax_backward(const Tensor& p, const Tensor& dp) {
  check_pair("softmax_backward", p, dp);
  Tensor dz(p.shape());
  softmax_backward_rows(p.data(), dp.data(), dz.data(), p.dim(0), p.dim(1));
  return dz;
}

void softmax_crossentropy_backward(const Tensor& p, const Tensor& y, Tensor& dz) {
  check_pair("softmax_crossentropy_backward", p, y);
  check_pair("softmax_crossentropy_backward", p, dz);
  // [snippet fused-gradient]
  const float inv_n = 1.0f / static_cast<float>(p.dim(0));
  for (std::size_t i = 0; i < p.size(); ++i) dz[i] = (p[i] - y[i]) * inv_n;  // (p - y) / N
  // [end snippet fused-gradient]
}

Tensor softmax_crossentropy_backward(const Tensor& p, const Tensor& y) {
  Tensor dz(p.shape());
  softmax_crossentropy_backward(p, y, dz);
  return dz;
}

template <typename T>
double squared_error_rows(const T* p, const T* y, std::size_t n, std::size_t k) {
  // [snippet mean-squared-error]
  double total = 0.0;
  for (std::size_t i = 0; i < n * k; ++i) {
    const double d = static_cast<double>(p[i]) - static_cast<double>(y[i]);
    total += d * d;
  }
  // the mean over the K classes, then over the batch: Keras's mean_squared_error
  return n == 0 || k == 0 ? 0.0 : total / static_cast<double>(n * k);
  // [end snippet mean-squared-error]
}

template <typename T>
void squared_error_backward_rows(const T* p, const T* y, T* dp, std::size_t n, std::size_t k) {
  const T scale = T(2) / static_cast<T>(n * k);  // d/dp of sum (p - y)^2 / (N K)
  for (std::size_t i = 0; i < n * k; ++i) dp[i] = (p[i] - y[i]) * scale;
}

template double squared_error_rows<float>(const float*, const float*, std::size_t, std::size_t);
template double squared_error_rows<double>(const double*, const double*, std::size_t, std::size_t);
template void squared_error_backward_rows<float>(const float*, const float*, float*, std::size_t, std::size_t);
template void squared_error_backward_rows<double>(const double*, const double*, double*, std::size_t,
                                                  std::size_t);

double mean_squared_error(const Tensor& p, const Tensor& y) {
  check_pair("mean_squared_error", p, y);
  return squared_error_rows(p.data(), y.data(), p.dim(0), p.dim(1));
}

void softmax_mean_squared_error_backward(const Tensor& p, const Tensor& y, Tensor& dz) {
  check_pair("softmax_mean_squared_error_backward", p, y);
  check_pair("softmax_mean_squared_error_backward", p, dz);
  squared_error_backward_rows(p.data(), y.data(), dz.data(), p.dim(0), p.dim(1));  // dz holds dp for now
  softmax_backward_rows(p.data(), dz.data(), dz.data(), p.dim(0), p.dim(1));       // row by row: in place is safe
}

Tensor softmax_mean_squared_error_backward(const Tensor& p, const Tensor& y) {
  Tensor dz(p.shape());
  softmax_mean_squared_error_backward(p, y, dz);
  return dz;
}

std::size_t correct_count(const Tensor& p, const Tensor& y) {
  check_pair("accuracy", p, y);
  const std::size_t n = p.dim(0), k = p.dim(1);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < n; ++i)
    correct += row_argmax(p.data() + i * k, k) == row_argmax(y.data() + i * k, k);
  return correct;
}

double accuracy(const Tensor& p, const Tensor& y) {
  return p.dim(0) == 0 ? 0.0 : static_cast<double>(correct_count(p, y)) / static_cast<double>(p.dim(0));
}

}  // namespace nn
