// Chapter 12: beyond the Keras program. Keras's "Simple MNIST convnet"
// (keras.io/examples/vision/mnist_convnet) on the same library, then a ladder
// of well-known steps past 99.4%:
//
//   --step sgd        the course's model, SGD(0.01), batch 32, 10 epochs (chapter 10)
//   --step momentum   the same with momentum 0.9
//   --step convnet    the keras.io convnet as published: Adam, batch 128, 15 epochs, validation_split 0.1
//   --step augment    + RandomTranslation(2/28, 2/28) in front, on the fly per batch
//   --step schedule   + a cosine learning-rate decay over the training
//   --step best       augment + schedule from lr 0.002, 40 epochs
//   --step batchnorm  the convnet with BatchNormalization after each Conv2D (a rung that branches from convnet)
//
// Every step prints the Keras code it stands for, trains, evaluates on the
// test set, and ends with one `result` line that chapters/12-beyond/ladder.sh
// collects into the chapter's table and figure.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nn/onnx_export.hpp"
#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/mnist.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"

namespace {

std::atomic<bool> interrupted{false};
extern "C" void on_sigint(int) { interrupted.store(true); }

// One rung of the ladder: what it trains, and the Keras code it stands for.
struct Step {
  std::string name;
  std::string title;        // for the table and the figure
  std::string keras;        // the Keras lines of the step
  std::string keras_short;  // its one change, for the table
  bool convnet = true;      // the keras.io convnet, else the course's model
  bool augment = false;     // RandomTranslation in front
  bool batchnorm = false;   // BatchNormalization after each Conv2D of the convnet
  bool cosine = false;      // CosineDecay of the learning rate over all the training steps
  std::string optimizer = "adam";
  double learning_rate = 0.0;  // 0: the optimizer's Keras default
  double momentum = 0.0;
  int epochs = 15;
  int batch_size = 128;
  double validation_split = 0.1;
};

const std::vector<Step>& steps() {
  static const std::vector<Step> all = {
      {.name = "sgd",
       .title = "course model, SGD",
       .keras = "model = <the course's model>  # chapters 04-08\n"
                "model.compile(optimizer=SGD(learning_rate=0.01), loss=\"categorical_crossentropy\")\n"
                "model.fit(x_train, y_train, batch_size=32, epochs=10)",
       .keras_short = "`SGD(learning_rate=0.01)`, `batch_size=32, epochs=10`",
       .convnet = false, .optimizer = "sgd", .epochs = 10, .batch_size = 32, .validation_split = 0.0},
      {.name = "momentum",
       .title = "course model, SGD + momentum 0.9",
       .keras = "model.compile(optimizer=SGD(learning_rate=0.01, momentum=0.9), ...)\n"
                "model.fit(x_train, y_train, batch_size=32, epochs=10)",
       .keras_short = "`SGD(learning_rate=0.01, momentum=0.9)`",
       .convnet = false, .optimizer = "sgd", .momentum = 0.9, .epochs = 10, .batch_size = 32,
       .validation_split = 0.0},
      {.name = "convnet",
       .title = "keras.io convnet",
       .keras = "model = keras.Sequential([\n"
                "    keras.Input(shape=(28, 28, 1)),\n"
                "    layers.Conv2D(32, kernel_size=(3, 3), activation=\"relu\"),\n"
                "    layers.MaxPooling2D(pool_size=(2, 2)),\n"
                "    layers.Conv2D(64, kernel_size=(3, 3), activation=\"relu\"),\n"
                "    layers.MaxPooling2D(pool_size=(2, 2)),\n"
                "    layers.Flatten(),\n"
                "    layers.Dropout(0.5),\n"
                "    layers.Dense(10, activation=\"softmax\")])\n"
                "model.compile(loss=\"categorical_crossentropy\", optimizer=\"adam\", metrics=[\"accuracy\"])\n"
                "model.fit(x_train, y_train, batch_size=128, epochs=15, validation_split=0.1)",
       .keras_short = "Conv2D(32)-Pool-Conv2D(64)-Pool-Flatten-`Dropout(0.5)`-Dense(10); `\"adam\"`, "
                      "`batch_size=128, epochs=15, validation_split=0.1`"},
      {.name = "augment",
       .title = "+ random shifts",
       .keras = "model = keras.Sequential([\n"
                "    keras.Input(shape=(28, 28, 1)),\n"
                "    layers.RandomTranslation(2 / 28, 2 / 28),  # up to 2 pixels each way, in training only\n"
                "    layers.Conv2D(32, kernel_size=(3, 3), activation=\"relu\"),\n"
                "    ...  # the convnet above\n"
                "])",
       .keras_short = "`layers.RandomTranslation(2 / 28, 2 / 28)` in front",
       .augment = true},
      {.name = "schedule",
       .title = "+ random shifts + cosine decay",
       .keras = "steps = 15 * 422  # epochs * batches per epoch\n"
                "optimizer = keras.optimizers.Adam(\n"
                "    learning_rate=keras.optimizers.schedules.CosineDecay(0.001, decay_steps=steps))\n"
                "model.compile(loss=\"categorical_crossentropy\", optimizer=optimizer, metrics=[\"accuracy\"])",
       .keras_short = "`Adam(learning_rate=CosineDecay(0.001, decay_steps=epochs * 422))`",
       .augment = true, .cosine = true},
      {.name = "best",
       .title = "+ random shifts + cosine decay, 40 epochs",
       .keras = "steps = 40 * 422\n"
                "optimizer = keras.optimizers.Adam(\n"
                "    learning_rate=keras.optimizers.schedules.CosineDecay(0.002, decay_steps=steps))\n"
                "model.fit(x_train, y_train, batch_size=128, epochs=40, validation_split=0.1)",
       .keras_short = "`CosineDecay(0.002, ...)`, `epochs=40`",
       .augment = true, .cosine = true, .learning_rate = 0.002, .epochs = 40},
      {.name = "batchnorm",
       .title = "convnet + BatchNormalization",
       .keras = "model = keras.Sequential([\n"
                "    keras.Input(shape=(28, 28, 1)),\n"
                "    layers.Conv2D(32, kernel_size=(3, 3), activation=\"relu\"),\n"
                "    layers.BatchNormalization(),\n"
                "    layers.MaxPooling2D(pool_size=(2, 2)),\n"
                "    layers.Conv2D(64, kernel_size=(3, 3), activation=\"relu\"),\n"
                "    layers.BatchNormalization(),\n"
                "    ...  # the convnet above\n"
                "])",
       .keras_short = "`layers.BatchNormalization()` after each Conv2D of the convnet",
       .batchnorm = true},
  };
  return all;
}

const Step& find_step(const std::string& name) {
  std::string names;
  for (const auto& s : steps()) {
    if (s.name == name) return s;
    names += (names.empty() ? "" : ", ") + s.name;
  }
  throw nn::Error(fmt::format("--step '{}' is not a step; the steps are: {}", name, names));
}

// The keras.io convnet, with the library's layers, seeded from `seed`.
// [snippet keras-io-convnet]
nn::Sequential keras_io_convnet(std::uint64_t seed, bool augment) {
  nn::Sequential model({28, 28, 1});
  if (augment)  // layers.RandomTranslation(2 / 28, 2 / 28): shifts of up to 2 pixels, in training only
    model.add(nn::RandomTranslation({.height_factor = 2.0 / 28, .width_factor = 2.0 / 28, .seed = seed + 4}));
  model.add(nn::Conv2D({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = seed}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Conv2D({.filters = 64, .kernel = 3, .activation = nn::Activation::relu, .seed = seed + 1}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Flatten());
  model.add(nn::Dropout({.rate = 0.5, .seed = seed + 2}));
  model.add(nn::Dense({.units = 10, .seed = seed + 3}));  // softmax: in the loss
  return model;
}
// [end snippet keras-io-convnet]

// The convnet with BatchNormalization() after each convolution (and its ReLU),
// before the pooling: the Conv2D and the MaxPooling2D are then no longer
// neighbours, so the plan does not fuse them.
nn::Sequential convnet_with_batchnorm(std::uint64_t seed) {
  nn::Sequential model({28, 28, 1});
  model.add(nn::Conv2D({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = seed}));
  model.add(nn::BatchNormalization());  // built by add for the 32 channels
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Conv2D({.filters = 64, .kernel = 3, .activation = nn::Activation::relu, .seed = seed + 1}));
  model.add(nn::BatchNormalization());
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Flatten());
  model.add(nn::Dropout({.rate = 0.5, .seed = seed + 2}));
  model.add(nn::Dense({.units = 10, .seed = seed + 3}));
  return model;
}

// ---- The ladder's table and figure, from the result lines of ladder.sh --------

struct Result {
  std::string step;
  double seconds = 0, accuracy = 0;
};

// The `result` lines ch12-beyond prints ("result step=convnet seed=1 ... train_seconds=88.10 test_accuracy=0.9912 ..."),
// one per run, as ladder.sh collects them.
std::vector<Result> read_results(const std::filesystem::path& file) {
  const std::vector<std::uint8_t> bytes = nn::read_file(file);
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  std::vector<Result> results;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.rfind("result ", 0) != 0) continue;
    std::map<std::string, std::string> fields;
    std::istringstream words(line.substr(7));
    std::string word;
    while (words >> word) {
      const auto eq = word.find('=');
      if (eq != std::string::npos) fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
    try {
      results.push_back({find_step(fields.at("step")).name, std::stod(fields.at("train_seconds")),
                         std::stod(fields.at("test_accuracy"))});
    } catch (const std::exception& e) {
      throw nn::Error(fmt::format("{}:{}: not a result line of ch12-beyond ({}): {}", file.string(), number, e.what(),
                                  line));
    }
  }
  if (results.empty()) throw nn::Error(fmt::format("{}: no result lines (run chapters/12-beyond/ladder.sh)", file.string()));
  return results;
}

