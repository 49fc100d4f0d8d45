#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "model_internal.hpp"
#include "nn/error.hpp"
#include "nn/model.hpp"

// Sequential::fit: epochs of shuffled batches, Keras's progress lines,
// validation, and the fall-back to the last good weights.
namespace nn {

using model_impl::with_batch;

namespace {

// Items [first, first + count) of x, in the order `index` gives, into `out`.
void gather(const Tensor& x, std::span<const std::size_t> index, Tensor& out) {
  const std::size_t item = x.size() / x.dim(0);
  for (std::size_t i = 0; i < index.size(); ++i)
    std::copy(x.data() + index[i] * item, x.data() + (index[i] + 1) * item, out.data() + i * item);
}

}  // namespace

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
      const double loss = o.train_step ? o.train_step(xb, yb, &correct) : train_on_batch(xb, yb, &correct);
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

}  // namespace nn
