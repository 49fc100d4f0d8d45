#include "nn/optimizer.hpp"

#include <fmt/format.h>

#include <cmath>

#include "nn/denormals.hpp"
#include "nn/error.hpp"
#include "nn/parallel.hpp"

namespace nn {

void Optimizer::step(std::span<Parameter* const> params) {
  begin_step(params);
  for (Parameter* p : params) update(*p);
}

void Optimizer::begin_step(std::span<Parameter* const> params) {
  // Validate everything first, then commit: a step that throws changes nothing.
  for (const Parameter* p : params) {
    if (!p->trainable) continue;  // state the layer keeps itself: no gradient, no update
    if (!(p->grad.shape() == p->value.shape()))
      throw Error(fmt::format("optimizer: parameter {} is {} but its gradient is {}", p->name,
                              p->value.shape().str(), p->grad.shape().str()));
    const auto known = state_.find(p);
    if (known != state_.end() && !known->second.empty() && !(known->second[0].shape() == p->value.shape()))
      throw Error(fmt::format("optimizer: parameter {} is {}, but it was {} at the steps before", p->name,
                              p->value.shape().str(), known->second[0].shape().str()));
  }
  // [snippet schedule-step]
  // Keras evaluates the schedule at the count before this step's increment.
  if (schedule_) scheduled_lr_ = (*schedule_)(iterations_);
  ++iterations_;
  start_step(iterations_);
  // [end snippet schedule-step]
  // The state is made here, before any update, so that update_block may run
  // on several threads at once (it only looks the state up).
  for (const Parameter* p : params) {
    if (!p->trainable) continue;
    std::vector<Tensor>& state = state_[p];
    while (state.size() < state_tensors()) state.emplace_back(p->value.shape());  // zeros, the first time
  }
}

std::span<const Tensor> Optimizer::state(const Parameter& p) const {
  const auto known = state_.find(&p);
  return known == state_.end() ? std::span<const Tensor>() : std::span<const Tensor>(known->second);
}

void Optimizer::update_block(Parameter& p, const float* g, std::size_t lo, std::size_t n) {
  const auto known = state_.find(&p);
  if (known == state_.end() || lo + n > p.size())
    throw Error(fmt::format("optimizer: update of {} outside a step, or past its end", p.name));
  std::vector<Tensor>& tensors = known->second;
  float* few[4];  // enough for every rule here (Adam keeps 2); a rule that keeps more gets a vector
  std::vector<float*> many(tensors.size() > 4 ? tensors.size() : 0);
  float** state = many.empty() ? few : many.data();
  for (std::size_t s = 0; s < tensors.size(); ++s) state[s] = tensors[s].data() + lo;
  // Set here, on the thread that runs this block (the caller's, or a worker
  // of parallel_for's pool), and restored when the block is done.
  const FlushDenormals flush(flushes_denormals());
  update_elements(std::span<float* const>(state, tensors.size()), p.value.data() + lo, g, n);
}

void Optimizer::update(Parameter& p) {
  if (!p.trainable) return;  // e.g. a moving mean: the layer's own state
  const float* g = p.grad.data();
  const std::size_t n = p.size();
  if (n < (1u << 16)) {  // small tensors: not worth waking the threads
    update_block(p, g, 0, n);
  } else {
    parallel_for(0, n, [&](std::size_t lo, std::size_t hi) { update_block(p, g + lo, lo, hi - lo); });
  }
}

std::string Optimizer::learning_rate_text(float fixed) const {
  return schedule_ ? schedule_->describe() : fmt::format("{}", fixed);
}

// ---- SGD -------------------------------------------------------------------

SGD::SGD(const SGDOptions& options) : o_(options) {
  if (!(o_.learning_rate > 0)) throw Error(fmt::format("SGD: learning_rate must be > 0, not {}", o_.learning_rate));
  if (!(o_.momentum >= 0 && o_.momentum < 1))
    throw Error(fmt::format("SGD: momentum must be in [0, 1), not {}", o_.momentum));
}

std::string SGD::describe() const {
  std::string s = fmt::format("SGD(learning_rate={}", learning_rate_text(o_.learning_rate));
  if (o_.momentum > 0) s += fmt::format(", momentum={}", o_.momentum);
  if (o_.nesterov) s += ", nesterov=True";
  return s + ")";
}

void SGD::start_step(std::size_t /*t*/) { lr_ = step_learning_rate(o_.learning_rate); }

void SGD::update_elements(std::span<float* const> state, float* w, const float* g, std::size_t n) {
  const float lr = lr_, mu = o_.momentum;
  const bool nesterov = o_.nesterov;
  if (mu == 0.0f) {
    // [snippet sgd-step]
    for (std::size_t i = 0; i < n; ++i) w[i] -= lr * g[i];  // w -= lr g
    // [end snippet sgd-step]
    return;
  }
  float* v = state[0];  // the velocity
  // [snippet momentum-step]
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = mu * v[i] - lr * g[i];                        // the velocity remembers past steps
    w[i] += nesterov ? mu * v[i] - lr * g[i] : v[i];     // Nesterov looks one step ahead
  }
  // [end snippet momentum-step]
}

