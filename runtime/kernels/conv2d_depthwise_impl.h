// Depthwise convolution loops, compiled once per ISA of the build: the target's baseline
// (conv2d_depthwise.cc, every build), AVX2+FMA (conv2d_depthwise_avx2.cc) and AVX-512
// (conv2d_depthwise_avx512.cc) on x86-64, NEON (conv2d_depthwise_neon.cc) on aarch64.
// Each file defines ONNAS_DW_ISA (the namespace of its entry points) and includes this
// header; the loops are written so the compiler vectorizes them for whatever flags the
// file has. conv2d_depthwise.cc picks one at run time with onnas::active_isa(). The
// plain reference they are tested against is ref::conv2d_* in reference.h.
//
// Dimension key: N batch, C channels (= K = groups), H W input, P Q output, R S kernel,
// sh sw stride, ph pw pad, dh dw dilation. A plane is one (n, c) image channel.
//
// Why the odd shape of this file: code compiled with -mavx512f must not leak into the
// baseline build. Everything here is either internal linkage (anonymous namespace) or
// an entry point with an ISA-specific name, and nothing calls std:: templates or inline
// functions from other headers (the linker could keep the AVX-512 copy of such a
// function for everyone).
#pragma once

#include <cstdint>

namespace onnas::kernels {
struct Conv2dShape;
}

namespace onnas::kernels::depthwise {

// What conv2d.cc calls for a depthwise shape: the run-time ISA choice and the parallel
// split over planes (forward, backward data) or channels (backward weight).
void run_forward(const Conv2dShape& s, const float* x, const float* w, float* y);
void run_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void run_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw);

// Everything the loops need, computed by the baseline caller (Conv2dShape's inline
// members are not called from ISA-specific code, see above).
struct Args {
  int64_t C, H, W, P, Q, R, S;
  int64_t sh, sw, ph, pw, dh, dw;
};

// Planes [lo, hi) of y[N*C, P, Q] from x[N*C, H, W] and w[C, R, S] (overwritten).
// Backward data: planes [lo, hi) of dx (overwritten). Backward weight: channels
// [lo, hi) of dw, summed over the batch in order n = 0, 1, ... (overwritten).
#define ONNAS_DW_DECLARE(isa)                                                                            \
  namespace isa {                                                                                        \
  void forward(const Args& a, const float* x, const float* w, float* y, int64_t lo, int64_t hi);         \
  void backward_data(const Args& a, const float* dy, const float* w, float* dx, int64_t lo, int64_t hi); \
  void backward_weight(const Args& a, int64_t N, const float* x, const float* dy, float* dw, int64_t lo, \
                       int64_t hi);                                                                      \
  }
ONNAS_DW_DECLARE(baseline)
ONNAS_DW_DECLARE(avx2)
ONNAS_DW_DECLARE(avx512)
ONNAS_DW_DECLARE(neon)
#undef ONNAS_DW_DECLARE

}  // namespace onnas::kernels::depthwise

#ifdef ONNAS_DW_ISA
#include "runtime/kernels/short_copy.h"

