// AVX2 + FMA SGEMM micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators.
//
// Dimension key: R rows of the tile (<= MR = 6), V ymm vectors of 8 columns
// (<= 2, NR = 16), kc steps of K. Contract in sgemm_internal.h.
//
// Why 6 x 16: with 16 ymm registers, 12 accumulators + 2 vectors of B + 1 broadcast
// of A is the largest tile that does not spill, and 12 independent FMA chains cover
// the FMA latency on two pipes. Edge tiles use the same template with fewer rows /
// vectors; the last vector of columns is read and written with a lane mask.
#include <immintrin.h>

#include "runtime/kernels/sgemm_internal.h"

namespace onnas::kernels::sgemm_detail {
namespace {

constexpr int kMR = kAvx2Blocking.mr;
constexpr int kVec = 8;
constexpr int kMaxV = 2;
static_assert(kAvx2Blocking.nr == kMaxV * kVec);

template <int R, int V, typename Rows>
void tile(int64_t kc, const float* a, Rows rows_b, float* c, int64_t ldc, int cols, float alpha, float beta) {
  // Lanes of the last vector that exist: lane i is on when i < cols - (V-1)*8.
  const __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - (V - 1) * kVec),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 acc[R][V];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();

#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = rows_b.row(k);
    __m256 bv[V];
    if (V > 1) bv[0] = _mm256_loadu_ps(b);
    bv[V - 1] = _mm256_maskload_ps(b + (V - 1) * kVec, last);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 ar = _mm256_broadcast_ss(a + r);
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
    }
    a += kMR;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) {
      __m256 x = _mm256_mul_ps(acc[r][v], va);
      if (v < V - 1) {
        if (beta != 0.0f) x = _mm256_fmadd_ps(_mm256_loadu_ps(cr + v * kVec), vb, x);
        _mm256_storeu_ps(cr + v * kVec, x);
      } else {
        if (beta != 0.0f) x = _mm256_fmadd_ps(_mm256_maskload_ps(cr + v * kVec, last), vb, x);
        _mm256_maskstore_ps(cr + v * kVec, last, x);
      }
    }
  }
}

template <int R, typename Rows>
void tile_rows(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int cols, float alpha, float beta) {
  if (cols > kVec) return tile<R, 2>(kc, a, b, c, ldc, cols, alpha, beta);
  return tile<R, 1>(kc, a, b, c, ldc, cols, alpha, beta);
}

template <typename Rows>
void tile_of(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int rows, int cols, float alpha, float beta) {
  switch (rows) {
    case 1: return tile_rows<1>(kc, a, b, c, ldc, cols, alpha, beta);
    case 2: return tile_rows<2>(kc, a, b, c, ldc, cols, alpha, beta);
    case 3: return tile_rows<3>(kc, a, b, c, ldc, cols, alpha, beta);
    case 4: return tile_rows<4>(kc, a, b, c, ldc, cols, alpha, beta);
    case 5: return tile_rows<5>(kc, a, b, c, ldc, cols, alpha, beta);
    default: return tile_rows<6>(kc, a, b, c, ldc, cols, alpha, beta);
  }
}

}  // namespace

MicroKernel avx2_kernel() {
  return make_micro_kernel(
      kAvx2Blocking, [](int64_t kc, const float* a, auto rows_b, float* c, int64_t ldc, int rows, int cols, float alpha,
                        float beta) { tile_of(kc, a, rows_b, c, ldc, rows, cols, alpha, beta); });
}

}  // namespace onnas::kernels::sgemm_detail
