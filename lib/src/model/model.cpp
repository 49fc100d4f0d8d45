#include "nn/model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "model_internal.hpp"
#include "nn/error.hpp"
#include "nn/normalize.hpp"
#include "nn/softmax.hpp"

// Sequential itself: adding layers, compiling, and one batch forward and
// backward (the plan it runs is model_plan.cpp's; summary, fit and the weights
// folder have a file each: model_summary.cpp, model_fit.cpp, weights_folder.cpp).
namespace nn {

namespace model_impl {

Shape with_batch(std::size_t n, const Shape& sample) {
  std::array<std::size_t, Shape::kMaxRank> dims{n};
  if (sample.rank() + 1 > Shape::kMaxRank) throw Error(fmt::format("input shape {} has too many axes", sample.str()));
  std::copy(sample.dims().begin(), sample.dims().end(), dims.begin() + 1);
  return Shape(std::span(dims.data(), sample.rank() + 1));
}

std::string keras_shape(const Shape& s) {
  std::string out = "(None";
  for (std::size_t i = 1; i < s.rank(); ++i) out += fmt::format(", {}", s[i]);
  return out + ")";
}

}  // namespace model_impl

using model_impl::keras_shape;
using model_impl::with_batch;

// x must be a batch of the model's input shape and y (when given) a batch of
// one-hot rows as wide as the model's output, with as many samples as x.
void Sequential::check_data(const char* what, const Tensor& x, const Tensor* y) const {
  if (layers_.empty()) throw Error(fmt::format("{}: the model has no layers", what));
  const std::span<const std::size_t> dims = x.shape().dims();
  if (x.rank() != input_shape_.rank() + 1 || !std::equal(dims.begin() + 1, dims.end(), input_shape_.dims().begin()))
    throw Error(fmt::format("{}: x has shape {}, but the model takes {}", what, x.shape().str(),
                            keras_shape(with_batch(1, input_shape_))));
  if (!y) return;
  const Shape out = output_shape(1);
  if (y->rank() != 2 || y->dim(0) != x.dim(0) || y->dim(1) != out[out.rank() - 1])
    throw Error(fmt::format("{}: y has shape {}; for x {} the model needs ({}, {})", what, y->shape().str(),
                            x.shape().str(), x.dim(0), out[out.rank() - 1]));
}

Sequential::Sequential(Shape input_shape) : input_shape_(input_shape) {}

Shape Sequential::output_shape(std::size_t batch) const {
  Shape shape = with_batch(batch, input_shape_);
  for (const auto& l : layers_) shape = l->output_shape(shape);
  return shape;
}

void Sequential::add(std::unique_ptr<Layer> layer) {
  if (!layer) throw Error("add: no layer (a null pointer)");
  // The shape the new layer receives: the output of the model so far.
  const Shape shape = output_shape(1);
  try {
    layer->build(shape);  // Keras's build(input_shape): the layer makes what depends on its input
    layer->output_shape(shape);
  } catch (const Error& e) {
    throw Error(fmt::format("cannot add {} after an output of shape {}: {}", layer->type(), keras_shape(shape), e.what()));
  }
  // Keras names: conv2d, dense, then dense_1, dense_2 for repeats.
  std::size_t same = 0;
  for (const auto& l : layers_) same += l->base_name() == layer->base_name();
  layer->name = same == 0 ? layer->base_name() : fmt::format("{}_{}", layer->base_name(), same);
  layers_.push_back(std::move(layer));
  plan_.clear();  // rebuilt when next needed
}

void Sequential::set_fusion(bool on) {
  fusion_ = on;
  plan_.clear();
}

std::vector<std::string> Sequential::plan() {
  std::vector<std::string> names;
  for (const Layer* step : execution_plan()) names.push_back(step->name);
  return names;
}

Loss loss_from_name(std::string_view name) {
  if (name == "categorical_crossentropy") return Loss::categorical_crossentropy;
  if (name == "mean_squared_error" || name == "mse") return Loss::mean_squared_error;
  throw Error(fmt::format("unknown loss '{}': use categorical_crossentropy or mean_squared_error (mse)", name));
}

std::string_view loss_name(Loss loss) {
  return loss == Loss::categorical_crossentropy ? "categorical_crossentropy" : "mean_squared_error";
}

void Sequential::compile(std::unique_ptr<Optimizer> optimizer, Loss loss) {
  if (layers_.empty()) throw Error("compile: the model has no layers");
  const Shape out = output_shape(1);
  if (out.rank() != 2) throw Error(fmt::format("compile: the last layer's output {} is not (None, classes)", keras_shape(out)));
  if (!optimizer) throw Error("compile: no optimizer (a null pointer)");
  optimizer_ = std::move(optimizer);
  loss_ = loss;
  execution_plan();
}

std::vector<Parameter*> Sequential::parameters() {
  std::vector<Parameter*> out;
  for (auto& l : layers_)
    for (Parameter* p : l->parameters()) out.push_back(p);
  return out;
}

std::vector<NamedParameter> Sequential::named_parameters() {
  std::vector<NamedParameter> out;
  for (auto& l : layers_)
    for (Parameter* p : l->parameters()) out.push_back({l->name + "." + p->name, p});
  return out;
}

// [snippet logits]
ConstView Sequential::logits(const Tensor& x, bool training) {
  for (auto& layer : layers_) layer->training = training;  // Keras's call(x, training=...)
  activations_.clear();
  activations_.push_back(x);  // a view: no copy of the batch
  for (Layer* step : execution_plan()) activations_.push_back(step->forward(activations_.back()));
  return activations_.back();
}
// [end snippet logits]

void Sequential::update_statistics(const Tensor& x, std::size_t batch_size) {
  check_data("update_statistics", x, nullptr);
  if (batch_size == 0) throw Error("update_statistics: batch_size must be at least 1");
  for (std::size_t first = 0; first + batch_size <= x.dim(0); first += batch_size)
    logits(x.batch_view(first, batch_size), /*training=*/true);
}

double Sequential::compute_gradients(const Tensor& x, const Tensor& y, std::size_t* correct) {
  check_data("compute_gradients", x, &y);
  const double loss = backprop(x, y, nullptr);
  if (correct) *correct = last_correct_;
  return loss;
}

double Sequential::batch_loss(const Tensor& z, const Tensor& p, const Tensor& y) const {
  return loss_ == Loss::categorical_crossentropy ? softmax_crossentropy(z, y)  // from the logits, as Keras does
                                                 : mean_squared_error(p, y);
}

std::vector<StepSpread> Sequential::spread(const Tensor& x, const Tensor& y) {
  check_data("spread", x, &y);
  if (x.dim(0) == 0) throw Error(fmt::format("spread: no images (x has shape {})", x.shape().str()));
  std::vector<ConstView> gradients;  // the last step's first
  backprop(x, y, nullptr, &gradients);
  const std::vector<Layer*>& steps = execution_plan();
  std::vector<StepSpread> out{{"input", pixel_stats(x.span()).stddev, std::nan("")}};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::size_t from_top = steps.size() - 1 - i;  // backward reaches the steps from the first trainable one up
    out.push_back({steps[i]->name, pixel_stats(activations_[i + 1].span()).stddev,
                   from_top < gradients.size() ? pixel_stats(gradients[from_top].span()).stddev : std::nan("")});
  }
  return out;
}

