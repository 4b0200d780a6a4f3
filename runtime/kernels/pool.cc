// Max / average / global average pooling, NCHW. Every (n, c) plane is independent, so
// all kernels are parallel over the N*C planes; backward kernels scatter within their
// own plane only, in a fixed order, so results do not depend on the thread count.
//
// Dimension key: N batch, C channels, H W input, R S window, P Q output; stride and
// pad per axis; HW = H*W.
//
// The loops are plain so the compiler vectorizes them for the target (SSE2 on x86-64,
// NEON on aarch64), except the max-pool rows, which need compare-and-select written out
// (max3_row_stride1, max3_bordered_row: SSE2 or NEON, whichever the build has; the
// scalar loop beside them under Isa::reference). The normal cells' 3x3 stride-1 pools
// run on a bordered copy of each plane (zeros for the average, -inf for the max). The
// plain references are ref::*pool* in reference.h.
#include "runtime/kernels/pool.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "runtime/cpu.h"
#include "runtime/error.h"
#include "runtime/kernels/cpu_features.h"
#include "runtime/kernels/short_copy.h"
#include "runtime/threading.h"

#if defined(ONNAS_KERNELS_X86)
#include <emmintrin.h>  // SSE2: x86-64's baseline, no flags needed
#elif defined(ONNAS_KERNELS_NEON)
#include <arm_neon.h>
#endif