// ---- RMSprop and Adam ------------------------------------------------------
//
// Keras runs every multiply, add and subtract of these rules as its own
// TensorFlow op, each rounded to float. GCC would fuse a * b + c into one
// multiply-add (rounded once) where the CPU has one, and give other bits than
// Keras, so these two rules are compiled without that fusion; the results are
// then the same on every CPU. (SGD and momentum keep it: chapter 10's SGD
// model stays what it was, bit for bit. Keras computes w - lr g in two roundings.)
#if defined(__clang__)
#define NN_KERAS_ROUNDING _Pragma("clang fp contract(off)")
#else
#define NN_KERAS_ROUNDING
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

// ---- RMSprop ---------------------------------------------------------------

RMSprop::RMSprop(const RMSpropOptions& options)
    : o_(options), rho_(static_cast<float>(o_.rho)), one_minus_rho_(static_cast<float>(1.0 - o_.rho)) {
  if (!(o_.learning_rate > 0)) throw Error("RMSprop: learning_rate must be > 0");
}

std::string RMSprop::describe() const {
  return fmt::format("RMSprop(learning_rate={}, rho={}, epsilon={})", learning_rate_text(o_.learning_rate), o_.rho,
                     o_.epsilon);
}

void RMSprop::start_step(std::size_t /*t*/) { lr_ = step_learning_rate(o_.learning_rate); }

void RMSprop::update_elements(std::span<float* const> state, float* w, const float* g, std::size_t n) {
  NN_KERAS_ROUNDING  // clang's pragma: first in the block
  float* s = state[0];  // the running mean of g^2
  // The options as locals: the compiler cannot keep members in registers
  // across stores through float pointers, and would not vectorize the loop.
  const float rho = rho_, one_minus_rho = one_minus_rho_, lr = lr_, eps = o_.epsilon;
  // [snippet rmsprop-step]
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = rho * s[i] + one_minus_rho * (g[i] * g[i]);  // a running mean of g^2, in Keras's order
    w[i] -= lr * g[i] / std::sqrt(s[i] + eps);          // Keras: epsilon inside the root
  }
  // [end snippet rmsprop-step]
}

// ---- Adam ------------------------------------------------------------------

Adam::Adam(const AdamOptions& options)
    : o_(options),
      one_minus_b1_(static_cast<float>(1.0 - o_.beta_1)),
      one_minus_b2_(static_cast<float>(1.0 - o_.beta_2)) {
  if (!(o_.learning_rate > 0)) throw Error("Adam: learning_rate must be > 0");
}

std::string Adam::describe() const {
  return fmt::format("Adam(learning_rate={}, beta_1={}, beta_2={}, epsilon={}{})", learning_rate_text(o_.learning_rate),
                     o_.beta_1, o_.beta_2, o_.epsilon, o_.bias_correction ? "" : ", bias_correction=False");
}

void Adam::start_step(std::size_t t) {
  NN_KERAS_ROUNDING
  // The bias corrections of m and s, folded into one step size (Keras's
  // alpha), with this step's learning rate (the schedule's, when there is
  // one). Keras computes it in float: power(float(b), float(t)), then
  // lr * sqrt(1 - b2^t) / (1 - b1^t) from left to right.
  const float lr = step_learning_rate(o_.learning_rate);
  if (!o_.bias_correction) {
    step_size_ = lr;
    return;
  }
  const float ft = static_cast<float>(t);
  const float b1t = std::pow(static_cast<float>(o_.beta_1), ft);
  const float b2t = std::pow(static_cast<float>(o_.beta_2), ft);
  step_size_ = lr * std::sqrt(1.0f - b2t) / (1.0f - b1t);
}

void Adam::update_elements(std::span<float* const> state, float* w, const float* g, std::size_t n) {
  NN_KERAS_ROUNDING
  float* m = state[0];  // the running mean of g
  float* s = state[1];  // the running mean of g^2
  const float c1 = one_minus_b1_, c2 = one_minus_b2_, eps = o_.epsilon, step = step_size_;  // locals: see RMSprop
  // [snippet adam-step]
  for (std::size_t i = 0; i < n; ++i) {
    m[i] += (g[i] - m[i]) * c1;         // Keras's form of b1 m + (1 - b1) g
    s[i] += (g[i] * g[i] - s[i]) * c2;  // and of b2 s + (1 - b2) g^2
    w[i] -= m[i] * step / (std::sqrt(s[i]) + eps);
  }
  // [end snippet adam-step]
}

#if !defined(__clang__)
#pragma GCC pop_options
#endif
#undef NN_KERAS_ROUNDING

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
