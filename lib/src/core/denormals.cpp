#include "nn/denormals.hpp"

#if (defined(__SSE__) || defined(_M_X64)) && !defined(__EMSCRIPTEN__)
#include <immintrin.h>
#define NN_FLUSH_MXCSR 1
#elif defined(__aarch64__)
#define NN_FLUSH_FPCR 1
#endif

namespace nn {

namespace {

// The control register of the calling thread, and the bits that flush.
#if defined(NN_FLUSH_MXCSR)
constexpr unsigned long long kFlushBits = 0x8040;  // bit 15 FTZ (results), bit 6 DAZ (inputs)
unsigned long long read_control() { return _mm_getcsr(); }
void write_control(unsigned long long v) { _mm_setcsr(static_cast<unsigned>(v)); }
#elif defined(NN_FLUSH_FPCR)
constexpr unsigned long long kFlushBits = 1ull << 24;  // FZ: inputs and results, single and double
unsigned long long read_control() {
  unsigned long long v;
  asm volatile("mrs %0, fpcr" : "=r"(v));
  return v;
}
void write_control(unsigned long long v) { asm volatile("msr fpcr, %0" : : "r"(v)); }
#else
constexpr unsigned long long kFlushBits = 0;
unsigned long long read_control() { return 0; }
void write_control(unsigned long long) {}
#endif

}  // namespace

bool can_flush_denormals() { return kFlushBits != 0; }

bool flushing_denormals() { return can_flush_denormals() && (read_control() & kFlushBits) == kFlushBits; }

FlushDenormals::FlushDenormals(bool on) {
  if (!on || !can_flush_denormals()) return;
  saved_ = read_control();
  if ((saved_ & kFlushBits) == kFlushBits) return;  // already flushing: the register is left alone
  write_control(saved_ | kFlushBits);
  changed_ = true;
}

FlushDenormals::~FlushDenormals() {
  if (changed_) write_control(saved_);
}

}  // namespace nn
