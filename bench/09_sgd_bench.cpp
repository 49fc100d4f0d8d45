// Chapter 09: one optimizer update of all 542,230 parameters of the model,
// for each rule, and one whole training step (forward, backward, update) at
// batch 32.
//
//   build/bin/09_sgd_bench
//
// bytes_per_second for the updates counts the floats each rule reads and
// writes per parameter (SGD: w and g read, w written; momentum adds v; Adam
// and RMSprop add their running averages).
//
// The warm/ benchmarks start from a realistic state instead: the seed model
// after 300 steps on real MNIST (from $MNIST_DIR, else data/mnist), when
// Adam's and RMSprop's running means hold tiny values. Each reports how many
// of those values are denormal (counters denormal_m, denormal_s: a count out
// of the 542,230 of each), and runs once more with flush-to-zero and
// denormals-are-zero set on every thread of the pool (/ftz_daz; x86 only):
//
//   build/bin/09_sgd_bench --benchmark_filter=warm/
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <utility>

#if defined(__SSE__)
#include <immintrin.h>
#endif

#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"

namespace {

// The parameters to update, in one of two layouts, both 542,230 floats:
//   per_tensor  the model's six parameters, as the library keeps them (one
//               Tensor each, one loop per tensor)
//   one_buffer  one parameter holding all of them, as llm.c keeps its
//               weights (one contiguous buffer, one loop)
// The difference is the cost of keeping parameters apart.
enum class Layout { per_tensor, one_buffer };

void update(benchmark::State& state, const std::string& name, float momentum, int floats_per_param, Layout layout) {
  nn::Sequential model = nn::make_mnist_model(1);
  std::vector<nn::Parameter*> params = model.parameters();
  nn::Parameter all("all", nn::Tensor({model.param_count()}));
  if (layout == Layout::one_buffer) {
    std::size_t at = 0;
    for (const nn::Parameter* p : params)
      at = static_cast<std::size_t>(std::copy(p->value.data(), p->value.data() + p->size(), all.value.data() + at) -
                                    all.value.data());
    params = {&all};
  }
  for (nn::Parameter* p : params) p->grad.fill(1e-3f);
  auto opt = nn::make_optimizer(name, name == "sgd" ? 0.01f : 0.0f, momentum);
  // Checked before timing: the first step moves a weight against its gradient
  // (by lr * g for SGD, by about lr for Adam and RMSprop).
  const float before = params[0]->value[0];
  opt->step(params);
  const float moved = before - params[0]->value[0];
  if (!(moved > 0.0f)) {
    state.SkipWithError("the update did not move the weight against its gradient");
    return;
  }
  for (auto _ : state) {
    opt->step(params);
    benchmark::DoNotOptimize(params[0]->value.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * model.param_count() * floats_per_param * 4));
}

void train_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  nn::Sequential model = nn::make_mnist_model(1);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  nn::Tensor x({batch, 28, 28, 1});
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : x.span()) v = u(rng) < 0.8f ? 0.0f : u(rng);  // MNIST-like: mostly background
  std::vector<int> labels(batch);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<int>(i % 10);
  nn::Tensor y = nn::one_hot(labels);
  if (!std::isfinite(model.train_on_batch(x, y))) {  // checked before timing
    state.SkipWithError("the loss is not finite");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(model.train_on_batch(x, y));
  state.SetItemsProcessed(state.iterations() * state.range(0));  // images per second
}

// ---- From a realistic state ---------------------------------------------------

constexpr std::size_t kBatch = 32, kWarmup = 300, kBatches = 400;  // timed steps cycle through batches 300..399

// The first kBatches batches of 32 MNIST training images, as fit prepares them.
const std::vector<std::pair<nn::Tensor, nn::Tensor>>& batches() {
  static const auto all = [] {
    const char* env = std::getenv("MNIST_DIR");
    const nn::Mnist m = nn::load_mnist(env && *env ? std::filesystem::path(env) : std::filesystem::path(NN_DEFAULT_DATA_DIR));
    const nn::Tensor x = nn::images_to_tensor(m.x_train);  // (60000, 28, 28, 1)
    const nn::Tensor y = nn::one_hot(m.y_train.data);        // (60000, 10)
    std::vector<std::pair<nn::Tensor, nn::Tensor>> b;
    for (std::size_t i = 0; i < kBatches; ++i)
      b.emplace_back(nn::slice_batch(x, i * kBatch, kBatch), nn::slice_batch(y, i * kBatch, kBatch));
    return b;
  }();
  return all;
}

// Sets (or clears) flush-to-zero and denormals-are-zero in the MXCSR of the
// calling thread and of every worker of nn's pool: parallel_for runs chunk c
// on worker c, and each thread has its own MXCSR. False where there is none.
bool set_flush_denormals(bool on) {
#if defined(__SSE__)
  nn::parallel_for(0, nn::thread_count(), [&](std::size_t, std::size_t) {
    const unsigned ftz_daz = 0x8040;  // bit 15 flush-to-zero, bit 6 denormals-are-zero
    _mm_setcsr(on ? _mm_getcsr() | ftz_daz : _mm_getcsr() & ~ftz_daz);
  });
  return true;
#else
  return !on;
#endif
}

