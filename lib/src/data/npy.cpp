#include "nn/npy.hpp"

#include <fmt/format.h>

#include <bit>
#include <cctype>
#include <cstring>
#include <limits>
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

namespace {

// The three values of a .npy header.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::size_t> shape;
  std::string shape_text;  // as written, for messages
};

// Reads the header dict as np.load does (ast.literal_eval of a Python
// literal), but only the subset NumPy writes: a dict of exactly the keys
// 'descr', 'fortran_order' and 'shape', in any order, strings in ' or " without
// escapes, True/False, a tuple of decimal integers, optional trailing commas,
// spaces and newlines. Everything else (a comment, a duplicate key, a float, a
// Python 2 "10L") is refused, never guessed at: whatever this reads, NumPy
// reads the same way.
class HeaderReader {
 public:
  HeaderReader(std::string_view text, std::string_view name) : s_(text), name_(name) {}

  NpyHeader read() {
    for (std::size_t i = 0; i < s_.size(); ++i) {
      const auto c = static_cast<unsigned char>(s_[i]);
      if (c >= 0x7f || (c < 0x20 && !space(s_[i])))
        bad(fmt::format("byte {} is {:#04x}; a header is printable ASCII", i, c));
    }
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;  // what literal_eval strips
    if (!take('{')) bad(expected("'{' (a dict)"));
    bool seen[3] = {false, false, false};
    for (skip(); !take('}'); skip()) {
      const std::string key = string("a key");
      const int k = key == "descr" ? 0 : key == "fortran_order" ? 1 : key == "shape" ? 2 : -1;
      if (k < 0) bad(fmt::format("unknown key '{}'; a .npy header has 'descr', 'fortran_order' and 'shape'", key));
      if (seen[k]) bad(fmt::format("'{}' appears twice", key));
      seen[k] = true;
      skip();
      where_ = fmt::format("after the key '{}'", key);
      if (!take(':')) bad(expected("':'"));
      skip();
      where_ = fmt::format("in the value of '{}'", key);
      if (k == 0) h_.descr = string("a string such as '<f4'");
      else if (k == 1) h_.fortran_order = boolean();
      else shape();
      where_ = fmt::format("after the value of '{}'", key);
      skip();
      if (take(',')) continue;
      if (peek() != '}') bad(expected("',' or '}'"));
    }
    // Then spaces, or lines of spaces that end in a newline: Python reads
    // spaces after the last newline as an indent and fails.
    where_ = "after the closing '}'";
    const std::size_t end = pos_;
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
    if (pos_ < s_.size()) bad(expected("only spaces and newlines"));
    if (s_.find('\n', end) != std::string_view::npos && s_.back() != '\n')
      bad("spaces after the last newline of the header (Python reads them as an indent)");
    static constexpr const char* kKeys[] = {"descr", "fortran_order", "shape"};
    for (int k = 0; k < 3; ++k)
      if (!seen[k]) bad(fmt::format("'{}' is missing", kKeys[k]));
    return h_;
  }

 private:
  static bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
  static bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool take(char c) {
    if (peek() != c || pos_ >= s_.size()) return false;
    ++pos_;
    return true;
  }
  // Inside the braces Python joins lines, so newlines are spaces there.
  void skip() {
    while (pos_ < s_.size() && space(s_[pos_])) ++pos_;
  }
  // Where the reader is, quoted, for messages: "'# 'descr': '<f4'...'" or "the end".
  std::string here() const {
    if (pos_ >= s_.size()) return "the end of the header";
    std::string shown;
    for (char c : s_.substr(pos_, 24)) {
      if (c == '\n') shown += "\\n";
      else if (c == '\t') shown += "\\t";
      else if (c == '\r') shown += "\\r";
      else if (c == '\f') shown += "\\f";
      else shown += c;  // printable: read() refused everything else
    }
    return fmt::format("'{}{}'", shown, pos_ + 24 < s_.size() ? "..." : "");
  }
  [[noreturn]] void bad(const std::string& what) const {
    throw Error(fmt::format("{}: .npy header: {}", name_, what));
  }
  // "expected ':' after the key 'descr', not '# ...'"; a comment is named as one.
  std::string expected(const std::string& what) const {
    return fmt::format("expected {} {}, not {}{}", what, where_, here(),
                       peek() == '#' ? " (a comment: NumPy skips it, this reader does not read comments)" : "");
  }

