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
// Parses a .npy file held in memory (version 1.0, 2.0 or 3.0); `name` appears
// in errors. The header dict is read as NumPy reads it (a Python literal), but
// only in the plain form NumPy writes: the keys 'descr', 'fortran_order' and
// 'shape' once each, in any order, ' or " strings without escapes, a tuple of
// decimal integers, optional trailing commas, spaces and newlines. Comments,
// other spellings ('float32', 10L, 0x10) and anything NumPy would read
// differently throw nn::Error naming the field; so does data that is not
// '<f4' (float32, little-endian), C order, rank 1 to 4, exactly
// prod(shape) * 4 bytes.
Tensor decode_npy(std::span<const std::uint8_t> bytes, std::string_view name);
// read_file, then decode_npy: errors name the file.
Tensor load_npy(const std::filesystem::path& file);

}  // namespace nn
