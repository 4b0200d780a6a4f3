// Reference kernels: the plain loops every fast kernel in runtime/kernels/ is checked
// against. Templates on T (float or double): tests instantiate them in double to check
// each backward against central finite differences of its forward, and in float to
// check the fast kernels. Sums are carried in double whatever T is, so the float
// instantiation is a tighter yardstick than the fast kernels it judges.
//
// Same semantics and layouts as the fast kernels (conv2d.h, pool.h, batch_norm.h,
// elementwise.h, dense.h), which match PyTorch. Not tuned and not parallel on purpose.
//
// Dimension key: N batch, C input channels, H W input size, K output channels (conv) or
// classes (softmax), R S kernel or window, P Q output size, HW = H*W; I O features of a
// linear layer.
//
//   std::vector<double> y(N * K * s.P() * s.Q());
//   onnas::kernels::ref::conv2d_forward<double>(s, x.data(), w.data(), y.data());
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "runtime/error.h"
#include "runtime/kernels/batch_norm.h"
#include "runtime/kernels/conv2d.h"
#include "runtime/kernels/pool.h"

namespace onnas::kernels::ref {

// ---------------------------------------------------------------- convolution

// y[n,k,p,q] = sum over the k's group of channels c, and r, s, of
// x[n, c, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w] * w[k, c - c0, r, s].
template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, T* y) {
  const int64_t P = s.P(), Q = s.Q(), Cg = s.C / s.groups, Kg = s.K / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t c0 = (k / Kg) * Cg;
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double acc = 0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t t = 0; t < s.S; ++t) {
                const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
                const int64_t v = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (h < 0 || h >= s.H || v < 0 || v >= s.W) continue;
                acc += double(x[((n * s.C + c0 + c) * s.H + h) * s.W + v]) *
                       double(w[((k * Cg + c) * s.R + r) * s.S + t]);
              }
          y[((n * s.K + k) * P + p) * Q + q] = T(acc);
        }
    }
}

// dx = adjoint of conv2d_forward in x (overwritten).
template <typename T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const int64_t P = s.P(), Q = s.Q(), Cg = s.C / s.groups, Kg = s.K / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t ci = 0; ci < s.C; ++ci)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t v = 0; v < s.W; ++v) {
          const int64_t g = ci / Cg, c = ci - g * Cg;
          double acc = 0;
          for (int64_t k = g * Kg; k < (g + 1) * Kg; ++k)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t t = 0; t < s.S; ++t) {
                // h = p*stride_h - pad_h + r*dil_h: solve for p, which must be whole and in range.
                const int64_t ph = h + s.pad_h - r * s.dil_h, qw = v + s.pad_w - t * s.dil_w;
                if (ph < 0 || qw < 0 || ph % s.stride_h || qw % s.stride_w) continue;
                const int64_t p = ph / s.stride_h, q = qw / s.stride_w;
                if (p >= P || q >= Q) continue;
                acc += double(dy[((n * s.K + k) * P + p) * Q + q]) * double(w[((k * Cg + c) * s.R + r) * s.S + t]);
              }
          dx[((n * s.C + ci) * s.H + h) * s.W + v] = T(acc);
        }
}

// dw = adjoint of conv2d_forward in w, summed over the batch (overwritten).
template <typename T>
void conv2d_backward_weight(const Conv2dShape& s, const T* x, const T* dy, T* dw) {
  const int64_t P = s.P(), Q = s.Q(), Cg = s.C / s.groups, Kg = s.K / s.groups;
  for (int64_t k = 0; k < s.K; ++k) {
    const int64_t c0 = (k / Kg) * Cg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t) {
          double acc = 0;
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t p = 0; p < P; ++p)
              for (int64_t q = 0; q < Q; ++q) {
                const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
                const int64_t v = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (h < 0 || h >= s.H || v < 0 || v >= s.W) continue;
                acc += double(x[((n * s.C + c0 + c) * s.H + h) * s.W + v]) *
                       double(dy[((n * s.K + k) * P + p) * Q + q]);
              }
          dw[((k * Cg + c) * s.R + r) * s.S + t] = T(acc);
        }
  }
}

// ---------------------------------------------------------------- pooling

// Padding never wins: only in-bounds positions compete; the first maximum (in r, s
// order) wins ties. argmax = r * S + t within the window.
template <typename T>
void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, uint8_t* argmax) {
  const int64_t P = s.P(), Q = s.Q();
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_at = -1;
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t) {
            const int64_t h = p * s.stride_h - s.pad_h + r, v = q * s.stride_w - s.pad_w + t;
            if (h < 0 || h >= s.H || v < 0 || v >= s.W) continue;
            const T xv = x[(nc * s.H + h) * s.W + v];
            if (best_at < 0 || xv > best) best = xv, best_at = r * s.S + t;
          }
        y[(nc * P + p) * Q + q] = best;
        argmax[(nc * P + p) * Q + q] = uint8_t(best_at);
      }
}

