// Chapter 00: the chain rule on one neuron, and finite differences.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "nn/gradcheck.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;

TEST(FiniteDifferences, OneSidedErrorIsHalfTheCurvatureTimesH) {
  // f(w) = w^2 at w = 3: f' = 6, f'' = 2. One-sided: ((3 + h)^2 - 9) / h = 6 + h exactly;
  // centred: ((3 + h)^2 - (3 - h)^2) / 2h = 6 exactly (a parabola has no h^2 term).
  auto square = [](double w) { return w * w; };
  for (double h : {1e-1, 1e-2, 1e-3}) {
    EXPECT_NEAR(nn::forward_difference(square, 3.0, h), 6.0 + h, 1e-12) << "h = " << h;
    EXPECT_NEAR(nn::central_difference(square, 3.0, h), 6.0, 1e-12) << "h = " << h;
  }
}

TEST(FiniteDifferences, CentredErrorFallsAsHSquared) {
  // exp at 0: the one-sided error is about h/2, the centred one about h^2/6.
  auto exp = [](double w) { return std::exp(w); };
  for (double h : {1e-1, 1e-2, 1e-3}) {
    EXPECT_NEAR(nn::forward_difference(exp, 0.0, h) - 1.0, h / 2, h * h) << "h = " << h;
    EXPECT_NEAR(nn::central_difference(exp, 0.0, h) - 1.0, h * h / 6, h * h * h) << "h = " << h;
  }
}

TEST(FiniteDifferences, CentralDifferencesNudgeEachEntryAndRestoreIt) {
  std::vector<double> w{1.0, -2.0, 0.5};
  auto loss = [&] { return w[0] * w[0] + 3 * w[1] + w[0] * w[2]; };  // gradient (2 w0 + w2, 3, w0)
  const std::vector<double> g = nn::central_differences(w, loss, 1e-5);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_NEAR(g[0], 2.5, 1e-9);
  EXPECT_NEAR(g[1], 3.0, 1e-9);
  EXPECT_NEAR(g[2], 1.0, 1e-9);
  EXPECT_EQ(w, (std::vector<double>{1.0, -2.0, 0.5}));
  const std::size_t which[] = {2};
  EXPECT_EQ(nn::central_differences(w, loss, 1e-5, which).size(), 1u);
}

