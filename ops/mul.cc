// mul and weighted_sum: values scaled by entries (flat index) of a value s (the softmax of a
// mixed op's architecture weights), so gradients flow to s as well as to the values.
//
//   mul(x, s, i)                 y = s[i] * x
//   weighted_sum(v, s, idx)      y = sum_j s[idx[j]] * v[j], in one pass (no partial sums kept)
//   weighted_sum(v, s, idx, gates)   the same forward; term j gets gradients only in runs where
//                                    gates[j] is open (graph/gates.h): the sampled search's
//                                    gradient ops and pairs, chosen at run time
//
// Gradients: the values get s[i] * dy (a mul node on dy); s gets one [k] vector node,
// zero except at the indices used, where it holds dot(dy, value) (summed over the
// values sharing an index). The dot products run in double in fixed chunks. With
// gates, both are emitted per gate, behind it, so a term's value is read by the
// backward only in runs where its gate is open (the planner keeps it only then).
//
// Dimension key: k the length of s, n the number of elements of a value.
#include <algorithm>

#include "graph/builtin_ops.h"
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/ops.h"
#include "runtime/kernels/elementwise.h"
#include "runtime/small_vector.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::RunContext;
using graph::TensorType;

struct WeightedSumAttrs {
  // In place up to 8 (an edge's ops, a node's pairs): copied with a program's table.
  SmallVector<int64_t, 8> indices;        // into s, per value
  SmallVector<graph::GateId, 8> gates;    // per value, or empty: every term always gets gradients
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const WeightedSumAttrs&) const = default;
};

// Checks that input `at` is f32 and every (flat) index is inside it. Any rank: the
// mixed ops index the row-wise softmax of alpha [E, k] at e * k + o.
void check_scalars(const InferContext& c, size_t at, std::span<const int64_t> indices) {
  c.expect_dtype(at, DType::f32);
  const int64_t k = c.shape(at).numel();
  for (int64_t i : indices)
    if (i < 0 || i >= k) c.fail("index {} is outside '{}' {}", i, c.input_name(at), c.shape(at).str());
}

}  // namespace

// ds[k]: zero except ds[index] = dot(dy, x); inputs: dy, x, s (read for its length only).
const graph::OpDef kMulBackwardScalars{
    .name = "mul_backward_scalars",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(2)}; },
    .forward =
        [](const RunContext& c) {
          const Tensor& ds = c.outputs[0];
          kernels::fill(ds.numel(), 0.0f, ds.f32());
          ds.f32()[c.attrs<int64_t>()] = float(kernels::dot(c.inputs[0].numel(), c.inputs[0].f32(), c.inputs[1].f32()));
        },
};

const graph::OpDef kMul{
    .name = "mul",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(2);
          c.expect_dtype(0, DType::f32);
          const int64_t index = c.attrs<int64_t>();
          check_scalars(c, 1, std::span<const int64_t>(&index, 1));
          return std::vector<TensorType>{c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          kernels::scale(c.outputs[0].numel(), c.inputs[1].f32()[c.attrs<int64_t>()], c.inputs[0].f32(),
                         c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          graph::Graph& g = c.graph();
          const int64_t index = c.attrs<int64_t>();
          const ValueId dy = c.output_grad(0);
          if (c.needs_grad(0)) c.set_input_grad(0, g.add_node1(kMul, c.grad_name(".dx"), {dy, c.input(1)}, index));
          if (c.needs_grad(1))
            c.set_input_grad(
                1, g.add_node1(kMulBackwardScalars, c.grad_name(".ds"), {dy, c.input(0), c.input(1)}, index));
        },
    .inplace_input = 0,
};

// ds[k] = sum over j of dot(dy, values[j]) at indices[j]; inputs: dy, values..., s.
const graph::OpDef kWeightedSumBackwardScalars{
    .name = "weighted_sum_backward_scalars",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(c.num_inputs() - 1)}; },
    .forward =
        [](const RunContext& c) {
          const auto& indices = c.attrs<WeightedSumAttrs>().indices;
          const Tensor& ds = c.outputs[0];
          const Tensor& dy = c.inputs[0];
          kernels::fill(ds.numel(), 0.0f, ds.f32());
          for (size_t j = 0; j < indices.size(); ++j)
            ds.f32()[indices[j]] += float(kernels::dot(dy.numel(), dy.f32(), c.inputs[1 + j].f32()));
        },
};

