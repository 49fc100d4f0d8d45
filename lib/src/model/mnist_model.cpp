#include "nn/layers.hpp"
#include "nn/model.hpp"

namespace nn {

Sequential make_mnist_model(std::uint64_t seed, float init_scale) {
  const float s = init_scale;  // 1: Keras's glorot_uniform (chapter 10's --init-scale tries others)
  // [snippet mnist-model]
  Sequential model({28, 28, 1});
  model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::relu, .seed = seed, .init_scale = s}));  // -> (26, 26, 32)
  model.add(MaxPooling2D({.pool = 2}));                                                                            // -> (13, 13, 32)
  model.add(Flatten());                                                                                            // -> (5408,)
  model.add(Dense({.units = 100, .activation = Activation::relu, .seed = seed + 1, .init_scale = s}));             // -> (100,)
  model.add(Dense({.units = 10, .seed = seed + 2, .init_scale = s}));                                              // softmax comes with the loss
  // [end snippet mnist-model]
  return model;
}

}  // namespace nn
