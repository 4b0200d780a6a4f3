#include "graph/autodiff.h"

#include <algorithm>
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
  // The gradient of each value, summed as its contributions arrive (a running sum, so
  // each contribution dies as soon as it is added, instead of all of them living until
  // one sum at the end). Contributions made under different run-time gates are added
  // by a gated sum, which adds the ones that exist in the run (graph/gates.h).
  std::map<ValueId, ValueId> sum_of;
  auto contribute = [&](ValueId v, ValueId grad) {
    auto [it, fresh] = sum_of.emplace(v, grad);
    if (fresh) return;
    const ValueId terms[] = {it->second, grad};
    const GateId gates[] = {g.gate_of(it->second), g.gate_of(grad)};
    const std::string name = "grad/" + g.name(v) + ".sum";
    if (gates[0] == gates[1]) {
      Graph::GateScope scope(g, gates[0], /*exact=*/true);
      it->second = add_n(g, terms, name);
    } else {
      it->second = add_n_gated(g, terms, gates, name);
    }
  };
  auto grad_of = [&](ValueId v) -> ValueId {
    auto it = sum_of.find(v);
    return it == sum_of.end() ? kNoValue : it->second;
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
    contribute(s.value, grad);
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
  // Forward value -> its copy, made once per gate (a copy made behind one gate does not
  // exist in runs where only another is open).
  std::map<std::pair<ValueId, GateId>, ValueId> recomputed;
  std::function<ValueId(ValueId, ValueId)> remat_impl = [&](ValueId v, ValueId after) -> ValueId {
    if (!recomputable(v)) return v;
    const auto key = std::make_pair(v, g.current_gate());
    if (auto it = recomputed.find(key); it != recomputed.end()) return it->second;
    const Node& p = g.node(g.value(v).producer);
    const OpDef& op = *p.op->recompute;
    const std::string name = p.name + ".recomputed";
    Attrs attrs = p.attrs;
    std::vector<ValueId> inputs = p.inputs;  // copies: making copies of inputs may move g's nodes
    for (ValueId& in : inputs) in = remat_impl(in, after);
    inputs.push_back(after);
    const ValueId copy = g.add_node1(op, name, std::move(inputs), std::move(attrs));
    recomputed.emplace(key, copy);
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
    // The rule's nodes exist when its output gradients do.
    GateId gate = kAlways;
    bool first_grad = true;
    for (ValueId d : out_grads) {
      if (d == kNoValue) continue;
      if (!first_grad && g.gate_of(d) != gate)
        fail("backward: node '{}' receives gradients under different run-time gates ('{}' and '{}')", g.node(n).name,
             gate == kAlways ? "always" : g.gates()->name(gate), g.gates()->name(g.gate_of(d)));
      gate = g.gate_of(d);
      first_grad = false;
    }
    std::vector<ValueId> input_grads;
    {
      Graph::GateScope gate_scope(g, gate);
      GradContext ctx(g, n, std::move(out_grads), needs, &remat);
      op->gradient(ctx);
      input_grads = ctx.input_grads();
    }
    // `node` may dangle now: the rule appended nodes (and contribute() appends more).
    const std::vector<ValueId> inputs = g.node(n).inputs;
    for (size_t i = 0; i < inputs.size(); ++i)
      if (needs[i] && input_grads[i] != kNoValue) contribute(inputs[i], input_grads[i]);
  }

  std::vector<ValueId> result;
  for (ValueId v : wrt) result.push_back(grad_of(v));
  return result;
}

}  // namespace onnas::graph
