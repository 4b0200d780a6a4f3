// Linear layer through SGEMM, softmax, softmax cross-entropy.
//
// Dimension key: N batch (rows), I input features, O output features, K classes,
// n softmax width. Weight [O, I] as in PyTorch.
//
// The batch here is small (tens of rows, ten classes), so softmax and cross-entropy
// work row by row; the loss sums rows in order in double, hence does not depend on
// the thread count, and db sums rows in order for the same reason.
#include "runtime/kernels/dense.h"

#include <cmath>
#include <cstring>

#include "runtime/error.h"
#include "runtime/kernels/sgemm.h"
#include "runtime/threading.h"

namespace onnas::kernels {
namespace {

int64_t row_grain(int64_t n) { return n >= 4096 ? 1 : 4096 / (n > 0 ? n : 1); }

// y = exp(x - max) / sum over one row; returns log(sum) + max (the log-partition).
double softmax_row(int64_t n, const float* x, float* y) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double z = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = std::exp(x[i] - mx);
    z += double(y[i]);
  }
  const float inv = float(1.0 / z);
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  return std::log(z) + double(mx);
}

}  // namespace

void linear_forward(int64_t N, int64_t I, int64_t O, const float* x, const float* w, const float* b, float* y) {
  if (b)
    for (int64_t r = 0; r < N; ++r) std::memcpy(y + r * O, b, size_t(O) * sizeof(float));
  sgemm(false, true, N, O, I, 1.0f, x, I, w, I, b ? 1.0f : 0.0f, y, O);
}

void linear_backward(int64_t N, int64_t I, int64_t O, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  if (dx) sgemm(false, false, N, I, O, 1.0f, dy, O, w, I, 0.0f, dx, I);
  sgemm(true, false, O, I, N, 1.0f, dy, O, x, I, 0.0f, dw, I);
  if (db) {
    std::memcpy(db, dy, size_t(O) * sizeof(float));
    for (int64_t r = 1; r < N; ++r)
      for (int64_t o = 0; o < O; ++o) db[o] += dy[r * O + o];
  }
}

void softmax_forward(int64_t rows, int64_t n, const float* x, float* y) {
  parallel_for(0, rows, row_grain(n), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) softmax_row(n, x + r * n, y + r * n);
  });
}

void softmax_backward(int64_t rows, int64_t n, const float* y, const float* dy, float* dx) {
  parallel_for(0, rows, row_grain(n), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* yr = y + r * n;
      const float* dyr = dy + r * n;
      double d = 0.0;
      for (int64_t i = 0; i < n; ++i) d += double(dyr[i]) * double(yr[i]);
      const float df = float(d);
      for (int64_t i = 0; i < n; ++i) dx[r * n + i] = yr[i] * (dyr[i] - df);
    }
  });
}

float softmax_xent_forward(int64_t N, int64_t K, const float* logits, const int32_t* labels, float* probs) {
  for (int64_t r = 0; r < N; ++r)
    if (labels[r] < 0 || labels[r] >= K)
      fail("softmax_xent: row {} has label {}, expected a class in [0, {})", r, labels[r], K);
  double loss = 0.0;
  for (int64_t r = 0; r < N; ++r) {
    // -log softmax[label] = logZ - logit[label]: no log of a probability that may be 0.
    const double log_z = softmax_row(K, logits + r * K, probs + r * K);
    loss += log_z - double(logits[r * K + labels[r]]);
  }
  return float(loss / double(N));
}

void softmax_xent_backward(int64_t N, int64_t K, const float* probs, const int32_t* labels, float dloss,
                           float* dlogits) {
  const float g = dloss / float(N);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t i = 0; i < K; ++i) dlogits[r * K + i] = probs[r * K + i] * g;
    dlogits[r * K + labels[r]] = (probs[r * K + labels[r]] - 1.0f) * g;
  }
}

}  // namespace onnas::kernels
