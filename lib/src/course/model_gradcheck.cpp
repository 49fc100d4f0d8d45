#include "nn/model_gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "nn/activations.hpp"
#include "nn/dense.hpp"
#include "nn/error.hpp"
#include "nn/one_hot.hpp"
#include "nn/pooling.hpp"
#include "nn/softmax.hpp"

namespace nn {

namespace {

std::vector<std::size_t> all_indices(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t{0});
  return v;
}

}  // namespace

double smallest_magnitude(std::span<const double> v) {
  double m = std::numeric_limits<double>::infinity();
  for (double e : v) m = std::min(m, std::abs(e));
  return m;
}

double smallest_pool_gap(const Shape& shape, std::size_t pool, std::span<const double> a) {
  const std::size_t n = shape[0], h = shape[1], w = shape[2], c = shape[3];
  double gap = std::numeric_limits<double>::infinity();
  for (std::size_t b = 0; b < n; ++b)
    for (std::size_t i = 0; i + pool <= h; i += pool)
      for (std::size_t j = 0; j + pool <= w; j += pool)
        for (std::size_t ch = 0; ch < c; ++ch) {
          std::vector<double> window;
          for (std::size_t p = 0; p < pool; ++p)
            for (std::size_t q = 0; q < pool; ++q) window.push_back(a[((b * h + i + p) * w + j + q) * c + ch]);
          std::sort(window.rbegin(), window.rend());
          if (window[0] > 0 && window.size() > 1) gap = std::min(gap, window[0] - window[1]);
        }
  return gap;
}

ConvReluPool conv_relu_pool(const Conv2DDims& d, std::size_t pool, std::span<const double> x,
                            std::span<const double> kernel, std::span<const double> bias) {
  ConvReluPool r;
  r.z.resize(d.y_shape().size());
  conv2d_forward_naive(d, x.data(), kernel.data(), bias.data(), r.z.data());
  r.a.resize(r.z.size());
  relu_forward_naive(r.z.data(), r.a.data(), r.z.size());
  r.pooled.resize(max_pool2d_output_shape(d.y_shape(), pool).size());
  max_pool2d_forward_naive(d.y_shape(), pool, r.a.data(), r.pooled.data());
  return r;
}

void conv_relu_pool_backward(const Conv2DDims& d, std::size_t pool, std::span<const double> x,
                             std::span<const double> kernel, const ConvReluPool& pass,
                             std::span<const double> dpooled, std::vector<double>& dkernel,
                             std::vector<double>& dbias) {
  std::vector<double> da(pass.a.size()), dz(pass.a.size());
  max_pool2d_backward_naive(d.y_shape(), pool, pass.a.data(), dpooled.data(), da.data());
  relu_backward_naive(pass.a.data(), da.data(), dz.data(), dz.size());
  dkernel.resize(d.kernel_shape().size());
  dbias.resize(d.c_out);
  conv2d_backward_naive<double>(d, x.data(), kernel.data(), dz.data(), dkernel.data(), dbias.data(), nullptr);
}

DoubleModel DoubleModel::of(Sequential& model, const Shape& x) {
  auto weights = model.named_parameters();
  if (weights.size() != 6) throw Error("DoubleModel: expected the course's model (6 weight tensors)");
  DoubleModel m;
  for (std::size_t i = 0; i < 6; ++i) m.w[i] = as_double(weights[i].parameter->value);
  m.conv = conv2d_dims(x, weights[0].parameter->value.shape());
  m.hidden = weights[2].parameter->value.dim(1);
  m.classes = weights[4].parameter->value.dim(1);
  if (weights[2].parameter->value.dim(0) != m.flat()) throw Error("DoubleModel: the Dense input is not the Flatten width");
  return m;
}

std::size_t DoubleModel::flat() const {
  return max_pool2d_output_shape(conv.y_shape(), pool).size() / conv.n;
}

DoubleModel::Pass DoubleModel::forward(std::span<const double> x) const {
  Pass p;
  p.conv = conv_relu_pool(conv, pool, x, w[0], w[1]);
  forward_dense(p);
  return p;
}

double DoubleModel::head_loss(std::span<const double> z, std::vector<double>& a, std::vector<double>& logits,
                              std::vector<double>& p, std::span<const double> y) const {
  const std::size_t n = conv.n;
  a.resize(z.size());
  relu_forward_naive(z.data(), a.data(), z.size());
  logits.resize(n * classes);
  dense_forward_naive(n, hidden, classes, a.data(), w[4].data(), w[5].data(), logits.data());
  p.resize(logits.size());
  softmax_rows(logits.data(), p.data(), n, classes);
  return y.empty() ? 0.0 : softmax_crossentropy_rows(logits.data(), y.data(), n, classes);
}

