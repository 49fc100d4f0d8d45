#pragma once
// What the tests share: a temporary folder per test, and the real MNIST data.
#include <filesystem>
#include <string>

#include "nn/mnist.hpp"

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

// The repository's root folder.
std::filesystem::path source_dir();

}  // namespace testing_nn
