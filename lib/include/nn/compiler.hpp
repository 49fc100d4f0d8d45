#pragma once
// NN_SCALAR: keeps a naive reference loop scalar. At -O3 the compiler would
// vectorize a simple loop by itself, and the "naive" variant would no longer
// be the plain one-element-at-a-time code the chapter measures against.
// Put NN_SCALAR before the function that holds the loop.
#if defined(__clang__)
#define NN_SCALAR __attribute__((noinline))  // clang: the loop carries NN_SCALAR_LOOP
#define NN_SCALAR_LOOP _Pragma("clang loop vectorize(disable) interleave(disable)")
#else
#define NN_SCALAR __attribute__((optimize("no-tree-vectorize")))
#define NN_SCALAR_LOOP
#endif
