#pragma once
// What the files of Sequential share (model.cpp, model_plan.cpp,
// model_summary.cpp, model_fit.cpp): shape helpers. Not installed.
#include <string>

#include "nn/shape.hpp"

namespace nn::model_impl {

// A shape with a batch axis of n in front of a sample shape.
Shape with_batch(std::size_t n, const Shape& sample);

// "(None, 26, 26, 32)": Keras's way to print a shape whose batch size is open.
std::string keras_shape(const Shape& s);

}  // namespace nn::model_impl
