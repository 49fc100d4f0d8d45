// A program outside the course: a layer of its own in a Sequential, trained
// for a few steps on random data, saved, loaded into a fresh model and
// checked. Exits 0 and prints "nn_user: ok" when everything holds.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "nn/error.hpp"
#include "nn/layer.hpp"
#include "nn/layers/dense.hpp"
#include "nn/layers/flatten.hpp"
#include "nn/model.hpp"
#include "nn/optimizer.hpp"
#include "nn/tensor.hpp"

namespace {

// y = s * x with one weight s: a layer the library does not know.
class Scale final : public nn::Layer {
 public:
  nn::Parameter scale{"scale", nn::Tensor({1}, 0.5f)};  // (1,)
  std::string type() const override { return "Scale"; }
  std::string base_name() const override { return "scale"; }
  nn::Shape output_shape(const nn::Shape& x) const override { return x; }
  nn::ConstView forward(const nn::Tensor& x) override {
    nn::ensure_shape(y_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y_[i] = scale.value[0] * x[i];
    return y_;
  }
  nn::ConstView backward(const nn::Tensor& x, const nn::Tensor&, const nn::Tensor& dy, bool need_dx) override {
    double ds = 0;  // dL/ds = sum(x * dy)
    for (std::size_t i = 0; i < x.size(); ++i) ds += static_cast<double>(x[i]) * dy[i];
    scale.grad[0] = static_cast<float>(ds);
    if (!need_dx) return {};
    nn::ensure_shape(dx_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) dx_[i] = scale.value[0] * dy[i];  // dL/dx = s * dy
    return dx_;
  }
  std::vector<nn::Parameter*> parameters() override { return {&scale}; }

 private:
  nn::Tensor y_, dx_;
};

nn::Sequential build() {
  nn::Sequential model({4, 4, 1});
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 3, .input_dim = 16, .seed = 7}));
  model.add(Scale());
  return model;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "nn_user: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) return fail("usage: nn_user <folder to save the weights in>");
  // 64 random 4x4 images, each labelled by which third of [0, 1) its mean falls in.
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  nn::Tensor x({64, 4, 4, 1}), y({64, 3});  // zeros
  for (std::size_t n = 0; n < 64; ++n) {
    float sum = 0;
    for (std::size_t i = 0; i < 16; ++i) sum += x[n * 16 + i] = u(rng);
    y[n * 3 + std::min<std::size_t>(2, static_cast<std::size_t>(sum / 16 * 3))] = 1;
  }

  nn::Sequential model = build();
  model.compile(nn::make_optimizer("sgd", 0.1f));
  const double before = model.evaluate(x, y).loss;
  const nn::History history = model.fit(x, y, {.epochs = 5, .batch_size = 16, .seed = 2});
  const double after = model.evaluate(x, y).loss;
  if (history.steps != 20) return fail("fit trained " + std::to_string(history.steps) + " batches, not 20");
  if (!(after < before)) return fail("the loss did not go down: " + std::to_string(before) + " -> " + std::to_string(after));
  const float s = model.named_parameters().back().parameter->value[0];
  if (s == 0.5f) return fail("the optimizer never moved the custom layer's weight");

  const std::filesystem::path dir = argv[1];
  model.save(dir, 5);
  nn::Sequential loaded = build();
  if (loaded.load(dir) != 5) return fail("load did not return the saved epoch");
  if (loaded.named_parameters().back().parameter->value[0] != s) return fail("the loaded weight differs");
  const nn::Tensor a = model.predict(x), b = loaded.predict(x);
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return fail("the loaded model predicts otherwise at " + std::to_string(i));
  std::printf("nn_user: ok (loss %.4f -> %.4f, scale %.4f)\n", before, after, s);
  return 0;
} catch (const nn::Error& e) {
  return fail(std::string("error: ") + e.what());
}
