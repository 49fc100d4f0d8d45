#pragma once
// A small persistent thread pool, shared by every chapter that splits work
// across cores (chapter 04's convolution, the GEMM, the dense layers).
//
//   nn::parallel_for(0, batch, [&](std::size_t lo, std::size_t hi) {
//     for (std::size_t n = lo; n < hi; ++n) process(n);   // images lo..hi-1
//   });
//
// The range [begin, end) is cut into at most thread_count() contiguous chunks,
// one per thread; the calling thread runs the first chunk itself. The workers
// are started once and sleep between calls, so a call costs microseconds, not
// the price of starting threads. A parallel_for inside a parallel_for runs
// serially on the calling thread (no oversubscription, no deadlock). An
// exception thrown by any chunk is rethrown to the caller after all chunks end.
#include <cstddef>
#include <functional>
#include <string>

namespace nn {

// The number of threads parallel_for uses: by default $NN_THREADS if set,
// else the hardware threads.
std::size_t thread_count();

// "kernels: AVX2+FMA, 2 threads": the instruction set and the thread count,
// the first line a training or timing executable prints, so that a quoted
// number says which build made it. With the seed, the thread count decides a
// run's bits; AVX2 and AVX-512 builds give the same bits, a build without FMA
// (x86-64-v2) does not.
std::string kernels_line();

// Sets the number of threads (1 = everything runs on the calling thread;
// 0 = back to the default). Not to be called inside a parallel_for.
void set_thread_count(std::size_t n);

// Part `part` of `parts` nearly equal contiguous parts of [0, n): each part
// has n / parts items, the first n % parts parts one more. The parts cover
// [0, n) in order, without gaps or overlap. For n = 10, parts = 4:
//
//   split_range(10, 4, 0) == {0, 3}     split_range(10, 4, 2) == {6, 8}
//   split_range(10, 4, 1) == {3, 6}     split_range(10, 4, 3) == {8, 10}
//
// parallel_for cuts its range this way; the kernels that keep one partial
// sum per part use it to know which items a part holds.
struct Range {
  std::size_t begin = 0, end = 0;  // [begin, end)
};
inline Range split_range(std::size_t n, std::size_t parts, std::size_t part) {
  const std::size_t q = n / parts, r = n % parts;
  const std::size_t begin = part * q + (part < r ? part : r);
  return {begin, begin + q + (part < r ? 1 : 0)};
}

// Runs fn(lo, hi) on contiguous chunks covering [begin, end), in parallel.
void parallel_for(std::size_t begin, std::size_t end,
                  const std::function<void(std::size_t lo, std::size_t hi)>& fn);

}  // namespace nn
