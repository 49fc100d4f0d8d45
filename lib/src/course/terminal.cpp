#include "nn/terminal.hpp"

#include <algorithm>
#include <cmath>

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

std::string probability_bar(float p, std::size_t width) {
  if (std::isnan(p)) return "?";
  const double clamped = std::clamp(static_cast<double>(p), 0.0, 1.0);  // in range before the cast
  return std::string(static_cast<std::size_t>(clamped * static_cast<double>(width) + 0.5), '#');
}

}  // namespace nn