template <typename T>
void max_pool2d_backward(const Pool2dShape& s, const T* dy, const uint8_t* argmax, T* dx) {
  const int64_t P = s.P(), Q = s.Q(), HW = s.H * s.W;
  for (int64_t i = 0; i < s.N * s.C * HW; ++i) dx[i] = 0;
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        const int64_t a = argmax[(nc * P + p) * Q + q];
        const int64_t h = p * s.stride_h - s.pad_h + a / s.S, v = q * s.stride_w - s.pad_w + a % s.S;
        dx[nc * HW + h * s.W + v] += dy[(nc * P + p) * Q + q];
      }
}

// Padding is excluded from the count (PyTorch's count_include_pad = False).
template <typename T>
void avg_pool2d_forward(const Pool2dShape& s, const T* x, T* y) {
  const int64_t P = s.P(), Q = s.Q();
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        double acc = 0;
        int64_t count = 0;
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t) {
            const int64_t h = p * s.stride_h - s.pad_h + r, v = q * s.stride_w - s.pad_w + t;
            if (h < 0 || h >= s.H || v < 0 || v >= s.W) continue;
            acc += double(x[(nc * s.H + h) * s.W + v]);
            ++count;
          }
        y[(nc * P + p) * Q + q] = T(acc / double(count));
      }
}

template <typename T>
void avg_pool2d_backward(const Pool2dShape& s, const T* dy, T* dx) {
  const int64_t P = s.P(), Q = s.Q();
  for (int64_t i = 0; i < s.N * s.C * s.H * s.W; ++i) dx[i] = 0;
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        int64_t count = 0;
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t) {
            const int64_t h = p * s.stride_h - s.pad_h + r, v = q * s.stride_w - s.pad_w + t;
            count += (h >= 0 && h < s.H && v >= 0 && v < s.W);
          }
        const T g = T(double(dy[(nc * P + p) * Q + q]) / double(count));
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t) {
            const int64_t h = p * s.stride_h - s.pad_h + r, v = q * s.stride_w - s.pad_w + t;
            if (h >= 0 && h < s.H && v >= 0 && v < s.W) dx[(nc * s.H + h) * s.W + v] += g;
          }
      }
}

template <typename T>
void global_avg_pool_forward(int64_t N, int64_t C, int64_t HW, const T* x, T* y) {
  for (int64_t nc = 0; nc < N * C; ++nc) {
    double acc = 0;
    for (int64_t i = 0; i < HW; ++i) acc += double(x[nc * HW + i]);
    y[nc] = T(acc / double(HW));
  }
}

template <typename T>
void global_avg_pool_backward(int64_t N, int64_t C, int64_t HW, const T* dy, T* dx) {
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t i = 0; i < HW; ++i) dx[nc * HW + i] = T(double(dy[nc]) / double(HW));
}

// ---------------------------------------------------------------- batch norm

// Training: biased batch variance normalizes; the running variance gets the unbiased
// one (M / (M - 1), M = N*HW), as PyTorch does. gamma/beta null: affine = false.
template <typename T>
void batch_norm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta, T* y, T* mean,
                              T* rstd, T* running_mean, T* running_var) {
  const int64_t M = s.N * s.HW;
  if (M < 2) fail("batch_norm: training needs more than one value per channel (N*H*W = {})", M);
  for (int64_t c = 0; c < s.C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) sum += double(x[(n * s.C + c) * s.HW + i]);
    const double mu = sum / double(M);
    double ss = 0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const double d = double(x[(n * s.C + c) * s.HW + i]) - mu;
        ss += d * d;
      }
    const double var = ss / double(M);
    const double rs = 1.0 / std::sqrt(var + double(s.eps));
    const double g = gamma ? double(gamma[c]) : 1.0, b = beta ? double(beta[c]) : 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t at = (n * s.C + c) * s.HW + i;
        y[at] = T((double(x[at]) - mu) * rs * g + b);
      }
    mean[c] = T(mu);
    rstd[c] = T(rs);
    const double m = double(s.momentum);
    if (running_mean) running_mean[c] = T((1 - m) * double(running_mean[c]) + m * mu);
    if (running_var) running_var[c] = T((1 - m) * double(running_var[c]) + m * var * double(M) / double(M - 1));
  }
}

template <typename T>
void batch_norm_forward_infer(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                              const T* running_mean, const T* running_var, T* y) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c) {
      const double rs = 1.0 / std::sqrt(double(running_var[c]) + double(s.eps));
      const double g = gamma ? double(gamma[c]) : 1.0, b = beta ? double(beta[c]) : 0.0;
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t at = (n * s.C + c) * s.HW + i;
        y[at] = T((double(x[at]) - double(running_mean[c])) * rs * g + b);
      }
    }
}

