// Chapter 01: the IDX reader, on files the tests write and on the real MNIST.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <future>
#include <numeric>
#include <optional>
#include <random>

#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/idx.hpp"
#include "nn/io.hpp"
#include "nn/mnist.hpp"
#include "nn/plot.hpp"
#include "nn/shape.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using Bytes = std::vector<std::uint8_t>;
using testing_nn::TempDir;

// The header of an unsigned-byte IDX file with these dims.
Bytes header(std::vector<std::uint32_t> dims, std::uint8_t type = 0x08) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  return b;
}

Bytes with_payload(Bytes b, std::size_t n, std::uint8_t value = 7) {
  b.insert(b.end(), n, value);
  return b;
}

// The message decode_idx throws for `bytes`, or "" if it does not throw.
std::string error_of(const Bytes& bytes) {
  try {
    nn::decode_idx(bytes, "f.idx");
  } catch (const nn::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Idx, DecodesAHandMadeRank3File) {
  auto a = nn::decode_idx(with_payload(header({2, 3, 4}), 24), "f");
  EXPECT_EQ(a.shape, (std::vector<std::size_t>{2, 3, 4}));
  EXPECT_EQ(a.data.size(), 24u);
  EXPECT_EQ(a.data[23], 7);
}

TEST(Idx, DimsAreBigEndian) {
  // 0x00000102 = 258, not 0x02010000 as a little-endian read would give.
  auto a = nn::decode_idx(with_payload(header({258}), 258), "f");
  EXPECT_EQ(a.shape, (std::vector<std::size_t>{258}));
}

TEST(Idx, RoundTripRawAndGzip) {
  TempDir dir;
  nn::IdxArray a{{3, 5, 2}, Bytes(30)};
  std::iota(a.data.begin(), a.data.end(), 200);  // wraps past 255 on purpose
  for (auto c : {nn::Compression::none, nn::Compression::gzip}) {
    auto file = dir / (c == nn::Compression::gzip ? "a.idx.gz" : "a.idx");
    nn::write_idx(file, a, c);
    auto b = nn::read_idx(file);
    EXPECT_EQ(b.shape, a.shape);
    EXPECT_EQ(b.data, a.data);
  }
  std::size_t files = 0;  // and no temporary beside them
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2u);
  EXPECT_EQ(nn::read_file(dir / "a.idx").size(), 4u + 12u + 30u);
  EXPECT_EQ(nn::read_file(dir / "a.idx.gz")[0], 0x1f);
}

TEST(Idx, MissingFile) {
  TempDir dir;
  try {
    nn::read_idx(dir / "nope");
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("nope: no such file"));
  }
}

TEST(Idx, EmptyAndShorterThanTheHeader) {
  EXPECT_THAT(error_of({}), HasSubstr("f.idx: empty file"));
  EXPECT_THAT(error_of({0, 0, 8}), HasSubstr("ends after 3 bytes, inside the 4-byte magic"));
  EXPECT_THAT(error_of({0, 0, 8, 3, 0, 0, 0, 2, 0, 0}),
              HasSubstr("ends inside the header: rank 3 needs 16 header bytes, found 10"));
}

TEST(Idx, WrongMagicTypeCodeOrRank) {
  EXPECT_THAT(error_of({'P', '5', 8, 1, 0, 0, 0, 0}), HasSubstr("bad magic number 0x50350801"));
  EXPECT_THAT(error_of(with_payload(header({1}, 0x0D), 4)),
              HasSubstr("unsupported IDX type code 0x0D (float32)"));
  EXPECT_THAT(error_of(header({}, 0x08)), HasSubstr("rank 0"));
}

TEST(Idx, AbsurdDims) {
  // 2^32-1 cubed overflows 64 bits.
  EXPECT_THAT(error_of(header({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF})), HasSubstr("overflow"));
  // Dims that fit but promise 4 GB from a 12-byte file: refused before allocating.
  EXPECT_THAT(error_of(header({65536, 65536})),
              HasSubstr("payload is 0 bytes, but the dims (65536, 65536) say 4294967296"));
  // The same in gzip: more than deflate's 1032:1 ratio allows.
  EXPECT_THAT(error_of(nn::gzip_compress(header({65536, 65536}))),
              HasSubstr("more than a"));
}