double Sequential::backprop(const Tensor& x, const Tensor& y, Optimizer* update, std::vector<ConstView>* gradients) {
  // [snippet backprop]
  const ConstView z = logits(x, /*training=*/true);     // forward through every layer
  ensure_shape(p_, z.shape());
  softmax(z, p_);
  const double loss = batch_loss(z, p_, y);             // the compiled loss; cross-entropy from the logits, as Keras does
  last_correct_ = correct_count(p_, y);
  if (update && !std::isfinite(loss)) return loss;      // no step from a NaN: the caller decides what to do
  ensure_shape(dz_, z.shape());
  if (loss_ == Loss::categorical_crossentropy)
    softmax_crossentropy_backward(p_, y, dz_);          // (p - y) / N: its exact gradient
  else
    softmax_mean_squared_error_backward(p_, y, dz_);    // through the softmax's Jacobian
  ConstView grad = dz_;
  const std::vector<Layer*>& steps = execution_plan();
  if (update) update->begin_step(parameters());         // a training step: the layers update as they go
  // Backward, last step first, down to the first step with weights: the
  // gradient of its input (the image, or a step without weights in front,
  // such as RandomTranslation) is never used, so it is not computed.
  for (std::size_t i = steps.size(); i-- > first_trainable_;) {
    const bool need_dx = i > first_trainable_;
    if (gradients) gradients->push_back(grad);  // for spread()
    grad = update ? steps[i]->backward_and_update(activations_[i], activations_[i + 1], grad, need_dx, *update)
                  : steps[i]->backward(activations_[i], activations_[i + 1], grad, need_dx);
  }
  // [end snippet backprop]
  return loss;
}

