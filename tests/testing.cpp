#include "testing.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <random>
#include <sstream>

#include "nn/error.hpp"
#include "nn/idx.hpp"
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

namespace testing_nn {

namespace fs = std::filesystem;

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "test";
  path_ = fs::temp_directory_path() /
          ("nn-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path mnist_dir() {
  if (const char* env = std::getenv("MNIST_DIR"); env && *env) return env;
  return NN_DEFAULT_DATA_DIR;
}

const nn::Mnist& real_mnist() {
  static const nn::Mnist m = nn::load_mnist(mnist_dir());
  return m;
}

namespace {

template <class T>
::testing::AssertionResult all_close_impl(std::span<const T> actual, std::span<const T> expected, double atol,
                                          double rtol) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << actual.size() << " values, expected " << expected.size();
  constexpr std::size_t kShown = 5;
  std::size_t bad = 0, worst = 0;
  double worst_diff = -1.0;
  std::string first;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i], diff = std::abs(a - e);
    const bool ok = diff <= atol + rtol * std::abs(e);  // false for NaN
    if (!std::isnan(worst_diff) && !(diff <= worst_diff)) worst_diff = diff, worst = i;  // the first NaN sticks
    if (ok) continue;
    if (bad++ < kShown)
      first += fmt::format("\n  [{}] actual {:.9g}, expected {:.9g}, difference {:.3g}", i, a, e, diff);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << fmt::format("{} of {} values differ by more than {:g} + {:g} * |expected|; the first:{}\n"
                        "  largest difference {:.3g} at [{}]: actual {:.9g}, expected {:.9g}",
                        bad, actual.size(), atol, rtol, first, worst_diff, worst,
                        static_cast<double>(actual[worst]), static_cast<double>(expected[worst]));
}

}  // namespace

::testing::AssertionResult all_close(std::span<const float> actual, std::span<const float> expected, double atol,
                                     double rtol) {
  return all_close_impl(actual, expected, atol, rtol);
}

::testing::AssertionResult all_close(std::span<const double> actual, std::span<const double> expected,
                                     double atol, double rtol) {
  return all_close_impl(actual, expected, atol, rtol);
}

::testing::AssertionResult all_close(const nn::Tensor& actual, const nn::Tensor& expected, double atol,
                                     double rtol) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure()
           << "shape " << actual.shape().str() << ", expected " << expected.shape().str();
  return all_close_impl(actual.span(), expected.span(), atol, rtol);
}

nn::Tensor random_tensor(const nn::Shape& shape, std::uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  nn::Tensor t(shape);
  for (float& v : t.span()) v = u(rng);
  return t;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const nn::Error& e) {
    return e.what();
  }
  return "";
}

fs::path source_dir() { return NN_SOURCE_DIR; }

namespace {
std::string shell_quoted(const std::string& s) {  // for the shell: '...' with each ' as '\''
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

// Runs `command` (already quoted) with `args` through the shell, output and errors together.
ProgramRun run_shell(std::string command, const std::vector<std::string>& args) {
  for (const auto& a : args) {
    command += ' ';
    command += shell_quoted(a);
  }
  command += " 2>&1";
  ProgramRun run;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) run.output.append(buffer, n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  return run;
}
}  // namespace

std::vector<std::string> program_words(const std::string& program) {
  std::vector<std::string> words;
#ifdef NN_EMULATOR
  // A cross build: qemu and its options, words without spaces.
  std::istringstream emulator(NN_EMULATOR);
  for (std::string word; emulator >> word;) words.push_back(word);
#endif
  words.push_back((fs::path(NN_BIN_DIR) / program).string());
  return words;
}

ProgramRun run_program(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> words = program_words(program);
  const std::string command = shell_quoted(words.front());
  words.erase(words.begin());
  words.insert(words.end(), args.begin(), args.end());
  return run_shell(command, words);
}

ProgramRun run_command(const std::string& command, const std::vector<std::string>& args) {
  return run_shell(shell_quoted(command), args);
}

void write_mnist_folder(const fs::path& dir, const std::vector<std::size_t>& train_images,
                        const std::vector<std::size_t>& test_images) {
  fs::create_directories(dir);
  auto write = [&](const std::string& images, const std::string& labels, const std::vector<std::size_t>& shape) {
    std::size_t pixels = 1;
    for (std::size_t d : shape) pixels *= d;
    nn::write_idx(dir / images, nn::IdxArray{shape, std::vector<std::uint8_t>(pixels, 0)});
    std::vector<std::uint8_t> y(shape.empty() ? 0 : shape[0]);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::uint8_t>(i % 10);
    nn::write_idx(dir / labels, nn::IdxArray{{y.size()}, y});
  };
  write("train-images-idx3-ubyte", "train-labels-idx1-ubyte", train_images);
  write("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", test_images);
}

void expect_too_few_training_images_refused(const std::string& program) {
  for (const std::size_t n : {0, 5}) {
    TempDir dir;
    write_mnist_folder(dir / "data", {n, 28, 28}, {5, 28, 28});
    auto run = run_program(program, {"--data", (dir / "data").string(), "--plots", (dir / "plots").string(), "--seed", "1"});
    EXPECT_EQ(run.exit_code, 1) << program << "\n" << run.output;
    EXPECT_NE(run.output.find(n == 0 ? "data: the training set is empty: this chapter runs its layers on "
                                       "the first batch of 32 training images"
                                     : "data: the training set holds only 5 images: this chapter"),
              std::string::npos)
        << program << "\n" << run.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "plots")) << program << ": nothing is drawn";
  }
}

}  // namespace testing_nn
