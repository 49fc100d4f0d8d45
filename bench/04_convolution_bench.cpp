// Chapter 04: every Conv2D variant, forward and backward, at the model's
// shapes: x (N, 28, 28, 1) -> y (N, 26, 26, 32), 3x3 kernel, ReLU, for
// N = 1, 32 and 256; `threaded` and `direct3x3` on the second layer of
// Keras's "Simple MNIST convnet", (128, 13, 13, 32) -> (128, 11, 11, 64).
// Plus the machine's peak (a loop of independent FMAs) and the GEMM on
// square matrices.
//
//   build/bin/04_convolution_bench
//   build/bin/04_convolution_bench --benchmark_filter='32to64' --benchmark_repetitions=3
//   build/bin/04_convolution_bench --benchmark_filter='conv2d_forward/.*/32'
//   build/bin/04_convolution_bench --benchmark_filter='direct3x3|onednn' --benchmark_repetitions=5
//   scripts/plot-bench-04.sh        # the chart in docs/figures
//
// With oneDNN installed (Debian libdnnl-dev; CMake finds it, optional), the
// industrial rung "onednn": its convolution primitives on the same shapes and
// batches, next to direct3x3, the backward pass also split into weights
// (conv2d_backward_weights, dkernel + dbias) and data (conv2d_backward_data, dx).
//
// Each benchmark checks its result against the naive variant before timing
// (the peak, which computes nothing useful, against the same recurrence in
// scalar FMAs), and writes into buffers allocated before the timed loop.
// "Time" is wall-clock time (the threaded variants use every core), and
// GFLOP/s is counted from wall-clock time too:
//   forward:  2 * N * OH * OW * KH * KW * C_in * C_out   (12.5 MFLOP per 32 images)
//   backward: twice that: dkernel and dx, each the same number of multiply-adds;
//             the bias gradient (N * OH * OW * C_out adds) is not counted.
//   backward weights (dkernel + dbias), backward data (dx): once that each.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/gemm.hpp"
#include "nn/parallel.hpp"
#include "nn/simd.hpp"

#if NN_HAVE_DNNL
#include <dlfcn.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_version.h>  // DNNL_VERSION_MAJOR: 2 on Debian 12, 3 on Debian 13
#endif

namespace {

using Clock = std::chrono::steady_clock;

nn::Tensor random_tensor(const nn::Shape& shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  nn::Tensor t(shape);
  for (float& v : t.span()) v = u(rng);
  return t;
}

// The largest |a - b| relative to max(1, |b|).
double worst_error(const nn::Tensor& a, const nn::Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1.0, std::abs(double(b[i]))));
  return worst;
}

// Runs the timed loop and reports GFLOP/s from wall-clock time.
template <class F>
void timed(benchmark::State& state, double flops_per_iteration, F body) {
  const auto start = Clock::now();
  for (auto _ : state) body();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  state.counters["GFLOP/s"] = flops_per_iteration * static_cast<double>(state.iterations()) / seconds / 1e9;
}

// A Conv2D layer with a 3x3 kernel, random weights and inputs. The model's:
// Conv2D(32, (3, 3), activation="relu") on (N, 28, 28, 1). Keras's "Simple
// MNIST convnet" (keras-team/keras-io, examples/vision/mnist_convnet.py) adds
// a second, Conv2D(64, (3, 3), activation="relu") on (N, 13, 13, 32): the
// shape where the window is C_in = 32 deep.
struct Layer {
  std::size_t h, w, c_in, c_out;
  nn::Tensor kernel = random_tensor({3, 3, c_in, c_out}, 1);
  nn::Tensor bias = random_tensor({c_out}, 2);
  nn::Tensor x(std::size_t n) const { return random_tensor({n, h, w, c_in}, 3 + n); }
  nn::Tensor dy(std::size_t n) const { return random_tensor({n, h - 2, w - 2, c_out}, 4 + n); }
};
Layer first_layer() { return {28, 28, 1, 32}; }
Layer second_layer() { return {13, 13, 32, 64}; }

