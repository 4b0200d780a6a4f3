// Batch normalization over (N, HW) per channel, NCHW.
//
// Dimension key: N batch, C channels, HW = H*W; M = N*HW values per channel.
//
// Training and backward are parallel over channels: one task owns a channel, sums its
// N planes in order (16 float lanes per plane, planes combined in double), then writes
// that channel's outputs. No per-call storage for the per-channel sums is needed, and
// the sums do not depend on the thread count. Inference is parallel over the N*C planes.
#include "runtime/kernels/batch_norm.h"

#include <cmath>

#include "runtime/error.h"
#include "runtime/threading.h"

namespace onnas::kernels {
namespace {

constexpr int kLanes = 16;

// kLanes float lanes as four 4-float vectors (the compiler's vector extension, which any
// target lowers to its registers): written as plain arrays, the lanes were vectorized
// with shuffles and stack spills and the moments ran at a seventh of memory speed.
typedef float Vec4 __attribute__((vector_size(4 * sizeof(float))));
constexpr int kVecs = kLanes / 4;

inline Vec4 load4(const float* p) {
  Vec4 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// sum(x - shift) and sum((x - shift)^2) over one plane, lane j summing the elements
// i = j mod kLanes in order, the lanes folded into double in lane order.
struct Moments {
  double s1 = 0, s2 = 0;
};
Moments plane_moments(const float* x, int64_t HW, float shift) {
  Vec4 l1[kVecs] = {}, l2[kVecs] = {};
  const Vec4 sh = {shift, shift, shift, shift};
  int64_t i = 0;
  for (; i + kLanes <= HW; i += kLanes)
    for (int v = 0; v < kVecs; ++v) {
      const Vec4 d = load4(x + i + 4 * v) - sh;
      l1[v] += d;
      l2[v] += d * d;
    }
  Moments m;
  for (int v = 0; v < kVecs; ++v)
    for (int l = 0; l < 4; ++l) m.s1 += double(l1[v][l]), m.s2 += double(l2[v][l]);
  for (; i < HW; ++i) {
    const double d = double(x[i]) - double(shift);
    m.s1 += d, m.s2 += d * d;
  }
  return m;
}

// sum(dy) and sum(dy * (x - mean)) over one plane, lanes as above.
Moments plane_grad_sums(const float* x, const float* dy, int64_t HW, float mean) {
  Vec4 l1[kVecs] = {}, l2[kVecs] = {};
  const Vec4 mv = {mean, mean, mean, mean};
  int64_t i = 0;
  for (; i + kLanes <= HW; i += kLanes)
    for (int v = 0; v < kVecs; ++v) {
      const Vec4 g = load4(dy + i + 4 * v);
      l1[v] += g;
      l2[v] += g * (load4(x + i + 4 * v) - mv);
    }
  Moments m;
  for (int v = 0; v < kVecs; ++v)
    for (int l = 0; l < 4; ++l) m.s1 += double(l1[v][l]), m.s2 += double(l2[v][l]);
  for (; i < HW; ++i) m.s1 += double(dy[i]), m.s2 += double(dy[i]) * (double(x[i]) - double(mean));
  return m;
}

inline void store4(float* p, Vec4 v) { __builtin_memcpy(p, &v, sizeof v); }

// y = x * a + b over one plane, kLanes floats a step. y may be x (evaluation runs in
// place: the op marks y as x's place): each vector is read before it is written.
void plane_affine(const float* x, float* y, int64_t HW, float a, float b) {
  const Vec4 va = {a, a, a, a}, vb = {b, b, b, b};
  int64_t i = 0;
  for (; i + kLanes <= HW; i += kLanes) {
    Vec4 v[kVecs];
    for (int k = 0; k < kVecs; ++k) v[k] = load4(x + i + 4 * k);
    for (int k = 0; k < kVecs; ++k) store4(y + i + 4 * k, v[k] * va + vb);
  }
  for (; i < HW; ++i) y[i] = x[i] * a + b;
}

}  // namespace

void batch_norm_forward_train(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                              float* y, float* mean, float* rstd, float* running_mean, float* running_var) {
  const int64_t M = s.N * s.HW;
  if (M < 2) fail("batch_norm: training needs more than one value per channel (N*H*W = {})", M);
  parallel_for(0, s.C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      // Sums are taken about the channel's first value: a shift near the mean keeps
      // sum(d^2) - sum(d)^2/M free of cancellation even when |mean| >> std.
      const float shift = x[c * s.HW];
      double s1 = 0, s2 = 0;
      for (int64_t n = 0; n < s.N; ++n) {
        const Moments m = plane_moments(x + (n * s.C + c) * s.HW, s.HW, shift);
        s1 += m.s1, s2 += m.s2;
      }
      const double dmean = s1 / double(M);
      double var = s2 / double(M) - dmean * dmean;  // biased: what normalizes
      if (var < 0) var = 0;
      const double mu = double(shift) + dmean;
      const double rs = 1.0 / std::sqrt(var + double(s.eps));
      mean[c] = float(mu);
      rstd[c] = float(rs);
      const double m = double(s.momentum);
      if (running_mean) running_mean[c] = float((1 - m) * double(running_mean[c]) + m * mu);
      if (running_var)
        running_var[c] = float((1 - m) * double(running_var[c]) + m * var * double(M) / double(M - 1));
      const double g = gamma ? double(gamma[c]) : 1.0, b = beta ? double(beta[c]) : 0.0;
      const float a = float(g * rs), off = float(b - mu * g * rs);
      for (int64_t n = 0; n < s.N; ++n) plane_affine(x + (n * s.C + c) * s.HW, y + (n * s.C + c) * s.HW, s.HW, a, off);
    }
  });
}

