// conv2d: y[N,K,P,Q] = x[N,C,H,W] (*) w[K,C/groups,R,S], no bias (batch norm follows).
// Dense, grouped and depthwise alike; the kernel picks im2col + SGEMM or direct loops.
// Its gradient is two separate backward ops, emitted only for what is needed: the
// data gradient (reads w and dy) and the weight gradient (reads x and dy), so a
// frozen weight never keeps x alive for the backward.
//
// Dimension key: N batch, C input channels, H W input size, K output channels,
// R S kernel size, P Q output size.
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/kernels/conv2d.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::RunContext;
using graph::TensorType;
using kernels::Conv2dShape;

Conv2dShape conv_shape(const Shape& x, const Shape& w, const Conv2dAttrs& a) {
  Conv2dShape s;
  s.N = x[0], s.C = x[1], s.H = x[2], s.W = x[3];
  s.K = w[0], s.R = w[2], s.S = w[3];
  s.stride_h = a.stride_h >= 0 ? a.stride_h : a.stride;
  s.stride_w = a.stride_w >= 0 ? a.stride_w : a.stride;
  s.pad_h = a.pad_h >= 0 ? a.pad_h : a.pad;
  s.pad_w = a.pad_w >= 0 ? a.pad_w : a.pad;
  s.dil_h = s.dil_w = a.dilation;
  s.groups = a.groups;
  return s;
}

Shape input_shape(const Conv2dShape& s) { return Shape{s.N, s.C, s.H, s.W}; }
Shape weight_shape(const Conv2dShape& s) { return Shape{s.K, s.C / s.groups, s.R, s.S}; }

// The backward nodes carry the forward's kernel shape as their attributes.
size_t backward_data_workspace(const graph::Graph&, const graph::Node& n) {
  return kernels::conv2d_workspace_bytes(n.attrs.get<Conv2dShape>(), kernels::ConvPass::backward_data);
}
size_t backward_weight_workspace(const graph::Graph&, const graph::Node& n) {
  return kernels::conv2d_workspace_bytes(n.attrs.get<Conv2dShape>(),
                                         kernels::ConvPass::backward_weight);
}

}  // namespace

// dx = conv2d_backward_data(dy, w); inputs: dy, w.
const graph::OpDef kConv2dBackwardData{
    .name = "conv2d_backward_data",
    .infer =
        [](const InferContext& c) {
          return std::vector<TensorType>{{input_shape(c.attrs<Conv2dShape>()), DType::f32}};
        },
    .forward =
        [](const RunContext& c) {
          kernels::conv2d_backward_data(c.attrs<Conv2dShape>(), c.inputs[0].f32(), c.inputs[1].f32(),
                                        c.outputs[0].f32(), c.workspace);
        },
    .workspace_bytes = backward_data_workspace,
};

// dw = conv2d_backward_weight(x, dy), summed over the batch; inputs: x, dy.
const graph::OpDef kConv2dBackwardWeight{
    .name = "conv2d_backward_weight",
    .infer =
        [](const InferContext& c) {
          return std::vector<TensorType>{{weight_shape(c.attrs<Conv2dShape>()), DType::f32}};
        },
    .forward =
        [](const RunContext& c) {
          kernels::conv2d_backward_weight(c.attrs<Conv2dShape>(), c.inputs[0].f32(), c.inputs[1].f32(),
                                          c.outputs[0].f32(), c.workspace);
        },
    .workspace_bytes = backward_weight_workspace,
};

