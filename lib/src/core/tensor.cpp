#include "nn/tensor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "nn/error.hpp"
#include "nn/shape.hpp"

namespace nn {

namespace {

constexpr std::size_t kAlignment = kTensorAlignment;

std::shared_ptr<float[]> allocate(std::size_t n) {
  // n <= Shape::kMaxElements (the Shape checked it), so this cannot overflow.
  std::size_t bytes = (std::max<std::size_t>(n, 1) * sizeof(float) + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return std::shared_ptr<float[]>(static_cast<float*>(p), [](float* q) { std::free(q); });
}

}  // namespace

Tensor::Tensor(Shape shape, float fill_value) : shape_(shape), storage_(allocate(shape.size())) {
  data_ = storage_.get();
  fill(fill_value);
}

Tensor::Tensor(Shape shape, std::span<const float> values) : Tensor(shape) {
  if (values.size() != shape.size())
    throw Error(fmt::format("{} values for a tensor of shape {} ({} elements)", values.size(),
                            shape.str(), shape.size()));
  std::copy(values.begin(), values.end(), data_);
}

Tensor::Tensor(const Tensor& other) : shape_(other.shape_) {
  if (other.data_ == nullptr) return;
  storage_ = allocate(size());
  data_ = storage_.get();
  std::memcpy(data_, other.data_, size() * sizeof(float));
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this != &other) *this = Tensor(other);
  return *this;
}

Tensor::Tensor(Tensor&& other) noexcept
    : shape_(std::exchange(other.shape_, Shape())), storage_(std::move(other.storage_)),
      data_(std::exchange(other.data_, nullptr)) {}

Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this != &other) {
    shape_ = std::exchange(other.shape_, Shape());
    storage_ = std::move(other.storage_);  // leaves other.storage_ empty
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

void Tensor::fill(float value) { std::fill(data_, data_ + size(), value); }

Tensor Tensor::view_with(const Shape& shape) const {
  if (shape.size() != size())
    throw Error(fmt::format("cannot reshape {} ({} elements) to {} ({} elements)", shape_.str(), size(),
                            shape.str(), shape.size()));
  Tensor view;
  view.shape_ = shape;
  view.storage_ = storage_;
  view.data_ = data_;
  return view;
}

Tensor Tensor::reshape(const Shape& shape) { return view_with(shape); }
ConstView Tensor::reshape(const Shape& shape) const { return ConstView(view_with(shape)); }
Tensor Tensor::batch_view(std::size_t first, std::size_t count) { return batch_items(first, count); }
ConstView Tensor::batch_view(std::size_t first, std::size_t count) const {
  return ConstView(batch_items(first, count));
}
Tensor Tensor::reshape(std::initializer_list<std::int64_t> dims) { return view_with(inferred_shape(dims)); }
ConstView Tensor::reshape(std::initializer_list<std::int64_t> dims) const {
  return ConstView(view_with(inferred_shape(dims)));
}

Tensor Tensor::batch_items(std::size_t first, std::size_t count) const {
  if (rank() == 0 || first > dim(0) || count > dim(0) - first)
    throw Error(fmt::format("cannot view items {}..{} of a batch of shape {}", first, first + count, shape_.str()));
  std::array<std::size_t, Shape::kMaxRank> dims{};
  std::copy(shape_.dims().begin(), shape_.dims().end(), dims.begin());
  dims[0] = count;
  Tensor view;
  view.shape_ = Shape(std::span(dims.data(), rank()));
  view.storage_ = storage_;
  view.data_ = data_ + first * (dim(0) == 0 ? 0 : size() / dim(0));
  return view;
}

// The shape that reshape(dims) asks for, with a -1 worked out.
Shape Tensor::inferred_shape(std::initializer_list<std::int64_t> dims) const {
  std::array<std::size_t, Shape::kMaxRank> out{};
  if (dims.size() == 0 || dims.size() > Shape::kMaxRank)
    throw Error(fmt::format("cannot reshape {} to rank {}: a tensor has rank 1 to {}", shape_.str(),
                            dims.size(), Shape::kMaxRank));
  std::size_t known = 1, k = 0;
  int inferred = -1;
  std::string wanted;
  for (std::int64_t d : dims) {
    wanted += (wanted.empty() ? "" : ", ") + std::to_string(d);
    if (d == -1) {
      if (inferred >= 0) throw Error(fmt::format("cannot reshape to ({}): only one dimension may be -1", wanted));
      inferred = static_cast<int>(k);
    } else if (d < 0) {
      throw Error(fmt::format("cannot reshape to a negative dimension {}", d));
    } else {
      out[k] = static_cast<std::size_t>(d);
      known *= out[k];
    }
    ++k;
  }
  if (inferred >= 0) {
    if (known == 0 || size() % known != 0)
      throw Error(fmt::format("cannot reshape {} ({} elements) to ({}): {} is not a multiple of {}",
                              shape_.str(), size(), wanted, size(), known));
    out[inferred] = size() / known;
  }
  return Shape(std::span(out.data(), dims.size()));
}

std::size_t Tensor::offset(std::size_t i) const {
  if (rank() != 1) throw Error(fmt::format("1 index for a tensor of shape {}", shape_.str()));
  return i;
}
std::size_t Tensor::offset(std::size_t i, std::size_t j) const {
  if (rank() != 2) throw Error(fmt::format("2 indices for a tensor of shape {}", shape_.str()));
  return i * shape_[1] + j;
}
std::size_t Tensor::offset(std::size_t i, std::size_t j, std::size_t k) const {
  if (rank() != 3) throw Error(fmt::format("3 indices for a tensor of shape {}", shape_.str()));
  return (i * shape_[1] + j) * shape_[2] + k;
}
std::size_t Tensor::offset(std::size_t i, std::size_t j, std::size_t k, std::size_t l) const {
  if (rank() != 4) throw Error(fmt::format("4 indices for a tensor of shape {}", shape_.str()));
  return ((i * shape_[1] + j) * shape_[2] + k) * shape_[3] + l;
}

void ensure_shape(Tensor& t, const Shape& shape) {
  if (t.rank() == 0 || !(t.shape() == shape)) t = Tensor(shape);
}

Tensor slice_batch(const Tensor& x, std::size_t first, std::size_t count) {
  return Tensor(x.batch_view(first, count).tensor());  // the copy constructor copies the viewed elements
}

}  // namespace nn
