#include "graph/autodiff.h"

#include <functional>
#include <map>

#include "graph/builtin_ops.h"
#include "graph/op.h"

namespace onnas::graph {

std::vector<ValueId> backward(Graph& g, ValueId loss, std::span<const ValueId> wrt) {
  if (g.shape(loss).numel() != 1)
    fail("backward: loss '{}' must be a scalar, has shape {}", g.name(loss), g.shape(loss).str());
  Seed seed{loss, kNoValue};
  return backward(g, std::span<const Seed>(&seed, 1), wrt);
}

std::vector<ValueId> backward(Graph& g, std::span<const Seed> seeds, std::span<const ValueId> wrt) {
  const size_t num_values = g.num_values();
  const NodeId num_nodes = NodeId(g.num_nodes());  // nodes emitted below are not visited

  // Values that depend on some wrt value, through ops that pass gradients.
  std::vector<bool> from_wrt(num_values, false);
  for (ValueId v : wrt) from_wrt[size_t(v)] = true;
  for (NodeId n = 0; n < num_nodes; ++n) {
    const Node& node = g.node(n);
    if (node.op->blocks_gradient || node.backward) continue;
    bool any = false;
    for (ValueId in : node.inputs) any = any || from_wrt[size_t(in)];
    if (any)
      for (ValueId out : node.outputs) from_wrt[size_t(out)] = true;
  }
  // Values that some seed depends on.
  std::vector<bool> to_seed(num_values, false);
  for (const Seed& s : seeds) to_seed[size_t(s.value)] = true;
  for (NodeId n = num_nodes - 1; n >= 0; --n) {
    const Node& node = g.node(n);
    if (node.op->blocks_gradient || node.backward) continue;
    bool any = false;
    for (ValueId out : node.outputs) any = any || to_seed[size_t(out)];
    if (any)
      for (ValueId in : node.inputs) to_seed[size_t(in)] = true;
  }

  Graph::BackwardScope scope(g);
  // Gradient contributions per value, summed when first read.
  std::map<ValueId, std::vector<ValueId>> contributions;
  auto grad_of = [&](ValueId v) -> ValueId {
    auto it = contributions.find(v);
    if (it == contributions.end() || it->second.empty()) return kNoValue;
    if (it->second.size() > 1) it->second = {add_n(g, it->second, "grad/" + g.name(v) + ".sum")};
    return it->second[0];
  };

  for (const Seed& s : seeds) {
    ValueId grad = s.gradient;
    if (grad == kNoValue) {
      if (g.shape(s.value).numel() != 1)
        fail("backward: seed '{}' is not a scalar and has no seed gradient", g.name(s.value));
      grad = fill(g, g.type(s.value), 1.0f, "grad/" + g.name(s.value) + ".seed");
    } else if (g.type(grad) != g.type(s.value)) {
      fail("backward: seed gradient '{}' {} does not match '{}' {}", g.name(grad), g.shape(grad).str(),
           g.name(s.value), g.shape(s.value).str());
    }
    contributions[s.value].push_back(grad);
  }

  // Rematerialization (see GradContext). A forward value is recomputable when its op
  // has a recompute form and every input is at hand in the backward: a feed or
  // parameter, kept anyway (output 0 of a node whose backward reads it, unless that
  // node is itself recomputed), or recomputable in turn (then its copy is used).
  std::map<ValueId, bool> recomputable_memo;
  std::function<bool(ValueId)> recomputable = [&](ValueId v) -> bool {
    if (auto it = recomputable_memo.find(v); it != recomputable_memo.end()) return it->second;
    bool ok = false;
    const NodeId producer = g.value(v).producer;
    if (producer >= 0 && producer < num_nodes) {
      const Node& p = g.node(producer);
      ok = p.op->recompute && (!p.op->recompute_if || p.op->recompute_if(p)) && p.outputs.size() == 1;
      for (size_t i = 0; ok && i < p.inputs.size(); ++i) {
        const ValueId in = p.inputs[i];
        const Value& val = g.value(in);
        if (val.kind == ValueKind::input || val.kind == ValueKind::param) continue;
        if (recomputable(in)) continue;
        const bool kept = val.producer >= 0 && val.producer < num_nodes && val.output_index == 0 &&
                          g.node(val.producer).op->backward_reads_output &&
                          g.node(val.producer).op->backward_reads_output(g.node(val.producer));
        ok = kept;
      }
    }
    recomputable_memo[v] = ok;
    return ok;
  };
  std::map<ValueId, ValueId> recomputed;  // forward value -> its copy, made once
  std::function<ValueId(ValueId, ValueId)> remat_impl = [&](ValueId v, ValueId after) -> ValueId {
    if (!recomputable(v)) return v;
    if (auto it = recomputed.find(v); it != recomputed.end()) return it->second;
    const Node& p = g.node(g.value(v).producer);
    const OpDef& op = *p.op->recompute;
    const std::string name = p.name + ".recomputed";
    std::any attrs = p.attrs;
    std::vector<ValueId> inputs = p.inputs;  // copies: making copies of inputs may move g's nodes
    for (ValueId& in : inputs) in = remat_impl(in, after);
    inputs.push_back(after);
    const ValueId copy = g.add_node1(op, name, std::move(inputs), std::move(attrs));
    recomputed.emplace(v, copy);
    return copy;
  };
  const GradContext::Remat remat = [&](ValueId v, ValueId after) { return remat_impl(v, after); };

  for (NodeId n = num_nodes - 1; n >= 0; --n) {
    const Node& node = g.node(n);
    if (node.op->blocks_gradient || node.backward) continue;
    std::vector<bool> needs(node.inputs.size());
    bool any_need = false;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      ValueId in = node.inputs[i];
      needs[i] = from_wrt[size_t(in)] && to_seed[size_t(in)] && g.value(in).type.dtype == DType::f32;
      any_need = any_need || needs[i];
    }
    if (!any_need) continue;
    // grad_of may append add_n nodes, which can move g's nodes: `node` is not used
    // after this point, only copies and a fresh look-up.
    const std::vector<ValueId> outputs = node.outputs;
    std::vector<ValueId> out_grads;
    bool any_grad = false;
    for (ValueId out : outputs) {
      out_grads.push_back(grad_of(out));
      any_grad = any_grad || out_grads.back() != kNoValue;
    }
    if (!any_grad) continue;
    const OpDef* op = g.node(n).op;
    if (!op->gradient) fail("backward: op {} ('{}') has no gradient rule", op->name, g.node(n).name);
    GradContext ctx(g, n, std::move(out_grads), needs, &remat);
    op->gradient(ctx);
    // `node` may dangle now: the rule appended nodes.
    const Node& same = g.node(n);
    for (size_t i = 0; i < same.inputs.size(); ++i)
      if (needs[i] && ctx.input_grads()[i] != kNoValue) contributions[same.inputs[i]].push_back(ctx.input_grads()[i]);
  }

  std::vector<ValueId> result;
  for (ValueId v : wrt) result.push_back(grad_of(v));
  return result;
}

}  // namespace onnas::graph
