#pragma once
// Data-parallel training over MPI (chapter 14): N processes, each holding the
// whole model, each computing the gradient of its share of every global
// batch; one MPI_Allreduce per step sums the shares, and every process
// applies the same update. What Keras's MultiWorkerMirroredStrategy and
// PyTorch's DistributedDataParallel do, on Open MPI.
//
//   nn::mpi::Session mpi(argc, argv);          // MPI_Init ... MPI_Finalize
//   nn::DataParallel dp;                        // this process's rank among all
//   model.fit(x, y, {.seed = s, .progress = dp.rank() == 0 ? &std::cout : nullptr,
//                    .train_step = dp.train_step_for(model)});
//
// Part of nn_distributed, the library the course builds where Open MPI is
// installed; the core library nn links no MPI. The pieces that need no MPI
// (the shards, the flat gradient block) are usable and tested without it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nn/model.hpp"
#include "nn/tensor.hpp"

namespace nn {

// Rows [first, first + count) of a global batch of `global` rows that rank r
// of n takes: contiguous slices whose sizes differ by at most one,
// first = floor(global r / n). 32 rows on 2 ranks: 0-15 and 16-31.
struct Shard {
  std::size_t first = 0, count = 0;
};
Shard shard_of(std::size_t global, std::size_t rank, std::size_t ranks);

// Every trainable parameter's gradient as one flat block, in
// named_parameters() order (llm.c keeps all its parameters so): the buffer
// one MPI_Allreduce sums. 542,230 floats for the seed model.
std::size_t flat_gradient_size(Sequential& model);
// flat = scale * (every trainable parameter's grad), one after the other.
void gather_gradients(Sequential& model, float scale, std::span<float> flat);
// Every trainable parameter's grad = its part of flat.
void scatter_gradients(Sequential& model, std::span<const float> flat);

// This shard's part of the global batch's gradient and loss, before the sum
// over shards: compute_gradients on rows `shard` of (x, y), which averages
// over the shard's count rows, scaled by count / global into `flat`, so that
// the sum over all shards is the average over the global batch. Returns the
// shard's loss times count / global; *correct receives the shard's argmax
// matches. When count / global is a power of two (32 rows on 1, 2, 4, ...
// processes) the scaling is exact: each shard's gradient is then, bit for
// bit, what the one-process step computes for those rows, and only the order
// of the sum over rows differs.
double shard_gradients(Sequential& model, const Tensor& x, const Tensor& y, Shard shard, std::size_t global,
                       std::span<float> flat, std::size_t* correct = nullptr);

// The ring all-reduce's time for `bytes` of gradients over n processes: each
// sends and receives 2 (n - 1) / n of the bytes, in 2 (n - 1) messages
// (n - 1 to sum the n chunks, n - 1 to hand the sums round), at
// `bytes_per_second` each way, with `latency` seconds per message. 0 for one
// process.
double ring_allreduce_seconds(double bytes, std::size_t n, double bytes_per_second, double latency);

// Tells every Dropout layer of the model that its batches start at row
// `first` of the global batch (Dropout::first_row), so that a process's rows
// get the masks one process would draw for them. DataParallel::train_step
// calls it; shard_gradients does not.
void set_first_row(Sequential& model, std::size_t first);

namespace mpi {

// MPI_Init in the constructor, MPI_Finalize in the destructor; one per program.
class Session {
 public:
  Session(int& argc, char**& argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

int rank();  // this process's rank in MPI_COMM_WORLD
int size();  // how many processes

// Ends every process of the job: prints "<program>: rank R: error: <message>"
// on stderr, then MPI_Abort with exit code 1. What a rank does when it meets
// an error the others cannot see, so that none of them waits forever in
// MPI_Allreduce for it.
[[noreturn]] void abort_all(const std::string& program, const std::string& message);

// True when `value` is the same on every rank (an MPI_Allreduce of its
// minimum and maximum).
bool same_everywhere(std::uint64_t value);

}  // namespace mpi

// Keras's train step under a mirrored strategy, for FitOptions::train_step.
class DataParallel {
 public:
  // Needs MPI initialized (mpi::Session). `shards` > 1, in a job of one
  // process only: that process computes each batch as `shards` processes
  // would, one shard after the other, and adds their gradients in rank order,
  // as MPI_SUM adds two processes' blocks: the reference that a run of 2
  // processes must equal bit for bit.
  explicit DataParallel(std::size_t shards = 1);
  int rank() const { return rank_; }
  int size() const { return size_; }

  // One step on the global batch (x, y), which every rank passes whole: this
  // rank's shard's gradient (shard_gradients), one MPI_Allreduce (sum) of the
  // flat block and of the loss and the correct count, then the optimizer's
  // step on every rank. Returns the global batch's loss; *correct receives
  // the global batch's argmax matches. Every rank must call it for every step.
  double train_step(Sequential& model, const Tensor& x, const Tensor& y, std::size_t* correct);
  // A FitOptions::train_step that calls train_step on `model`.
  std::function<double(const Tensor&, const Tensor&, std::size_t*)> train_step_for(Sequential& model);

  // Where the steps' time went on this rank: computing the shard's gradient,
  // waiting for and doing the all-reduce, and the optimizer's update.
  struct Times {
    double compute = 0, allreduce = 0, update = 0;  // seconds, summed over the steps
    std::size_t steps = 0;
  };
  const Times& times() const { return times_; }
  // A test's way to kill a rank mid-run (chapter 14's --kill-rank): raise
  // SIGKILL on rank `rank` when it starts step `step` (1, 2, ...). 0: never.
  void kill_at(int rank, std::size_t step) { kill_rank_ = rank, kill_step_ = step; }

 private:
  int rank_ = 0, size_ = 1;
  std::size_t shards_ = 1;  // size_, or the shards one process computes in turn
  std::vector<float> flat_, part_;
  Times times_;
  int kill_rank_ = -1;
  std::size_t kill_step_ = 0;
};

// A checksum of every weight's bytes (trainable or not), in
// named_parameters() order: ranks compare it to check that they hold the
// same model.
std::uint64_t weights_checksum(Sequential& model);
// A checksum of a tensor's bytes: ranks compare their training data.
std::uint64_t tensor_checksum(const Tensor& t);

}  // namespace nn
