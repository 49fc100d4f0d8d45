// Chapter 04: Conv2D forward and backward, every variant against the naive
// loops; the GEMM against its naive loops; gradients against central
// differences in double precision; shapes and errors; the thread pool.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "nn/activations.hpp"
#include "nn/conv2d.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/error.hpp"
#include "nn/gemm.hpp"
#include "nn/init.hpp"
#include "nn/io.hpp"
#include "nn/parallel.hpp"
#include "nn/simd.hpp"
#include "gradcheck.hpp"
#include "testing.hpp"

namespace {

using nn::Conv2DVariant;
using nn::Shape;
using nn::Tensor;
using testing_nn::all_close;
using testing_nn::random_tensor;

std::vector<float> random_vector(std::size_t n, std::uint64_t seed) {
  Tensor t = random_tensor(Shape{n}, seed);
  return {t.span().begin(), t.span().end()};
}

// ------------------------------------------------------------------ GEMM

struct GemmCase {
  std::size_t m, n, k;
};

TEST(Gemm, MatchesNaiveOnOddSizesAndEveryTranspose) {
  // (32 x 32 and 24 x 30: short on both sides, where the transposed path must
  // not transpose back and forth: with op(A) transposed, 32 x 32 recursed
  // until the stack ran out.)
  const GemmCase cases[] = {{1, 1, 1},   {7, 13, 5},     {8, 32, 9},   {33, 65, 17}, {129, 70, 300},
                            {5, 3, 600}, {32, 32, 40},   {24, 30, 50}, {32, 100, 300}};
  for (const auto& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool threaded : {false, true})
          for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{0.5f, 1.0f}, std::pair{-2.0f, 0.25f}}) {
            auto a = random_vector(c.m * c.k, 1), b = random_vector(c.k * c.n, 2), c0 = random_vector(c.m * c.n, 3);
            auto c_fast = c0, c_naive = c0;
            nn::GemmArgs g{.m = c.m, .n = c.n, .k = c.k, .a = a.data(), .transpose_a = ta, .b = b.data(),
                           .transpose_b = tb, .alpha = alpha, .beta = beta, .threaded = threaded};
            g.c = c_naive.data();
            nn::gemm_naive(g);
            g.c = c_fast.data();
            nn::gemm(g);
            EXPECT_TRUE(all_close(std::span<const float>(c_fast), c_naive, 1e-5 * c.k, 1e-5))
                << "m=" << c.m << " n=" << c.n << " k=" << c.k << " transpose_a=" << ta << " transpose_b=" << tb
                << " threaded=" << threaded << " alpha=" << alpha << " beta=" << beta;
          }
}

TEST(Gemm, ThreadsSplitRowsColumnsOrTheSumOverK) {
  // Shapes that take each way of sharing a product among threads: enough row
  // blocks (M), short and wide (columns of C), short with a long sum (k),
  // with 2 and 3 threads, every transpose, and C inside a wider array.
  const GemmCase cases[] = {{300, 40, 100}, {32, 2000, 100}, {32, 100, 5408}, {20, 300, 400}, {7, 1000, 1000}};
  const std::size_t before = nn::thread_count();
  for (std::size_t threads : {2u, 3u}) {
    nn::set_thread_count(threads);
    for (const auto& c : cases)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          auto a = random_vector(c.m * c.k, 1), b = random_vector(c.k * c.n, 2);
          const std::size_t ldc = c.n + 3;
          auto c0 = random_vector(c.m * ldc, 3);
          auto c_fast = c0, c_naive = c0;
          nn::GemmArgs g{.m = c.m, .n = c.n, .k = c.k, .a = a.data(), .transpose_a = ta, .b = b.data(),
                         .transpose_b = tb, .ldc = ldc, .alpha = 0.5f, .beta = 0.25f, .threaded = true};
          g.c = c_naive.data();
          nn::gemm_naive(g);
          g.c = c_fast.data();
          nn::gemm(g);
          EXPECT_TRUE(all_close(std::span<const float>(c_fast), c_naive, 1e-5 * std::sqrt(double(c.k)), 1e-4))
              << "threads=" << threads << " m=" << c.m << " n=" << c.n << " k=" << c.k << " transpose_a=" << ta
              << " transpose_b=" << tb;
        }
  }
  nn::set_thread_count(before);
}

TEST(Gemm, LeadingDimensionsSelectASubmatrix) {
  // A is the left 10x7 block of a 10x12 array, B the top 7x9 of 7x11, C the left 10x9 of 10x16.
  auto a = random_vector(10 * 12, 4), b = random_vector(7 * 11, 5);
  std::vector<float> c_fast(10 * 16, 42.0f), c_naive(10 * 16, 42.0f);
  nn::GemmArgs g{.m = 10, .n = 9, .k = 7, .a = a.data(), .lda = 12, .b = b.data(), .ldb = 11, .ldc = 16};
  g.c = c_naive.data();
  nn::gemm_naive(g);
  g.c = c_fast.data();
  nn::gemm(g);
  EXPECT_TRUE(all_close(std::span<const float>(c_fast), c_naive, 1e-5, 1e-5));
  for (std::size_t i = 0; i < 10; ++i)
    for (std::size_t j = 9; j < 16; ++j) EXPECT_EQ(c_fast[i * 16 + j], 42.0f) << "wrote outside C";
}

