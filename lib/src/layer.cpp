#include "nn/layer.hpp"

namespace nn {

std::size_t Layer::param_count() {
  std::size_t n = 0;
  for (const Parameter* p : parameters()) n += p->size();
  return n;
}

}  // namespace nn