// [snippet bench-forward]
void conv2d_forward(benchmark::State& state, const Layer& m, nn::Conv2DVariant variant, std::size_t batch) {
  {  // the check: this variant against naive, on a few images
    const nn::Tensor x = m.x(std::min<std::size_t>(batch, 4));
    const double err = worst_error(nn::conv2d_forward(x, m.kernel, m.bias, variant, nn::Activation::relu),
                                   nn::conv2d_forward(x, m.kernel, m.bias, nn::Conv2DVariant::naive,
                                                      nn::Activation::relu));
    if (err > 1e-5) return state.SkipWithError(("differs from naive by " + std::to_string(err)).c_str());
  }
  const nn::Tensor x = m.x(batch);
  nn::Tensor y({batch, m.h - 2, m.w - 2, m.c_out});
  const double flops = nn::conv2d_dims(x.shape(), m.kernel.shape()).forward_flops();
  timed(state, flops, [&] {
    nn::conv2d_forward(x, m.kernel, m.bias, y, variant, nn::Activation::relu);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  });
}
// [end snippet bench-forward]

void conv2d_backward(benchmark::State& state, const Layer& m, nn::Conv2DVariant variant, std::size_t batch) {
  {
    const std::size_t n = std::min<std::size_t>(batch, 4);
    const nn::Tensor x = m.x(n), dy = m.dy(n);
    const auto got = nn::conv2d_backward(x, m.kernel, dy, variant);
    const auto want = nn::conv2d_backward(x, m.kernel, dy, nn::Conv2DVariant::naive);
    const double err = std::max({worst_error(got.dkernel, want.dkernel), worst_error(got.dbias, want.dbias),
                                 worst_error(got.dx, want.dx)});
    if (err > 1e-4) return state.SkipWithError(("differs from naive by " + std::to_string(err)).c_str());
  }
  const nn::Tensor x = m.x(batch), dy = m.dy(batch);
  nn::Conv2DGradients grads;  // allocated here, once, as the forward benchmark allocates y
  nn::conv2d_backward(x, m.kernel, dy, variant, grads.dkernel, grads.dbias, &grads.dx);
  const double flops = 2 * nn::conv2d_dims(x.shape(), m.kernel.shape()).forward_flops();  // dkernel + dx
  timed(state, flops, [&] {
    nn::conv2d_backward(x, m.kernel, dy, variant, grads.dkernel, grads.dbias, &grads.dx);
    benchmark::DoNotOptimize(grads.dkernel.data());
    benchmark::DoNotOptimize(grads.dx.data());
    benchmark::ClobberMemory();
  });
}

// The weights half of the backward pass alone (dkernel + dbias, no dx), as
// the model's first layer runs it: the yardstick for oneDNN's backward weights.
void conv2d_backward_weights(benchmark::State& state, const Layer& m, nn::Conv2DVariant variant,
                             std::size_t batch) {
  {
    const std::size_t n = std::min<std::size_t>(batch, 4);
    const nn::Tensor x = m.x(n), dy = m.dy(n);
    const auto got = nn::conv2d_backward(x, m.kernel, dy, variant, false);
    const auto want = nn::conv2d_backward(x, m.kernel, dy, nn::Conv2DVariant::naive, false);
    const double err = std::max(worst_error(got.dkernel, want.dkernel), worst_error(got.dbias, want.dbias));
    if (err > 1e-4) return state.SkipWithError(("differs from naive by " + std::to_string(err)).c_str());
  }
  const nn::Tensor x = m.x(batch), dy = m.dy(batch);
  nn::Tensor dkernel, dbias;
  nn::conv2d_backward(x, m.kernel, dy, variant, dkernel, dbias, nullptr);
  timed(state, nn::conv2d_dims(x.shape(), m.kernel.shape()).forward_flops(), [&] {
    nn::conv2d_backward(x, m.kernel, dy, variant, dkernel, dbias, nullptr);
    benchmark::DoNotOptimize(dkernel.data());
    benchmark::ClobberMemory();
  });
}