struct Summary {
  const Step* step = nullptr;
  std::size_t runs = 0;
  double mean_accuracy = 0, min_accuracy = 1, max_accuracy = 0, mean_seconds = 0;
};

std::vector<Summary> summarize(const std::vector<Result>& results) {
  std::vector<Summary> out;
  for (const auto& step : steps()) {
    Summary s{.step = &step};
    for (const auto& r : results) {
      if (r.step != step.name) continue;
      ++s.runs;
      s.mean_accuracy += r.accuracy;
      s.mean_seconds += r.seconds;
      s.min_accuracy = std::min(s.min_accuracy, r.accuracy);
      s.max_accuracy = std::max(s.max_accuracy, r.accuracy);
    }
    if (s.runs == 0) continue;
    s.mean_accuracy /= static_cast<double>(s.runs);
    s.mean_seconds /= static_cast<double>(s.runs);
    out.push_back(s);
  }
  return out;
}

std::string ladder_table(const std::vector<Summary>& rows) {
  std::string t =
      "| step | test accuracy, mean (min–max) | runs | training time, mean | Keras |\n|---|---|---|---|---|\n";
  for (const auto& r : rows)
    t += fmt::format("| `--step {}`: {} | **{:.2f}%** ({:.2f}–{:.2f}) | {} | {:.0f} s | {} |\n", r.step->name,
                     r.step->title, 100 * r.mean_accuracy, 100 * r.min_accuracy, 100 * r.max_accuracy, r.runs,
                     r.mean_seconds, r.step->keras_short);
  return t;
}