// The process's peak resident memory, reset to what it holds now where Linux
// allows it (writing 5 to clear_refs); else the peak so far, which only makes
// a growth measured from it smaller.
double reset_peak_rss() {
  std::ofstream("/proc/self/clear_refs") << "5";
  return nn::peak_rss_bytes();
}

TEST(Idx, AGzipFileShorterThanItsDimsIsRefusedWithoutAllocatingTheClaim) {
  // 1.2 MB of random bytes, which deflate cannot shrink, under dims that claim
  // 10^9: within deflate's 1032:1 bound for this file, so only inflating it
  // can show that the data is short. The buffer must grow with the data, not
  // be made 1 GB (and zeroed) first.
  Bytes idx = header({1000, 1000, 1000});
  std::mt19937 rng(5);
  for (int i = 0; i < 1'200'000; ++i) idx.push_back(static_cast<std::uint8_t>(rng()));
  const Bytes file = nn::gzip_compress(idx);
  ASSERT_GT(file.size() * 1032, std::size_t{1'000'000'000}) << "the 1032:1 bound alone would refuse it";
  const double before = reset_peak_rss();
  EXPECT_THAT(error_of(file), HasSubstr("f.idx: payload is 1200000 bytes, but the dims (1000, 1000, 1000) say 1000000000"));
  const double grown = nn::peak_rss_bytes() - before;
  if (before > 0) {
    EXPECT_LT(grown, 200e6) << "the peak memory grew by " << grown / 1e6 << " MB for 1.2 MB of data";
  }
}

TEST(Idx, PayloadShorterOrLongerThanTheDims) {
  EXPECT_THAT(error_of(with_payload(header({10}), 9)),
              HasSubstr("payload is 9 bytes, but the dims (10,) say 10"));
  EXPECT_THAT(error_of(with_payload(header({10}), 11)),
              HasSubstr("payload is 11 bytes, but the dims (10,) say 10"));
  EXPECT_THAT(error_of(nn::gzip_compress(with_payload(header({2, 5}), 9))),
              HasSubstr("payload is 9 bytes, but the dims (2, 5) say 10"));
  EXPECT_THAT(error_of(nn::gzip_compress(with_payload(header({2, 5}), 12))),
              HasSubstr("payload is 12 bytes, but the dims (2, 5) say 10"));
}

TEST(Idx, EmptyDimensionIsAValidEmptyArray) {
  auto a = nn::decode_idx(header({0, 28, 28}), "f");
  EXPECT_EQ(a.shape, (std::vector<std::size_t>{0, 28, 28}));
  EXPECT_TRUE(a.data.empty());
}

TEST(Idx, TruncatedGzipAtEveryLength) {
  Bytes gz = nn::gzip_compress(with_payload(header({100}), 100, 42));
  ASSERT_EQ(error_of(gz), "");
  // Every proper prefix longer than the 2-byte gzip magic must fail cleanly.
  for (std::size_t n = 2; n < gz.size(); ++n) {
    Bytes cut(gz.begin(), gz.begin() + static_cast<long>(n));
    EXPECT_THAT(error_of(cut), HasSubstr("f.idx: ")) << "prefix of " << n << " bytes";
  }
  Bytes cut(gz.begin(), gz.end() - 3);
  EXPECT_THAT(error_of(cut), HasSubstr("truncated gzip stream"));
}

TEST(Idx, CorruptGzip) {
  Bytes gz = nn::gzip_compress(with_payload(header({1000}), 1000, 42));
  Bytes bad = gz;
  bad[bad.size() - 6] ^= 0xFF;  // inside the CRC-32 trailer
  EXPECT_THAT(error_of(bad), HasSubstr("corrupt gzip data"));
  Bytes garbage{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_THAT(error_of(garbage), HasSubstr("corrupt gzip data"));
  Bytes trailing = gz;
  trailing.push_back(0);
  EXPECT_THAT(error_of(trailing), HasSubstr("1 unexpected bytes after the end of the gzip stream"));
}

// A dataset folder holding four small files: 3 train and 2 test digits of 2x2.
struct TinyDataset {
  TempDir dir;
  nn::IdxArray x_train{{3, 2, 2}, Bytes(12, 1)}, y_train{{3}, {1, 2, 3}};
  nn::IdxArray x_test{{2, 2, 2}, Bytes(8, 9)}, y_test{{2}, {9, 0}};
  void write(nn::Compression c = nn::Compression::none) {
    std::string ext = c == nn::Compression::gzip ? ".gz" : "";
    nn::write_idx(dir / ("train-images-idx3-ubyte" + ext), x_train, c);
    nn::write_idx(dir / ("train-labels-idx1-ubyte" + ext), y_train, c);
    nn::write_idx(dir / ("t10k-images-idx3-ubyte" + ext), x_test, c);
    nn::write_idx(dir / ("t10k-labels-idx1-ubyte" + ext), y_test, c);
  }
};

std::string load_error(const std::filesystem::path& dir) {
  try {
    nn::load_mnist(dir, nn::any_image_size);  // 2x2 digits
  } catch (const nn::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Mnist, LoadsRawOrGzipFolders) {
  for (auto c : {nn::Compression::none, nn::Compression::gzip}) {
    TinyDataset t;
    t.write(c);
    auto m = nn::load_mnist(t.dir.path(), nn::any_image_size);
    EXPECT_EQ(m.x_train.shape, (std::vector<std::size_t>{3, 2, 2}));
    EXPECT_EQ(m.y_test.data, (Bytes{9, 0}));
  }
}

TEST(Mnist, MissingFolderOrFile) {
  TempDir dir;
  EXPECT_THAT(load_error(dir / "absent"), HasSubstr("dataset folder not found"));
  EXPECT_THAT(load_error(dir.path()),
              HasSubstr("train-images-idx3-ubyte: no such file (nor train-images-idx3-ubyte.gz)"));
}

TEST(Mnist, ImagesAndLabelsWithDifferentCounts) {
  TinyDataset t;
  t.y_train = {{2}, {1, 2}};
  t.write();
  EXPECT_THAT(load_error(t.dir.path()),
              HasSubstr("train-images-idx3-ubyte has 3 images but"));
  EXPECT_THAT(load_error(t.dir.path()), HasSubstr("train-labels-idx1-ubyte has 2 labels"));
}

TEST(Mnist, LabelOutsideZeroToNine) {
  TinyDataset t;
  t.y_test = {{2}, {9, 10}};
  t.write();
  EXPECT_THAT(load_error(t.dir.path()),
              HasSubstr("t10k-labels-idx1-ubyte: label 10 at index 1 is outside 0..9"));
}

TEST(Mnist, WrongRank) {
  TinyDataset t;
  t.x_train = {{3, 4}, Bytes(12)};
  t.write();
  EXPECT_THAT(load_error(t.dir.path()), HasSubstr("images have shape (3, 4); expected (N, height, width)"));
}

TEST(RealMnist, ShapesAsKerasPrintsThem) {
  const auto& m = testing_nn::real_mnist();
  EXPECT_EQ(nn::format_shape(m.x_train.shape), "(60000, 28, 28)");
  EXPECT_EQ(nn::format_shape(m.y_train.shape), "(60000,)");
  EXPECT_EQ(nn::format_shape(m.x_test.shape), "(10000, 28, 28)");
  EXPECT_EQ(nn::format_shape(m.y_test.shape), "(10000,)");
}

TEST(RealMnist, FirstLabels) {
  const auto& m = testing_nn::real_mnist();
  EXPECT_EQ(Bytes(m.y_train.data.begin(), m.y_train.data.begin() + 10),
            (Bytes{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}));
  EXPECT_EQ(Bytes(m.y_test.data.begin(), m.y_test.data.begin() + 10),
            (Bytes{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}));
}

TEST(RealMnist, CountOfEachLabel) {
  const auto& m = testing_nn::real_mnist();
  std::array<int, 10> train{}, test{};
  for (auto y : m.y_train.data) ++train[y];
  for (auto y : m.y_test.data) ++test[y];
  EXPECT_EQ(train, (std::array<int, 10>{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}));
  EXPECT_EQ(test, (std::array<int, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}));
}

TEST(RealMnist, TheSameDataThroughGzip) {
  TempDir dir;
  const auto& m = testing_nn::real_mnist();
  nn::write_idx(dir / "t10k-images-idx3-ubyte.gz", m.x_test, nn::Compression::gzip);
  auto back = nn::read_idx(dir / "t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(back.shape, m.x_test.shape);
  EXPECT_TRUE(back.data == m.x_test.data);
}

TEST(Shape, FormatAsKeras) {
  EXPECT_EQ(nn::format_shape(std::vector<std::size_t>{5}), "(5,)");
  EXPECT_EQ(nn::format_shape(std::vector<std::size_t>{1, 28, 28, 1}), "(1, 28, 28, 1)");
}

}  // namespace

// ---- Image sizes, and the executable on malformed folders --------------------

namespace {

TEST(Mnist, ImagesMustBeTheSizeTheNetworkReads) {
  TinyDataset t;  // 2x2 digits
  t.write();
  try {
    nn::load_mnist(t.dir.path());
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("train-images-idx3-ubyte: images have shape (3, 2, 2): they are 2x2, but the "
                                    "network reads 28x28 digits"));
  }
  EXPECT_EQ(nn::load_mnist(t.dir.path(), nn::ImageSize{2, 2}).x_test.shape, (std::vector<std::size_t>{2, 2, 2}));
}

TEST(Mnist, ImagesWithoutPixelsAreRefusedAtAnySize) {
  for (auto shape : {std::vector<std::size_t>{3, 0, 5}, {3, 5, 0}, {0, 0, 0}}) {
    TinyDataset t;
    t.x_test = nn::IdxArray{shape, {}};
    t.y_test = nn::IdxArray{{shape[0]}, Bytes(shape[0], 1)};
    t.write();
    EXPECT_THAT(load_error(t.dir.path()),
                HasSubstr(fmt::format("t10k-images-idx3-ubyte: images have shape {}: {}x{} pixels is no image",
                                      nn::format_shape(shape), shape[1], shape[2])));
  }
}

TEST(Ch01Executable, ImagesOfZeroHeightOrWidthAreAClearError) {
  for (auto shape : {std::vector<std::size_t>{3, 0, 28}, {3, 28, 0}}) {
    TempDir dir;
    testing_nn::write_mnist_folder(dir / "data", shape, {2, 28, 28});
    auto run = testing_nn::run_program("ch01-idx-loading", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string()});
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_THAT(run.output, HasSubstr(fmt::format("train-images-idx3-ubyte: images have shape {}: {}x{} pixels is no image",
                                                  nn::format_shape(shape), shape[1], shape[2])));
  }
}

TEST(Ch01Executable, AnEmptyTrainingSetHasNoDigitToShow) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {0, 28, 28}, {2, 28, 28});
  auto run = testing_nn::run_program("ch01-idx-loading", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("error: --index 0: the training set is empty"));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("18446744073709551615")));
}

