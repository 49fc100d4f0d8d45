// Chapter 00: how a network learns, on one neuron
//
// The whole training loop (forward -> loss -> backward -> update) on
// L = (relu(w x + b) - t)^2, its gradients by the chain rule, and the same
// gradients measured by finite differences, one-sided and centred, in double
// and in float.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/gradcheck.hpp"
#include "nn/plot.hpp"

namespace {

// The example: one input x, one weight w, one bias b, a target t.
struct Example {
  double x = 2.0, w = 0.75, b = 0.5, t = 1.0;
};

// [snippet ch00-forward]
// Forward: three small steps, each kept for the backward pass.
struct Forward {
  double z, a, loss;
};
Forward forward(const Example& e) {
  const double z = e.w * e.x + e.b;           // multiply, then add
  const double a = std::max(0.0, z);          // relu(z) = max(0, z)
  const double loss = (a - e.t) * (a - e.t);  // the squared error
  return {z, a, loss};
}
// [end snippet ch00-forward]

// [snippet ch00-backward]
// Backward: the chain rule, one step at a time from the loss back.
struct Gradients {
  double da, dz, dw, dx, db;  // dL/da, dL/dz, dL/dw, dL/dx, dL/db
};
Gradients backward(const Example& e, const Forward& f) {
  Gradients g;
  g.da = 2.0 * (f.a - e.t);        // d(a - t)^2 / da
  g.dz = f.z > 0 ? g.da : 0.0;     // max routes: all of it if z won against 0, else nothing
  g.dw = g.dz * e.x;               // multiply swaps: w's gradient is dz times x ...
  g.dx = g.dz * e.w;               // ... and x's is dz times w
  g.db = g.dz;                     // add distributes: b gets dz unchanged
  return g;
}
// [end snippet ch00-backward]

// The same neuron with tanh instead of relu: smooth, so that the centred
// difference has an h^2 error to show (the relu neuron is a parabola in w,
// where the centred difference is exact).
template <class T>
T tanh_loss(T w, const Example& e) {
  const T a = std::tanh(w * static_cast<T>(e.x) + static_cast<T>(e.b));
  return (a - static_cast<T>(e.t)) * (a - static_cast<T>(e.t));
}
double tanh_dw(const Example& e) {
  const double a = std::tanh(e.w * e.x + e.b);
  return 2.0 * (a - e.t) * (1.0 - a * a) * e.x;  // dL/da * da/dz * dz/dw
}

struct ErrorRow {
  double h, relu_one_sided, relu_centred, tanh_one_sided, tanh_centred, tanh_centred_float;
};

std::vector<ErrorRow> step_errors(const Example& e, double dw) {
  auto relu_loss = [&](double w) {
    Example moved = e;
    moved.w = w;
    return forward(moved).loss;
  };
  auto tanh_double = [&](double w) { return tanh_loss<double>(w, e); };
  auto tanh_float = [&](double w) { return static_cast<double>(tanh_loss<float>(static_cast<float>(w), e)); };
  const double tanh_exact = tanh_dw(e);
  std::vector<ErrorRow> rows;
  for (int k = 1; k <= 12; ++k) {
    const double h = std::pow(10.0, -k);
    rows.push_back({h, nn::relative_error(dw, nn::forward_difference(relu_loss, e.w, h)),
                    nn::relative_error(dw, nn::central_difference(relu_loss, e.w, h)),
                    nn::relative_error(tanh_exact, nn::forward_difference(tanh_double, e.w, h)),
                    nn::relative_error(tanh_exact, nn::central_difference(tanh_double, e.w, h)),
                    nn::relative_error(tanh_exact, nn::central_difference(tanh_float, e.w, h))});
  }
  return rows;
}

void plot_errors(const std::vector<ErrorRow>& rows, const std::filesystem::path& file) {
  nn::plot::Png png(file, 900, 620);
  auto& gp = png.gp();
  // A relative error of 0 has no place on a log axis: draw it at 1e-17.
  auto v = [](double e) { return std::max(e, 1e-17); };
  gp << "set title 'Finite differences of dL/dw: relative error against the step h'\n"
     << "set logscale xy; set format x '1e%T'; set format y '1e%T'; set xrange [1e-1:1e-12]\n"
     << "set xlabel 'h (smaller to the right)'; set ylabel 'relative error'; set grid; set key below\n"
     << "plot '-' with linespoints pt 7 lw 2 lc rgb '#7b3294' title 'one-sided, relu neuron', "
     << "'-' with linespoints pt 5 lw 2 lc rgb '#1b9e77' title 'centred, relu neuron (exact but for rounding)', "
     << "'-' with linespoints pt 9 lw 2 lc rgb '#2c7bb6' title 'one-sided, tanh neuron', "
     << "'-' with linespoints pt 11 lw 2 lc rgb '#d95f02' title 'centred, tanh neuron', "
     << "'-' with linespoints pt 13 lw 2 dt 2 lc rgb '#444444' title 'centred, tanh neuron, in float'\n";
  for (int col = 0; col < 5; ++col) {
    for (const ErrorRow& r : rows) {
      const double e[] = {r.relu_one_sided, r.relu_centred, r.tanh_one_sided, r.tanh_centred, r.tanh_centred_float};
      gp << fmt::format("{} {}\n", r.h, v(e[col]));
    }
    gp << "e\n";
  }
  png.finish();
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch00-how-a-network-learns",
                      "Chapter 00: forward, loss, backward and update on one neuron, L = (relu(w x + b) - t)^2, "
                      "with its gradients checked by finite differences.");
  Example e;
  double h = 1e-6, lr = 0.05;
  int steps = 5;
  std::filesystem::path plots = nn::cli::default_plots_dir();
  const nn::cli::RealRange value{-1e6, 1e6};
  cli.option("--x", "X", "the input", &e.x, value);
  cli.option("--w", "W", "the weight", &e.w, value);
  cli.option("--b", "B", "the bias", &e.b, value);
  cli.option("--t", "T", "the target", &e.t, value);
  cli.option("--h", "H", "the step of the finite differences", &h, {.min = 0, .max = 1, .open_min = true, .open_max = true});
  cli.option("--lr", "LR", "the learning rate of the update w -= lr dL/dw", &lr, {0, 1000});
  cli.option("--steps", "N", "how many times to run the loop", &steps, {0, 1000});
  cli.option("--plots", "DIR", "folder for the PNG plots this run draws", &plots);
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;

