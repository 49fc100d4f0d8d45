#pragma once
// SGD(learning_rate=0.01), and the optimizers chapter 12 tries: SGD with momentum, RMSprop, Adam.
//
// An optimizer turns gradients into weight updates: each nn::Parameter's
// value moves against its grad. It keeps whatever state it needs (a
// velocity, running averages) per parameter, made the first time it sees
// that parameter. The rules follow Keras exactly:
//
//   SGD        w -= lr g
//   momentum   v = momentum v - lr g;  w += v
//   Nesterov   v = momentum v - lr g;  w += momentum v - lr g
//   RMSprop    s = rho s + (1 - rho) g^2;  w -= lr g / sqrt(s + eps)
//   Adam       m += (g - m)(1 - b1);  s += (g^2 - s)(1 - b2);
//              w -= m (lr sqrt(1 - b2^t) / (1 - b1^t)) / (sqrt(s) + eps)
//
// to the last bit of Keras 3 (checked against keras/src/optimizers/sgd.py,
// rmsprop.py and adam.py of Keras 3.8, on its TensorFlow backend): the same
// order of float operations, and the same roundings. Keras keeps rho, beta_1
// and beta_2 as Python floats (doubles): 1 - b is computed in double and
// rounded once to float (1 - 0.999 is 0.001f, where 1.0f - 0.999f would be
// 0.00099998713), while b itself and b^t are float. So these options are doubles.
//
// lr is the learning_rate option, or, once set_schedule gave one, the
// schedule's value at this step (nn/schedules.hpp), as when Keras is given
// learning_rate=keras.optimizers.schedules.CosineDecay(...).
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <concepts>
#include <unordered_map>

#include "nn/parameter.hpp"
#include "nn/schedules.hpp"
#include "nn/tensor.hpp"

namespace nn {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of every trainable parameter: p.value moves against p.grad
  // (a parameter with trainable false is skipped, and gets no state). Throws
  // nn::Error, before changing anything, when a gradient's shape is not its
  // value's, or a parameter's shape changed since the optimizer first saw it.
  void step(std::span<Parameter* const> params);

  // The same step in parts, for a model whose layers update their weights
  // during the backward pass, as soon as each block of a gradient is known
  // (Layer::backward_and_update): begin_step(params) checks and counts the
  // step and fixes its learning rate; then update_block(p, g, lo, n) moves
  // elements [lo, lo + n) of p.value from the n gradient values at g (a block
  // computed just now, not necessarily p.grad), and update(p) moves all of p
  // from p.grad (nothing for a non-trainable p). Every rule here is elementwise, so updating in blocks, in
  // any order, on any thread, gives step()'s result bit for bit.
  void begin_step(std::span<Parameter* const> params);
  void update_block(Parameter& p, const float* g, std::size_t lo, std::size_t n);
  void update(Parameter& p);
  virtual std::string describe() const = 0;  // "SGD(learning_rate=0.01)"
  std::size_t iterations() const { return iterations_; }
  // The state the rule keeps for p (momentum: v; RMSprop: s; Adam: m, then
  // s), each tensor p's shape; empty before p's first step. For diagnostics:
  // chapter 09's benchmark counts the denormal numbers in it.
  std::span<const Tensor> state(const Parameter& p) const;

  // From now on every step uses schedule(iterations()) as its learning rate,
  // evaluated before the step counts itself, as Keras does
  // (keras/src/optimizers/base_optimizer.py): the first step uses
  // schedule(0). Null: back to the fixed learning_rate option.
  void set_schedule(std::shared_ptr<const LearningRateSchedule> schedule) { schedule_ = std::move(schedule); }
  template <std::derived_from<LearningRateSchedule> S>
  void set_schedule(S schedule) { set_schedule(std::make_shared<const S>(std::move(schedule))); }
  const LearningRateSchedule* schedule() const { return schedule_.get(); }