// ---- Writing files: nothing but the named file changes ---------------------

// A link someone planted where the old writer put its temporary (<file>.tmp),
// pointing at a file of theirs or of the victim's: the write must neither
// follow it nor remove it.
TEST(WriteFile, APlantedLinkBesideTheFileIsNeitherFollowedNorRemoved) {
  TempDir dir;
  nn::write_file_atomic(dir / "victim.txt", std::string_view("precious"));
  std::filesystem::create_symlink(dir / "victim.txt", dir / "out.idx.tmp");
  nn::write_file_atomic(dir / "out.idx", std::string_view("new"));
  EXPECT_EQ(nn::read_file(dir / "victim.txt"), (Bytes{'p', 'r', 'e', 'c', 'i', 'o', 'u', 's'}));
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "out.idx.tmp"));
  EXPECT_EQ(nn::read_file(dir / "out.idx"), (Bytes{'n', 'e', 'w'}));
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(fmt::format("{}", fmt::join(names, " ")), "out.idx out.idx.tmp victim.txt") << "no temporary left";
}

// Renaming over a FIFO, a device or a folder would replace it by a regular
// file (as root, /dev/full itself): refused, and the thing stays what it was.
TEST(WriteFile, OnlyRegularFilesAreReplaced) {
  TempDir dir;
  const auto fifo = dir / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(testing_nn::error_of([&] { nn::write_file_atomic(fifo, std::string_view("x")); }),
              HasSubstr("fifo: is a FIFO, not a regular file; refusing to replace it"));
  struct stat st {};
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  std::filesystem::create_directory(dir / "folder");
  EXPECT_THAT(testing_nn::error_of([&] { nn::write_file_atomic(dir / "folder", std::string_view("x")); }),
              HasSubstr("folder: is a folder, not a file"));
  EXPECT_TRUE(std::filesystem::is_directory(dir / "folder"));
  // A link to a device is refused as the device is (never try /dev/full
  // itself here: a regression would replace it on the test machine).
  std::filesystem::create_symlink("/dev/null", dir / "null-link");
  EXPECT_THAT(testing_nn::error_of([&] { nn::write_file_atomic(dir / "null-link", std::string_view("x")); }),
              HasSubstr("null-link: is a character device, not a regular file"));
  std::filesystem::create_symlink(dir / "nothing", dir / "dangling");
  EXPECT_THAT(testing_nn::error_of([&] { nn::write_file_atomic(dir / "dangling", std::string_view("x")); }),
              HasSubstr("dangling: a symbolic link to nothing"));
}