// The same benchmark on one thread (nn::set_thread_count(1)), restored after.
template <class Bench>
void one_thread(benchmark::State& state, Bench bench, const Layer& m, nn::Conv2DVariant variant,
                std::size_t batch) {
  nn::set_thread_count(1);
  bench(state, m, variant, batch);
  nn::set_thread_count(0);
  state.counters["threads"] = 1;
}

// ------------------------------------------------------------------ oneDNN

#if NN_HAVE_DNNL
// oneDNN (the library under PyTorch's and TensorFlow's CPU convolutions), its
// C++ API. The primitives are made once, outside the timed loop, as a
// framework caches them; x, y, dy and dx stay in the course's layout (tag
// nhwc). The weights are left to oneDNN (tag any): with the course's
// (KH, KW, C_in, C_out), tag hwio, it falls back to im2col + its GEMM
// ("gemm:jit"). It picks a blocked layout instead, so the timed loop
// includes the reorders between that layout and the course's kernel a
// training step needs: kernel -> blocked before the forward pass and before
// backward data, blocked dkernel -> (KH, KW, C_in, C_out) after backward
// weights (the kernel changes every step, so a framework reorders it every
// step too). The forward pass fuses the ReLU (a post-op), as direct3x3 does.
enum class DnnlPass { forward, backward, backward_weights, backward_data };

// Debian's oneDNN runs on OpenMP threads: the thread count is OpenMP's,
// omp_set_num_threads of the OpenMP runtime that libdnnl loaded (found at run
// time, so that this program links no OpenMP of its own: clang's libomp
// beside GCC's libgomp would be two runtimes).
bool set_dnnl_threads(std::size_t threads) {
  if (dnnl_version()->cpu_runtime != DNNL_RUNTIME_OMP) return false;
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (!set) return false;
  set(static_cast<int>(threads));
  return true;
}

// oneDNN 3.0 changed its C++ API in two places this rung meets: a primitive
// descriptor is made directly from the engine and the operation's parameters
// (2.x made an operation descriptor, `desc`, first), and a post-op's eltwise
// lost its first argument, a scale. One helper per construction hides which.
using ConvForwardPd = dnnl::convolution_forward::primitive_desc;
using ConvBackwardWeightsPd = dnnl::convolution_backward_weights::primitive_desc;
using ConvBackwardDataPd = dnnl::convolution_backward_data::primitive_desc;
const dnnl::memory::dims kStride{1, 1}, kPadding{0, 0};  // "valid"
constexpr auto kDirect = dnnl::algorithm::convolution_direct;

ConvForwardPd forward_pd(const dnnl::engine& engine, const dnnl::memory::desc& x, const dnnl::memory::desc& weights,
                         const dnnl::memory::desc& bias, const dnnl::memory::desc& y,
                         const dnnl::primitive_attr& attr = dnnl::primitive_attr()) {
  const auto prop = dnnl::prop_kind::forward_training;
#if DNNL_VERSION_MAJOR >= 3
  return ConvForwardPd(engine, prop, kDirect, x, weights, bias, y, kStride, kPadding, kPadding, attr);
#else
  return ConvForwardPd({prop, kDirect, x, weights, bias, y, kStride, kPadding, kPadding}, attr, engine);
#endif
}

// dkernel and dbias; `hint` is the forward pass's descriptor, as oneDNN asks.
ConvBackwardWeightsPd backward_weights_pd(const dnnl::engine& engine, const dnnl::memory::desc& x,
                                          const dnnl::memory::desc& dweights, const dnnl::memory::desc& dbias,
                                          const dnnl::memory::desc& dy, const ConvForwardPd& hint) {
#if DNNL_VERSION_MAJOR >= 3
  return ConvBackwardWeightsPd(engine, kDirect, x, dweights, dbias, dy, kStride, kPadding, kPadding, hint);
#else
  return ConvBackwardWeightsPd({kDirect, x, dweights, dbias, dy, kStride, kPadding, kPadding}, engine, hint);
#endif
}

