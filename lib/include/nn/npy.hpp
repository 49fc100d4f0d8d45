#pragma once
// NumPy's .npy format for float32 tensors, so that NumPy and Keras users can
// load the course's weights with np.load:
//
//   "\x93NUMPY" 0x01 0x00  <header length, uint16 little-endian>
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 1, 32), }   padded with spaces, ends in '\n'
//   the float32 values, little-endian, row-major
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nn/tensor.hpp"

namespace nn {

std::string npy_header(const Shape& shape);
// Written atomically (a temporary file, then a rename).
// The bytes of a .npy file holding t; decode_npy reads them back.
std::vector<std::uint8_t> encode_npy(const Tensor& t);
void save_npy(const std::filesystem::path& file, const Tensor& t);
// Parses a .npy file held in memory; `name` appears in errors. Throws
// nn::Error for anything malformed or not float32.
Tensor decode_npy(std::span<const std::uint8_t> bytes, std::string_view name);
// read_file, then decode_npy: errors name the file.
Tensor load_npy(const std::filesystem::path& file);

}  // namespace nn
