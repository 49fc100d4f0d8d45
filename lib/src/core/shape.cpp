#include "nn/shape.hpp"

#include <fmt/format.h>

#include <algorithm>

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

Shape::Shape(std::initializer_list<std::size_t> dims) : Shape(std::span(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const std::size_t> dims) {
  if (dims.empty() || dims.size() > kMaxRank)
    throw Error(fmt::format("a tensor has rank 1 to {}, not {}", kMaxRank, dims.size()));
  rank_ = dims.size();
  std::copy(dims.begin(), dims.end(), dims_.begin());
  size_ = shape_size(this->dims());  // throws if the product overflows
  if (size_ > kMaxElements)
    throw Error(fmt::format("the shape {} has more elements than a float tensor can hold ({} at most)",
                            format_shape(this->dims()), kMaxElements));
}

bool Shape::operator==(const Shape& other) const {
  return rank_ == other.rank_ && std::equal(dims_.begin(), dims_.begin() + rank_, other.dims_.begin());
}

std::string Shape::str() const { return format_shape(dims()); }

}  // namespace nn
