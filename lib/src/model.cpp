#include "nn/model.hpp"

#include <fmt/format.h>

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "nn/error.hpp"
#include "nn/fused.hpp"
#include "nn/io.hpp"
#include "nn/npy.hpp"
#include "nn/softmax.hpp"

namespace nn {

namespace {

// Conv2D(activation="relu") + MaxPooling2D as one step of the execution plan
// (see nn/fused.hpp). It owns no weights: it computes with the Conv2D's
// kernel and bias and writes their gradients, so the parameters, the
// optimizer and the summary still see the two Keras layers.
class FusedConvPool final : public Layer {
 public:
  FusedConvPool(Conv2D& conv, MaxPooling2D& pool) : conv_(conv), pool_(pool) {
    name = conv.name + "+" + pool.name;
  }
  // Fusable: a ReLU convolution, then a pooling.
  static bool applies(const Layer& first, const Layer& second) {
    const auto* conv = dynamic_cast<const Conv2D*>(&first);
    return conv && conv->options().activation == Activation::relu && dynamic_cast<const MaxPooling2D*>(&second);
  }
  std::string type() const override { return "Conv2D+MaxPooling2D"; }
  std::string base_name() const override { return "conv2d+max_pooling2d"; }
  Shape output_shape(const Shape& x) const override { return pool_.output_shape(conv_.output_shape(x)); }
  ConstView forward(const Tensor& x) override {
    ensure_shape(y_, output_shape(x.shape()));
    conv2d_relu_maxpool_forward(x, conv_.kernel.value, conv_.bias.value, pool_.options().pool,
                                conv_.options().variant, y_, where_);
    return y_;
  }
  // The Conv2D's, which this step writes the gradients of.
  std::vector<Parameter*> parameters() override { return conv_.parameters(); }
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx) override {
    conv2d_relu_maxpool_backward(x, conv_.kernel.value, y, where_, dy, pool_.options().pool, conv_.options().variant,
                                 conv_.kernel.grad, conv_.bias.grad, need_dx ? &dx_ : nullptr);
    return need_dx ? ConstView(dx_) : ConstView();
  }

 private:
  Conv2D& conv_;
  MaxPooling2D& pool_;
  Tensor y_, dx_;
  std::vector<std::uint8_t> where_;  // the position of each maximum in its window
};

// A shape with a batch axis of n in front of a sample shape.
Shape with_batch(std::size_t n, const Shape& sample) {
  std::array<std::size_t, Shape::kMaxRank> dims{n};
  if (sample.rank() + 1 > Shape::kMaxRank) throw Error(fmt::format("input shape {} has too many axes", sample.str()));
  std::copy(sample.dims().begin(), sample.dims().end(), dims.begin() + 1);
  return Shape(std::span(dims.data(), sample.rank() + 1));
}

// "(None, 26, 26, 32)": Keras's way to print a shape whose batch size is open.
std::string keras_shape(const Shape& s) {
  std::string out = "(None";
  for (std::size_t i = 1; i < s.rank(); ++i) out += fmt::format(", {}", s[i]);
  return out + ")";
}

// Items [first, first + count) of x, in the order `index` gives, into `out`.
void gather(const Tensor& x, std::span<const std::size_t> index, Tensor& out) {
  const std::size_t item = x.size() / x.dim(0);
  for (std::size_t i = 0; i < index.size(); ++i)
    std::copy(x.data() + index[i] * item, x.data() + (index[i] + 1) * item, out.data() + i * item);
}

}  // namespace

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

// [snippet plan]
const std::vector<Layer*>& Sequential::execution_plan() {
  if (!plan_.empty() || layers_.empty()) return plan_;
  fused_.clear();
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (fusion_ && i + 1 < layers_.size() && FusedConvPool::applies(*layers_[i], *layers_[i + 1])) {
      auto& conv = static_cast<Conv2D&>(*layers_[i]);
      auto& pool = static_cast<MaxPooling2D&>(*layers_[i + 1]);
      fused_.push_back(std::make_unique<FusedConvPool>(conv, pool));  // one step for the pair
      plan_.push_back(fused_.back().get());
      ++i;
    } else {
      plan_.push_back(layers_[i].get());
    }
  }
  first_trainable_ = plan_.size();
  for (std::size_t i = 0; i < plan_.size() && first_trainable_ == plan_.size(); ++i)
    for (const Parameter* p : plan_[i]->parameters())
      if (p->trainable) first_trainable_ = i;
  return plan_;
}
// [end snippet plan]

