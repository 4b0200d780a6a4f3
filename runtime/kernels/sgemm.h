// SGEMM: C = alpha * op(A) * op(B) + beta * C, row-major, single precision.
//
// Dimension key: M rows of C, N columns of C, K the shared dimension.
// op(A) is A (M x K, leading dimension lda) or, with trans_a, A^T where A is K x M.
// op(B) is B (K x N, ldb) or, with trans_b, B^T where B is N x K.
//
// sgemm() packs A and B into cache-sized panels and runs an AVX-512 (8 x 48 tile) or
// AVX2+FMA (6 x 16) micro-kernel chosen at run time on x86-64, a NEON one (8 x 12) on
// aarch64 (runtime/cpu.h; a portable tile when the build or CPU has none), parallel over tiles of C with onnas::parallel_for once
// a call exceeds about 1 MFLOP. When M is small (<= 128) and B is not transposed, B
// is read in place instead of packed. Results do not depend on the thread count:
// each element of C is one FMA chain over k in order, cut only at block boundaries
// that depend on K alone. Packing uses per-thread scratch that is grown once and
// then reused: after the first call of a given size, no allocation.
//
//   sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
#pragma once

#include <cstddef>
#include <cstdint>

namespace onnas::kernels {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same product on the calling thread only, packing into `pack` (at least
// sgemm_pack_floats() floats, 64-byte aligned) instead of per-thread scratch: for
// callers that run many small products in parallel themselves (convolution lanes)
// and plan the packing memory. Same results as sgemm() bit for bit.
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, float* pack);
// sgemm() (parallel over the threads as it chooses) packing into `pack` (at least
// sgemm_pack_floats() floats, 64-byte aligned) instead of the calling thread's lazily
// grown scratch: for callers whose packing memory is planned (a single image's
// convolution, whose workspace holds it). Same results as sgemm() bit for bit.
void sgemm_packed(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, float* pack);
// Floats of packing memory sgemm_serial and sgemm_packed need for these sizes under any ISA of any
// architecture (the same number on every machine, so plans are too).
size_t sgemm_pack_floats(bool trans_b, int64_t M, int64_t N, int64_t K);

// The product of a convolution whose columns are read where they lie instead of copied
// (conv2d.cc): for each of `n_rows` output rows p,
//   C[i][p * c_row_step + j] = alpha * sum_k A[i][k] * (b_rows[k] + p * b_row_step)[j] + beta * C[i][p * c_row_step + j]
// for i < M, j < N, with A M x K (lda) and ldc between rows of C. B's row k of output row
// p is N floats at b_rows[k] + p * b_row_step (an indirection table into a padded input).
// Runs on the calling thread, or parallel over the output rows when `parallel`; packs A
// into `pack` (at least sgemm_indirect_pack_floats() floats, 64-byte aligned). Each
// element is one FMA chain over k ascending, cut at the K-only pass boundaries of
// sgemm(), with the same micro-kernel: the bits of sgemm() on the copied columns.
void sgemm_indirect(int64_t M, int64_t N, int64_t K, int64_t n_rows, float alpha, const float* A, int64_t lda,
                    const float* const* b_rows, int64_t b_row_step, float beta, float* C, int64_t ldc,
                    int64_t c_row_step, bool parallel, float* pack);
// Floats of packing memory sgemm_indirect needs under any ISA of any architecture.
size_t sgemm_indirect_pack_floats(int64_t M, int64_t K);

// The weight gradient's product with the columns read in place (conv2d.cc), on the
// calling thread (or parallel over panels of C's columns with `parallel`): C (M x N) = alpha * A (M x K, lda) * B + beta * C (ldc), where B's
// column j holds K values gathered from b_cols[j]: value k is at
// b_cols[j][(k / row_len) * b_row_step + k % row_len] (k runs over a tile's output
// pixels, row_len of them per output row). Packs A and B into `pack` (at least
// sgemm_gathered_pack_floats() floats, 64-byte aligned). Each element is one FMA chain
// over k ascending, cut at K-only pass boundaries.
void sgemm_gathered(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* const* b_cols, int64_t row_len, int64_t b_row_step, float beta, float* C, int64_t ldc,
                    bool parallel, float* pack);
size_t sgemm_gathered_pack_floats(int64_t M, int64_t N, int64_t K);

// Plain triple loop (double accumulation), for tests.
void sgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace onnas::kernels