void plot_ladder(const std::vector<Result>& results, const std::vector<Summary>& rows,
                 const std::filesystem::path& file) {
  nn::plot::Png png(file, 1000, 560);
  auto& gp = png.gp();
  gp << "set title 'The ladder: test accuracy against training time (each run a dot, the mean a cross)'\n"
     << "set xlabel 'training time (s, log scale)'; set ylabel 'test accuracy (%)'; set grid; set logscale x\n"
     << "set key bottom right; set format x '%g'; set xrange [10:2000]\n";
  double lowest = 100, highest = 0;
  for (const auto& r : results) {
    lowest = std::min(lowest, 100 * r.accuracy);
    highest = std::max(highest, 100 * r.accuracy);
  }
  const double bottom = std::floor(lowest * 5 - 1) / 5, top = std::max(99.6, highest + 0.1);
  // Rungs that train about as long sit on top of each other: each is named
  // by a label right of its cross, moved up or down (with a line back to the
  // cross) so that no two labels overlap: 18 pixels of the plot's ~450.
  std::vector<double> wanted;
  for (const auto& row : rows) wanted.push_back(100 * row.mean_accuracy);
  const std::vector<double> placed = nn::plot::spread_labels(wanted, (top - bottom) * 18 / 450);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double x = rows[i].mean_seconds, label_x = x * 1.18;
    gp << fmt::format("set arrow from {},{} to {},{} nohead lc {} lw 1\n", x * 1.04, wanted[i], label_x * 0.98,
                      placed[i], i + 1)
       << fmt::format("set label {} ", i + 1)
       << nn::plot::quote(fmt::format("{}: {:.2f}%", rows[i].step->title, wanted[i]))
       << fmt::format(" at {},{} left tc lt {} noenhanced\n", label_x, placed[i], i + 1);
  }
  gp << fmt::format("set yrange [{}:{}]\n", bottom, top)
     << "plot 99.4 with lines dt 2 lc rgb 'gray40' title '99.4%'";
  // A point type of its own for each rung, so that overlapping dots still tell apart.
  constexpr int kPointTypes[] = {7, 5, 9, 11, 13, 15, 4, 6};
  for (std::size_t i = 0; i < rows.size(); ++i)
    gp << ", '-' with points pt " << kPointTypes[i % std::size(kPointTypes)] << " ps 1.2 lc " << i + 1
       << " notitle, '-' with points pt 2 ps 2.5 lw 2 lc " << i + 1 << " notitle";
  gp << "\n";
  for (const auto& row : rows) {
    for (const auto& r : results)
      if (r.step == row.step->name) gp << fmt::format("{} {}\n", r.seconds, 100 * r.accuracy);
    gp << "e\n" << fmt::format("{} {}\n", row.mean_seconds, 100 * row.mean_accuracy) << "e\n";
  }
  png.finish();
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch12-beyond",
                      "Chapter 12: Keras's Simple MNIST convnet on the same library, and a ladder of steps past 99.4%.");
  nn::cli::Common common;
  cli.add_common(common);
  std::string step_name = "convnet";
  std::optional<std::int64_t> epochs, batch_size;
  int threads = 0;
  std::optional<std::int64_t> max_steps;
  std::filesystem::path save, probabilities;
  bool no_save = false, list = false;
  std::filesystem::path ladder;
  std::int64_t refresh = 0;
  cli.option("--step", "NAME", "the rung of the ladder to train: sgd, momentum, convnet, augment, schedule, best, batchnorm (see --list)", &step_name);
  cli.flag("--list", "print every step with its Keras code and exit", &list);
  cli.option("--epochs", "N", "passes over the training images", &epochs, "the step's", {1, 1000});
  cli.option("--batch-size", "N", "images per gradient step", &batch_size, "the step's", {1, 60000});
  cli.option("--max-steps", "N", "stop after N batches", &max_steps, "no limit", {0, 1'000'000'000});
  cli.option("--threads", "N", "worker threads (0: one per core)", &threads, {0, 256});
  cli.option("--save", "DIR", "save the trained weights as .npy files in DIR", &save);
  std::filesystem::path onnx;
  cli.option("--export-onnx", "FILE", "also write the trained model as an ONNX file (chapter 11)", &onnx);
  cli.flag("--no-save", "save nothing (the default unless --save is given)", &no_save);
  cli.option("--probabilities", "FILE",
             "also write the test set's (N, 10) probabilities after training to FILE as .npy, and print its loss "
             "(to compare with Keras, as ch11-predict's)",
             &probabilities);
  cli.option("--refresh-statistics", "N",
             "batchnorm only: after the test, re-estimate the moving statistics over N batches of training images "
             "at the final weights (Sequential::update_statistics) and test again",
             &refresh, {0, 100000});
  cli.option("--ladder", "FILE",
             "train nothing: read the result lines ladder.sh collected in FILE, print the table and draw "
             "12-ladder.png in the plots folder",
             &ladder);

  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    if (list) {
      for (const auto& s : steps()) fmt::print("--step {}: {}\n{}\n\n", s.name, s.title, s.keras);
      return 0;
    }
    if (!ladder.empty()) {
      const std::vector<Result> results = read_results(ladder);
      const std::vector<Summary> rows = summarize(results);
      std::cout << ladder_table(rows);
      nn::create_folders(common.plots);
      plot_ladder(results, rows, common.plots / "12-ladder.png");
      fmt::print("Wrote {}\n", (common.plots / "12-ladder.png").string());
      return 0;
    }
    const Step& step = find_step(step_name);
    if (refresh > 0 && !step.batchnorm)
      throw nn::Error(fmt::format("--refresh-statistics: --step {} keeps no moving statistics (try --step batchnorm)",
                                  step.name));
    if (no_save) save.clear();
    if (threads > 0) nn::set_thread_count(static_cast<std::size_t>(threads));
    const std::uint64_t seed = common.seed_or_random();
    fmt::print("{}\n", nn::kernels_line());  // with the seed, what decides the run's bits
    const int n_epochs = epochs ? static_cast<int>(*epochs) : step.epochs;
    const std::size_t batch = batch_size ? static_cast<std::size_t>(*batch_size) : static_cast<std::size_t>(step.batch_size);
    std::signal(SIGINT, on_sigint);

    fmt::print("step {}: {}\nKeras:\n{}\n\n", step.name, step.title, step.keras);
    nn::Sequential model = step.batchnorm ? convnet_with_batchnorm(seed)
                           : step.convnet ? keras_io_convnet(seed, step.augment)
                                          : nn::make_mnist_model(seed);
    const bool split = step.validation_split > 0;
    const std::size_t images = 60000;  // checked against the data below
    const std::size_t trained = split ? nn::split_for_validation(images, step.validation_split) : images;
    // [snippet schedule]
    auto optimizer = nn::make_optimizer(step.optimizer, static_cast<float>(step.learning_rate),
                                        static_cast<float>(step.momentum));
    if (step.cosine) {  // from the step's rate down to 0 over every batch of the training
      const auto total = static_cast<std::int64_t>(n_epochs) * static_cast<std::int64_t>(nn::batches_per_epoch(trained, batch));
      optimizer->set_schedule(nn::CosineDecay(
          {.initial_learning_rate = step.learning_rate > 0 ? static_cast<float>(step.learning_rate) : 1e-3f,
           .decay_steps = std::max<std::int64_t>(total, 1)}));
    }
    // [end snippet schedule]
    std::cout << "optimizer: " << optimizer->describe() << "\n";
    model.compile(std::move(optimizer));
    std::cout << model.summary();

    nn::Mnist m = nn::load_mnist(common.data);
    const nn::Tensor x_train = nn::images_to_tensor(m.x_train), x_test = nn::images_to_tensor(m.x_test);
    const nn::Tensor y_train = nn::one_hot(m.y_train.data), y_test = nn::one_hot(m.y_test.data);
    if (x_train.dim(0) != images)
      throw nn::Error(fmt::format("{}: {} training images, not MNIST's {}", common.data.string(), x_train.dim(0), images));
    if (split)
      fmt::print("Train on {} images, validate on the last {} (validation_split={})\n", trained,
                 x_train.dim(0) - trained, step.validation_split);

    const nn::History history = model.fit(
        x_train, y_train,
        {.epochs = n_epochs, .batch_size = batch, .shuffle = true, .seed = seed, .max_steps = max_steps ? *max_steps : -1,
         .progress = &std::cout, .live = isatty(STDOUT_FILENO) == 1, .x_val = split ? nullptr : &x_test,
         .y_val = split ? nullptr : &y_test, .validation_split = step.validation_split, .interrupt = &interrupted});
    const nn::Evaluation test = model.evaluate(x_test, y_test, 128, &std::cout);

    double train_seconds = 0;
    for (const auto& e : history.epochs) train_seconds += e.seconds;
    const std::size_t per_epoch = nn::batches_per_epoch(trained, batch);
    fmt::print("seed {}, {} threads, {} batches trained\n", seed, nn::thread_count(), history.steps);
    if (history.steps > 0)
      fmt::print("training time: {:.3f} s for {} batches of {}: {:.3f} ms per batch, {:.2f} s per epoch of {} batches\n",
                 train_seconds, history.steps, batch, 1e3 * train_seconds / static_cast<double>(history.steps),
                 train_seconds / static_cast<double>(history.steps) * static_cast<double>(per_epoch), per_epoch);
    fmt::print("peak memory (RSS): {:.0f} MB\n", nn::peak_rss_bytes() / 1e6);
    fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", test.loss, test.accuracy);
    if (!history.stopped.empty()) fmt::print("{}\n", history.stopped);
    if (history.nan_loss) throw nn::Error(history.stopped);
    if (history.interrupted) {
      std::cerr << "ch12-beyond: interrupted\n";
      return 130;
    }
    if (!save.empty()) {
      model.save(save, static_cast<int>(history.epochs.size()));
      fmt::print("Weights in {}\n", save.string());
    }
    if (!onnx.empty()) {
      nn::export_onnx(model, onnx);  // checked by ONNX's checker, written whole
      fmt::print("ONNX model in {}\n", onnx.string());
    }
    // The trained model as saved: before any --refresh-statistics.
    if (!probabilities.empty()) nn::cli::write_probabilities(probabilities, model.predict(x_test), test);
    // One line for ladder.sh: the step, the seed, what it reached and how long it trained.
    fmt::print("result step={} seed={} epochs={} batches={} train_seconds={:.2f} test_accuracy={:.4f} test_loss={:.4f}\n",
               step.name, seed, history.epochs.size(), history.steps, train_seconds, test.accuracy, test.loss);
    if (refresh > 0) {
      // The moving averages of fit still hold batches from weights that have
      // moved since; at the final weights, forward passes alone re-estimate them.
      const std::size_t images_used = std::min<std::size_t>(static_cast<std::size_t>(refresh) * batch, trained);
      model.update_statistics(x_train.batch_view(0, images_used), batch);
      const nn::Evaluation refreshed = model.evaluate(x_test, y_test, 128);
      fmt::print("Moving statistics re-estimated over {} batches of {} at the final weights: test loss {:.4f} - "
                 "test accuracy {:.4f}\n",
                 images_used / batch, batch, refreshed.loss, refreshed.accuracy);
    }
    return 0;
  });
}
