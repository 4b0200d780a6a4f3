// global_avg_pool: y[N, C] = mean of x[N, C, H, W] over H*W (the classifier's input).
// The backward spreads dy / HW over each plane and reads nothing of the forward.
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

int64_t plane_size(const Shape& x) { return x[2] * x[3]; }

}  // namespace

// dx[N,C,H,W] = dy[N,C] / HW; input: dy; attribute: x's shape.
const graph::OpDef kGlobalAvgPoolBackward{
    .name = "global_avg_pool_backward",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{{c.attrs<Shape>(), DType::f32}}; },
    .forward =
        [](const RunContext& c) {
          const Shape& x = c.outputs[0].shape();
          kernels::global_avg_pool_backward(x[0], x[1], plane_size(x), c.inputs[0].f32(), c.outputs[0].f32());
        },
};

const graph::OpDef kGlobalAvgPool{
    .name = "global_avg_pool",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(1);
          c.expect_rank(0, 4);
          c.expect_dtype(0, DType::f32);
          return std::vector<TensorType>{{Shape{c.shape(0)[0], c.shape(0)[1]}, DType::f32}};
        },
    .forward =
        [](const RunContext& c) {
          const Shape& x = c.inputs[0].shape();
          kernels::global_avg_pool_forward(x[0], x[1], plane_size(x), c.inputs[0].f32(), c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          c.set_input_grad(0, c.graph().add_node1(kGlobalAvgPoolBackward, c.grad_name(), {c.output_grad(0)},
                                                  c.input_shape(0)));
        },
};

ValueId global_avg_pool(Graph& g, ValueId x, const std::string& name) {
  return g.add_node1(kGlobalAvgPool, name, {x});
}

// GlobalAveragePool keeps [N, C, 1, 1]; Flatten makes it the [N, C] the classifier reads.
const OnnxOp kGlobalAvgPoolOnnx{&kGlobalAvgPool, [](OnnxLowering& l) {
  const std::string pooled = l.temp("pooled");
  l.emit("GlobalAveragePool", {l.input(0)}, {pooled});
  l.emit("Flatten", {pooled}, {l.output(0)}, {onnx::Attribute::integer("axis", 1)});
}};

}  // namespace onnas::ops
