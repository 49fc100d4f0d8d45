#include "nn/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "nn/error.hpp"

namespace nn {

std::vector<double> as_double(const Tensor& t) { return {t.span().begin(), t.span().end()}; }

double forward_difference(const std::function<double(double)>& f, double w, double h) {
  // [snippet forward-difference]
  const double up = f(w + h);  // L(w + h)
  const double at = f(w);      // L(w)
  return (up - at) / h;        // error about h/2 * L''(w): O(h)
  // [end snippet forward-difference]
}

double central_difference(const std::function<double(double)>& f, double w, double h) {
  // [snippet central-difference]
  const double up = f(w + h);    // L(w + h)
  const double down = f(w - h);  // L(w - h)
  return (up - down) / (2 * h);  // the h^2 terms cancel: error about h^2/6 * L'''(w), O(h^2)
  // [end snippet central-difference]
}

std::vector<double> central_differences(std::vector<double>& param, const std::function<double()>& loss,
                                        double eps, std::span<const std::size_t> which) {
  std::vector<std::size_t> all;
  if (which.empty()) {
    all.resize(param.size());
    std::iota(all.begin(), all.end(), std::size_t{0});
    which = all;
  }
  std::vector<double> grad;
  grad.reserve(which.size());
  // [snippet central-differences]
  for (std::size_t i : which) {
    const double keep = param[i];
    auto loss_at = [&](double value) {  // L with entry i set to value
      param[i] = value;
      return loss();
    };
    grad.push_back(central_difference(loss_at, keep, eps));
    param[i] = keep;
  }
  // [end snippet central-differences]
  return grad;
}

double relative_error(double analytic, double numeric, double floor) {
  const double scale = std::max({std::abs(analytic), std::abs(numeric), floor});
  return scale == 0 ? 0.0 : std::abs(analytic - numeric) / scale;
}

double tensor_relative_error(std::span<const double> analytic, std::span<const double> numeric, double fraction) {
  if (analytic.size() != numeric.size())
    throw Error("tensor_relative_error: " + std::to_string(analytic.size()) + " analytic values, " +
                std::to_string(numeric.size()) + " numeric");
  double largest = 0;
  for (double g : numeric) largest = std::max(largest, std::abs(g));
  double worst = 0;
  for (std::size_t i = 0; i < numeric.size(); ++i)
    worst = std::max(worst, relative_error(analytic[i], numeric[i], fraction * largest));
  return worst;
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

std::vector<double> random_doubles(std::size_t n, std::uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (double& e : v) e = u(rng);
  return v;
}

std::vector<LayerGradientCheck> check_layer_gradients(Layer& layer, const Tensor& x_in, std::uint64_t seed,
                                                      double h, std::size_t samples) {
  Tensor x = x_in;  // perturbed in place below
  const Shape y_shape = layer.output_shape(x.shape());
  const std::vector<double> r = random_doubles(y_shape.size(), seed);
  const Tensor r_float(y_shape, std::vector<float>(r.begin(), r.end()));
  const std::vector<double> r_exact = as_double(r_float);  // dL/dy exactly as the layer sees it
  auto loss = [&] {  // L = sum(r * y), in double
    const ConstView y = layer.forward(x);
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += r_exact[i] * static_cast<double>(y[i]);
    return l;
  };

  // The analytic gradients: one forward, one backward.
  const Tensor y(layer.forward(x).tensor());
  const Tensor dx(layer.backward(x, y, r_float, /*need_dx=*/true).tensor());
  struct Target {
    std::string name;
    Tensor* values;
    std::vector<double> analytic;
  };
  std::vector<Target> targets{{"x", &x, as_double(dx)}};
  for (Parameter* p : layer.parameters())
    if (p->trainable) targets.push_back({p->name, &p->value, as_double(p->grad)});  // state has no gradient

  std::vector<LayerGradientCheck> out;
  for (Target& t : targets) {
    if (t.analytic.size() != t.values->size())
      throw Error("check_layer_gradients: the gradient of " + t.name + " has " + std::to_string(t.analytic.size()) +
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

std::string layer_gradient_problems(Layer& layer, const Tensor& x, std::uint64_t seed, double tolerance,
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

}  // namespace nn
