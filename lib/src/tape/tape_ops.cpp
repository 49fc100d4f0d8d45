// The tape's operations. Each computes its value with the kernel a layer
// calls, and records how to pass its gradient back, again with the layers'
// kernels: nothing here is a second implementation of a kernel.
#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "nn/activations.hpp"
#include "nn/dense.hpp"
#include "nn/dropout.hpp"
#include "nn/error.hpp"
#include "nn/pooling.hpp"
#include "nn/softmax.hpp"
#include "nn/tape.hpp"

namespace nn {

namespace {

void same_shape(const char* op, Var a, Var b) {
  if (a.shape() != b.shape())
    throw Error(fmt::format("tape: {} of {} and {}: the shapes must be equal", op, a.shape().str(), b.shape().str()));
}

// g * t elementwise, into a new tensor.
Tensor scaled(const Tensor& t, float g) {
  Tensor out(t.shape());
  for (std::size_t i = 0; i < t.size(); ++i) out[i] = g * t[i];
  return out;
}

}  // namespace

// [snippet tape-dense]
Var dense(Var x, Var kernel, Var bias) {
  const ConstView xv = x.value(), w = kernel.value();  // views, kept for the backward pass
  Tensor y({xv.dim(0), w.dim(1)});
  dense_forward(xv, w, bias.value(), y, DenseVariant::fast);  // y = x W + b
  return x.tape().record("dense", {x, kernel, bias}, y, [xv, w](const Tensor& dy, Tape::Gradients& grads) {
    Tensor dw, db, dx;
    dense_backward(xv, w, dy, DenseVariant::fast, dw, db, grads.needs(0) ? &dx : nullptr);
    if (grads.needs(0)) grads.give(0, std::move(dx));  // dx = dy W^T
    if (grads.needs(1)) grads.give(1, std::move(dw));  // dW = x^T dy
    if (grads.needs(2)) grads.give(2, std::move(db));  // db = the sum of dy's rows
  });
}
// [end snippet tape-dense]

Var conv2d(Var x, Var kernel, Var bias, Conv2DVariant variant) {
  const ConstView xv = x.value(), k = kernel.value();
  Tensor y = conv2d_forward(xv, k, bias.value(), variant);
  return x.tape().record("conv2d", {x, kernel, bias}, y, [xv, k, variant](const Tensor& dy, Tape::Gradients& grads) {
    Tensor dk, db, dx;
    conv2d_backward(xv, k, dy, variant, dk, db, grads.needs(0) ? &dx : nullptr);
    if (grads.needs(0)) grads.give(0, std::move(dx));
    if (grads.needs(1)) grads.give(1, std::move(dk));
    if (grads.needs(2)) grads.give(2, std::move(db));
  });
}

Var relu(Var x) {
  const Tensor y = relu(x.value());
  const ConstView yv = y;
  return x.tape().record("relu", {x}, yv, [yv](const Tensor& dy, Tape::Gradients& grads) {
    grads.give(0, relu_backward(yv, dy));  // dy where y > 0, else 0
  });
}

Var max_pool2d(Var x, std::size_t pool) {
  const ConstView xv = x.value();
  Tensor y = max_pool2d_forward(xv, pool);
  return x.tape().record("max_pool2d", {x}, y, [xv, pool](const Tensor& dy, Tape::Gradients& grads) {
    grads.give(0, max_pool2d_backward(xv, dy, pool));  // dy routed to each window's maximum
  });
}

Var reshape(Var x, const Shape& shape) {
  const Shape from = x.shape();
  return x.tape().record("reshape", {x}, x.value().reshape(shape), [from](const Tensor& dy, Tape::Gradients& grads) {
    Tensor g = dy;  // the same values in the input's shape
    grads.give(0, g.reshape(from));
  });
}

Var flatten(Var x) {
  if (x.shape().rank() < 2)
    throw Error(fmt::format("tape: flatten needs a batch axis and at least one more: got {}", x.shape().str()));
  const ConstView flat = x.value().reshape({static_cast<std::int64_t>(x.shape()[0]), -1});
  return reshape(x, flat.shape());
}

Var softmax_crossentropy(Var logits, const Tensor& y) {
  const ConstView z = logits.value();
  if (z.rank() != 2 || y.shape() != z.shape())
    throw Error(fmt::format("tape: softmax_crossentropy of logits {} against y {}: both (N, classes)",
                            z.shape().str(), y.shape().str()));
  Tensor p(z.shape());
  softmax(z, p);
  const double loss = softmax_crossentropy(z, y);  // from the logits, as the model's loss
  const ConstView pv = p, yv = y;
  return logits.tape().record_scalar(
      "softmax_crossentropy", {logits}, loss,
      [pv, yv](const Tensor& dy, Tape::Gradients& grads) {
        Tensor dz(pv.shape());
        softmax_crossentropy_backward(pv, yv, dz);  // (p - y) / N
        grads.give(0, dy[0] == 1.0f ? std::move(dz) : scaled(dz, dy[0]));
      },
      {.tensor = pv});
}

const Tensor& probabilities(Var loss) {
  if (loss.tape().kept(loss).size() == 0)
    throw Error(fmt::format("tape: probabilities of v{}, which is not a softmax_crossentropy", loss.index()));
  return loss.tape().kept(loss);
}

Var dropout(Var x, double rate, std::uint64_t key, std::uint64_t first) {
  if (!(rate >= 0.0 && rate <= 1.0)) throw Error(fmt::format("tape: dropout rate {} is outside [0, 1]", rate));
  Tensor y;
  auto keep = std::make_shared<std::vector<std::uint8_t>>();
  dropout_forward(x.value(), rate, key, y, *keep, first);
  const std::size_t mask_bytes = keep->size();
  return x.tape().record(
      "dropout", {x}, y,
      [keep, rate](const Tensor& dy, Tape::Gradients& grads) {
        Tensor dx;
        dropout_backward(dy, rate, *keep, dx);
        grads.give(0, std::move(dx));
      },
      {.tensor = {}, .other_bytes = mask_bytes});
}

// [snippet tape-add-multiply]
Var add(Var a, Var b) {
  same_shape("add", a, b);
  const ConstView av = a.value(), bv = b.value();
  Tensor y(a.shape());
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = av[i] + bv[i];
  return a.tape().record("add", {a, b}, y, [](const Tensor& dy, Tape::Gradients& grads) {
    if (grads.needs(0)) grads.give(0, Tensor(dy));  // d(a + b)/da = 1
    if (grads.needs(1)) grads.give(1, Tensor(dy));  // d(a + b)/db = 1
  });
}

Var multiply(Var a, Var b) {
  same_shape("multiply", a, b);
  const ConstView av = a.value(), bv = b.value();
  Tensor y(a.shape());
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = av[i] * bv[i];
  return a.tape().record("multiply", {a, b}, y, [av, bv](const Tensor& dy, Tape::Gradients& grads) {
    Tensor da(dy.shape()), db(dy.shape());
    for (std::size_t i = 0; i < dy.size(); ++i) da[i] = dy[i] * bv[i], db[i] = dy[i] * av[i];
    if (grads.needs(0)) grads.give(0, std::move(da));  // d(a b)/da = b
    if (grads.needs(1)) grads.give(1, std::move(db));  // d(a b)/db = a
  });
}
// [end snippet tape-add-multiply]

Var sum(Var x) {
  double total = 0;  // in double, as the course's losses are summed
  for (float v : x.value().span()) total += v;
  const Shape shape = x.shape();
  return x.tape().record_scalar("sum", {x}, total, [shape](const Tensor& dy, Tape::Gradients& grads) {
    grads.give(0, Tensor(shape, dy[0]));  // every element moves the sum by 1
  });
}

Var mean(Var x) {
  if (x.value().size() == 0) throw Error("tape: mean of no elements");
  double total = 0;
  for (float v : x.value().span()) total += v;
  const Shape shape = x.shape();
  const double n = static_cast<double>(x.value().size());
  return x.tape().record_scalar("mean", {x}, total / n, [shape, n](const Tensor& dy, Tape::Gradients& grads) {
    grads.give(0, Tensor(shape, static_cast<float>(dy[0] / n)));  // each element moves the mean by 1/n
  });
}

}  // namespace nn