namespace onnas::kernels {
namespace {

// Planes per parallel chunk: about 8K floats of input each.
int64_t plane_grain(int64_t plane_floats) { return plane_floats >= 8192 ? 1 : 8192 / (plane_floats > 0 ? plane_floats : 1); }

// The in-bounds part [lo, hi) of the window starting at `start` (may be negative).
struct Span {
  int64_t lo, hi;
};
Span clamp_window(int64_t start, int64_t size, int64_t limit) {
  return {start < 0 ? 0 : start, start + size > limit ? limit : start + size};
}

void check_pool(const Pool2dShape& s, const char* op) {
  ONNAS_CHECK(s.pad_h * 2 <= s.R && s.pad_w * 2 <= s.S && s.P() > 0 && s.Q() > 0,
              "{}: window {}x{} with pad {}x{} on {}x{} input leaves an empty window", op, s.R, s.S, s.pad_h, s.pad_w,
              s.H, s.W);
}

// The normal cells' pool (3x3, stride 1, pad 1) on planes small enough to copy, with a
// border of one row and column, onto the stack: the bordered paths below (max and
// average forward, average backward).
constexpr int64_t kBorderedMaxFloats = 8192;

bool bordered3x3(const Pool2dShape& s) {
  return s.R == 3 && s.S == 3 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 1 && s.pad_w == 1 && s.H >= 2 &&
         s.W >= 2 && (s.H + 2) * (s.W + 2) <= kBorderedMaxFloats;
}

// body(nc, g) for every plane nc, in parallel, g a bordered plane of its task
// ((H + 2) x (W + 2), pitch W + 2) whose border holds `border`; body writes the interior.
template <typename Body>
void for_each_bordered_plane(const Pool2dShape& s, float border, Body&& body) {
  const int64_t floats = (s.H + 2) * (s.W + 2);
  parallel_for(0, s.N * s.C, plane_grain(s.H * s.W), [&](int64_t lo, int64_t hi) {
    alignas(64) float g[kBorderedMaxFloats];
    std::fill(g, g + floats, border);
    for (int64_t nc = lo; nc < hi; ++nc) body(nc, g);
  });
}

// The interior of bordered plane g: plane x (H x W).
void copy_interior(float* g, const float* x, int64_t H, int64_t W) {
  for (int64_t h = 0; h < H; ++h) copy_floats(g + (h + 1) * (W + 2) + 1, x + h * W, W);
}

}  // namespace

// The outputs whose 3x3 window lies wholly inside the input along one axis:
// [lo, hi) with lo*stride - pad >= 0 and (hi-1)*stride - pad + 3 <= size.
Span interior3(int64_t size, int64_t out, int64_t stride, int64_t pad) {
  const int64_t lo = (pad + stride - 1) / stride;
  const int64_t hi = size - 3 + pad < 0 ? 0 : std::min(out, (size - 3 + pad) / stride + 1);
  return {std::min(lo, hi), hi};
}

namespace {

// A max pool's argmax is the offset of the maximum within its window, r * S + t (one
// byte), a quarter of a flat i32 index's memory.
void check_max_window(const Pool2dShape& s, const char* op) {
  ONNAS_CHECK(s.R * s.S <= kMaxPoolWindowPositions, "{}: a {}x{} window has more than the {} positions its argmax can name",
              op, s.R, s.S, kMaxPoolWindowPositions);
}

// Four window offsets (one per 32-bit lane, each 0..8) stored as four bytes at `to`.
#if defined(ONNAS_KERNELS_X86)
inline void store_taps(uint8_t* to, __m128i taps) {
  const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(taps, taps), _mm_setzero_si128());
  const int32_t four = _mm_cvtsi128_si32(bytes);
  std::memcpy(to, &four, 4);
}
#elif defined(ONNAS_KERNELS_NEON)
inline void store_taps(uint8_t* to, uint32x4_t taps) {
  const uint8x8_t bytes = vmovn_u16(vcombine_u16(vmovn_u32(taps), vdup_n_u16(0)));
  const uint32_t four = vget_lane_u32(vreinterpret_u32_u8(bytes), 0);
  std::memcpy(to, &four, 4);
}
#endif

// Interior 3x3 windows of one output row at stride 1, four outputs at a time: each tap
// in row-major order replaces the running maximum where it is strictly larger (the
// scalar loop's rule, so the same argmax), with compare-and-mask instead of the
// branches the compiler made of the scalar selects. Returns the first q not done (q_lo
// when the build has no such loop: the caller's scalar loop does the row).
int64_t max3_row_stride1(const float* xp, int64_t W, int64_t top, int64_t pad_w, int64_t q_lo, int64_t q_hi,
                         float* y, uint8_t* argmax) {
#if defined(ONNAS_KERNELS_X86)
  int64_t q = q_lo;
  for (; q + 4 <= q_hi; q += 4) {
    const float* w0 = xp + top * W + q - pad_w;
    __m128 best = _mm_loadu_ps(w0);
    __m128i best_tap = _mm_setzero_si128();
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t t = 0; t < 3; ++t) {
        if (r == 0 && t == 0) continue;
        const __m128 v = _mm_loadu_ps(w0 + r * W + t);
        const __m128 more = _mm_cmpgt_ps(v, best);
        const __m128i more_i = _mm_castps_si128(more);
        best = _mm_or_ps(_mm_and_ps(more, v), _mm_andnot_ps(more, best));
        const __m128i tap = _mm_set1_epi32(int32_t(r * 3 + t));
        best_tap = _mm_or_si128(_mm_and_si128(more_i, tap), _mm_andnot_si128(more_i, best_tap));
      }
    _mm_storeu_ps(y + q, best);
    store_taps(argmax + q, best_tap);
  }
  return q;
#elif defined(ONNAS_KERNELS_NEON)
  int64_t q = q_lo;
  for (; q + 4 <= q_hi; q += 4) {
    const float* w0 = xp + top * W + q - pad_w;
    float32x4_t best = vld1q_f32(w0);
    uint32x4_t best_tap = vdupq_n_u32(0);
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t t = 0; t < 3; ++t) {
        if (r == 0 && t == 0) continue;
        const float32x4_t v = vld1q_f32(w0 + r * W + t);
        const uint32x4_t more = vcgtq_f32(v, best);  // false for NaN, as the scalar '>'
        best = vbslq_f32(more, v, best);
        best_tap = vbslq_u32(more, vdupq_n_u32(uint32_t(r * 3 + t)), best_tap);
      }
    vst1q_f32(y + q, best);
    store_taps(argmax + q, best_tap);
  }
  return q;
#else
  (void)xp, (void)W, (void)top, (void)pad_w, (void)q_hi, (void)y, (void)argmax;
  return q_lo;
#endif
}

}  // namespace

