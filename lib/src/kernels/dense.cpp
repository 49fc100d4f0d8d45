// Dense: the variants' names, the fast variant (nn::gemm) inside the dispatch,
// and the layer. The naive reference is in dense_naive.cpp.
#include "nn/dense.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <numeric>

#include "gemm_internal.hpp"
#include "nn/error.hpp"
#include "nn/gemm.hpp"
#include "nn/parallel.hpp"

namespace nn {

namespace {
constexpr std::array kVariants{DenseVariant::naive, DenseVariant::fast};

void check_shapes(const Tensor& x, const Tensor& kernel, const Tensor& bias) {
  if (kernel.rank() != 2 || bias.rank() != 1 || bias.dim(0) != kernel.dim(1))
    throw Error(fmt::format("Dense: kernel {} and bias {} do not fit together", kernel.shape().str(),
                            bias.shape().str()));
  if (x.rank() != 2 || x.dim(1) != kernel.dim(0))
    throw Error(fmt::format("Dense: input {} does not match a kernel of shape {} (expected (N, {}))",
                            x.shape().str(), kernel.shape().str(), kernel.dim(0)));
}

void check_backward_shapes(const Tensor& x, const Tensor& kernel, const Tensor& dy, Tensor& dkernel, Tensor& dbias,
                           Tensor* dx) {
  const std::size_t n = x.dim(0), in = kernel.dim(0), out = kernel.dim(1);
  if (x.rank() != 2 || x.dim(1) != in || !(dy.shape() == Shape{n, out}))
    throw Error(fmt::format("Dense backward: x {}, kernel {} and dy {} do not fit together", x.shape().str(),
                            kernel.shape().str(), dy.shape().str()));
  ensure_shape(dkernel, {in, out});
  ensure_shape(dbias, {out});
  if (dx) ensure_shape(*dx, {n, in});
}

// The three gradients of the fast variant: two products for nn::gemm, and a sum.
// [snippet dense-backward]
// dW = x^T dy:  (in, n) x (n, out)
GemmArgs dkernel_product(const Tensor& x, const Tensor& kernel, const Tensor& dy, float* dkernel) {
  return {.m = kernel.dim(0), .n = kernel.dim(1), .k = x.dim(0), .a = x.data(), .transpose_a = true, .b = dy.data(),
          .c = dkernel, .threaded = true};
}

// dx = dy W^T:  (n, out) x (out, in)
GemmArgs dx_product(const Tensor& kernel, const Tensor& dy, float* dx) {
  return {.m = dy.dim(0), .n = kernel.dim(0), .k = kernel.dim(1), .a = dy.data(), .b = kernel.data(),
          .transpose_b = true, .c = dx, .threaded = true};
}

// db = the sum of dy over the batch
void bias_gradient(const Tensor& dy, Tensor& dbias) {
  const std::size_t n = dy.dim(0), out = dy.dim(1);
  dbias.fill(0.0f);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < out; ++j) dbias[j] += dy[i * out + j];
}
// [end snippet dense-backward]

}  // namespace

std::span<const DenseVariant> dense_variants() { return kVariants; }

std::string_view dense_variant_name(DenseVariant v) { return v == DenseVariant::naive ? "naive" : "fast"; }

DenseVariant dense_variant(std::string_view name) {
  for (auto v : kVariants)
    if (dense_variant_name(v) == name) return v;
  throw Error(fmt::format("unknown Dense variant '{}' (naive, fast)", name));
}

void dense_forward(const Tensor& x, const Tensor& kernel, const Tensor& bias, Tensor& y, DenseVariant variant) {
  check_shapes(x, kernel, bias);
  const std::size_t n = x.dim(0), in = kernel.dim(0), out = kernel.dim(1);
  if (!(y.shape() == Shape{n, out}))
    throw Error(fmt::format("Dense: output is {}, expected ({}, {})", y.shape().str(), n, out));
  if (variant == DenseVariant::naive) {
    dense_forward_naive(n, in, out, x.data(), kernel.data(), bias.data(), y.data());
    return;
  }
  // [snippet dense-forward]
  for (std::size_t i = 0; i < n; ++i)  // y starts as the bias in every row: y = b
    std::copy(bias.data(), bias.data() + out, y.data() + i * out);
  // y += x W  with  x: (n, in), W: (in, out), y: (n, out)
  gemm({.m = n, .n = out, .k = in, .a = x.data(), .b = kernel.data(), .c = y.data(), .beta = 1.0f,
        .threaded = true});
  // [end snippet dense-forward]
}

