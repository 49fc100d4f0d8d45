// Chapter 10: model.compile(...); model.fit(x_train, y_train, epochs=10, batch_size=32)
//
// The whole walkthrough end to end: load and prepare the data (chapters
// 01-03), build the model (04-08), train it with an optimizer (09), evaluate
// it on the test set, save its weights as .npy files and plot its history.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

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

void plot_history(const nn::History& h, const std::filesystem::path& file) {
  nn::plot::Png png(file, 1100, 440);
  auto& gp = png.gp();
  gp << "set multiplot layout 1,2 title 'Training history (train: running mean over the epoch; test: after the epoch)'\n"
     << "set xlabel 'epoch'; set grid; set key top right; set xtics 1\n";
  for (int metric = 0; metric < 2; ++metric) {
    gp << (metric == 0 ? "set title 'loss'; set ylabel 'categorical cross-entropy'; set key top right\n"
                       : "set title 'accuracy'; set ylabel 'accuracy'; set key bottom right\n")
       << "plot '-' with linespoints pt 7 lw 2 title 'train', '-' with linespoints pt 7 lw 2 title 'test'\n";
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
  std::int64_t max_steps = -1;
  bool no_shuffle = false, nesterov = false;
  cli.option("--epochs", "N", "passes over the 60,000 training images", &epochs);
  cli.option("--batch-size", "N", "images per gradient step", &batch_size);
  cli.option("--lr", "RATE", "learning rate (0: the optimizer's Keras default: sgd 0.01, adam and rmsprop 0.001)", &lr);
  cli.option("--optimizer", "NAME", "sgd, adam or rmsprop", &optimizer);
  cli.option("--momentum", "M", "SGD momentum (0.9 is the common choice)", &momentum);
  cli.flag("--nesterov", "Nesterov momentum (with --momentum)", &nesterov);
  cli.option("--save", "DIR", "save the weights as .npy files after every epoch (chapter 11 loads them)", &save);
  cli.flag("--no-save", "do not save the weights", &no_save);
  cli.option("--load", "DIR", "start from the weights saved in DIR", &load);
  cli.option("--max-steps", "N", "stop after N batches (0: save the initial weights untouched)", &max_steps);
  cli.flag("--no-shuffle", "keep the training order (Keras's shuffle=False)", &no_shuffle);
  cli.option("--threads", "N", "worker threads (0: one per core)", &threads);

  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    if (no_save) save.clear();
    if (epochs < 0) throw nn::Error(fmt::format("--epochs {} must be >= 0", epochs));
    if (batch_size < 1) throw nn::Error(fmt::format("--batch-size {} must be at least 1", batch_size));
    if (threads < 0 || threads > 256) throw nn::Error(fmt::format("--threads {} is outside 0..256", threads));
    if (!(lr >= 0)) throw nn::Error(fmt::format("--lr {} must be >= 0", lr));
    if (threads > 0) nn::set_thread_count(static_cast<std::size_t>(threads));
    const std::uint64_t seed = common.seed_or_random();
    std::signal(SIGINT, on_sigint);

    // [snippet ch10-main]
    // The model and its optimizer first: a bad option or weights file fails before the data loads.
    nn::Sequential model = nn::make_mnist_model(seed);  // Conv2D, MaxPooling2D, Flatten, Dense, Dense
    if (!load.empty()) model.load(load);
    auto opt = nn::make_optimizer(optimizer, static_cast<float>(lr), static_cast<float>(momentum), nesterov);
    std::cout << "optimizer: " << opt->describe() << "\n";  // every setting, defaults included
    model.compile(std::move(opt));

    // (x_train, y_train), (x_test, y_test) = mnist.load_data(); reshape; / 255; to_categorical
    nn::Mnist m = nn::load_mnist(common.data);
    nn::Tensor x_train = nn::images_to_tensor(m.x_train), x_test = nn::images_to_tensor(m.x_test);
    nn::Tensor y_train = nn::one_hot(m.y_train.data), y_test = nn::one_hot(m.y_test.data);
    std::cout << model.summary();

    nn::History history = model.fit(x_train, y_train,
                                     {.epochs = epochs, .batch_size = static_cast<std::size_t>(batch_size),
                                      .shuffle = !no_shuffle, .seed = seed, .max_steps = max_steps,
                                      .progress = &std::cout, .live = isatty(STDOUT_FILENO) == 1,
                                      .x_val = &x_test, .y_val = &y_test, .interrupt = &interrupted,
                                      .on_epoch_end = [&](int epoch, const nn::EpochLog&) {
                                        if (!save.empty()) model.save(save, epoch);  // the whole set or nothing
                                      }});
    nn::Evaluation test = model.evaluate(x_test, y_test, 32, &std::cout);
    // [end snippet ch10-main]
    fmt::print("seed {}, {} threads, {} batches trained\n", seed, nn::thread_count(), history.steps);
    double train_seconds = 0;
    for (const auto& e : history.epochs) train_seconds += e.seconds;
    if (history.steps > 0)
      fmt::print("training time: {:.3f} s for {} batches of {}: {:.3f} ms per batch, {:.2f} s per epoch of {} batches\n",
                 train_seconds, history.steps, batch_size, 1e3 * train_seconds / static_cast<double>(history.steps),
                 train_seconds / static_cast<double>(history.steps) *
                     static_cast<double>(nn::batches_per_epoch(x_train.dim(0), static_cast<std::size_t>(batch_size))),
                 nn::batches_per_epoch(x_train.dim(0), static_cast<std::size_t>(batch_size)));
    fmt::print("peak memory (RSS): {:.0f} MB\n", nn::peak_rss_bytes() / 1e6);
    fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", test.loss, test.accuracy);

    if (!history.stopped.empty()) fmt::print("{}\n", history.stopped);
    // --max-steps 0 trains nothing and saves the initial (or loaded) weights untouched.
    if (!save.empty() && history.epochs.empty() && !history.nan_loss && !history.interrupted) model.save(save);
    if (!save.empty()) fmt::print("Weights in {}\n", save.string());

    if (!history.epochs.empty()) {
      std::filesystem::create_directories(common.plots);
      nn::write_file_atomic(common.plots / "10-history.csv", history_csv(history));
      plot_history(history, common.plots / "10-history.png");
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
