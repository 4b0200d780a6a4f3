// Pooling, NCHW. Max pooling saves where each maximum lies as an explicit u8 output,
// its offset r * S + t within the window (windows of at most 256 positions), which is
// what its backward needs: a quarter of a flat i32 index's memory. Average
// pooling excludes padding from the count (count_include_pad = False in PyTorch).
//
// Dimension key: N C H W input, R S window, P Q output; stride and pad per axis.
#pragma once

#include <cstdint>

namespace onnas::kernels {

struct Pool2dShape {
  int64_t N = 1, C = 1, H = 1, W = 1;
  int64_t R = 3, S = 3;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 1, pad_w = 1;

  // 0 when the window is larger than the padded input (C++ division would round up to 1).
  int64_t P() const { return H + 2 * pad_h < R ? 0 : (H + 2 * pad_h - R) / stride_h + 1; }
  int64_t Q() const { return W + 2 * pad_w < S ? 0 : (W + 2 * pad_w - S) / stride_w + 1; }
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const Pool2dShape&) const = default;
};

// The most positions (R * S) a max pool's window may have: its argmax is one byte.
inline constexpr int64_t kMaxPoolWindowPositions = 256;

// y[N,C,P,Q]; argmax[N,C,P,Q] = r * S + t of the (first) maximum in the window, its
// input h = p * stride_h - pad_h + r, w = q * stride_w - pad_w + t.
void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax);
// dx[N,C,H,W] overwritten: dx = scatter-add of dy at argmax, outputs in row-major order.
void max_pool2d_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax, float* dx);

void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y);
void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx);  // dx overwritten

// Global average pool: y[N,C] = mean over H*W of x[N,C,H,W].
void global_avg_pool_forward(int64_t N, int64_t C, int64_t HW, const float* x, float* y);
void global_avg_pool_backward(int64_t N, int64_t C, int64_t HW, const float* dy, float* dx);

}  // namespace onnas::kernels