namespace {

// 3x3, stride 1, pad 1 (the normal cells' pool), on a copy of each plane bordered with
// -inf: each output starts from the first in-bounds tap of its window (as the generic
// loop does) and takes every tap in row-major order that is strictly larger, so the
// border (-inf) never wins, a NaN start stays, ties keep the first: the generic loop's
// values and argmax, without its bounds. Four outputs at a time where the build has
// SSE2 or NEON (compare-and-select), the scalar loop beside it. Row p + r, column q + t
// of the bordered plane g is tap (r, t) of output (p, q)'s window.
//
// Output q of row p, one at a time: the window from its first in-bounds tap (r0, t0).
void max3_bordered_one(const float* g, int64_t BW, int64_t p, int64_t r0, int64_t t0, int64_t q, float* y,
                       uint8_t* argmax) {
  float best = g[(p + r0) * BW + q + t0];
  int32_t best_tap = int32_t(r0 * 3 + t0);
  for (int64_t r = r0; r < 3; ++r)
    for (int64_t t = t0; t < 3; ++t) {
      const float v = g[(p + r) * BW + q + t];
      const int32_t tap = int32_t(r * 3 + t);
      best_tap = v > best ? tap : best_tap;
      best = v > best ? v : best;
    }
  y[q] = best;
  argmax[q] = uint8_t(best_tap);
}

// Outputs [q_lo, q_hi) of row p; r0 is the window's first in-bounds row (1 on the first
// output row), and every q here has its first in-bounds column at t = 0 (q >= 1).
void max3_bordered_row(const float* g, int64_t BW, int64_t p, int64_t r0, int64_t q_lo, int64_t q_hi, float* y,
                       uint8_t* argmax) {
  int64_t q = q_lo;
  const bool simd = active_isa() != Isa::reference;
#if defined(ONNAS_KERNELS_X86)
  for (; simd && q + 4 <= q_hi; q += 4) {
    __m128 best = _mm_loadu_ps(g + (p + r0) * BW + q);
    __m128i best_tap = _mm_set1_epi32(int32_t(r0 * 3));
    for (int64_t r = r0; r < 3; ++r)
      for (int64_t t = 0; t < 3; ++t) {
        const __m128 v = _mm_loadu_ps(g + (p + r) * BW + q + t);
        const __m128 more = _mm_cmpgt_ps(v, best);
        const __m128i more_i = _mm_castps_si128(more);
        best = _mm_or_ps(_mm_and_ps(more, v), _mm_andnot_ps(more, best));
        const __m128i tap = _mm_set1_epi32(int32_t(r * 3 + t));
        best_tap = _mm_or_si128(_mm_and_si128(more_i, tap), _mm_andnot_si128(more_i, best_tap));
      }
    _mm_storeu_ps(y + q, best);
    store_taps(argmax + q, best_tap);
  }
#elif defined(ONNAS_KERNELS_NEON)
  for (; simd && q + 4 <= q_hi; q += 4) {
    float32x4_t best = vld1q_f32(g + (p + r0) * BW + q);
    uint32x4_t best_tap = vdupq_n_u32(uint32_t(r0 * 3));
    for (int64_t r = r0; r < 3; ++r)
      for (int64_t t = 0; t < 3; ++t) {
        const float32x4_t v = vld1q_f32(g + (p + r) * BW + q + t);
        const uint32x4_t more = vcgtq_f32(v, best);
        best = vbslq_f32(more, v, best);
        best_tap = vbslq_u32(more, vdupq_n_u32(uint32_t(r * 3 + t)), best_tap);
      }
    vst1q_f32(y + q, best);
    store_taps(argmax + q, best_tap);
  }
#else
  (void)simd;
#endif
  for (; q < q_hi; ++q) max3_bordered_one(g, BW, p, r0, 0, q, y, argmax);
}

void max_pool2d_forward_bordered(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax) {
  const int64_t H = s.H, W = s.W, HW = H * W, BW = W + 2;
  for_each_bordered_plane(s, -std::numeric_limits<float>::infinity(), [&](int64_t nc, float* g) {
    copy_interior(g, x + nc * HW, H, W);
    float* yp = y + nc * HW;
    uint8_t* ap = argmax + nc * HW;
    for (int64_t p = 0; p < H; ++p) {
      const int64_t r0 = p == 0 ? 1 : 0;
      // Column 0's window starts at column t = 1; the others' at t = 0.
      max3_bordered_one(g, BW, p, r0, 1, 0, yp + p * W, ap + p * W);
      max3_bordered_row(g, BW, p, r0, 1, W, yp + p * W, ap + p * W);
    }
  });
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax) {
  check_pool(s, "max_pool2d");
  check_max_window(s, "max_pool2d");
  if (bordered3x3(s)) return max_pool2d_forward_bordered(s, x, y, argmax);
  const int64_t P = s.P(), Q = s.Q();
  // 3x3 windows: outputs away from the border run a fixed 9-tap loop (the DARTS pools).
  const bool fast = s.R == 3 && s.S == 3;
  const Span iq = fast ? interior3(s.W, Q, s.stride_w, s.pad_w) : Span{0, 0};
  const Span ip = fast ? interior3(s.H, P, s.stride_h, s.pad_h) : Span{0, 0};
  const bool simd_rows = fast && s.stride_w == 1 && active_isa() != Isa::reference;
  parallel_for(0, s.N * s.C, plane_grain(s.H * s.W), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const float* xp = x + nc * s.H * s.W;
      float* yp = y + nc * P * Q;
      uint8_t* ap = argmax + nc * P * Q;
      // Only in-bounds positions compete (padding never wins); strict > keeps the
      // first maximum in row-major window order, as PyTorch does.
      auto generic = [&](int64_t p, int64_t q) {
        const int64_t top = p * s.stride_h - s.pad_h, left = q * s.stride_w - s.pad_w;
        const Span hs = clamp_window(top, s.R, s.H);
        const Span ws = clamp_window(left, s.S, s.W);
        int64_t best_h = hs.lo, best_v = ws.lo;
        float best = xp[best_h * s.W + best_v];
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t v = ws.lo; v < ws.hi; ++v)
            if (xp[h * s.W + v] > best) best = xp[h * s.W + v], best_h = h, best_v = v;
        yp[p * Q + q] = best;
        ap[p * Q + q] = uint8_t((best_h - top) * s.S + (best_v - left));
      };
      for (int64_t p = 0; p < P; ++p) {
        if (p < ip.lo || p >= ip.hi) {
          for (int64_t q = 0; q < Q; ++q) generic(p, q);
          continue;
        }
        for (int64_t q = 0; q < iq.lo; ++q) generic(p, q);
        const int64_t top = p * s.stride_h - s.pad_h;
        int64_t q0 = iq.lo;
        if (simd_rows) q0 = max3_row_stride1(xp, s.W, top, s.pad_w, iq.lo, iq.hi, yp + p * Q, ap + p * Q);
        for (int64_t q = q0; q < iq.hi; ++q) {
          const float* w0 = xp + top * s.W + q * s.stride_w - s.pad_w;
          int32_t best_tap = 0;
          float best = w0[0];
          for (int64_t r = 0; r < 3; ++r)
            for (int64_t t = 0; t < 3; ++t) {
              const float v = w0[r * s.W + t];
              best_tap = v > best ? int32_t(r * 3 + t) : best_tap;
              best = v > best ? v : best;
            }
          yp[p * Q + q] = best;
          ap[p * Q + q] = uint8_t(best_tap);
        }
        for (int64_t q = iq.hi; q < Q; ++q) generic(p, q);
      }
    }
  });
}