// Every way of sharing a product (one thread; row blocks; columns of C; the
// sum over k) for every thread count from 1 to 64, on shapes whose k lies
// below, at and above the thread count: each C must equal the naive one.
// With beta = 0, C starts as NaN: every element must be written, never read.
// The model's dW = x^T dy is 5408 x 100 with k = 32, the batch size: a
// workstation with more threads than that must still get it right (1352 x 100
// x 32 is a shorter stand-in with the same k).
TEST(Gemm, AnyThreadCountMatchesNaiveAndWritesAllOfC) {
  struct Case {
    std::size_t m, n, k;
    bool transpose_a;
  };
  const Case cases[] = {{896, 255, 5, false}, {1352, 100, 32, true}, {32, 100, 700, false}, {40, 1200, 33, false}};
  const std::size_t before = nn::thread_count();
  for (const auto& c : cases)
    for (float beta : {0.0f, 0.5f}) {
      const auto a = random_vector(c.m * c.k, 1), b = random_vector(c.k * c.n, 2);
      const std::vector<float> c0 =
          beta == 0.0f ? std::vector<float>(c.m * c.n, std::nanf("")) : random_vector(c.m * c.n, 3);
      nn::GemmArgs g{.m = c.m, .n = c.n, .k = c.k, .a = a.data(), .transpose_a = c.transpose_a, .b = b.data(),
                     .beta = beta, .threaded = true};
      std::vector<float> c_naive = c0;
      g.c = c_naive.data();
      nn::gemm_naive(g);
      for (std::size_t threads = 1; threads <= 64; ++threads) {
        nn::set_thread_count(threads);
        std::vector<float> c_fast = c0;
        g.c = c_fast.data();
        nn::gemm(g);
        ASSERT_TRUE(all_close(std::span<const float>(c_fast), c_naive, 1e-5 * std::sqrt(double(c.k)), 1e-4))
            << "threads=" << threads << " m=" << c.m << " n=" << c.n << " k=" << c.k << " beta=" << beta;
      }
    }
  nn::set_thread_count(before);
}

// ------------------------------------------------------------------ names and shapes

#if NN_HAVE_SIMD
// The dot products over channels (direct3x3's input gradient) keep 16 partial
// sums and add them in lane order on every CPU: one AVX-512 vector, two AVX2
// vectors, four SSE or NEON vectors, the same result. Values chosen so that
// any other order gives another float: 1e8 + 1 rounds back to 1e8.
TEST(Simd, SixteenLanesAddedInLaneOrderWhateverTheVectorWidth) {
  static_assert(nn::simd::kLanes == 16);
  float a[16], ones[16];
  for (std::size_t i = 0; i < 16; ++i) a[i] = i % 4 == 0 ? 1e8f : i % 4 == 2 ? -1e8f : 1.0f, ones[i] = 1.0f;
  float in_order = 0.0f;
  for (float v : a) in_order += v;  // lane 0, then 1, ... then 15
  ASSERT_EQ(in_order, 1.0f);        // each group of four: 1e8 + 1 - 1e8 + 1 = 0 + 1
  float halves_first = 0.0f;        // AVX2's two vectors added lane by lane first: another float
  for (std::size_t i = 0; i < 8; ++i) halves_first += a[i] + a[i + 8];
  ASSERT_NE(halves_first, in_order);
  nn::simd::Lanes acc{};
  nn::simd::multiply_add_lanes(acc, a, ones);
  EXPECT_EQ(nn::simd::sum_lanes(acc), in_order);
  nn::simd::multiply_add_lanes(acc, a, ones);  // a second pass: each lane's own sum first
  float twice = 0.0f;
  for (float v : a) twice += v + v;
  EXPECT_EQ(nn::simd::sum_lanes(acc), twice);
}
#endif

TEST(Conv2D, VariantsHaveNamesInCourseOrder) {
  EXPECT_EQ(nn::conv2d_variant_names(), "naive, reordered, im2col, threaded, direct3x3");
  for (Conv2DVariant v : nn::conv2d_variants()) EXPECT_EQ(nn::conv2d_variant(nn::conv2d_variant_name(v)), v);
  try {
    nn::conv2d_variant("winograd");
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_STREQ(e.what(), "unknown convolution variant 'winograd'; the variants are: naive, reordered, "
                           "im2col, threaded, direct3x3");
  }
}

TEST(Conv2D, OutputShapeIsInputMinusKernelPlusOne) {
  nn::Conv2D conv({.filters = 32, .kernel = 3});
  EXPECT_EQ(conv.output_shape({60000, 28, 28, 1}), (Shape{60000, 26, 26, 32}));
  EXPECT_FALSE(conv.built());                 // as in Keras, no kernel before the layer sees its input
  EXPECT_EQ(conv.param_count(), 32u);         // the bias alone
  conv.build({1, 28, 28, 1});
  EXPECT_EQ(conv.kernel.shape(), (Shape{3, 3, 1, 32}));
  EXPECT_EQ(conv.param_count(), 320u);  // 3*3*1*32 + 32, as model.summary() says
  nn::Conv2D wide({.filters = 4, .kernel = {2, 5}, .input_channels = 3});
  EXPECT_EQ(wide.output_shape({2, 7, 9, 3}), (Shape{2, 6, 5, 4}));
  EXPECT_EQ(wide.output_shape({1, 2, 5, 3}), (Shape{1, 1, 1, 4}));  // kernel as large as the image
  EXPECT_EQ(nn::conv2d_dims({32, 28, 28, 1}, {3, 3, 1, 32}).forward_flops(), 2.0 * 32 * 26 * 26 * 9 * 32);
}