namespace onnas::kernels::depthwise {
namespace {

// The output columns [qa, qb) whose whole kernel row lands inside the input row; only
// the columns outside need bounds checks.
struct Interior {
  int64_t qa, qb;
};

Interior interior(const Args& a) {
  int64_t qa = (a.pw + a.sw - 1) / a.sw;
  const int64_t last = a.W - 1 + a.pw - (a.S - 1) * a.dw;  // q*sw <= last
  int64_t qb = last < 0 ? 0 : last / a.sw + 1;
  if (qa > a.Q) qa = a.Q;
  if (qb > a.Q) qb = a.Q;
  if (qb < qa) qb = qa;
  return {qa, qb};
}

// yr[q] += sum_s wr[s] * xr[q*ST + s*dw - pw] over interior columns; ST and KS known at
// compile time for the common cases (stride 1/2, 3 or 5 taps) so the loop vectorizes.
template <int ST, int KS>
void row_fwd(const float* __restrict xr, const float* __restrict wr, float* __restrict yr, int64_t qa, int64_t qb,
             int64_t pw, int64_t dw, int64_t stride, int64_t S) {
  const int64_t st = ST > 0 ? ST : stride;
  if constexpr (KS == 3) {
    const float w0 = wr[0], w1 = wr[1], w2 = wr[2];
    const float* x0 = xr - pw;
    const float* x1 = x0 + dw;
    const float* x2 = x1 + dw;
    for (int64_t q = qa; q < qb; ++q) yr[q] += w0 * x0[q * st] + w1 * x1[q * st] + w2 * x2[q * st];
  } else if constexpr (KS == 5) {
    const float w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3], w4 = wr[4];
    const float* x0 = xr - pw;
    for (int64_t q = qa; q < qb; ++q) {
      const float* xq = x0 + q * st;
      yr[q] += w0 * xq[0] + w1 * xq[dw] + w2 * xq[2 * dw] + w3 * xq[3 * dw] + w4 * xq[4 * dw];
    }
  } else {
    for (int64_t s = 0; s < S; ++s) {
      const float ws = wr[s];
      const float* xs = xr - pw + s * dw;
      for (int64_t q = qa; q < qb; ++q) yr[q] += ws * xs[q * st];
    }
  }
}

template <int ST, int KS>
void forward_planes(const Args& a, const float* x, const float* w, float* y, int64_t lo, int64_t hi) {
  const Interior in = interior(a);
  for (int64_t nc = lo; nc < hi; ++nc) {
    const float* xp = x + nc * a.H * a.W;
    const float* wp = w + (nc % a.C) * a.R * a.S;
    float* yp = y + nc * a.P * a.Q;
    for (int64_t p = 0; p < a.P; ++p) {
      float* yr = yp + p * a.Q;
      for (int64_t q = 0; q < a.Q; ++q) yr[q] = 0.0f;
      for (int64_t r = 0; r < a.R; ++r) {
        const int64_t h = p * a.sh - a.ph + r * a.dh;
        if (h < 0 || h >= a.H) continue;
        const float* xr = xp + h * a.W;
        const float* wr = wp + r * a.S;
        row_fwd<ST, KS>(xr, wr, yr, in.qa, in.qb, a.pw, a.dw, a.sw, a.S);
        // Border columns: some taps fall into the padding.
        for (int64_t q = 0; q < a.Q; ++q) {
          if (q == in.qa) q = in.qb;
          if (q >= a.Q) break;
          float acc = 0.0f;
          for (int64_t s = 0; s < a.S; ++s) {
            const int64_t v = q * a.sw - a.pw + s * a.dw;
            if (v >= 0 && v < a.W) acc += wr[s] * xr[v];
          }
          yr[q] += acc;
        }
      }
    }
  }
}

// Scatter form: every dy[p, q] adds w[r, s] * dy into the input position it came from.
// One pass per tap keeps the stride-1 stores contiguous (vectorizable).
template <int ST>
void backward_data_planes(const Args& a, const float* dy, const float* w, float* dx, int64_t lo, int64_t hi) {
  const Interior in = interior(a);
  const int64_t st = ST > 0 ? ST : a.sw;
  for (int64_t nc = lo; nc < hi; ++nc) {
    const float* dyp = dy + nc * a.P * a.Q;
    const float* wp = w + (nc % a.C) * a.R * a.S;
    float* dxp = dx + nc * a.H * a.W;
    for (int64_t i = 0; i < a.H * a.W; ++i) dxp[i] = 0.0f;
    for (int64_t p = 0; p < a.P; ++p) {
      const float* __restrict dyr = dyp + p * a.Q;
      for (int64_t r = 0; r < a.R; ++r) {
        const int64_t h = p * a.sh - a.ph + r * a.dh;
        if (h < 0 || h >= a.H) continue;
        float* __restrict dxr = dxp + h * a.W;
        for (int64_t s = 0; s < a.S; ++s) {
          const float ws = wp[r * a.S + s];
          float* __restrict dxs = dxr - a.pw + s * a.dw;
          for (int64_t q = in.qa; q < in.qb; ++q) dxs[q * st] += ws * dyr[q];
          for (int64_t q = 0; q < a.Q; ++q) {
            if (q == in.qa) q = in.qb;
            if (q >= a.Q) break;
            const int64_t v = q * a.sw - a.pw + s * a.dw;
            if (v >= 0 && v < a.W) dxr[v] += ws * dyr[q];
          }
        }
      }
    }
  }
}

// dw[c, r, s] = sum over n, p, q of dy[n, c, p, q] * x[n, c, h, v]. Per tap, columns are
// summed lane-wise into a small stack row (vectorizable, no float reassociation needed)
// over all (n, p) in order, then the row is summed in double: a fixed order, so the
// result is the same for any thread count.
constexpr int64_t kColBlock = 256;

template <int ST>
void backward_weight_channels(const Args& a, int64_t N, const float* x, const float* dy, float* dw, int64_t lo,
                              int64_t hi) {
  const Interior in = interior(a);
  const int64_t st = ST > 0 ? ST : a.sw;
  float lane[kColBlock];
  for (int64_t c = lo; c < hi; ++c) {
    for (int64_t r = 0; r < a.R; ++r)
      for (int64_t s = 0; s < a.S; ++s) {
        double total = 0.0;
        // Interior columns in blocks, vectorized.
        for (int64_t q0 = in.qa; q0 < in.qb; q0 += kColBlock) {
          const int64_t len = in.qb - q0 < kColBlock ? in.qb - q0 : kColBlock;
          for (int64_t j = 0; j < len; ++j) lane[j] = 0.0f;
          for (int64_t n = 0; n < N; ++n) {
            const float* xp = x + (n * a.C + c) * a.H * a.W;
            const float* dyp = dy + (n * a.C + c) * a.P * a.Q;
            for (int64_t p = 0; p < a.P; ++p) {
              const int64_t h = p * a.sh - a.ph + r * a.dh;
              if (h < 0 || h >= a.H) continue;
              const float* __restrict xs = xp + h * a.W - a.pw + s * a.dw + q0 * st;
              const float* __restrict dyr = dyp + p * a.Q + q0;
              float* __restrict l = lane;
              for (int64_t j = 0; j < len; ++j) l[j] += dyr[j] * xs[j * st];
            }
          }
          double block = 0.0;
          for (int64_t j = 0; j < len; ++j) block += double(lane[j]);
          total += block;
        }
        // Border columns, scalar.
        double border = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          const float* xp = x + (n * a.C + c) * a.H * a.W;
          const float* dyp = dy + (n * a.C + c) * a.P * a.Q;
          for (int64_t p = 0; p < a.P; ++p) {
            const int64_t h = p * a.sh - a.ph + r * a.dh;
            if (h < 0 || h >= a.H) continue;
            for (int64_t q = 0; q < a.Q; ++q) {
              if (q == in.qa) q = in.qb;
              if (q >= a.Q) break;
              const int64_t v = q * a.sw - a.pw + s * a.dw;
              if (v >= 0 && v < a.W) border += double(dyp[p * a.Q + q]) * double(xp[h * a.W + v]);
            }
          }
        }
        dw[(c * a.R + r) * a.S + s] = float(total + border);
      }
  }
}