void DoubleModel::forward_dense(Pass& p) const {
  // Flatten: (N, 13, 13, 32) is already (N, 5408) in memory.
  const std::size_t n = conv.n;
  p.hidden_z.resize(n * hidden);
  dense_forward_naive(n, flat(), hidden, p.conv.pooled.data(), w[2].data(), w[3].data(), p.hidden_z.data());
  head_loss(p.hidden_z, p.hidden_a, p.logits, p.p, {});
}

double DoubleModel::loss(std::span<const double> x, std::span<const double> y) const {
  return softmax_crossentropy_rows(forward(x).logits.data(), y.data(), conv.n, classes);
}

double DoubleModel::loss_from_hidden_unit(const Pass& pass, std::size_t unit, std::span<const double> y) const {
  const std::size_t n = conv.n, in = flat();
  std::vector<double> column(in), z_unit(n);  // (5408,) and (N,)
  for (std::size_t q = 0; q < in; ++q) column[q] = w[2][q * hidden + unit];
  dense_forward_naive(n, in, 1, pass.conv.pooled.data(), column.data(), &w[3][unit], z_unit.data());
  std::vector<double> z = pass.hidden_z, a, logits, p;  // (N, hidden)
  for (std::size_t b = 0; b < n; ++b) z[b * hidden + unit] = z_unit[b];
  return head_loss(z, a, logits, p, y);
}

double DoubleModel::loss_from_hidden(const Pass& pass, std::span<const double> y) const {
  std::vector<double> a, logits, p;
  return head_loss(pass.hidden_z, a, logits, p, y);
}

std::array<std::vector<double>, 6> DoubleModel::gradients(std::span<const double> x,
                                                          std::span<const double> y) const {
  const Pass p = forward(x);
  const std::size_t n = conv.n;
  std::array<std::vector<double>, 6> g;
  for (std::size_t i = 0; i < 6; ++i) g[i].resize(w[i].size());
  // The loss's gradient as the two backward passes chained: cross-entropy,
  // then softmax. (Equal to the model's (p - y) / N where no p is clipped;
  // the gradient check below shows it is the slope of the loss from the logits.)
  std::vector<double> dp(p.p.size()), dlogits(p.p.size());
  crossentropy_backward_rows(p.p.data(), y.data(), dp.data(), n, classes);
  softmax_backward_rows(p.p.data(), dp.data(), dlogits.data(), n, classes);
  std::vector<double> dhidden(n * hidden), dhidden_z(n * hidden), dpooled(n * flat());
  dense_backward_naive(n, hidden, classes, p.hidden_a.data(), w[4].data(), dlogits.data(), g[4].data(),
                           g[5].data(), dhidden.data());
  relu_backward_naive(p.hidden_a.data(), dhidden.data(), dhidden_z.data(), dhidden.size());
  dense_backward_naive(n, flat(), hidden, p.conv.pooled.data(), w[2].data(), dhidden_z.data(), g[2].data(),
                           g[3].data(), dpooled.data());
  conv_relu_pool_backward(conv, pool, x, w[0], p.conv, dpooled, g[0], g[1]);
  // The planted bug: one layer's weight gradients with the wrong sign (the
  // gradient it passes back to the layer below stays right).
  // [snippet gradcheck-break]
  const std::array<std::string, 3> layers = {"conv2d", "dense", "dense_1"};
  for (std::size_t l = 0; l < layers.size(); ++l)
    if (broken == layers[l])
      for (std::size_t t : {2 * l, 2 * l + 1})
        for (double& e : g[t]) e = -e;
  // [end snippet gradcheck-break]
  return g;
}

double TensorGradientCheck::max_relative_error(double fraction) const {
  return tensor_relative_error(analytic, numeric, fraction);
}

double TensorGradientCheck::largest() const {
  double m = 0;
  for (double g : numeric) m = std::max(m, std::abs(g));
  return m;
}

double TensorGradientCheck::max_abs_error() const {
  double worst = 0;
  for (std::size_t i = 0; i < numeric.size(); ++i) worst = std::max(worst, std::abs(analytic[i] - numeric[i]));
  return worst;
}

namespace {

// The margins of one forward pass of the double model.
KinkMargins margins_of(const DoubleModel& net, const DoubleModel::Pass& pass) {
  // A Dense(100) unit's reach: a pooled value (its kernel), 1 (its bias), or
  // the sum of |kernel| over one channel's rows (a conv weight of that channel).
  const std::vector<double>& kernel = net.w[2];  // (5408, 100): row q is pooled feature q, channel q % c_out
  const std::size_t c_out = net.conv.c_out;
  double reach = std::max(1.0, *std::max_element(pass.conv.pooled.begin(), pass.conv.pooled.end()));
  std::vector<double> channel_sum(c_out * net.hidden, 0.0);  // (c_out, hidden)
  for (std::size_t q = 0; q < net.flat(); ++q)
    for (std::size_t j = 0; j < net.hidden; ++j)
      channel_sum[(q % c_out) * net.hidden + j] += std::abs(kernel[q * net.hidden + j]);
  for (double s : channel_sum) reach = std::max(reach, s);
  return {.conv = smallest_magnitude(pass.conv.z),
          .pool_gap = smallest_pool_gap(net.conv.y_shape(), net.pool, pass.conv.a),
          .hidden = smallest_magnitude(pass.hidden_z),
          .hidden_reach = reach};
}

}  // namespace

