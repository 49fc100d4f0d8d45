#include "nn/layers.hpp"
#include "nn/model.hpp"

namespace nn {

Sequential make_mnist_model(std::uint64_t seed) {
  // [snippet mnist-model]
  Sequential model({28, 28, 1});
  model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::relu, .seed = seed}));  // -> (26, 26, 32)
  model.add(MaxPooling2D({.pool = 2}));                                                           // -> (13, 13, 32)
  model.add(Flatten());                                                                           // -> (5408,)
  model.add(Dense({.units = 100, .activation = Activation::relu, .seed = seed + 1}));                // -> (100,)
  model.add(Dense({.units = 10, .seed = seed + 2}));  // softmax comes with the loss
  // [end snippet mnist-model]
  return model;
}

}  // namespace nn