// With xhat = (x - mean) * rstd and M = N*HW:
//   dbeta = sum dy, dgamma = sum dy * xhat, dx = gamma * rstd / M * (M dy - dbeta - xhat dgamma).
template <typename T>
void batch_norm_backward(const BatchNormShape& s, const T* x, const T* dy, const T* gamma, const T* mean,
                         const T* rstd, T* dx, T* dgamma, T* dbeta) {
  const double M = double(s.N * s.HW);
  for (int64_t c = 0; c < s.C; ++c) {
    const double mu = double(mean[c]), rs = double(rstd[c]);
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t at = (n * s.C + c) * s.HW + i;
        sdy += double(dy[at]);
        sdyx += double(dy[at]) * (double(x[at]) - mu) * rs;
      }
    const double g = gamma ? double(gamma[c]) : 1.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t at = (n * s.C + c) * s.HW + i;
        const double xhat = (double(x[at]) - mu) * rs;
        dx[at] = T(g * rs / M * (M * double(dy[at]) - sdy - xhat * sdyx));
      }
    if (dgamma) dgamma[c] = T(sdyx);
    if (dbeta) dbeta[c] = T(sdy);
  }
}

// ---------------------------------------------------------------- elementwise

template <typename T>
void relu_forward(int64_t n, const T* x, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <typename T>
void relu_backward(int64_t n, const T* x, const T* dy, T* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void crop2d(int64_t N, int64_t C, int64_t H, int64_t W, int64_t top, int64_t left, int64_t OH, int64_t OW, const T* x,
            T* y) {
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t h = 0; h < OH; ++h)
      for (int64_t v = 0; v < OW; ++v) y[(nc * OH + h) * OW + v] = x[(nc * H + top + h) * W + left + v];
}

template <typename T>
void crop2d_backward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t top, int64_t left, int64_t OH, int64_t OW,
                     const T* dy, T* dx) {
  for (int64_t i = 0; i < N * C * H * W; ++i) dx[i] = 0;
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t h = 0; h < OH; ++h)
      for (int64_t v = 0; v < OW; ++v) dx[(nc * H + top + h) * W + left + v] = dy[(nc * OH + h) * OW + v];
}

// ---------------------------------------------------------------- dense, softmax

// y[N,O] = x[N,I] w[O,I]^T + b.
template <typename T>
void linear_forward(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* b, T* y) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double acc = b ? double(b[o]) : 0.0;
      for (int64_t i = 0; i < I; ++i) acc += double(x[n * I + i]) * double(w[o * I + i]);
      y[n * O + o] = T(acc);
    }
}

template <typename T>
void linear_backward(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  if (dx)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < I; ++i) {
        double acc = 0;
        for (int64_t o = 0; o < O; ++o) acc += double(dy[n * O + o]) * double(w[o * I + i]);
        dx[n * I + i] = T(acc);
      }
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) acc += double(dy[n * O + o]) * double(x[n * I + i]);
      dw[o * I + i] = T(acc);
    }
  if (db)
    for (int64_t o = 0; o < O; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) acc += double(dy[n * O + o]);
      db[o] = T(acc);
    }
}

template <typename T>
void softmax_forward(int64_t rows, int64_t n, const T* x, T* y) {
  for (int64_t r = 0; r < rows; ++r) {
    double mx = double(x[r * n]);
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(x[r * n + i]));
    double z = 0;
    for (int64_t i = 0; i < n; ++i) z += std::exp(double(x[r * n + i]) - mx);
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = T(std::exp(double(x[r * n + i]) - mx) / z);
  }
}

template <typename T>
void softmax_backward(int64_t rows, int64_t n, const T* y, const T* dy, T* dx) {
  for (int64_t r = 0; r < rows; ++r) {
    double d = 0;
    for (int64_t i = 0; i < n; ++i) d += double(dy[r * n + i]) * double(y[r * n + i]);
    for (int64_t i = 0; i < n; ++i) dx[r * n + i] = T(double(y[r * n + i]) * (double(dy[r * n + i]) - d));
  }
}

// Mean over rows of log(sum exp(logits - max)) + max - logits[label].
template <typename T>
T softmax_xent_forward(int64_t N, int64_t K, const T* logits, const int32_t* labels, T* probs) {
  double loss = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (labels[r] < 0 || labels[r] >= K)
      fail("softmax_xent: row {} has label {}, expected a class in [0, {})", r, labels[r], K);
    const T* z = logits + r * K;
    double mx = double(z[0]);
    for (int64_t i = 1; i < K; ++i) mx = std::max(mx, double(z[i]));
    double sum = 0;
    for (int64_t i = 0; i < K; ++i) sum += std::exp(double(z[i]) - mx);
    for (int64_t i = 0; i < K; ++i) probs[r * K + i] = T(std::exp(double(z[i]) - mx) / sum);
    loss += std::log(sum) + mx - double(z[labels[r]]);
  }
  return T(loss / double(N));
}

template <typename T>
void softmax_xent_backward(int64_t N, int64_t K, const T* probs, const int32_t* labels, T dloss, T* dlogits) {
  const double g = double(dloss) / double(N);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < K; ++i)
      dlogits[r * K + i] = T((double(probs[r * K + i]) - (i == labels[r] ? 1.0 : 0.0)) * g);
}

}  // namespace onnas::kernels::ref
