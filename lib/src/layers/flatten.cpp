#include "nn/layers/flatten.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"

namespace nn {

Shape flatten_output_shape(const Shape& x) {
  if (x.rank() < 2) throw Error(fmt::format("Flatten needs a batch axis and at least one more: got {}", x.str()));
  std::size_t features = 1;  // H * W * C
  for (std::size_t i = 1; i < x.rank(); ++i) features *= x[i];
  return {x[0], features};
}

}  // namespace nn
