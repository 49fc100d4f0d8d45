#include "nn/layers/tape_layer.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/init.hpp"

namespace nn {

TapeLayer::TapeLayer(TapeLayerOptions options, std::vector<Parameter> weights, Function function)
    : options_(std::move(options)), weights_(std::move(weights)), function_(std::move(function)) {
  if (!function_) throw Error(fmt::format("{}: no function given", options_.type));
}

Shape TapeLayer::output_shape(const Shape& x) const {
  Tape tape;
  const Tensor zeros(x);
  std::vector<Var> w;
  // Views of the weights (the tape does not change them); parameter() needs
  // a mutable Parameter only to write its gradient, which this never asks for.
  for (const Parameter& p : weights_) w.push_back(tape.input(p.value));
  return function_(tape.input(zeros), w).shape();
}

ConstView TapeLayer::forward(const Tensor& x) {
  tape_->clear();
  in_ = tape_->variable(x);
  out_ = record(in_);
  return out_.value();
}

ConstView TapeLayer::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, bool need_dx) {
  if (tape_->size() == 0 || in_.value().data() != x.data()) forward(x);  // not the last forward's x: record again
  tape_->backward(out_, dy);
  if (!need_dx) return {};
  return in_.grad();
}

Var TapeLayer::record(Var x) {
  std::vector<Var> w;
  for (Parameter& p : weights_)
    w.push_back(p.trainable ? x.tape().parameter(p, name + "." + p.name) : x.tape().input(p.value));
  return function_(x, w);
}

std::vector<Parameter*> TapeLayer::parameters() {
  std::vector<Parameter*> out;
  for (Parameter& p : weights_) out.push_back(&p);
  return out;
}

// [snippet residual-block]
TapeLayer make_residual_block(std::size_t width, std::uint64_t seed) {
  Tensor w1({width, width}), w2({width, width});
  glorot_uniform(w1, width, width, seed);
  glorot_uniform(w2, width, width, seed + 1);
  std::vector<Parameter> weights;
  weights.emplace_back("kernel_1", std::move(w1));
  weights.emplace_back("bias_1", Tensor({width}));
  weights.emplace_back("kernel_2", std::move(w2));
  weights.emplace_back("bias_2", Tensor({width}));
  return TapeLayer({.type = "Residual", .base_name = "residual"}, std::move(weights),
                   [](Var x, std::span<const Var> w) {
                     const Var f = dense(relu(dense(x, w[0], w[1])), w[2], w[3]);  // f(x)
                     return relu(add(x, f));                                         // x + f(x): x used twice
                   });
}
// [end snippet residual-block]

}  // namespace nn