// Inputs: values..., s; attributes: the index into s of each value (and its gate).
const graph::OpDef kWeightedSum{
    .name = "weighted_sum",
    .infer =
        [](const InferContext& c) {
          const WeightedSumAttrs& a = c.attrs<WeightedSumAttrs>();
          const auto& indices = a.indices;
          if (indices.empty()) c.fail("needs at least one value");
          if (!a.gates.empty() && a.gates.size() != indices.size())
            c.fail("{} gates for {} values", a.gates.size(), indices.size());
          c.expect_inputs(indices.size() + 1);
          for (size_t j = 0; j < indices.size(); ++j) {
            c.expect_dtype(j, DType::f32);
            if (c.shape(j) != c.shape(0))
              c.fail("value {} ('{}') has shape {}, value 0 ('{}') has {}", j, c.input_name(j), c.shape(j).str(),
                     c.input_name(0), c.shape(0).str());
          }
          check_scalars(c, indices.size(), indices);
          return std::vector<TensorType>{c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          const auto& indices = c.attrs<WeightedSumAttrs>().indices;
          const float* s = c.inputs[indices.size()].f32();
          const int64_t n = c.outputs[0].numel();
          float* y = c.outputs[0].f32();
          // Value 0 first: y may be value 0's storage (in place), read before written.
          kernels::scale(n, s[indices[0]], c.inputs[0].f32(), y);
          for (size_t j = 1; j < indices.size(); ++j) kernels::axpy(n, s[indices[j]], c.inputs[j].f32(), y);
        },
    .gradient =
        [](GradContext& c) {
          graph::Graph& g = c.graph();
          const WeightedSumAttrs& a = c.attrs<WeightedSumAttrs>();
          const auto& indices = a.indices;
          auto gate = [&](size_t j) { return a.gates.empty() ? graph::kAlways : a.gates[j]; };
          const size_t s_at = indices.size();
          const ValueId dy = c.output_grad(0);
          for (size_t j = 0; j < indices.size(); ++j)
            if (c.needs_grad(j)) {
              Graph::GateScope scope(g, gate(j));
              c.set_input_grad(j, g.add_node1(kMul, c.grad_name(fmt::format(".d{}", j)), {dy, c.input(s_at)}, indices[j]));
            }
          if (!c.needs_grad(s_at)) return;
          // One node per distinct gate, reading only that gate's values.
          std::vector<graph::GateId> order;
          for (size_t j = 0; j < indices.size(); ++j)
            if (std::find(order.begin(), order.end(), gate(j)) == order.end()) order.push_back(gate(j));
          std::vector<ValueId> parts;
          for (graph::GateId gj : order) {
            Graph::GateScope scope(g, gj);
            std::vector<ValueId> inputs{dy};
            WeightedSumAttrs part;
            for (size_t j = 0; j < indices.size(); ++j)
              if (gate(j) == gj) inputs.push_back(c.input(j)), part.indices.push_back(indices[j]);
            inputs.push_back(c.input(s_at));
            const std::string suffix = order.size() == 1 ? ".ds" : fmt::format(".ds{}", parts.size());
            parts.push_back(g.add_node1(kWeightedSumBackwardScalars, c.grad_name(suffix), std::move(inputs), part));
          }
          if (parts.size() == 1) return c.set_input_grad(s_at, parts[0]);
          std::vector<graph::GateId> gates;
          for (ValueId p : parts) gates.push_back(g.gate_of(p));
          c.set_input_grad(s_at, graph::add_n_gated(g, parts, gates, c.grad_name(".ds")));
        },
    .inplace_input = 0,
};

ValueId mul(Graph& g, ValueId x, ValueId s, int64_t index, const std::string& name) {
  return g.add_node1(kMul, name, {x, s}, index);
}

ValueId weighted_sum(Graph& g, std::span<const ValueId> values, ValueId s, std::span<const int64_t> indices,
                     const std::string& name, std::span<const graph::GateId> gates) {
  if (values.size() != indices.size())
    fail("weighted_sum '{}': {} values and {} indices into '{}'", name, values.size(), indices.size(), g.name(s));
  std::vector<ValueId> inputs(values.begin(), values.end());
  inputs.push_back(s);
  WeightedSumAttrs a{SmallVector<int64_t, 8>(indices), {}};
  if (std::any_of(gates.begin(), gates.end(), [](graph::GateId x) { return x != graph::kAlways; }))
    a.gates = SmallVector<graph::GateId, 8>(gates);
  return g.add_node1(kWeightedSum, name, std::move(inputs), std::move(a));
}

}  // namespace onnas::ops
