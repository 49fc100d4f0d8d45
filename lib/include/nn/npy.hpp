#pragma once
// NumPy's .npy format for float32 tensors, so that NumPy and Keras users can
// load the course's weights with np.load:
//
//   "\x93NUMPY" 0x01 0x00  <header length, uint16 little-endian>
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 1, 32), }   padded with spaces, ends in '\n'
//   the float32 values, little-endian, row-major
#include <filesystem>
#include <string>

#include "nn/tensor.hpp"

namespace nn {

std::string npy_header(const Shape& shape);
// Written atomically (a temporary file, then a rename).
void save_npy(const std::filesystem::path& file, const Tensor& t);
// Throws nn::Error naming the file for anything malformed or not float32.
Tensor load_npy(const std::filesystem::path& file);

}  // namespace nn