// dx
ConvBackwardDataPd backward_data_pd(const dnnl::engine& engine, const dnnl::memory::desc& dx,
                                    const dnnl::memory::desc& weights, const dnnl::memory::desc& dy,
                                    const ConvForwardPd& hint) {
#if DNNL_VERSION_MAJOR >= 3
  return ConvBackwardDataPd(engine, kDirect, dx, weights, dy, kStride, kPadding, kPadding, hint);
#else
  return ConvBackwardDataPd({kDirect, dx, weights, dy, kStride, kPadding, kPadding}, engine, hint);
#endif
}

// The ReLU fused into the forward pass: max(v, 0), alpha = 0 (no leak).
dnnl::primitive_attr relu_attr() {
  dnnl::post_ops relu;
#if DNNL_VERSION_MAJOR >= 3
  relu.append_eltwise(dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
#else
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);  // 1.0f: the scale 3.x dropped
#endif
  dnnl::primitive_attr attr;
  attr.set_post_ops(relu);
  return attr;
}

struct DnnlConv {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  nn::Conv2DDims d;
  dnnl::memory::desc x_md, y_md, bias_md, kernel_md;  // the course's layouts
  ConvForwardPd fwd_pd;
  ConvBackwardWeightsPd bww_pd;
  ConvBackwardDataPd bwd_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_weights bww;
  dnnl::convolution_backward_data bwd;
  dnnl::memory fwd_weights, bww_weights, bwd_weights;  // oneDNN's weights layouts
  dnnl::reorder kernel_to_fwd, dkernel_to_course, kernel_to_bwd;

  explicit DnnlConv(const nn::Conv2DDims& dims) : d(dims) {
    auto i = [](std::size_t v) { return static_cast<dnnl::memory::dim>(v); };
    // oneDNN's dims are (N, C, H, W) and (O, I, KH, KW) whatever the layout.
    x_md = {{i(d.n), i(d.c_in), i(d.h), i(d.w)}, dt::f32, tag::nhwc};
    y_md = {{i(d.n), i(d.c_out), i(d.oh()), i(d.ow())}, dt::f32, tag::nhwc};
    bias_md = {{i(d.c_out)}, dt::f32, tag::x};
    kernel_md = {{i(d.c_out), i(d.c_in), 3, 3}, dt::f32, tag::hwio};  // (KH, KW, C_in, C_out)
    const dnnl::memory::desc any_weights({i(d.c_out), i(d.c_in), 3, 3}, dt::f32, tag::any);
    fwd_pd = forward_pd(engine, x_md, any_weights, bias_md, y_md, relu_attr());
    const ConvForwardPd hint = forward_pd(engine, x_md, any_weights, bias_md, y_md);  // backward needs the forward's
    bww_pd = backward_weights_pd(engine, x_md, any_weights, bias_md, y_md, hint);
    bwd_pd = backward_data_pd(engine, x_md, any_weights, y_md, hint);
    fwd = dnnl::convolution_forward(fwd_pd);
    bww = dnnl::convolution_backward_weights(bww_pd);
    bwd = dnnl::convolution_backward_data(bwd_pd);
    fwd_weights = dnnl::memory(fwd_pd.weights_desc(), engine);
    bww_weights = dnnl::memory(bww_pd.diff_weights_desc(), engine);
    bwd_weights = dnnl::memory(bwd_pd.weights_desc(), engine);
    kernel_to_fwd = dnnl::reorder(dnnl::reorder::primitive_desc(engine, kernel_md, engine, fwd_pd.weights_desc()));
    dkernel_to_course =
        dnnl::reorder(dnnl::reorder::primitive_desc(engine, bww_pd.diff_weights_desc(), engine, kernel_md));
    kernel_to_bwd = dnnl::reorder(dnnl::reorder::primitive_desc(engine, kernel_md, engine, bwd_pd.weights_desc()));
  }

  dnnl::memory wrap(const dnnl::memory::desc& md, const float* data) const {
    return {md, engine, const_cast<float*>(data)};  // oneDNN takes void*; inputs are only read
  }

