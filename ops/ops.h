// The op library's builder API: functions that append nodes to a Graph and read like
// the math. Each op lives in one file (ops/<op>.cc) with its attributes, shape
// inference, forward kernel call and gradient rule side by side; the kernels are in
// runtime/kernels/.
//
//   Graph g;
//   ValueId x = g.input("x", {Shape{32, 1, 28, 28}});
//   ValueId w = g.param("stem.conv.weight", {Shape{48, 1, 3, 3}});
//   ValueId y = ops::relu(g, ops::conv2d(g, x, w, {.stride = 2, .pad = 1}));
//
// Names: every builder takes an optional name (default: the op's name), prefixed by
// the graph's current Scope, so values read like "cells.2.node1.edge0.sep_conv_3x3.pw1".
#pragma once

#include <span>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace onnas::ops {

using graph::Graph;
using graph::ValueId;

// --- convolution -------------------------------------------------------------------
// x [N, C, H, W], w [K, C/groups, R, S] -> [N, K, P, Q]. pad_h / pad_w override pad
// when >= 0 (the 1x5 / 5x1 convs pad one axis only); likewise stride_h / stride_w.
struct Conv2dAttrs {
  int64_t stride = 1;
  int64_t pad = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
  int64_t pad_h = -1;
  int64_t pad_w = -1;
  int64_t stride_h = -1;  // override stride per axis when >= 0 (conv_1x5_5x1 at stride 2)
  int64_t stride_w = -1;
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const Conv2dAttrs&) const = default;
};
ValueId conv2d(Graph& g, ValueId x, ValueId w, Conv2dAttrs a = {}, const std::string& name = "conv");

// --- activations, arithmetic ---------------------------------------------------------
ValueId relu(Graph& g, ValueId x, const std::string& name = "relu");
ValueId add(Graph& g, ValueId a, ValueId b, const std::string& name = "add");
ValueId sum(Graph& g, std::span<const ValueId> values, const std::string& name = "sum");
ValueId scale(Graph& g, ValueId x, float s, const std::string& name = "scale");           // s * x, s constant
// s[index] * x, where s is any value indexed flat (the softmax weights of a mixed op).
ValueId mul(Graph& g, ValueId x, ValueId s, int64_t index, const std::string& name = "mul");
// sum_i s[indices[i]] * values[i] (a mixed op's weighted sum in one pass). With gates,
// term i gets gradients (and so keeps its value for the backward) only in runs where
// gates[i] is open.
ValueId weighted_sum(Graph& g, std::span<const ValueId> values, ValueId s, std::span<const int64_t> indices,
                     const std::string& name = "weighted_sum", std::span<const graph::GateId> gates = {});
// Identity forward; no gradient flows through it, so nothing before it keeps
// activations for the backward.
ValueId stop_gradient(Graph& g, ValueId x, const std::string& name = "stop_gradient");
// Identity forward; the backward keeps the gradient only where mask[i] (flat index) is 1.
ValueId mask_gradient(Graph& g, ValueId x, std::vector<uint8_t> mask, const std::string& name = "mask_gradient");
// The same with the mask decided at run time: element i passes its gradient in runs
// where gates[i] is open (graph/gates.h).
ValueId mask_gradient(Graph& g, ValueId x, std::vector<graph::GateId> gates, const std::string& name);

// --- normalization ---------------------------------------------------------------------
// gamma/beta kNoValue: affine = false. running_mean/var: ParamStore buffers (params of
// kind buffer); kNoValue in training means they are not tracked. training = false
// uses the running statistics (which must be given).
struct BatchNormAttrs {
  bool training = true;
  float eps = 1e-5f;
  float momentum = 0.1f;
  bool operator==(const BatchNormAttrs&) const = default;
};
struct BatchNormParams {
  ValueId gamma = graph::kNoValue;
  ValueId beta = graph::kNoValue;
  ValueId running_mean = graph::kNoValue;
  ValueId running_var = graph::kNoValue;
};
ValueId batch_norm(Graph& g, ValueId x, BatchNormParams p, BatchNormAttrs a = {}, const std::string& name = "bn");

// --- pooling -----------------------------------------------------------------------------
struct Pool2dAttrs {
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t pad = 1;
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const Pool2dAttrs&) const = default;
};
ValueId max_pool2d(Graph& g, ValueId x, Pool2dAttrs a = {}, const std::string& name = "max_pool");
ValueId avg_pool2d(Graph& g, ValueId x, Pool2dAttrs a = {}, const std::string& name = "avg_pool");  // excludes padding
ValueId global_avg_pool(Graph& g, ValueId x, const std::string& name = "gap");                   // -> [N, C]
// [3, C]: per channel a shift (its first value), sum(x - shift), sum((x - shift)^2); no gradient.
ValueId channel_moments(Graph& g, ValueId x, const std::string& name = "moments");

// --- dense, losses -------------------------------------------------------------------------
// x [N, I], w [O, I], b [O] or kNoValue -> [N, O].
ValueId linear(Graph& g, ValueId x, ValueId w, ValueId b, const std::string& name = "linear");
ValueId softmax(Graph& g, ValueId x, const std::string& name = "softmax");  // over the last axis
// logits [N, K] f32, labels [N] i32 -> mean cross-entropy, shape [1].
ValueId softmax_cross_entropy(Graph& g, ValueId logits, ValueId labels, const std::string& name = "loss");

// --- data movement -----------------------------------------------------------------------------
ValueId concat(Graph& g, std::span<const ValueId> values, const std::string& name = "concat");  // channels
ValueId slice(Graph& g, ValueId x, int64_t c0, int64_t channels, const std::string& name = "slice");  // channels
// x[:, :, top:top+h, left:left+w]
ValueId crop(Graph& g, ValueId x, int64_t top, int64_t left, int64_t h, int64_t w, const std::string& name = "crop");

}  // namespace onnas::ops