// Keras's Conv2D(64, 3) after a layer with 32 channels takes C_in = 32 from
// it: Sequential::add builds the layer with the shape before it. The kernel is
// the one input_channels = 32 gives (the same seed, the same values); an
// input_channels that disagrees with the model is refused at add.
TEST(Conv2D, BuildTakesTheInputChannelsFromTheLayerBefore) {
  nn::Sequential model({28, 28, 1});
  model.add(nn::Conv2D({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = 1}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Conv2D({.filters = 64, .kernel = 3, .activation = nn::Activation::relu, .seed = 2}));
  const auto named = model.named_parameters();
  ASSERT_EQ(named.size(), 4u);
  EXPECT_EQ(named[0].parameter->shape(), (Shape{3, 3, 1, 32}));
  EXPECT_EQ(named[2].parameter->shape(), (Shape{3, 3, 32, 64}));
  nn::Conv2D explicit_channels({.filters = 64, .kernel = 3, .input_channels = 32, .seed = 2});
  EXPECT_TRUE(all_close(named[2].parameter->value, explicit_channels.kernel.value, 0, 0));
  // A layer used on its own builds at its first call.
  nn::Conv2D alone({.filters = 4, .kernel = 3, .seed = 3});
  EXPECT_EQ(alone.forward(Tensor({2, 6, 6, 3})).shape(), (Shape{2, 4, 4, 4}));
  EXPECT_EQ(alone.kernel.shape(), (Shape{3, 3, 3, 4}));
  nn::Sequential wrong({28, 28, 1});
  wrong.add(nn::Conv2D({.filters = 32, .kernel = 3, .seed = 1}));
  try {
    wrong.add(nn::Conv2D({.filters = 64, .kernel = 3, .input_channels = 16, .seed = 2}));
    ADD_FAILURE() << "a Conv2D for 16 channels was added after one with 32";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("the input has 32 channels but the kernel expects 16")) << e.what();
  }
}

