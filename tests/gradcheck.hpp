#pragma once
// What the gradient checks share, all from the library: central differences
// and the check of any layer (nn/gradcheck.hpp), and the course's model in
// double (nn/model_gradcheck.hpp, in nn_course), where chapter 09's
// `ch09-sgd --gradcheck` runs the same code as these tests.
#include "nn/gradcheck.hpp"
#include "nn/model_gradcheck.hpp"

namespace testing_nn {

using nn::as_double;
using nn::central_differences;
using nn::check_layer_gradients;
using nn::conv_relu_pool;
using nn::conv_relu_pool_backward;
using nn::ConvReluPool;
using nn::DoubleModel;
using nn::layer_gradient_problems;
using nn::LayerGradientCheck;
using nn::pick;
using nn::random_doubles;
using nn::sample_indices;
using nn::smallest_magnitude;
using nn::smallest_pool_gap;

}  // namespace testing_nn
