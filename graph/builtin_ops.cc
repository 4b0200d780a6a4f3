#include "graph/builtin_ops.h"

#include "runtime/kernels/elementwise.h"
#include "runtime/small_vector.h"

namespace onnas::graph {

const OpDef kAddN{
    .name = "add_n",
    .infer =
        [](const InferContext& c) {
          if (c.num_inputs() < 1) c.fail("needs at least one input");
          for (size_t i = 1; i < c.num_inputs(); ++i)
            if (c.input(i) != c.input(0))
              c.fail("input {} ('{}') has shape {}, input 0 ('{}') has {}", i, c.input_name(i), c.shape(i).str(),
                     c.input_name(0), c.shape(0).str());
          return std::vector<TensorType>{c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          int64_t n = c.outputs[0].numel();
          float* y = c.outputs[0].f32();
          if (c.inputs.size() == 1) {
            if (y != c.inputs[0].f32()) std::memcpy(y, c.inputs[0].f32(), size_t(n) * 4);
            return;
          }
          kernels::add(n, c.inputs[0].f32(), c.inputs[1].f32(), y);
          for (size_t i = 2; i < c.inputs.size(); ++i) kernels::accumulate(n, c.inputs[i].f32(), y);
        },
    .gradient =
        [](GradContext& c) {
          for (size_t i = 0; i < c.node().inputs.size(); ++i)
            if (c.needs_grad(i)) c.set_input_grad(i, c.output_grad(0));
        },
    .inplace_input = 0,
};

namespace {
struct GatedTerms {
  SmallVector<GateId, 8> gates;  // per input; in place up to 8 (copied with a program's table)
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const GatedTerms&) const = default;
};
}  // namespace

const OpDef kAddNGated{
    .name = "add_n_gated",
    .infer = kAddN.infer,
    .forward =
        [](const RunContext& c) {
          const auto& gates = c.attrs<GatedTerms>().gates;
          const int64_t n = c.outputs[0].numel();
          float* y = c.outputs[0].f32();
          bool first = true;
          for (size_t i = 0; i < c.inputs.size(); ++i) {
            if (!c.open(gates[i])) continue;
            if (first) {
              if (y != c.inputs[i].f32()) std::memcpy(y, c.inputs[i].f32(), size_t(n) * 4);
              first = false;
            } else {
              kernels::accumulate(n, c.inputs[i].f32(), y);
            }
          }
          ONNAS_DCHECK(!first, "add_n_gated ran with every term closed");
        },
    .inplace_input = 0,
};

const OpDef kAccumulateGrad{
    .name = "accumulate_grad",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(2);
          if (c.input(0) != c.input(1))
            c.fail("gradient '{}' {} does not match parameter gradient '{}' {}", c.input_name(0), c.shape(0).str(),
                   c.input_name(1), c.shape(1).str());
          return std::vector<TensorType>{};
        },
    .forward = [](const RunContext& c) { kernels::accumulate(c.inputs[0].numel(), c.inputs[0].f32(), c.inputs[1].f32()); },
    .side_effects = true,
};

struct FillAttrs {
  TensorType type;
  float value;
};

const OpDef kFill{
    .name = "fill",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{c.attrs<FillAttrs>().type}; },
    .forward = [](const RunContext& c) { kernels::fill(c.outputs[0].numel(), c.attrs<FillAttrs>().value, c.outputs[0].f32()); },
};

ValueId fill(Graph& g, const TensorType& type, float value, const std::string& name) {
  return g.add_node1(kFill, name, {}, FillAttrs{type, value});
}

ValueId add_n(Graph& g, std::span<const ValueId> values, const std::string& name) {
  ONNAS_CHECK(!values.empty(), "add_n '{}' of no values", name);
  if (values.size() == 1) return values[0];
  return g.add_node1(kAddN, name, std::vector<ValueId>(values.begin(), values.end()));
}

ValueId add_n_gated(Graph& g, std::span<const ValueId> values, std::span<const GateId> gates, const std::string& name) {
  ONNAS_CHECK(values.size() == gates.size() && values.size() > 1, "add_n_gated '{}': {} values, {} gates", name,
              values.size(), gates.size());
  Graph::GateScope scope(g, g.gates()->any_of(gates), /*exact=*/true);
  return g.add_node1(kAddNGated, name, std::vector<ValueId>(values.begin(), values.end()),
                     GatedTerms{SmallVector<GateId, 8>(gates)});
}

void accumulate_grad(Graph& g, ValueId param, ValueId grad) {
  Graph::GateScope scope(g, g.gate_of(grad), /*exact=*/true);
  ValueId dst = g.param_grad(param);
  g.add_node(kAccumulateGrad, "accumulate/" + g.name(param), {grad, dst});
}

}  // namespace onnas::graph
