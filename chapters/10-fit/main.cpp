// Chapter 10: model.compile(...); model.fit(x_train, y_train, epochs=10, batch_size=32)
//
// The whole walkthrough end to end: load and prepare the data (chapters
// 01-03), build the model (04-08), train it with an optimizer (09), evaluate
// it on the test set, save its weights as .npy files and plot its history.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
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
#include "nn/onnx_export.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"
#include "nn/softmax.hpp"

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

// The loss's name on an axis: "categorical cross-entropy", "mean squared error".
std::string loss_words(nn::Loss loss) {
  return loss == nn::Loss::categorical_crossentropy ? "categorical cross-entropy" : "mean squared error";
}

// `held_out`: what the second curve was measured on ("test" or "validation").
void plot_history(const nn::History& h, const std::filesystem::path& file, const std::string& held_out,
                  nn::Loss loss) {
  nn::plot::Png png(file, 1100, 440);
  auto& gp = png.gp();
  gp << "set multiplot layout 1,2 title " +
            nn::plot::quote(fmt::format("Training history (train: running mean over the epoch; {}: after the epoch)",
                                        held_out))
     << "\nset xlabel 'epoch'; set grid; set key top right; "
     << (h.epochs.size() <= 20 ? "set xtics 1\n" : "set xtics auto\n");
  for (int metric = 0; metric < 2; ++metric) {
    gp << (metric == 0 ? "set title 'loss'; set ylabel " + nn::plot::quote(loss_words(loss)) + "; set key top right\n"
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

// "0.001,0.01,1" -> {0.001, 0.01, 1}, sorted; every value must be a number > 0.
// `option` and `what` name them in the message: "--lr-sweep", "learning rate".
std::vector<double> parse_positive_list(const std::string& option, const std::string& what, const std::string& list) {
  std::vector<double> rates;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    char* end = nullptr;
    const double rate = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !(rate > 0) || !std::isfinite(rate))
      throw nn::Error(fmt::format("{}: '{}' is not a {} > 0 (give a list like {})", option, item, what,
                                  option == "--lr-sweep" ? "0.001,0.01,0.1" : "0.1,1,10"));
    rates.push_back(rate);
    start = comma + 1;
  }
  std::sort(rates.begin(), rates.end());  // each value makes a fresh model: the order changes nothing
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
                const std::string& held_out, nn::Loss loss) {
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
      gp << "set title 'loss at the end of training'; set ylabel "
         << nn::plot::quote(loss_words(loss) + " (log scale)")
         << "; set logscale y; set yrange [*:*]; set key default; set key top center\n"
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


// ---- --compare-losses: why cross-entropy and not mean squared error ----

// One loss's run: test accuracy after every `steps[i]` batches.
struct LossCurve {
  nn::Loss loss = nn::Loss::categorical_crossentropy;
  std::vector<std::size_t> steps;
  std::vector<double> accuracy;
};

// |d loss / d z| of the true class for one sample whose true class 0 has
// logit `t`, one wrong class logit 0 and the other eight -20 (probability
// 2e-9 each): with t well below 0 the network is confidently wrong. Returns
// {p_true, cross-entropy's, mean squared error's}.
std::array<double, 3> true_class_gradient(float t) {
  nn::Tensor z({1, 10}, -20.0f), y({1, 10});  // one sample of 10 logits, true class 0
  z[0] = t;
  z[1] = 0;
  y[0] = 1;
  const nn::Tensor p = nn::softmax(z);
  return {p[0], std::abs(nn::softmax_crossentropy_backward(p, y)[0]),
          std::abs(nn::softmax_mean_squared_error_backward(p, y)[0])};
}

void plot_loss_comparison(const std::vector<LossCurve>& curves, const std::filesystem::path& file,
                          const std::string& setup) {
  nn::plot::Png png(file, 1100, 440);
  auto& gp = png.gp();
  gp << "set multiplot layout 1,2 title " << nn::plot::quote("Cross-entropy or mean squared error on the softmax: " + setup)
     << " noenhanced\nset grid\n"
     << "set title 'the gradient the true class gets (one sample, 10 classes)'\n"
     << "set logscale xy; set format x '10^{%T}'; set format y '10^{%T}'; set xrange [1e-6:1]; set yrange [1e-7:5]\n"
     << "set xlabel 'p of the true class (the wrong class takes the rest)'; set ylabel '|d loss / d z_{true}|'\n"
     << "set key bottom right\n"
     << "plot '-' with lines lw 2 title 'categorical cross-entropy: 1 - p', "
     << "'-' with lines lw 2 title 'mean squared error: vanishes as p -> 0'\n";
  for (int series = 1; series <= 2; ++series) {
    for (float t = -14.0f; t <= 14.0f; t += 0.25f) {
      const auto g = true_class_gradient(t);
      gp << fmt::format("{:.8g} {:.8g}\n", g[0], g[series]);
    }
    gp << "e\n";
  }
  gp << "unset logscale; set format x '%g'; set format y '%g'; set xrange [*:*]\n"
     << "set title 'test accuracy while training (the first 2,000 test images)'\n"
     << "set xlabel 'batches trained'; set ylabel 'accuracy'; set yrange [0:1]; set key bottom right\n"
     << "plot 0.1 with lines dt 3 lc rgb 'gray40' title 'chance (10%)'";
  for (const auto& c : curves)
    gp << ", '-' with linespoints pt 7 ps 0.6 lw 2 title " << nn::plot::quote(std::string(nn::loss_name(c.loss)))
       << " noenhanced";  // keep the underscores
  gp << "\n";
  for (const auto& c : curves) {
    for (std::size_t i = 0; i < c.steps.size(); ++i) gp << fmt::format("{} {:.6f}\n", c.steps[i], c.accuracy[i]);
    gp << "e\n";
  }
  gp << "unset multiplot\n";
  png.finish();
}

std::string loss_comparison_csv(const std::vector<LossCurve>& curves) {
  std::string csv = "loss,batches,test_accuracy\n";
  for (const auto& c : curves)
    for (std::size_t i = 0; i < c.steps.size(); ++i)
      csv += fmt::format("{},{},{:.6f}\n", nn::loss_name(c.loss), c.steps[i], c.accuracy[i]);
  return csv;
}

// ---- --init-spread: why Glorot ----

struct SpreadRun {
  double scale = 1;
  std::vector<nn::StepSpread> steps;
};

std::string spread_csv(const std::vector<SpreadRun>& runs) {
  std::string csv = "init_scale,step,activation_std,gradient_std\n";
  for (const auto& r : runs)
    for (const auto& s : r.steps)
      csv += fmt::format("{},{},{:.6g},{:.6g}\n", r.scale, s.name, s.activation_std, s.gradient_std);
  return csv;
}

void plot_spread(const std::vector<SpreadRun>& runs, const std::filesystem::path& file, std::size_t batch) {
  nn::plot::Png png(file, 1100, 480);
  auto& gp = png.gp();
  gp << "set multiplot layout 1,2 title "
     << nn::plot::quote(fmt::format("At initialization, one batch of {} training images: glorot_uniform's limit "
                                    "times the scale",
                                    batch))
     << " noenhanced\nset grid; set xtics rotate by -30 noenhanced\n"
     << "set offsets 0.3, 0.3, 0, 0; set key below\n";
  for (int panel = 0; panel < 2; ++panel) {
    const auto value = [&](const nn::StepSpread& s) { return panel == 0 ? s.activation_std : s.gradient_std; };
    // A std of 0 (blank images, a dead layer) has no place on a log axis: then the axis is linear.
    bool positive = true;
    for (const auto& run : runs)
      for (const auto& s : run.steps) positive = positive && !(std::isfinite(value(s)) && value(s) <= 0);
    gp << (positive ? "set logscale y; set format y '10^{%T}'\n" : "unset logscale y; set format y '%g'\n")
       << (panel == 0 ? "set title 'forward: std of each step''s output'; set ylabel 'standard deviation'\n"
                      : "set title 'backward: std of d loss / d (each step''s output)'; set ylabel 'standard deviation'\n")
       << "plot ";
    for (std::size_t r = 0; r < runs.size(); ++r)
      gp << (r ? ", " : "") << "'-' using 1:2:xtic(3) with linespoints pt 7 lw 2 title "
         << nn::plot::quote(fmt::format("scale {}{}", runs[r].scale, runs[r].scale == 1 ? " (glorot_uniform, Keras's)" : ""))
         << " noenhanced";
    gp << "\n";
    for (const auto& run : runs) {
      for (std::size_t i = 0; i < run.steps.size(); ++i) {
        const double v = value(run.steps[i]);
        if (std::isfinite(v)) gp << fmt::format("{} {:.8g} {}\n", i, v, run.steps[i].name);
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
  std::optional<std::int64_t> max_steps;
  bool no_shuffle = false, nesterov = false;
  double validation_split = 0.0;
  std::int64_t train_limit = 0;
  std::string lr_sweep;
  std::string loss_option = "categorical_crossentropy";
  double init_scale = 1.0;
  bool compare_losses = false;
  std::string init_spread;
  cli.option("--epochs", "N", "passes over the 60,000 training images", &epochs, {0, 1000});
  cli.option("--batch-size", "N", "images per gradient step", &batch_size, {1, 60000});
  cli.option("--lr", "RATE", "learning rate (0: the optimizer's Keras default: sgd 0.01, adam and rmsprop 0.001)", &lr,
             {0, 1000});
  cli.option("--optimizer", "NAME", "sgd, adam or rmsprop", &optimizer);
  cli.option("--momentum", "M", "SGD momentum (0.9 is the common choice)", &momentum, {.min = 0, .max = 1, .open_max = true});
  cli.flag("--nesterov", "Nesterov momentum (with --momentum)", &nesterov);
  cli.option("--save", "DIR", "save the weights as .npy files after every epoch (chapter 11 loads them)", &save);
  cli.flag("--no-save", "do not save the weights", &no_save);
  std::filesystem::path onnx;
  cli.option("--export-onnx", "FILE", "also write the trained model as an ONNX file (chapter 11)", &onnx);
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
  cli.option("--loss", "NAME",
             "categorical_crossentropy (Keras's, the default) or mean_squared_error (mse), both on the softmax",
             &loss_option);
  cli.flag("--compare-losses",
           "train a fresh model with each loss for --epochs (or --max-steps), the same seed and batches, save "
           "nothing, and plot test accuracy against batches trained (10-loss-compare.png)",
           &compare_losses);
  cli.option("--init-scale", "S", "multiply every kernel's glorot_uniform limit by S (1: Keras's initialization)",
             &init_scale, {.min = 0, .max = 1000, .open_min = true});
  cli.option("--init-spread", "SCALES",
             "comma-separated init scales: on one batch of --batch-size training images, measure the spread of "
             "every layer's output and gradient at initialization, train nothing, and plot it (10-init-spread.png)",
             &init_spread);

  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    if (no_save) save.clear();
    const std::vector<double> sweep_rates =
        lr_sweep.empty() ? std::vector<double>{} : parse_positive_list("--lr-sweep", "learning rate", lr_sweep);
    const std::vector<double> spread_scales =
        init_spread.empty() ? std::vector<double>{} : parse_positive_list("--init-spread", "scale", init_spread);
    nn::Loss loss = nn::Loss::categorical_crossentropy;
    try {
      loss = nn::loss_from_name(loss_option);
    } catch (const nn::Error& e) {
      throw nn::Error(fmt::format("--loss: {}", e.what()));
    }
    if (int(!sweep_rates.empty()) + int(compare_losses) + int(!spread_scales.empty()) > 1)
      throw nn::Error("--lr-sweep, --compare-losses and --init-spread each run their own experiment: give one");
    if (compare_losses && loss_option != "categorical_crossentropy")
      throw nn::Error("--compare-losses trains with both losses: leave out --loss");
    if (compare_losses && validation_split > 0)
      throw nn::Error("--compare-losses measures on the first 2,000 test images: leave out --validation-split");
    if (!sweep_rates.empty() || compare_losses || !spread_scales.empty())
      save.clear();  // an experiment makes many models: none is "the" weights
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
        nn::Sequential model = nn::make_mnist_model(seed, static_cast<float>(init_scale));
        auto opt = nn::make_optimizer(optimizer, static_cast<float>(rate), static_cast<float>(momentum), nesterov);
        std::cout << "optimizer: " << opt->describe() << "\n";
        model.compile(std::move(opt), loss);
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
                 held_out, loss);
      fmt::print("Wrote {} and {}\n", (common.plots / "10-lr-sweep.csv").string(),
                 (common.plots / "10-lr-sweep.png").string());
      return 0;
    }

    if (compare_losses) {  // one fresh model per loss, the same seed, data and batches
      nn::Mnist m = nn::load_mnist(common.data);
      nn::cli::require_images(common.data, m.x_test.shape[0], 1, "test set", "there is nothing to evaluate on");
      nn::Tensor x_train = nn::images_to_tensor(m.x_train), x_test = nn::images_to_tensor(m.x_test);
      nn::Tensor y_train = nn::one_hot(m.y_train.data), y_test = nn::one_hot(m.y_test.data);
      limit_training_set(x_train, y_train, train_limit);
      // The curves' points: accuracy on the first 2,000 test images, about 40 times in the run.
      const std::size_t probe = std::min<std::size_t>(2000, x_test.dim(0));
      const nn::Tensor x_probe = nn::slice_batch(x_test, 0, probe), y_probe = nn::slice_batch(y_test, 0, probe);
      const std::size_t per_epoch = nn::batches_per_epoch(x_train.dim(0), static_cast<std::size_t>(batch_size));
      std::size_t total = per_epoch * static_cast<std::size_t>(epochs);
      if (max_steps) total = std::min(total, static_cast<std::size_t>(*max_steps));
      const std::size_t every = std::max<std::size_t>(1, total / 40);
      std::vector<LossCurve> curves;
      for (const nn::Loss each : {nn::Loss::categorical_crossentropy, nn::Loss::mean_squared_error}) {
        nn::Sequential model = nn::make_mnist_model(seed, static_cast<float>(init_scale));
        auto opt = nn::make_optimizer(optimizer, static_cast<float>(lr), static_cast<float>(momentum), nesterov);
        fmt::print("loss: {}, optimizer: {}\n", nn::loss_name(each), opt->describe());
        model.compile(std::move(opt), each);
        LossCurve curve{each, {0}, {model.evaluate(x_probe, y_probe).accuracy}};
        const nn::History h = model.fit(
            x_train, y_train,
            {.epochs = epochs, .batch_size = static_cast<std::size_t>(batch_size), .shuffle = !no_shuffle,
             .seed = seed, .max_steps = max_steps.value_or(-1), .progress = &std::cout,
             .live = isatty(STDOUT_FILENO) == 1, .interrupt = &interrupted,
             .on_batch_end = [&](std::size_t steps) {
               if (steps % every != 0 && steps != total) return;
               curve.steps.push_back(steps);
               curve.accuracy.push_back(model.evaluate(x_probe, y_probe).accuracy);
             }});
        if (h.interrupted) return 130;
        if (h.nan_loss) throw nn::Error(fmt::format("--compare-losses: {}: {}", nn::loss_name(each), h.stopped));
        fmt::print("{}: test accuracy (first {} images) {:.4f} after {} batches\n", nn::loss_name(each), probe,
                   curve.accuracy.back(), curve.steps.back());
        for (std::size_t i = 0; i < curve.steps.size(); i += std::max<std::size_t>(1, curve.steps.size() / 8))
          fmt::print("  after {:5} batches: {:.4f}\n", curve.steps[i], curve.accuracy[i]);
        curves.push_back(std::move(curve));
      }
      nn::create_folders(common.plots);
      nn::write_file_atomic(common.plots / "10-loss-compare.csv", loss_comparison_csv(curves));
      plot_loss_comparison(curves, common.plots / "10-loss-compare.png",
                           fmt::format("{}, batch {}, seed {}", optimizer == "sgd" ? "plain SGD" : optimizer,
                                       batch_size, seed));
      fmt::print("Wrote {} and {}\n", (common.plots / "10-loss-compare.csv").string(),
                 (common.plots / "10-loss-compare.png").string());
      return 0;
    }

    if (!spread_scales.empty()) {  // one fresh model per scale, the same seed and batch
      nn::Mnist m = nn::load_mnist(common.data);
      nn::Tensor x_train = nn::images_to_tensor(m.x_train), y_train = nn::one_hot(m.y_train.data);
      limit_training_set(x_train, y_train, train_limit);
      const std::size_t batch = static_cast<std::size_t>(batch_size);
      nn::cli::require_images(common.data, x_train.dim(0), batch, "training set",
                              fmt::format("--init-spread measures one batch of {} (--batch-size)", batch));
      const nn::Tensor xb = nn::slice_batch(x_train, 0, batch), yb = nn::slice_batch(y_train, 0, batch);
      std::vector<SpreadRun> runs;
      for (const double scale : spread_scales) {
        nn::Sequential model = nn::make_mnist_model(seed, static_cast<float>(scale));
        model.set_fusion(false);  // the convolution's own output, before the pooling
        model.compile(nn::make_optimizer("sgd", 0.01f), loss);
        runs.push_back({scale, model.spread(xb, yb)});
      }
      fmt::print("std of each step's output (forward) and of d loss / d output (backward), {} images, loss {}:\n",
                 batch, nn::loss_name(loss));
      fmt::print("{:<15}", "step");
      for (const auto& r : runs) fmt::print(" {:>24}", fmt::format("scale {}: fwd / bwd", r.scale));
      fmt::print("\n");
      for (std::size_t i = 0; i < runs.front().steps.size(); ++i) {
        fmt::print("{:<15}", runs.front().steps[i].name);
        for (const auto& r : runs)
          fmt::print(" {:>24}", fmt::format("{:.3g} / {:.3g}", r.steps[i].activation_std, r.steps[i].gradient_std));
        fmt::print("\n");
      }
      nn::create_folders(common.plots);
      nn::write_file_atomic(common.plots / "10-init-spread.csv", spread_csv(runs));
      plot_spread(runs, common.plots / "10-init-spread.png", batch);
      fmt::print("Wrote {} and {}\n", (common.plots / "10-init-spread.csv").string(),
                 (common.plots / "10-init-spread.png").string());
      return 0;
    }

    // [snippet ch10-main]
    // The model and its optimizer first: a bad option or weights file fails before the data loads.
    nn::Sequential model = nn::make_mnist_model(seed, static_cast<float>(init_scale));  // Conv2D, MaxPooling2D, Flatten, Dense, Dense
    if (!load.empty()) model.load(load);
    auto opt = nn::make_optimizer(optimizer, static_cast<float>(lr), static_cast<float>(momentum), nesterov);
    std::cout << "optimizer: " << opt->describe() << "\n";  // every setting, defaults included
    model.compile(std::move(opt), loss);                      // categorical_crossentropy unless --loss

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
    if (!onnx.empty() && !history.nan_loss) {
      nn::export_onnx(model, onnx);  // checked by ONNX's checker, written whole
      fmt::print("ONNX model in {}\n", onnx.string());
    }

    if (!history.epochs.empty()) {
      nn::create_folders(common.plots);
      nn::write_file_atomic(common.plots / "10-history.csv", history_csv(history));
      plot_history(history, common.plots / "10-history.png", held_out, loss);
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
