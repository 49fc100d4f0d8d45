#include "testing.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
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

fs::path source_dir() { return NN_SOURCE_DIR; }

}  // namespace testing_nn
