// The model exported as ONNX (nn/onnx_export.hpp, chapter 11's last section),
// run by a real runtime: ONNX Runtime for Node (tools/onnx-runtime, pinned by
// its package-lock.json) predicts all 10,000 test images, and its classes and
// probabilities are compared with the course's own predict. For the seed
// model, trained here, and for chapter 12's convnet and its BatchNormalization
// rung, trained by ch12-beyond. Then the errors: a layer with no ONNX form, a
// path that cannot be written.
//
// The comparisons need Node; where it is missing they skip, saying so. The
// course's setup (scripts/setup.sh) installs it, and CI runs them.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "nn/error.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/npy.hpp"
#include "nn/one_hot.hpp"
#include "nn/onnx_export.hpp"
#include "nn/optimizer.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::error_of;
using testing_nn::TempDir;

bool node_available() { return std::system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") == 0; }

// ONNX Runtime's probabilities for the test images of the real MNIST.
nn::Tensor onnx_runtime_probabilities(const std::filesystem::path& model, const std::filesystem::path& out) {
  const testing_nn::ProgramRun r = testing_nn::run_command(
      (testing_nn::source_dir() / "tools/onnx-runtime/run").string(),
      {"predict.mjs", model.string(), testing_nn::mnist_dir().string(), out.string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ONNX Runtime 1.20.1 (CPU): 10000 images"));
  return nn::load_npy(out);
}

// [snippet onnx-agreement]
// Every class the same, and every probability within 1e-5: the two sides run
// the same arithmetic with other kernels, summing in other orders; a float
// sum of the 5,408 products of the Dense layer is good to about 1e-6 of its
// terms, and a softmax does not magnify that.
void expect_agreement(const nn::Tensor& ours, const nn::Tensor& theirs) {
  ASSERT_EQ(ours.shape(), theirs.shape());
  const std::size_t classes = ours.dim(1);
  std::size_t differing = 0;
  double largest = 0;
  for (std::size_t n = 0; n < ours.dim(0); ++n) {
    std::size_t a = 0, b = 0;
    for (std::size_t k = 0; k < classes; ++k) {
      if (ours(n, k) > ours(n, a)) a = k;
      if (theirs(n, k) > theirs(n, b)) b = k;
      largest = std::max(largest, std::abs(static_cast<double>(ours(n, k)) - theirs(n, k)));
    }
    differing += a != b;
  }
  EXPECT_EQ(differing, 0u) << "images whose class differs";
  EXPECT_LE(largest, 1e-5) << "the largest difference of a probability";
  std::cout << "  classes differing: " << differing << " of " << ours.dim(0) << "; largest |difference| of a "
            << "probability: " << largest << "\n";
}
// [end snippet onnx-agreement]

TEST(OnnxExport, TheSeedModelAgreesWithOnnxRuntimeOnEveryTestImage) {
  if (!node_available()) GTEST_SKIP() << "node and npm are not installed: ONNX Runtime for Node cannot run";
  const auto& m = testing_nn::real_mnist();
  nn::Sequential model = nn::make_mnist_model(1);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  model.fit(nn::images_to_tensor(m.x_train), nn::one_hot(m.y_train.data), {.epochs = 1, .seed = 1, .max_steps = 200});
  TempDir dir;
  nn::export_onnx(model, dir / "seed.onnx");
  expect_agreement(model.predict(nn::images_to_tensor(m.x_test)),
                   onnx_runtime_probabilities(dir / "seed.onnx", dir / "seed.npy"));
}

// Chapter 12's models as its executable builds and trains them.
void expect_chapter12_step_agrees(const std::string& step) {
  if (!node_available()) GTEST_SKIP() << "node and npm are not installed: ONNX Runtime for Node cannot run";
  TempDir dir;
  const testing_nn::ProgramRun r = testing_nn::run_program(
      "ch12-beyond", {"--step", step, "--seed", "2", "--epochs", "1", "--max-steps", "30", "--export-onnx",
                      (dir / "model.onnx").string(), "--probabilities", (dir / "course.npy").string(), "--plots",
                      (dir / "plots").string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_agreement(nn::load_npy(dir / "course.npy"), onnx_runtime_probabilities(dir / "model.onnx", dir / "ort.npy"));
}

TEST(OnnxExport, TheKerasIoConvnetAgreesWithOnnxRuntimeOnEveryTestImage) { expect_chapter12_step_agrees("convnet"); }

TEST(OnnxExport, TheBatchNormalizationRungAgreesWithOnnxRuntimeOnEveryTestImage) {
  expect_chapter12_step_agrees("batchnorm");
}

TEST(OnnxExport, ALayerWithoutAnOnnxFormIsNamed) {
  nn::Sequential model({8});
  model.add(nn::make_residual_block(8, 1));
  EXPECT_THAT(error_of([&] { nn::onnx_model_bytes(model); }),
              HasSubstr("export_onnx: layer residual (Residual) has no ONNX form here"));
}

TEST(OnnxExport, APathThatCannotBeWrittenFailsAndLeavesNothing) {
  TempDir dir;
  nn::Sequential model = nn::make_mnist_model(1);
  const std::filesystem::path file = dir / "no-such-folder" / "model.onnx";
  EXPECT_THAT(error_of([&] { nn::export_onnx(model, file); }), HasSubstr("no-such-folder"));
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(OnnxExport, TheGraphIsValidatedAndDeterministic) {
  // The same weights give the same bytes (the checker has run inside).
  nn::Sequential a = nn::make_mnist_model(3), b = nn::make_mnist_model(3);
  const std::string bytes = nn::onnx_model_bytes(a);
  EXPECT_EQ(bytes, nn::onnx_model_bytes(b));
  // 542,230 weights of 4 bytes each, and a few kB of graph.
  EXPECT_GT(bytes.size(), 542230u * 4);
  EXPECT_LT(bytes.size(), 542230u * 4 + 4096);
}

}  // namespace
