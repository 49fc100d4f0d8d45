#pragma once
// SGD(learning_rate=0.01), and the optimizers the walkthrough suggests trying.
//
// An optimizer turns gradients into weight updates. It sees the parameters as
// a list, always in the same order, and keeps whatever state it needs per
// parameter (a velocity, running averages) in the same order. The rules
// follow Keras exactly:
//
//   SGD        w -= lr g
//   momentum   v = momentum v - lr g;  w += v
//   Nesterov   v = momentum v - lr g;  w += momentum v - lr g
//   RMSprop    s = rho s + (1 - rho) g^2;  w -= lr g / sqrt(s + eps)
//   Adam       m = b1 m + (1 - b1) g;  s = b2 s + (1 - b2) g^2;
//              w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(s) + eps)
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nn/tensor.hpp"

namespace nn {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of every parameter: params[i] moves against grads[i]. The
  // list must be the same, in the same order, at every step.
  void step(std::span<Tensor* const> params, std::span<const Tensor* const> grads);
  virtual std::string describe() const = 0;  // "SGD(learning_rate=0.01)"
  std::size_t iterations() const { return iterations_; }

 protected:
  // Makes the state of parameter `slot` (a velocity, running averages) if it
  // does not exist yet.
  virtual void prepare(std::size_t /*slot*/, const Tensor& /*w*/) {}
  // Updates elements [lo, hi) of parameter `slot`. Every element's rule is
  // independent of the others, so large tensors are updated by several
  // threads at once, with the same result.
  virtual void update(std::size_t slot, float* w, const float* g, std::size_t lo, std::size_t hi) = 0;
  // Called once per step before any update, with the step number t (1, 2, ...).
  virtual void begin_step(std::size_t /*t*/) {}
  std::size_t iterations_ = 0;
  std::vector<std::size_t> sizes_;  // the parameter sizes seen at the first step
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
  void prepare(std::size_t slot, const Tensor& w) override;
  void update(std::size_t slot, float* w, const float* g, std::size_t lo, std::size_t hi) override;
  SGDOptions o_;
  std::vector<Tensor> velocity_;
};

struct RMSpropOptions {
  float learning_rate = 1e-3f;
  float rho = 0.9f;
  float epsilon = 1e-7f;
};

class RMSprop final : public Optimizer {
 public:
  explicit RMSprop(const RMSpropOptions& options = {});
  std::string describe() const override;

 private:
  void prepare(std::size_t slot, const Tensor& w) override;
  void update(std::size_t slot, float* w, const float* g, std::size_t lo, std::size_t hi) override;
  RMSpropOptions o_;
  std::vector<Tensor> mean_square_;
};

struct AdamOptions {
  float learning_rate = 1e-3f;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
};

class Adam final : public Optimizer {
 public:
  explicit Adam(const AdamOptions& options = {});
  std::string describe() const override;

 private:
  void begin_step(std::size_t t) override;
  void prepare(std::size_t slot, const Tensor& w) override;
  void update(std::size_t slot, float* w, const float* g, std::size_t lo, std::size_t hi) override;
  AdamOptions o_;
  std::vector<Tensor> m_, s_;
  float step_size_ = 0;  // lr * sqrt(1 - b2^t) / (1 - b1^t) for the current step
};

// "sgd", "adam" or "rmsprop"; learning_rate <= 0 takes the optimizer's
// default; momentum and nesterov apply to SGD only. Throws nn::Error for
// another name or a combination that does not apply.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, float learning_rate, float momentum = 0.0f,
                                          bool nesterov = false);

}  // namespace nn
