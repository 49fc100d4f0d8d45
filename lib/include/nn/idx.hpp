#pragma once
// The IDX file format of MNIST: a big-endian header, then the raw bytes.
//
//   offset  bytes  meaning
//   0       2      0x00 0x00
//   2       1      type code (0x08 = unsigned byte, the only one MNIST uses)
//   3       1      rank: the number of dimensions
//   4       4*rank each dimension, a big-endian uint32
//   4+4*rank       the payload: product(dims) bytes, row-major
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace nn {

// An IDX array of unsigned bytes: images (N, 28, 28) or labels (N,).
struct IdxArray {
  std::vector<std::size_t> shape;   // e.g. {60000, 28, 28}
  std::vector<std::uint8_t> data;   // row-major, product(shape) bytes
};

// Decodes an unsigned-byte IDX file held in memory, raw or gzip-compressed
// (recognised by its first two bytes, 0x1f 0x8b). `name` appears in errors.
// Throws nn::Error for anything malformed; never returns part of a file.
IdxArray decode_idx(std::span<const std::uint8_t> bytes, std::string_view name);

// Reads and decodes one IDX file, raw or .gz.
IdxArray read_idx(const std::filesystem::path& file);

// The bytes of an IDX file for `array` (uncompressed).
std::vector<std::uint8_t> encode_idx(const IdxArray& array);

enum class Compression { none, gzip };

// Writes an IDX file atomically (a temporary file, then a rename).
void write_idx(const std::filesystem::path& file, const IdxArray& array,
               Compression compression = Compression::none);

}  // namespace nn
