// Depthwise convolution loops, compiled three times: baseline x86-64
// (conv2d_depthwise.cc), AVX2+FMA (conv2d_depthwise_avx2.cc) and AVX-512
// (conv2d_depthwise_avx512.cc). Each file defines ONNAS_DW_ISA (the namespace of its
// entry points) and includes this header; the loops are written so the compiler
// vectorizes them for whatever flags the file has. conv2d_depthwise.cc picks one at
// run time with onnas::active_isa().
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
#undef ONNAS_DW_DECLARE

}  // namespace onnas::kernels::depthwise

#ifdef ONNAS_DW_ISA
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
  if (a.sw == 1)
    forward_by_taps<1>(a, x, w, y, lo, hi);
  else if (a.sw == 2)
    forward_by_taps<2>(a, x, w, y, lo, hi);
  else
    forward_by_taps<0>(a, x, w, y, lo, hi);
}

void backward_data(const Args& a, const float* dy, const float* w, float* dx, int64_t lo, int64_t hi) {
  if (a.sw == 1)
    backward_data_planes<1>(a, dy, w, dx, lo, hi);
  else
    backward_data_planes<0>(a, dy, w, dx, lo, hi);
}

void backward_weight(const Args& a, int64_t N, const float* x, const float* dy, float* dw, int64_t lo, int64_t hi) {
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
