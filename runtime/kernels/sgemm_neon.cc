// NEON SGEMM micro-kernel (aarch64): an 8 x 12 tile of C in 24 q-register accumulators.
//
// Dimension key: R rows of the tile (<= MR = 8), V q vectors of 4 columns (<= 3,
// NR = 12), kc steps of K. Contract in sgemm_internal.h; the plain reference is
// sgemm_reference.cc.
//
// Why 8 x 12: aarch64 has 32 q registers; 24 accumulators + 3 vectors of B + 2 of A
// (the packed step of A, 8 floats, used lane by lane with FMLA's by-element form, so A
// needs no broadcasts) is 29, and per k step 5 loads feed 24 FMAs. MR = 8 as on
// AVX-512: the search's M (16, 32, 48, 64, 112) waste no rows. Edge tiles use the same
// template with fewer rows / vectors. NEON has no masked loads, so a partial last
// vector of columns is read and written lane by lane: past `cols` the memory may not
// exist when B is read in place.
#include <arm_neon.h>

#include <utility>

#include "runtime/kernels/sgemm_internal.h"

namespace onnas::kernels::sgemm_detail {
namespace {

constexpr int kMR = kNeonBlocking.mr;
constexpr int kVec = 4;
constexpr int kMaxV = 3;
static_assert(kNeonBlocking.nr == kMaxV * kVec);
static_assert(kMR == 2 * kVec, "one packed step of A is two q registers");

// The first n (1..4) floats at p; zeros in the lanes after them, which are not read.
inline float32x4_t load_first(const float* p, int n) {
  float32x4_t v = vdupq_n_f32(0.0f);
  v = vld1q_lane_f32(p, v, 0);
  if (n > 1) v = vld1q_lane_f32(p + 1, v, 1);
  if (n > 2) v = vld1q_lane_f32(p + 2, v, 2);
  if (n > 3) v = vld1q_lane_f32(p + 3, v, 3);
  return v;
}

inline void store_first(float* p, float32x4_t v, int n) {
  vst1q_lane_f32(p, v, 0);
  if (n > 1) vst1q_lane_f32(p + 1, v, 1);
  if (n > 2) vst1q_lane_f32(p + 2, v, 2);
  if (n > 3) vst1q_lane_f32(p + 3, v, 3);
}

// Row r of the tile: acc[v] += a[r] * b[v], a[r] taken from its lane of the A step
// (the lane must be a compile-time constant, hence the template).
template <int r, int V>
inline void fma_row(float32x4_t (&acc)[V], const float32x4_t (&bv)[V], float32x4_t a_lo, float32x4_t a_hi) {
  const float32x4_t a = r < kVec ? a_lo : a_hi;
#pragma GCC unroll 3
  for (int v = 0; v < V; ++v) acc[v] = vfmaq_laneq_f32(acc[v], bv[v], a, r % kVec);
}

template <int R, int V, int... rs>
inline void fma_rows(float32x4_t (&acc)[R][V], const float32x4_t (&bv)[V], float32x4_t a_lo, float32x4_t a_hi,
                     std::integer_sequence<int, rs...>) {
  (fma_row<rs, V>(acc[rs], bv, a_lo, a_hi), ...);
}

// FULL: the last vector of columns is whole (cols == V * 4), so no lane-wise access.
template <int R, int V, bool FULL, typename Rows>
void tile(int64_t kc, const float* a, Rows rows_b, float* c, int64_t ldc, int cols, float alpha, float beta) {
  const int tail = cols - (V - 1) * kVec;  // columns of the last vector that exist (1..4)
  float32x4_t acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) acc[r][v] = vdupq_n_f32(0.0f);

  for (int64_t k = 0; k < kc; ++k) {
    const float* b = rows_b.row(k);
    float32x4_t bv[V];
#pragma GCC unroll 3
    for (int v = 0; v < V - 1; ++v) bv[v] = vld1q_f32(b + v * kVec);
    bv[V - 1] = FULL ? vld1q_f32(b + (V - 1) * kVec) : load_first(b + (V - 1) * kVec, tail);
    // A panels always hold MR floats per step (zero-padded), so both halves exist.
    const float32x4_t a_lo = vld1q_f32(a);
    const float32x4_t a_hi = vld1q_f32(a + kVec);
    fma_rows<R, V>(acc, bv, a_lo, a_hi, std::make_integer_sequence<int, R>{});
    a += kMR;
  }

