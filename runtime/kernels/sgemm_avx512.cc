// AVX-512 SGEMM micro-kernel: an 8 x 48 tile of C in 24 zmm accumulators.
//
// Dimension key: R rows of the tile (<= MR = 8), V zmm vectors of 16 columns
// (<= 3, NR = 48), kc steps of K. Contract in sgemm_internal.h.
//
// Why 8 x 48: per k step it costs 3 vector loads of B and 8 broadcasts of A for 24
// FMAs, leaving registers for B; and the search's M (16, 32, 48, 64, 112) are all
// multiples of 8, so the skinny shapes waste no rows. Edge tiles use the same
// template with fewer rows / vectors, and the last vector of columns is masked.
#include <immintrin.h>

#include "runtime/kernels/sgemm_internal.h"

namespace onnas::kernels::sgemm_detail {
namespace {

constexpr int kMR = kAvx512Blocking.mr;
constexpr int kVec = 16;
constexpr int kMaxV = 3;
static_assert(kAvx512Blocking.nr == kMaxV * kVec);

template <int R, int V, typename Rows>
void tile(int64_t kc, const float* a, Rows rows_b, float* c, int64_t ldc, int cols, float alpha, float beta) {
  // Lanes of the last vector that exist (1..16).
  const __mmask16 last = __mmask16((1u << (cols - (V - 1) * kVec)) - 1u);
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();

#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = rows_b.row(k);
    __m512 bv[V];
#pragma GCC unroll 3
    for (int v = 0; v < V - 1; ++v) bv[v] = _mm512_loadu_ps(b + v * kVec);
    bv[V - 1] = _mm512_maskz_loadu_ps(last, b + (V - 1) * kVec);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
    a += kMR;
  }

  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) {
      __m512 x = _mm512_mul_ps(acc[r][v], va);
      if (v < V - 1) {
        if (beta != 0.0f) x = _mm512_fmadd_ps(_mm512_loadu_ps(cr + v * kVec), vb, x);
        _mm512_storeu_ps(cr + v * kVec, x);
      } else {
        if (beta != 0.0f) x = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(last, cr + v * kVec), vb, x);
        _mm512_mask_storeu_ps(cr + v * kVec, last, x);
      }
    }
  }
}

// A right-edge tile of at most 8 columns (N = 49 leaves 1, N = 196 leaves 4) would
// cost the 8 zmm FMAs per k step of a 16-column vector. Here the vector runs down
// the 8 rows instead (the packed A step is exactly one ymm) and each column is one
// ymm FMA per step. Every element is still the same FMA chain over k, so the bits
// match the wide tile's.
template <int NCOLS, typename Rows>
void narrow_tile(int64_t kc, const float* a, Rows rows_b, float* c, int64_t ldc, int rows, float alpha, float beta) {
  static_assert(kMR == 8, "one ymm holds one packed step of A");
  __m256 acc[NCOLS];
#pragma GCC unroll 8
  for (int j = 0; j < NCOLS; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = rows_b.row(k);
    const __m256 av = _mm256_loadu_ps(a);
#pragma GCC unroll 8
    for (int j = 0; j < NCOLS; ++j) acc[j] = _mm256_fmadd_ps(av, _mm256_set1_ps(b[j]), acc[j]);
    a += kMR;
  }
  alignas(32) float col[kMR];
  for (int j = 0; j < NCOLS; ++j) {
    _mm256_store_ps(col, _mm256_mul_ps(acc[j], _mm256_set1_ps(alpha)));
    for (int r = 0; r < rows; ++r) {
      float& out = c[r * ldc + j];
      out = beta != 0.0f ? __builtin_fmaf(out, beta, col[r]) : col[r];
    }
  }
}

constexpr int kNarrowMaxCols = 8;

template <typename Rows>
void narrow_any(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int rows, int cols, float alpha,
                float beta) {
  switch (cols) {
    case 1: return narrow_tile<1>(kc, a, b, c, ldc, rows, alpha, beta);
    case 2: return narrow_tile<2>(kc, a, b, c, ldc, rows, alpha, beta);
    case 3: return narrow_tile<3>(kc, a, b, c, ldc, rows, alpha, beta);
    case 4: return narrow_tile<4>(kc, a, b, c, ldc, rows, alpha, beta);
    case 5: return narrow_tile<5>(kc, a, b, c, ldc, rows, alpha, beta);
    case 6: return narrow_tile<6>(kc, a, b, c, ldc, rows, alpha, beta);
    case 7: return narrow_tile<7>(kc, a, b, c, ldc, rows, alpha, beta);
    default: return narrow_tile<8>(kc, a, b, c, ldc, rows, alpha, beta);
  }
}

template <int R, typename Rows>
void tile_rows(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int cols, float alpha, float beta) {
  switch ((cols + kVec - 1) / kVec) {
    case 1: return tile<R, 1>(kc, a, b, c, ldc, cols, alpha, beta);
    case 2: return tile<R, 2>(kc, a, b, c, ldc, cols, alpha, beta);
    default: return tile<R, 3>(kc, a, b, c, ldc, cols, alpha, beta);
  }
}

template <typename Rows>
void tile_of(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int rows, int cols, float alpha, float beta) {
  if (cols <= kNarrowMaxCols) return narrow_any(kc, a, b, c, ldc, rows, cols, alpha, beta);
  switch (rows) {
    case 1: return tile_rows<1>(kc, a, b, c, ldc, cols, alpha, beta);
    case 2: return tile_rows<2>(kc, a, b, c, ldc, cols, alpha, beta);
    case 3: return tile_rows<3>(kc, a, b, c, ldc, cols, alpha, beta);
    case 4: return tile_rows<4>(kc, a, b, c, ldc, cols, alpha, beta);
    case 5: return tile_rows<5>(kc, a, b, c, ldc, cols, alpha, beta);
    case 6: return tile_rows<6>(kc, a, b, c, ldc, cols, alpha, beta);
    case 7: return tile_rows<7>(kc, a, b, c, ldc, cols, alpha, beta);
    default: return tile_rows<8>(kc, a, b, c, ldc, cols, alpha, beta);
  }
}

}  // namespace

MicroKernel avx512_kernel() {
  return make_micro_kernel(kAvx512Blocking,
                           [](int64_t kc, const float* a, auto rows_b, float* c, int64_t ldc, int rows, int cols,
                              float alpha, float beta) { tile_of(kc, a, rows_b, c, ldc, rows, cols, alpha, beta); });
}

}  // namespace onnas::kernels::sgemm_detail