void expect_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    FAIL() << "no error; expected one mentioning: " << part;
  } catch (const nn::Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(Conv2D, ImpossibleShapesAreErrors) {
  const Tensor k3({3, 3, 1, 8}), b8({8});
  expect_error([&] { nn::conv2d_forward(Tensor({1, 2, 5, 1}), k3, b8, Conv2DVariant::naive); },
               "Conv2D: input (1, 2, 5, 1) and kernel (3, 3, 1, 8): a 3x3 kernel does not fit in a 2x5 image");
  expect_error([&] { nn::conv2d_forward(Tensor({1, 8, 8, 3}), k3, b8, Conv2DVariant::im2col); },
               "the input has 3 channels but the kernel expects 1");
  expect_error([&] { nn::conv2d_forward(Tensor({8, 8, 1}), k3, b8, Conv2DVariant::naive); },
               "the input must be (N, H, W, C_in)");
  expect_error([&] { nn::conv2d_forward(Tensor({0, 8, 8, 1}), k3, b8, Conv2DVariant::naive); }, "a dimension is 0");
  expect_error([&] { nn::conv2d_forward(Tensor({1, 8, 8, 1}), k3, Tensor({7}), Conv2DVariant::naive); },
               "bias is (7,) but the kernel (3, 3, 1, 8) has 8 filters");
  expect_error([&] { nn::conv2d_backward(Tensor({1, 8, 8, 1}), k3, Tensor({1, 6, 6, 7}), Conv2DVariant::naive); },
               "dy is (1, 6, 6, 7) but the output is (1, 6, 6, 8)");
  Tensor y({1, 5, 5, 8});
  expect_error([&] { nn::conv2d_forward(Tensor({1, 8, 8, 1}), k3, b8, y, Conv2DVariant::naive); },
               "the output buffer is (1, 5, 5, 8), the output is (1, 6, 6, 8)");
  expect_error([] { nn::Conv2D({.filters = 0}); }, "must all be positive");
}

// ------------------------------------------------------------------ a hand-computed example

// [snippet vertical-edge-test]
TEST(Conv2D, VerticalEdgeByHand) {
  // A 4x5 image, dark on the left and bright on the right:
  //   0 0 0 1 1
  //   0 0 0 1 1       kernel (the same for each of its 3 rows): -1 0 1
  //   0 0 0 1 1
  //   0 0 0 1 1
  // Each output is 3 * (x[ow + 2] - x[ow]): 0, 3, 3 on every row, plus the bias.
  Tensor x({1, 4, 5, 1});
  for (std::size_t h = 0; h < 4; ++h) x(0, h, 3, 0) = x(0, h, 4, 0) = 1.0f;
  Tensor kernel({3, 3, 1, 1});
  for (std::size_t i = 0; i < 3; ++i) kernel(i, 0, 0, 0) = -1.0f, kernel(i, 2, 0, 0) = 1.0f;
  Tensor bias(Shape{1}, 0.5f);
  const Tensor expected(Shape{1, 2, 3, 1}, std::vector<float>{0.5f, 3.5f, 3.5f, 0.5f, 3.5f, 3.5f});
  for (Conv2DVariant v : nn::conv2d_variants())
    EXPECT_TRUE(all_close(nn::conv2d_forward(x, kernel, bias, v), expected, 0, 0)) << nn::conv2d_variant_name(v);
  // The opposite edge detector sees -3 where the brightness rises: ReLU clips it to 0.
  for (float& k : kernel.span()) k = -k;
  const Tensor clipped(Shape{1, 2, 3, 1}, std::vector<float>{0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f});
  for (Conv2DVariant v : nn::conv2d_variants())
    EXPECT_TRUE(all_close(nn::conv2d_forward(x, kernel, bias, v, nn::Activation::relu), clipped, 0, 0))
        << nn::conv2d_variant_name(v);
}
// [end snippet vertical-edge-test]

// ------------------------------------------------------------------ every variant against naive

struct ConvCase {
  std::size_t n, h, w, c_in, kh, kw, c_out;
};

std::string describe(const ConvCase& c) {
  return "x (" + std::to_string(c.n) + ", " + std::to_string(c.h) + ", " + std::to_string(c.w) + ", " +
         std::to_string(c.c_in) + "), kernel (" + std::to_string(c.kh) + ", " + std::to_string(c.kw) + ", " +
         std::to_string(c.c_in) + ", " + std::to_string(c.c_out) + ")";
}

const ConvCase kCases[] = {
    {1, 28, 28, 1, 3, 3, 32},  // the model's first layer
    {3, 28, 28, 1, 3, 3, 16},  // direct3x3 with one vector of channels (AVX-512)
    {2, 8, 11, 1, 3, 3, 48},   // direct3x3, three vectors, non-square image
    {3, 10, 13, 1, 3, 3, 33},  // C_out not a multiple of the vector: direct3x3 falls back
    {1, 13, 13, 32, 3, 3, 64},  // Keras's second layer: direct3x3 with C_in > 1, dx by the flipped kernel
    {3, 13, 13, 32, 3, 3, 64},  // the same, an odd batch
    {3, 9, 11, 3, 3, 3, 32},   // direct3x3, C_in = 3: dx by dot products, kernel rows in blocks of 4 + 4 + 1
    {2, 8, 7, 16, 3, 3, 48},   // direct3x3, C_in = 16, a channel count that leaves single vectors over
    // dx by the flipped kernel skips the padding's zero columns block by block:
    {2, 4, 20, 16, 3, 3, 32},  // rows of 20 pixels, two blocks of one vector (16 pixels at most each)
    {1, 6, 29, 32, 3, 3, 16},  // rows of 29 pixels, two blocks of two vectors (14 at most each)
    {2, 7, 4, 32, 3, 3, 16},   // rows of 4 pixels: each pixel's columns on both ends' padding
    {1, 5, 3, 16, 3, 3, 16},   // rows of 3 pixels, one output column
    {3, 10, 13, 4, 3, 3, 33},  // C_in > 1, C_out not a multiple of the vector: direct3x3 falls back
    {2, 9, 7, 3, 3, 3, 5},     // C_in > 1, non-square
    {5, 6, 11, 2, 1, 1, 4},    // 1x1 kernel
    {4, 12, 10, 3, 5, 5, 7},   // 5x5 kernel
    {2, 7, 9, 2, 2, 4, 6},     // non-square kernel
    {1, 5, 5, 4, 5, 5, 3},     // kernel as large as the image: one output pixel
};

TEST(Conv2D, EveryVariantMatchesNaiveForward) {
  std::uint64_t seed = 10;
  for (const auto& c : kCases) {
    const Tensor x = random_tensor({c.n, c.h, c.w, c.c_in}, ++seed);
    const Tensor kernel = random_tensor({c.kh, c.kw, c.c_in, c.c_out}, ++seed);
    const Tensor bias = random_tensor({c.c_out}, ++seed);
    for (auto act : {nn::Activation::linear, nn::Activation::relu}) {
      const Tensor expected = nn::conv2d_forward(x, kernel, bias, Conv2DVariant::naive, act);
      for (Conv2DVariant v : nn::conv2d_variants())
        EXPECT_TRUE(all_close(nn::conv2d_forward(x, kernel, bias, v, act), expected, 1e-5, 1e-5))
            << nn::conv2d_variant_name(v) << " on " << describe(c) << (act == nn::Activation::relu ? ", relu" : "");
    }
  }
}

TEST(Conv2D, EveryVariantMatchesNaiveBackward) {
  std::uint64_t seed = 100;
  for (const auto& c : kCases) {
    const Tensor x = random_tensor({c.n, c.h, c.w, c.c_in}, ++seed);
    const Tensor kernel = random_tensor({c.kh, c.kw, c.c_in, c.c_out}, ++seed);
    const Tensor dy = random_tensor({c.n, c.h - c.kh + 1, c.w - c.kw + 1, c.c_out}, ++seed);
    const auto expected = nn::conv2d_backward(x, kernel, dy, Conv2DVariant::naive);
    // dkernel sums N*OH*OW products: a tolerance that grows with the number of terms.
    const double atol = 1e-6 * static_cast<double>(c.n * c.h * c.w);
    for (Conv2DVariant v : nn::conv2d_variants())
      for (bool input_gradient : {true, false}) {
        const auto g = nn::conv2d_backward(x, kernel, dy, v, input_gradient);
        const std::string what = std::string(nn::conv2d_variant_name(v)) + " on " + describe(c) +
                                 (input_gradient ? "" : ", without dx");
        EXPECT_TRUE(all_close(g.dkernel, expected.dkernel, atol, 1e-5)) << "dkernel, " << what;
        EXPECT_TRUE(all_close(g.dbias, expected.dbias, atol, 1e-5)) << "dbias, " << what;
        if (input_gradient)
          EXPECT_TRUE(all_close(g.dx, expected.dx, 1e-5 * c.c_out, 1e-5)) << "dx, " << what;
        else
          EXPECT_EQ(g.dx.size(), 0u) << what;
      }
  }
}

TEST(Conv2D, ThreadedVariantsAgreeForAnyThreadCount) {
  const ConvCase c{5, 12, 12, 1, 3, 3, 32};
  const Tensor x = random_tensor({c.n, c.h, c.w, c.c_in}, 7), kernel = random_tensor({3, 3, 1, 32}, 8);
  const Tensor bias = random_tensor({32}, 9), dy = random_tensor({5, 10, 10, 32}, 10);
  const Tensor y = nn::conv2d_forward(x, kernel, bias, Conv2DVariant::naive);
  const auto g = nn::conv2d_backward(x, kernel, dy, Conv2DVariant::naive);
  for (std::size_t threads : {1, 2, 3, 7}) {
    nn::set_thread_count(threads);
    for (Conv2DVariant v : {Conv2DVariant::threaded, Conv2DVariant::direct3x3}) {
      const std::string what = std::string(nn::conv2d_variant_name(v)) + " with " + std::to_string(threads) + " threads";
      EXPECT_TRUE(all_close(nn::conv2d_forward(x, kernel, bias, v), y, 1e-5, 1e-5)) << what;
      const auto gv = nn::conv2d_backward(x, kernel, dy, v);
      EXPECT_TRUE(all_close(gv.dkernel, g.dkernel, 1e-3, 1e-5)) << what;
      EXPECT_TRUE(all_close(gv.dbias, g.dbias, 1e-3, 1e-5)) << what;
      EXPECT_TRUE(all_close(gv.dx, g.dx, 1e-4, 1e-5)) << what;
    }
  }
  nn::set_thread_count(0);
}

// direct3x3 with C_in > 1 (Keras's second layer, 32 -> 64 channels on 13x13)
// at 1, 2 and 3 threads, on batches that split unevenly: close to naive, and
// bit-identical when run again with the same thread count.
TEST(Conv2D, Direct3x3WithChannelsAgreesForAnyThreadCountAndRepeats) {
  for (std::size_t batch : {1u, 5u}) {
    const Tensor x = random_tensor({batch, 13, 13, 32}, 21), kernel = random_tensor({3, 3, 32, 64}, 22);
    const Tensor bias = random_tensor({64}, 23), dy = random_tensor({batch, 11, 11, 64}, 24);
    const Tensor y = nn::conv2d_forward(x, kernel, bias, Conv2DVariant::naive, nn::Activation::relu);
    const auto g = nn::conv2d_backward(x, kernel, dy, Conv2DVariant::naive);
    for (std::size_t threads : {1, 2, 3}) {
      nn::set_thread_count(threads);
      const std::string what = "batch " + std::to_string(batch) + ", " + std::to_string(threads) + " threads";
      const Tensor yv = nn::conv2d_forward(x, kernel, bias, Conv2DVariant::direct3x3, nn::Activation::relu);
      const auto gv = nn::conv2d_backward(x, kernel, dy, Conv2DVariant::direct3x3);
      EXPECT_TRUE(all_close(yv, y, 1e-5, 1e-5)) << what;
      EXPECT_TRUE(all_close(gv.dkernel, g.dkernel, 1e-3, 1e-5)) << what;
      EXPECT_TRUE(all_close(gv.dbias, g.dbias, 1e-3, 1e-5)) << what;
      EXPECT_TRUE(all_close(gv.dx, g.dx, 1e-4, 1e-5)) << what;
      const auto again = nn::conv2d_backward(x, kernel, dy, Conv2DVariant::direct3x3);
      EXPECT_TRUE(std::equal(yv.span().begin(), yv.span().end(),
                             nn::conv2d_forward(x, kernel, bias, Conv2DVariant::direct3x3, nn::Activation::relu)
                                 .span()
                                 .begin()))
          << what;
      EXPECT_TRUE(std::equal(gv.dkernel.span().begin(), gv.dkernel.span().end(), again.dkernel.span().begin()))
          << what;
      EXPECT_TRUE(std::equal(gv.dbias.span().begin(), gv.dbias.span().end(), again.dbias.span().begin())) << what;
      EXPECT_TRUE(std::equal(gv.dx.span().begin(), gv.dx.span().end(), again.dx.span().begin())) << what;
    }
  }
  nn::set_thread_count(0);
}

// direct3x3 keeps the flipped kernel of its input gradient from one call to
// the next while the kernel is unchanged: a changed kernel, or the same
// values seen as (3, 3, 64, 32) instead of (3, 3, 32, 64), must be flipped anew.
TEST(Conv2D, Direct3x3InputGradientFollowsAChangedKernel) {
  nn::set_thread_count(1);
  const Tensor x = random_tensor({2, 13, 13, 32}, 31), dy = random_tensor({2, 11, 11, 64}, 32);
  Tensor kernel = random_tensor({3, 3, 32, 64}, 33);
  for (int change = 0; change < 3; ++change) {
    if (change == 1) kernel[1000] += 1.0f;  // one weight of one tap
    if (change == 2) kernel[0] = -kernel[0];
    const auto g = nn::conv2d_backward(x, kernel, dy, Conv2DVariant::direct3x3);
    const auto expected = nn::conv2d_backward(x, kernel, dy, Conv2DVariant::naive);
    EXPECT_TRUE(all_close(g.dx, expected.dx, 1e-4, 1e-5)) << "change " << change;
  }
  const Tensor swapped = kernel.reshape({3, 3, 64, 32});
  const Tensor x64 = random_tensor({2, 13, 13, 64}, 34), dy32 = random_tensor({2, 11, 11, 32}, 35);
  EXPECT_TRUE(all_close(nn::conv2d_backward(x64, swapped, dy32, Conv2DVariant::direct3x3).dx,
                        nn::conv2d_backward(x64, swapped, dy32, Conv2DVariant::naive).dx, 1e-4, 1e-5));
  nn::set_thread_count(0);
}

// ------------------------------------------------------------------ gradients by central differences

// The README's one-dimensional example, by hand: a three-tap kernel k on an
// input x of length 5, y_i = sum_j x_{i+j} k_j. Then dk_j = sum_i dy_i x_{i+j}
// (x correlated with dy), db = sum_i dy_i, and dx is the full correlation of
// dy with the flipped kernel (k2, k1, k0).
TEST(Conv2D, OneDimensionalBackwardByHand) {
  const nn::Conv2DDims d{.n = 1, .h = 1, .w = 5, .c_in = 1, .kh = 1, .kw = 3, .c_out = 1};
  const std::vector<double> x{1, 2, 3, 4, 5}, k{1, 10, 100}, dy{1, -1, 2};
  std::vector<double> dk(3), db(1), dx(5);
  nn::conv2d_backward_naive(d, x.data(), k.data(), dy.data(), dk.data(), db.data(), dx.data());
  // dk0 = 1*1 - 1*2 + 2*3, dk1 = 1*2 - 1*3 + 2*4, dk2 = 1*3 - 1*4 + 2*5
  EXPECT_EQ(dk, (std::vector<double>{5, 7, 9}));
  EXPECT_EQ(db, (std::vector<double>{2}));
  // dx0 = dy0 k0, dx1 = dy1 k0 + dy0 k1, dx2 = dy2 k0 + dy1 k1 + dy0 k2, dx3 = dy2 k1 + dy1 k2, dx4 = dy2 k2
  EXPECT_EQ(dx, (std::vector<double>{1, 9, 92, -80, 200}));
  // The same dx: dy padded with two zeros on each side, under the flipped kernel.
  const std::vector<double> padded{0, 0, 1, -1, 2, 0, 0}, flipped{100, 10, 1};
  for (std::size_t m = 0; m < 5; ++m)
    EXPECT_EQ(dx[m], padded[m] * flipped[0] + padded[m + 1] * flipped[1] + padded[m + 2] * flipped[2]) << m;
}

// [snippet gradient-check]
// L = sum(y * w) for a fixed random w, so dL/dy = w. The naive convolution
// runs in double; each parameter is nudged by +-eps and the slope of L
// compared with the analytic gradient.
TEST(Conv2D, GradientsMatchCentralDifferencesInDouble) {
  const nn::Conv2DDims d{.n = 2, .h = 5, .w = 6, .c_in = 2, .kh = 3, .kw = 2, .c_out = 3};
  auto random = [](std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<double> v(n);
    for (double& e : v) e = u(rng);
    return v;
  };
  std::vector<double> x = random(d.x_shape().size(), 1), kernel = random(d.kernel_shape().size(), 2),
                      bias = random(d.c_out, 3), w = random(d.y_shape().size(), 4);
  auto loss = [&] {
    std::vector<double> y(d.y_shape().size());
    nn::conv2d_forward_naive(d, x.data(), kernel.data(), bias.data(), y.data());
    double l = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) l += y[i] * w[i];
    return l;
  };
  std::vector<double> dkernel(kernel.size()), dbias(bias.size()), dx(x.size());
  nn::conv2d_backward_naive(d, x.data(), kernel.data(), w.data(), dkernel.data(), dbias.data(), dx.data());

  auto numeric = [&](std::vector<double>& param) { return testing_nn::central_differences(param, loss, 1e-6); };
  EXPECT_TRUE(all_close(std::span<const double>(dkernel), numeric(kernel), 1e-8, 1e-7)) << "dkernel";
  EXPECT_TRUE(all_close(std::span<const double>(dbias), numeric(bias), 1e-8, 1e-7)) << "dbias";
  EXPECT_TRUE(all_close(std::span<const double>(dx), numeric(x), 1e-8, 1e-7)) << "dx";
}
// [end snippet gradient-check]

