#pragma once
// The Tensor every chapter from 02 on uses: float32, contiguous, row-major,
// 64-byte aligned, rank 1 to 4, NHWC (channels last) as in Keras.
//
//   nn::Tensor x({60000, 28, 28, 1});      // zero-filled
//   x(0, 5, 7, 0) = 1.0f;                  // element access, checked rank
//   nn::Tensor flat = x.reshape({60000, -1});   // a view: same buffer, new shape
//   nn::Tensor copy = x;                   // copying a Tensor copies its elements
//
// Const in, read-only out: a view of a const tensor is an nn::ConstView,
// which reads the same buffer but cannot write it.
//
// Keep it small and readable: this is a course, not Eigen.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "nn/shape.hpp"

namespace nn {

class ConstView;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape, float fill = 0.0f);
  Tensor(Shape shape, std::span<const float> values);  // values.size() == shape.size()

  Tensor(const Tensor& other);             // deep copy
  Tensor& operator=(const Tensor& other);  // deep copy
  // A move hands the buffer over and leaves the source empty: shape (), no
  // elements, data() null. (A defaulted move would leave it pointing into
  // the buffer it no longer owns.)
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  // No silent copy of a read-only view: write Tensor(view.tensor()) to copy
  // its elements, or keep it as a ConstView.
  Tensor(const ConstView&) = delete;
  Tensor& operator=(const ConstView&) = delete;

  const Shape& shape() const { return shape_; }
  std::size_t rank() const { return shape_.rank(); }
  std::size_t size() const { return shape_.size(); }
  std::size_t dim(std::size_t i) const { return shape_[i]; }

  float* data() { return data_; }
  const float* data() const { return data_; }
  std::span<float> span() { return {data_, size()}; }
  std::span<const float> span() const { return {data_, size()}; }

  // Flat element access.
  float& operator[](std::size_t i) { return data_[i]; }
  float operator[](std::size_t i) const { return data_[i]; }

  // Element access by index; the number of indices must equal the rank.
  float& operator()(std::size_t i) { return data_[offset(i)]; }
  float& operator()(std::size_t i, std::size_t j) { return data_[offset(i, j)]; }
  float& operator()(std::size_t i, std::size_t j, std::size_t k) { return data_[offset(i, j, k)]; }
  float& operator()(std::size_t i, std::size_t j, std::size_t k, std::size_t l) {
    return data_[offset(i, j, k, l)];
  }
  float operator()(std::size_t i) const { return data_[offset(i)]; }
  float operator()(std::size_t i, std::size_t j) const { return data_[offset(i, j)]; }
  float operator()(std::size_t i, std::size_t j, std::size_t k) const { return data_[offset(i, j, k)]; }
  float operator()(std::size_t i, std::size_t j, std::size_t k, std::size_t l) const {
    return data_[offset(i, j, k, l)];
  }

  // A view of the same elements with another shape: no copy, the same buffer.
  // One dimension may be -1: it is inferred from the others. Throws nn::Error
  // naming both shapes when the element counts differ. A view of a const
  // tensor is read-only.
  Tensor reshape(std::initializer_list<std::int64_t> dims);
  Tensor reshape(const Shape& shape);
  ConstView reshape(std::initializer_list<std::int64_t> dims) const;
  ConstView reshape(const Shape& shape) const;

  // A view of `count` items of the batch axis from `first`: (N, ...) ->
  // (count, ...), the same buffer, no copy. Throws nn::Error out of range.
  Tensor batch_view(std::size_t first, std::size_t count);
  ConstView batch_view(std::size_t first, std::size_t count) const;

  // True when both tensors look at the same buffer (one is a view of the other).
  bool shares_buffer_with(const Tensor& other) const { return storage_ && storage_ == other.storage_; }

  void fill(float value);

 private:
  std::size_t offset(std::size_t i) const;
  std::size_t offset(std::size_t i, std::size_t j) const;
  std::size_t offset(std::size_t i, std::size_t j, std::size_t k) const;
  std::size_t offset(std::size_t i, std::size_t j, std::size_t k, std::size_t l) const;
  // The shared implementations of the views: a Tensor on this buffer.
  Tensor view_with(const Shape& shape) const;
  Tensor batch_items(std::size_t first, std::size_t count) const;
  Shape inferred_shape(std::initializer_list<std::int64_t> dims) const;
  friend class ConstView;

  Shape shape_;
  std::shared_ptr<float[]> storage_;  // shared only between a tensor and its views
  float* data_ = nullptr;
};

// A read-only view of a tensor's elements: what reshape and batch_view give
// for a const tensor, and what layers return from their reused buffers. It
// shares the buffer (no copy; the buffer lives as long as any view of it)
// and converts to const Tensor& for every function that only reads a tensor.
class ConstView {
 public:
  ConstView() = default;
  ConstView(const Tensor& t) : t_(t.view_with(t.shape())) {}  // NOLINT: a view of t, read-only
  // Copies are views of the same buffer too (a Tensor copy would copy the elements).
  ConstView(const ConstView& other) : ConstView(other.t_) {}
  ConstView& operator=(const ConstView& other) {
    t_ = other.t_.view_with(other.t_.shape());
    return *this;
  }
  ConstView(ConstView&&) noexcept = default;
  ConstView& operator=(ConstView&&) noexcept = default;

  const Tensor& tensor() const { return t_; }
  operator const Tensor&() const { return t_; }  // NOLINT: read-only use as a Tensor

  const Shape& shape() const { return t_.shape(); }
  std::size_t rank() const { return t_.rank(); }
  std::size_t size() const { return t_.size(); }
  std::size_t dim(std::size_t i) const { return t_.dim(i); }
  const float* data() const { return t_.data(); }
  std::span<const float> span() const { return t_.span(); }
  float operator[](std::size_t i) const { return t_[i]; }
  template <typename... I>
  float operator()(I... i) const { return t_(i...); }
  ConstView reshape(std::initializer_list<std::int64_t> dims) const { return t_.reshape(dims); }
  ConstView reshape(const Shape& shape) const { return t_.reshape(shape); }
  ConstView batch_view(std::size_t first, std::size_t count) const { return t_.batch_view(first, count); }
  bool shares_buffer_with(const Tensor& other) const { return t_.shares_buffer_with(other); }

 private:
  Tensor t_;  // a view; only ever read
};

// Gives t the shape `shape`: a new zero tensor when its shape differs, else t
// unchanged (its old values stay). Training loops reuse buffers this way.
void ensure_shape(Tensor& t, const Shape& shape);

// A copy of `count` items of the batch axis starting at `first`:
// x (N, ...) -> (count, ...). Throws nn::Error when the range leaves x.
Tensor slice_batch(const Tensor& x, std::size_t first, std::size_t count);

}  // namespace nn
