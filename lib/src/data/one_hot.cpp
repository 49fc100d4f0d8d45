#include "nn/one_hot.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"

namespace nn {

namespace {
template <typename T>
Tensor one_hot_impl(std::span<const T> labels, std::size_t num_classes) {
  if (num_classes == 0) throw Error("one_hot: num_classes must be at least 1");
  // [snippet one-hot]
  Tensor y({labels.size(), num_classes});  // y: (N, num_classes), all zeros
  for (std::size_t n = 0; n < labels.size(); ++n) {
    const long long label = labels[n];
    if (label < 0 || label >= static_cast<long long>(num_classes))
      throw Error(fmt::format("one_hot: label {} at index {} is outside [0, {})", label, n, num_classes));
    y(n, static_cast<std::size_t>(label)) = 1.0f;
  }
  // [end snippet one-hot]
  return y;
}
}  // namespace

Tensor one_hot(std::span<const std::uint8_t> labels, std::size_t num_classes) {
  return one_hot_impl(labels, num_classes);
}
Tensor one_hot(std::span<const int> labels, std::size_t num_classes) {
  return one_hot_impl(labels, num_classes);
}

std::vector<std::size_t> argmax(const Tensor& rows) {
  if (rows.rank() != 2) throw Error(fmt::format("argmax: expected an (N, K) tensor, got {}", rows.shape().str()));
  const std::size_t n = rows.dim(0), k = rows.dim(1);
  std::vector<std::size_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float* row = rows.data() + i * k;  // row: (K,)
    std::size_t best = 0;
    for (std::size_t j = 1; j < k; ++j)
      if (row[j] > row[best]) best = j;
    out[i] = best;
  }
  return out;
}

}  // namespace nn