void max_pool2d_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax, float* dx) {
  check_max_window(s, "max_pool2d_backward");
  const int64_t P = s.P(), Q = s.Q(), W = s.W, HW = s.H * W, stride_w = s.stride_w;
  // Window offset -> its place in the plane relative to the window's first tap.
  int32_t delta[kMaxPoolWindowPositions];
  for (int64_t a = 0; a < s.R * s.S; ++a) delta[a] = int32_t(a / s.S * W + a % s.S);
  parallel_for(0, s.N * s.C, plane_grain(HW), [&, delta](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      float* dxp = dx + nc * HW;
      std::memset(dxp, 0, size_t(HW) * sizeof(float));
      const uint8_t* am = argmax + nc * P * Q;
      const float* dyp = dy + nc * P * Q;
      // Row-major over the outputs, as the flat-index scatter was: the same sums.
      for (int64_t p = 0; p < P; ++p) {
        // Window (p, q) starts at first + q * stride_w (outside the plane for padding).
        const int64_t first = (p * s.stride_h - s.pad_h) * W - s.pad_w;
        const uint8_t* ar = am + p * Q;
        const float* dr = dyp + p * Q;
        for (int64_t q = 0; q < Q; ++q) dxp[first + q * stride_w + delta[ar[q]]] += dr[q];
      }
    }
  });
}

