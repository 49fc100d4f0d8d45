// Chapter 10: model.compile(...); model.fit(x_train, y_train, epochs=10, batch_size=32)
//
// The whole walkthrough end to end: load and prepare the data (chapters
// 01-03), build the model (04-08), train it with an optimizer (09), evaluate
// it on the test set, save its weights as .npy files and plot its history.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"

namespace {

std::atomic<bool> interrupted{false};
extern "C" void on_sigint(int) { interrupted.store(true); }

std::string history_csv(const nn::History& h) {
  std::string csv = "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n";
  for (std::size_t e = 0; e < h.epochs.size(); ++e) {
    const auto& l = h.epochs[e];
    csv += fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f}\n", e + 1, l.loss, l.accuracy, l.val_loss,
                       l.val_accuracy, l.seconds);
  }
  return csv;
}

// `held_out`: what the second curve was measured on ("test" or "validation").
void plot_history(const nn::History& h, const std::filesystem::path& file, const std::string& held_out) {
  nn::plot::Png png(file, 1100, 440);
  auto& gp = png.gp();
  gp << "set multiplot layout 1,2 title " +
            nn::plot::quote(fmt::format("Training history (train: running mean over the epoch; {}: after the epoch)",
                                        held_out))
     << "\nset xlabel 'epoch'; set grid; set key top right; "
     << (h.epochs.size() <= 20 ? "set xtics 1\n" : "set xtics auto\n");
  for (int metric = 0; metric < 2; ++metric) {
    gp << (metric == 0 ? "set title 'loss'; set ylabel 'categorical cross-entropy'; set key top right\n"
                       : "set title 'accuracy'; set ylabel 'accuracy'; set key bottom right\n")
       << "plot '-' with linespoints pt 7 lw 2 title 'train', '-' with linespoints pt 7 lw 2 title "
       << nn::plot::quote(held_out) << "\n";
    for (int series = 0; series < 2; ++series) {
      for (std::size_t e = 0; e < h.epochs.size(); ++e) {
        const auto& l = h.epochs[e];
        const double v = metric == 0 ? (series == 0 ? l.loss : l.val_loss) : (series == 0 ? l.accuracy : l.val_accuracy);
        gp << fmt::format("{} {:.6f}\n", e + 1, v);
      }
      gp << "e\n";
    }
  }
  gp << "unset multiplot\n";
  png.finish();
}

// One learning rate of --lr-sweep: how its run ended.
struct SweepPoint {
  double lr = 0;
  nn::EpochLog last;       // the last completed epoch (train loss, validation)
  nn::Evaluation test;     // the test set after training
  std::string diverged;    // fit's message when the loss became NaN or infinite
};

// "0.001,0.01,1" -> {0.001, 0.01, 1}, sorted; every rate must be a number > 0.
std::vector<double> parse_rates(const std::string& list) {
  std::vector<double> rates;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    char* end = nullptr;
    const double rate = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !(rate > 0) || !std::isfinite(rate))
      throw nn::Error(fmt::format("--lr-sweep: '{}' is not a learning rate > 0 (give a list like 0.001,0.01,0.1)", item));
    rates.push_back(rate);
    start = comma + 1;
  }
  std::sort(rates.begin(), rates.end());  // each rate trains a fresh model: the order changes nothing
  return rates;
}

std::string sweep_csv(const std::vector<SweepPoint>& points) {
  std::string csv = "lr,loss,val_loss,val_accuracy,test_loss,test_accuracy,diverged\n";
  for (const auto& p : points)
    csv += p.diverged.empty() ? fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},0\n", p.lr, p.last.loss,
                                            p.last.val_loss, p.last.val_accuracy, p.test.loss, p.test.accuracy)
                              : fmt::format("{},nan,nan,nan,nan,nan,1\n", p.lr);
  return csv;
}