// A link to a regular file: the file it names gets the bytes, the link stays;
// a replaced file keeps its permissions.
TEST(WriteFile, ThroughALinkAndKeepingThePermissions) {
  TempDir dir;
  nn::write_file_atomic(dir / "real.txt", std::string_view("old"));
  ASSERT_EQ(chmod((dir / "real.txt").c_str(), 0640), 0);
  std::filesystem::create_symlink(dir / "real.txt", dir / "link.txt");
  nn::write_file_atomic(dir / "link.txt", std::string_view("new"));
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "link.txt"));
  EXPECT_EQ(nn::read_file(dir / "real.txt"), (Bytes{'n', 'e', 'w'}));
  struct stat st {};
  ASSERT_EQ(stat((dir / "real.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// ---- Strings to gnuplot -----------------------------------------------------

// In double quotes gnuplot runs `back-quoted` text as a shell command; in
// single quotes it expands nothing, and a quote is written twice.
TEST(Plot, QuoteIsASingleQuotedLiteralThatExpandsNothing) {
  EXPECT_EQ(nn::plot::quote("digit 7"), "'digit 7'");
  EXPECT_EQ(nn::plot::quote("it's"), "'it''s'");
  EXPECT_EQ(nn::plot::quote("`touch x` $(touch y) \"z\" \\n"), "'`touch x` $(touch y) \"z\" \\n'");
  EXPECT_THAT(testing_nn::error_of([] { nn::plot::quote("a\nset output 'x'"); }),
              HasSubstr("\"a\\nset output 'x'\": cannot be a plot's text: it holds a control character"));
  EXPECT_THAT(testing_nn::error_of([] { nn::plot::quote(std::string("a\0b", 3)); }), HasSubstr("control character"));
  EXPECT_THAT(testing_nn::error_of([] { nn::plot::quote("tab\there"); }), HasSubstr("tab\\there"));
}

// The whole path: gnuplot draws a title full of shell syntax into a folder
// whose name is full of it too; no command runs and the PNG is where it was asked.
TEST(Plot, NoCommandRunsFromATitleOrAPath) {
  if (!nn::plot::gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed (apt-get install gnuplot-nox)";
  TempDir dir;
  const std::string hostile = "`touch PWNED-1` $(touch PWNED-2) \"q\" 's' ";
  const auto file = dir / hostile / "plot.png";
  nn::plot::Png png(file, 200, 100);
  png.gp() << "set title " << nn::plot::quote(hostile) << " noenhanced\n"
           << "set label 1 " << nn::plot::quote(hostile) << " at 0,0\nplot x title " << nn::plot::quote(hostile)
           << "\n";
  png.finish();
  const Bytes bytes = nn::read_file(file);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(std::string(bytes.begin() + 1, bytes.begin() + 4), "PNG");
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path()))
    EXPECT_FALSE(e.path().filename().string().starts_with("PWNED")) << e.path();
  EXPECT_FALSE(std::filesystem::exists("PWNED-1"));
  EXPECT_FALSE(std::filesystem::exists("PWNED-2"));
  // Only the PNG: gnuplot's pending file was renamed, not copied.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(file.parent_path())) ++files;
  EXPECT_EQ(files, 1u);
}

// Two runs drawing the same file at once (ctest ran ch07-dense.load and
// ch07-dense.load-missing in parallel into one folder, and they shared the
// pending file and gnuplot's log): each has its own pending file, both
// succeed, and the file is one whole PNG.
TEST(Plot, TwoPlotsOfTheSameFileAtOnce) {
  if (!nn::plot::gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed (apt-get install gnuplot-nox)";
  TempDir dir;
  const auto file = dir / "same.png";
  auto draw = [&](int width) {
    return testing_nn::error_of([&] {
      for (int i = 0; i < 5; ++i) {
        nn::plot::Png png(file, width, 100);
        png.gp() << "plot sin(x)\n";
        png.finish();
      }
    });
  };
  auto other = std::async(std::launch::async, draw, 210);
  EXPECT_EQ(draw(200), "");
  EXPECT_EQ(other.get(), "");
  const Bytes bytes = nn::read_file(file);
  ASSERT_GE(bytes.size(), 24u);
  const unsigned width = (bytes[16] << 24) | (bytes[17] << 16) | (bytes[18] << 8) | bytes[19];  // IHDR
  EXPECT_TRUE(width == 200 || width == 210) << width;
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);
}

// A failed plot leaves nothing, and says what gnuplot said.
TEST(Plot, AFailedPlotLeavesNoFile) {
  if (!nn::plot::gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed (apt-get install gnuplot-nox)";
  TempDir dir;
  const auto file = dir / "bad.png";
  nn::plot::Png png(file, 200, 100);
  png.gp() << "plot no_such_function(x)\n";
  EXPECT_THAT(testing_nn::error_of([&] { png.finish(); }), HasSubstr("bad.png: gnuplot failed: "));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Ch01Executable, AnEmptyTestSetIsAClearError) {
  // The label table and 01-label-histogram.png count the test labels too:
  // gnuplot used to fail on an empty histogram.
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {3, 28, 28}, {0, 28, 28});
  auto run = testing_nn::run_program("ch01-idx-loading", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("data: the test set is empty: there are no test labels to count"));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("gnuplot")));
}