  // y = relu(conv(x, kernel) + bias)
  void forward(const float* x, const float* kernel, const float* bias, float* y) {
    dnnl::memory course_kernel = wrap(kernel_md, kernel);
    kernel_to_fwd.execute(stream, course_kernel, fwd_weights);
    fwd.execute(stream, {{DNNL_ARG_SRC, wrap(x_md, x)},
                         {DNNL_ARG_WEIGHTS, fwd_weights},
                         {DNNL_ARG_BIAS, wrap(bias_md, bias)},
                         {DNNL_ARG_DST, wrap(y_md, y)}});
    stream.wait();
  }
  // dkernel, dbias from x and dy
  void backward_weights(const float* x, const float* dy, float* dkernel, float* dbias) {
    bww.execute(stream, {{DNNL_ARG_SRC, wrap(x_md, x)},
                         {DNNL_ARG_DIFF_DST, wrap(y_md, dy)},
                         {DNNL_ARG_DIFF_WEIGHTS, bww_weights},
                         {DNNL_ARG_DIFF_BIAS, wrap(bias_md, dbias)}});
    dnnl::memory course_dkernel = wrap(kernel_md, dkernel);
    dkernel_to_course.execute(stream, bww_weights, course_dkernel);
    stream.wait();
  }
  // dx from kernel and dy
  void backward_data(const float* kernel, const float* dy, float* dx) {
    dnnl::memory course_kernel = wrap(kernel_md, kernel);
    kernel_to_bwd.execute(stream, course_kernel, bwd_weights);
    bwd.execute(stream, {{DNNL_ARG_DIFF_DST, wrap(y_md, dy)},
                         {DNNL_ARG_WEIGHTS, bwd_weights},
                         {DNNL_ARG_DIFF_SRC, wrap(x_md, dx)}});
    stream.wait();
  }
};

// The first `images` images of a batch tensor, as a tensor of their own.
nn::Tensor first_images(const nn::Tensor& t, std::size_t images) {
  nn::Shape shape = t.shape();
  const std::size_t per_image = t.size() / shape[0];
  shape = {images, shape[1], shape[2], shape[3]};
  nn::Tensor out(shape);
  std::copy(t.data(), t.data() + images * per_image, out.data());
  return out;
}

void conv2d_onednn(benchmark::State& state, const Layer& m, DnnlPass pass, std::size_t batch,
                   std::size_t threads) {
  if (!set_dnnl_threads(threads)) return state.SkipWithError("cannot set oneDNN's OpenMP threads");
  const nn::Tensor x = m.x(batch), dy = m.dy(batch);
  const nn::Conv2DDims d = nn::conv2d_dims(x.shape(), m.kernel.shape());
  DnnlConv conv(d);
  nn::Tensor y(d.y_shape()), dkernel(d.kernel_shape()), dbias({d.c_out}), dx(d.x_shape());
  const bool weights = pass == DnnlPass::backward || pass == DnnlPass::backward_weights;
  const bool data = pass == DnnlPass::backward || pass == DnnlPass::backward_data;
  auto run = [&](const nn::Tensor& dy_in) {
    if (pass == DnnlPass::forward) conv.forward(x.data(), m.kernel.data(), m.bias.data(), y.data());
    if (weights) conv.backward_weights(x.data(), dy_in.data(), dkernel.data(), dbias.data());
    if (data) conv.backward_data(m.kernel.data(), dy_in.data(), dx.data());
  };
  {  // the check: the very primitives timed below, against naive on the first few images
    const std::size_t n = std::min<std::size_t>(batch, 4);
    // dy zero past image n, so that dkernel and dbias, sums over the whole batch, are sums over n images
    nn::Tensor dy_check(dy.shape());
    std::copy(dy.data(), dy.data() + n * (dy.size() / batch), dy_check.data());
    run(dy_check);
    const nn::Tensor x_n = first_images(x, n), dy_n = first_images(dy, n);
    double err = 0;
    if (pass == DnnlPass::forward)
      err = worst_error(first_images(y, n), nn::conv2d_forward(x_n, m.kernel, m.bias, nn::Conv2DVariant::naive,
                                                               nn::Activation::relu));
    const auto want = nn::conv2d_backward(x_n, m.kernel, dy_n, nn::Conv2DVariant::naive);
    if (weights) err = std::max({err, worst_error(dkernel, want.dkernel), worst_error(dbias, want.dbias)});
    if (data) err = std::max(err, worst_error(first_images(dx, n), want.dx));
    if (err > (pass == DnnlPass::forward ? 1e-5 : 1e-4))
      return state.SkipWithError(("differs from naive by " + std::to_string(err)).c_str());
  }
  const double forward_flops = d.forward_flops();
  timed(state, pass == DnnlPass::backward ? 2 * forward_flops : forward_flops, [&] {
    run(dy);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dkernel.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  });
  // Which implementation oneDNN chose ("brgconv:avx512_core", "jit:avx512_core", "x64:gemm:jit", ...).
  std::string impl;
  if (pass == DnnlPass::forward) impl = conv.fwd_pd.impl_info_str();
  if (weights) impl += std::string(impl.empty() ? "" : " + ") + conv.bww_pd.impl_info_str();
  if (data) impl += std::string(impl.empty() ? "" : " + ") + conv.bwd_pd.impl_info_str();
  state.SetLabel(impl);
  state.counters["threads"] = static_cast<double>(threads);
  set_dnnl_threads(nn::thread_count());
}
#endif

