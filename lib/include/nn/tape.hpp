#pragma once
// A gradient tape (chapter 13): reverse-mode automatic differentiation over
// the course's own kernels, as TensorFlow's GradientTape (and JAX's grad,
// under Keras 3) finds the gradients that `fit` uses.
//
//   nn::Tape tape;
//   nn::Var x = tape.input(images);                          // (32, 784): data, no gradient
//   nn::Var w = tape.parameter(dense.kernel), b = tape.parameter(dense.bias);
//   nn::Var z = nn::dense(x, w, b);                          // recorded: z = x W + b
//   nn::Var loss = nn::softmax_crossentropy(z, labels);      // recorded: a scalar
//   tape.backward(loss);                                     // dense.kernel.grad, dense.bias.grad written
//
// Every operation computes its value at once (with the same kernel the layers
// call) and appends one entry to the tape: its inputs, and how to turn the
// gradient of its output into gradients of its inputs (again with the layers'
// kernels). The tape is a list in the order the operations ran, and every
// entry's inputs come before it; read backwards, it is therefore an order in
// which each value's gradient is complete before it is used. backward()
// walks it so, from the loss, and where a value was used twice it adds the
// two gradients.
//
// A Var is a handle: the tape and a position on it. Values and gradients stay
// on the tape until clear() (or the tape's end); a Var is valid until then.
// Inputs and parameters are views, not copies. The tape is not thread-safe:
// one tape per thread (each kernel shares its own work among threads).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/parameter.hpp"
#include "nn/tensor.hpp"

namespace nn {

class Tape;

class Var {
 public:
  Var() = default;
  const Tensor& value() const;
  // dL/d(this value) after backward(); empty when the value does not reach
  // the loss or has no gradient (an input).
  const Tensor& grad() const;
  const Shape& shape() const { return value().shape(); }
  // A one-element value as a number: for a loss, the double the kernel
  // computed (the model sums its loss in double), else value()[0].
  double item() const;
  Tape& tape() const { return *tape_; }
  std::size_t index() const { return index_; }

 private:
  friend class Tape;
  Var(Tape* tape, std::size_t index) : tape_(tape), index_(index) {}
  Tape* tape_ = nullptr;
  std::size_t index_ = 0;
};

// What an operation keeps for its backward pass besides its inputs and
// value: a tensor (softmax's probabilities; Tape::kept returns it) and any
// other bytes its backward pass holds (dropout's mask), for Tape::bytes().
struct TapeKept {
  ConstView tensor;
  std::size_t other_bytes = 0;
};

class Tape {
 public:
  Tape() = default;
  Tape(const Tape&) = delete;  // Vars point at their tape
  Tape& operator=(const Tape&) = delete;

  // ---- What a graph starts from ----
  // Data: a read-only view of x (no copy); no gradient is computed for it.
  Var input(const Tensor& x);
  // A value whose gradient is wanted: a view of x; grad() after backward.
  Var variable(const Tensor& x);
  // A weight: a view of p.value; backward() writes dL/dp into p.grad. The
  // listing names it `name` ("dense.kernel"), else p.name.
  Var parameter(Parameter& p, const std::string& name = "");

  // From a one-element `loss`: the gradient of loss with respect to every
  // recorded value, and into p.grad for every parameter() (a parameter the
  // loss does not depend on gets zeros). Throws nn::Error for a loss with
  // more than one element or from another tape.
  void backward(Var loss);
  // The same from any value y and a given dy = dL/dy (y's shape): the
  // backward pass of a function recorded on the tape, as a layer needs it
  // (nn/layers/tape_layer.hpp).
  void backward(Var y, const Tensor& dy);

  // Forgets every entry (every Var of this tape becomes invalid).
  void clear();
  std::size_t size() const { return entries_.size(); }  // entries recorded
  // The bytes the tape holds: the values the operations made, what they kept
  // for their backward pass (dropout's mask, softmax's probabilities) and
  // the gradients. Views of inputs and parameters are not counted.
  std::size_t bytes() const;
  // One entry as recorded, with what it holds.
  struct EntryInfo {
    std::string op;                   // "dense", "input", "parameter dense.kernel", ...
    std::vector<std::size_t> inputs;  // positions of its inputs on the tape
    Shape shape;                      // of its value
    std::size_t value_bytes = 0;      // 0 for a view (an input, a parameter, a reshape)
    std::size_t kept_bytes = 0;       // kept for the backward pass
    std::size_t grad_bytes = 0;       // its gradient, once backward has run
  };
  std::vector<EntryInfo> entries() const;
  // The recorded graph, one line per entry, in the order recorded:
  //   "v3 = dense(v0, v1, v2)  (32, 100)"
  std::string listing() const;

