#include "nn/parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "nn/simd.hpp"

namespace nn {

namespace {

thread_local bool inside_parallel_for = false;

// Spins on `ready` for up to ~100 microseconds before the caller falls back
// to sleeping. A worker that keeps running between calls stays on its own core;
// one that sleeps is often woken on the core of the thread that woke it, and
// then waits for that core instead of running beside it.
template <class Ready>
bool spin_until(Ready ready) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
  for (int i = 0;; ++i) {
    if (ready()) return true;
    if (i % 64 == 0 && std::chrono::steady_clock::now() > until) return false;
  }
}

std::size_t hardware_threads() { return std::max<std::size_t>(1, std::thread::hardware_concurrency()); }

// The default: $NN_THREADS when it is a positive number, else the hardware threads.
std::size_t default_threads() {
  if (const char* env = std::getenv("NN_THREADS"); env && *env) {
    char* end = nullptr;
    const unsigned long n = std::strtoul(env, &end, 10);
    if (*end == '\0' && n > 0 && n <= 1024) return n;
  }
  return hardware_threads();
}

// Workers 1..size-1 wait for a new generation of work; the caller is worker 0.
class Pool {
 public:
  explicit Pool(std::size_t size) : size_(size) {
    for (std::size_t w = 1; w < size_; ++w) workers_.emplace_back([this, w] { work(w); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  std::size_t size() const { return size_; }

  // Runs task(c) for c in 0..chunks-1 (chunks <= size), chunk c on worker c.
  void run(std::size_t chunks, const std::function<void(std::size_t)>& task) {
    std::lock_guard one_caller(call_mutex_);  // two outside threads take turns
    {
      std::lock_guard lock(mutex_);
      task_ = &task;
      chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    run_chunk(0);
    if (!spin_until([&] { return pending_ == 0; })) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return pending_ == 0; });
    }
    std::lock_guard lock(mutex_);
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_chunk(std::size_t c) {
    inside_parallel_for = true;
    try {
      (*task_)(c);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    inside_parallel_for = false;
  }

  void work(std::size_t w) {
    std::uint64_t seen = 0;
    for (;;) {
      spin_until([&] { return generation_ != seen || stop_; });
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (w >= chunks_) continue;  // fewer chunks than threads this time
      }
      run_chunk(w);
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::size_t size_;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::size_t chunks_ = 0;
  // Written under mutex_; atomic so that the spinning threads may read them without it.
  std::atomic<std::size_t> pending_ = 0;
  std::atomic<std::uint64_t> generation_ = 0;
  std::atomic<bool> stop_ = false;
  std::exception_ptr error_;
};

std::mutex pool_mutex;
std::unique_ptr<Pool> pool;  // created on first use

Pool& the_pool() {
  std::lock_guard lock(pool_mutex);
  if (!pool) pool = std::make_unique<Pool>(default_threads());
  return *pool;
}

}  // namespace

std::size_t thread_count() { return the_pool().size(); }

std::string_view simd::instruction_set() {
#if !NN_HAVE_SIMD
  return "scalar";
#elif defined(__AVX512F__) && defined(__FMA__)
  return "AVX-512+FMA";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2+FMA";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__SSE2__)
  return "SSE2";
#elif defined(__ARM_NEON)
  return "NEON";
#elif defined(__wasm_simd128__)
  return "WebAssembly SIMD";
#else
  return "generic vectors";
#endif
}

std::string kernels_line() {
  const std::size_t threads = thread_count();
  return fmt::format("kernels: {}, {} thread{}", simd::instruction_set(), threads, threads == 1 ? "" : "s");
}

void set_thread_count(std::size_t n) {
  if (n == 0) n = default_threads();
  std::lock_guard lock(pool_mutex);
  if (pool && pool->size() == n) return;
  pool.reset();  // joins the old workers
  pool = std::make_unique<Pool>(n);
}

void parallel_for(std::size_t begin, std::size_t end,
                  const std::function<void(std::size_t lo, std::size_t hi)>& fn) {
  if (end <= begin) return;
  const std::size_t n = end - begin;
  if (inside_parallel_for) {  // nested: stay on this thread
    fn(begin, end);
    return;
  }
  Pool& p = the_pool();
  const std::size_t chunks = std::min(n, p.size());
  if (chunks == 1) {
    fn(begin, end);
    return;
  }
  // Chunk c gets n / chunks items, the first n % chunks chunks one more.
  p.run(chunks, [&](std::size_t c) {
    const Range chunk = split_range(n, chunks, c);
    fn(begin + chunk.begin, begin + chunk.end);
  });
}

}  // namespace nn
