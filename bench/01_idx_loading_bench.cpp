// Chapter 01: how fast the 60,000 training images load, raw and gzip.
//
//   build/bin/01_idx_loading_bench
//
// bytes_per_second is the size of the decoded images (47 MB) over the time,
// so raw and gzip are compared on the same work. Each is checked before it is
// timed: the file must decode to the raw file's images, byte for byte.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include "nn/error.hpp"
#include "nn/idx.hpp"
#include "nn/io.hpp"
#include "nn/mnist.hpp"

namespace {

std::filesystem::path data_dir() {
  if (const char* env = std::getenv("MNIST_DIR"); env && *env) return env;
  return NN_DEFAULT_DATA_DIR;
}

// Checked before timing: `file` holds the 60,000 training images, the same
// bytes as `expected` (the raw file as read_idx decodes it).
void run(benchmark::State& state, const std::filesystem::path& file, const nn::IdxArray& expected) {
  const auto check = nn::read_idx(file);
  if (check.shape != std::vector<std::size_t>{60000, 28, 28} || check.shape != expected.shape ||
      check.data != expected.data) {
    state.SkipWithError("the file does not decode to the training images");
    return;
  }
  for (auto _ : state) {
    auto a = nn::read_idx(file);
    benchmark::DoNotOptimize(a.data.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * check.data.size()));
}

void load_train_images_raw(benchmark::State& state) {
  try {
    const auto file = nn::find_idx_file(data_dir(), "train-images-idx3-ubyte");
    run(state, file, nn::read_idx(file));
  } catch (const nn::Error& e) {  // no data: say so (scripts/setup.sh fetches it)
    state.SkipWithError(e.what());
  }
}

void load_train_images_gzip(benchmark::State& state) {
  // The same images, gzip-compressed once into a temporary file.
  const auto gz = std::filesystem::temp_directory_path() / "nn-bench-train-images-idx3-ubyte.gz";
  try {
    const auto raw = nn::read_idx(nn::find_idx_file(data_dir(), "train-images-idx3-ubyte"));
    nn::write_idx(gz, raw, nn::Compression::gzip);
    run(state, gz, raw);
  } catch (const nn::Error& e) {
    state.SkipWithError(e.what());
  }
  std::filesystem::remove(gz);
}

BENCHMARK(load_train_images_raw)->Unit(benchmark::kMillisecond);
BENCHMARK(load_train_images_gzip)->Unit(benchmark::kMillisecond);

}  // namespace
