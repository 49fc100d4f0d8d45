#include "nn/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace nn {

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

double relative_error(double analytic, double numeric) {
  const double scale = std::max(std::abs(analytic), std::abs(numeric));
  return scale == 0 ? 0.0 : std::abs(analytic - numeric) / scale;
}

}  // namespace nn
