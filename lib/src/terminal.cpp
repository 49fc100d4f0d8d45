#include "nn/terminal.hpp"

namespace nn {

std::string shade_image(const std::uint8_t* pixels, std::size_t rows, std::size_t cols) {
  static const char* const kShades[] = {" ", "░", "▒", "▓", "█"};
  std::string out;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      // 0..255 -> 0..4, rounding to the nearest shade.
      const char* s = kShades[(pixels[r * cols + c] * 4 + 127) / 255];
      out += s;
      out += s;
    }
    out += '\n';
  }
  return out;
}

}  // namespace nn
