// relu: y = max(x, 0). Its backward reads the output (same mask as the input), so an
// in-place relu keeps what its backward needs. A relu of a feed or parameter is
// recomputed in the backward instead of kept (relu_recompute, graph/op.h).
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

// dx = dy * (y > 0); inputs: y, dy.
const graph::OpDef kReluBackward{
    .name = "relu_backward",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(1)}; },
    .forward =
        [](const RunContext& c) {
          kernels::relu_backward(c.outputs[0].numel(), c.inputs[0].f32(), c.inputs[1].f32(), c.outputs[0].f32());
        },
    .inplace_input = 1,
};

// relu(x) again in the backward; input 1 only orders it (see graph::GradContext).
const graph::OpDef kReluRecompute{
    .name = "relu_recompute",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(2);
          return std::vector<TensorType>{c.input(0)};
        },
    .forward = [](const RunContext& c) { kernels::relu_forward(c.outputs[0].numel(), c.inputs[0].f32(), c.outputs[0].f32()); },
};

const graph::OpDef kRelu{
    .name = "relu",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(1);
          c.expect_dtype(0, DType::f32);
          return std::vector<TensorType>{c.input(0)};
        },
    .forward = [](const RunContext& c) { kernels::relu_forward(c.outputs[0].numel(), c.inputs[0].f32(), c.outputs[0].f32()); },
    .gradient =
        [](GradContext& c) {
          c.set_input_grad(0, c.graph().add_node1(kReluBackward, c.grad_name(), {c.output(0), c.output_grad(0)}));
        },
    .inplace_input = 0,
    .recompute = &kReluRecompute,
    .backward_reads_output = [](const graph::Node&) { return true; },
};

ValueId relu(Graph& g, ValueId x, const std::string& name) { return g.add_node1(kRelu, name, {x}); }

const OnnxOp kReluOnnx{&kRelu, [](OnnxLowering& l) { l.emit("Relu", {l.input(0)}, {l.output(0)}); }};

}  // namespace onnas::ops
