#pragma once
// nn::Shape, the dimensions of a Tensor, and the helpers that format and
// count the dimensions of any shape.
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace nn {

// A shape written the way Keras and NumPy print it: (60000, 28, 28) and, for
// rank 1, (60000,) with the trailing comma of a one-element Python tuple.
std::string format_shape(std::span<const std::size_t> dims);

// The number of elements of a shape; throws nn::Error when the product does
// not fit in std::size_t.
std::size_t shape_size(std::span<const std::size_t> dims);

// A Tensor's buffer starts at a multiple of this many bytes: a cache line,
// and an AVX-512 register.
inline constexpr std::size_t kTensorAlignment = 64;

// A shape of rank 1 to 4, e.g. Shape{32, 26, 26, 32}.
class Shape {
 public:
  static constexpr std::size_t kMaxRank = 4;
  // The most elements a shape may have: their bytes as floats, rounded up to
  // kTensorAlignment, must fit in std::ptrdiff_t (the largest object C++ can
  // address). Past it, n * sizeof(float) would wrap around and allocate a
  // small buffer under a huge shape: (2^62 + 1) * 4 bytes wraps to 4.
  static constexpr std::size_t kMaxElements = (PTRDIFF_MAX - (kTensorAlignment - 1)) / sizeof(float);
  Shape() = default;
  Shape(std::initializer_list<std::size_t> dims);
  explicit Shape(std::span<const std::size_t> dims);

  std::size_t rank() const { return rank_; }
  std::size_t operator[](std::size_t i) const { return dims_[i]; }
  std::size_t size() const { return size_; }  // the number of elements
  std::span<const std::size_t> dims() const { return {dims_.data(), rank_}; }
  bool operator==(const Shape& other) const;
  std::string str() const;  // "(60000, 28, 28, 1)", as Keras prints it

 private:
  std::array<std::size_t, kMaxRank> dims_{};
  std::size_t rank_ = 0;
  std::size_t size_ = 0;  // the product of the dims, computed once: loops test it often
};

}  // namespace nn