  std::string string(const char* what) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad(expected(what));
    const std::size_t start = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\') bad(fmt::format("an escape ('\\') in a string {}", where_));
      if (s_[pos_] == '\n' || s_[pos_] == '\r') break;
      ++pos_;
    }
    if (pos_ >= s_.size() || s_[pos_] != quote) {
      pos_ = start - 1;
      bad(fmt::format("unterminated string {}: {}", where_, here()));
    }
    return std::string(s_.substr(start, pos_++ - start));
  }

  bool boolean() {
    const std::size_t start = pos_;
    while (pos_ < s_.size() && word_char(s_[pos_])) ++pos_;
    const auto word = s_.substr(start, pos_ - start);
    if (word == "True") return true;
    if (word == "False") return false;
    pos_ = start;
    bad(expected("True or False"));
  }

  // A tuple: (), (10,), (3, 3, 1, 32), (3, 3,). Not (10): that is an int.
  void shape() {
    const std::size_t start = pos_;
    if (!take('(')) bad(expected("a tuple such as (10,) or (3, 3, 1, 32)"));
    skip();
    while (!take(')')) {
      h_.shape.push_back(dim());
      skip();
      if (take(',')) {
        skip();
        continue;
      }
      if (peek() != ')') bad(expected("',' or ')'"));
      if (h_.shape.size() == 1) {
        ++pos_;
        bad(fmt::format("'shape' is {}, an integer; a 1-D shape is written ({},)", s_.substr(start, pos_ - start),
                        h_.shape[0]));
      }
    }
    h_.shape_text = std::string(s_.substr(start, pos_ - start));
  }

  // A non-negative decimal integer that fits in size_t.
  std::size_t dim() {
    const std::size_t start = pos_;
    if (peek() == '-') bad(fmt::format("'shape' has a negative dimension: {}", here()));
    if (!std::isdigit(static_cast<unsigned char>(peek()))) bad(expected("a dimension (a non-negative integer)"));
    std::size_t d = 0;
    bool overflow = false;
    for (; pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])); ++pos_) {
      const std::size_t digit = s_[pos_] - '0';
      if (d > (std::numeric_limits<std::size_t>::max() - digit) / 10) overflow = true;
      d = d * 10 + digit;
    }
    const auto digits = s_.substr(start, pos_ - start);
    if (digits.size() > 1 && digits[0] == '0')  // Python 3 refuses 010
      bad(fmt::format("'shape': the dimension {} has a leading zero (Python refuses it)", digits));
    if (pos_ < s_.size() && (word_char(s_[pos_]) || s_[pos_] == '.')) {  // 2.0, 1e3, 0x10, 1_0, 10L
      while (pos_ < s_.size() && (word_char(s_[pos_]) || s_[pos_] == '.')) ++pos_;
      bad(fmt::format("'shape': the dimension {} is not a plain decimal integer", s_.substr(start, pos_ - start)));
    }
    if (overflow)
      bad(fmt::format("'shape': the dimension {} does not fit in {} bits", digits, 8 * sizeof(std::size_t)));
    return d;
  }

  std::string_view s_;
  std::string_view name_;
  std::size_t pos_ = 0;
  std::string where_ = "at the start";  // for messages
  NpyHeader h_;
};

}  // namespace

Tensor decode_npy(std::span<const std::uint8_t> bytes, std::string_view name) {
  auto fail = [&](const std::string& what) { return Error(fmt::format("{}: {}", name, what)); };
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 6) != 0) throw fail("not a .npy file");
  // Version 1.0 has a 2-byte header length; 2.0 and 3.0 a 4-byte one (3.0 allows
  // UTF-8 in the header, which an ASCII header does not use).
  const int major = bytes[6], minor = bytes[7];
  if (minor != 0 || major < 1 || major > 3)
    throw fail(fmt::format("unsupported .npy version {}.{} (1.0, 2.0 and 3.0 are read)", major, minor));
  const std::size_t preamble = major == 1 ? kPreamble : kPreamble + 2;
  if (bytes.size() < preamble) throw fail("file ends inside the .npy header");
  std::size_t header_len = 0;
  for (std::size_t i = preamble; i-- > 8;) header_len = header_len << 8 | bytes[i];  // little-endian
  if (bytes.size() - preamble < header_len) throw fail("file ends inside the .npy header");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + preamble), header_len);
  const NpyHeader header = HeaderReader(text, name).read();
  if (header.descr != "<f4")
    throw fail(fmt::format(".npy header: 'descr' is '{}'; only '<f4' (float32, little-endian) is read", header.descr));
  if (header.fortran_order)
    throw fail(".npy header: 'fortran_order' is True; only C-ordered (row-major) arrays are read");
  const std::vector<std::size_t>& dims = header.shape;
  if (dims.empty() || dims.size() > Shape::kMaxRank)
    throw fail(fmt::format(".npy header: 'shape' {} has rank {}; the course's tensors have rank 1 to {}",
                           header.shape_text, dims.size(), Shape::kMaxRank));
  Shape shape;
  try {
    shape = Shape(dims);  // refuses a shape whose byte count would overflow
  } catch (const Error& e) {
    throw fail(e.what());
  }
  const std::size_t data = preamble + header_len;
  if (bytes.size() - data != shape.size() * sizeof(float))
    throw fail(fmt::format("holds {} bytes of data, but the shape {} needs {}", bytes.size() - data, shape.str(),
                           shape.size() * sizeof(float)));
  Tensor t(shape);
  if (t.size() > 0) std::memcpy(t.data(), bytes.data() + data, t.size() * sizeof(float));
  return t;
}

Tensor load_npy(const std::filesystem::path& file) { return decode_npy(read_file(file), file.string()); }

}  // namespace nn
