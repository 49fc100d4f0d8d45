#include "nn/shape.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"

namespace nn {

std::string format_shape(std::span<const std::size_t> dims) {
  if (dims.size() == 1) return fmt::format("({},)", dims[0]);
  return fmt::format("({})", fmt::join(dims, ", "));
}

std::size_t shape_size(std::span<const std::size_t> dims) {
  std::size_t n = 1;
  for (std::size_t d : dims) {
    if (__builtin_mul_overflow(n, d, &n))
      throw Error(fmt::format("the shape {} has more elements than fit in memory",
                              format_shape(dims)));
  }
  return n;
}

}  // namespace nn
