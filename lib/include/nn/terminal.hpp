#pragma once
// Drawing an image, or a probability, in the terminal with characters.
#include <cstddef>
#include <cstdint>
#include <string>

namespace nn {

// One line of text per pixel row, two characters per pixel (a terminal cell is
// about twice as tall as it is wide), from ' ' for 0 through ░ ▒ ▓ to █ for 255.
std::string shade_image(const std::uint8_t* pixels, std::size_t rows, std::size_t cols);

// A bar of '#' for a probability: round(p * width) characters, p clamped to
// [0, 1] first (a float outside the range of the integer it becomes is
// undefined behaviour), and "?" for NaN.
std::string probability_bar(float p, std::size_t width);

}  // namespace nn
