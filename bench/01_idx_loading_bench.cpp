// Chapter 01: how fast the 60,000 training images load, raw and gzip.
//
//   build/bin/01_idx_loading_bench
//
// bytes_per_second is the size of the decoded images (47 MB) over the time,
// so raw and gzip are compared on the same work.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include "nn/idx.hpp"
#include "nn/io.hpp"
#include "nn/mnist.hpp"

namespace {

std::filesystem::path data_dir() {
  if (const char* env = std::getenv("MNIST_DIR"); env && *env) return env;
  return NN_DEFAULT_DATA_DIR;
}

void run(benchmark::State& state, const std::filesystem::path& file) {
  auto check = nn::read_idx(file);  // checked before timing: the right file, the right shape
  if (check.shape != std::vector<std::size_t>{60000, 28, 28}) {
    state.SkipWithError("unexpected shape");
    return;
  }
  for (auto _ : state) {
    auto a = nn::read_idx(file);
    benchmark::DoNotOptimize(a.data.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * check.data.size()));
}

void load_train_images_raw(benchmark::State& state) {
  run(state, nn::find_idx_file(data_dir(), "train-images-idx3-ubyte"));
}

void load_train_images_gzip(benchmark::State& state) {
  // The same images, gzip-compressed once into a temporary file.
  auto gz = std::filesystem::temp_directory_path() / "nn-bench-train-images-idx3-ubyte.gz";
  nn::write_idx(gz, nn::read_idx(nn::find_idx_file(data_dir(), "train-images-idx3-ubyte")),
                nn::Compression::gzip);
  run(state, gz);
  std::filesystem::remove(gz);
}

BENCHMARK(load_train_images_raw)->Unit(benchmark::kMillisecond);
BENCHMARK(load_train_images_gzip)->Unit(benchmark::kMillisecond);

}  // namespace