// The seed model, compiled with `name` at its Keras learning rate, after
// kWarmup real training steps (taken without flushing).
struct Warm {
  nn::Sequential model = nn::make_mnist_model(1);
  nn::Optimizer* opt = nullptr;
  std::size_t next = 0;  // the next batch to train on
  double loss = 0;       // the last step's
  explicit Warm(const std::string& name) {
    auto o = nn::make_optimizer(name, 0.0f);
    opt = o.get();
    model.compile(std::move(o));
    while (next < kWarmup) step();
  }
  void step() {
    const auto& [x, y] = batches()[next];
    loss = model.train_on_batch(x, y);
    next = next + 1 < kBatches ? next + 1 : kWarmup;
  }
};

// One warm model per benchmark (key: its name), made on first use, so that
// flushing in one does not change the state another starts from.
Warm& warm(const std::string& key, const std::string& name) {
  static std::map<std::string, std::unique_ptr<Warm>> made;
  auto& w = made[key];
  if (!w) w = std::make_unique<Warm>(name);
  return *w;
}

// How many values of the optimizer's state tensor `which` (Adam: 0 m, 1 s;
// RMSprop: 0 s) are denormal, over all the model's parameters.
double denormals(Warm& w, std::size_t which) {
  std::size_t n = 0;
  for (const nn::Parameter* p : w.model.parameters()) {
    const auto st = w.opt->state(*p);
    if (which < st.size())
      for (float v : st[which].span()) n += std::fpclassify(v) == FP_SUBNORMAL;
  }
  return static_cast<double>(n);
}

void report_denormals(benchmark::State& state, Warm& w, const std::string& name) {
  if (name == "adam") {
    state.counters["denormal_m"] = denormals(w, 0);
    state.counters["denormal_s"] = denormals(w, 1);
  } else if (name == "rmsprop") {
    state.counters["denormal_s"] = denormals(w, 0);
  }
}

// A whole training step (forward, backward, update) at batch 32 on the next real batch.
void warm_step(benchmark::State& state, const std::string& name, bool flush) {
  Warm& w = warm("step/" + name + (flush ? "/ftz_daz" : ""), name);
  if (!std::isfinite(w.loss)) {  // checked before timing
    state.SkipWithError("the warm-up's loss is not finite");
    return;
  }
  if (!set_flush_denormals(flush)) {
    state.SkipWithError("no flush-to-zero control on this CPU");
    return;
  }
  for (auto _ : state) w.step();
  set_flush_denormals(false);
  report_denormals(state, w, name);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBatch));  // images per second
}

// The optimizer's update alone, with the gradients of the next real batch.
void warm_update(benchmark::State& state, const std::string& name, bool flush) {
  Warm& w = warm("update/" + name + (flush ? "/ftz_daz" : ""), name);
  const auto& [x, y] = batches()[w.next];
  if (!std::isfinite(w.model.compute_gradients(x, y))) {  // checked before timing
    state.SkipWithError("the loss is not finite");
    return;
  }
  if (!set_flush_denormals(flush)) {
    state.SkipWithError("no flush-to-zero control on this CPU");
    return;
  }
  const std::vector<nn::Parameter*> params = w.model.parameters();
  for (auto _ : state) {
    w.opt->step(params);
    benchmark::DoNotOptimize(params[0]->value.data());
  }
  set_flush_denormals(false);
  report_denormals(state, w, name);
}

BENCHMARK_CAPTURE(update, sgd, "sgd", 0.0f, 3, Layout::per_tensor)->Name("optimizer_update/sgd")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, sgd_one_buffer, "sgd", 0.0f, 3, Layout::one_buffer)->Name("optimizer_update/sgd/one_buffer")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, momentum, "sgd", 0.9f, 5, Layout::per_tensor)->Name("optimizer_update/sgd_momentum")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, rmsprop, "rmsprop", 0.0f, 5, Layout::per_tensor)->Name("optimizer_update/rmsprop")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, adam, "adam", 0.0f, 7, Layout::per_tensor)->Name("optimizer_update/adam")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, adam_one_buffer, "adam", 0.0f, 7, Layout::one_buffer)->Name("optimizer_update/adam/one_buffer")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(train_step)->Name("train_step")->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_step, sgd, "sgd", false)->Name("warm/train_step/sgd")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_step, adam, "adam", false)->Name("warm/train_step/adam")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_step, rmsprop, "rmsprop", false)->Name("warm/train_step/rmsprop")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_step, sgd_ftz, "sgd", true)->Name("warm/train_step/sgd/ftz_daz")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_step, adam_ftz, "adam", true)->Name("warm/train_step/adam/ftz_daz")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_step, rmsprop_ftz, "rmsprop", true)->Name("warm/train_step/rmsprop/ftz_daz")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_update, sgd, "sgd", false)->Name("warm/update/sgd")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_update, adam, "adam", false)->Name("warm/update/adam")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_update, rmsprop, "rmsprop", false)->Name("warm/update/rmsprop")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_update, adam_ftz, "adam", true)->Name("warm/update/adam/ftz_daz")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(warm_update, rmsprop_ftz, "rmsprop", true)->Name("warm/update/rmsprop/ftz_daz")->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