// ---- Padded-plane paths: the fast ones for the planes the search produces.
//
// The plane is copied once into a zero-bordered stack buffer, so no tap ever needs a
// bounds check; every output is then one fused sum over the R*S taps. With equal
// strides on both axes the output is computed "wide" (row pitch = the padded width, the
// extra columns are discarded), which turns the whole plane into one long loop: it
// vectorizes even on a 7x7 map, where a row is shorter than a vector. Planes larger
// than the buffers take the generic loops above.
constexpr int64_t kPlaneFloats = 8192;  // 32 KiB per buffer: L1-sized, safe on a worker's stack
constexpr int64_t kMaxTaps = 81;        // up to 9x9 kernels

// y[i] (= when FIRST, else +=) sum over k < G of w[k] * x[i*ST + off[k]], i < n.
template <int G, int ST, bool FIRST>
void tap_group(float* __restrict y, const float* __restrict x, const float* w, const int64_t* off, int64_t n,
               int64_t stride) {
  const int64_t st = ST > 0 ? ST : stride;
  float wk[G];
  int64_t ok[G];
  for (int k = 0; k < G; ++k) wk[k] = w[k], ok[k] = off[k];
  for (int64_t i = 0; i < n; ++i) {
    float acc = FIRST ? 0.0f : y[i];
    for (int k = 0; k < G; ++k) acc += wk[k] * x[i * st + ok[k]];
    y[i] = acc;
  }
}

