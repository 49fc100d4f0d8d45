// The tape itself: leaves, entries, and the backward walk. The operations
// that record entries are in tape_ops.cpp.
#include <algorithm>

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/tape.hpp"

namespace nn {

const Tensor& Var::value() const {
  tape_->check(*this, "value");
  return tape_->entries_[index_].value.tensor();
}

const Tensor& Var::grad() const {
  tape_->check(*this, "grad");
  return tape_->entries_[index_].grad;
}

double Var::item() const {
  tape_->check(*this, "item");
  const auto& e = tape_->entries_[index_];
  if (e.has_item) return e.item;
  if (e.value.size() != 1)
    throw Error(fmt::format("tape: item() of v{} ({}), which has {} elements, not 1", index_, e.op, e.value.size()));
  return e.value[0];
}

void Tape::check(Var v, const char* what) const {
  if (v.tape_ != this) throw Error(fmt::format("tape: {} of a value from another tape (or none)", what));
  if (v.index_ >= entries_.size())
    throw Error(fmt::format("tape: {} of v{}, but the tape holds {} entries (cleared since?)", what, v.index_,
                            entries_.size()));
}

Var Tape::leaf(std::string op, const Tensor& x, bool needs_grad, Parameter* p) {
  Entry e;
  e.op = std::move(op);
  e.value = ConstView(x);  // a view: no copy
  e.owns_value = false;
  e.needs_grad = needs_grad;
  e.parameter = p;
  entries_.push_back(std::move(e));
  return Var(this, entries_.size() - 1);
}

Var Tape::input(const Tensor& x) { return leaf("input", x, false, nullptr); }
Var Tape::variable(const Tensor& x) { return leaf("variable", x, true, nullptr); }

Var Tape::parameter(Parameter& p, const std::string& name) {
  if (!p.trainable) throw Error(fmt::format("tape: parameter {} is not trainable (it has no gradient)", p.name));
  // One entry per parameter, however often it is asked for: its gradient is
  // the sum over every use, written once.
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].parameter == &p) return Var(this, i);
  return leaf("parameter " + (name.empty() ? p.name : name), p.value, true, &p);
}

Var Tape::append(Entry entry, const std::vector<Var>& inputs) {
  for (const Var& v : inputs) {
    check(v, entry.op.c_str());
    entry.inputs.push_back(v.index_);
    entry.needs_grad = entry.needs_grad || entries_[v.index_].needs_grad;
  }
  entries_.push_back(std::move(entry));
  return Var(this, entries_.size() - 1);
}

Var Tape::record(std::string op, std::vector<Var> inputs, ConstView value, Backward backward, Kept kept) {
  Entry e;
  e.op = std::move(op);
  e.value = std::move(value);  // shares the value's buffer, which lives on with the entry
  for (const Var& v : inputs) {
    check(v, e.op.c_str());
    if (e.value.tensor().shares_buffer_with(entries_[v.index_].value.tensor())) e.owns_value = false;  // a view
  }
  e.backward = std::move(backward);
  e.kept = std::move(kept);
  return append(std::move(e), inputs);
}

Var Tape::record_scalar(std::string op, std::vector<Var> inputs, double item, Backward backward, Kept kept) {
  Var v = record(std::move(op), std::move(inputs), Tensor({1}, static_cast<float>(item)), std::move(backward),
                 std::move(kept));
  entries_[v.index_].item = item;
  entries_[v.index_].has_item = true;
  return v;
}

const Tensor& Tape::kept(Var v) const {
  check(v, "kept");
  return entries_[v.index_].kept.tensor.tensor();
}

bool Tape::Gradients::needs(std::size_t k) const { return tape_.entries_.at(inputs_.at(k)).needs_grad; }

void Tape::Gradients::give(std::size_t k, Tensor&& g) { tape_.add_grad(inputs_.at(k), std::move(g)); }

// [snippet tape-add-grad]
// A value used by several operations receives one gradient from each: they add.
void Tape::add_grad(std::size_t index, Tensor&& g) {
  Entry& e = entries_[index];
  if (g.shape() != e.value.shape())
    throw Error(fmt::format("tape: {} gives a gradient {} for a value {}", e.op, g.shape().str(),
                            e.value.shape().str()));
  if (e.grad.data() == nullptr) {  // the first: taken as it is
    e.grad = std::move(g);
    return;
  }
  float* sum = e.grad.data();
  const float* more = g.data();
  for (std::size_t i = 0; i < g.size(); ++i) sum[i] += more[i];
}
// [end snippet tape-add-grad]

void Tape::backward(Var loss) {
  check(loss, "backward");
  const Tensor& v = entries_[loss.index_].value.tensor();
  if (v.size() != 1)
    throw Error(fmt::format("tape: backward from v{} ({}), which has shape {}: a loss has one element (give dy "
                            "for any other value)",
                            loss.index_, entries_[loss.index_].op, v.shape().str()));
  backward(loss, Tensor(v.shape(), 1.0f));  // dL/dL = 1
}

void Tape::backward(Var y, const Tensor& dy) {
  check(y, "backward");
  if (dy.shape() != entries_[y.index_].value.shape())
    throw Error(fmt::format("tape: backward from v{} with dy {} for a value {}", y.index_, dy.shape().str(),
                            entries_[y.index_].value.shape().str()));
  for (Entry& e : entries_) e.grad = Tensor();  // a second backward starts afresh
  entries_[y.index_].grad = dy;
  // [snippet tape-backward]
  // Newest first: every use of a value was recorded after the value itself,
  // so by the time the walk reaches an entry, all of its gradient has arrived.
  for (std::size_t i = y.index_ + 1; i-- > 0;) {
    Entry& e = entries_[i];
    if (!e.needs_grad || e.grad.data() == nullptr) continue;  // nothing to pass back
    if (e.backward) {
      Gradients grads(*this, e.inputs);
      e.backward(e.grad, grads);
    }
  }
  // [end snippet tape-backward]
  for (Entry& e : entries_) {
    if (!e.parameter) continue;
    Parameter& p = *e.parameter;
    ensure_shape(p.grad, p.value.shape());
    if (e.grad.data() != nullptr)
      std::copy(e.grad.data(), e.grad.data() + e.grad.size(), p.grad.data());
    else
      p.grad.fill(0.0f);  // the loss does not depend on it
  }
}

void Tape::clear() { entries_.clear(); }

std::vector<Tape::EntryInfo> Tape::entries() const {
  std::vector<EntryInfo> out;
  for (const Entry& e : entries_)
    out.push_back({.op = e.op,
                   .inputs = e.inputs,
                   .shape = e.value.shape(),
                   .value_bytes = e.owns_value ? e.value.size() * sizeof(float) : 0,
                   .kept_bytes = e.kept.tensor.size() * sizeof(float) + e.kept.other_bytes,
                   .grad_bytes = e.grad.size() * sizeof(float)});
  return out;
}

std::size_t Tape::bytes() const {
  std::size_t total = 0;
  for (const EntryInfo& e : entries()) total += e.value_bytes + e.kept_bytes + e.grad_bytes;
  return total;
}

std::string Tape::listing() const {
  std::string out;
  const std::vector<EntryInfo> all = entries();
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string args;
    for (std::size_t k = 0; k < all[i].inputs.size(); ++k) args += fmt::format("{}v{}", k ? ", " : "", all[i].inputs[k]);
    out += fmt::format("v{} = {}{}  {}\n", i, all[i].op, args.empty() ? "" : "(" + args + ")", all[i].shape.str());
  }
  return out;
}

}  // namespace nn
