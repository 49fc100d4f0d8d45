#pragma once
// PNG plots drawn by gnuplot, through gnuplot-iostream's pipe.
//
//   nn::plot::Png png(plots / "digits.png", 800, 800);
//   png.gp() << "plot '-' matrix with image\n";
//   nn::plot::send_matrix(png.gp(), pixels, 28, 28);
//   png.finish();   // waits for gnuplot, then moves the file into place
//
// gnuplot is started without a shell, and draws into its standard output,
// which is an nn::PendingFile beside <file>: finish() renames it to <file> only
// when gnuplot exited cleanly, so a failed or interrupted plot never leaves a
// half-written PNG. No file name is ever sent to gnuplot; every other string
// goes through quote().
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "nn/tensor.hpp"

namespace nn::plot {

// True when a `gnuplot` program is on the PATH.
bool gnuplot_available();

class Png {
 public:
  Png(std::filesystem::path file, int width, int height);
  ~Png();
  Png(const Png&) = delete;
  Png& operator=(const Png&) = delete;

  // The command stream to gnuplot (a std::ostream): write commands and inline data.
  std::ostream& gp();
  // Closes gnuplot and moves the PNG into place; throws nn::Error if gnuplot failed.
  void finish();
  const std::filesystem::path& file() const { return file_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path file_;
};

// Inline data for `plot '-' matrix with image`: rows lines of cols values,
// then the `e` line that ends inline data.
void send_matrix(std::ostream& gp, const std::uint8_t* data, std::size_t rows, std::size_t cols);
void send_matrix(std::ostream& gp, const float* data, std::size_t rows, std::size_t cols);

// Draws a rows x cols matrix as an image in the current plot, row 0 at the
// top as an image is stored: sets the axis ranges to the matrix, then
// `plot '-' matrix with image` and its data. The caller sets the title and
// the palette.
void image(std::ostream& gp, const std::uint8_t* data, std::size_t rows, std::size_t cols);
void image(std::ostream& gp, const float* data, std::size_t rows, std::size_t cols);

// Channel c of image n of an NHWC tensor, as a row-major (H, W) array to plot.
std::vector<float> channel_image(const Tensor& t, std::size_t n, std::size_t c);

// gnuplot's string literal for `text`: in single quotes, where gnuplot
// expands nothing (in double quotes it would run `back-quoted` text as a shell
// command), with each ' written twice. Throws nn::Error for a control
// character: a newline would end the command and start another.
std::string quote(const std::string& text);

// Positions for text labels along one axis, wanted at `wanted`, so that no
// two are closer than `min_gap`: labels that would overlap are gathered into
// groups, each group spread evenly at min_gap around the mean of what its
// labels wanted, until no two groups overlap. The result is in the order of
// `wanted`, keeps the labels' order along the axis, and leaves a label that
// overlaps nothing where it was. Throws nn::Error for a gap that is not a
// positive finite number or a position that is not finite.
std::vector<double> spread_labels(const std::vector<double>& wanted, double min_gap);

}  // namespace nn::plot