template <int G, int ST>
void run_group(bool first, float* y, const float* x, const float* w, const int64_t* off, int64_t n, int64_t stride) {
  if (first)
    tap_group<G, ST, true>(y, x, w, off, n, stride);
  else
    tap_group<G, ST, false>(y, x, w, off, n, stride);
}

// y[i] = sum over all T taps, in groups of 9 / 5 / 3 / 1 the compiler fuses and unrolls.
template <int ST>
void apply_taps(float* y, const float* x, const float* w, const int64_t* off, int64_t T, int64_t n, int64_t stride) {
  int64_t k = 0;
  for (; T - k >= 9; k += 9) run_group<9, ST>(k == 0, y, x, w + k, off + k, n, stride);
  for (; T - k >= 5; k += 5) run_group<5, ST>(k == 0, y, x, w + k, off + k, n, stride);
  for (; T - k >= 3; k += 3) run_group<3, ST>(k == 0, y, x, w + k, off + k, n, stride);
  for (; T - k >= 1; k += 1) run_group<1, ST>(k == 0, y, x, w + k, off + k, n, stride);
}

// Copies plane src[H, W] into the interior of buf[Hp, Wp] at (top, left); the border
// of buf is zeroed by the caller once and never written.
void copy_into(float* buf, int64_t Wp, int64_t top, int64_t left, const float* src, int64_t H, int64_t W) {
  for (int64_t h = 0; h < H; ++h) {
    float* __restrict d = buf + (top + h) * Wp + left;
    const float* __restrict s = src + h * W;
    copy_floats(d, s, W);
  }
}

void zero(float* buf, int64_t n) {
  for (int64_t i = 0; i < n; ++i) buf[i] = 0.0f;
}

bool padded_forward(const Args& a, const float* x, const float* w, float* y, int64_t lo, int64_t hi) {
  const int64_t Hp = a.H + 2 * a.ph, Wp = a.W + 2 * a.pw, T = a.R * a.S;
  // Output "wide" with pitch Wp: y[p*Wp + q] reads x[st*(p*Wp + q) + tap offset] when the
  // stride is the same on both axes, so the whole plane is one loop. For stride st > 1
  // the columns q >= Q of each row are extra work ((st - 1) / st of it wasted), still
  // faster than rows shorter than a vector.
  const bool wide = a.sh == a.sw;
  if (Hp * Wp > kPlaneFloats || T > kMaxTaps || (wide && a.P * Wp > kPlaneFloats)) return false;
  alignas(64) float xpad[kPlaneFloats];
  alignas(64) float ywide[kPlaneFloats];
  int64_t off[kMaxTaps];
  for (int64_t r = 0; r < a.R; ++r)
    for (int64_t s = 0; s < a.S; ++s) off[r * a.S + s] = r * a.dh * Wp + s * a.dw;
  zero(xpad, Hp * Wp);
  for (int64_t nc = lo; nc < hi; ++nc) {
    copy_into(xpad, Wp, a.ph, a.pw, x + nc * a.H * a.W, a.H, a.W);
    const float* wk = w + (nc % a.C) * T;
    float* yp = y + nc * a.P * a.Q;
    if (wide) {
      const int64_t n = (a.P - 1) * Wp + a.Q;
      if (a.sw == 1)
        apply_taps<1>(ywide, xpad, wk, off, T, n, 1);
      else if (a.sw == 2)
        apply_taps<2>(ywide, xpad, wk, off, T, n, 2);
      else
        apply_taps<0>(ywide, xpad, wk, off, T, n, a.sw);
      for (int64_t p = 0; p < a.P; ++p)
        copy_floats(yp + p * a.Q, ywide + p * Wp, a.Q);
    } else if (a.sw == 2) {
      for (int64_t p = 0; p < a.P; ++p) apply_taps<2>(yp + p * a.Q, xpad + p * a.sh * Wp, wk, off, T, a.Q, 2);
    } else {
      for (int64_t p = 0; p < a.P; ++p) apply_taps<0>(yp + p * a.Q, xpad + p * a.sh * Wp, wk, off, T, a.Q, a.sw);
    }
  }
  return true;
}

