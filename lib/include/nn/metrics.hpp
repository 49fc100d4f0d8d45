#pragma once
// What the trained network gets wrong: a confusion matrix and the most
// confident mistakes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "nn/tensor.hpp"

namespace nn {

// counts[true][predicted]: row = the label, column = the network's argmax.
std::vector<std::vector<std::size_t>> confusion_matrix(std::span<const std::size_t> predicted,
                                                       std::span<const std::uint8_t> labels, std::size_t classes = 10);

struct Mistake {
  std::size_t index;     // in the test set
  std::uint8_t label;    // the truth
  std::size_t predicted;
  float confidence;      // the probability the network gave its (wrong) answer
};

// The `k` wrong predictions with the highest confidence, most confident first.
// p: (N, classes) probabilities.
std::vector<Mistake> most_confident_mistakes(const Tensor& p, std::span<const std::uint8_t> labels, std::size_t k);

}  // namespace nn
