// mask_gradient: y = x forward; backward passes dy only where mask is 1 (flat index),
// zero elsewhere; or, with gates, only where element i's gate is open in the run. The
// sampled search puts it in front of softmax(alpha) and softmax(beta), so the
// architecture entries of non-sampled ops and pairs receive exactly zero gradient even
// though the softmax couples every entry (ONNAS.md §4-5).
#include <algorithm>
#include <cstring>

#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/ops.h"

namespace onnas::ops {
namespace {

struct MaskAttrs {
  std::vector<uint8_t> mask;         // static, or empty
  std::vector<graph::GateId> gates;  // run-time, or empty
  size_t size() const { return std::max(mask.size(), gates.size()); }
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const MaskAttrs&) const = default;
};

void masked_copy(const graph::RunContext& c) {
  const MaskAttrs& a = c.attrs<MaskAttrs>();
  const float* x = c.inputs[0].f32();
  float* y = c.outputs[0].f32();
  for (size_t i = 0; i < a.size(); ++i) {
    const bool pass = (a.mask.empty() || a.mask[i]) && (a.gates.empty() || c.open(a.gates[i]));
    y[i] = pass ? x[i] : 0.0f;
  }
}

}  // namespace

const graph::OpDef kMaskGradientBackward{
    .name = "mask_gradient_backward",
    .infer = [](const graph::InferContext& c) { return std::vector<graph::TensorType>{c.input(0)}; },
    .forward = masked_copy,
    .inplace_input = 0,
};

const graph::OpDef kMaskGradient{
    .name = "mask_gradient",
    .infer =
        [](const graph::InferContext& c) {
          c.expect_inputs(1);
          c.expect_dtype(0, DType::f32);
          if (int64_t(c.attrs<MaskAttrs>().size()) != c.shape(0).numel())
            c.fail("mask has {} entries, input '{}' {} has {}", c.attrs<MaskAttrs>().size(), c.input_name(0),
                   c.shape(0).str(), c.shape(0).numel());
          return std::vector<graph::TensorType>{c.input(0)};
        },
    .forward =
        [](const graph::RunContext& c) {
          if (c.outputs[0].data() != c.inputs[0].data())
            std::memcpy(c.outputs[0].data(), c.inputs[0].data(), c.outputs[0].bytes());
        },
    .gradient =
        [](graph::GradContext& c) {
          c.set_input_grad(0, c.graph().add_node1(kMaskGradientBackward, c.grad_name(), {c.output_grad(0)},
                                                  c.node().attrs));
        },
    .inplace_input = 0,
};

ValueId mask_gradient(Graph& g, ValueId x, std::vector<uint8_t> mask, const std::string& name) {
  return g.add_node1(kMaskGradient, name, {x}, MaskAttrs{std::move(mask), {}});
}

ValueId mask_gradient(Graph& g, ValueId x, std::vector<graph::GateId> gates, const std::string& name) {
  return g.add_node1(kMaskGradient, name, {x}, MaskAttrs{{}, std::move(gates)});
}

}  // namespace onnas::ops