    fmt::print("One neuron and its loss: L = (relu(w x + b) - t)^2\n");
    fmt::print("  x = {}, w = {}, b = {}, t = {}\n\n", e.x, e.w, e.b, e.t);
    const Forward f = forward(e);
    const Gradients g = backward(e, f);
    auto line = [](const char* step, const std::string& formula, double value, const char* pattern) {
      std::string text = fmt::format("{:<9} {:<22}= {:<12.10g}{}", step, formula, value + 0.0, pattern);  // + 0.0: -0 prints as 0
      fmt::print("{}\n", text.substr(0, text.find_last_not_of(' ') + 1));
    };
    line("forward", "z = w x + b", f.z, "");
    line("", "a = max(0, z)", f.a, "");
    line("", "L = (a - t)^2", f.loss, "");
    line("backward", "dL/da = 2 (a - t)", g.da, "");
    line("", f.z > 0 ? "dL/dz = dL/da" : "dL/dz = 0", g.dz, f.z > 0 ? "max routes: z won against 0" : "max routes: 0 won against z");
    line("", "dL/dw = dL/dz * x", g.dw, "multiply swaps");
    line("", "dL/dx = dL/dz * w", g.dx, "");
    line("", "dL/db = dL/dz", g.db, "add distributes");
    if (f.z == 0) fmt::print("  z = 0: the relu's kink, where L has no derivative in w, x or b (the code takes 0)\n");

    // The three gradients again, measured: nudge one input, watch L.
    fmt::print("\nchain rule against centred differences (h = {:g}, in double):\n", h);
    fmt::print("  {:<6} {:>22} {:>22} {:>15}\n", "", "chain rule", "numeric", "relative error");
    const std::pair<const char*, double Example::*> inputs[] = {{"dL/dw", &Example::w}, {"dL/dx", &Example::x},
                                                                 {"dL/db", &Example::b}};
    const double analytic[] = {g.dw, g.dx, g.db};
    for (std::size_t i = 0; i < 3; ++i) {
      auto loss_at = [&](double value) {
        Example moved = e;
        moved.*inputs[i].second = value;
        return forward(moved).loss;
      };
      const double numeric = nn::central_difference(loss_at, e.*inputs[i].second, h);
      fmt::print("  {:<6} {:>22.15g} {:>22.15g} {:>15.2e}\n", inputs[i].first, analytic[i] + 0.0, numeric,
                 nn::relative_error(analytic[i], numeric));
    }

    // [snippet ch00-loop]
    fmt::print("\nthe loop: forward -> loss -> backward -> update (w -= lr dL/dw, b -= lr dL/db), lr = {}\n", lr);
    Example learning = e;
    for (int step = 0; step <= steps; ++step) {
      const Forward out = forward(learning);              // forward
      const Gradients grad = backward(learning, out);     // backward, from the loss
      fmt::print("  step {:>3}: w = {:>10.6f}  b = {:>10.6f}  L = {:.6e}\n", step, learning.w, learning.b, out.loss);
      if (step == steps) break;
      learning.w -= lr * grad.dw;                         // update: a small step downhill
      learning.b -= lr * grad.db;
    }
    // [end snippet ch00-loop]

    const std::vector<ErrorRow> rows = step_errors(e, g.dw);
    fmt::print("\nrelative error of dL/dw from finite differences, against the step h:\n");
    fmt::print("  {:>7}  {:>11} {:>11}  {:>11} {:>11} {:>11}\n", "", "relu", "", "tanh", "", "tanh, float");
    fmt::print("  {:>7}  {:>11} {:>11}  {:>11} {:>11} {:>11}\n", "h", "one-sided", "centred", "one-sided", "centred",
               "centred");
    for (const ErrorRow& r : rows)
      fmt::print("  {:>7.0e}  {:>11.1e} {:>11.1e}  {:>11.1e} {:>11.1e} {:>11.1e}\n", r.h, r.relu_one_sided,
                 r.relu_centred, r.tanh_one_sided, r.tanh_centred, r.tanh_centred_float);

    const auto file = plots / "00-finite-differences.png";
    plot_errors(rows, file);
    fmt::print("\nWrote {}\n", file.string());
    return 0;
  });
}
