#pragma once
// Whole-file reads and atomic writes. Everything the course writes for the
// user (IDX files, weights, CSV) goes through write_file_atomic, so a crash or
// Ctrl-C never leaves a half-written file: readers see the old file or the
// new one.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace nn {

// Reads a whole file; throws nn::Error naming the file if it is missing,
// a folder, or unreadable.
std::vector<std::uint8_t> read_file(const std::filesystem::path& file);

// Writes `bytes` to `file.tmp` beside it, flushes, then renames it over `file`.
void write_file_atomic(const std::filesystem::path& file, std::span<const std::uint8_t> bytes);
void write_file_atomic(const std::filesystem::path& file, std::string_view text);

// gzip (RFC 1952) compression of a buffer, with zlib.
std::vector<std::uint8_t> gzip_compress(std::span<const std::uint8_t> bytes);

// The process's peak resident memory (VmHWM in /proc/self/status), in bytes;
// 0 where it cannot be read.
double peak_rss_bytes();

}  // namespace nn
