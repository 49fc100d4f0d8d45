#include "nn/npy.hpp"

#include <fmt/format.h>

#include <bit>
#include <cctype>
#include <cstring>
#include <vector>

#include "nn/error.hpp"
#include "nn/io.hpp"

namespace nn {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian machine");

namespace {
constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kPreamble = 10;  // magic (6) + version (2) + header length (2)
}  // namespace

std::string npy_header(const Shape& shape) {
  std::string dims;
  for (std::size_t d : shape.dims()) dims += fmt::format("{}, ", d);
  if (shape.rank() > 1) dims.erase(dims.size() - 2);  // (3, 3, 1, 32) but (10,)
  else dims.pop_back();
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // Pad with spaces so that the data starts at a multiple of 64 bytes.
  const std::size_t total = (kPreamble + header.size() + 1 + 63) / 64 * 64;
  header.append(total - kPreamble - header.size() - 1, ' ');
  return header + '\n';
}

std::vector<std::uint8_t> encode_npy(const Tensor& t) {
  const std::string header = npy_header(t.shape());
  std::vector<std::uint8_t> bytes(kPreamble + header.size() + t.size() * sizeof(float));
  std::memcpy(bytes.data(), kMagic, 6);
  bytes[6] = 1;  // version 1.0
  bytes[7] = 0;
  bytes[8] = static_cast<std::uint8_t>(header.size() & 0xff);
  bytes[9] = static_cast<std::uint8_t>(header.size() >> 8);
  std::memcpy(bytes.data() + kPreamble, header.data(), header.size());
  if (t.size() > 0) std::memcpy(bytes.data() + kPreamble + header.size(), t.data(), t.size() * sizeof(float));
  return bytes;
}

void save_npy(const std::filesystem::path& file, const Tensor& t) { write_file_atomic(file, encode_npy(t)); }

Tensor decode_npy(std::span<const std::uint8_t> bytes, std::string_view name) {
  auto fail = [&](const std::string& what) { return Error(fmt::format("{}: {}", name, what)); };
  if (bytes.size() < kPreamble || std::memcmp(bytes.data(), kMagic, 6) != 0) throw fail("not a .npy file");
  if (bytes[6] != 1) throw fail(fmt::format("unsupported .npy version {}.{}", bytes[6], bytes[7]));
  const std::size_t header_len = bytes[8] | (std::size_t{bytes[9]} << 8);
  if (bytes.size() < kPreamble + header_len) throw fail("file ends inside the .npy header");
  const std::string header(reinterpret_cast<const char*>(bytes.data() + kPreamble), header_len);
  if (header.find("'descr': '<f4'") == std::string::npos)
    throw fail("not float32 little-endian data ('descr' is not '<f4')");
  if (header.find("'fortran_order': False") == std::string::npos) throw fail("Fortran-ordered arrays are not supported");
  const auto open = header.find("'shape': (");
  const auto close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos) throw fail("no shape in the .npy header");
  std::vector<std::size_t> dims;
  std::string inside = header.substr(open + 10, close - open - 10);
  for (std::size_t pos = 0; pos < inside.size();) {
    while (pos < inside.size() && (inside[pos] == ' ' || inside[pos] == ',')) ++pos;
    if (pos >= inside.size()) break;
    const Error bad_shape = fail(fmt::format("bad shape '({})' in the .npy header", inside));
    // Digits only: std::stoull would also take "-1" (as 2^64 - 1) and "+5".
    if (!std::isdigit(static_cast<unsigned char>(inside[pos]))) throw bad_shape;
    std::size_t used = 0;
    unsigned long long d = 0;
    try {
      d = std::stoull(inside.substr(pos), &used);
    } catch (const std::exception&) {  // out of range
      throw bad_shape;
    }
    dims.push_back(d);
    pos += used;
  }
  if (dims.empty() || dims.size() > Shape::kMaxRank)
    throw fail(fmt::format("shape '({})' has rank {}; the course's tensors have rank 1 to 4", inside, dims.size()));
  Shape shape;
  try {
    shape = Shape(dims);  // refuses a shape whose byte count would overflow
  } catch (const Error& e) {
    throw fail(e.what());
  }
  const std::size_t data = kPreamble + header_len;
  if (bytes.size() - data != shape.size() * sizeof(float))
    throw fail(fmt::format("holds {} bytes of data, but the shape {} needs {}", bytes.size() - data, shape.str(),
                           shape.size() * sizeof(float)));
  Tensor t(shape);
  if (t.size() > 0) std::memcpy(t.data(), bytes.data() + data, t.size() * sizeof(float));
  return t;
}

Tensor load_npy(const std::filesystem::path& file) { return decode_npy(read_file(file), file.string()); }

}  // namespace nn