 protected:
  // How many tensors of state the rule keeps per parameter, each the shape
  // of the parameter and zero at first: 1 for SGD with momentum (the
  // velocity), 1 for RMSprop, 2 for Adam.
  virtual std::size_t state_tensors() const { return 0; }
  // Updates n elements of one parameter: w, g and each state pointer point
  // at the first of them. Every element's rule is independent of the others,
  // so large tensors are updated in blocks by several threads at once, with
  // the same result. (Not an overload of update: a rule's override would
  // hide the public update(Parameter&).)
  virtual void update_elements(std::span<float* const> state, float* w, const float* g, std::size_t n) = 0;
  // True for a rule whose updates run with denormals flushed to zero
  // (nn/denormals.hpp), on whichever thread runs them: RMSprop and Adam,
  // whose running means fill with denormals that make Intel cores slow. SGD
  // stays bit for bit what it was.
  virtual bool flushes_denormals() const { return false; }
  // Called once per step before any update, with the step number t (1, 2, ...).
  virtual void start_step(std::size_t /*t*/) {}
  // The learning rate of the current step, for start_step: the schedule's
  // value when there is one, else `fixed` (the optimizer's option) unchanged.
  float step_learning_rate(float fixed) const { return schedule_ ? scheduled_lr_ : fixed; }
  // For describe(): "0.01", or the schedule's Keras line.
  std::string learning_rate_text(float fixed) const;

 private:
  std::size_t iterations_ = 0;
  std::shared_ptr<const LearningRateSchedule> schedule_;
  float scheduled_lr_ = 0;  // schedule_(the step's count before it), when schedule_ is set
  std::unordered_map<const Parameter*, std::vector<Tensor>> state_;  // per parameter
};

struct SGDOptions {
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  bool nesterov = false;
};

class SGD final : public Optimizer {
 public:
  explicit SGD(const SGDOptions& options = {});
  std::string describe() const override;

 private:
  void start_step(std::size_t t) override;
  std::size_t state_tensors() const override { return o_.momentum > 0 ? 1 : 0; }  // the velocity
  void update_elements(std::span<float* const> state, float* w, const float* g, std::size_t n) override;
  SGDOptions o_;
  float lr_ = 0;  // the learning rate of the current step
};

struct RMSpropOptions {
  float learning_rate = 1e-3f;
  double rho = 0.9;  // a double, as Keras's Python float: see the top
  float epsilon = 1e-7f;
};

class RMSprop final : public Optimizer {
 public:
  explicit RMSprop(const RMSpropOptions& options = {});
  std::string describe() const override;

 private:
  void start_step(std::size_t t) override;
  std::size_t state_tensors() const override { return 1; }  // the mean square
  bool flushes_denormals() const override { return true; }
  void update_elements(std::span<float* const> state, float* w, const float* g, std::size_t n) override;
  RMSpropOptions o_;
  float lr_ = 0;  // the learning rate of the current step
  float rho_ = 0, one_minus_rho_ = 0;  // float(rho), float(1 - rho) with 1 - rho in double, as Keras
};

struct AdamOptions {
  float learning_rate = 1e-3f;
  double beta_1 = 0.9;  // doubles, as Keras's Python floats: see the top
  double beta_2 = 0.999;
  float epsilon = 1e-7f;
  // Keras always corrects the bias of m and s (they start at 0); false drops
  // the factor sqrt(1 - b2^t) / (1 - b1^t), for chapter 09's experiment on why
  // it is there. Not a Keras option.
  bool bias_correction = true;
};

class Adam final : public Optimizer {
 public:
  explicit Adam(const AdamOptions& options = {});
  std::string describe() const override;

 private:
  void start_step(std::size_t t) override;
  std::size_t state_tensors() const override { return 2; }  // m and s
  bool flushes_denormals() const override { return true; }
  void update_elements(std::span<float* const> state, float* w, const float* g, std::size_t n) override;
  AdamOptions o_;
  float step_size_ = 0;  // lr * sqrt(1 - b2^t) / (1 - b1^t) for the current step, in float as Keras
  float one_minus_b1_ = 0, one_minus_b2_ = 0;  // 1 - b in double, rounded once to float, as Keras
};

// "sgd", "adam" or "rmsprop"; learning_rate <= 0 takes the optimizer's
// default; momentum and nesterov apply to SGD only. Throws nn::Error for
// another name or a combination that does not apply.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, float learning_rate, float momentum = 0.0f,
                                          bool nesterov = false);

}  // namespace nn