// ------------------------------------------------------------------ peak

// [snippet peak-fma]
// The most a core can do: kChains independent chains of vector FMAs, enough
// to cover the FMA latency (4 to 5 cycles) times the FMA units (2), so that
// the core starts an FMA in every unit on every cycle. Each FMA on a vector
// of kVecWidth floats counts 2 * kVecWidth flops. The step is
// acc = acc * a + acc, one instruction on x86 and on ARM alike (ARM's FMA
// adds into its destination, so `acc * a + b` would need a copy per step).
// The chains and the operand must all stay in registers: AVX-512 and aarch64
// have 32 vector registers, AVX2 and SSE 16. One more chain than fits, and
// the compiler spills accumulators to the stack: that measures the stack.
// Without an FMA instruction (SSE: x86-64-v2) each step is a multiply and an
// add, two instructions for the same 2 * kVecWidth flops, and the peak is
// what the course's kernels can do on that machine.
#if NN_HAVE_SIMD
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr std::size_t kVecRegisters = 32;
#else
constexpr std::size_t kVecRegisters = 16;
#endif
#if defined(__FMA__) || defined(__aarch64__)
constexpr bool kHasFma = true;
#else
constexpr bool kHasFma = false;
#endif
constexpr std::size_t kChains = kVecRegisters == 32 ? 16 : 12;
static_assert(kChains + 1 <= kVecRegisters, "the accumulators would spill to the stack");
static_assert(kChains >= 5 * 2, "too few chains to keep both FMA units busy");
constexpr std::size_t kFmaIterations = 1 << 20;

