#include "nn/layer.hpp"

#include "nn/optimizer.hpp"

namespace nn {

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