std::vector<std::string> Sequential::plan() {
  std::vector<std::string> names;
  for (const Layer* step : execution_plan()) names.push_back(step->name);
  return names;
}

void Sequential::compile(std::unique_ptr<Optimizer> optimizer) {
  if (layers_.empty()) throw Error("compile: the model has no layers");
  const Shape out = output_shape(1);
  if (out.rank() != 2) throw Error(fmt::format("compile: the last layer's output {} is not (None, classes)", keras_shape(out)));
  if (!optimizer) throw Error("compile: no optimizer (a null pointer)");
  optimizer_ = std::move(optimizer);
  execution_plan();
}

std::size_t Sequential::param_count() const {
  std::size_t n = 0;
  for (const auto& l : layers_) n += l->param_count();
  return n;
}

std::size_t Sequential::trainable_param_count() const {
  std::size_t n = 0;
  for (const auto& l : layers_)
    for (const Parameter* p : l->parameters()) n += p->trainable ? p->size() : 0;
  return n;
}

namespace {

// One row of tf.keras 2.x's summary table (print_row in its layer_utils): the
// fields end at columns 29, 55 and 65 of a 65-column line; each field starts
// where the previous one ended, the last character before it always a space,
// and a field too long for its column is cut ("max_pooling2d_1 (MaxPooling2D)"
// shows as "max_pooling2d_1 (MaxPooling2"). Keras also pads the last field
// with spaces to column 65; those trailing spaces are left out here.
std::string summary_row(const std::array<std::string, 3>& fields) {
  constexpr std::array<std::size_t, 3> ends = {29, 55, 65};  // int(65 * p) for p in (.45, .85, 1.)
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line.back() = ' ';
    line += fields[i];
    line.resize(i + 1 < fields.size() ? ends[i] : std::min(line.size(), ends[i]), ' ');  // cut, or pad
  }
  return line + "\n";
}

}  // namespace

std::string Sequential::summary() const {
  // [snippet summary]
  const std::string rule(65, '_'), double_rule(65, '=');
  std::string s = "Model: \"sequential\"\n" + rule + "\n";
  s += summary_row({"Layer (type)", "Output Shape", "Param #"}) + double_rule + "\n";
  Shape shape = with_batch(1, input_shape_);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    shape = layers_[i]->output_shape(shape);
    s += summary_row({fmt::format("{} ({})", layers_[i]->name, layers_[i]->type()), keras_shape(shape),
                      std::to_string(layers_[i]->param_count())});
    s += (i + 1 < layers_.size() ? rule : double_rule) + "\n";
  }
  // [end snippet summary]
  const auto grouped = [](std::size_t n) {  // 542230 -> 542,230
    const std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return out;
  };
  const std::size_t total = param_count(), trainable = trainable_param_count();
  s += fmt::format("Total params: {}\nTrainable params: {}\nNon-trainable params: {}\n{}\n", grouped(total),
                   grouped(trainable), grouped(total - trainable), rule);
  return s;
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

double Sequential::compute_gradients(const Tensor& x, const Tensor& y) {
  check_data("compute_gradients", x, &y);
  return backprop(x, y, nullptr);
}

