// softmax_cross_entropy: loss[1] = mean over the batch of -log softmax(logits)[label].
// The probabilities are the second output ({loss, probs}): the backward is
// dlogits = (probs - onehot(labels)) * dloss / N and reads only them and the labels,
// so the logits can die after the forward. Labels are i32 and get no gradient.
//
// Dimension key: N batch, K classes.
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/ops.h"
#include "runtime/kernels/dense.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::kNoValue;
using graph::RunContext;
using graph::TensorType;

}  // namespace

// dlogits; inputs: probs, labels, dloss ([1], read at run time).
const graph::OpDef kSoftmaxCrossEntropyBackward{
    .name = "softmax_cross_entropy_backward",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(0)}; },
    .forward =
        [](const RunContext& c) {
          const Shape& p = c.inputs[0].shape();
          kernels::softmax_xent_backward(p[0], p[1], c.inputs[0].f32(), c.inputs[1].i32(), c.inputs[2].f32()[0],
                                         c.outputs[0].f32());
        },
    // Not in place: the kernel writes a row, then reads probs[label] again.
};

const graph::OpDef kSoftmaxCrossEntropy{
    .name = "softmax_cross_entropy",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(2);
          c.expect_rank(0, 2);
          c.expect_rank(1, 1);
          c.expect_dtype(0, DType::f32);
          c.expect_dtype(1, DType::i32);
          if (c.shape(1)[0] != c.shape(0)[0])
            c.fail("labels '{}' {} do not match the {} rows of logits '{}' {}", c.input_name(1), c.shape(1).str(),
                   c.shape(0)[0], c.input_name(0), c.shape(0).str());
          if (c.shape(0)[0] < 1 || c.shape(0)[1] < 1)
            c.fail("logits '{}' {} are empty", c.input_name(0), c.shape(0).str());
          return std::vector<TensorType>{{Shape{1}, DType::f32}, c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          const Shape& z = c.inputs[0].shape();
          c.outputs[0].f32()[0] =
              kernels::softmax_xent_forward(z[0], z[1], c.inputs[0].f32(), c.inputs[1].i32(), c.outputs[1].f32());
        },
    .gradient =
        [](GradContext& c) {
          ONNAS_CHECK(c.output_grad(1) == kNoValue,
                      "softmax_cross_entropy '{}': probs are saved for the backward, not a differentiable output",
                      c.node().name);
          c.set_input_grad(0, c.graph().add_node1(kSoftmaxCrossEntropyBackward, c.grad_name(),
                                                  {c.output(1), c.input(1), c.output_grad(0)}));
        },
    .output_names = {"loss", "probs"},
};

ValueId softmax_cross_entropy(Graph& g, ValueId logits, ValueId labels, const std::string& name) {
  return g.add_node(kSoftmaxCrossEntropy, name, {logits, labels}).at(0);
}

}  // namespace onnas::ops