KinkMargins kink_margins(Sequential& model, const Tensor& x) {
  const DoubleModel net = DoubleModel::of(model, x.shape());
  return margins_of(net, net.forward(as_double(x)));
}

ModelGradientCheck check_model_gradients(Sequential& model, const Tensor& x_float, const Tensor& y_float, double eps,
                                         std::size_t dense_samples, std::uint64_t seed, const std::string& broken) {
  const std::vector<double> x = as_double(x_float), y = as_double(y_float);
  DoubleModel net = DoubleModel::of(model, x_float.shape());
  if (!broken.empty() && broken != "conv2d" && broken != "dense" && broken != "dense_1")
    throw Error("check_model_gradients: no layer '" + broken + "' to break (conv2d, dense or dense_1)");
  net.broken = broken;
  ModelGradientCheck out;
  out.eps = eps;
  auto pass = net.forward(x);  // one forward pass gives the loss and the margins
  out.loss = softmax_crossentropy_rows(pass.logits.data(), y.data(), net.conv.n, net.classes);
  out.margins = margins_of(net, pass);

  const auto analytic = net.gradients(x, y);
  const auto weights = model.named_parameters();
  for (std::size_t t = 0; t < 6; ++t) {
    // [snippet gradcheck-model]
    // Every weight, except the 540,800 of the big kernel: a sample of those.
    const auto which = t == 2 ? sample_indices(net.w[t].size(), dense_samples, seed) : std::vector<std::size_t>{};
    std::vector<double> numeric;
    if (t < 2) {  // a conv weight: the whole forward pass, twice
      numeric = central_differences(net.w[t], [&] { return net.loss(x, y); }, eps, which);
    } else if (t < 4) {  // Dense(100): a step in unit j's column or bias moves unit j only
      for (std::size_t i : t == 2 ? which : all_indices(net.w[t].size())) {
        const std::size_t j = t == 2 ? i % net.hidden : i;  // kernel (5408, 100): entry i is in column j
        const std::size_t one[] = {i};
        auto loss = [&] { return net.loss_from_hidden_unit(pass, j, y); };
        numeric.push_back(central_differences(net.w[t], loss, eps, one)[0]);
      }
    } else {  // a weight of Dense(10): Dense(100)'s output stays as it is
      numeric = central_differences(net.w[t], [&] { return net.loss_from_hidden(pass, y); }, eps, which);
    }
    // [end snippet gradcheck-model]
    out.tensors.push_back({weights[t].name, which, pick(analytic[t], which), numeric});
  }
  return out;
}

std::vector<std::string> wrong_tensors(const ModelGradientCheck& check, double tolerance) {
  std::vector<std::string> bad;
  for (const TensorGradientCheck& t : check.tensors)
    if (!(t.max_relative_error() <= tolerance)) bad.push_back(t.name);  // a NaN is wrong too
  return bad;
}

SeededGradientCheck seeded_gradient_check(std::uint64_t seed, const std::string& broken, double h,
                                          std::size_t images) {
  // [snippet ch09-gradcheck-setup]
  SeededGradientCheck s{.model = make_mnist_model(seed), .x = Tensor({images, 28, 28, 1}), .y = {}, .draws = 0,
                        .check = {}};  // x: (images, 28, 28, 1)
  std::mt19937_64 rng(seed);
  // Non-zero biases (Keras starts them at 0): a unit whose input patch is
  // all zeros would sit exactly on the ReLU's kink at 0.
  std::uniform_real_distribution<float> small(-0.1f, 0.1f);
  for (auto& w : s.model.named_parameters())
    if (w.name.ends_with(".bias"))
      for (float& b : w.parameter->value.span()) b = small(rng);
  // Random pixels rather than digits: a digit's blank background makes all
  // four inputs of a pooling window equal, a tie a step can break. Drawn
  // again until no unit and no window sits within reach of a step.
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  do {
    for (float& v : s.x.span()) v = pixel(rng);
    ++s.draws;
  } while (!kink_margins(s.model, s.x).clear(h) && s.draws < 100);
  std::vector<int> labels(images);
  for (std::size_t i = 0; i < images; ++i) labels[i] = i % 2 == 0 ? 3 : 8;
  s.y = one_hot(labels, 10);  // (images, 10)
  s.check = check_model_gradients(s.model, s.x, s.y, h, 2000, seed, broken);
  // [end snippet ch09-gradcheck-setup]
  return s;
}

}  // namespace nn