double Sequential::backprop(const Tensor& x, const Tensor& y, Optimizer* update) {
  // [snippet backprop]
  const ConstView z = logits(x, /*training=*/true);     // forward through every layer
  ensure_shape(p_, z.shape());
  softmax(z, p_);
  const double loss = softmax_crossentropy(z, y);       // from the logits, as Keras does
  last_correct_ = correct_count(p_, y);
  if (update && !std::isfinite(loss)) return loss;      // no step from a NaN: the caller decides what to do
  ensure_shape(dz_, z.shape());
  softmax_crossentropy_backward(p_, y, dz_);            // (p - y) / N: its exact gradient
  ConstView grad = dz_;
  const std::vector<Layer*>& steps = execution_plan();
  if (update) update->begin_step(parameters());         // a training step: the layers update as they go
  // Backward, last step first, down to the first step with weights: the
  // gradient of its input (the image, or a step without weights in front,
  // such as RandomTranslation) is never used, so it is not computed.
  for (std::size_t i = steps.size(); i-- > first_trainable_;) {
    const bool need_dx = i > first_trainable_;
    grad = update ? steps[i]->backward_and_update(activations_[i], activations_[i + 1], grad, need_dx, *update)
                  : steps[i]->backward(activations_[i], activations_[i + 1], grad, need_dx);
  }
  // [end snippet backprop]
  return loss;
}

double Sequential::train_on_batch(const Tensor& x, const Tensor& y, std::size_t* correct) {
  if (!optimizer_) throw Error("train_on_batch: call compile() first");
  check_data("train_on_batch", x, &y);
  const double loss = backprop(x, y, optimizer_.get());
  if (correct) *correct = last_correct_;
  return loss;
}

std::string progress_line(std::size_t done, std::size_t total, double elapsed, double loss, double accuracy,
                          bool finished) {
  const std::size_t width = 30;
  const std::size_t filled = total == 0 ? width : done * width / total;
  std::string bar(width, '.');
  for (std::size_t i = 0; i < filled; ++i) bar[i] = '=';
  if (filled < width && done > 0) bar[filled] = '>';
  std::string timing;
  if (finished) {
    const double per_step = done ? elapsed / static_cast<double>(done) : 0.0;
    timing = per_step >= 1e-3 ? fmt::format("{:.0f}s {:.0f}ms/step", elapsed, per_step * 1e3)
                              : fmt::format("{:.0f}s {:.0f}us/step", elapsed, per_step * 1e6);
  } else {
    const double eta = done ? elapsed / static_cast<double>(done) * static_cast<double>(total - done) : 0.0;
    timing = fmt::format("ETA: {:.0f}s", eta);
  }
  const int digits = static_cast<int>(std::to_string(total).size());
  return fmt::format("{:>{}}/{} [{}] - {} - loss: {:.4f} - accuracy: {:.4f}", done, digits, total, bar, timing, loss,
                     accuracy);
}

std::size_t split_for_validation(std::size_t n, double validation_split) {
  // [snippet split-for-validation]
  if (!(validation_split >= 0.0 && validation_split < 1.0))
    throw Error(fmt::format("validation_split {} is outside [0, 1)", validation_split));
  const auto train = static_cast<std::size_t>(std::floor(static_cast<double>(n) * (1.0 - validation_split)));
  if (train == 0 || train == n)
    throw Error(fmt::format("validation_split {} of {} samples leaves {} to train and {} to validate: both need at "
                            "least one",
                            validation_split, n, train, n - train));
  return train;
  // [end snippet split-for-validation]
}