// ---- The command line every chapter shares (nn::cli::Parser) ----------------

// What parsing `args` with `parser` throws, or "" (the parse then succeeded).
std::string parse_error(nn::cli::Parser& parser, std::vector<std::string> args) {
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return testing_nn::error_of([&] { parser.parse(static_cast<int>(argv.size()), argv.data()); });
}

TEST(CliParser, IntegersAreCheckedAgainstTheirRangeAsTheyAreParsed) {
  int epochs = 10;
  std::int64_t limit = 0;
  std::optional<std::int64_t> calls;
  nn::cli::Parser cli("prog", "about");
  cli.option("--epochs", "N", "passes", &epochs, {1, 1000});
  cli.option("--limit", "N", "images", &limit, {0, 4294967295});
  cli.option("--calls", "N", "calls", &calls, "1000", {1, 1'000'000});
  EXPECT_EQ(parse_error(cli, {"--epochs", "1000", "--limit=4294967295", "--calls", "1"}), "");
  EXPECT_EQ(epochs, 1000);
  EXPECT_EQ(limit, 4294967295);
  EXPECT_EQ(calls, 1);
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      // 2^32 used to wrap to 0 once narrowed to int; 2^64 and more does not fit 64 bits.
      {{"--epochs", "4294967296"}, "--epochs 4294967296 is outside 1..1000"},
      {{"--epochs", "99999999999999999999"}, "--epochs 99999999999999999999 is outside 1..1000"},
      {{"--epochs", "0"}, "--epochs 0 is outside 1..1000"},
      {{"--epochs", "-3"}, "--epochs -3 is outside 1..1000"},
      {{"--epochs", "1.5"}, "--epochs 1.5 is not an integer"},
      {{"--epochs", "1e3"}, "--epochs 1e3 is not an integer"},
      {{"--epochs", "+5"}, "--epochs +5 is not an integer"},
      {{"--epochs", " 5"}, "--epochs  5 is not an integer"},
      {{"--epochs", "-"}, "--epochs - is not an integer"},
      {{"--limit", "-1"}, "--limit -1 is outside 0..4294967295"},
      {{"--calls", "1000000000000"}, "--calls 1000000000000 is outside 1..1000000"},
      {{"--calls", "1e12"}, "--calls 1e12 is not an integer"},
      {{"--epochs"}, "option --epochs needs a value: --epochs N"},
  };
  for (const auto& [args, message] : cases) {
    epochs = 10;
    EXPECT_EQ(parse_error(cli, args), message) << args[0];
    EXPECT_EQ(epochs, 10) << "a refused value is not stored";
  }
}

