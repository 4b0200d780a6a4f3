// Fully connected layer, softmax, and softmax cross-entropy with integer labels.
//
// Dimension key: N batch, I input features, O output features (classes).
// Weight layout [O, I] as in PyTorch's nn.Linear.
#pragma once

#include <cstdint>

namespace onnas::kernels {

// y[N,O] = x[N,I] * W^T + b (b may be null).
void linear_forward(int64_t N, int64_t I, int64_t O, const float* x, const float* w, const float* b, float* y);
// dx[N,I] = dy * W (skipped if dx null); dw[O,I] = dy^T x; db[O] = sum_n dy (skipped if null). Overwritten.
void linear_backward(int64_t N, int64_t I, int64_t O, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);

// Softmax over the last axis of x[rows, n]; numerically stable.
void softmax_forward(int64_t rows, int64_t n, const float* x, float* y);
// dx = y * (dy - sum(dy * y)) per row.
void softmax_backward(int64_t rows, int64_t n, const float* y, const float* dy, float* dx);

// Mean over the batch of -log softmax(logits)[label]. probs[N,K] is written (kept for
// backward). Labels outside [0, K) throw onnas::Error naming the row and label.
float softmax_xent_forward(int64_t N, int64_t K, const float* logits, const int32_t* labels, float* probs);
// dlogits = (probs - onehot(label)) * dloss / N.
void softmax_xent_backward(int64_t N, int64_t K, const float* probs, const int32_t* labels, float dloss,
                           float* dlogits);

}  // namespace onnas::kernels