History Sequential::fit(const Tensor& x, const Tensor& y, const FitOptions& o) {
  check_data("fit", x, &y);
  if (!optimizer_) throw Error("fit: call compile() first");
  if (o.batch_size == 0) throw Error("fit: batch_size must be at least 1");
  if (o.epochs < 0) throw Error("fit: epochs must be >= 0");
  if (x.dim(0) == 0) throw Error(fmt::format("fit: the training set is empty (x has shape {})", x.shape().str()));
  if (o.validation_split != 0.0 && (o.x_val || o.y_val))
    throw Error("fit: give validation data (x_val, y_val) or a validation_split, not both");
  // [snippet validation-split]
  // validation_split: the last part of x and y validates, cut before any
  // shuffling; the shuffles and the batches below see only the first n.
  const std::size_t n = o.validation_split == 0.0 ? x.dim(0) : split_for_validation(x.dim(0), o.validation_split);
  ConstView x_split, y_split;  // views of the held-out part: no copies
  if (n < x.dim(0)) {
    x_split = x.batch_view(n, x.dim(0) - n);
    y_split = y.batch_view(n, y.dim(0) - n);
  }
  // [end snippet validation-split]
  const Tensor* x_val = n < x.dim(0) ? &x_split.tensor() : o.x_val;
  const Tensor* y_val = n < x.dim(0) ? &y_split.tensor() : o.y_val;
  if (x_val && y_val) {  // checked now, not after the first epoch's work
    check_data("fit (validation data)", *x_val, y_val);
    if (x_val->dim(0) == 0)
      throw Error(fmt::format("fit: the validation set is empty (x_val has shape {})", x_val->shape().str()));
  }
  const std::size_t batches = batches_per_epoch(n, o.batch_size);  // 60000 / 32 = 1875
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  // The weights at the end of the last completed epoch: what a NaN falls back to.
  std::vector<Tensor> good;
  auto snapshot = [&] {
    good.clear();
    for (const Parameter* p : parameters()) good.push_back(p->value);
  };
  auto restore = [&] {
    auto params = parameters();
    for (std::size_t i = 0; i < params.size(); ++i) params[i]->value = good[i];
  };
  snapshot();
  History h;
  using clock = std::chrono::steady_clock;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    if (o.max_steps >= 0 && h.steps >= static_cast<std::size_t>(o.max_steps)) break;
    if (o.progress) *o.progress << fmt::format("Epoch {}/{}\n", epoch, o.epochs) << std::flush;
    // [snippet shuffle]
    if (o.shuffle)  // Fisher-Yates, so that the order depends only on the seed
      for (std::size_t i = n - 1; i > 0; --i) std::swap(order[i], order[std::uniform_int_distribution<std::size_t>(0, i)(rng)]);
    // [end snippet shuffle]
    const auto start = clock::now();
    auto last_draw = start;
    double loss_sum = 0;  // summed over samples, as Keras's running mean is
    std::size_t correct_sum = 0, seen = 0, step = 0;
    Tensor xb, yb;
    for (; step < batches; ++step) {
      if (o.interrupt && o.interrupt->load()) {
        restore();  // the weights of the last completed epoch, the ones saved
        h.interrupted = true;
        h.stopped = fmt::format("interrupted during epoch {}; the weights were reset to those of {}", epoch,
                                h.epochs.empty() ? "the start" : fmt::format("the end of epoch {}", h.epochs.size()));
        break;
      }
      if (o.max_steps >= 0 && h.steps >= static_cast<std::size_t>(o.max_steps)) {
        h.stopped = fmt::format("stopped after --max-steps {} batches", o.max_steps);
        break;
      }
      const std::size_t first = step * o.batch_size, count = std::min(o.batch_size, n - first);
      if (xb.rank() == 0 || xb.dim(0) != count) {  // a new shape only for the last, partial batch
        xb = Tensor(with_batch(count, Shape(std::span(x.shape().dims()).subspan(1))));
        yb = Tensor({count, y.dim(1)});
      }
      gather(x, std::span(order).subspan(first, count), xb);
      gather(y, std::span(order).subspan(first, count), yb);
      std::size_t correct = 0;
      const double loss = train_on_batch(xb, yb, &correct);
      if (!std::isfinite(loss)) {
        restore();
        h.nan_loss = true;
        h.stopped = fmt::format("the loss became {} at epoch {}, batch {}; training stopped and the weights were "
                                "reset to those of {}",
                                loss, epoch, step + 1,
                                h.epochs.empty() ? "the start" : fmt::format("the end of epoch {}", h.epochs.size()));
        break;
      }
      ++h.steps;
      if (o.on_batch_end) o.on_batch_end(h.steps);
      loss_sum += loss * static_cast<double>(count);
      correct_sum += correct;
      seen += count;
      if (o.progress && o.live && clock::now() - last_draw > std::chrono::milliseconds(100)) {
        last_draw = clock::now();
        *o.progress << '\r'
                    << progress_line(step + 1, batches, std::chrono::duration<double>(last_draw - start).count(),
                                     loss_sum / seen, static_cast<double>(correct_sum) / seen, false)
                    << std::flush;
      }
    }
    if (!h.stopped.empty() && (h.nan_loss || h.interrupted)) {
      if (o.progress) *o.progress << "\n";
      break;
    }
    EpochLog log;
    log.steps = step;
    log.seconds = std::chrono::duration<double>(clock::now() - start).count();
    log.loss = seen ? loss_sum / seen : 0.0;
    log.accuracy = seen ? static_cast<double>(correct_sum) / seen : 0.0;
    if (o.progress)
      *o.progress << (o.live ? "\r" : "") << progress_line(step, batches, log.seconds, log.loss, log.accuracy, true);
    if (x_val && y_val) {
      Evaluation v = evaluate(*x_val, *y_val, o.batch_size);
      log.val_loss = v.loss;
      log.val_accuracy = v.accuracy;
      log.has_validation = true;
      if (o.progress) *o.progress << fmt::format(" - val_loss: {:.4f} - val_accuracy: {:.4f}", v.loss, v.accuracy);
    }
    if (o.progress) *o.progress << "\n" << std::flush;
    h.epochs.push_back(log);
    snapshot();
    if (o.on_epoch_end) o.on_epoch_end(epoch, log);
    if (!h.stopped.empty()) break;  // --max-steps ended this (partial) epoch
  }
  return h;
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
    loss_sum += softmax_crossentropy(z, yb) * static_cast<double>(count);  // from the logits, as Keras does
    correct += correct_count(softmax(z), yb);
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