TEST(CliParser, RealsMustBeFiniteAndInTheirInterval) {
  double lr = 0.01, split = 0, h = 1e-6;
  nn::cli::Parser cli("prog", "about");
  cli.option("--lr", "RATE", "rate", &lr, {0, 1000});
  cli.option("--split", "F", "fraction", &split, {.min = 0, .max = 1, .open_max = true});
  cli.option("--h", "H", "step", &h, {.min = 0, .max = 1, .open_min = true, .open_max = true});
  EXPECT_EQ(parse_error(cli, {"--lr", "1e3", "--split", "0", "--h", "0.5"}), "");
  EXPECT_EQ(lr, 1000.0);
  EXPECT_EQ(h, 0.5);
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--lr", "nan"}, "--lr nan is not a finite number"},
      {{"--lr", "inf"}, "--lr inf is not a finite number"},
      {{"--lr", "-inf"}, "--lr -inf is not a finite number"},
      {{"--lr", "1e999"}, "--lr 1e999 is outside [0, 1000]"},
      {{"--lr", "-0.1"}, "--lr -0.1 is outside [0, 1000]"},
      {{"--lr", "1000.5"}, "--lr 1000.5 is outside [0, 1000]"},
      {{"--lr", "0.1x"}, "--lr 0.1x is not a number"},
      {{"--split", "1"}, "--split 1 is outside [0, 1)"},
      {{"--h", "0"}, "--h 0 is outside (0, 1)"},
  };
  for (const auto& [args, message] : cases) EXPECT_EQ(parse_error(cli, args), message) << args[1];
}

