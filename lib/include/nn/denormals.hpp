#pragma once
// Denormal (subnormal) floats: the values between 0 and the smallest normal
// float, 2^-126 (about 1.2e-38), which IEEE 754 keeps with fewer significant
// bits instead of rounding them to 0. Many Intel cores compute with them
// through a microcode assist, tens to a hundred times slower than a normal
// operation; AMD's recent cores do not slow down.
//
// Adam's and RMSprop's running means fill with them during training (see
// chapter 09's README), so these two rules run their updates with the CPU's
// flush mode on, as TensorFlow runs every CPU op:
//
//   {
//     const nn::FlushDenormals flush;   // this thread: denormals become 0
//     ...                               // float arithmetic
//   }                                   // the thread's previous mode is back
//
// The mode belongs to the thread (x86: MXCSR's FTZ and DAZ bits; AArch64:
// FPCR's FZ bit); on other CPUs it is not available and FlushDenormals does
// nothing.
namespace nn {

// True where this build can switch the mode (x86 with SSE, AArch64).
bool can_flush_denormals();

// True when the calling thread flushes denormals now: denormal results are
// written as 0 and denormal inputs read as 0 (x86: both FTZ and DAZ set).
bool flushing_denormals();

// While alive, the calling thread flushes denormals; the destructor restores
// the mode the thread had before. FlushDenormals(false) changes nothing.
class FlushDenormals {
 public:
  explicit FlushDenormals(bool on = true);
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned long long saved_ = 0;  // the control register before, when changed_
  bool changed_ = false;
};

}  // namespace nn
