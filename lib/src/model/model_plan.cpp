#include <memory>

#include "nn/fused.hpp"
#include "nn/model.hpp"

// The execution plan: what forward and backward run. It is the layers, with
// every pair that declares itself fusable (Layer::fusion_role: a conv_relu
// directly followed by a max_pool) replaced by one fused step. The plan looks
// only at what the layers declare, never at their C++ types: a layer of your
// own that declares a role is fused like the course's Conv2D and MaxPooling2D.
namespace nn {

namespace {

// conv_relu + max_pool as one step of the execution plan (see nn/fused.hpp).
// It owns no weights: it computes with the first layer's kernel and bias and
// writes their gradients, so the parameters, the optimizer and the summary
// still see the two Keras layers. The roles are asked again at every call, so
// a change of the convolution's variant after the plan was built is seen.
class FusedConvPool final : public Layer {
 public:
  FusedConvPool(Layer& conv, Layer& pool) : conv_(conv), pool_(pool) { name = conv.name + "+" + pool.name; }
  // Fusable: a ReLU convolution, then a max pooling.
  static bool applies(Layer& first, Layer& second) {
    return first.fusion_role().kind == FusionRole::Kind::conv_relu &&
           second.fusion_role().kind == FusionRole::Kind::max_pool;
  }
  std::string type() const override { return conv_.type() + "+" + pool_.type(); }
  std::string base_name() const override { return conv_.base_name() + "+" + pool_.base_name(); }
  Shape output_shape(const Shape& x) const override { return pool_.output_shape(conv_.output_shape(x)); }
  ConstView forward(const Tensor& x) override {
    const FusionRole conv = conv_.fusion_role(), pool = pool_.fusion_role();
    ensure_shape(y_, output_shape(x.shape()));
    conv2d_relu_maxpool_forward(x, conv.kernel->value, conv.bias->value, pool.pool, conv.variant, y_, where_);
    return y_;
  }
  // The convolution's, which this step writes the gradients of.
  std::vector<Parameter*> parameters() override { return conv_.parameters(); }
  ConstView backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx) override {
    const FusionRole conv = conv_.fusion_role(), pool = pool_.fusion_role();
    conv2d_relu_maxpool_backward(x, conv.kernel->value, y, where_, dy, pool.pool, conv.variant, conv.kernel->grad,
                                 conv.bias->grad, need_dx ? &dx_ : nullptr);
    return need_dx ? ConstView(dx_) : ConstView();
  }

 private:
  Layer& conv_;
  Layer& pool_;
  Tensor y_, dx_;
  std::vector<std::uint8_t> where_;  // the position of each maximum in its window
};

}  // namespace

// [snippet plan]
const std::vector<Layer*>& Sequential::execution_plan() {
  if (!plan_.empty() || layers_.empty()) return plan_;
  fused_.clear();
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (fusion_ && i + 1 < layers_.size() && FusedConvPool::applies(*layers_[i], *layers_[i + 1])) {
      fused_.push_back(std::make_unique<FusedConvPool>(*layers_[i], *layers_[i + 1]));  // one step for the pair
      plan_.push_back(fused_.back().get());
      ++i;
    } else {
      plan_.push_back(layers_[i].get());
    }
  }
  first_trainable_ = plan_.size();
  for (std::size_t i = 0; i < plan_.size() && first_trainable_ == plan_.size(); ++i)
    for (const Parameter* p : plan_[i]->parameters())
      if (p->trainable) first_trainable_ = i;
  return plan_;
}
// [end snippet plan]

}  // namespace nn