TEST(CliParser, ASeedTakesAny64BitValueAndNothingElse) {
  std::optional<std::uint64_t> seed;
  nn::cli::Parser cli("prog", "about");
  cli.option("--seed", "N", "seed", &seed);
  EXPECT_EQ(parse_error(cli, {"--seed", "18446744073709551615"}), "");
  EXPECT_EQ(seed, UINT64_MAX);
  EXPECT_EQ(parse_error(cli, {"--seed", "18446744073709551616"}), "--seed 18446744073709551616 is outside 0..18446744073709551615");
  EXPECT_EQ(parse_error(cli, {"--seed", "-1"}), "--seed -1 is outside 0..18446744073709551615");
  EXPECT_EQ(parse_error(cli, {"--seed", "1.5"}), "--seed 1.5 is not an integer");
}

TEST(CliParser, AnEmptyValueIsRefused) {
  // An unset shell variable ("--image $F") or "--save=" used to be taken as
  // no value at all: the option silently did nothing.
  std::string name = "x";
  std::filesystem::path dir = "d";
  int n = 1;
  double r = 1;
  nn::cli::Parser cli("prog", "about");
  cli.option("--name", "NAME", "a name", &name);
  cli.option("--plots", "DIR", "a folder", &dir);
  cli.option("--n", "N", "a count", &n, {0, 10});
  cli.option("--r", "R", "a rate", &r, {0, 10});
  for (const std::string option : {"--name", "--plots", "--n", "--r"}) {
    EXPECT_EQ(parse_error(cli, {option, ""}), option + " needs a value (got an empty string)");
    EXPECT_EQ(parse_error(cli, {option + "="}), option + " needs a value (got an empty string)");
  }
  EXPECT_EQ(name, "x");
  EXPECT_EQ(dir, "d");
}

