#include "testing.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <random>

#include "nn/error.hpp"
#include <unistd.h>

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

}  // namespace testing_nn
