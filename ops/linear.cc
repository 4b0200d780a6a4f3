// linear: y[N, O] = x[N, I] w[O, I]^T + b[O] (b optional), PyTorch's nn.Linear layout.
// Its gradient is two backward ops emitted only when needed: the data gradient
// dx = dy w (reads w and dy) and the parameter gradients dw = dy^T x, db = sum_n dy
// (read x and dy), so a frozen classifier does not keep x alive.
//
// Dimension key: N batch, I input features, O output features.
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/kernels/dense.h"
#include "runtime/kernels/sgemm.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::kNoValue;
using graph::RunContext;
using graph::TensorType;

}  // namespace

// dx[N, I] = dy[N, O] w[O, I]; inputs: dy, w.
const graph::OpDef kLinearBackwardData{
    .name = "linear_backward_data",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{{Shape{c.shape(0)[0], c.shape(1)[1]}}}; },
    .forward =
        [](const RunContext& c) {
          const int64_t N = c.inputs[0].shape()[0], O = c.inputs[1].shape()[0], I = c.inputs[1].shape()[1];
          kernels::sgemm(false, false, N, I, O, 1.0f, c.inputs[0].f32(), O, c.inputs[1].f32(), I, 0.0f,
                         c.outputs[0].f32(), I);
        },
};

// dw[O, I] = dy^T x and, when the forward had a bias, db[O] = sum_n dy; inputs: x, dy.
const graph::OpDef kLinearBackwardParams{
    .name = "linear_backward_params",
    .infer =
        [](const InferContext& c) {
          const int64_t O = c.shape(1)[1], I = c.shape(0)[1];
          std::vector<TensorType> out{{Shape{O, I}}};
          if (c.attrs<bool>()) out.push_back({Shape{O}});
          return out;
        },
    .forward =
        [](const RunContext& c) {
          const int64_t N = c.inputs[0].shape()[0], I = c.inputs[0].shape()[1], O = c.inputs[1].shape()[1];
          // With dx null the kernel reads neither dx nor w.
          kernels::linear_backward(N, I, O, c.inputs[0].f32(), nullptr, c.inputs[1].f32(), nullptr,
                                   c.outputs[0].f32(), c.outputs.size() > 1 ? c.outputs[1].f32() : nullptr);
        },
    .output_names = {"dw", "db"},
};

const graph::OpDef kLinear{
    .name = "linear",
    .infer =
        [](const InferContext& c) {
          const bool has_bias = c.attrs<bool>();
          c.expect_inputs(has_bias ? 3 : 2);
          c.expect_rank(0, 2);
          c.expect_rank(1, 2);
          for (size_t i = 0; i < c.num_inputs(); ++i) c.expect_dtype(i, DType::f32);
          const int64_t N = c.shape(0)[0], I = c.shape(0)[1], O = c.shape(1)[0];
          if (c.shape(1)[1] != I)
            c.fail("input '{}' has {} features, weight '{}' {} expects {}", c.input_name(0), I, c.input_name(1),
                   c.shape(1).str(), c.shape(1)[1]);
          if (has_bias && c.shape(2) != Shape{O})
            c.fail("bias '{}' has shape {}, weight '{}' has {} outputs", c.input_name(2), c.shape(2).str(),
                   c.input_name(1), O);
          return std::vector<TensorType>{{Shape{N, O}}};
        },
    .forward =
        [](const RunContext& c) {
          const int64_t N = c.inputs[0].shape()[0], I = c.inputs[0].shape()[1], O = c.inputs[1].shape()[0];
          kernels::linear_forward(N, I, O, c.inputs[0].f32(), c.inputs[1].f32(),
                                  c.inputs.size() > 2 ? c.inputs[2].f32() : nullptr, c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          graph::Graph& g = c.graph();
          const bool has_bias = c.attrs<bool>();
          const ValueId dy = c.output_grad(0);
          if (c.needs_grad(0))
            c.set_input_grad(0, g.add_node1(kLinearBackwardData, c.grad_name(".dx"), {dy, c.input(1)}));
          if (c.needs_grad(1) || (has_bias && c.needs_grad(2))) {
            std::vector<ValueId> d = g.add_node(kLinearBackwardParams, c.grad_name(".params"), {c.input(0), dy}, has_bias);
            if (c.needs_grad(1)) c.set_input_grad(1, d[0]);
            if (has_bias && c.needs_grad(2)) c.set_input_grad(2, d[1]);
          }
        },
};

ValueId linear(Graph& g, ValueId x, ValueId w, ValueId b, const std::string& name) {
  std::vector<ValueId> inputs{x, w};
  if (b != kNoValue) inputs.push_back(b);
  return g.add_node1(kLinear, name, std::move(inputs), b != kNoValue);
}

// y = x w^T + b: Gemm with w transposed.
const OnnxOp kLinearOnnx{&kLinear, [](OnnxLowering& l) {
  std::vector<std::string> inputs{l.input(0), l.input(1)};
  if (l.node().inputs.size() > 2) inputs.push_back(l.input(2));
  l.emit("Gemm", std::move(inputs), {l.output(0)}, {onnx::Attribute::integer("transB", 1)});
}};

}  // namespace onnas::ops