// The fast float variants against the double-precision analytic gradient
// (the naive one, checked above): closes the loop float fast -> double exact.
TEST(Conv2D, FloatGradientsMatchDoubleReference) {
  const nn::Conv2DDims d{.n = 3, .h = 12, .w = 10, .c_in = 1, .kh = 3, .kw = 3, .c_out = 16};
  const Tensor x = random_tensor(d.x_shape(), 21), kernel = random_tensor(d.kernel_shape(), 22);
  const Tensor dy = random_tensor(d.y_shape(), 23);
  auto as_double = [](const Tensor& t) { return std::vector<double>(t.span().begin(), t.span().end()); };
  auto xd = as_double(x), kd = as_double(kernel), dyd = as_double(dy);
  std::vector<double> dk(kd.size()), db(d.c_out), dx(xd.size());
  nn::conv2d_backward_naive(d, xd.data(), kd.data(), dyd.data(), dk.data(), db.data(), dx.data());
  for (Conv2DVariant v : nn::conv2d_variants()) {
    const auto g = nn::conv2d_backward(x, kernel, dy, v);
    auto close = [&](const Tensor& t, const std::vector<double>& ref) {
      return all_close(std::span<const double>(as_double(t)), ref, 1e-4, 1e-5);
    };
    EXPECT_TRUE(close(g.dkernel, dk)) << "dkernel, " << nn::conv2d_variant_name(v);
    EXPECT_TRUE(close(g.dbias, db)) << "dbias, " << nn::conv2d_variant_name(v);
    EXPECT_TRUE(close(g.dx, dx)) << "dx, " << nn::conv2d_variant_name(v);
  }
}

