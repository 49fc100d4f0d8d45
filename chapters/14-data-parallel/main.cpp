// Chapter 14: more than one process, data-parallel training over Open MPI
//
//   strategy = tf.distribute.MultiWorkerMirroredStrategy()
//   with strategy.scope():
//       model = build_model(); model.compile(...)
//   model.fit(x_train, y_train, epochs=1, batch_size=32)   # 32: the global batch
//
// Started by `mpirun -np N`, every process holds the whole seed model and
// reads the same data. In each global batch of 32, rank r computes the
// gradient of its rows (a contiguous slice), one MPI_Allreduce sums the
// slices' gradients, and every rank applies the same update. Rank 0 prints
// Keras's progress lines, evaluates and saves. Without mpirun it is one
// process, which trains exactly as chapter 10's fit does.
//
// --cost-model FILE draws the step time and the speed-up that N processes
// would give on 1, 10 and 100 Gb/s links, from this machine's compute time
// per shard and the ring all-reduce's traffic, with the measured runs in FILE
// (chapters/14-data-parallel/cost-model.sh makes it).
#include <fmt/format.h>

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>

#include "nn/cli.hpp"
#include "nn/data_parallel.hpp"
#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define NN_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NN_ADDRESS_SANITIZER 1
#endif
#endif
#ifdef NN_ADDRESS_SANITIZER
// A sanitizer build: Open MPI keeps some of MPI_Init's allocations for the
// life of the process, which LeakSanitizer would report at exit. The
// library's own code is leak-checked by its tests, which never start MPI.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
#endif