TEST(CliParser, HelpShowsEachRangeAndARangeMustFitItsType) {
  int epochs = 10;
  double split = 0;
  nn::cli::Parser cli("prog", "about");
  cli.option("--epochs", "N", "passes", &epochs, {1, 1000});
  cli.option("--split", "F", "fraction", &split, {.min = 0, .max = 1, .open_max = true});
  EXPECT_THAT(cli.usage(), HasSubstr("passes (in 1..1000; default: 10)"));
  EXPECT_THAT(cli.usage(), HasSubstr("fraction (in [0, 1); default: 0)"));
  // A range an int cannot hold would let a value wrap when stored.
  EXPECT_THROW(cli.option("--big", "N", "", &epochs, {0, 4294967296}), std::logic_error);
  EXPECT_THROW(cli.option("--back", "N", "", &epochs, {5, 1}), std::logic_error);
}

TEST(ReadFile, OnlyRegularFiles) {
  // A FIFO with no writer: opening it for reading blocks until someone opens
  // it for writing, and reading it then blocks until they write. read_file
  // must refuse it at once.
  TempDir dir;
  const auto fifo = dir / "fifo.idx";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto reading = std::async(std::launch::async, [&] { return testing_nn::error_of([&] { nn::read_file(fifo); }); });
  if (reading.wait_for(std::chrono::seconds(10)) == std::future_status::timeout) {
    ADD_FAILURE() << "read_file blocked on a FIFO for 10 s";
    // Unblock it: open and close the write end, so the reader sees end of file.
    int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
  }
  EXPECT_THAT(reading.get(), HasSubstr("fifo.idx: not a regular file (a FIFO)"));
  // Devices: /dev/null has no size, /dev/zero never ends.
  EXPECT_THAT(testing_nn::error_of([] { nn::read_file("/dev/null"); }),
              HasSubstr("/dev/null: not a regular file (a character device)"));
  EXPECT_THAT(testing_nn::error_of([] { nn::read_idx("/dev/zero"); }),
              HasSubstr("/dev/zero: not a regular file (a character device)"));
  // The errors that were already clear stay so.
  EXPECT_THAT(testing_nn::error_of([&] { nn::read_file(dir / "missing.idx"); }), HasSubstr("missing.idx: no such file"));
  EXPECT_THAT(testing_nn::error_of([&] { nn::read_file(dir.path()); }), HasSubstr("is a folder, not a file"));
  // A symbolic link to a regular file is read through.
  nn::write_file_atomic(dir / "real.idx", std::string_view("abc"));
  std::filesystem::create_symlink(dir / "real.idx", dir / "link.idx");
  EXPECT_EQ(nn::read_file(dir / "link.idx"), (Bytes{'a', 'b', 'c'}));
}

}  // namespace