// ------------------------------------------------------------------ the layer, ReLU, initialisation

TEST(Conv2D, LayerBackwardGoesThroughTheReLU) {
  nn::Conv2D conv({.filters = 16, .kernel = 3, .activation = nn::Activation::relu, .seed = 5});
  for (float& b : conv.bias.value.span()) b = 0.05f;
  const Tensor x = random_tensor({2, 9, 8, 1}, 31);
  const Tensor y(conv.forward(x).tensor());  // a copy of the layer's output
  for (float v : y.span()) ASSERT_GE(v, 0.0f);
  const Tensor dy = random_tensor(y.shape(), 32);
  // Through the ReLU by hand: zero the gradient where the output was clipped.
  Tensor masked = dy;
  for (std::size_t i = 0; i < y.size(); ++i)
    if (y[i] <= 0.0f) masked[i] = 0.0f;
  const auto expected = nn::conv2d_backward(x, conv.kernel.value, masked, Conv2DVariant::naive);
  for (Conv2DVariant v : nn::conv2d_variants()) {
    conv.set_variant(v);
    const nn::ConstView dx = conv.backward(x, y, dy, /*need_dx=*/false);
    EXPECT_TRUE(all_close(conv.kernel.grad, expected.dkernel, 1e-4, 1e-5)) << nn::conv2d_variant_name(v);
    EXPECT_TRUE(all_close(conv.bias.grad, expected.dbias, 1e-4, 1e-5)) << nn::conv2d_variant_name(v);
    EXPECT_EQ(dx.size(), 0u);
    const nn::ConstView dx_too = conv.backward(x, y, dy, /*need_dx=*/true);
    EXPECT_TRUE(all_close(dx_too, expected.dx, 1e-4, 1e-5)) << nn::conv2d_variant_name(v);
  }
}

