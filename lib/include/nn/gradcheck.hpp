#pragma once
// Finite differences: the slope of a function measured by nudging its input,
// to check a gradient computed by the chain rule (chapter 00). Every gradient
// check of the course uses these; run them in double precision.
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

namespace nn {

// (f(w + h) - f(w)) / h: the one-sided difference, error O(h).
double forward_difference(const std::function<double(double)>& f, double w, double h);

// (f(w + h) - f(w - h)) / (2 h): the centred difference, error O(h^2).
double central_difference(const std::function<double(double)>& f, double w, double h);

// The centred difference of loss() in each entry `which` of `param` (every
// entry when `which` is empty), with step eps; `param` is restored after each.
std::vector<double> central_differences(std::vector<double>& param, const std::function<double()>& loss,
                                        double eps, std::span<const std::size_t> which = {});

// |analytic - numeric| / max(|analytic|, |numeric|), 0 when both are 0: an
// error that means the same for a gradient of 1e-4 and one of 1e4.
double relative_error(double analytic, double numeric);

}  // namespace nn
