#include "nn/schedules.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "nn/error.hpp"

// The formulas are those of Keras 3's
// keras/src/optimizers/schedules/learning_rate_schedule.py.

namespace nn {

namespace {

void check_decay_steps(const char* schedule, std::int64_t decay_steps) {
  if (decay_steps <= 0)
    throw Error(fmt::format("{}: decay_steps must be > 0, not {}", schedule, decay_steps));
}

}  // namespace

// ---- CosineDecay -----------------------------------------------------------

CosineDecay::CosineDecay(const CosineDecayOptions& options) : o_(options) {
  check_decay_steps("CosineDecay", o_.decay_steps);
  if (o_.warmup_steps < 0)
    throw Error(fmt::format("CosineDecay: warmup_steps must be >= 0, not {}", o_.warmup_steps));
}

float CosineDecay::operator()(std::size_t step) const {
  const double decay_steps = static_cast<double>(o_.decay_steps);
  const double warmup_steps = o_.warmup_target ? static_cast<double>(o_.warmup_steps) : 0.0;
  // Past the end the rate stays at its final value: Keras clamps the step.
  const double s = std::min(static_cast<double>(step), decay_steps + warmup_steps);
  const double initial = o_.initial_learning_rate;
  if (o_.warmup_target && s < warmup_steps) {  // the linear warmup
    const double target = *o_.warmup_target;
    return static_cast<float>((target - initial) * (s / warmup_steps) + initial);
  }
  // [snippet cosine-decay]
  const double decay_from = o_.warmup_target ? static_cast<double>(*o_.warmup_target) : initial;
  const double completed = (s - warmup_steps) / decay_steps;              // 0 .. 1
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * completed));  // 1 .. 0
  const double alpha = o_.alpha;
  return static_cast<float>(decay_from * ((1.0 - alpha) * cosine + alpha));
  // [end snippet cosine-decay]
}

std::string CosineDecay::describe() const {
  std::string s = fmt::format("CosineDecay(initial_learning_rate={}, decay_steps={}", o_.initial_learning_rate,
                              o_.decay_steps);
  if (o_.alpha != 0.0f) s += fmt::format(", alpha={}", o_.alpha);
  if (o_.warmup_target) s += fmt::format(", warmup_target={}, warmup_steps={}", *o_.warmup_target, o_.warmup_steps);
  return s + ")";
}

// ---- ExponentialDecay ------------------------------------------------------

ExponentialDecay::ExponentialDecay(const ExponentialDecayOptions& options) : o_(options) {
  check_decay_steps("ExponentialDecay", o_.decay_steps);
}

float ExponentialDecay::operator()(std::size_t step) const {
  double p = static_cast<double>(step) / static_cast<double>(o_.decay_steps);
  if (o_.staircase) p = std::floor(p);
  return static_cast<float>(static_cast<double>(o_.initial_learning_rate) *
                            std::pow(static_cast<double>(o_.decay_rate), p));
}

std::string ExponentialDecay::describe() const {
  return fmt::format("ExponentialDecay(initial_learning_rate={}, decay_steps={}, decay_rate={}{})",
                     o_.initial_learning_rate, o_.decay_steps, o_.decay_rate, o_.staircase ? ", staircase=True" : "");
}

// ---- PiecewiseConstantDecay ------------------------------------------------

PiecewiseConstantDecay::PiecewiseConstantDecay(std::vector<std::int64_t> boundaries, std::vector<float> values)
    : boundaries_(std::move(boundaries)), values_(std::move(values)) {
  if (boundaries_.size() + 1 != values_.size())
    throw Error(fmt::format("PiecewiseConstantDecay: values must have one more entry than boundaries, "
                            "got {} boundaries and {} values",
                            boundaries_.size(), values_.size()));
  for (std::size_t i = 1; i < boundaries_.size(); ++i)
    if (!(boundaries_[i - 1] < boundaries_[i]))
      throw Error(fmt::format("PiecewiseConstantDecay: boundaries must be strictly increasing, but {} follows {}",
                              boundaries_[i], boundaries_[i - 1]));
}

float PiecewiseConstantDecay::operator()(std::size_t step) const {
  // values[i] for the first boundary with step <= boundaries[i]; the last
  // value past every boundary. A step equal to a boundary is still in the
  // interval below it, as in Keras.
  const auto s = static_cast<std::int64_t>(step);
  for (std::size_t i = 0; i < boundaries_.size(); ++i)
    if (s <= boundaries_[i]) return values_[i];
  return values_.back();
}

std::string PiecewiseConstantDecay::describe() const {
  return fmt::format("PiecewiseConstantDecay(boundaries=[{}], values=[{}])", fmt::join(boundaries_, ", "),
                     fmt::join(values_, ", "));
}

}  // namespace nn