float fma_loop(std::size_t iterations) {
  using nn::simd::Vec;
  Vec acc[kChains];
  for (std::size_t c = 0; c < kChains; ++c) acc[c] = nn::simd::broadcast(1.0f + 0.001f * c);
  Vec a = nn::simd::broadcast(1e-7f);
  benchmark::DoNotOptimize(a);  // no code: hides the value from the optimiser
  for (std::size_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (std::size_t c = 0; c < kChains; ++c) acc[c] = acc[c] * a + acc[c];  // one FMA (SSE: mulps + addps)
  alignas(64) float lanes[nn::simd::kVecWidth];
  float sum = 0;
  for (std::size_t c = 0; c < kChains; ++c) {
    nn::simd::store(lanes, acc[c]);
    for (float v : lanes) sum += v;
  }
  return sum;
}

// The same recurrence one lane at a time, rounded as the vector loop rounds:
// once with std::fma, twice without an FMA instruction. Checks that the
// vector loop runs the steps it is credited with.
float fma_loop_scalar(std::size_t iterations) {
  float sum = 0;
  for (std::size_t c = 0; c < kChains; ++c) {
    float acc = 1.0f + 0.001f * c;
    for (std::size_t i = 0; i < iterations; ++i) {
      if constexpr (kHasFma) {
        acc = std::fma(acc, 1e-7f, acc);
      } else {
        volatile float product = acc * 1e-7f;  // volatile: rounded to float, never fused
        acc = product + acc;
      }
    }
    for (std::size_t lane = 0; lane < nn::simd::kVecWidth; ++lane) sum += acc;
  }
  return sum;
}

void peak_fma(benchmark::State& state, bool all_threads) {
  if (fma_loop(1000) != fma_loop_scalar(1000)) {
    state.SkipWithError("the FMA loop differs from scalar FMAs");
    return;
  }
  const std::size_t threads = all_threads ? nn::thread_count() : 1;
  const double flops = 2.0 * nn::simd::kVecWidth * kChains * kFmaIterations * threads;
  timed(state, flops, [&] {
    nn::parallel_for(0, threads, [](std::size_t lo, std::size_t hi) {
      for (std::size_t t = lo; t < hi; ++t) benchmark::DoNotOptimize(fma_loop(kFmaIterations));
    });
  });
  state.counters["threads"] = static_cast<double>(threads);
}
#endif
// [end snippet peak-fma]

// ------------------------------------------------------------------ GEMM

void gemm_square(benchmark::State& state, const std::string& how, std::size_t n) {
  const nn::Tensor a = random_tensor({n, n}, 5), b = random_tensor({n, n}, 6);
  nn::Tensor c({n, n}), check({n, n});
  nn::GemmArgs g{.m = n, .n = n, .k = n, .a = a.data(), .b = b.data(), .c = c.data(),
                 .threaded = how == "threaded"};
  auto run = [&] { how == "naive" ? nn::gemm_naive(g) : nn::gemm(g); };
  run();
  nn::gemm_naive({.m = n, .n = n, .k = n, .a = a.data(), .b = b.data(), .c = check.data()});
  if (worst_error(c, check) > 1e-3) return state.SkipWithError("differs from gemm_naive");
  timed(state, 2.0 * n * n * n, [&] {
    run();
    benchmark::DoNotOptimize(c.data());
  });
}

// Names exactly conv2d_forward/<variant>/<batch> and conv2d_backward/<variant>/<batch>
// (the model's layer, which scripts/plot-bench-04.sh plots; the variants, then
// onednn), then conv2d_forward_32to64/<variant>/128 and
// conv2d_backward_32to64/<variant>/128 (the second layer, at Keras's batch
// size of 128) for the variants that compete on it. direct3x3 against onednn
// also as conv2d_backward_weights[_32to64]/..., conv2d_backward_data[_32to64]/onednn/...
// (direct3x3 computes dx inside its backward pass, not on its own: its
// backward data is the backward time less the backward weights time), and on
// one thread as conv2d_1thread_{forward,backward}[_32to64]/....
const bool registered = [] {
  static const Layer first = first_layer(), second = second_layer();
  auto reg = [](const std::string& name, auto... args) {
    benchmark::RegisterBenchmark(name.c_str(), args...)->Unit(benchmark::kMicrosecond);
  };
  const auto direct = nn::Conv2DVariant::direct3x3;
  for (std::size_t batch : {1, 32, 256}) {
    for (nn::Conv2DVariant v : nn::conv2d_variants())
      for (bool forward : {true, false}) {
        const std::string name = std::string(forward ? "conv2d_forward/" : "conv2d_backward/") +
                                 std::string(nn::conv2d_variant_name(v)) + "/" + std::to_string(batch);
        auto* b = forward ? benchmark::RegisterBenchmark(name.c_str(), conv2d_forward, first, v, batch)
                          : benchmark::RegisterBenchmark(name.c_str(), conv2d_backward, first, v, batch);
        b->Unit(benchmark::kMicrosecond);
        if (v == nn::Conv2DVariant::naive && batch == 256) b->Iterations(3);  // ~0.1-0.3 s each: three are enough
      }
#if NN_HAVE_DNNL
    const std::string b = std::to_string(batch);
    reg("conv2d_forward/onednn/" + b, conv2d_onednn, first, DnnlPass::forward, batch, nn::thread_count());
    reg("conv2d_backward/onednn/" + b, conv2d_onednn, first, DnnlPass::backward, batch, nn::thread_count());
#endif
  }
  for (nn::Conv2DVariant v : {nn::Conv2DVariant::threaded, nn::Conv2DVariant::direct3x3}) {
    const std::string variant(nn::conv2d_variant_name(v));
    reg("conv2d_forward_32to64/" + variant + "/128", conv2d_forward, second, v, 128);
    reg("conv2d_backward_32to64/" + variant + "/128", conv2d_backward, second, v, 128);
  }
  for (const char* shape : {"", "_32to64"}) {
    const Layer& layer = *shape ? second : first;
    for (std::size_t batch : *shape ? std::vector<std::size_t>{128} : std::vector<std::size_t>{1, 32, 256}) {
      const std::string b = std::to_string(batch), s = shape;
      reg("conv2d_backward_weights" + s + "/direct3x3/" + b, conv2d_backward_weights, layer, direct, batch);
#if NN_HAVE_DNNL
      if (*shape) {
        reg("conv2d_forward_32to64/onednn/" + b, conv2d_onednn, layer, DnnlPass::forward, batch, nn::thread_count());
        reg("conv2d_backward_32to64/onednn/" + b, conv2d_onednn, layer, DnnlPass::backward, batch,
            nn::thread_count());
      }
      reg("conv2d_backward_weights" + s + "/onednn/" + b, conv2d_onednn, layer, DnnlPass::backward_weights, batch,
          nn::thread_count());
      reg("conv2d_backward_data" + s + "/onednn/" + b, conv2d_onednn, layer, DnnlPass::backward_data, batch,
          nn::thread_count());
#endif
    }
    const std::size_t batch = *shape ? 128 : 32;
    const std::string b = std::to_string(batch), s = shape;
    reg("conv2d_1thread_forward" + s + "/direct3x3/" + b, one_thread<decltype(&conv2d_forward)>, conv2d_forward,
        layer, direct, batch);
    reg("conv2d_1thread_backward" + s + "/direct3x3/" + b, one_thread<decltype(&conv2d_backward)>,
        conv2d_backward, layer, direct, batch);
#if NN_HAVE_DNNL
    reg("conv2d_1thread_forward" + s + "/onednn/" + b, conv2d_onednn, layer, DnnlPass::forward, batch, 1);
    reg("conv2d_1thread_backward" + s + "/onednn/" + b, conv2d_onednn, layer, DnnlPass::backward, batch, 1);
#endif
  }
#if NN_HAVE_DNNL
  const dnnl_version_t* version = dnnl_version();
  benchmark::AddCustomContext(
      "onednn", std::to_string(version->major) + "." + std::to_string(version->minor) + "." +
                    std::to_string(version->patch) +
                    (version->cpu_runtime == DNNL_RUNTIME_OMP ? ", OpenMP threads" : ", not OpenMP"));
#else
  benchmark::AddCustomContext("onednn", "absent: built without oneDNN (install libdnnl-dev, configure again)");
#endif
#if NN_HAVE_SIMD
  benchmark::RegisterBenchmark("peak_fma/1_thread", peak_fma, false)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("peak_fma/all_threads", peak_fma, true)->Unit(benchmark::kMillisecond);
#endif
  benchmark::RegisterBenchmark("gemm/naive/256", gemm_square, "naive", 256)->Unit(benchmark::kMillisecond);
  for (std::size_t n : {256, 1024}) {
    benchmark::RegisterBenchmark(("gemm/blocked/" + std::to_string(n)).c_str(), gemm_square, "blocked", n)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("gemm/threaded/" + std::to_string(n)).c_str(), gemm_square, "threaded", n)
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