  const float32x4_t va = vdupq_n_f32(alpha);
  const float32x4_t vb = vdupq_n_f32(beta);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) {
      float32x4_t x = vmulq_f32(acc[r][v], va);
      if (FULL || v < V - 1) {
        if (beta != 0.0f) x = vfmaq_f32(x, vld1q_f32(cr + v * kVec), vb);
        vst1q_f32(cr + v * kVec, x);
      } else {
        if (beta != 0.0f) x = vfmaq_f32(x, load_first(cr + v * kVec, tail), vb);
        store_first(cr + v * kVec, x, tail);
      }
    }
  }
}

// A right-edge tile of at most 3 columns (N = 49 leaves 1, N = 50 leaves 2) would cost
// the 8 FMAs per k step of a 4-column vector with most lanes empty. Here the vectors run
// down the 8 rows instead (one packed step of A is two q registers) and each column
// costs 2 FMAs per step. Every element is still the same FMA chain over k, so the bits
// match the wide tile's.
template <int NCOLS, typename Rows>
void narrow_tile(int64_t kc, const float* a, Rows rows_b, float* c, int64_t ldc, int rows, float alpha, float beta) {
  float32x4_t lo[NCOLS], hi[NCOLS];
#pragma GCC unroll 3
  for (int j = 0; j < NCOLS; ++j) lo[j] = hi[j] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = rows_b.row(k);
    const float32x4_t a_lo = vld1q_f32(a);
    const float32x4_t a_hi = vld1q_f32(a + kVec);
#pragma GCC unroll 3
    for (int j = 0; j < NCOLS; ++j) {
      lo[j] = vfmaq_n_f32(lo[j], a_lo, b[j]);
      hi[j] = vfmaq_n_f32(hi[j], a_hi, b[j]);
    }
    a += kMR;
  }
  float col[kMR];
  for (int j = 0; j < NCOLS; ++j) {
    vst1q_f32(col, vmulq_n_f32(lo[j], alpha));
    vst1q_f32(col + kVec, vmulq_n_f32(hi[j], alpha));
    for (int r = 0; r < rows; ++r) {
      float& out = c[r * ldc + j];
      out = beta != 0.0f ? __builtin_fmaf(out, beta, col[r]) : col[r];
    }
  }
}

constexpr int kNarrowMaxCols = 3;

template <typename Rows>
void narrow_any(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int rows, int cols, float alpha,
                float beta) {
  switch (cols) {
    case 1: return narrow_tile<1>(kc, a, b, c, ldc, rows, alpha, beta);
    case 2: return narrow_tile<2>(kc, a, b, c, ldc, rows, alpha, beta);
    default: return narrow_tile<3>(kc, a, b, c, ldc, rows, alpha, beta);
  }
}

template <int R, typename Rows>
void tile_rows(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int cols, float alpha, float beta) {
  const bool full = cols % kVec == 0;
  switch ((cols + kVec - 1) / kVec) {
    case 1:
      return full ? tile<R, 1, true>(kc, a, b, c, ldc, cols, alpha, beta)
                  : tile<R, 1, false>(kc, a, b, c, ldc, cols, alpha, beta);
    case 2:
      return full ? tile<R, 2, true>(kc, a, b, c, ldc, cols, alpha, beta)
                  : tile<R, 2, false>(kc, a, b, c, ldc, cols, alpha, beta);
    default:
      return full ? tile<R, 3, true>(kc, a, b, c, ldc, cols, alpha, beta)
                  : tile<R, 3, false>(kc, a, b, c, ldc, cols, alpha, beta);
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

MicroKernel neon_kernel() {
  return make_micro_kernel(
      kNeonBlocking, [](int64_t kc, const float* a, auto rows_b, float* c, int64_t ldc, int rows, int cols, float alpha,
                        float beta) { tile_of(kc, a, rows_b, c, ldc, rows, cols, alpha, beta); });
}

}  // namespace onnas::kernels::sgemm_detail
