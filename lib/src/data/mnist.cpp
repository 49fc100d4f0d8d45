#include "nn/mnist.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/shape.hpp"

namespace nn {

namespace fs = std::filesystem;

fs::path find_idx_file(const fs::path& dir, const std::string& base) {
  // A path that cannot be looked at (no permission, a symlink loop) is an error naming it and the cause.
  auto found = [](const fs::path& p) {
    std::error_code ec;
    const bool exists = fs::exists(p, ec);
    if (ec) throw Error(fmt::format("{}: cannot look at it: {}", p.string(), ec.message()));
    return exists;
  };
  fs::path raw = dir / base;
  if (found(raw)) return raw;
  fs::path gz = dir / (base + ".gz");
  if (found(gz)) return gz;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(fmt::format("{}: dataset folder not found (run scripts/setup.sh, or pass --data DIR)",
                            dir.string()));
  throw Error(fmt::format("{}: no such file (nor {}.gz)", raw.string(), base));
}

void check_images_and_labels(const IdxArray& x, const IdxArray& y, const std::string& x_name,
                             const std::string& y_name, int num_classes, std::optional<ImageSize> size) {
  if (x.shape.size() != 3)
    throw Error(fmt::format("{}: images have shape {}; expected (N, height, width)", x_name,
                            format_shape(x.shape)));
  if (x.shape[1] == 0 || x.shape[2] == 0)
    throw Error(fmt::format("{}: images have shape {}: {}x{} pixels is no image", x_name, format_shape(x.shape),
                            x.shape[1], x.shape[2]));
  if (size && (x.shape[1] != size->height || x.shape[2] != size->width))
    throw Error(fmt::format("{}: images have shape {}: they are {}x{}, but the network reads {}x{} digits", x_name,
                            format_shape(x.shape), x.shape[1], x.shape[2], size->height, size->width));
  if (y.shape.size() != 1)
    throw Error(fmt::format("{}: labels have shape {}; expected (N,)", y_name, format_shape(y.shape)));
  if (x.shape[0] != y.shape[0])
    throw Error(fmt::format("{} has {} images but {} has {} labels", x_name, x.shape[0], y_name,
                            y.shape[0]));
  for (std::size_t i = 0; i < y.data.size(); ++i)
    if (y.data[i] >= num_classes)
      throw Error(fmt::format("{}: label {} at index {} is outside 0..{}", y_name, y.data[i], i,
                              num_classes - 1));
}

Mnist load_mnist(const fs::path& dir, std::optional<ImageSize> size) {
  // [snippet load-mnist]
  const fs::path x_train = find_idx_file(dir, "train-images-idx3-ubyte");
  const fs::path y_train = find_idx_file(dir, "train-labels-idx1-ubyte");
  const fs::path x_test = find_idx_file(dir, "t10k-images-idx3-ubyte");
  const fs::path y_test = find_idx_file(dir, "t10k-labels-idx1-ubyte");
  Mnist m{read_idx(x_train), read_idx(y_train), read_idx(x_test), read_idx(y_test)};
  check_images_and_labels(m.x_train, m.y_train, x_train.string(), y_train.string(), 10, size);
  check_images_and_labels(m.x_test, m.y_test, x_test.string(), y_test.string(), 10, size);
  return m;
  // [end snippet load-mnist]
}

}  // namespace nn