namespace {

// How many processes of this job share this machine.
int processes_on_this_host() {
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  int n = 1;
  MPI_Comm_size(local, &n);
  MPI_Comm_free(&local);
  return n;
}

// The largest value of x over the ranks.
double max_over_ranks(double x) {
  double out = x;
  MPI_Allreduce(&x, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

// A measured run, as the `timing,...` line a training run prints.
struct Measured {
  int processes = 0, threads = 0;
  double compute_ms = 0, allreduce_ms = 0, update_ms = 0, step_ms = 0;
};

std::vector<Measured> read_measured(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw nn::Error(fmt::format("{}: cannot read the measured runs", file.string()));
  std::vector<Measured> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    Measured m;
    char comma[6] = {};
    std::istringstream s(line);
    std::string word;
    std::getline(s, word, ',');
    long steps = 0;
    if (word != "timing" || !(s >> m.processes >> comma[0] >> m.threads >> comma[1] >> steps >> comma[2] >>
                              m.compute_ms >> comma[3] >> m.allreduce_ms >> comma[4] >> m.update_ms >> comma[5] >>
                              m.step_ms) ||
        std::string(comma, 6) != ",,,,,," || m.processes < 1 || m.threads < 1 || !(m.step_ms > 0) ||
        !std::isfinite(m.step_ms))
      throw nn::Error(fmt::format("{}:{}: not a timing line (timing,processes,threads,steps,compute_ms,"
                                  "allreduce_ms,update_ms,step_ms): '{}'",
                                  file.string(), number, line.substr(0, 80)));
    out.push_back(m);
  }
  if (out.empty()) throw nn::Error(fmt::format("{}: no timing lines", file.string()));
  return out;
}

// Median seconds of `reps` calls of f.
template <class F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void cost_model(const nn::Tensor& x_train, const nn::Tensor& y_train, const std::filesystem::path& measured_file,
                const std::filesystem::path& plots) {
  const std::vector<Measured> measured = read_measured(measured_file);
  nn::set_thread_count(1);  // one core per process, as in the model
  nn::Sequential model = nn::make_mnist_model(1);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  const std::size_t params = nn::flat_gradient_size(model);
  std::vector<float> flat(params);
  const nn::Tensor xb = nn::slice_batch(x_train, 0, 32), yb = nn::slice_batch(y_train, 0, 32);
  // The compute of one rank's shard of a global batch of 32, and the update.
  std::vector<double> compute(33, 0.0);
  for (std::size_t rows : {32u, 16u, 8u, 4u, 2u, 1u})
    compute[rows] = median_seconds(41, [&] { nn::shard_gradients(model, xb, yb, {0, rows}, 32, flat); });
  const double update = median_seconds(41, [&] {  // as DataParallel::train_step: the block back, then the step
    nn::scatter_gradients(model, flat);
    model.optimizer().step(model.parameters());
  });
  fmt::print("measured on one core: the gradient of a shard of 32, 16, 8, 4, 2, 1 rows: {:.3f} {:.3f} {:.3f} "
             "{:.3f} {:.3f} {:.3f} ms; the update {:.3f} ms\n",
             1e3 * compute[32], 1e3 * compute[16], 1e3 * compute[8], 1e3 * compute[4], 1e3 * compute[2],
             1e3 * compute[1], 1e3 * update);
  const double bytes = static_cast<double>(params * sizeof(float));
  constexpr double kLatency = 5e-6;  // per message: an assumption, of the order of a good Ethernet or InfiniBand hop
  const std::vector<int> ns{1, 2, 4, 8, 16, 32};
  const std::vector<double> links{1e9, 10e9, 100e9};  // bits per second
  // [snippet cost-model]
  const auto step_seconds = [&](int n, double bits_per_second) {
    const double shard = compute[32 / n];  // each rank computes 32 / n rows
    return shard + nn::ring_allreduce_seconds(bytes, static_cast<std::size_t>(n), bits_per_second / 8, kLatency) +
           update;
  };
  // [end snippet cost-model]
  fmt::print("\npredicted step time (ms) and speed-up over one process, global batch 32, {:.2f} MB of gradients:\n",
             bytes / 1e6);
  fmt::print("{:>10}", "processes");
  for (double l : links) fmt::print(" {:>22}", fmt::format("{:g} Gb/s", l / 1e9));
  fmt::print("\n");
  const double one = step_seconds(1, links[0]);
  for (int n : ns) {
    fmt::print("{:>10}", n);
    for (double l : links)
      fmt::print(" {:>22}", fmt::format("{:.3f} ms, {:.2f}x", 1e3 * step_seconds(n, l), one / step_seconds(n, l)));
    fmt::print("\n");
  }
  // What would pay: more rows per step (each process keeps 32: the global
  // batch grows with N), and the all-reduce overlapped with the backward pass.
  fmt::print("\nimages per second over one process's, each process keeping 32 rows (global batch 32 N);\n"
             "then with the all-reduce overlapped with the gradient's computation:\n");
  fmt::print("{:>10}", "processes");
  for (double l : links) fmt::print(" {:>22}", fmt::format("{:g} Gb/s", l / 1e9));
  fmt::print("\n");
  for (int n : ns) {
    fmt::print("{:>10}", n);
    for (double l : links) {
      const double reduce = nn::ring_allreduce_seconds(bytes, static_cast<std::size_t>(n), l / 8, kLatency);
      const double plain = compute[32] + reduce + update, overlapped = std::max(compute[32], reduce) + update;
      fmt::print(" {:>22}", fmt::format("{:.1f}x, {:.1f}x", n * one / plain, n * one / overlapped));
    }
    fmt::print("\n");
  }
  nn::create_folders(plots);
  nn::plot::Png png(plots / "14-cost-model.png", 1100, 480);
  auto& gp = png.gp();
  gp << "set multiplot layout 1,2 title 'Data-parallel SGD on the seed model, global batch 32: the ring all-reduce "
        "model and measured runs' noenhanced\n"
     << "set logscale x 2; set xrange [0.8:40]; set xlabel 'processes N'; set grid; set key top left\n"
     << "set logscale y; set ylabel 'ms per step'; set title 'step time'\n"
     << "plot '-' with linespoints lw 2 title '1 Gb/s', '-' with linespoints lw 2 title '10 Gb/s', "
        "'-' with linespoints lw 2 title '100 Gb/s', '-' with points pt 7 ps 1.6 lc rgb 'black' "
        "title 'measured here: N processes x 1 thread, one machine'\n";
  for (double l : links) {
    for (int n : ns) gp << n << ' ' << 1e3 * step_seconds(n, l) << '\n';
    gp << "e\n";
  }
  for (const Measured& m : measured)
    if (m.threads == 1) gp << m.processes << ' ' << m.step_ms << '\n';  // N processes of one thread each
  gp << "e\n";
  // Right: images per second over one process's, for the global batch of 32
  // (solid) and for 32 rows per process (dashed), beside N times (dotted).
  gp << "set logscale y 2; set yrange [0.03:64]; set ylabel 'images per second, over 1 process'\n"
     << "set title 'speed-up: global batch 32 (solid), 32 rows per process (dashed)'; set key top left\n"
     << "plot '-' with linespoints lw 2 lc 1 title '1 Gb/s', '-' with linespoints lw 2 lc 2 title '10 Gb/s', "
        "'-' with linespoints lw 2 lc 3 title '100 Gb/s', '-' with linespoints lw 2 dt 2 lc 1 notitle, "
        "'-' with linespoints lw 2 dt 2 lc 2 notitle, '-' with linespoints lw 2 dt 2 lc 3 notitle, "
        "x with lines dt 3 lc rgb 'gray' title 'N times'\n";
  for (double l : links) {
    for (int n : ns) gp << n << ' ' << one / step_seconds(n, l) << '\n';
    gp << "e\n";
  }
  for (double l : links) {
    for (int n : ns)
      gp << n << ' '
         << n * one / (compute[32] + nn::ring_allreduce_seconds(bytes, static_cast<std::size_t>(n), l / 8, kLatency) + update)
         << '\n';
    gp << "e\n";
  }
  gp << "unset multiplot\n";
  png.finish();
  fmt::print("\nWrote {}\n", (plots / "14-cost-model.png").string());
}

}  // namespace

int main(int argc, char** argv) {
  nn::mpi::Session mpi(argc, argv);
  const int rank = nn::mpi::rank(), ranks = nn::mpi::size();
  nn::cli::Parser cli("ch14-data-parallel",
                      "Chapter 14: the seed model trained by the processes mpirun starts, each on its share of every "
                      "batch (mpirun -np 2 build/bin/ch14-data-parallel); one process without mpirun.");
  nn::cli::Common common;
  cli.add_common(common, /*with_seed=*/false);
  std::int64_t seed_option = 1;  // not random: every process must draw the same weights and shuffles
  cli.option("--seed", "N", "seed of the weights and the shuffles (the same on every process)", &seed_option,
             {0, std::numeric_limits<std::int64_t>::max()});
  int epochs = 1, threads = 0;
  std::optional<std::int64_t> max_steps;
  std::filesystem::path save, cost_model_file;
  std::string kill;
  cli.option("--epochs", "N", "epochs to train", &epochs, {1, 1000});
  cli.option("--max-steps", "N", "stop after N batches", &max_steps, "no limit", {0, 1'000'000'000});
  cli.option("--threads", "N", "worker threads per process (0: this machine's cores shared among its processes)",
             &threads, {0, 256});
  cli.option("--save", "DIR", "rank 0 saves the weights after every epoch, as chapter 10 does", &save);
  cli.option("--cost-model", "FILE",
             "draw the modelled step time and speed-up with the measured runs in FILE (timing lines; "
             "chapters/14-data-parallel/cost-model.sh), instead of training; one process only",
             &cost_model_file);
  int shards = 1;
  cli.option("--shards", "K",
             "without mpirun: compute each batch as K processes would, one shard after the other, and add them in "
             "rank order (the reference that mpirun -np K must equal)",
             &shards, {1, 32});
  cli.option("--kill-rank", "R:S", "a test of faults: rank R kills itself (SIGKILL) at step S", &kill);
  const std::string program = ranks > 1 ? fmt::format("ch14-data-parallel: rank {}", rank) : "ch14-data-parallel";
  const int status = nn::cli::run(program, [&] {
    if (!cli.parse(argc, argv)) return 0;
    const auto seed = static_cast<std::uint64_t>(seed_option);
    nn::set_thread_count(threads > 0 ? static_cast<std::size_t>(threads)
                                     : std::max<std::size_t>(1, std::thread::hardware_concurrency() /
                                                                    static_cast<std::size_t>(processes_on_this_host())));
    int kill_rank = -1;
    std::size_t kill_step = 0;
    if (!kill.empty()) {
      std::istringstream in(kill);
      char colon = 0;
      if (!(in >> kill_rank >> colon >> kill_step) || colon != ':' || kill_rank < 0 || kill_step == 0 ||
          in.peek() != std::char_traits<char>::eof())
        throw nn::Error(fmt::format("--kill-rank {}: expected R:S, a rank from 0 and a step from 1", kill));
    }
    if (!cost_model_file.empty() && ranks > 1)
      throw nn::Error("--cost-model measures one process: run it without mpirun");

    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 32, "training set", "a global batch of 32 is needed");
    nn::cli::require_images(common.data, m.x_test.shape[0], 1, "test set", "there is nothing to evaluate on");
    const nn::Tensor x_train = nn::images_to_tensor(m.x_train), y_train = nn::one_hot(m.y_train.data);
    if (!cost_model_file.empty()) {
      cost_model(x_train, y_train, cost_model_file, common.plots);
      return 0;
    }
    const nn::Tensor x_test = nn::images_to_tensor(m.x_test), y_test = nn::one_hot(m.y_test.data);

    nn::Sequential model = nn::make_mnist_model(seed);
    model.compile(nn::make_optimizer("sgd", 0.01f));
    // What must match on every process: the data, the starting weights, the instruction set.
    if (!nn::mpi::same_everywhere(nn::tensor_checksum(x_train) ^ nn::tensor_checksum(y_train)))
      throw nn::Error("the processes read different training data: check each host's MNIST files (SHA-256)");
    if (!nn::mpi::same_everywhere(nn::weights_checksum(model)))
      throw nn::Error("the processes start from different weights: the same --seed and library build on every host");
    if (!nn::mpi::same_everywhere(std::hash<std::string>{}(nn::kernels_line())))
      throw nn::Error("the processes run different kernels (instruction set or threads): build the course the same "
                      "way, and give every host the same --threads");
    if (rank == 0) {
      fmt::print("{}, {} process{} (seed {})\n", nn::kernels_line(), ranks, ranks > 1 ? "es" : "", seed);
      const int parts = std::max(ranks, shards);
      for (int r = 0; r < parts; ++r) {
        const nn::Shard s = nn::shard_of(32, static_cast<std::size_t>(r), static_cast<std::size_t>(parts));
        fmt::print("{} {}: rows {}..{} of every global batch of 32\n", ranks > 1 ? "rank" : "shard", r, s.first,
                   s.first + s.count - 1);
      }
    }

    nn::DataParallel dp(static_cast<std::size_t>(shards));
    if (kill_rank >= 0) dp.kill_at(kill_rank, kill_step);
    // [snippet ch14-fit]
    const nn::History h = model.fit(
        x_train, y_train,
        {.epochs = epochs, .seed = seed, .max_steps = max_steps.value_or(-1),
         .progress = rank == 0 ? &std::cout : nullptr, .live = ranks == 1 && isatty(STDOUT_FILENO) == 1,
         .on_epoch_end = [&](int epoch, const nn::EpochLog&) {
           if (rank == 0 && !save.empty()) model.save(save, epoch);  // one writer, the whole set or nothing
         },
         .train_step = dp.train_step_for(model)});  // every rank: its shard, one all-reduce, the same update
    // [end snippet ch14-fit]
    const bool same = nn::mpi::same_everywhere(nn::weights_checksum(model));
    const nn::DataParallel::Times& t = dp.times();
    const double steps = static_cast<double>(std::max<std::size_t>(t.steps, 1));
    const double compute = max_over_ranks(t.compute) / steps, allreduce = max_over_ranks(t.allreduce) / steps,
                 update = max_over_ranks(t.update) / steps;
    if (rank == 0) {
      const nn::Evaluation test = model.evaluate(x_test, y_test, 32, &std::cout);
      fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", test.loss, test.accuracy);
      fmt::print("the weights are {} on every process\n", same ? "the same" : "NOT the same");
      fmt::print("per step (the slowest rank): gradient of the shard {:.3f} ms, all-reduce {:.3f} ms, update {:.3f} "
                 "ms\n",
                 1e3 * compute, 1e3 * allreduce, 1e3 * update);
      fmt::print("timing,{},{},{},{:.4f},{:.4f},{:.4f},{:.4f}\n", ranks, nn::thread_count(), t.steps, 1e3 * compute,
                 1e3 * allreduce, 1e3 * update, 1e3 * (compute + allreduce + update));
      if (!h.stopped.empty()) fmt::print("{}\n", h.stopped);
      if (!save.empty()) fmt::print("Weights in {}\n", save.string());
    }
    if (!same) throw nn::Error("the processes' weights differ after training");
    if (h.nan_loss) throw nn::Error(h.stopped);
    return 0;
  });
  if (status != 0 && ranks > 1) MPI_Abort(MPI_COMM_WORLD, status);  // the others may be waiting for this one
  return status;
}