// Accuracy and loss against the learning rate, on a log axis; a rate whose
// loss became NaN or infinite has no point, only a "diverged" mark.
void plot_sweep(const std::vector<SweepPoint>& points, const std::filesystem::path& file, const std::string& setup,
                const std::string& held_out) {
  nn::plot::Png png(file, 1100, 440);
  auto& gp = png.gp();
  gp << "set multiplot layout 1,2 title "
     << nn::plot::quote("Learning-rate sweep: " + setup + ", a fresh model per rate, the same seed")
     << "\nset logscale x; set xlabel 'learning rate (log scale)'; set grid; set format x '%g'\n"
     << "set xrange [" << points.front().lr / 2 << ":" << points.back().lr * 2 << "]\n";
  for (int metric = 0; metric < 2; ++metric) {
    gp << "unset label\n";
    for (const auto& p : points)
      if (!p.diverged.empty())
        gp << fmt::format("set label 'diverged (NaN)' at {},graph 0.5 center rotate by 90 tc rgb 'red'\n", p.lr);
    if (metric == 0)
      gp << "set title 'accuracy after training'; set ylabel 'accuracy'; set yrange [0:1]; "
            "set key at graph 0.04,0.6 left top Left reverse\n"
         << "plot 0.1 with lines dt 3 lc rgb 'gray40' title 'chance (10%)', "
         << "'-' with linespoints pt 7 lw 2 title " << nn::plot::quote(held_out + " (after the last epoch)")
         << ", '-' with linespoints pt 6 lw 2 dt 2 title 'test (after fit)'\n";
    else
      gp << "set title 'loss at the end of training'; set ylabel 'categorical cross-entropy (log scale)'; "
            "set logscale y; set yrange [*:*]; set key default; set key top center\n"
         << "plot '-' with linespoints pt 7 lw 2 title 'train (running mean of the last epoch)', "
         << "'-' with linespoints pt 6 lw 2 dt 2 title " << nn::plot::quote(held_out) << "\n";
    for (int series = 0; series < 2; ++series) {
      for (const auto& p : points) {
        if (!p.diverged.empty()) continue;
        const double v = metric == 0 ? (series == 0 ? p.last.val_accuracy : p.test.accuracy)
                                     : (series == 0 ? p.last.loss : p.last.val_loss);
        gp << fmt::format("{} {:.6f}\n", p.lr, v);
      }
      gp << "e\n";
    }
  }
  gp << "unset multiplot\n";
  png.finish();
}

