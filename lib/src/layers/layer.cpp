#include "nn/layer.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/optimizer.hpp"

namespace nn {

Var Layer::record(Var /*x*/) {
  throw Error(fmt::format("{} ({}) has no form on the gradient tape: it cannot be recorded",
                          name.empty() ? base_name() : name, type()));
}

std::size_t Layer::param_count() {
  std::size_t n = 0;
  for (const Parameter* p : parameters()) n += p->size();
  return n;
}

ConstView Layer::backward_and_update(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx,
                                     Optimizer& optimizer) {
  const ConstView dx = backward(x, y, dy, need_dx);
  for (Parameter* p : parameters()) optimizer.update(*p);
  return dx;
}

}  // namespace nn
