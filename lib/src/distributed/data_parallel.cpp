// Data-parallel training over MPI (chapter 14). The shards and the flat
// gradient block first (no MPI in them), then the MPI calls.
#include "nn/data_parallel.hpp"

#include <mpi.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/layers/dropout.hpp"
#include "nn/optimizer.hpp"

namespace nn {

Shard shard_of(std::size_t global, std::size_t rank, std::size_t ranks) {
  if (ranks == 0 || rank >= ranks) throw Error(fmt::format("shard_of: rank {} of {} ranks", rank, ranks));
  const std::size_t first = global * rank / ranks, last = global * (rank + 1) / ranks;
  return {first, last - first};
}

std::size_t flat_gradient_size(Sequential& model) {
  std::size_t n = 0;
  for (Parameter* p : model.parameters())
    if (p->trainable) n += p->size();
  return n;
}

void gather_gradients(Sequential& model, float scale, std::span<float> flat) {
  if (flat.size() != flat_gradient_size(model))
    throw Error(fmt::format("gather_gradients: {} floats for {} gradients", flat.size(), flat_gradient_size(model)));
  float* out = flat.data();
  for (Parameter* p : model.parameters()) {
    if (!p->trainable) continue;
    for (std::size_t i = 0; i < p->size(); ++i) out[i] = scale * p->grad[i];
    out += p->size();
  }
}

void scatter_gradients(Sequential& model, std::span<const float> flat) {
  if (flat.size() != flat_gradient_size(model))
    throw Error(fmt::format("scatter_gradients: {} floats for {} gradients", flat.size(), flat_gradient_size(model)));
  const float* in = flat.data();
  for (Parameter* p : model.parameters()) {
    if (!p->trainable) continue;
    std::memcpy(p->grad.data(), in, p->size() * sizeof(float));
    in += p->size();
  }
}

// [snippet shard-gradients]
double shard_gradients(Sequential& model, const Tensor& x, const Tensor& y, Shard shard, std::size_t global,
                       std::span<float> flat, std::size_t* correct) {
  if (shard.count == 0 || shard.first + shard.count > x.dim(0) || global == 0)
    throw Error(fmt::format("shard_gradients: rows {}..{} of a batch of {}", shard.first, shard.first + shard.count,
                            x.dim(0)));
  // The shard's rows: views of the global batch, no copy.
  const double loss = model.compute_gradients(x.batch_view(shard.first, shard.count),
                                              y.batch_view(shard.first, shard.count), correct);  // mean over the shard
  const double share = static_cast<double>(shard.count) / static_cast<double>(global);
  gather_gradients(model, static_cast<float>(share), flat);  // mean over the shard -> its part of the global mean
  return loss * share;
}
// [end snippet shard-gradients]

namespace {
// zlib's CRC-32 of the bytes in the low 32 bits, their count in the high ones.
struct Checksum {
  uLong crc = ::crc32_z(0L, Z_NULL, 0);
  std::uint64_t bytes = 0;
  void add(const void* data, std::size_t n) {
    crc = ::crc32_z(crc, static_cast<const Bytef*>(data), n);
    bytes += n;
  }
  std::uint64_t value() const { return (bytes << 32) ^ static_cast<std::uint64_t>(crc); }
};
}  // namespace

std::uint64_t weights_checksum(Sequential& model) {
  Checksum c;
  for (Parameter* p : model.parameters()) c.add(p->value.data(), p->size() * sizeof(float));
  return c.value();
}

std::uint64_t tensor_checksum(const Tensor& t) {
  Checksum c;
  c.add(t.data(), t.size() * sizeof(float));
  return c.value();
}

// [snippet ring-allreduce]
double ring_allreduce_seconds(double bytes, std::size_t n, double bytes_per_second, double latency) {
  if (n <= 1) return 0.0;
  const double steps = 2.0 * static_cast<double>(n - 1);  // reduce-scatter, then all-gather
  return steps * (latency + bytes / static_cast<double>(n) / bytes_per_second);  // one chunk of bytes / n per step
}
// [end snippet ring-allreduce]

namespace mpi {

Session::Session(int& argc, char**& argv) { MPI_Init(&argc, &argv); }
Session::~Session() { MPI_Finalize(); }

int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

void abort_all(const std::string& program, const std::string& message) {
  std::cerr << program << ": rank " << rank() << ": error: " << message << std::endl;
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return
}

bool same_everywhere(std::uint64_t value) {
  std::uint64_t lo = 0, hi = 0;
  MPI_Allreduce(&value, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&value, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}

}  // namespace mpi

DataParallel::DataParallel(std::size_t shards)
    : rank_(mpi::rank()), size_(mpi::size()), shards_(static_cast<std::size_t>(size_)) {
  if (shards > 1 && size_ > 1)
    throw Error(fmt::format("{} shards in one process: only in a job of one process, not of {}", shards, size_));
  if (shards > 1) shards_ = shards;
}

void set_first_row(Sequential& model, std::size_t first) {
  for (const auto& layer : model.layers())
    if (auto* drop = dynamic_cast<Dropout*>(layer.get())) drop->first_row = first;
}

double DataParallel::train_step(Sequential& model, const Tensor& x, const Tensor& y, std::size_t* correct) {
  using clock = std::chrono::steady_clock;
  const auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  ++times_.steps;
  if (static_cast<int>(rank_) == kill_rank_ && times_.steps == kill_step_) std::raise(SIGKILL);
  flat_.resize(flat_gradient_size(model));
  const auto t0 = clock::now();
  double totals[2] = {0, 0};
  if (size_ == 1 && shards_ > 1) {  // one process playing `shards_` of them, in rank order
    part_.resize(flat_.size());
    for (std::size_t s = 0; s < shards_; ++s) {
      const Shard shard = shard_of(x.dim(0), s, shards_);
      set_first_row(model, shard.first);
      std::size_t c = 0;
      totals[0] += shard_gradients(model, x, y, shard, x.dim(0), s == 0 ? flat_ : part_, &c);
      totals[1] += static_cast<double>(c);
      if (s > 0)
        for (std::size_t i = 0; i < flat_.size(); ++i) flat_[i] += part_[i];
    }
    set_first_row(model, 0);
  } else {
    // [snippet data-parallel-step]
    const Shard shard = shard_of(x.dim(0), static_cast<std::size_t>(rank_), static_cast<std::size_t>(size_));
    set_first_row(model, shard.first);  // Dropout: the global batch's mask for these rows
    std::size_t shard_correct = 0;
    totals[0] = shard_gradients(model, x, y, shard, x.dim(0), flat_, &shard_correct);  // this rank's share
    totals[1] = static_cast<double>(shard_correct);
    // [end snippet data-parallel-step]
  }
  const auto t1 = clock::now();
  // [snippet data-parallel-sum]
  // Sum every rank's share, in place: afterwards each rank holds the global batch's gradient.
  MPI_Allreduce(MPI_IN_PLACE, flat_.data(), static_cast<int>(flat_.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, totals, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);  // the loss, the matches
  const auto t2 = clock::now();
  if (std::isfinite(totals[0])) {  // as train_on_batch: no step from a NaN loss
    scatter_gradients(model, flat_);
    model.optimizer().step(model.parameters());  // the same update on every rank
  }
  // [end snippet data-parallel-sum]
  const auto t3 = clock::now();
  times_.compute += seconds(t0, t1);
  times_.allreduce += seconds(t1, t2);
  times_.update += seconds(t2, t3);
  if (correct) *correct = static_cast<std::size_t>(totals[1]);
  return totals[0];
}

std::function<double(const Tensor&, const Tensor&, std::size_t*)> DataParallel::train_step_for(Sequential& model) {
  return [this, &model](const Tensor& x, const Tensor& y, std::size_t* correct) {
    return train_step(model, x, y, correct);
  };
}

}  // namespace nn
