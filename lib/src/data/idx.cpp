#include "nn/idx.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/shape.hpp"

namespace nn {

namespace {

// Deflate cannot expand data by more than 1032:1, so a gzip file of n bytes
// holds at most about 1032 n bytes. Dims that claim more are rejected before
// anything is allocated; dims within that bound are only a claim, so the
// payload's buffer grows with what inflate gives (read_growing).
constexpr std::size_t kMaxDeflateRatio = 1032;

// A source of bytes: the file itself, or the output of zlib's inflate.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads up to n bytes into dst; returns how many it read (fewer only at the end).
  virtual std::size_t read(std::uint8_t* dst, std::size_t n) = 0;
};

class RawStream final : public ByteStream {
 public:
  explicit RawStream(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    n = std::min(n, bytes_.size() - pos_);
    if (n > 0) std::memcpy(dst, bytes_.data() + pos_, n);  // memcpy with a null span is undefined
    pos_ += n;
    return n;
  }
  std::size_t remaining() const { return bytes_.size() - pos_; }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

class GzipStream final : public ByteStream {
 public:
  GzipStream(std::span<const std::uint8_t> bytes, std::string_view name) : name_(name) {
    if (bytes.size() > UINT_MAX) fail("gzip file too large");
    z_.next_in = const_cast<Bytef*>(bytes.data());
    z_.avail_in = static_cast<uInt>(bytes.size());
    if (inflateInit2(&z_, 15 + 16) != Z_OK) fail("zlib: inflateInit2 failed");  // 16: gzip wrapper
  }
  ~GzipStream() override { inflateEnd(&z_); }

  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    std::size_t got = 0;
    while (got < n && !ended_) {
      std::size_t want = std::min<std::size_t>(n - got, UINT_MAX);
      z_.next_out = dst + got;
      z_.avail_out = static_cast<uInt>(want);
      int rc = inflate(&z_, Z_NO_FLUSH);
      got += want - z_.avail_out;
      if (rc == Z_STREAM_END) {
        ended_ = true;
        if (z_.avail_in != 0)
          fail(fmt::format("{} unexpected bytes after the end of the gzip stream", z_.avail_in));
      } else if (rc == Z_BUF_ERROR || (rc == Z_OK && z_.avail_in == 0 && z_.avail_out != 0)) {
        fail("truncated gzip stream (the file ends before the compressed data does)");
      } else if (rc != Z_OK) {
        fail(fmt::format("corrupt gzip data ({})", z_.msg ? z_.msg : zError(rc)));
      }
    }
    return got;
  }

 private:
  [[noreturn]] void fail(const std::string& what) { throw Error(fmt::format("{}: {}", name_, what)); }
  z_stream z_{};
  std::string name_;
  bool ended_ = false;
};

// Reads up to `want` bytes into `out`, in chunks that double from 64 KiB (each
// as large as all before it) rather than `want` bytes at once: a header may
// claim far more than the stream holds. The chunks are joined only when all
// `want` bytes came, so memory stays within twice what the stream really held.
// Returns how many it read; `out` holds them only when that is `want`.
std::size_t read_growing(ByteStream& stream, std::vector<std::uint8_t>& out, std::size_t want) {
  std::vector<std::vector<std::uint8_t>> chunks;
  std::size_t got = 0;
  while (got < want) {
    auto& chunk = chunks.emplace_back(std::min(want - got, std::max<std::size_t>(got, std::size_t{1} << 16)));
    const std::size_t n = stream.read(chunk.data(), chunk.size());
    got += n;
    if (n < chunk.size()) return got;  // the stream ended
  }
  if (chunks.size() == 1) {
    out = std::move(chunks[0]);
  } else {
    out.clear();
    out.reserve(want);
    for (const auto& chunk : chunks) out.insert(out.end(), chunk.begin(), chunk.end());
  }
  return got;
}

std::string type_name(std::uint8_t code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "not an IDX type";
  }
}

std::uint32_t read_be32(const std::uint8_t* p) {
  // Big-endian: the most significant byte comes first, whatever the CPU's order.
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

}  // namespace

