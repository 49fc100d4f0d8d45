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

namespace nn {

// The number of threads parallel_for uses: by default $NN_THREADS if set,
// else the hardware threads.
std::size_t thread_count();

// Sets the number of threads (1 = everything runs on the calling thread;
// 0 = back to the default). Not to be called inside a parallel_for.
void set_thread_count(std::size_t n);

// Runs fn(lo, hi) on contiguous chunks covering [begin, end), in parallel.
void parallel_for(std::size_t begin, std::size_t end,
                  const std::function<void(std::size_t lo, std::size_t hi)>& fn);

}  // namespace nn
