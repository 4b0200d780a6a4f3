// 2-D convolution, NCHW, weight [K, C/groups, R, S], no bias (batch norm follows).
//
// Dimension key: N batch, C input channels, H W input size, K output channels,
// R S kernel height and width, P Q output size; stride, pad (symmetric per axis),
// dilation per axis; groups 1 (dense) or C == K (depthwise).
//
// The fast path: groups == 1 -> sgemm on the input for a pointwise conv (1x1, stride 1,
// no pad); with stride 1 along rows, sgemm_indirect reading the columns in place from a
// padded band of input rows (backward data with stride 1 too, as the forward conv of dy
// with the flipped kernel; the weight gradient with sgemm_gathered packing from the
// band); else im2col into the caller's workspace + sgemm. Depthwise
// -> direct loops (conv2d_depthwise.cc). Every output is overwritten, not accumulated.
// The workspace is planned memory: conv2d_workspace_bytes(s, pass) tells how much
// each call needs; pass at least that many bytes (64-byte aligned).
//
//   Conv2dShape s{.N = 32, .C = 16, .H = 28, .W = 28, .K = 16, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1};
//   std::vector<float> ws(conv2d_workspace_bytes(s, ConvPass::forward) / 4);
//   conv2d_forward(s, x, w, y, ws.data());
#pragma once

#include <cstddef>
#include <cstdint>

namespace onnas::kernels {

struct Conv2dShape {
  int64_t N = 1, C = 1, H = 1, W = 1;
  int64_t K = 1;
  int64_t R = 1, S = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;

  // 0 when the dilated kernel is larger than the padded input (as PyTorch's floor division
  // gives; C++'s truncation toward zero would give 1).
  int64_t P() const { return out_size(H, pad_h, dil_h * (R - 1) + 1, stride_h); }
  int64_t Q() const { return out_size(W, pad_w, dil_w * (S - 1) + 1, stride_w); }
  bool depthwise() const { return groups > 1 && groups == C && groups == K; }
  int64_t weight_numel() const { return K * (C / groups) * R * S; }
  double flops() const { return 2.0 * double(N) * K * P() * Q() * (C / groups) * R * S; }

  static int64_t out_size(int64_t in, int64_t pad, int64_t extent, int64_t stride) {
    const int64_t room = in + 2 * pad - extent;
    return room < 0 ? 0 : room / stride + 1;
  }
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const Conv2dShape&) const = default;
};

// The workspace of one direction: forward and backward data need, for each of 4 image
// lanes, a padded band of input rows and its row table (the indirect path) or the
// columns of a tile of output rows (none for a pointwise conv), and SGEMM's packing;
// backward data by the flipped kernel also holds that kernel; the weight gradient also
// needs a partial sum (K x CRS) for every lane but the first.
enum class ConvPass { forward, backward_data, backward_weight };
size_t conv2d_workspace_bytes(const Conv2dShape& s, ConvPass pass);

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, float* y, void* workspace);
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx, void* workspace);
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw, void* workspace);

// The plain reference (naive loops over every (n, k, p, q, c, r, s), any groups, T =
// float or double) is in runtime/kernels/reference.h, so tests can instantiate it in
// double. Groups other than 1 and depthwise run that reference (no workspace).
}  // namespace onnas::kernels
