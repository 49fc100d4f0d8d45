#pragma once
// Drawing an image in the terminal with shading characters.
#include <cstddef>
#include <cstdint>
#include <string>

namespace nn {

// One line of text per pixel row, two characters per pixel (a terminal cell is
// about twice as tall as it is wide), from ' ' for 0 through ░ ▒ ▓ to █ for 255.
std::string shade_image(const std::uint8_t* pixels, std::size_t rows, std::size_t cols);

}  // namespace nn