// ---- The weights folder ------------------------------------------------------
//
// One .npy file per weight tensor, with Keras's names, and a manifest.txt
// written last that ties them into one set:
//
//   # Line by Line weights: load() checks every file against this list.
//   format 1
//   epoch 3
//   file conv2d.kernel.npy 1280 crc32 5f1c0a2b
//   ...
//
// The save swaps the whole folder in at once (nn::replace_folder_atomic), so a
// full disk or a kill never leaves a mix; the manifest catches a folder mixed
// by hand, or files from an older version that wrote no manifest. It also
// says what a later save may replace: the files it lists, and nothing else.
namespace {

constexpr const char* kManifest = "manifest.txt";
constexpr int kManifestFormat = 1;

std::uint32_t crc32_of(std::span<const std::uint8_t> bytes) {
  return static_cast<std::uint32_t>(::crc32_z(0L, bytes.data(), bytes.size()));  // zlib's CRC-32, as Python's zlib.crc32
}

struct ManifestEntry {
  std::uintmax_t bytes = 0;
  std::uint32_t crc = 0;
};

struct Manifest {
  int epoch = 0;
  std::map<std::string, ManifestEntry> files;
};

Error no_manifest(const std::filesystem::path& dir) {
  return Error(fmt::format("{}: no {}: not a complete set of weights saved by this version of the course (an older "
                           "version, or a save that never finished); save the weights again with ch10-fit",
                           dir.string(), kManifest));
}

// The manifest's text, read from `file`.
Manifest parse_manifest(const std::vector<std::uint8_t>& bytes, const std::filesystem::path& file) {
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  Manifest m;
  int format = -1;
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string key, name, crc_word, crc_hex, extra;
    bool ok = false;
    if (words >> key; key == "format") {
      ok = static_cast<bool>(words >> format);
    } else if (key == "epoch") {
      ok = static_cast<bool>(words >> m.epoch);
    } else if (key == "file") {
      ManifestEntry e;
      ok = words >> name >> e.bytes >> crc_word >> crc_hex && crc_word == "crc32" && crc_hex.size() == 8 &&
           crc_hex.find_first_not_of("0123456789abcdef") == std::string::npos;
      if (ok) e.crc = static_cast<std::uint32_t>(std::stoul(crc_hex, nullptr, 16));
      ok = ok && m.files.emplace(name, e).second;  // a name listed twice is malformed
    }
    if (!ok || words >> extra)
      throw Error(fmt::format("{}: line {} is malformed: '{}'", file.string(), line_no, line));
  }
  if (format != kManifestFormat)
    throw Error(fmt::format("{}: format {} is not the {} this version reads", file.string(), format, kManifestFormat));
  return m;
}