namespace {

// The sum of a 3x3 window starting at column v of rows a, b, c, in row-major order from
// 0.0f (the generic loop's additions, without its bounds).
inline float sum3x3(const float* a, const float* b, const float* c, int64_t v) {
  float acc = 0.0f;
  acc += a[v];
  acc += a[v + 1];
  acc += a[v + 2];
  acc += b[v];
  acc += b[v + 1];
  acc += b[v + 2];
  acc += c[v];
  acc += c[v + 1];
  acc += c[v + 2];
  return acc;
}

// 3x3, stride 1, pad 1 (the normal cells' pool), on a zero-bordered copy of each plane
// (on the stack): every output is the same nine additions in the same order as the
// generic loop's, with exact zeros where it skips the padding (acc is never -0, so
// adding +0 changes nothing), then the same division by the in-bounds count: the same
// bits, in branch-free rows the compiler vectorizes. The generic loop had run every
// border output with bounds and a division of its own, half the pool's time at 28x28.
void avg_pool2d_forward_bordered(const Pool2dShape& s, const float* x, float* y) {
  const int64_t H = s.H, W = s.W, HW = H * W, BW = W + 2;
  for_each_bordered_plane(s, 0.0f, [&](int64_t nc, float* g) {
    copy_interior(g, x + nc * HW, H, W);
    float* yp = y + nc * HW;
    for (int64_t h = 0; h < H; ++h) {
      const float* a = g + h * BW;
      const float* b = a + BW;
      const float* c = b + BW;
      const float rows = (h == 0 || h == H - 1) ? 2.0f : 3.0f;
      auto window = [&](int64_t v) { return sum3x3(a, b, c, v); };
      float* yr = yp + h * W;
      yr[0] = window(0) / (rows * 2.0f);
      const float inner = rows * 3.0f;
      for (int64_t v = 1; v < W - 1; ++v) yr[v] = window(v) / inner;
      yr[W - 1] = window(W - 1) / (rows * 2.0f);
    }
  });
}

}  // namespace

void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  check_pool(s, "avg_pool2d");
  if (bordered3x3(s)) return avg_pool2d_forward_bordered(s, x, y);
  const int64_t P = s.P(), Q = s.Q();
  const bool fast = s.R == 3 && s.S == 3;
  const Span iq = fast ? interior3(s.W, Q, s.stride_w, s.pad_w) : Span{0, 0};
  const Span ip = fast ? interior3(s.H, P, s.stride_h, s.pad_h) : Span{0, 0};
  parallel_for(0, s.N * s.C, plane_grain(s.H * s.W), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const float* xp = x + nc * s.H * s.W;
      float* yp = y + nc * P * Q;
      auto generic = [&](int64_t p, int64_t q) {
        const Span hs = clamp_window(p * s.stride_h - s.pad_h, s.R, s.H);
        const Span ws = clamp_window(q * s.stride_w - s.pad_w, s.S, s.W);
        float acc = 0.0f;
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t v = ws.lo; v < ws.hi; ++v) acc += xp[h * s.W + v];
        // count_include_pad = False: divide by the in-bounds count.
        yp[p * Q + q] = acc / float((hs.hi - hs.lo) * (ws.hi - ws.lo));
      };
      for (int64_t p = 0; p < P; ++p) {
        if (p < ip.lo || p >= ip.hi) {
          for (int64_t q = 0; q < Q; ++q) generic(p, q);
          continue;
        }
        for (int64_t q = 0; q < iq.lo; ++q) generic(p, q);
        // The same additions in the same order as the generic loop, without its bounds.
        const float* r0 = xp + (p * s.stride_h - s.pad_h) * s.W - s.pad_w;
        const float* r1 = r0 + s.W;
        const float* r2 = r1 + s.W;
        auto interior = [&](auto sw) {
          for (int64_t q = iq.lo; q < iq.hi; ++q) yp[p * Q + q] = sum3x3(r0, r1, r2, q * sw) / 9.0f;
        };
        // A stride known to be 1 at compile time lets the compiler vectorize across q.
        if (s.stride_w == 1)
          interior(std::integral_constant<int64_t, 1>{});
        else
          interior(s.stride_w);
        for (int64_t q = iq.hi; q < Q; ++q) generic(p, q);
      }
    }
  });
}