// dx is a stride-1 correlation, with the flipped kernel, of dy spread onto a zero grid
// D: dy[p, q] sits at (p*sh + oh, q*sw + ow), oh = (R-1)*dh - ph, ow = (S-1)*dw - pw, and
// dx[h, v] = sum over r, s of w[r, s] * D[h + (R-1-r)*dh, v + (S-1-s)*dw]. Entries of dy
// that land outside D only ever touched padding.
bool padded_backward_data(const Args& a, const float* dy, const float* w, float* dx, int64_t lo, int64_t hi) {
  const int64_t Hb = a.H + (a.R - 1) * a.dh, Wb = a.W + (a.S - 1) * a.dw, T = a.R * a.S;
  if (Hb * Wb > kPlaneFloats || T > kMaxTaps || a.H * Wb > kPlaneFloats) return false;
  alignas(64) float grid[kPlaneFloats];
  alignas(64) float dxwide[kPlaneFloats];
  int64_t off[kMaxTaps];
  float wf[kMaxTaps];
  for (int64_t r = 0; r < a.R; ++r)
    for (int64_t s = 0; s < a.S; ++s) off[r * a.S + s] = (a.R - 1 - r) * a.dh * Wb + (a.S - 1 - s) * a.dw;
  const int64_t oh = (a.R - 1) * a.dh - a.ph, ow = (a.S - 1) * a.dw - a.pw;
  zero(grid, Hb * Wb);  // positions written below are the same for every plane
  for (int64_t nc = lo; nc < hi; ++nc) {
    const float* dyp = dy + nc * a.P * a.Q;
    for (int64_t p = 0; p < a.P; ++p) {
      const int64_t gh = p * a.sh + oh;
      if (gh < 0 || gh >= Hb) continue;
      if (a.sw == 1 && ow >= 0 && ow + a.Q <= Wb) {  // the whole row lands inside the grid
        copy_floats(grid + gh * Wb + ow, dyp + p * a.Q, a.Q);
        continue;
      }
      for (int64_t q = 0; q < a.Q; ++q) {
        const int64_t gv = q * a.sw + ow;
        if (gv >= 0 && gv < Wb) grid[gh * Wb + gv] = dyp[p * a.Q + q];
      }
    }
    const float* wk = w + (nc % a.C) * T;
    for (int64_t k = 0; k < T; ++k) wf[k] = wk[k];
    apply_taps<1>(dxwide, grid, wf, off, T, (a.H - 1) * Wb + a.W, 1);
    float* dxp = dx + nc * a.H * a.W;
    for (int64_t h = 0; h < a.H; ++h)
      copy_floats(dxp + h * a.W, dxwide + h * Wb, a.W);
  }
  return true;
}