Manifest read_manifest(const std::filesystem::path& dir) {
  const auto file = dir / kManifest;
  std::error_code ec;
  const bool found = std::filesystem::exists(file, ec);
  if (ec) throw Error(fmt::format("{}: cannot look at it: {}", file.string(), ec.message()));
  if (!found) throw no_manifest(dir);
  return parse_manifest(read_file(file), file);
}

// The folder's identity: which directory its name points at, and when its
// entries last changed. A save that swaps in a new set changes it.
struct FolderId {
  dev_t device = 0;
  ino_t inode = 0;
  std::int64_t changed_ns = 0;
  bool operator==(const FolderId&) const = default;
};

FolderId folder_id(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, std::int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
}

// What a load reads from a folder, checked, before any of it goes into the model.
struct LoadedSet {
  int epoch = 0;
  std::vector<Tensor> tensors;  // in the order of the model's named_parameters()
};

LoadedSet read_set(const std::filesystem::path& dir, const std::vector<NamedParameter>& ws) {
  // Every file is opened before any is read: what is read is the set that was
  // in the folder at that moment, even if a save swaps in another meanwhile.
  FolderReader folder(dir);
  const bool has_manifest = folder.open(kManifest);
  for (const NamedParameter& w : ws) folder.open(w.name + ".npy");
  if (!has_manifest) throw no_manifest(dir);
  const Manifest manifest = parse_manifest(folder.read(kManifest), dir / kManifest);
  LoadedSet set{.epoch = manifest.epoch, .tensors = {}};
  for (const NamedParameter& w : ws) {
    const std::string name = w.name + ".npy";
    const auto file = dir / name;
    const auto listed = manifest.files.find(name);
    if (listed == manifest.files.end())
      throw Error(fmt::format("{}: lists no {}: the folder holds the weights of another model", (dir / kManifest).string(),
                              name));
    const auto bytes = folder.read(name);
    if (bytes.size() != listed->second.bytes || crc32_of(bytes) != listed->second.crc)
      throw Error(fmt::format("{}: does not match the manifest ({} bytes, crc32 {:08x}; it lists {} bytes, crc32 "
                              "{:08x}): the folder mixes files from different saves",
                              file.string(), bytes.size(), crc32_of(bytes), listed->second.bytes, listed->second.crc));
    Tensor t = decode_npy(bytes, file.string());  // the very bytes the checksum covered
    if (!(t.shape() == w.parameter->value.shape()))
      throw Error(fmt::format("{}: shape {} does not match the model's {} {}", file.string(), t.shape().str(), w.name,
                              w.parameter->value.shape().str()));
    const float* bad = std::find_if(t.data(), t.data() + t.size(), [](float v) { return !std::isfinite(v); });
    if (bad != t.data() + t.size())
      throw Error(fmt::format("{}: value {} is {}; these weights are not usable (training diverged?)", file.string(),
                              bad - t.data(), std::isnan(*bad) ? "NaN" : *bad > 0 ? "inf" : "-inf"));
    set.tensors.push_back(std::move(t));
  }
  for (const auto& listed : manifest.files) {  // every listed file was loaded above
    const std::string& name = listed.first;      // (clang 14 cannot capture a structured binding)
    if (std::none_of(ws.begin(), ws.end(), [&](const NamedParameter& w) { return w.name + ".npy" == name; }))
      throw Error(fmt::format("{}: lists {}, which the model has no weight for: the folder holds the weights of "
                              "another model",
                              (dir / kManifest).string(), name));
  }
  return set;
}

}  // namespace

