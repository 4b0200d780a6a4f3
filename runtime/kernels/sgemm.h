// SGEMM: C = alpha * op(A) * op(B) + beta * C, row-major, single precision.
//
// Dimension key: M rows of C, N columns of C, K the shared dimension.
// op(A) is A (M x K, leading dimension lda) or, with trans_a, A^T where A is K x M.
// op(B) is B (K x N, ldb) or, with trans_b, B^T where B is N x K.
//
// sgemm() packs A and B into cache-sized panels and runs an AVX-512 or AVX2+FMA
// micro-kernel chosen at run time (runtime/cpu.h), parallel over blocks of C with
// oneTBB. Results do not depend on the thread count (each element of C is summed
// in the same order whatever the split). Packing uses per-thread scratch that is
// grown once and then reused: after the first call of a given size, no allocation.
//
//   sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
#pragma once

#include <cstdint>

namespace onnas::kernels {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Plain triple loop (double accumulation), for tests.
void sgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace onnas::kernels
