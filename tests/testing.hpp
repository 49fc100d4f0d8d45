#pragma once
// What the tests share: a temporary folder per test, and the real MNIST data.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nn/mnist.hpp"
#include "nn/tensor.hpp"

namespace testing_nn {

// A fresh empty folder, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The real MNIST folder: $MNIST_DIR, else <repo>/data/mnist (scripts/setup.sh fetches it).
std::filesystem::path mnist_dir();

// The real MNIST, loaded once per test program. Throws nn::Error (and so fails
// the test, naming the folder) when the data is missing: run scripts/setup.sh.
const nn::Mnist& real_mnist();

// Element-wise comparison with numpy's rule: |actual - expected| <= atol + rtol * |expected|
// (NaN never passes). Use it as EXPECT_TRUE(all_close(y, y_naive, 1e-5, 1e-4)) << "which case".
// A failure says how many elements are off, lists the first few (index,
// actual, expected, difference) and the largest difference.
::testing::AssertionResult all_close(std::span<const float> actual, std::span<const float> expected, double atol,
                                     double rtol);
::testing::AssertionResult all_close(std::span<const double> actual, std::span<const double> expected,
                                     double atol, double rtol);
// The same for tensors; the shapes must be equal too.
::testing::AssertionResult all_close(const nn::Tensor& actual, const nn::Tensor& expected, double atol,
                                     double rtol);

// A tensor of uniform random values in [lo, hi), the same for the same seed.
nn::Tensor random_tensor(const nn::Shape& shape, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f);

// The message of the nn::Error that fn throws, or "" when it throws none.
std::string error_of(const std::function<void()>& fn);

// The repository's root folder.
std::filesystem::path source_dir();

// What a chapter's executable did: its exit status and its stdout and stderr together.
struct ProgramRun {
  int exit_code = -1;  // 128 + the signal when a signal killed it
  std::string output;
};
// Runs build/bin/<program> with `args` and waits for it. (The test target
// must depend on the program's target: tests/CMakeLists.txt.)
ProgramRun run_program(const std::string& program, const std::vector<std::string>& args);
// The words that start build/bin/<program>: its path, after the emulator and
// its options in a cross build (qemu), for a command such as mpirun that
// starts the program itself.
std::vector<std::string> program_words(const std::string& program);
// Runs `command` (a program on the PATH, or a path) with `args`, quoted for
// the shell, and waits for it: for the tests that start mpirun.
ProgramRun run_command(const std::string& command, const std::vector<std::string>& args);

// A dataset folder in `dir`: the four MNIST file names, holding images of
// zeros of the shapes given (N, height, width) and N labels 0, 1, ..., 9, 0, ...
void write_mnist_folder(const std::filesystem::path& dir, const std::vector<std::size_t>& train_images,
                        const std::vector<std::size_t>& test_images);

// Chapters 06-09 run their layers on the first batch of 32 training images:
// `program` with 0 and with 5 training images must exit 1 with the message
// that says so, and draw nothing (it used to fail with "cannot view items
// 0..32 of a batch of shape (0, 28, 28, 1)").
void expect_too_few_training_images_refused(const std::string& program);

}  // namespace testing_nn