TEST(FiniteDifferences, RelativeError) {
  EXPECT_EQ(nn::relative_error(0.0, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(nn::relative_error(4.0, 3.0), 0.25);
  EXPECT_DOUBLE_EQ(nn::relative_error(-1e-4, -1.1e-4), 0.1e-4 / 1.1e-4);  // the same for small gradients
  EXPECT_DOUBLE_EQ(nn::relative_error(1.0, -1.0), 2.0);                  // a flipped sign: 2
}

// The number printed after `label` ... "= " on one line of the program's output.
double printed(const std::string& output, const std::string& label) {
  const std::size_t at = output.find(label);
  if (at == std::string::npos) return NAN;
  const std::size_t eq = output.find("= ", at + label.size());
  return std::stod(output.substr(eq + 2));
}

TEST(Chapter00, PrintsTheHandComputedChainRule) {
  // x = 2, w = 0.75, b = 0.5, t = 1:  z = 2, a = 2, L = 1, dL/da = 2, dL/dz = 2,
  // dL/dw = dz x = 4, dL/dx = dz w = 1.5, dL/db = dz = 2.
  testing_nn::TempDir dir;
  const auto run = testing_nn::run_program("ch00-how-a-network-learns", {"--plots", dir.path().string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(printed(run.output, "z = w x + b"), 2.0);
  EXPECT_EQ(printed(run.output, "a = max(0, z)"), 2.0);
  EXPECT_EQ(printed(run.output, "L = (a - t)^2"), 1.0);
  EXPECT_EQ(printed(run.output, "dL/da = 2 (a - t)"), 2.0);
  EXPECT_EQ(printed(run.output, "dL/dz = dL/da"), 2.0);
  EXPECT_EQ(printed(run.output, "dL/dw = dL/dz * x"), 4.0);
  EXPECT_EQ(printed(run.output, "dL/dx = dL/dz * w"), 1.5);
  EXPECT_EQ(printed(run.output, "dL/db = dL/dz"), 2.0);
  EXPECT_TRUE(std::filesystem::exists(dir / "00-finite-differences.png")) << run.output;
}

TEST(Chapter00, PrintedGradientsMatchTheNumericOnes) {
  testing_nn::TempDir dir;
  const auto run = testing_nn::run_program("ch00-how-a-network-learns", {"--plots", dir.path().string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // "  dL/dw   4   4.00000000004   1.0e-11": a line of four words starting with dL/dw, dL/dx or dL/db.
  // (Read word by word: GCC 12's <regex> trips -Wmaybe-uninitialized under the sanitizers.)
  int rows = 0;
  std::istringstream lines(run.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string name, analytic_text, numeric_text, rel_text, extra;
    if (!(words >> name >> analytic_text >> numeric_text >> rel_text) || (words >> extra)) continue;
    if (name != "dL/dw" && name != "dL/dx" && name != "dL/db") continue;
    const double analytic = std::stod(analytic_text), numeric = std::stod(numeric_text), rel = std::stod(rel_text);
    EXPECT_NEAR(analytic, numeric, 1e-8 * std::abs(analytic)) << name;
    EXPECT_LT(rel, 1e-8) << name;
    ++rows;
  }
  EXPECT_EQ(rows, 3) << run.output;
}

TEST(Chapter00, TheLoopLowersTheLoss) {
  // With lr = 0.05 each step multiplies a - t by 1 - 2 lr (x^2 + 1) = 0.5: L falls by 4 per step.
  testing_nn::TempDir dir;
  const auto run =
      testing_nn::run_program("ch00-how-a-network-learns", {"--steps", "3", "--plots", dir.path().string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NEAR(printed(run.output, "step   1:"), 0.55, 1e-6);  // the first "= " is w's
  EXPECT_THAT(run.output, HasSubstr("L = 1.000000e+00"));
  EXPECT_THAT(run.output, HasSubstr("L = 2.500000e-01"));
  EXPECT_THAT(run.output, HasSubstr("L = 6.250000e-02"));
  EXPECT_THAT(run.output, HasSubstr("L = 1.562500e-02"));
}

TEST(Chapter00, ADeadReluPassesNoGradient) {
  // w = -1: z = -1.5 < 0, a = 0, L = 1; the max sends nothing back, so every gradient but dL/da is 0.
  testing_nn::TempDir dir;
  const auto run =
      testing_nn::run_program("ch00-how-a-network-learns", {"--w", "-1", "--plots", dir.path().string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(printed(run.output, "dL/da = 2 (a - t)"), -2.0);
  EXPECT_EQ(printed(run.output, "dL/dw = dL/dz * x"), 0.0);
  EXPECT_EQ(printed(run.output, "dL/db = dL/dz"), 0.0);
}

TEST(Chapter00, BadOptionsAreClearErrors) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--h", "0"}, "error: --h 0 is outside (0, 1)"},
      {{"--h", "2"}, "error: --h 2 is outside (0, 1)"},
      {{"--lr", "-0.1"}, "error: --lr -0.1 is outside [0, 1000]"},
      {{"--lr", "nan"}, "error: --lr nan is not a finite number"},
      {{"--steps", "-1"}, "error: --steps -1 is outside 0..1000"},
      {{"--steps", "1001"}, "error: --steps 1001 is outside 0..1000"},
      {{"--steps", "4294967296"}, "error: --steps 4294967296 is outside 0..1000"},
      {{"--w", "abc"}, "error: --w abc is not a number"},
      {{"--x", "inf"}, "error: --x inf is not a finite number"},
      {{"--x", "1e7"}, "error: --x 1e7 is outside [-1000000, 1000000]"},
  };
  for (const auto& [args, message] : cases) {
    const auto run = testing_nn::run_program("ch00-how-a-network-learns", args);
    EXPECT_EQ(run.exit_code, 1) << args[0] << " " << args[1];
    EXPECT_THAT(run.output, HasSubstr(message)) << run.output;
  }
}

}  // namespace