Var Sequential::record(Var x, bool training) {
  Var v = x;
  for (auto& layer : layers_) {
    layer->training = training;
    v = layer->record(v);
  }
  return v;
}

Optimizer& Sequential::optimizer() {
  if (!optimizer_) throw Error("optimizer: call compile() first");
  return *optimizer_;
}

double Sequential::train_on_batch(const Tensor& x, const Tensor& y, std::size_t* correct) {
  if (!optimizer_) throw Error("train_on_batch: call compile() first");
  check_data("train_on_batch", x, &y);
  const double loss = backprop(x, y, optimizer_.get());
  if (correct) *correct = last_correct_;
  return loss;
}

Evaluation Sequential::evaluate(const Tensor& x, const Tensor& y, std::size_t batch_size, std::ostream* progress) {
  check_data("evaluate", x, &y);
  if (batch_size == 0) throw Error("evaluate: batch_size must be at least 1");
  const auto start = std::chrono::steady_clock::now();
  const std::size_t n = x.dim(0), batches = batches_per_epoch(n, batch_size);
  if (n == 0) throw Error(fmt::format("evaluate: the set is empty (x has shape {})", x.shape().str()));
  double loss_sum = 0;
  std::size_t correct = 0;
  for (std::size_t b = 0; b < batches; ++b) {
    const std::size_t first = b * batch_size, count = std::min(batch_size, n - first);
    const ConstView xb = x.batch_view(first, count), yb = y.batch_view(first, count);  // views: no copies
    const ConstView z = logits(xb, /*training=*/false);
    const Tensor p = softmax(z);
    loss_sum += batch_loss(z, p, yb) * static_cast<double>(count);  // the compiled loss, as Keras reports it
    correct += correct_count(p, yb);
  }
  Evaluation e{loss_sum / static_cast<double>(n), static_cast<double>(correct) / static_cast<double>(n)};
  if (progress)
    *progress << progress_line(batches, batches,
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), e.loss,
                               e.accuracy, true)
              << "\n";
  return e;
}

Tensor Sequential::predict(const Tensor& x, std::size_t batch_size) {
  if (batch_size == 0) throw Error("predict: batch_size must be at least 1");
  check_data("predict", x, nullptr);
  if (x.dim(0) == 0) throw Error(fmt::format("predict: no images to predict (x has shape {})", x.shape().str()));
  const std::size_t n = x.dim(0);
  Tensor out(output_shape(n));
  const std::size_t classes = out.dim(1);
  for (std::size_t first = 0; first < n; first += batch_size) {
    const std::size_t count = std::min(batch_size, n - first);
    const Tensor p = softmax(logits(x.batch_view(first, count), /*training=*/false));
    std::copy(p.data(), p.data() + count * classes, out.data() + first * classes);
  }
  return out;
}

}  // namespace nn