// dw[k] = sum over planes of the dot of a grid holding dy[p, q] at (p*sh, q*sw) (pitch
// Wp, zeros elsewhere) with the padded x shifted by the tap's offset: one contiguous,
// vectorizable dot per tap, at the price of sh*sw times the multiplies for strided
// convs. 16 float lanes per plane, folded into double per plane, planes in order
// n = 0, 1, ..., so the result does not depend on the thread count.
bool padded_backward_weight(const Args& a, int64_t N, const float* x, const float* dy, float* dw, int64_t lo,
                            int64_t hi) {
  const int64_t Hp = a.H + 2 * a.ph, Wp = a.W + 2 * a.pw, T = a.R * a.S;
  const int64_t grid_rows = (a.P - 1) * a.sh + 1;
  if (Hp * Wp > kPlaneFloats || grid_rows * Wp > kPlaneFloats || T > kMaxTaps) return false;
  alignas(64) float xpad[kPlaneFloats];
  alignas(64) float dywide[kPlaneFloats];
  int64_t off[kMaxTaps];
  double acc[kMaxTaps];
  for (int64_t r = 0; r < a.R; ++r)
    for (int64_t s = 0; s < a.S; ++s) off[r * a.S + s] = r * a.dh * Wp + s * a.dw;
  const int64_t n_flat = (a.P - 1) * a.sh * Wp + (a.Q - 1) * a.sw + 1;
  constexpr int kLanes = 16;
  zero(xpad, Hp * Wp);
  zero(dywide, grid_rows * Wp);  // positions written below are the same for every plane
  for (int64_t c = lo; c < hi; ++c) {
    for (int64_t k = 0; k < T; ++k) acc[k] = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      copy_into(xpad, Wp, a.ph, a.pw, x + (n * a.C + c) * a.H * a.W, a.H, a.W);
      const float* dyp = dy + (n * a.C + c) * a.P * a.Q;
      for (int64_t p = 0; p < a.P; ++p) {
        if (a.sw == 1) {
          copy_floats(dywide + p * a.sh * Wp, dyp + p * a.Q, a.Q);
          continue;
        }
        for (int64_t q = 0; q < a.Q; ++q) dywide[p * a.sh * Wp + q * a.sw] = dyp[p * a.Q + q];
      }
      for (int64_t k = 0; k < T; ++k) {
        const float* __restrict xs = xpad + off[k];
        const float* __restrict g = dywide;
        float lane[kLanes] = {};
        int64_t i = 0;
        for (; i + kLanes <= n_flat; i += kLanes)
          for (int j = 0; j < kLanes; ++j) lane[j] += g[i + j] * xs[i + j];
        double plane = 0.0;
        for (int j = 0; j < kLanes; ++j) plane += double(lane[j]);
        for (; i < n_flat; ++i) plane += double(g[i]) * double(xs[i]);
        acc[k] += plane;
      }
    }
    for (int64_t k = 0; k < T; ++k) dw[c * T + k] = float(acc[k]);
  }
  return true;
}

template <int ST>
void forward_by_taps(const Args& a, const float* x, const float* w, float* y, int64_t lo, int64_t hi) {
  if (a.S == 3)
    forward_planes<ST, 3>(a, x, w, y, lo, hi);
  else if (a.S == 5)
    forward_planes<ST, 5>(a, x, w, y, lo, hi);
  else
    forward_planes<ST, 0>(a, x, w, y, lo, hi);
}

}  // namespace

namespace ONNAS_DW_ISA {

void forward(const Args& a, const float* x, const float* w, float* y, int64_t lo, int64_t hi) {
  if (padded_forward(a, x, w, y, lo, hi)) return;
  if (a.sw == 1)
    forward_by_taps<1>(a, x, w, y, lo, hi);
  else if (a.sw == 2)
    forward_by_taps<2>(a, x, w, y, lo, hi);
  else
    forward_by_taps<0>(a, x, w, y, lo, hi);
}

void backward_data(const Args& a, const float* dy, const float* w, float* dx, int64_t lo, int64_t hi) {
  if (padded_backward_data(a, dy, w, dx, lo, hi)) return;
  if (a.sw == 1)
    backward_data_planes<1>(a, dy, w, dx, lo, hi);
  else
    backward_data_planes<0>(a, dy, w, dx, lo, hi);
}

void backward_weight(const Args& a, int64_t N, const float* x, const float* dy, float* dw, int64_t lo, int64_t hi) {
  if (padded_backward_weight(a, N, x, dy, dw, lo, hi)) return;
  if (a.sw == 1)
    backward_weight_channels<1>(a, N, x, dy, dw, lo, hi);
  else if (a.sw == 2)
    backward_weight_channels<2>(a, N, x, dy, dw, lo, hi);
  else
    backward_weight_channels<0>(a, N, x, dy, dw, lo, hi);
}

}  // namespace ONNAS_DW_ISA
}  // namespace onnas::kernels::depthwise
#endif  // ONNAS_DW_ISA