namespace {

// 3x3, stride 1, pad 1 (the normal cells' pool): a gather instead of a scatter.
// g = dy / count goes into a zero-bordered copy, and each dx is the sum of the 3x3
// g around it: branch-free rows the compiler vectorizes.
void avg_pool2d_backward_gather(const Pool2dShape& s, const float* dy, float* dx) {
  const int64_t H = s.H, W = s.W, HW = H * W, BW = W + 2;
  for_each_bordered_plane(s, 0.0f, [&](int64_t nc, float* g) {
    const float* dyp = dy + nc * HW;
    for (int64_t p = 0; p < H; ++p) {
      const float rows = (p == 0 || p == H - 1) ? 2.0f : 3.0f;
      float* gr = g + (p + 1) * BW + 1;
      for (int64_t q = 0; q < W; ++q) {
        const float cols = (q == 0 || q == W - 1) ? 2.0f : 3.0f;
        gr[q] = dyp[p * W + q] / (rows * cols);
      }
    }
    float* dxp = dx + nc * HW;
    for (int64_t h = 0; h < H; ++h) {
      const float* a = g + h * BW;
      const float* b = a + BW;
      const float* c = b + BW;
      for (int64_t v = 0; v < W; ++v)
        dxp[h * W + v] = a[v] + a[v + 1] + a[v + 2] + b[v] + b[v + 1] + b[v + 2] + c[v] + c[v + 1] + c[v + 2];
    }
  });
}

}  // namespace

void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx) {
  check_pool(s, "avg_pool2d");
  if (bordered3x3(s)) return avg_pool2d_backward_gather(s, dy, dx);
  const int64_t P = s.P(), Q = s.Q(), HW = s.H * s.W;
  const bool fast = s.R == 3 && s.S == 3;
  const Span iq = fast ? interior3(s.W, Q, s.stride_w, s.pad_w) : Span{0, 0};
  const Span ip = fast ? interior3(s.H, P, s.stride_h, s.pad_h) : Span{0, 0};
  parallel_for(0, s.N * s.C, plane_grain(HW), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      float* dxp = dx + nc * HW;
      const float* dyp = dy + nc * P * Q;
      std::memset(dxp, 0, size_t(HW) * sizeof(float));
      auto generic = [&](int64_t p, int64_t q) {
        const Span hs = clamp_window(p * s.stride_h - s.pad_h, s.R, s.H);
        const Span ws = clamp_window(q * s.stride_w - s.pad_w, s.S, s.W);
        const float g = dyp[p * Q + q] / float((hs.hi - hs.lo) * (ws.hi - ws.lo));
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t v = ws.lo; v < ws.hi; ++v) dxp[h * s.W + v] += g;
      };
      for (int64_t p = 0; p < P; ++p) {
        if (p < ip.lo || p >= ip.hi) {
          for (int64_t q = 0; q < Q; ++q) generic(p, q);
          continue;
        }
        for (int64_t q = 0; q < iq.lo; ++q) generic(p, q);
        float* r0 = dxp + (p * s.stride_h - s.pad_h) * s.W - s.pad_w;
        const int64_t sw = s.stride_w, W = s.W;
        // Same scatter order as the generic loop (q, then the window row by row).
        for (int64_t q = iq.lo; q < iq.hi; ++q) {
          const float g = dyp[p * Q + q] / 9.0f;
          float* d = r0 + q * sw;
          d[0] += g;
          d[1] += g;
          d[2] += g;
          d[W] += g;
          d[W + 1] += g;
          d[W + 2] += g;
          d[2 * W] += g;
          d[2 * W + 1] += g;
          d[2 * W + 2] += g;
        }
        for (int64_t q = iq.hi; q < Q; ++q) generic(p, q);
      }
    }
  });
}

void global_avg_pool_forward(int64_t N, int64_t C, int64_t HW, const float* x, float* y) {
  parallel_for(0, N * C, plane_grain(HW), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      // 16 float lanes (the compiler vectorizes them without reassociating), then double.
      constexpr int kLanes = 16;
      float lane[kLanes] = {};
      const float* xp = x + nc * HW;
      int64_t i = 0;
      for (; i + kLanes <= HW; i += kLanes)
        for (int j = 0; j < kLanes; ++j) lane[j] += xp[i + j];
      double acc = 0.0;
      for (int j = 0; j < kLanes; ++j) acc += double(lane[j]);
      for (; i < HW; ++i) acc += double(xp[i]);
      y[nc] = float(acc / double(HW));
    }
  });
}

void global_avg_pool_backward(int64_t N, int64_t C, int64_t HW, const float* dy, float* dx) {
  parallel_for(0, N * C, plane_grain(HW), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const float g = dy[nc] / float(HW);
      float* dxp = dx + nc * HW;
      for (int64_t i = 0; i < HW; ++i) dxp[i] = g;
    }
  });
}

}  // namespace onnas::kernels
