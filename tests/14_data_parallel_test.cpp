// Chapter 14: data-parallel training over Open MPI (nn/data_parallel.hpp).
// First what needs no MPI: the shards, the flat gradient block, the ring
// all-reduce's cost model, and the claim the chapter rests on: two shards'
// gradients, summed, are the whole batch's up to the order of the sum, within
// its rounding bound. Then the executable under mpirun: two processes train
// the weights of one, one process trains chapter 10's weights bit for bit, a
// hostfile of localhost slots works, and a rank that dies stops the job
// without leaving half-written weights.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/data_parallel.hpp"
#include "nn/dense.hpp"
#include "nn/error.hpp"
#include "nn/layers.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"
#include "nn/tape.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::error_of;
using testing_nn::TempDir;

struct Batch {
  nn::Tensor x, y;
};
Batch real_batch(std::size_t first, std::size_t n) {
  const auto& m = testing_nn::real_mnist();
  return {nn::slice_batch(nn::images_to_tensor(m.x_train), first, n),
          nn::one_hot(std::span(m.y_train.data).subspan(first, n))};
}

// ---- Without MPI -------------------------------------------------------------------

TEST(DataParallel, ShardsAreContiguousSlicesOfNearlyEqualSize) {
  EXPECT_EQ(nn::shard_of(32, 0, 2).first, 0u);
  EXPECT_EQ(nn::shard_of(32, 0, 2).count, 16u);
  EXPECT_EQ(nn::shard_of(32, 1, 2).first, 16u);
  EXPECT_EQ(nn::shard_of(32, 1, 2).count, 16u);
  // 32 rows on 3 ranks: 10, 11, 11, covering 0..31 once.
  EXPECT_EQ(nn::shard_of(32, 0, 3).count, 10u);
  EXPECT_EQ(nn::shard_of(32, 1, 3).first, 10u);
  EXPECT_EQ(nn::shard_of(32, 2, 3).first + nn::shard_of(32, 2, 3).count, 32u);
  EXPECT_EQ(nn::shard_of(32, 0, 1).count, 32u);
  EXPECT_THAT(error_of([] { nn::shard_of(32, 2, 2); }), HasSubstr("rank 2 of 2 ranks"));
}

TEST(DataParallel, TheFlatBlockHoldsEveryGradientInOrderAndGoesBack) {
  nn::Sequential model = nn::make_mnist_model(1);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  ASSERT_EQ(nn::flat_gradient_size(model), 542230u);
  float v = 0;
  for (nn::Parameter* p : model.parameters())
    for (float& g : p->grad.span()) g = v++;
  std::vector<float> flat(542230);
  nn::gather_gradients(model, 0.5f, flat);
  EXPECT_EQ(flat[0], 0.0f);
  EXPECT_EQ(flat[288], 144.0f);  // conv2d.bias[0], after the 288 kernel values
  EXPECT_EQ(flat[542229], 542229.0f / 2);
  for (nn::Parameter* p : model.parameters()) p->grad.fill(0.0f);
  nn::scatter_gradients(model, flat);
  EXPECT_EQ(model.parameters().back()->grad[9], 542229.0f / 2);
  std::vector<float> wrong(3);
  EXPECT_THAT(error_of([&] { nn::gather_gradients(model, 1.0f, wrong); }), HasSubstr("3 floats for 542230"));
}

TEST(DataParallel, TheRingAllReduceModelCountsItsMessagesAndBytes) {
  EXPECT_EQ(nn::ring_allreduce_seconds(1e6, 1, 1e9, 1e-6), 0.0);
  // 2 processes: 2 steps of half the bytes each: 2 (1 us + 0.5 ms).
  EXPECT_DOUBLE_EQ(nn::ring_allreduce_seconds(1e6, 2, 1e9, 1e-6), 2 * (1e-6 + 0.5e-3));
  // 4 processes: 6 steps of a quarter: 6 (1 us + 0.25 ms); the bytes tend to 2 x 1 MB.
  EXPECT_DOUBLE_EQ(nn::ring_allreduce_seconds(1e6, 4, 1e9, 1e-6), 6 * (1e-6 + 0.25e-3));
}

TEST(DataParallel, OneShardIsTheWholeBatchsGradientBitForBit) {
  const Batch b = real_batch(0, 32);
  nn::Sequential model = nn::make_mnist_model(2);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  const double loss = model.compute_gradients(b.x, b.y);
  std::vector<float> whole(nn::flat_gradient_size(model)), shard(whole.size());
  nn::gather_gradients(model, 1.0f, whole);
  EXPECT_EQ(nn::shard_gradients(model, b.x, b.y, {0, 32}, 32, shard), loss);
  EXPECT_EQ(std::memcmp(whole.data(), shard.data(), whole.size() * sizeof(float)), 0);
}