namespace {

// Inputs x, w (and, for the recompute form, one more that only orders it).
std::vector<TensorType> infer_conv(const InferContext& c, size_t inputs) {
  c.expect_inputs(inputs);
  c.expect_rank(0, 4);
  c.expect_rank(1, 4);
  c.expect_dtype(0, DType::f32);
  c.expect_dtype(1, DType::f32);
  const Conv2dAttrs& a = c.attrs<Conv2dAttrs>();
  if (a.stride < 1 || a.stride_h == 0 || a.stride_w == 0 || a.stride_h < -1 || a.stride_w < -1 || a.dilation < 1 || a.groups < 1 || a.pad < 0)
    c.fail("stride {}, dilation {}, groups {} must be at least 1 and pad {} at least 0", a.stride, a.dilation,
           a.groups, a.pad);
  const Shape& x = c.shape(0);
  const Shape& w = c.shape(1);
  if (x[1] % a.groups != 0 || w[0] % a.groups != 0)
    c.fail("input '{}' has {} channels and weight '{}' {} filters; both must divide into {} groups",
           c.input_name(0), x[1], c.input_name(1), w[0], a.groups);
  if (w[1] * a.groups != x[1])
    c.fail("input '{}' has {} channels, weight '{}' {} expects {}", c.input_name(0), x[1], c.input_name(1),
           w.str(), w[1] * a.groups);
  const Conv2dShape s = conv_shape(x, w, a);
  if (s.P() < 1 || s.Q() < 1)
    c.fail("input '{}' {} is too small for a {}x{} kernel with dilation {} and padding {}x{}", c.input_name(0),
           x.str(), s.R, s.S, a.dilation, s.pad_h, s.pad_w);
  return std::vector<TensorType>{{Shape{s.N, s.K, s.P(), s.Q()}, DType::f32}};
}

void forward_conv(const RunContext& c) {
  const Conv2dShape s = conv_shape(c.inputs[0].shape(), c.inputs[1].shape(), c.attrs<Conv2dAttrs>());
  kernels::conv2d_forward(s, c.inputs[0].f32(), c.inputs[1].f32(), c.outputs[0].f32(), c.workspace);
}

size_t forward_workspace(const graph::Graph& g, const graph::Node& n) {
  return kernels::conv2d_workspace_bytes(
      conv_shape(g.shape(n.inputs[0]), g.shape(n.inputs[1]), n.attrs.get<Conv2dAttrs>()),
      kernels::ConvPass::forward);
}

// Depthwise convs cost a few operations per output: recomputing one in the backward
// is cheaper than keeping its output (a dense conv is not).
bool cheap(const graph::Node& n) { return n.attrs.get<Conv2dAttrs>().groups > 1; }

}  // namespace

// conv2d(x, w) again in the backward; input 2 only orders it (see graph::GradContext).
const graph::OpDef kConv2dRecompute{
    .name = "conv2d_recompute",
    .infer = [](const InferContext& c) { return infer_conv(c, 3); },
    .forward = forward_conv,
    .workspace_bytes = forward_workspace,
};

const graph::OpDef kConv2d{
    .name = "conv2d",
    .infer = [](const InferContext& c) { return infer_conv(c, 2); },
    .forward = forward_conv,
    .gradient =
        [](GradContext& c) {
          graph::Graph& g = c.graph();
          const Conv2dShape s =
              conv_shape(c.input_shape(0), c.input_shape(1), c.attrs<Conv2dAttrs>());
          const ValueId dy = c.output_grad(0);
          if (c.needs_grad(0))
            c.set_input_grad(0, g.add_node1(kConv2dBackwardData, c.grad_name(".dx"), {dy, c.input(1)}, s));
          if (c.needs_grad(1))
            c.set_input_grad(1, g.add_node1(kConv2dBackwardWeight, c.grad_name(".dw"), {c.input(0), dy}, s));
        },
    .workspace_bytes = forward_workspace,
    .recompute = &kConv2dRecompute,
    .recompute_if = cheap,
};

const OnnxOp kConv2dOnnx{&kConv2d, [](OnnxLowering& l) {
  const Conv2dShape s = conv_shape(l.graph().shape(l.node().inputs[0]), l.graph().shape(l.node().inputs[1]),
                                   l.node().attrs.get<Conv2dAttrs>());
  l.emit("Conv", {l.input(0), l.input(1)}, {l.output(0)},
         {onnx::Attribute::ints("kernel_shape", {s.R, s.S}), onnx::Attribute::ints("strides", {s.stride_h, s.stride_w}),
          onnx::Attribute::ints("pads", {s.pad_h, s.pad_w, s.pad_h, s.pad_w}),
          onnx::Attribute::ints("dilations", {s.dil_h, s.dil_w}), onnx::Attribute::integer("group", s.groups)});
}};

ValueId conv2d(Graph& g, ValueId x, ValueId w, Conv2dAttrs a, const std::string& name) {
  return g.add_node1(kConv2d, name, {x, w}, a);
}

}  // namespace onnas::ops
