#include "nn/pgm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "nn/error.hpp"
#include "nn/io.hpp"

namespace nn {

namespace {

// Reads the header's whitespace-separated numbers, skipping '#' comments.
class HeaderReader {
 public:
  HeaderReader(std::span<const std::uint8_t> bytes, std::string_view name) : bytes_(bytes), name_(name) {}
  unsigned long number(const char* what) {
    skip_space_and_comments();
    if (pos_ >= bytes_.size()) throw fail(fmt::format("file ends before the {}", what));
    if (!std::isdigit(bytes_[pos_])) throw fail(fmt::format("expected the {} here, found '{}'", what, static_cast<char>(bytes_[pos_])));
    unsigned long v = 0;
    while (pos_ < bytes_.size() && std::isdigit(bytes_[pos_])) {
      v = v * 10 + (bytes_[pos_++] - '0');
      if (v > 1'000'000) throw fail(fmt::format("the {} is absurdly large", what));
    }
    return v;
  }
  std::size_t pos() const { return pos_; }
  void advance(std::size_t n) { pos_ += n; }
  Error fail(const std::string& what) const { return Error(fmt::format("{}: {}", name_, what)); }

 private:
  void skip_space_and_comments() {
    while (pos_ < bytes_.size()) {
      if (std::isspace(bytes_[pos_])) ++pos_;
      else if (bytes_[pos_] == '#')
        while (pos_ < bytes_.size() && bytes_[pos_] != '\n') ++pos_;
      else break;
    }
  }
  std::span<const std::uint8_t> bytes_;
  std::string_view name_;
  std::size_t pos_ = 0;
};

}  // namespace

GrayImage decode_pgm(std::span<const std::uint8_t> bytes, std::string_view name, std::size_t max_side) {
  HeaderReader r(bytes, name);
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '2' && bytes[1] != '5'))
    throw r.fail("not a PGM image (it must start with P2 or P5)");
  const bool binary = bytes[1] == '5';
  r.advance(2);
  GrayImage img;
  img.width = r.number("width");
  img.height = r.number("height");
  // The caller's limit first: a reader of 28x28 digits need not decode 10^8 pixels to refuse them.
  if (img.width > max_side || img.height > max_side)
    throw r.fail(fmt::format("the image is {}x{}, larger than {}x{} (resize it first)", img.width, img.height,
                             max_side, max_side));
  const unsigned long maxval = r.number("maximum value");
  if (img.width == 0 || img.height == 0) throw r.fail(fmt::format("empty image ({}x{})", img.width, img.height));
  if (maxval == 0 || maxval > 65535) throw r.fail(fmt::format("maximum value {} is outside 1..65535", maxval));
  img.maxval = static_cast<unsigned>(maxval);
  // width and height are at most 10^6 each: n and the byte counts below fit.
  const std::size_t n = img.width * img.height;
  // Check that the file can hold n pixels before allocating them: a 20-byte
  // header may claim 10^10 pixels.
  if (binary) {
    // Exactly one whitespace byte separates the header from the pixels.
    if (r.pos() >= bytes.size() || !std::isspace(bytes[r.pos()])) throw r.fail("no pixel data after the header");
    const std::size_t start = r.pos() + 1, per = maxval > 255 ? 2 : 1, found = bytes.size() - start;
    if (found < n * per) throw r.fail(fmt::format("truncated: {} pixels need {} bytes, found {}", n, n * per, found));
    if (found > n * per)
      throw r.fail(fmt::format("{} byte{} after the {} pixels of a {}x{} image", found - n * per,
                               found - n * per == 1 ? "" : "s", n, img.width, img.height));
    img.pixels.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      img.pixels[i] = per == 1 ? bytes[start + i]
                               : static_cast<std::uint16_t>(bytes[start + 2 * i] << 8 | bytes[start + 2 * i + 1]);
    for (std::size_t i = 0; i < n; ++i)
      if (img.pixels[i] > maxval)
        throw r.fail(fmt::format("pixel {} has value {}, above the maximum {}", i, img.pixels[i], maxval));
  } else {
    // Each value as text takes a separator and at least one digit.
    const std::size_t found = bytes.size() - r.pos();
    if (found / 2 < n)
      throw r.fail(fmt::format("truncated: {} pixels as text need at least {} bytes, found {}", n, 2 * n, found));
    img.pixels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned long v = r.number("next pixel value");
      // Compared before narrowing to 16 bits: 65537 would wrap to 1.
      if (v > maxval) throw r.fail(fmt::format("pixel {} has value {}, above the maximum {}", i, v, maxval));
      img.pixels[i] = static_cast<std::uint16_t>(v);
    }
  }
  return img;
}

GrayImage read_pgm(const std::filesystem::path& file, std::size_t max_side) {
  return decode_pgm(read_file(file), file.string(), max_side);
}

