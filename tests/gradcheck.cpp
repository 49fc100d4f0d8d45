#include "gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "nn/activations.hpp"
#include "nn/dense.hpp"
#include "nn/error.hpp"
#include "nn/pooling.hpp"
#include "nn/softmax.hpp"

namespace testing_nn {

std::vector<double> as_double(const nn::Tensor& t) { return {t.span().begin(), t.span().end()}; }

std::vector<double> random_doubles(std::size_t n, std::uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (double& e : v) e = u(rng);
  return v;
}

std::vector<LayerGradientCheck> check_layer_gradients(nn::Layer& layer, const nn::Tensor& x_in, std::uint64_t seed,
                                                      double h, std::size_t samples) {
  nn::Tensor x = x_in;  // perturbed in place below
  const nn::Shape y_shape = layer.output_shape(x.shape());
  const std::vector<double> r = random_doubles(y_shape.size(), seed);
  const nn::Tensor r_float(y_shape, std::vector<float>(r.begin(), r.end()));
  const std::vector<double> r_exact = as_double(r_float);  // dL/dy exactly as the layer sees it
  auto loss = [&] {  // L = sum(r * y), in double
    const nn::ConstView y = layer.forward(x);
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += r_exact[i] * static_cast<double>(y[i]);
    return l;
  };

  // The analytic gradients: one forward, one backward.
  const nn::Tensor y(layer.forward(x).tensor());
  const nn::Tensor dx(layer.backward(x, y, r_float, /*need_dx=*/true).tensor());
  struct Target {
    std::string name;
    nn::Tensor* values;
    std::vector<double> analytic;
  };
  std::vector<Target> targets{{"x", &x, as_double(dx)}};
  for (nn::Parameter* p : layer.parameters()) targets.push_back({p->name, &p->value, as_double(p->grad)});

  std::vector<LayerGradientCheck> out;
  for (Target& t : targets) {
    if (t.analytic.size() != t.values->size())
      throw nn::Error("check_layer_gradients: the gradient of " + t.name + " has " + std::to_string(t.analytic.size()) +
                      " entries, the tensor " + std::to_string(t.values->size()));
    LayerGradientCheck c;
    c.tensor = t.name;
    const std::size_t n = t.values->size();
    const auto which = sample_indices(n, std::min(n, samples), seed + 1);
    const double base = loss();
    for (std::size_t i : which) {
      float& v = (*t.values)[i];
      const float keep = v;
      v = static_cast<float>(keep + h);
      const double up_step = static_cast<double>(v) - keep, up = loss();
      v = static_cast<float>(keep - h);
      const double down_step = keep - static_cast<double>(v), down = loss();
      v = keep;
      const double forward_slope = (up - base) / up_step, backward_slope = (base - down) / down_step;
      const double numeric = (up - down) / (up_step + down_step);
      // A kink inside [keep - h, keep + h]: the function is not one line there.
      if (std::abs(forward_slope - backward_slope) > 1e-3 * (1 + std::abs(numeric))) {
        ++c.at_kink;
        continue;
      }
      ++c.checked;
      c.largest = std::max(c.largest, std::abs(numeric));
      const double error = std::abs(t.analytic[i] - numeric);
      if (error >= c.worst) c.worst = error, c.worst_index = i, c.analytic = t.analytic[i], c.numeric = numeric;
    }
    out.push_back(c);
  }
  layer.forward(x);  // leave the layer's buffers as after a forward pass on x
  return out;
}

std::string layer_gradient_problems(nn::Layer& layer, const nn::Tensor& x, std::uint64_t seed, double tolerance,
                                    double h) {
  std::string problems;
  for (const LayerGradientCheck& c : check_layer_gradients(layer, x, seed, h)) {
    const std::string where = layer.type() + " d" + c.tensor;
    if (c.checked == 0 || c.at_kink * 10 > c.checked + c.at_kink)
      problems += where + ": " + std::to_string(c.at_kink) + " of " + std::to_string(c.checked + c.at_kink) +
                  " entries sat at a kink; choose other inputs\n";
    else if (!(c.relative_error() <= tolerance))
      problems += where + "[" + std::to_string(c.worst_index) + "]: backward gives " + std::to_string(c.analytic) +
                  ", central differences " + std::to_string(c.numeric) + " (error " + std::to_string(c.worst) +
                  ", largest gradient " + std::to_string(c.largest) + ")\n";
  }
  return problems;
}

std::vector<double> pick(std::span<const double> v, std::span<const std::size_t> which) {
  if (which.empty()) return {v.begin(), v.end()};
  std::vector<double> out;
  out.reserve(which.size());
  for (std::size_t i : which) out.push_back(v[i]);
  return out;
}

std::vector<std::size_t> sample_indices(std::size_t n, std::size_t count, std::uint64_t seed) {
  std::vector<std::size_t> all(n);
  std::iota(all.begin(), all.end(), std::size_t{0});
  std::shuffle(all.begin(), all.end(), std::mt19937_64(seed));
  all.resize(std::min(count, n));
  std::sort(all.begin(), all.end());
  return all;
}

double smallest_magnitude(std::span<const double> v) {
  double m = std::numeric_limits<double>::infinity();
  for (double e : v) m = std::min(m, std::abs(e));
  return m;
}

double smallest_pool_gap(const nn::Shape& shape, std::size_t pool, std::span<const double> a) {
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

ConvReluPool conv_relu_pool(const nn::Conv2DDims& d, std::size_t pool, std::span<const double> x,
                            std::span<const double> kernel, std::span<const double> bias) {
  ConvReluPool r;
  r.z.resize(d.y_shape().size());
  nn::conv2d_forward_naive(d, x.data(), kernel.data(), bias.data(), r.z.data());
  r.a.resize(r.z.size());
  nn::relu_forward_naive(r.z.data(), r.a.data(), r.z.size());
  r.pooled.resize(nn::max_pool2d_output_shape(d.y_shape(), pool).size());
  nn::max_pool2d_forward_naive(d.y_shape(), pool, r.a.data(), r.pooled.data());
  return r;
}

void conv_relu_pool_backward(const nn::Conv2DDims& d, std::size_t pool, std::span<const double> x,
                             std::span<const double> kernel, const ConvReluPool& pass,
                             std::span<const double> dpooled, std::vector<double>& dkernel,
                             std::vector<double>& dbias) {
  std::vector<double> da(pass.a.size()), dz(pass.a.size());
  nn::max_pool2d_backward_naive(d.y_shape(), pool, pass.a.data(), dpooled.data(), da.data());
  nn::relu_backward_naive(pass.a.data(), da.data(), dz.data(), dz.size());
  dkernel.resize(d.kernel_shape().size());
  dbias.resize(d.c_out);
  nn::conv2d_backward_naive<double>(d, x.data(), kernel.data(), dz.data(), dkernel.data(), dbias.data(), nullptr);
}

DoubleModel DoubleModel::of(nn::Sequential& model, const nn::Shape& x) {
  auto weights = model.named_parameters();
  if (weights.size() != 6) throw nn::Error("DoubleModel: expected the course's model (6 weight tensors)");
  DoubleModel m;
  for (std::size_t i = 0; i < 6; ++i) m.w[i] = as_double(weights[i].parameter->value);
  m.conv = nn::conv2d_dims(x, weights[0].parameter->value.shape());
  m.hidden = weights[2].parameter->value.dim(1);
  m.classes = weights[4].parameter->value.dim(1);
  if (weights[2].parameter->value.dim(0) != m.flat()) throw nn::Error("DoubleModel: the Dense input is not the Flatten width");
  return m;
}

std::size_t DoubleModel::flat() const {
  return nn::max_pool2d_output_shape(conv.y_shape(), pool).size() / conv.n;
}

DoubleModel::Pass DoubleModel::forward(std::span<const double> x) const {
  Pass p;
  p.conv = conv_relu_pool(conv, pool, x, w[0], w[1]);
  forward_dense(p);
  return p;
}

void DoubleModel::forward_dense(Pass& p) const {
  // Flatten: (N, 13, 13, 32) is already (N, 5408) in memory.
  const std::size_t n = conv.n;
  p.hidden_z.resize(n * hidden);
  nn::dense_forward_naive(n, flat(), hidden, p.conv.pooled.data(), w[2].data(), w[3].data(), p.hidden_z.data());
  p.hidden_a.resize(p.hidden_z.size());
  nn::relu_forward_naive(p.hidden_z.data(), p.hidden_a.data(), p.hidden_z.size());
  p.logits.resize(n * classes);
  nn::dense_forward_naive(n, hidden, classes, p.hidden_a.data(), w[4].data(), w[5].data(), p.logits.data());
  p.p.resize(p.logits.size());
  nn::softmax_rows(p.logits.data(), p.p.data(), n, classes);
}

double DoubleModel::loss(std::span<const double> x, std::span<const double> y) const {
  return nn::softmax_crossentropy_rows(forward(x).logits.data(), y.data(), conv.n, classes);
}

double DoubleModel::loss_from_pooled(Pass& pass, std::span<const double> y) const {
  forward_dense(pass);
  return nn::softmax_crossentropy_rows(pass.logits.data(), y.data(), conv.n, classes);
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
  nn::crossentropy_backward_rows(p.p.data(), y.data(), dp.data(), n, classes);
  nn::softmax_backward_rows(p.p.data(), dp.data(), dlogits.data(), n, classes);
  std::vector<double> dhidden(n * hidden), dhidden_z(n * hidden), dpooled(n * flat());
  nn::dense_backward_naive(n, hidden, classes, p.hidden_a.data(), w[4].data(), dlogits.data(), g[4].data(),
                           g[5].data(), dhidden.data());
  nn::relu_backward_naive(p.hidden_a.data(), dhidden.data(), dhidden_z.data(), dhidden.size());
  nn::dense_backward_naive(n, flat(), hidden, p.conv.pooled.data(), w[2].data(), dhidden_z.data(), g[2].data(),
                           g[3].data(), dpooled.data());
  conv_relu_pool_backward(conv, pool, x, w[0], p.conv, dpooled, g[0], g[1]);
  return g;
}

}  // namespace testing_nn
