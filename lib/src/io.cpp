#include "nn/io.hpp"

#include <fmt/format.h>
#include <fmt/std.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "nn/error.hpp"

namespace nn {

namespace fs = std::filesystem;

std::vector<std::uint8_t> read_file(const fs::path& file) {
  std::error_code ec;
  auto status = fs::status(file, ec);
  if (!fs::exists(status)) throw Error(fmt::format("{}: no such file", file.string()));
  if (fs::is_directory(status)) throw Error(fmt::format("{}: is a folder, not a file", file.string()));
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open: {}", file.string(), std::strerror(errno)));
  // One allocation of the file's size and one read; then check nothing was
  // appended meanwhile (a file still being written).
  std::vector<std::uint8_t> bytes(fs::file_size(file, ec));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<std::size_t>(in.gcount()) != bytes.size() || in.peek() != EOF)
    throw Error(fmt::format("{}: the file changed size while being read", file.string()));
  return bytes;
}

void write_file_atomic(const fs::path& file, std::span<const std::uint8_t> bytes) {
  fs::path tmp = file;
  tmp += ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(fmt::format("{}: cannot write: {}", tmp.string(), std::strerror(errno)));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: write failed (disk full?)", file.string()));
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: cannot rename into place: {}", file.string(), ec.message()));
  }
}

void write_file_atomic(const fs::path& file, std::string_view text) {
  write_file_atomic(file, std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

std::vector<std::uint8_t> gzip_compress(std::span<const std::uint8_t> bytes) {
  z_stream z{};
  // windowBits 15 + 16 asks zlib for a gzip wrapper instead of a zlib one.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error("zlib: deflateInit2 failed");
  std::vector<std::uint8_t> out(deflateBound(&z, bytes.size()) + 32);
  z.next_in = const_cast<Bytef*>(bytes.data());
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error("zlib: deflate did not finish");
  return out;
}

double peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmHWM:")) return std::stod(line.substr(6)) * 1024.0;  // "VmHWM:   123456 kB"
  return 0.0;
}

}  // namespace nn