std::vector<std::uint8_t> to_mnist_digit(const GrayImage& image, std::string_view name, bool* inverted) {
  if (image.width != 28 || image.height != 28)
    throw Error(fmt::format("{}: the image is {}x{}; the network reads 28x28 digits (resize it first)", name,
                            image.width, image.height));
  // [snippet polarity]
  double border = 0;  // the mean of the outermost ring of pixels: the background
  std::size_t count = 0;
  for (std::size_t r = 0; r < 28; ++r)
    for (std::size_t c = 0; c < 28; ++c)
      if (r == 0 || r == 27 || c == 0 || c == 27) border += image.pixels[r * 28 + c], ++count;
  const bool invert = border / count > image.maxval / 2.0;  // a light background: black on white
  // [end snippet polarity]
  if (inverted) *inverted = invert;
  std::vector<std::uint8_t> out(28 * 28);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const unsigned v = invert ? image.maxval - image.pixels[i] : image.pixels[i];
    out[i] = static_cast<std::uint8_t>((v * 255u + image.maxval / 2) / image.maxval);
  }
  return out;
}

namespace {

// Scaling n source pixels by s (target pixels per source pixel): for each
// target pixel, the source pixels it covers and by how much. A target pixel
// is the mean of the source area under it: source pixel i, covered over a
// length `overlap`, weighs overlap * s (a fully covered target's weights sum
// to 1; the last target, covered only in part, sums to less: a fainter edge).
struct Cover {
  std::size_t source;
  double weight;
};

std::vector<std::vector<Cover>> area_weights(std::size_t n, double s) {
  const auto m = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(static_cast<double>(n) * s - 1e-9)));
  std::vector<std::vector<Cover>> targets(m);
  for (std::size_t t = 0; t < m; ++t) {
    const double a = static_cast<double>(t) / s, b = std::min(static_cast<double>(t + 1) / s, static_cast<double>(n));
    for (auto i = static_cast<std::size_t>(a); static_cast<double>(i) < b; ++i) {
      const double overlap = std::min(b, static_cast<double>(i + 1)) - std::max(a, static_cast<double>(i));
      if (overlap > 0) targets[t].push_back({i, overlap * s});
    }
  }
  return targets;
}

}  // namespace

std::vector<std::uint8_t> prepare_like_mnist(std::span<const std::uint8_t> ink, std::size_t width, std::size_t height) {
  if (width == 0 || height == 0 || ink.size() / width != height || ink.size() % width != 0)
    throw Error(fmt::format("prepare_like_mnist: {} pixels are not a {}x{} drawing", ink.size(), width, height));
  // The ink's bounding box: columns x0..x1, rows y0..y1.
  std::size_t x0 = width, x1 = 0, y0 = height, y1 = 0;
  for (std::size_t y = 0; y < height; ++y)
    for (std::size_t x = 0; x < width; ++x)
      if (ink[y * width + x] > 0) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  if (x0 == width) return {};
  const std::size_t w = x1 - x0 + 1, h = y1 - y0 + 1;
  // [snippet prepare]
  const double s = 20.0 / static_cast<double>(std::max(w, h));  // the longer side becomes 20 pixels
  const auto cols = area_weights(w, s), rows = area_weights(h, s);
  const std::size_t bw = cols.size(), bh = rows.size();  // the box: (bh, bw), at most 20x20
  std::vector<double> across(h * bw);                     // (h, bw): the rows scaled first
  for (std::size_t y = 0; y < h; ++y)
    for (std::size_t t = 0; t < bw; ++t)
      for (const Cover& c : cols[t]) across[y * bw + t] += ink[(y0 + y) * width + x0 + c.source] * c.weight;
  std::vector<double> box(bh * bw);  // (bh, bw): then the columns
  double mass = 0, mx = 0, my = 0;   // the centre of mass, pixel x covering [x, x + 1)
  for (std::size_t t = 0; t < bh; ++t)
    for (std::size_t x = 0; x < bw; ++x) {
      double v = 0;
      for (const Cover& c : rows[t]) v += across[c.source * bw + x] * c.weight;
      box[t * bw + x] = v;
      mass += v, mx += v * (static_cast<double>(x) + 0.5), my += v * (static_cast<double>(t) + 0.5);
    }
  // Where the box's corner goes so that its centre of mass lands on (14, 14).
  const auto ox = static_cast<long>(std::lround(14.0 - mx / mass)), oy = static_cast<long>(std::lround(14.0 - my / mass));
  // [end snippet prepare]
  std::vector<std::uint8_t> out(28 * 28);  // (28, 28); what falls outside is cut
  for (std::size_t y = 0; y < bh; ++y)
    for (std::size_t x = 0; x < bw; ++x) {
      const long X = static_cast<long>(x) + ox, Y = static_cast<long>(y) + oy;
      if (X >= 0 && X < 28 && Y >= 0 && Y < 28)
        out[static_cast<std::size_t>(Y * 28 + X)] = static_cast<std::uint8_t>(std::lround(std::min(255.0, box[y * bw + x])));
    }
  return out;
}

}  // namespace nn