DenseGradients dense_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, DenseVariant variant,
                              bool input_gradient) {
  DenseGradients grads;
  dense_backward(x, kernel, dy, variant, grads.dkernel, grads.dbias, input_gradient ? &grads.dx : nullptr);
  return grads;
}

void dense_backward(const Tensor& x, const Tensor& kernel, const Tensor& dy, DenseVariant variant, Tensor& dkernel,
                    Tensor& dbias, Tensor* dx) {
  const std::size_t n = x.dim(0), in = kernel.dim(0), out = kernel.dim(1);
  check_backward_shapes(x, kernel, dy, dkernel, dbias, dx);
  if (variant == DenseVariant::naive) {
    dense_backward_naive(n, in, out, x.data(), kernel.data(), dy.data(), dkernel.data(), dbias.data(),
                         dx ? dx->data() : nullptr);
    return;
  }
  gemm(dkernel_product(x, kernel, dy, dkernel.data()));  // dW = x^T dy
  bias_gradient(dy, dbias);                             // db
  if (dx) gemm(dx_product(kernel, dy, dx->data()));    // dx = dy W^T
}

void dense_backward_update(const Tensor& x, const Tensor& kernel, const Tensor& dy, Tensor& dkernel, Tensor& dbias,
                           Tensor* dx, const KernelUpdate& update_kernel) {
  using namespace gemm_impl;
  const std::size_t n = x.dim(0), in = kernel.dim(0), out = kernel.dim(1);
  check_backward_shapes(x, kernel, dy, dkernel, dbias, dx);
  const GemmArgs dw = with_defaults(dkernel_product(x, kernel, dy, nullptr));
  const GemmArgs dxp = with_defaults(dx_product(kernel, dy, dx ? dx->data() : nullptr));
  const std::size_t threads = thread_count();
  if (sharing(dw, threads) == Sharing::sum || (dx && sharing(dxp, threads) == Sharing::sum)) {
    dense_backward(x, kernel, dy, DenseVariant::fast, dkernel, dbias, dx);  // the same sums, exactly
    update_kernel(dkernel.data(), 0, dkernel.size());
    return;
  }
  bias_gradient(dy, dbias);

  // dx = dy W^T is computed as its transpose, dx^T = W dy^T, where the batch
  // fills whole NR-column panels (a batch of 32: one with AVX-512, two with
  // AVX2): the rows of W are then read in place along their length and the
  // finished tiles of dx^T are transposed into dx. Below that batch size it is
  // computed as written, a short A (dy) times W^T packed block by block. The
  // two give the same sums in the same order, so the same bits.
#if defined(__AVX__)
  const bool dx_transposed = dx && n >= NR;
#else
  const bool dx_transposed = false;
#endif

  // dy is read by every block, in two or three packings, made once: as MR-row
  // panels, op(A) of dx = dy W^T, or as NR-column panels of dy^T, op(B) of
  // dx^T = W dy^T (one set per KC slice of the sum over out); and as NR-column
  // panels, op(B) of dW = x^T dy (one set per KC slice of the sum over the
  // batch). gemm would pack the same values.
  const std::size_t rows_padded = (n + MR - 1) / MR * MR, cols_padded = (out + NR - 1) / NR * NR;
  const std::size_t batch_padded = (n + NR - 1) / NR * NR;
  thread_local std::vector<float> dy_a_storage, dy_b_storage;
  float* dy_a = dx ? scratch(dy_a_storage, (dx_transposed ? batch_padded : rows_padded) * out) : nullptr;
  float* dy_b = scratch(dy_b_storage, n * cols_padded);  // slice pc at dy_b + cols_padded * pc
  const GemmArgs dyt{.m = in, .n = n, .k = out, .b = dy.data(), .ldb = out, .transpose_b = true};  // op(B) = dy^T
  for (std::size_t pc = 0; dx && pc < out; pc += KC) {
    if (dx_transposed)  // slice pc at dy_a + batch_padded * pc
      pack_b(dyt, pc, std::min(KC, out - pc), 0, n, dy_a + batch_padded * pc);
    else  // slice pc at dy_a + rows_padded * pc
      pack_a(dxp, 0, n, pc, std::min(KC, out - pc), dy_a + rows_padded * pc);
  }
  for (std::size_t pc = 0; pc < n; pc += KC) pack_b(dw, pc, std::min(KC, n - pc), 0, out, dy_b + cols_padded * pc);

  // dx[:, r0:r0+rows] = dy W[r0:r0+rows, :]^T for one block of rows of W,
  // from the weights before this step. wt holds one KC slice of the block's
  // W^T (packed when dx is computed as written), tile one tile of dx^T.
  // [snippet dense-dx-block]
  const auto dx_columns = [&](std::size_t r0, std::size_t rows, float* wt, float* tile) {
    for (std::size_t pc = 0; pc < out; pc += KC) {
      const std::size_t kc = std::min(KC, out - pc);
      const float beta = pc == 0 ? 0.0f : 1.0f;  // later slices of the sum add to dx
      if (dx_transposed) {
        // dx^T[r0+ir.., jr..] = W[r0+ir.., pc..] dy^T[pc.., jr..], W's rows read in place
        for (std::size_t ir = 0; ir < rows; ir += MR)
          for (std::size_t jr = 0; jr < n; jr += NR) {
            const std::size_t mr = std::min(MR, rows - ir), nr = std::min(NR, n - jr);
            micro_kernel_rows_in_place(kc, kernel.data() + (r0 + ir) * out + pc, out, mr,
                                       dy_a + batch_padded * pc + jr * kc, NR, nr, tile);
            store_tile_transposed(tile, mr, nr, 1.0f, beta, dx->data() + jr * in + r0 + ir, in);
          }
      } else {
        // dx[ir.., r0+jr..] = dy[ir.., pc..] W[r0+jr.., pc..]^T, that slice of W^T packed
        pack_b(dxp, pc, kc, r0, rows, wt);
        for (std::size_t jr = 0; jr < rows; jr += NR)
          for (std::size_t ir = 0; ir < n; ir += MR)
            micro_kernel(kc, dy_a + rows_padded * pc + ir * kc, MR, wt + jr * kc, NR, 1.0f, beta,
                         dx->data() + ir * in + r0 + jr, in, std::min(MR, n - ir), std::min(NR, rows - jr));
      }
    }
  };
  // [end snippet dense-dx-block]

  // [snippet dense-backward-update]
  // Blocks of kRows rows of W, shared out among the threads when the
  // product is large enough for gemm to share it (not at a batch of 1: one
  // core keeps W in its cache from the forward pass to the update). kRows is
  // a multiple of MR and of NR, so that every row panel of a block is full:
  // 32 rows with AVX-512 (8 x 32 tiles), 48 with AVX2 (6 x 16 tiles).
  constexpr std::size_t kRows = [] {
    const std::size_t both = std::lcm(MR, NR);
    return (32 + both - 1) / both * both;
  }();  // W and its gradient: 2 x 12.8 KB (2 x 19.2 KB with AVX2), in L1
  const bool share = sharing(dw, threads) != Sharing::none;
  const auto blocks = [&](std::size_t lo, std::size_t hi) {
    thread_local std::vector<float> wt_storage, grad_storage;
    float* wt = scratch(wt_storage, dx_transposed ? 0 : std::min(KC, out) * kRows);
    float* grad = scratch(grad_storage, kRows * out);  // the block's dW: (rows, out)
    alignas(64) float tile[kTileRows * NR] = {};
    for (std::size_t block = lo; block < hi; ++block) {
      const std::size_t r0 = block * kRows, rows = std::min(kRows, in - r0);
      if (dx) dx_columns(r0, rows, wt, tile);  // from the weights before this step
      // grad = dW[r0:r0+rows, :] = x[:, r0:r0+rows]^T dy: full MR-row panels of x^T are read in place
      for (std::size_t pc = 0; pc < n; pc += KC) {
        const std::size_t kc = std::min(KC, n - pc);
        for (std::size_t ir = 0; ir < rows; ir += MR) {
          const std::size_t mr = std::min(MR, rows - ir);
          const float* a = x.data() + pc * in + r0 + ir;
          std::size_t a_stride = in;
          float edge[MR * KC];
          if (mr < MR) pack_a(dw, r0 + ir, mr, pc, kc, edge), a = edge, a_stride = MR;
          for (std::size_t jr = 0; jr < out; jr += NR)
            micro_kernel(kc, a, a_stride, dy_b + cols_padded * pc + jr * kc, NR, 1.0f, pc == 0 ? 0.0f : 1.0f,
                         grad + ir * out + jr, out, mr, std::min(NR, out - jr));
        }
      }
      update_kernel(grad, r0 * out, rows * out);  // the optimizer, while grad is in the cache
    }
  };
  const std::size_t block_count = (in + kRows - 1) / kRows;
  if (share)
    parallel_for(0, block_count, blocks);
  else
    blocks(0, block_count);
  // [end snippet dense-backward-update]
}

}  // namespace nn