// --train-limit N: the first N training images and labels (N 0: all of them).
void limit_training_set(nn::Tensor& x_train, nn::Tensor& y_train, std::int64_t limit) {
  if (limit == 0) return;
  if (static_cast<std::size_t>(limit) > x_train.dim(0))
    throw nn::Error(fmt::format("--train-limit {} is more than the {} training images", limit, x_train.dim(0)));
  x_train = nn::slice_batch(x_train, 0, static_cast<std::size_t>(limit));
  y_train = nn::slice_batch(y_train, 0, static_cast<std::size_t>(limit));
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch10-fit", "Chapter 10: the whole Keras walkthrough: compile, fit for 10 epochs, evaluate, save.");
  nn::cli::Common common;
  cli.add_common(common);
  int epochs = 10, batch_size = 32, threads = 0;
  double lr = 0.0, momentum = 0.0;  // lr 0: the optimizer's Keras default
  std::string optimizer = "sgd";
  std::filesystem::path save = nn::cli::default_weights_dir(), load;
  bool no_save = false;
  std::optional<std::int64_t> max_steps;
  bool no_shuffle = false, nesterov = false;
  double validation_split = 0.0;
  std::int64_t train_limit = 0;
  std::string lr_sweep;
  cli.option("--epochs", "N", "passes over the 60,000 training images", &epochs, {0, 1000});
  cli.option("--batch-size", "N", "images per gradient step", &batch_size, {1, 60000});
  cli.option("--lr", "RATE", "learning rate (0: the optimizer's Keras default: sgd 0.01, adam and rmsprop 0.001)", &lr,
             {0, 1000});
  cli.option("--optimizer", "NAME", "sgd, adam or rmsprop", &optimizer);
  cli.option("--momentum", "M", "SGD momentum (0.9 is the common choice)", &momentum, {.min = 0, .max = 1, .open_max = true});
  cli.flag("--nesterov", "Nesterov momentum (with --momentum)", &nesterov);
  cli.option("--save", "DIR", "save the weights as .npy files after every epoch (chapter 11 loads them)", &save);
  cli.flag("--no-save", "do not save the weights", &no_save);
  cli.option("--load", "DIR", "start from the weights saved in DIR", &load);
  cli.option("--max-steps", "N", "stop after N batches (0: save the initial weights untouched)", &max_steps,
             "no limit", {0, 1'000'000'000});
  cli.flag("--no-shuffle", "keep the training order (Keras's shuffle=False)", &no_shuffle);
  cli.option("--threads", "N", "worker threads (0: one per core)", &threads, {0, 256});
  cli.option("--validation-split", "F",
             "hold out the last fraction F of the training images, before shuffling, and validate on them after "
             "every epoch (Keras's validation_split; 0: validate on the test set)",
             &validation_split, {.min = 0, .max = 1, .open_max = true});
  cli.option("--train-limit", "N", "use only the first N training images (0: all 60,000)", &train_limit,
             {0, 4294967295});
  cli.option("--lr-sweep", "RATES",
             "comma-separated learning rates: train a fresh model at each for --epochs, save nothing, and plot "
             "accuracy and loss against the rate (10-lr-sweep.png)",
             &lr_sweep);

  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    if (no_save) save.clear();
    const std::vector<double> sweep_rates = lr_sweep.empty() ? std::vector<double>{} : parse_rates(lr_sweep);
    if (!sweep_rates.empty()) save.clear();  // a sweep trains many models: none is "the" weights
    if (threads > 0) nn::set_thread_count(static_cast<std::size_t>(threads));
    const std::uint64_t seed = common.seed_or_random();
    std::signal(SIGINT, on_sigint);
    std::cout << nn::kernels_line() << "\n";  // with the seed, what decides the run's bits
    // --validation-split F: fit holds out the last F of the training images; else it validates on the test set.
    const bool split = validation_split > 0;
    const std::string held_out = split ? "validation" : "test";

    if (!sweep_rates.empty()) {  // --lr-sweep: one fresh model per rate, the same seed, data and batches
      nn::Mnist m = nn::load_mnist(common.data);
      nn::cli::require_images(common.data, m.x_test.shape[0], 1, "test set", "there is nothing to evaluate on");
      nn::Tensor x_train = nn::images_to_tensor(m.x_train), x_test = nn::images_to_tensor(m.x_test);
      nn::Tensor y_train = nn::one_hot(m.y_train.data), y_test = nn::one_hot(m.y_test.data);
      limit_training_set(x_train, y_train, train_limit);
      std::vector<SweepPoint> points;
      for (const double rate : sweep_rates) {
        nn::Sequential model = nn::make_mnist_model(seed);
        auto opt = nn::make_optimizer(optimizer, static_cast<float>(rate), static_cast<float>(momentum), nesterov);
        std::cout << "optimizer: " << opt->describe() << "\n";
        model.compile(std::move(opt));
        const nn::History h = model.fit(
            x_train, y_train,
            {.epochs = epochs, .batch_size = static_cast<std::size_t>(batch_size), .shuffle = !no_shuffle,
             .seed = seed, .max_steps = max_steps.value_or(-1), .progress = &std::cout, .live = isatty(STDOUT_FILENO) == 1,
             .x_val = split ? nullptr : &x_test, .y_val = split ? nullptr : &y_test,
             .validation_split = validation_split, .interrupt = &interrupted});
        if (h.interrupted) return 130;
        SweepPoint p;
        p.lr = rate;
        if (h.nan_loss) p.diverged = h.stopped;
        if (!h.epochs.empty()) p.last = h.epochs.back();
        if (p.diverged.empty()) p.test = model.evaluate(x_test, y_test, 32);
        if (p.diverged.empty() && !(std::isfinite(p.last.val_loss) && std::isfinite(p.test.loss)))
          p.diverged = fmt::format("the weights diverged: after training the {} loss is {} and the test loss {}",
                                   held_out, p.last.val_loss, p.test.loss);
        fmt::print("lr {}: {}\n", rate,
                   p.diverged.empty()
                       ? fmt::format("loss {:.4f}, {}_loss {:.4f}, {}_accuracy {:.4f}, test accuracy {:.4f}",
                                     p.last.loss, held_out, p.last.val_loss, held_out, p.last.val_accuracy,
                                     p.test.accuracy)
                       : p.diverged);
        points.push_back(p);
      }
      nn::create_folders(common.plots);
      nn::write_file_atomic(common.plots / "10-lr-sweep.csv", sweep_csv(points));
      plot_sweep(points, common.plots / "10-lr-sweep.png",
                 fmt::format("{}, batch {}, {} epoch{} per rate",
                             optimizer == "sgd" ? (momentum > 0 ? fmt::format("SGD, momentum {}", momentum) : "plain SGD")
                                                : optimizer,
                             batch_size, epochs, epochs == 1 ? "" : "s"),
                 held_out);
      fmt::print("Wrote {} and {}\n", (common.plots / "10-lr-sweep.csv").string(),
                 (common.plots / "10-lr-sweep.png").string());
      return 0;
    }

    // [snippet ch10-main]
    // The model and its optimizer first: a bad option or weights file fails before the data loads.
    nn::Sequential model = nn::make_mnist_model(seed);  // Conv2D, MaxPooling2D, Flatten, Dense, Dense
    if (!load.empty()) model.load(load);
    auto opt = nn::make_optimizer(optimizer, static_cast<float>(lr), static_cast<float>(momentum), nesterov);
    std::cout << "optimizer: " << opt->describe() << "\n";  // every setting, defaults included
    model.compile(std::move(opt));

    // (x_train, y_train), (x_test, y_test) = mnist.load_data(); reshape; / 255; to_categorical
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_test.shape[0], 1, "test set", "there is nothing to evaluate on");
    nn::Tensor x_train = nn::images_to_tensor(m.x_train), x_test = nn::images_to_tensor(m.x_test);
    nn::Tensor y_train = nn::one_hot(m.y_train.data), y_test = nn::one_hot(m.y_test.data);
    limit_training_set(x_train, y_train, train_limit);  // --train-limit N: the first N
    std::cout << model.summary();
    if (split)  // model.fit(..., validation_split=F): the last F of the training data, cut before shuffling
      fmt::print("Train on {} images, validate on the last {} of the {} (--validation-split {})\n",
                 nn::split_for_validation(x_train.dim(0), validation_split),
                 x_train.dim(0) - nn::split_for_validation(x_train.dim(0), validation_split), x_train.dim(0),
                 validation_split);

    nn::History history = model.fit(x_train, y_train,
                                     {.epochs = epochs, .batch_size = static_cast<std::size_t>(batch_size),
                                      .shuffle = !no_shuffle, .seed = seed, .max_steps = max_steps.value_or(-1),
                                      .progress = &std::cout, .live = isatty(STDOUT_FILENO) == 1,
                                      .x_val = split ? nullptr : &x_test, .y_val = split ? nullptr : &y_test,
                                      .validation_split = validation_split, .interrupt = &interrupted,
                                      .on_epoch_end = [&](int epoch, const nn::EpochLog&) {
                                        if (!save.empty()) model.save(save, epoch);  // the whole set or nothing
                                      }});
    nn::Evaluation test = model.evaluate(x_test, y_test, 32, &std::cout);
    // [end snippet ch10-main]
    fmt::print("seed {}, {} threads, {} batches trained\n", seed, nn::thread_count(), history.steps);
    // The images fit trained on: with --validation-split, only the first part.
    const std::size_t trained = split ? nn::split_for_validation(x_train.dim(0), validation_split) : x_train.dim(0);
    double train_seconds = 0;
    for (const auto& e : history.epochs) train_seconds += e.seconds;
    if (history.steps > 0)
      fmt::print("training time: {:.3f} s for {} batches of {}: {:.3f} ms per batch, {:.2f} s per epoch of {} batches\n",
                 train_seconds, history.steps, batch_size, 1e3 * train_seconds / static_cast<double>(history.steps),
                 train_seconds / static_cast<double>(history.steps) *
                     static_cast<double>(nn::batches_per_epoch(trained, static_cast<std::size_t>(batch_size))),
                 nn::batches_per_epoch(trained, static_cast<std::size_t>(batch_size)));
    fmt::print("peak memory (RSS): {:.0f} MB\n", nn::peak_rss_bytes() / 1e6);
    fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", test.loss, test.accuracy);

    if (!history.stopped.empty()) fmt::print("{}\n", history.stopped);
    // --max-steps 0 trains nothing and saves the initial (or loaded) weights untouched.
    if (!save.empty() && history.epochs.empty() && !history.nan_loss && !history.interrupted) model.save(save);
    if (!save.empty()) fmt::print("Weights in {}\n", save.string());

    if (!history.epochs.empty()) {
      nn::create_folders(common.plots);
      nn::write_file_atomic(common.plots / "10-history.csv", history_csv(history));
      plot_history(history, common.plots / "10-history.png", held_out);
      fmt::print("Wrote {} and {}\n", (common.plots / "10-history.csv").string(),
                 (common.plots / "10-history.png").string());
    }
    if (history.nan_loss) throw nn::Error(history.stopped);
    if (history.interrupted) {
      std::cerr << "ch10-fit: interrupted; the weights of the last completed epoch are kept\n";
      return 130;
    }
    return 0;
  });
}
