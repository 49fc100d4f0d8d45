#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "model_internal.hpp"
#include "nn/model.hpp"

// Keras's model.summary() table, and the parameter counts it prints.
namespace nn {

using model_impl::keras_shape;
using model_impl::with_batch;

std::size_t Sequential::param_count() const {
  std::size_t n = 0;
  for (const auto& l : layers_) n += l->param_count();
  return n;
}

std::size_t Sequential::trainable_param_count() const {
  std::size_t n = 0;
  for (const auto& l : layers_)
    for (const Parameter* p : l->parameters()) n += p->trainable ? p->size() : 0;
  return n;
}

namespace {

// One row of tf.keras 2.x's summary table (print_row in its layer_utils): the
// fields end at columns 29, 55 and 65 of a 65-column line; each field starts
// where the previous one ended, the last character before it always a space,
// and a field too long for its column is cut ("max_pooling2d_1 (MaxPooling2D)"
// shows as "max_pooling2d_1 (MaxPooling2"). Keras also pads the last field
// with spaces to column 65; those trailing spaces are left out here.
std::string summary_row(const std::array<std::string, 3>& fields) {
  constexpr std::array<std::size_t, 3> ends = {29, 55, 65};  // int(65 * p) for p in (.45, .85, 1.)
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line.back() = ' ';
    line += fields[i];
    line.resize(i + 1 < fields.size() ? ends[i] : std::min(line.size(), ends[i]), ' ');  // cut, or pad
  }
  return line + "\n";
}

}  // namespace

std::string Sequential::summary() const {
  // [snippet summary]
  const std::string rule(65, '_'), double_rule(65, '=');
  std::string s = "Model: \"sequential\"\n" + rule + "\n";
  s += summary_row({"Layer (type)", "Output Shape", "Param #"}) + double_rule + "\n";
  Shape shape = with_batch(1, input_shape_);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    shape = layers_[i]->output_shape(shape);
    s += summary_row({fmt::format("{} ({})", layers_[i]->name, layers_[i]->type()), keras_shape(shape),
                      std::to_string(layers_[i]->param_count())});
    s += (i + 1 < layers_.size() ? rule : double_rule) + "\n";
  }
  // [end snippet summary]
  const auto grouped = [](std::size_t n) {  // 542230 -> 542,230
    const std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return out;
  };
  const std::size_t total = param_count(), trainable = trainable_param_count();
  s += fmt::format("Total params: {}\nTrainable params: {}\nNon-trainable params: {}\n{}\n", grouped(total),
                   grouped(trainable), grouped(total - trainable), rule);
  return s;
}

}  // namespace nn
