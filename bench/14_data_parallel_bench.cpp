// Chapter 14: the parts of a data-parallel step, each timed on its own.
//   shard_gradients/R   the gradient of a shard of R rows of a global batch
//                       of 32 (forward, loss, backward, the flat block
//                       filled): what each of 32 / R processes computes
//   update              the flat block back into the parameters, and SGD's step
//   allreduce           MPI_Allreduce (sum, in place) of the 542,230-float
//                       (2.17 MB) gradient block: across the processes that
//                       mpirun started, or none when run alone
// Checked before timing: a shard of all 32 rows is compute_gradients' result
// bit for bit, and the all-reduce of rank + 1 from every rank gives
// N (N + 1) / 2 everywhere.
//
//   build/bin/14_data_parallel_bench                                   # one process
//   mpirun -np 2 build/bin/14_data_parallel_bench --benchmark_filter=allreduce
//
// Under mpirun every rank runs each benchmark for the same fixed number of
// iterations (all must call MPI_Allreduce equally often) and only rank 0
// prints.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <cstring>
#include <vector>

#include "nn/data_parallel.hpp"
#include "nn/optimizer.hpp"

namespace {

struct Setup {
  nn::Sequential model = nn::make_mnist_model(1);
  nn::Tensor x{nn::Shape{32, 28, 28, 1}}, y{nn::Shape{32, 10}};
  std::vector<float> flat;
  Setup() {
    model.compile(nn::make_optimizer("sgd", 0.01f));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 256) / 255.0f;
    for (std::size_t n = 0; n < 32; ++n) y(n, (n * 7) % 10) = 1.0f;
    flat.resize(nn::flat_gradient_size(model));
  }
};

void shard_gradients(benchmark::State& state) {
  Setup s;
  const auto rows = static_cast<std::size_t>(state.range(0));
  std::vector<float> whole(s.flat.size());
  s.model.compute_gradients(s.x, s.y);
  nn::gather_gradients(s.model, 1.0f, whole);
  nn::shard_gradients(s.model, s.x, s.y, {0, 32}, 32, s.flat);
  if (std::memcmp(whole.data(), s.flat.data(), whole.size() * sizeof(float)) != 0) {
    state.SkipWithError("a shard of all 32 rows differs from compute_gradients");
    return;
  }
  for (auto _ : state) {
    const double loss = nn::shard_gradients(s.model, s.x, s.y, {0, rows}, 32, s.flat);
    benchmark::DoNotOptimize(loss);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows));  // images
}
BENCHMARK(shard_gradients)->Arg(32)->Arg(16)->Arg(8)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

void update(benchmark::State& state) {
  Setup s;
  for (auto _ : state) {
    nn::scatter_gradients(s.model, s.flat);
    s.model.optimizer().step(s.model.parameters());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * s.flat.size() * sizeof(float)));
}
BENCHMARK(update)->Unit(benchmark::kMicrosecond)->UseRealTime();

void allreduce(benchmark::State& state) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<float> block(542230, static_cast<float>(rank + 1));
  MPI_Allreduce(MPI_IN_PLACE, block.data(), static_cast<int>(block.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  if (block.front() != static_cast<float>(size * (size + 1) / 2) || block.back() != block.front()) {
    state.SkipWithError("the all-reduce did not sum every rank's block");
    return;
  }
  for (auto _ : state)
    MPI_Allreduce(MPI_IN_PLACE, block.data(), static_cast<int>(block.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  state.counters["processes"] = size;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * block.size() * sizeof(float)));
}
BENCHMARK(allreduce)->Iterations(200)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Ranks other than 0 run every benchmark but report nothing.
class Silent : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  benchmark::Initialize(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Silent silent;
  if (rank == 0)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&silent);
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