IdxArray decode_idx(std::span<const std::uint8_t> bytes, std::string_view name) {
  auto fail = [&](const std::string& what) -> Error {
    return Error(fmt::format("{}: {}", name, what));
  };
  const bool gzip = bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
  std::unique_ptr<ByteStream> stream;
  RawStream* raw = nullptr;
  if (gzip) {
    stream = std::make_unique<GzipStream>(bytes, name);
  } else {
    stream = std::make_unique<RawStream>(bytes);
    raw = static_cast<RawStream*>(stream.get());
  }

  // [snippet idx-header]
  // Bytes 0-3: two zero bytes, the type code, the rank.
  std::uint8_t magic[4];
  std::size_t got = stream->read(magic, 4);
  if (got == 0) throw fail("empty file");
  if (got < 4) throw fail(fmt::format("file ends after {} bytes, inside the 4-byte magic number", got));
  if (magic[0] != 0 || magic[1] != 0)
    throw fail(fmt::format("bad magic number 0x{:08X}: an IDX file starts with two zero bytes",
                           read_be32(magic)));
  if (magic[2] != 0x08)
    throw fail(fmt::format("unsupported IDX type code 0x{:02X} ({}); only 0x08 (unsigned byte) is supported",
                           magic[2], type_name(magic[2])));
  const std::size_t rank = magic[3];
  if (rank == 0) throw fail("rank 0: an IDX file needs at least one dimension");

  // Bytes 4 .. 4+4*rank: each dimension as a big-endian uint32.
  std::vector<std::uint8_t> dim_bytes(4 * rank);
  got = stream->read(dim_bytes.data(), dim_bytes.size());
  if (got < dim_bytes.size())
    throw fail(fmt::format("file ends inside the header: rank {} needs {} header bytes, found {}",
                           rank, 4 + 4 * rank, 4 + got));
  IdxArray array;
  for (std::size_t i = 0; i < rank; ++i) array.shape.push_back(read_be32(&dim_bytes[4 * i]));
  // [end snippet idx-header]

  std::size_t expected = 0;
  try {
    expected = shape_size(array.shape);
  } catch (const Error&) {
    throw fail(fmt::format("dims {} overflow: their product does not fit in 64 bits",
                           format_shape(array.shape)));
  }
  // Refuse before allocating: the payload must fit in what the file can hold.
  if (raw != nullptr && expected != raw->remaining())
    throw fail(fmt::format("payload is {} bytes, but the dims {} say {}", raw->remaining(),
                           format_shape(array.shape), expected));
  if (gzip && expected / kMaxDeflateRatio > bytes.size())
    throw fail(fmt::format("dims {} say {} bytes, more than a {}-byte gzip file can hold",
                           format_shape(array.shape), expected, bytes.size()));

  // Raw, the payload's size is checked above. Gzip, the dims may still claim
  // up to 1032 times the file: the payload is read in growing chunks, so a
  // short stream fails having held at most about twice what it really had.
  if (raw != nullptr) {
    array.data.resize(expected);
    got = stream->read(array.data.data(), expected);
  } else {
    got = read_growing(*stream, array.data, expected);
  }
  if (got < expected)
    throw fail(fmt::format("payload is {} bytes, but the dims {} say {}", got,
                           format_shape(array.shape), expected));
  // Anything after the payload means the dims and the file disagree.
  std::size_t extra = 0;
  std::uint8_t scratch[4096];
  while ((got = stream->read(scratch, sizeof scratch)) > 0) extra += got;
  if (extra > 0)
    throw fail(fmt::format("payload is {} bytes, but the dims {} say {}", expected + extra,
                           format_shape(array.shape), expected));
  return array;
}

IdxArray read_idx(const std::filesystem::path& file) {
  return decode_idx(read_file(file), file.string());
}

std::vector<std::uint8_t> encode_idx(const IdxArray& array) {
  if (array.shape.empty() || array.shape.size() > 255)
    throw Error(fmt::format("cannot encode an IDX array of rank {}", array.shape.size()));
  if (shape_size(array.shape) != array.data.size())
    throw Error(fmt::format("IDX array of shape {} holds {} bytes", format_shape(array.shape),
                            array.data.size()));
  std::vector<std::uint8_t> out{0, 0, 0x08, static_cast<std::uint8_t>(array.shape.size())};
  for (std::size_t d : array.shape) {
    if (d > UINT32_MAX) throw Error(fmt::format("IDX dimension {} does not fit in 32 bits", d));
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(d >> shift));
  }
  out.insert(out.end(), array.data.begin(), array.data.end());
  return out;
}

void write_idx(const std::filesystem::path& file, const IdxArray& array, Compression compression) {
  auto bytes = encode_idx(array);
  if (compression == Compression::gzip) bytes = gzip_compress(bytes);
  write_file_atomic(file, bytes);
}

}  // namespace nn
