#include "nn/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "nn/error.hpp"
#include "nn/one_hot.hpp"

namespace nn {

std::vector<std::vector<std::size_t>> confusion_matrix(std::span<const std::size_t> predicted,
                                                       std::span<const std::uint8_t> labels, std::size_t classes) {
  if (predicted.size() != labels.size())
    throw Error(fmt::format("confusion_matrix: {} predictions for {} labels", predicted.size(), labels.size()));
  std::vector<std::vector<std::size_t>> counts(classes, std::vector<std::size_t>(classes, 0));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= classes || predicted[i] >= classes)
      throw Error(fmt::format("confusion_matrix: label {} or prediction {} at index {} is outside [0, {})", labels[i],
                              predicted[i], i, classes));
    ++counts[labels[i]][predicted[i]];
  }
  return counts;
}

std::vector<Mistake> most_confident_mistakes(const Tensor& p, std::span<const std::uint8_t> labels, std::size_t k) {
  if (p.rank() != 2 || p.dim(0) != labels.size())
    throw Error(fmt::format("most_confident_mistakes: p {} and {} labels", p.shape().str(), labels.size()));
  const auto predicted = argmax(p);
  std::vector<Mistake> wrong;
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (predicted[i] != labels[i]) wrong.push_back({i, labels[i], predicted[i], p(i, predicted[i])});
  const std::size_t keep = std::min(k, wrong.size());
  std::partial_sort(wrong.begin(), wrong.begin() + static_cast<long>(keep), wrong.end(),
                    [](const Mistake& a, const Mistake& b) { return a.confidence > b.confidence; });
  wrong.resize(keep);
  return wrong;
}

}  // namespace nn