TEST(DataParallel, EachShardsDropoutMasksAreTheGlobalBatchsRows) {
  // A model with Dropout: rows 16-31 of a global batch, told where they start,
  // get the mask one process draws for those rows of the whole batch.
  const auto model_with_dropout = [] {
    nn::Sequential model({28, 28, 1});
    model.add(nn::Flatten());
    model.add(nn::Dropout({.rate = 0.5, .seed = 9}));
    return model;
  };
  const Batch b = real_batch(0, 32);
  nn::Sequential whole = model_with_dropout(), shard = model_with_dropout();
  auto& drop_whole = dynamic_cast<nn::Dropout&>(*whole.layers()[1]);
  auto& drop_shard = dynamic_cast<nn::Dropout&>(*shard.layers()[1]);
  drop_whole.training = drop_shard.training = true;
  nn::Tensor x_flat = nn::Tensor(b.x).reshape({32, 784});
  const nn::Tensor all(drop_whole.forward(x_flat).tensor());
  nn::set_first_row(shard, 16);
  EXPECT_EQ(drop_shard.first_row, 16u);
  const nn::Tensor rows(drop_shard.forward(x_flat.batch_view(16, 16)).tensor());
  EXPECT_EQ(std::memcmp(rows.data(), all.data() + 16 * 784, 16 * 784 * sizeof(float)), 0);
  nn::set_first_row(shard, 0);
  drop_shard.draws = 0;
  const nn::Tensor from_zero(drop_shard.forward(x_flat.batch_view(16, 16)).tensor());
  EXPECT_NE(std::memcmp(from_zero.data(), all.data() + 16 * 784, 16 * 784 * sizeof(float)), 0)
      << "rows 16-31 numbered from 0 should have drawn another mask";
}

// The sums of |terms| behind every gradient of the seed model on a batch: for
// a weight's gradient sum_n t_n, sum_n |t_n|, from the layers' own backward
// kernels applied to |input| and |dz| (dz recorded by the tape, chapter 13).
std::vector<nn::Tensor> absolute_terms(nn::Sequential& model, const Batch& b) {
  auto& conv = dynamic_cast<nn::Conv2D&>(*model.layers()[0]);
  auto& d1 = dynamic_cast<nn::Dense&>(*model.layers()[3]);
  auto& d2 = dynamic_cast<nn::Dense&>(*model.layers()[4]);
  nn::Tape tape;
  const nn::Var x = tape.input(b.x);
  const nn::Var z0 = nn::conv2d(x, tape.parameter(conv.kernel), tape.parameter(conv.bias));
  const nn::Var h0 = nn::flatten(nn::max_pool2d(nn::relu(z0), 2));
  const nn::Var z1 = nn::dense(h0, tape.parameter(d1.kernel), tape.parameter(d1.bias));
  const nn::Var h1 = nn::relu(z1);
  const nn::Var z2 = nn::dense(h1, tape.parameter(d2.kernel), tape.parameter(d2.bias));
  tape.backward(nn::softmax_crossentropy(z2, b.y));
  const auto abs = [](const nn::Tensor& t) {
    nn::Tensor a = t;
    for (float& v : a.span()) v = std::abs(v);
    return a;
  };
  const nn::Conv2DGradients c = nn::conv2d_backward(abs(b.x), conv.kernel.value, abs(z0.grad()),
                                                    nn::Conv2DVariant::naive, /*input_gradient=*/false);
  const nn::DenseGradients g1 = nn::dense_backward(abs(h0.value()), d1.kernel.value, abs(z1.grad()),
                                                   nn::DenseVariant::naive, /*input_gradient=*/false);
  const nn::DenseGradients g2 = nn::dense_backward(abs(h1.value()), d2.kernel.value, abs(z2.grad()),
                                                   nn::DenseVariant::naive, /*input_gradient=*/false);
  return {c.dkernel, c.dbias, g1.dkernel, g1.dbias, g2.dkernel, g2.dbias};
}

