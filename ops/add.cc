// add (a + b), sum (any number of values, through the engine's add_n) and scale
// (s * x for a constant s). All elementwise over values of one shape, no
// broadcasting: in a DARTS cell every summed edge has the node's shape, and a
// mismatch is a wiring bug worth an error. The outputs may overwrite their first input.
#include "graph/builtin_ops.h"
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/kernels/elementwise.h"

namespace onnas::ops {

using graph::GradContext;
using graph::InferContext;
using graph::RunContext;
using graph::TensorType;

const graph::OpDef kAdd{
    .name = "add",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(2);
          c.expect_dtype(0, DType::f32);
          c.expect_dtype(1, DType::f32);
          if (c.shape(0) != c.shape(1))
            c.fail("'{}' has shape {}, '{}' has {}", c.input_name(0), c.shape(0).str(), c.input_name(1),
                   c.shape(1).str());
          return std::vector<TensorType>{c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          kernels::add(c.outputs[0].numel(), c.inputs[0].f32(), c.inputs[1].f32(), c.outputs[0].f32());
        },
    // Both inputs receive dy itself: no node, no copy.
    .gradient =
        [](GradContext& c) {
          for (size_t i = 0; i < 2; ++i)
            if (c.needs_grad(i)) c.set_input_grad(i, c.output_grad(0));
        },
    .inplace_input = 0,
};

const graph::OpDef kScale{
    .name = "scale",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(1);
          c.expect_dtype(0, DType::f32);
          return std::vector<TensorType>{c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          kernels::scale(c.outputs[0].numel(), c.attrs<float>(), c.inputs[0].f32(), c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          c.set_input_grad(0, c.graph().add_node1(kScale, c.grad_name(), {c.output_grad(0)}, c.attrs<float>()));
        },
    .inplace_input = 0,
};

ValueId add(Graph& g, ValueId a, ValueId b, const std::string& name) { return g.add_node1(kAdd, name, {a, b}); }

// One value is returned as is (no node): a DARTS node with one input edge costs nothing.
ValueId sum(Graph& g, std::span<const ValueId> values, const std::string& name) {
  if (values.empty()) fail("sum '{}': needs at least one value", name);
  return graph::add_n(g, values, name);
}

ValueId scale(Graph& g, ValueId x, float s, const std::string& name) { return g.add_node1(kScale, name, {x}, s); }

const OnnxOp kAddOnnx{&kAdd, [](OnnxLowering& l) { l.emit("Add", {l.input(0), l.input(1)}, {l.output(0)}); }};

const OnnxOp kScaleOnnx{&kScale, [](OnnxLowering& l) {
  const std::string s = l.constant(onnx::Tensor::f32(l.temp("s"), {}, {l.node().attrs.get<float>()}));
  l.emit("Mul", {l.input(0), s}, {l.output(0)});
}};

}  // namespace onnas::ops