void batch_norm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float* y) {
  const int64_t grain = s.HW >= 8192 ? 1 : 8192 / (s.HW > 0 ? s.HW : 1);
  parallel_for(0, s.N * s.C, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const int64_t c = nc % s.C;
      const double rs = 1.0 / std::sqrt(double(running_var[c]) + double(s.eps));
      const double g = gamma ? double(gamma[c]) : 1.0, b = beta ? double(beta[c]) : 0.0;
      plane_affine(x + nc * s.HW, y + nc * s.HW, s.HW, float(g * rs), float(b - double(running_mean[c]) * g * rs));
    }
  });
}

namespace {

// dx = k_dy * dy + k_v * (v - centre) + k_0 over one plane, kLanes floats a step; dx may
// be dy (each vector is read before it is written).
void plane_backward(const float* v, const float* dy, float* dx, int64_t HW, float k_dy, float k_v, float centre,
                    float k_0) {
  const Vec4 a = {k_dy, k_dy, k_dy, k_dy}, b = {k_v, k_v, k_v, k_v}, c = {centre, centre, centre, centre},
             z = {k_0, k_0, k_0, k_0};
  int64_t i = 0;
  for (; i + kLanes <= HW; i += kLanes) {
    Vec4 out[kVecs];
    for (int k = 0; k < kVecs; ++k) out[k] = a * load4(dy + i + 4 * k) + b * (load4(v + i + 4 * k) - c) + z;
    for (int k = 0; k < kVecs; ++k) store4(dx + i + 4 * k, out[k]);
  }
  for (; i < HW; ++i) dx[i] = k_dy * dy[i] + k_v * (v[i] - centre) + k_0;
}

// dbeta = sum dy, dgamma = sum dy * xhat, dx = gamma * rstd / M * (M dy - dbeta - xhat dgamma),
// written as dx = k_dy * dy + k_v * (v - centre) + k_0, where v holds xhat up to a
// per-channel centre and scale: xhat = (v - centre) * v_scale, with (v, centre,
// v_scale) = (x, mean, rstd), or (y, 0, 1) when v is the output itself (mean null).
// dx may be dy (in place): each element is read before it is written.
void backward_channels(const BatchNormShape& s, const float* v, const float* dy, const float* gamma,
                       const float* mean, const float* rstd, float* dx, float* dgamma, float* dbeta) {
  const double M = double(s.N * s.HW);
  parallel_for(0, s.C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const float centre = mean ? mean[c] : 0.0f;
      const double rs = double(rstd[c]), v_scale = mean ? rs : 1.0;
      double sdy = 0, sdyvc = 0;
      for (int64_t n = 0; n < s.N; ++n) {
        const int64_t at = (n * s.C + c) * s.HW;
        const Moments m = plane_grad_sums(v + at, dy + at, s.HW, centre);
        sdy += m.s1, sdyvc += m.s2;
      }
      const double sdyx = sdyvc * v_scale;  // sum dy * xhat
      if (dgamma) dgamma[c] = float(sdyx);
      if (dbeta) dbeta[c] = float(sdy);
      const double g = gamma ? double(gamma[c]) : 1.0;
      const float k_dy = float(g * rs), k_v = float(-g * rs * v_scale * sdyx / M), k_0 = float(-g * rs * sdy / M);
      for (int64_t n = 0; n < s.N; ++n) {
        const int64_t at = (n * s.C + c) * s.HW;
        const float* vp = v + at;
        const float* dyp = dy + at;
        float* dxp = dx + at;
        plane_backward(vp, dyp, dxp, s.HW, k_dy, k_v, centre, k_0);
      }
    }
  });
}

}  // namespace

void batch_norm_backward(const BatchNormShape& s, const float* x, const float* dy, const float* gamma,
                         const float* mean, const float* rstd, float* dx, float* dgamma, float* dbeta) {
  backward_channels(s, x, dy, gamma, mean, rstd, dx, dgamma, dbeta);
}

void batch_norm_backward_from_output(const BatchNormShape& s, const float* y, const float* dy, const float* rstd,
                                     float* dx) {
  backward_channels(s, y, dy, nullptr, nullptr, rstd, dx, nullptr, nullptr);
}

}  // namespace onnas::kernels