// [snippet two-shards-bound]
TEST(DataParallel, TwoShardsGradientsSumToTheBatchsWithinTheReorderingBound) {
  // Rows 0-15 and 16-31, each scaled by 16 / 32 (exact: a power of two), then
  // added as MPI_SUM adds two ranks' buffers. Each weight's gradient is the
  // same sum of the same terms as the one-process gradient's, in another
  // order; two orders of a float sum of n terms differ by at most
  // 2 (n - 1) u sum|terms|, u = 2^-24. n: 32 rows for a Dense weight,
  // 32 x 26 x 26 positions for the convolution's.
  const Batch b = real_batch(96, 32);
  nn::Sequential model = nn::make_mnist_model(5);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  const std::size_t size = nn::flat_gradient_size(model);
  std::vector<float> whole(size), first(size), second(size);
  model.compute_gradients(b.x, b.y);
  nn::gather_gradients(model, 1.0f, whole);
  nn::shard_gradients(model, b.x, b.y, nn::shard_of(32, 0, 2), 32, first);
  nn::shard_gradients(model, b.x, b.y, nn::shard_of(32, 1, 2), 32, second);
  const std::vector<nn::Tensor> terms = absolute_terms(model, b);
  const double u = std::ldexp(1.0, -24);
  std::size_t at = 0, differing = 0;
  for (std::size_t t = 0; t < terms.size(); ++t) {
    const double n = t < 2 ? 32.0 * 26 * 26 : 32.0;
    for (std::size_t i = 0; i < terms[t].size(); ++i, ++at) {
      const double diff = std::abs(static_cast<double>(first[at] + second[at]) - whole[at]);
      EXPECT_LE(diff, 2 * (n - 1) * u * terms[t][i]) << "tensor " << t << ", entry " << i;
      differing += diff > 0;
    }
  }
  EXPECT_EQ(at, size);
  EXPECT_GT(differing, 0u);  // the orders do differ: the bound is what is being tested
}
// [end snippet two-shards-bound]

// ---- Under mpirun -------------------------------------------------------------------

// mpirun with the options a test machine needs: as root (CI runs as root), and
// ranks on a machine of 2 cores while other tests run.
testing_nn::ProgramRun mpirun(int processes, std::vector<std::string> args, const std::string& hostfile = "") {
  // `timeout`: a job that hangs (a rank waiting forever for a dead one) fails
  // the test with 124. Under a cross build's emulator (qemu) a step takes a
  // few hundred times as long, and the limit grows with it.
#ifdef NN_EMULATOR
  const std::string limit_seconds = "3600";
#else
  const std::string limit_seconds = "120";
#endif
  std::vector<std::string> all{limit_seconds, "mpirun", "--allow-run-as-root", "--oversubscribe", "-np",
                               std::to_string(processes)};
  if (!hostfile.empty()) all.insert(all.end(), {"--hostfile", hostfile});
  const std::vector<std::string> program = testing_nn::program_words("ch14-data-parallel");
  all.insert(all.end(), program.begin(), program.end());
  all.insert(all.end(), args.begin(), args.end());
  return testing_nn::run_command("timeout", all);
}

std::string file_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  EXPECT_TRUE(in) << file;
  return {std::istreambuf_iterator<char>(in), {}};
}

// The number after "test accuracy: " in a run's output.
std::string test_accuracy(const std::string& output) {
  const std::string key = "test accuracy: ";
  const std::size_t at = output.find(key);
  if (at == std::string::npos) return "none";
  const std::size_t from = at + key.size();
  return output.substr(from, output.find_first_not_of("0123456789.", from) - from);
}

TEST(DataParallelMpi, TwoProcessesTrainTheWeightsOfOne) {
  TempDir dir;
  const std::vector<std::string> common{"--seed", "3", "--threads", "1", "--max-steps", "300", "--plots",
                                        (dir / "plots").string()};
  std::vector<std::string> one = common, two = common, shards = common;
  one.insert(one.end(), {"--save", (dir / "one").string()});
  two.insert(two.end(), {"--save", (dir / "two").string()});
  shards.insert(shards.end(), {"--shards", "2", "--save", (dir / "shards").string()});
  const testing_nn::ProgramRun r1 = testing_nn::run_program("ch14-data-parallel", one);
  const testing_nn::ProgramRun r2 = mpirun(2, two);
  const testing_nn::ProgramRun rs = testing_nn::run_program("ch14-data-parallel", shards);
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  ASSERT_EQ(rs.exit_code, 0) << rs.output;
  // Two processes are one process computing the two shards in turn: every file the same bytes.
  for (const auto& entry : std::filesystem::directory_iterator(dir / "two"))
    EXPECT_EQ(file_bytes(entry.path()), file_bytes(dir / "shards" / entry.path().filename()))
        << entry.path().filename();
  EXPECT_THAT(r2.output, HasSubstr("rank 1: rows 16..31 of every global batch of 32"));
  EXPECT_THAT(r2.output, HasSubstr("the weights are the same on every process"));
  EXPECT_EQ(test_accuracy(r1.output), test_accuracy(r2.output)) << r1.output << r2.output;
  nn::Sequential a = nn::make_mnist_model(0), b = nn::make_mnist_model(0);
  a.load(dir / "one");
  b.load(dir / "two");
  const auto wa = a.named_parameters(), wb = b.named_parameters();
  bool any_differs = false;
  for (std::size_t t = 0; t < wa.size(); ++t) {
    double largest = 0, diff = 0;
    for (std::size_t i = 0; i < wa[t].parameter->size(); ++i) {
      largest = std::max(largest, static_cast<double>(std::abs(wa[t].parameter->value[i])));
      diff = std::max(diff, std::abs(static_cast<double>(wa[t].parameter->value[i]) - wb[t].parameter->value[i]));
    }
    // 300 steps of per-step differences within the bound above: measured
    // 2e-5 of the largest weight or less (chapter 14); 1e-3 leaves room.
    EXPECT_LE(diff, 1e-3 * largest) << wa[t].name;
    any_differs = any_differs || diff > 0;
  }
  EXPECT_TRUE(any_differs) << "two processes were expected to sum in another order than one";
}