TEST(ReLU, ForwardAndBackward) {
  const Tensor x(Shape{5}, std::vector<float>{-2.0f, -0.0f, 0.0f, 0.5f, 3.0f});
  const Tensor y = nn::relu(x);
  EXPECT_TRUE(all_close(y, Tensor(Shape{5}, std::vector<float>{0, 0, 0, 0.5f, 3}), 0, 0));
  const Tensor dy(Shape{5}, std::vector<float>{1, 2, 3, 4, 5});
  EXPECT_TRUE(all_close(nn::relu_backward(x, dy), Tensor(Shape{5}, std::vector<float>{0, 0, 0, 4, 5}), 0, 0));
  EXPECT_TRUE(all_close(nn::relu_backward(y, dy), nn::relu_backward(x, dy), 0, 0));  // input or output: same mask
  expect_error([&] { nn::relu_backward(x, Tensor({4})); }, "relu_backward: y is (5,) but dy is (4,)");
}

TEST(Init, GlorotUniformIsBoundedSeededAndCentred) {
  nn::Conv2D a({.filters = 32, .kernel = 3, .input_channels = 1, .seed = 1}),
      b({.filters = 32, .kernel = 3, .input_channels = 1, .seed = 1}),
      c({.filters = 32, .kernel = 3, .input_channels = 1, .seed = 2});
  const float limit = std::sqrt(6.0f / (9 * 1 + 9 * 32));  // fan_in = 3*3*1, fan_out = 3*3*32
  EXPECT_FLOAT_EQ(nn::glorot_limit(9, 288), limit);
  EXPECT_TRUE(all_close(a.kernel.value, b.kernel.value, 0, 0)) << "the same seed gives the same weights";
  EXPECT_FALSE(all_close(a.kernel.value, c.kernel.value, 0, 0)) << "another seed gives other weights";
  for (float v : a.bias.value.span()) EXPECT_EQ(v, 0.0f);
  Tensor big({100000});
  nn::glorot_uniform(big, 9, 288, 3);
  double sum = 0, sum2 = 0;
  for (float v : big.span()) {
    ASSERT_LT(std::abs(v), limit);
    sum += v, sum2 += double(v) * v;
  }
  const double mean = sum / big.size(), var = sum2 / big.size() - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.01 * limit);
  EXPECT_NEAR(var, limit * limit / 3.0, 0.02 * limit * limit / 3.0);  // the variance of U(-l, l)
}

// ------------------------------------------------------------------ the thread pool

TEST(Parallel, CoversTheRangeOnceForAnyThreadCount) {
  for (std::size_t threads : {1, 2, 3, 8}) {
    nn::set_thread_count(threads);
    EXPECT_EQ(nn::thread_count(), threads);
    for (std::size_t n : {0, 1, 2, 5, 100}) {
      std::vector<std::atomic<int>> hits(n + 3);
      nn::parallel_for(3, 3 + n, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t i = lo; i < hi; ++i) ++hits[i];
        // A nested parallel_for runs on this thread.
        nn::parallel_for(0, 4, [](std::size_t, std::size_t) {});
      });
      for (std::size_t i = 0; i < n + 3; ++i) EXPECT_EQ(hits[i], i < 3 ? 0 : 1) << i;
    }
  }
  nn::set_thread_count(0);
}