void Sequential::save(const std::filesystem::path& dir, int epoch) {
  const std::vector<NamedParameter> ws = named_parameters();
  // A save replaces only what an earlier save wrote: the files its manifest
  // lists, whatever the layers call their weights. A folder without a
  // manifest is an older version's set (it wrote the same names, without a
  // manifest, and could leave a .npy.tmp) when it holds nothing else than
  // this model's weight files; anything else in a folder is the user's.
  auto foreign = [&](const std::filesystem::path& old, const std::vector<std::string>& files) -> std::string {
    std::set<std::string> written;
    const bool has_manifest = std::find(files.begin(), files.end(), kManifest) != files.end();
    if (has_manifest) {
      try {
        for (const auto& listed : read_manifest(old).files) written.insert(listed.first);
      } catch (const Error& e) {
        return fmt::format("holds a {} that does not read as a saved set's ({})", kManifest, e.what());
      }
      written.insert(kManifest);
    } else {
      for (const NamedParameter& w : ws) {
        written.insert(w.name + ".npy");
        written.insert(w.name + ".npy.tmp");
      }
    }
    for (const std::string& file : files)
      if (!written.count(file))
        return has_manifest ? fmt::format("holds {}, which its {} does not list", file, kManifest)
                            : fmt::format("holds {}, which is not a weight file of this model (and there is no {} "
                                          "to say a save wrote it)",
                                          file, kManifest);
    return "";
  };
  replace_folder_atomic(
      dir,
      [&](const std::filesystem::path& staging) {
        std::string manifest = fmt::format(
            "# Line by Line weights: load() checks every file against this list.\nformat {}\nepoch {}\n",
            kManifestFormat, epoch);
        for (const NamedParameter& w : ws) {
          const std::string file = w.name + ".npy";
          const std::vector<std::uint8_t> bytes = encode_npy(w.parameter->value);
          write_file_atomic(staging / file, bytes);
          manifest += fmt::format("file {} {} crc32 {:08x}\n", file, bytes.size(), crc32_of(bytes));
        }
        write_file_atomic(staging / kManifest, manifest);  // last: a set without it is incomplete
      },
      foreign);
}

int Sequential::load(const std::filesystem::path& dir) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(dir, ec);
  if (ec && status.type() != std::filesystem::file_type::not_found)
    throw Error(fmt::format("{}: cannot open the weights folder: {}", dir.string(), ec.message()));
  if (!std::filesystem::is_directory(status)) throw Error(fmt::format("{}: no such weights folder", dir.string()));
  // Read and check everything first, so that a bad file leaves the model
  // unchanged. Another process may swap in a new set while the files are
  // read: the checksums then catch a mix, the folder's identity tells that it
  // changed, and the load starts again on the new set.
  const std::vector<NamedParameter> ws = named_parameters();
  constexpr int kTries = 20;
  for (int attempt = 1;; ++attempt) {
    const FolderId before = folder_id(dir);
    try {
      LoadedSet set = read_set(dir, ws);
      for (std::size_t i = 0; i < ws.size(); ++i) ws[i].parameter->value = std::move(set.tensors[i]);
      return set.epoch;
    } catch (const Error&) {
      if (folder_id(dir) == before) throw;  // the same set all along: the error is the folder's
      if (attempt == kTries)
        throw Error(fmt::format("{}: a new set of weights was saved into it {} times while it was being read; load "
                                "it once the saving is done",
                                dir.string(), kTries));
    }
  }
}

Sequential make_mnist_model(std::uint64_t seed) {
  // [snippet mnist-model]
  Sequential model({28, 28, 1});
  model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::relu, .seed = seed}));  // -> (26, 26, 32)
  model.add(MaxPooling2D({.pool = 2}));                                                           // -> (13, 13, 32)
  model.add(Flatten());                                                                           // -> (5408,)
  model.add(Dense({.units = 100, .activation = Activation::relu, .seed = seed + 1}));                // -> (100,)
  model.add(Dense({.units = 10, .seed = seed + 2}));  // softmax comes with the loss
  // [end snippet mnist-model]
  return model;
}

}  // namespace nn
