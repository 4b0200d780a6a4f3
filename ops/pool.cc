// max_pool2d and avg_pool2d, NCHW, square windows. Max pooling outputs the argmax
// (u8, each maximum's offset r * kernel + t within its window) next to y: the backward
// scatters dy there and never reads x, so x can die after the forward, and what it
// keeps is a quarter of y.
// Average pooling excludes padding from the count (DARTS' count_include_pad=False),
// and its backward needs only dy and the shape.
//
// Dimension key: N C H W input, R S window (kernel x kernel), P Q output.
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/kernels/pool.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::RunContext;
using graph::TensorType;
using kernels::Pool2dShape;

Pool2dShape pool_shape(const Shape& x, const Pool2dAttrs& a) {
  return Pool2dShape{.N = x[0], .C = x[1], .H = x[2], .W = x[3], .R = a.kernel, .S = a.kernel,
                     .stride_h = a.stride, .stride_w = a.stride, .pad_h = a.pad, .pad_w = a.pad};
}

// Checks x and the window; returns the kernel shape.
Pool2dShape infer_pool(const InferContext& c) {
  c.expect_inputs(1);
  c.expect_rank(0, 4);
  c.expect_dtype(0, DType::f32);
  const Pool2dAttrs& a = c.attrs<Pool2dAttrs>();
  if (a.kernel < 1 || a.stride < 1 || a.pad < 0)
    c.fail("kernel {} and stride {} must be at least 1 and pad {} at least 0", a.kernel, a.stride, a.pad);
  // A window that could lie entirely in the padding would have no maximum and an
  // average over nothing; PyTorch forbids it the same way.
  if (2 * a.pad > a.kernel) c.fail("pad {} is more than half the {}x{} window", a.pad, a.kernel, a.kernel);
  const Pool2dShape s = pool_shape(c.shape(0), a);
  if (s.P() < 1 || s.Q() < 1)
    c.fail("input '{}' {} is smaller than the {}x{} window with pad {}", c.input_name(0), c.shape(0).str(), a.kernel,
           a.kernel, a.pad);
  return s;
}

Shape input_shape(const Pool2dShape& s) { return Shape{s.N, s.C, s.H, s.W}; }

std::vector<TensorType> infer_pool_backward(const InferContext& c) {
  return {{input_shape(c.attrs<Pool2dShape>()), DType::f32}};
}

}  // namespace

// dx = scatter-add of dy at argmax; inputs: dy, argmax.
const graph::OpDef kMaxPool2dBackward{
    .name = "max_pool2d_backward",
    .infer = infer_pool_backward,
    .forward =
        [](const RunContext& c) {
          kernels::max_pool2d_backward(c.attrs<Pool2dShape>(), c.inputs[0].f32(), c.inputs[1].u8(),
                                       c.outputs[0].f32());
        },
};

const graph::OpDef kMaxPool2d{
    .name = "max_pool2d",
    .infer =
        [](const InferContext& c) {
          const Pool2dShape s = infer_pool(c);
          if (s.R * s.S > kernels::kMaxPoolWindowPositions)
            c.fail("max pool window {}x{} has more than {} positions (its argmax is one byte)", s.R, s.S,
                   kernels::kMaxPoolWindowPositions);
          const Shape out{s.N, s.C, s.P(), s.Q()};
          return std::vector<TensorType>{{out, DType::f32}, {out, DType::u8}};
        },
    .forward =
        [](const RunContext& c) {
          kernels::max_pool2d_forward(pool_shape(c.inputs[0].shape(), c.attrs<Pool2dAttrs>()), c.inputs[0].f32(),
                                      c.outputs[0].f32(), c.outputs[1].u8());
        },
    .gradient =
        [](GradContext& c) {
          const Pool2dShape s = pool_shape(c.input_shape(0), c.attrs<Pool2dAttrs>());
          c.set_input_grad(0, c.graph().add_node1(kMaxPool2dBackward, c.grad_name(), {c.output_grad(0), c.output(1)}, s));
        },
    .output_names = {"y", "argmax"},
};

// dx = dy spread evenly over each window's in-bounds inputs; input: dy.
const graph::OpDef kAvgPool2dBackward{
    .name = "avg_pool2d_backward",
    .infer = infer_pool_backward,
    .forward =
        [](const RunContext& c) {
          kernels::avg_pool2d_backward(c.attrs<Pool2dShape>(), c.inputs[0].f32(), c.outputs[0].f32());
        },
};

const graph::OpDef kAvgPool2d{
    .name = "avg_pool2d",
    .infer =
        [](const InferContext& c) {
          const Pool2dShape s = infer_pool(c);
          return std::vector<TensorType>{{Shape{s.N, s.C, s.P(), s.Q()}, DType::f32}};
        },
    .forward =
        [](const RunContext& c) {
          kernels::avg_pool2d_forward(pool_shape(c.inputs[0].shape(), c.attrs<Pool2dAttrs>()), c.inputs[0].f32(),
                                      c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          const Pool2dShape s = pool_shape(c.input_shape(0), c.attrs<Pool2dAttrs>());
          c.set_input_grad(0, c.graph().add_node1(kAvgPool2dBackward, c.grad_name(), {c.output_grad(0)}, s));
        },
};

namespace {

// MaxPool and AveragePool share their window attributes; padding never counts (max: as
// -inf, average: excluded from the count, count_include_pad = 0).
std::vector<onnx::Attribute> onnx_window(const Pool2dAttrs& a) {
  return {onnx::Attribute::ints("kernel_shape", {a.kernel, a.kernel}), onnx::Attribute::ints("strides", {a.stride, a.stride}),
          onnx::Attribute::ints("pads", {a.pad, a.pad, a.pad, a.pad})};
}

}  // namespace

// Only y is exported: argmax serves the backward.
const OnnxOp kMaxPool2dOnnx{&kMaxPool2d, [](OnnxLowering& l) {
  l.emit("MaxPool", {l.input(0)}, {l.output(0)}, onnx_window(l.node().attrs.get<Pool2dAttrs>()));
}};

const OnnxOp kAvgPool2dOnnx{&kAvgPool2d, [](OnnxLowering& l) {
  std::vector<onnx::Attribute> a = onnx_window(l.node().attrs.get<Pool2dAttrs>());
  a.push_back(onnx::Attribute::integer("count_include_pad", 0));
  l.emit("AveragePool", {l.input(0)}, {l.output(0)}, std::move(a));
}};

ValueId max_pool2d(Graph& g, ValueId x, Pool2dAttrs a, const std::string& name) {
  return g.add_node(kMaxPool2d, name, {x}, a).at(0);
}

ValueId avg_pool2d(Graph& g, ValueId x, Pool2dAttrs a, const std::string& name) {
  return g.add_node1(kAvgPool2d, name, {x}, a);
}

}  // namespace onnas::ops