TEST(Parallel, SplitRangeCoversZeroToNInOrderWithSizesWithinOne) {
  for (std::size_t n : {0, 1, 2, 3, 7, 10, 64, 100, 1001})
    for (std::size_t parts : {1, 2, 3, 4, 7, 8, 16, 150}) {
      std::size_t next = 0, smallest = n, largest = 0;
      for (std::size_t part = 0; part < parts; ++part) {
        const nn::Range r = nn::split_range(n, parts, part);
        EXPECT_EQ(r.begin, next) << "n " << n << ", part " << part << " of " << parts;
        EXPECT_LE(r.begin, r.end);
        next = r.end;
        smallest = std::min(smallest, r.end - r.begin);
        largest = std::max(largest, r.end - r.begin);
      }
      EXPECT_EQ(next, n) << "n " << n << ", parts " << parts;
      EXPECT_LE(largest - smallest, 1u) << "n " << n << ", parts " << parts;
    }
  const nn::Range third = nn::split_range(10, 4, 2);  // the example in parallel.hpp
  EXPECT_EQ(third.begin, 6u);
  EXPECT_EQ(third.end, 8u);
}

TEST(Parallel, RethrowsAnExceptionFromAChunk) {
  nn::set_thread_count(3);
  EXPECT_THROW(nn::parallel_for(0, 9,
                                [](std::size_t lo, std::size_t) {
                                  if (lo > 0) throw std::runtime_error("boom");
                                }),
               std::runtime_error);
  int calls = 0;  // still usable afterwards
  nn::parallel_for(0, 1, [&](std::size_t, std::size_t) { ++calls; });
  EXPECT_EQ(calls, 1);
  nn::set_thread_count(0);
}

}  // namespace

namespace {

TEST(Ch04Executable, AnEmptyTestSetIsAClearError) {
  testing_nn::TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {0, 28, 28});
  auto run = testing_nn::run_program("ch04-convolution", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string(), "--seed", "1"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("error: --index 0: the test set is empty"), std::string::npos) << run.output;
}

// --plots naming a file, not a folder: one sentence naming it and the cause, not "internal error".
TEST(Ch04Executable, PlotsThatNameAFileAreAClearError) {
  testing_nn::TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {40, 28, 28}, {40, 28, 28});
  nn::write_file_atomic(dir / "plots", std::string("a file"));
  auto run = testing_nn::run_program("ch04-convolution", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string(), "--seed", "1"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, ::testing::HasSubstr(fmt::format("error: {}: cannot create folder: ", (dir / "plots").string())));
  EXPECT_THAT(run.output, ::testing::Not(::testing::HasSubstr("internal error")));
}

// The layer through the nn::Layer interface, every variant, one and three
// input channels, against central differences (tests/gradcheck.cpp): the
// same check every layer of the course gets.
//
// Its inputs keep away from ReLU's kink by construction, not by luck: x is
// drawn on a grid of quarters, the kernel on a grid of eighths, so every sum
// of products is a multiple of 1/32; each bias is an odd multiple of 1/64, so
// every pre-activation z is at least 1/64 away from 0. A step of h = 1e-2 in
// one value moves z by at most h (x, kernel and bias all lie in [-1, 1]),
// less than that margin: no step crosses the kink, whatever the CPU's
// rounding. (Random floats left it to rounding: an input 1e-4 from the kink
// sat inside the step on one CPU and outside it on another.)
Tensor grid_tensor(const Shape& shape, std::uint64_t seed, float step, float lo, float hi, float offset = 0.0f) {
  Tensor t = random_tensor(shape, seed, lo, hi);
  for (float& v : t.span()) v = std::round((v - offset) / step) * step + offset;
  return t;
}

TEST(Conv2D, LayerGradientsThroughTheLayerInterface) {
  constexpr float kMargin = 1.0f / 64, kStep = 1e-2f;
  static_assert(kStep < kMargin);
  for (std::size_t c_in : {1u, 3u})
    for (Conv2DVariant v : nn::conv2d_variants()) {
      SCOPED_TRACE(fmt::format("C_in {} {}", c_in, nn::conv2d_variant_name(v)));
      nn::Conv2DOptions options{.filters = 16, .kernel = 3, .input_channels = c_in,
                                .activation = nn::Activation::relu, .seed = 7, .variant = v};
      nn::Conv2D conv(options);
      conv.kernel.value = grid_tensor(conv.kernel.shape(), 19, 1.0f / 8, -1.0f, 1.0f);
      conv.bias.value = grid_tensor({16}, 8, 2 * kMargin, -0.2f, 0.2f, kMargin);  // odd multiples of 1/64
      const Tensor x = grid_tensor({2, 8, 9, c_in}, 9, 1.0f / 4, -1.0f, 1.0f);
      // The margin, measured: the same layer without its ReLU gives z.
      options.activation = nn::Activation::linear;
      nn::Conv2D linear(options);
      linear.kernel.value = conv.kernel.value;
      linear.bias.value = conv.bias.value;
      const nn::ConstView z = linear.forward(x);
      float closest = INFINITY;
      for (std::size_t i = 0; i < z.size(); ++i) closest = std::min(closest, std::abs(z[i]));
      ASSERT_GE(closest, kMargin) << "a pre-activation near the kink";
      EXPECT_EQ(testing_nn::layer_gradient_problems(conv, x, 10, 1e-3, kStep), "");
      for (const auto& check : testing_nn::check_layer_gradients(conv, x, 10, kStep))
        EXPECT_EQ(check.at_kink, 0u) << "d" << check.tensor << ": a step crossed a kink";
    }
}

}  // namespace
