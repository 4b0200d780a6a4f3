// concat and slice along the channel axis (axis 1 of [N, C, ...]): a DARTS cell's
// output is the concat of its intermediate nodes. They are each other's adjoint:
// concat's gradient is one slice of dy per input that needs it; slice's gradient
// writes dy into a zeroed tensor of x's shape.
//
// Dimension key: N batch, C channels, HW the product of the remaining axes.
#include <array>

#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/kernels/elementwise.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::RunContext;
using graph::TensorType;

// The forward keeps its pointer and channel lists on the stack (run() never
// allocates), which bounds the number of inputs; a DARTS cell concatenates 4.
constexpr size_t kMaxConcatInputs = 64;

int64_t plane_size(const Shape& s) {
  int64_t hw = 1;
  for (int i = 2; i < s.rank(); ++i) hw *= s[i];
  return hw;
}

struct SliceNode {
  int64_t c0, channels;
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const SliceNode&) const = default;
};

// The backward also needs x's shape to know what it writes into.
struct SliceBackwardNode {
  Shape x;
  int64_t c0, channels;
};

}  // namespace

const graph::OpDef kSliceBackward{
    .name = "slice_backward",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{{c.attrs<SliceBackwardNode>().x}}; },
    .forward =
        [](const RunContext& c) {
          const SliceBackwardNode& a = c.attrs<SliceBackwardNode>();
          kernels::slice_channels_backward(a.x[0], a.x[1], plane_size(a.x), a.c0, a.channels, c.inputs[0].f32(),
                                           c.outputs[0].f32());
        },
};

const graph::OpDef kSlice{
    .name = "slice",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(1);
          c.expect_dtype(0, DType::f32);
          const SliceNode& a = c.attrs<SliceNode>();
          const Shape& x = c.shape(0);
          if (x.rank() < 2) c.fail("input '{}' must be [N, C, ...], has shape {}", c.input_name(0), x.str());
          if (a.c0 < 0 || a.channels < 1 || a.c0 + a.channels > x[1])
            c.fail("channels [{}, {}) are not inside the {} channels of '{}' {}", a.c0, a.c0 + a.channels, x[1],
                   c.input_name(0), x.str());
          Shape y = x;
          y[1] = a.channels;
          return std::vector<TensorType>{{y}};
        },
    .forward =
        [](const RunContext& c) {
          const SliceNode& a = c.attrs<SliceNode>();
          const Shape& x = c.inputs[0].shape();
          kernels::slice_channels(x[0], x[1], plane_size(x), a.c0, a.channels, c.inputs[0].f32(), c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          const SliceNode& a = c.attrs<SliceNode>();
          SliceBackwardNode b{c.input_shape(0), a.c0, a.channels};
          c.set_input_grad(0, c.graph().add_node1(kSliceBackward, c.grad_name(), {c.output_grad(0)}, b));
        },
};

const graph::OpDef kConcat{
    .name = "concat",
    .infer =
        [](const InferContext& c) {
          if (c.num_inputs() < 1 || c.num_inputs() > kMaxConcatInputs)
            c.fail("takes 1 to {} values, got {}", kMaxConcatInputs, c.num_inputs());
          const Shape& first = c.shape(0);
          if (first.rank() < 2) c.fail("input '{}' must be [N, C, ...], has shape {}", c.input_name(0), first.str());
          Shape y = first;
          y[1] = 0;
          for (size_t i = 0; i < c.num_inputs(); ++i) {
            c.expect_dtype(i, DType::f32);
            Shape same = c.shape(i);
            if (same.rank() == first.rank()) same[1] = first[1];
            if (same != first)
              c.fail("'{}' has shape {}, '{}' has {}: only the channel counts may differ", c.input_name(i),
                     c.shape(i).str(), c.input_name(0), first.str());
            y[1] += c.shape(i)[1];
          }
          return std::vector<TensorType>{{y}};
        },
    .forward =
        [](const RunContext& c) {
          std::array<int64_t, kMaxConcatInputs> channels;
          std::array<const float*, kMaxConcatInputs> inputs;
          const size_t n = c.inputs.size();
          for (size_t i = 0; i < n; ++i) channels[i] = c.inputs[i].shape()[1], inputs[i] = c.inputs[i].f32();
          const Shape& y = c.outputs[0].shape();
          kernels::concat_channels(y[0], plane_size(y), std::span<const int64_t>(channels.data(), n),
                                   std::span<const float* const>(inputs.data(), n), c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          graph::Graph& g = c.graph();
          int64_t c0 = 0;
          for (size_t i = 0; i < c.node().inputs.size(); ++i) {
            const int64_t channels = c.input_shape(i)[1];
            if (c.needs_grad(i))
              c.set_input_grad(i, g.add_node1(kSlice, c.grad_name(fmt::format(".d{}", i)), {c.output_grad(0)},
                                              SliceNode{c0, channels}));
            c0 += channels;
          }
        },
};

ValueId concat(Graph& g, std::span<const ValueId> values, const std::string& name) {
  return g.add_node1(kConcat, name, std::vector<ValueId>(values.begin(), values.end()));
}

ValueId slice(Graph& g, ValueId x, int64_t c0, int64_t channels, const std::string& name) {
  return g.add_node1(kSlice, name, {x}, SliceNode{c0, channels});
}

const OnnxOp kConcatOnnx{&kConcat, [](OnnxLowering& l) {
  std::vector<std::string> inputs;
  for (size_t i = 0; i < l.node().inputs.size(); ++i) inputs.push_back(l.input(i));
  l.emit("Concat", std::move(inputs), {l.output(0)}, {onnx::Attribute::integer("axis", 1)});
}};

// Channels c0 .. c0 + channels - 1: Slice along axis 1.
const OnnxOp kSliceOnnx{&kSlice, [](OnnxLowering& l) {
  const SliceNode& a = l.node().attrs.get<SliceNode>();
  const std::string starts = l.constant(onnx::Tensor::i64(l.temp("starts"), {1}, {a.c0}));
  const std::string ends = l.constant(onnx::Tensor::i64(l.temp("ends"), {1}, {a.c0 + a.channels}));
  const std::string axes = l.constant(onnx::Tensor::i64(l.temp("axes"), {1}, {1}));
  l.emit("Slice", {l.input(0), starts, ends, axes}, {l.output(0)});
}};

}  // namespace onnas::ops
