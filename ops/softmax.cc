// softmax over the last axis: y = exp(x - max) / sum exp(x - max), row by row. The
// backward reads the output (dx = y * (dy - <dy, y>)), not the input, so x can die
// after the forward.
//
// Dimension key: rows = the product of all axes but the last, n = the last axis.
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/ops.h"
#include "runtime/kernels/dense.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::RunContext;
using graph::TensorType;

struct Rows {
  int64_t rows, n;
};
Rows rows_of(const Shape& s) {
  const int64_t n = s[s.rank() - 1];
  return {n > 0 ? s.numel() / n : 0, n};
}

}  // namespace

// dx = y * (dy - <dy, y>) per row; inputs: y, dy.
const graph::OpDef kSoftmaxBackward{
    .name = "softmax_backward",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(0)}; },
    .forward =
        [](const RunContext& c) {
          const Rows r = rows_of(c.inputs[0].shape());
          kernels::softmax_backward(r.rows, r.n, c.inputs[0].f32(), c.inputs[1].f32(), c.outputs[0].f32());
        },
};

const graph::OpDef kSoftmax{
    .name = "softmax",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(1);
          c.expect_dtype(0, DType::f32);
          if (c.shape(0).rank() < 1 || c.shape(0)[c.shape(0).rank() - 1] < 1)
            c.fail("input '{}' {} has no last axis to normalize over", c.input_name(0), c.shape(0).str());
          return std::vector<TensorType>{c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          const Rows r = rows_of(c.inputs[0].shape());
          kernels::softmax_forward(r.rows, r.n, c.inputs[0].f32(), c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          c.set_input_grad(0, c.graph().add_node1(kSoftmaxBackward, c.grad_name(), {c.output(0), c.output_grad(0)}));
        },
};

ValueId softmax(Graph& g, ValueId x, const std::string& name) { return g.add_node1(kSoftmax, name, {x}); }

}  // namespace onnas::ops
