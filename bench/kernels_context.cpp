// Every benchmark program's context (the lines before the table) names the
// instruction set and the thread count: "kernels: AVX2+FMA, 2 threads", so a
// timing quoted from it says which build made it.
#include <benchmark/benchmark.h>

#include "nn/parallel.hpp"

namespace {
const bool registered = [] {
  benchmark::AddCustomContext("kernels", nn::kernels_line().substr(sizeof("kernels: ") - 1));
  return true;
}();
}  // namespace
