#pragma once
// Every layer of the library, for a program that builds models from them:
//
//   #include "nn/layers.hpp"
//   #include "nn/model.hpp"
//
// nn/model.hpp itself knows layers only through the nn::Layer interface.
#include "nn/layers/batch_normalization.hpp"
#include "nn/layers/conv2d.hpp"
#include "nn/layers/dense.hpp"
#include "nn/layers/dropout.hpp"
#include "nn/layers/flatten.hpp"
#include "nn/layers/max_pooling2d.hpp"
#include "nn/layers/random_translation.hpp"
#include "nn/layers/tape_layer.hpp"
