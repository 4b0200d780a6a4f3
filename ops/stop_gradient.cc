// stop_gradient: y = x, and no gradient flows back through it. Autodiff stops at
// ops with blocks_gradient, so nothing in front of it gets backward nodes and its
// activations die in the forward (the non-sampled paths of a DARTS step). Forward
// is in place whenever x dies here, so the identity usually costs no memory or time.
#include <cstring>

#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"

namespace onnas::ops {

const graph::OpDef kStopGradient{
    .name = "stop_gradient",
    .infer =
        [](const graph::InferContext& c) {
          c.expect_inputs(1);
          return std::vector<graph::TensorType>{c.input(0)};
        },
    .forward =
        [](const graph::RunContext& c) {
          if (c.outputs[0].data() != c.inputs[0].data())
            std::memcpy(c.outputs[0].data(), c.inputs[0].data(), c.outputs[0].bytes());
        },
    .inplace_input = 0,
    .blocks_gradient = true,
};

ValueId stop_gradient(Graph& g, ValueId x, const std::string& name) { return g.add_node1(kStopGradient, name, {x}); }

const OnnxOp kStopGradientOnnx{&kStopGradient, [](OnnxLowering& l) { l.emit("Identity", {l.input(0)}, {l.output(0)}); }};

}  // namespace onnas::ops
