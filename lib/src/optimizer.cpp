#include "nn/optimizer.hpp"

#include <fmt/format.h>

#include <cmath>

#include "nn/error.hpp"
#include "nn/parallel.hpp"

namespace nn {

void Optimizer::step(std::span<Tensor* const> params, std::span<const Tensor* const> grads) {
  // Validate everything first, then commit: a step that throws changes
  // nothing, not even the parameter list the optimizer remembers.
  if (params.size() != grads.size())
    throw Error(fmt::format("optimizer: {} parameters but {} gradients", params.size(), grads.size()));
  const bool first = iterations_ == 0;
  if (!first && sizes_.size() != params.size())
    throw Error(fmt::format("optimizer: the parameter list changed between steps ({} parameters, then {})",
                            sizes_.size(), params.size()));
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::size_t expected = first ? params[i]->size() : sizes_[i];
    if (params[i]->size() != expected || grads[i]->size() != expected)
      throw Error(fmt::format("optimizer: parameter {} has {} elements and its gradient {}, expected {}", i,
                              params[i]->size(), grads[i]->size(), expected));
  }
  if (first) {
    sizes_.clear();
    for (const Tensor* p : params) sizes_.push_back(p->size());
  }
  ++iterations_;
  begin_step(iterations_);
  for (std::size_t i = 0; i < params.size(); ++i) {
    prepare(i, *params[i]);
    float* w = params[i]->data();
    const float* g = grads[i]->data();
    const std::size_t n = params[i]->size();
    if (n < (1u << 16)) {  // small tensors: not worth waking the threads
      update(i, w, g, 0, n);
    } else {
      parallel_for(0, n, [&](std::size_t lo, std::size_t hi) { update(i, w, g, lo, hi); });
    }
  }
}

// ---- SGD -------------------------------------------------------------------

SGD::SGD(const SGDOptions& options) : o_(options) {
  if (!(o_.learning_rate > 0)) throw Error(fmt::format("SGD: learning_rate must be > 0, not {}", o_.learning_rate));
  if (!(o_.momentum >= 0 && o_.momentum < 1))
    throw Error(fmt::format("SGD: momentum must be in [0, 1), not {}", o_.momentum));
}

std::string SGD::describe() const {
  std::string s = fmt::format("SGD(learning_rate={}", o_.learning_rate);
  if (o_.momentum > 0) s += fmt::format(", momentum={}", o_.momentum);
  if (o_.nesterov) s += ", nesterov=True";
  return s + ")";
}

void SGD::prepare(std::size_t slot, const Tensor& w) {
  if (o_.momentum == 0.0f) return;  // plain SGD keeps no state
  if (velocity_.size() <= slot) velocity_.resize(slot + 1);
  ensure_shape(velocity_[slot], w.shape());
}

void SGD::update(std::size_t slot, float* w, const float* g, std::size_t lo, std::size_t hi) {
  const float lr = o_.learning_rate, mu = o_.momentum;
  const bool nesterov = o_.nesterov;
  if (mu == 0.0f) {
    // [snippet sgd-step]
    for (std::size_t i = lo; i < hi; ++i) w[i] -= lr * g[i];  // w -= lr g
    // [end snippet sgd-step]
    return;
  }
  float* v = velocity_[slot].data();
  // [snippet momentum-step]
  for (std::size_t i = lo; i < hi; ++i) {
    v[i] = mu * v[i] - lr * g[i];                        // the velocity remembers past steps
    w[i] += nesterov ? mu * v[i] - lr * g[i] : v[i];     // Nesterov looks one step ahead
  }
  // [end snippet momentum-step]
}

// ---- RMSprop ---------------------------------------------------------------

RMSprop::RMSprop(const RMSpropOptions& options) : o_(options) {
  if (!(o_.learning_rate > 0)) throw Error("RMSprop: learning_rate must be > 0");
}

std::string RMSprop::describe() const {
  return fmt::format("RMSprop(learning_rate={}, rho={}, epsilon={})", o_.learning_rate, o_.rho, o_.epsilon);
}

void RMSprop::prepare(std::size_t slot, const Tensor& w) {
  if (mean_square_.size() <= slot) mean_square_.resize(slot + 1);
  ensure_shape(mean_square_[slot], w.shape());
}

void RMSprop::update(std::size_t slot, float* w, const float* g, std::size_t lo, std::size_t hi) {
  float* s = mean_square_[slot].data();
  // The options as locals: the compiler cannot keep members in registers
  // across stores through float pointers, and would not vectorize the loop.
  const float rho = o_.rho, lr = o_.learning_rate, eps = o_.epsilon;
  // [snippet rmsprop-step]
  for (std::size_t i = lo; i < hi; ++i) {
    s[i] = rho * s[i] + (1.0f - rho) * g[i] * g[i];  // a running mean of g^2
    w[i] -= lr * g[i] / std::sqrt(s[i] + eps);        // Keras: epsilon inside the root
  }
  // [end snippet rmsprop-step]
}

// ---- Adam ------------------------------------------------------------------

Adam::Adam(const AdamOptions& options) : o_(options) {
  if (!(o_.learning_rate > 0)) throw Error("Adam: learning_rate must be > 0");
}

std::string Adam::describe() const {
  return fmt::format("Adam(learning_rate={}, beta_1={}, beta_2={}, epsilon={})", o_.learning_rate, o_.beta_1,
                     o_.beta_2, o_.epsilon);
}

void Adam::begin_step(std::size_t t) {
  // The bias corrections of m and s, folded into one step size (Keras's form).
  const double b1t = std::pow(static_cast<double>(o_.beta_1), static_cast<double>(t));
  const double b2t = std::pow(static_cast<double>(o_.beta_2), static_cast<double>(t));
  step_size_ = static_cast<float>(o_.learning_rate * std::sqrt(1.0 - b2t) / (1.0 - b1t));
}

void Adam::prepare(std::size_t slot, const Tensor& w) {
  if (m_.size() <= slot) m_.resize(slot + 1), s_.resize(slot + 1);
  ensure_shape(m_[slot], w.shape());
  ensure_shape(s_[slot], w.shape());
}

void Adam::update(std::size_t slot, float* w, const float* g, std::size_t lo, std::size_t hi) {
  float* m = m_[slot].data();
  float* s = s_[slot].data();
  const float b1 = o_.beta_1, b2 = o_.beta_2, eps = o_.epsilon, step = step_size_;  // locals: see RMSprop
  for (std::size_t i = lo; i < hi; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    s[i] = b2 * s[i] + (1.0f - b2) * g[i] * g[i];
    w[i] -= step * m[i] / (std::sqrt(s[i]) + eps);
  }
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, float learning_rate, float momentum,
                                          bool nesterov) {
  const bool given = learning_rate > 0;
  if (name != "sgd" && (momentum != 0.0f || nesterov))
    throw Error(fmt::format("momentum and Nesterov apply to sgd only, not to {}", name));
  if (nesterov && momentum == 0.0f) throw Error("Nesterov needs a momentum (try --momentum 0.9)");
  if (name == "sgd")
    return std::make_unique<SGD>(
        SGDOptions{.learning_rate = given ? learning_rate : 0.01f, .momentum = momentum, .nesterov = nesterov});
  if (name == "adam") return std::make_unique<Adam>(AdamOptions{.learning_rate = given ? learning_rate : 1e-3f});
  if (name == "rmsprop") return std::make_unique<RMSprop>(RMSpropOptions{.learning_rate = given ? learning_rate : 1e-3f});
  throw Error(fmt::format("unknown optimizer '{}' (sgd, adam, rmsprop)", name));
}

}  // namespace nn