TEST(DataParallelMpi, OneProcessTrainsChapter10sWeightsBitForBit) {
  TempDir dir;
  const std::vector<std::string> common{"--seed", "4", "--threads", "1", "--epochs", "1", "--max-steps", "60",
                                        "--plots", (dir / "plots").string()};
  std::vector<std::string> ch10 = common, ch14 = common;
  ch10.insert(ch10.end(), {"--save", (dir / "ch10").string()});
  ch14.insert(ch14.end(), {"--save", (dir / "ch14").string()});
  ASSERT_EQ(testing_nn::run_program("ch10-fit", ch10).exit_code, 0);
  const testing_nn::ProgramRun r = mpirun(1, ch14);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "ch10"))
    EXPECT_EQ(file_bytes(entry.path()), file_bytes(dir / "ch14" / entry.path().filename())) << entry.path().filename();
}

TEST(DataParallelMpi, AHostfileOfLocalhostSlotsRunsTheSameJob) {
  TempDir dir;
  std::ofstream(dir / "hosts") << "localhost slots=2\n";
  const testing_nn::ProgramRun r =
      mpirun(2, {"--seed", "1", "--threads", "1", "--max-steps", "20", "--plots", (dir / "plots").string()},
             (dir / "hosts").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("2 processes"));
  EXPECT_THAT(r.output, HasSubstr("the weights are the same on every process"));
}

TEST(DataParallelMpi, ARankThatDiesStopsTheJobAndTheSavedSetStaysWhole) {
  // 64 training images: 2 steps an epoch. Rank 1 dies as step 3 starts, in
  // epoch 2: epoch 1's weights are saved, and must be left whole.
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {64, 28, 28}, {10, 28, 28});
  const testing_nn::ProgramRun r =
      mpirun(2, {"--data", (dir / "data").string(), "--epochs", "3", "--threads", "1", "--kill-rank", "1:3",
                 "--save", (dir / "weights").string(), "--plots", (dir / "plots").string()});
  EXPECT_NE(r.exit_code, 0) << r.output;
  nn::Sequential model = nn::make_mnist_model(0);
  EXPECT_EQ(model.load(dir / "weights"), 1) << "the set of epoch 1, whole";
}

TEST(DataParallelMpi, MissingDataStopsEveryProcessWithOneClearError) {
  TempDir dir;
  const testing_nn::ProgramRun r = mpirun(2, {"--data", (dir / "no-such-data").string(), "--plots",
                                              (dir / "plots").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("error:"));
  EXPECT_THAT(r.output, HasSubstr("no-such-data"));
}

TEST(DataParallelMpi, ShardsInOneProcessOnlyWithoutMpirun) {
  TempDir dir;
  const testing_nn::ProgramRun r = mpirun(2, {"--shards", "2", "--plots", (dir / "plots").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("2 shards in one process: only in a job of one process, not of 2"));
}

TEST(DataParallelMpi, BadOptionsAreRefused) {
  const testing_nn::ProgramRun r = testing_nn::run_program("ch14-data-parallel", {"--kill-rank", "1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--kill-rank 1: expected R:S"));
  TempDir dir;
  std::ofstream(dir / "bad.csv") << "timing,1,1,300,nonsense\n";
  const testing_nn::ProgramRun c =
      testing_nn::run_program("ch14-data-parallel", {"--cost-model", (dir / "bad.csv").string()});
  EXPECT_NE(c.exit_code, 0);
  EXPECT_THAT(c.output, HasSubstr("bad.csv:1: not a timing line"));
}

}  // namespace
