// linear: y[N, O] = x[N, I] w[O, I]^T + b[O] (b optional), PyTorch's nn.Linear layout.
// Its gradient is two backward ops emitted only when needed: the data gradient
// dx = dy w (reads w and dy) and the parameter gradients dw = dy^T x, db = sum_n dy
// (read x and dy), so a frozen classifier does not keep x alive.
//
// Dimension key: N batch, I input features, O output features.
#include <cstring>

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

// Every product runs on the calling thread (kernels::sgemm_serial) with its packing
// memory in the step's planned workspace: the classifier's products are small (a batch
// of rows times ten classes), and a planned step allocates nothing.
size_t pack_bytes(bool trans_b, int64_t M, int64_t N, int64_t K) {
  return kernels::sgemm_pack_floats(trans_b, M, N, K) * sizeof(float);
}
float* pack_of(const RunContext& c) { return static_cast<float*>(c.workspace); }
const Shape& shape_of(const graph::Graph& g, const graph::Node& n, size_t input) {
  return g.value(n.inputs[input]).type.shape;
}

}  // namespace

// dx[N, I] = dy[N, O] w[O, I]; inputs: dy, w.
const graph::OpDef kLinearBackwardData{
    .name = "linear_backward_data",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{{Shape{c.shape(0)[0], c.shape(1)[1]}}}; },
    .forward =
        [](const RunContext& c) {
          const int64_t N = c.inputs[0].shape()[0], O = c.inputs[1].shape()[0], I = c.inputs[1].shape()[1];
          kernels::sgemm_serial(false, false, N, I, O, 1.0f, c.inputs[0].f32(), O, c.inputs[1].f32(), I, 0.0f,
                                c.outputs[0].f32(), I, pack_of(c));
        },
    .workspace_bytes =
        [](const graph::Graph& g, const graph::Node& n) {
          const Shape &dy = shape_of(g, n, 0), &w = shape_of(g, n, 1);
          return pack_bytes(false, dy[0], w[1], w[0]);
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
          const float *x = c.inputs[0].f32(), *dy = c.inputs[1].f32();
          kernels::sgemm_serial(true, false, O, I, N, 1.0f, dy, O, x, I, 0.0f, c.outputs[0].f32(), I, pack_of(c));
          if (c.outputs.size() > 1) {
            float* db = c.outputs[1].f32();
            std::memcpy(db, dy, size_t(O) * sizeof(float));
            for (int64_t r = 1; r < N; ++r)
              for (int64_t o = 0; o < O; ++o) db[o] += dy[r * O + o];
          }
        },
    .workspace_bytes =
        [](const graph::Graph& g, const graph::Node& n) {
          const Shape &x = shape_of(g, n, 0), &dy = shape_of(g, n, 1);
          return pack_bytes(false, dy[1], x[1], x[0]);
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
          float* y = c.outputs[0].f32();
          const float* b = c.inputs.size() > 2 ? c.inputs[2].f32() : nullptr;
          if (b)
            for (int64_t r = 0; r < N; ++r) std::memcpy(y + r * O, b, size_t(O) * sizeof(float));
          kernels::sgemm_serial(false, true, N, O, I, 1.0f, c.inputs[0].f32(), I, c.inputs[1].f32(), I, b ? 1.0f : 0.0f,
                                y, O, pack_of(c));
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
    .workspace_bytes =
        [](const graph::Graph& g, const graph::Node& n) {
          const Shape &x = shape_of(g, n, 0), &w = shape_of(g, n, 1);
          return pack_bytes(true, x[0], w[0], x[1]);
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