  // ---- For the operations (the free functions below) ----
  // What an entry's backward pass is given besides its own gradient dy.
  class Gradients {
   public:
    bool needs(std::size_t k) const;       // does the entry's k-th input need a gradient?
    void give(std::size_t k, Tensor&& g);  // adds g to the k-th input's gradient
   private:
    friend class Tape;
    Gradients(Tape& tape, const std::vector<std::size_t>& inputs) : tape_(tape), inputs_(inputs) {}
    Tape& tape_;
    const std::vector<std::size_t>& inputs_;
  };
  using Backward = std::function<void(const Tensor& dy, Gradients& grads)>;
  using Kept = TapeKept;
  // Appends an entry computed from `inputs` (all of this tape): its value
  // (a new tensor, or a view of an input's, as reshape gives), its backward
  // pass, and what it keeps for that pass.
  Var record(std::string op, std::vector<Var> inputs, ConstView value, Backward backward, Kept kept = {});
  // The same for a one-element result known more exactly as a double (a
  // loss): item() gives the double, value() its float.
  Var record_scalar(std::string op, std::vector<Var> inputs, double item, Backward backward, Kept kept = {});
  // The tensor entry v kept (empty when it kept none).
  const Tensor& kept(Var v) const;

 private:
  friend class Var;
  struct Entry {
    std::string op;
    std::vector<std::size_t> inputs;
    ConstView value;
    bool owns_value = true;   // false for views of inputs and parameters
    bool needs_grad = false;  // a parameter or variable is reachable through it
    Parameter* parameter = nullptr;
    Backward backward;
    Kept kept;
    double item = 0;
    bool has_item = false;
    Tensor grad;
  };
  Var leaf(std::string op, const Tensor& x, bool needs_grad, Parameter* p);
  Var append(Entry entry, const std::vector<Var>& inputs);
  void check(Var v, const char* what) const;
  void add_grad(std::size_t index, Tensor&& g);
  std::deque<Entry> entries_;  // a deque: a value's reference stays valid as entries are added
};

// ---- Operations: each records one entry on its inputs' tape ----
// y = x W + b, x (N, in), W (in, out), b (out,): the Dense kernels (chapter 07).
Var dense(Var x, Var kernel, Var bias);
// y = conv(x, kernel) + b, "valid", stride 1: x (N, H, W, C_in), kernel
// (KH, KW, C_in, C_out), b (C_out,) (chapter 04's kernels, `variant`).
Var conv2d(Var x, Var kernel, Var bias, Conv2DVariant variant = Conv2DVariant::direct3x3);
Var relu(Var x);                                // max(0, x)
Var max_pool2d(Var x, std::size_t pool = 2);    // (N, H, W, C) -> (N, H/pool, W/pool, C) (chapter 05)
Var reshape(Var x, const Shape& shape);         // the same values, another shape (chapter 06)
Var flatten(Var x);                             // (N, ...) -> (N, rest)
// Softmax of the logits (N, K) and categorical cross-entropy against y (N, K),
// the mean over the batch (chapter 08): one element. y is data.
Var softmax_crossentropy(Var logits, const Tensor& y);
// The probabilities softmax_crossentropy computed for `loss`: (N, K).
const Tensor& probabilities(Var loss);
// Inverted dropout with the mask of `key` (nn/dropout.hpp, chapter 12),
// x's elements numbered from `first`.
Var dropout(Var x, double rate, std::uint64_t key, std::uint64_t first = 0);
Var add(Var a, Var b);       // a + b, the same shape
Var multiply(Var a, Var b);  // a * b elementwise, the same shape
Var sum(Var x);              // the sum of every element: one element
Var mean(Var x);             // their mean: one element

}  // namespace nn
