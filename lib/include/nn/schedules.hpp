#pragma once
// Learning-rate schedules: keras.optimizers.schedules, as Keras 3 defines
// them in keras/src/optimizers/schedules/learning_rate_schedule.py (the
// course follows Keras 3).
//
//   auto opt = nn::make_optimizer("adam", 1e-3f);
//   opt->set_schedule(nn::CosineDecay({.initial_learning_rate = 1e-3f, .decay_steps = 6330}));
//
// A schedule maps the optimizer's step count to a learning rate. Keras
// evaluates it at `optimizer.iterations` before that counter is incremented
// (keras/src/optimizers/base_optimizer.py, _get_current_learning_rate), so
// the first update uses schedule(0), the second schedule(1), and so on.
//
//   CosineDecay             lr(s) = lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * min(s, D) / D)) + alpha)
//   ExponentialDecay        lr(s) = lr0 * rate^(s / D)      (s / D floored when staircase)
//   PiecewiseConstantDecay  values[0] while s <= boundaries[0], values[i] while
//                           boundaries[i-1] < s <= boundaries[i], values.back() after
//
// Keras computes in float32 (the dtype of initial_learning_rate); the course
// computes each value in double and rounds it to float once, so a value can
// differ from Keras's in the last bit of the float.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nn {

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  // The learning rate at optimizer step `step` (0 for the first update).
  virtual float operator()(std::size_t step) const = 0;
  // The Keras line that builds the same schedule:
  // "CosineDecay(initial_learning_rate=0.001, decay_steps=6330)".
  virtual std::string describe() const = 0;
};

struct CosineDecayOptions {
  float initial_learning_rate = 0.0f;
  std::int64_t decay_steps = 0;  // > 0
  float alpha = 0.0f;            // the final learning rate, as a fraction of the decay's start
  // Keras's linear warmup: from initial_learning_rate to warmup_target over
  // warmup_steps, then the cosine decay from warmup_target. None: no warmup.
  std::optional<float> warmup_target = std::nullopt;
  std::int64_t warmup_steps = 0;
};

class CosineDecay final : public LearningRateSchedule {
 public:
  explicit CosineDecay(const CosineDecayOptions& options);  // throws nn::Error for decay_steps <= 0
  float operator()(std::size_t step) const override;
  std::string describe() const override;
  const CosineDecayOptions& options() const { return o_; }

 private:
  CosineDecayOptions o_;
};

struct ExponentialDecayOptions {
  float initial_learning_rate = 0.0f;
  std::int64_t decay_steps = 0;  // > 0
  float decay_rate = 0.0f;
  bool staircase = false;        // decay in whole steps of decay_steps
};

class ExponentialDecay final : public LearningRateSchedule {
 public:
  explicit ExponentialDecay(const ExponentialDecayOptions& options);  // throws nn::Error for decay_steps <= 0
  float operator()(std::size_t step) const override;
  std::string describe() const override;
  const ExponentialDecayOptions& options() const { return o_; }

 private:
  ExponentialDecayOptions o_;
};

class PiecewiseConstantDecay final : public LearningRateSchedule {
 public:
  // boundaries strictly increasing; values one longer than boundaries.
  // Throws nn::Error otherwise (Keras checks only the lengths).
  PiecewiseConstantDecay(std::vector<std::int64_t> boundaries, std::vector<float> values);
  float operator()(std::size_t step) const override;
  std::string describe() const override;

 private:
  std::vector<std::int64_t> boundaries_;
  std::vector<float> values_;
};

}  // namespace nn
