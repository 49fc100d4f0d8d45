#pragma once
// PGM ("portable graymap") images, the simplest format a drawing program can
// export: a text header, then the pixels as text (P2) or bytes (P5).
//
//   P5
//   # an optional comment
//   28 28
//   255
//   <28 * 28 bytes>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace nn {

struct GrayImage {
  std::size_t width = 0, height = 0;
  unsigned maxval = 255;             // the value of white
  std::vector<std::uint16_t> pixels;  // row-major, 0 (black) .. maxval (white)
};

// The widest and tallest image decode_pgm takes unless told less: 4096x4096
// pixels, 32 MiB decoded.
inline constexpr std::size_t kPgmMaxSide = 4096;

// Parses a P2 or P5 file held in memory; `name` appears in errors. Throws
// nn::Error for anything malformed or truncated, and for an image wider or
// taller than `max_side`, refused from its header before any pixel is
// decoded ("the image is 10000x10000, larger than 28x28 (resize it first)").
GrayImage decode_pgm(std::span<const std::uint8_t> bytes, std::string_view name,
                     std::size_t max_side = kPgmMaxSide);
GrayImage read_pgm(const std::filesystem::path& file, std::size_t max_side = kPgmMaxSide);

// An image as MNIST stores digits: 28x28 bytes, the digit light (high values)
// on a dark (0) background, 0..255.
//
// Polarity rule: MNIST digits are white on black. A photo or a drawing
// program usually gives black on white. The image's border (its outermost
// row and column of pixels on each side) is almost all background, so when
// the border's mean is brighter than half of maxval, the image is taken as
// black-on-white and inverted. The pixels are then scaled from 0..maxval to
// 0..255. `inverted` (when not null) tells which case it was.
// Throws nn::Error naming `name` unless the image is 28x28.
std::vector<std::uint8_t> to_mnist_digit(const GrayImage& image, std::string_view name, bool* inverted = nullptr);

// A drawing of any size made into a 28x28 digit the way MNIST's were made
// from their scans: the ink's bounding box is scaled, keeping its aspect
// ratio, to fit a 20x20 box (anti-aliased: each small pixel is the mean of the
// area of the drawing it covers), then placed in the 28x28 field so that its
// centre of mass falls on the field's centre (rounded to whole pixels).
//
// ink: (height, width) values 0..255, white ink on black, row by row.
// Returns the 784 bytes, or an empty vector when no pixel has ink.
// Throws nn::Error when ink.size() is not width * height.
std::vector<std::uint8_t> prepare_like_mnist(std::span<const std::uint8_t> ink, std::size_t width, std::size_t height);

}  // namespace nn
