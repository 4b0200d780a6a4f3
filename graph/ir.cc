#include "graph/ir.h"

#include "graph/op.h"

namespace onnas::graph {

const char* value_kind_name(ValueKind k) {
  switch (k) {
    case ValueKind::input: return "input";
    case ValueKind::param: return "param";
    case ValueKind::param_grad: return "param_grad";
    case ValueKind::activation: return "activation";
    case ValueKind::gradient: return "gradient";
  }
  return "?";
}

std::string Graph::unique_name(const std::string& base) {
  int& n = name_count_[base];
  ++n;
  return n == 1 ? base : fmt::format("{}#{}", base, n);
}

ValueId Graph::input(const std::string& name, const TensorType& type) {
  Value v;
  v.name = unique_name(name);
  v.type = type;
  v.kind = ValueKind::input;
  values_.push_back(std::move(v));
  param_grads_.push_back(kNoValue);
  return ValueId(values_.size() - 1);
}

ValueId Graph::param(const std::string& name, const TensorType& type) {
  // By name through an index: a scan of every value made building a graph quadratic
  // (a 64-cell supernet took 31 s to emit).
  if (auto it = param_index_.find(name); it != param_index_.end()) {
    const Value& p = values_[size_t(it->second)];
    if (p.type != type)
      fail("parameter '{}' is used with shape {} and with shape {}", name, p.type.shape.str(), type.shape.str());
    return it->second;
  }
  param_index_.emplace(name, ValueId(values_.size()));
  Value v;
  v.name = name;
  v.type = type;
  v.kind = ValueKind::param;
  values_.push_back(std::move(v));
  param_grads_.push_back(kNoValue);
  return ValueId(values_.size() - 1);
}

ValueId Graph::param_grad(ValueId param) {
  ONNAS_CHECK(value(param).kind == ValueKind::param, "'{}' is not a parameter", name(param));
  if (param_grads_[size_t(param)] != kNoValue) return param_grads_[size_t(param)];
  Value v;
  v.name = value(param).name + "@grad";
  v.type = value(param).type;
  v.kind = ValueKind::param_grad;
  values_.push_back(std::move(v));
  param_grads_.push_back(kNoValue);
  param_grads_[size_t(param)] = ValueId(values_.size() - 1);
  return ValueId(values_.size() - 1);
}

std::vector<ValueId> Graph::add_node(const OpDef& op, const std::string& name, std::vector<ValueId> inputs,
                                     Attrs attrs) {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i] < 0 || size_t(inputs[i]) >= values_.size())
      fail("{} '{}': input {} is not a value of this graph", op.name, name, i);
  std::string node_name = unique_name(prefix_.empty() || in_backward_ ? name : prefix_ + "." + name);
  InferContext ctx(*this, node_name, op.name, inputs, attrs);
  std::vector<TensorType> types = op.infer(ctx);

  Node n;
  n.op = &op;
  n.name = node_name;
  n.inputs = std::move(inputs);
  n.attrs = std::move(attrs);
  n.backward = in_backward_;
  n.gate = gate_;
  NodeId id = NodeId(nodes_.size());
  for (size_t i = 0; i < types.size(); ++i) {
    Value v;
    v.name = types.size() == 1 || i >= op.output_names.size() ? (types.size() == 1 ? node_name
                                                                                   : fmt::format("{}.{}", node_name, i))
                                                              : node_name + "." + op.output_names[i];
    v.type = types[i];
    v.kind = in_backward_ ? ValueKind::gradient : ValueKind::activation;
    v.producer = id;
    v.output_index = int(i);
    n.outputs.push_back(ValueId(values_.size()));
    values_.push_back(std::move(v));
    param_grads_.push_back(kNoValue);
  }
  nodes_.push_back(std::move(n));
  return nodes_.back().outputs;
}

Graph::GateScope::GateScope(Graph& g, GateId gate, bool exact) : g_(g), prev_(g.gate_) {
  if (exact) {
    if (gate != kAlways && !g.gate_space_) fail("gate {} used in a graph without a gate space (Graph::use_gates)", gate);
    g.gate_ = gate;
    return;
  }
  if (gate == kAlways) return;
  if (!g.gate_space_) fail("gate {} used in a graph without a gate space (Graph::use_gates)", gate);
  g.gate_ = g.gate_space_->all_of(prev_, gate);
}

void InferContext::expect_inputs(size_t count) const {
  if (inputs_.size() != count) fail("expects {} inputs, got {}", count, inputs_.size());
}

void InferContext::expect_rank(size_t i, int rank) const {
  if (shape(i).rank() != rank)
    fail("input {} ('{}') must have rank {}, has shape {}", i, input_name(i), rank, shape(i).str());
}

void InferContext::expect_dtype(size_t i, DType dtype) const {
  if (input(i).dtype != dtype)
    fail("input {} ('{}') must be {}, is {}", i, input_name(i), dtype_name(dtype), dtype_name(input(i).dtype));
}

void GradContext::set_input_grad(size_t i, ValueId grad) {
  ONNAS_CHECK(i < input_grads_.size(), "{}: gradient for input {} of {}", node().name, i, input_grads_.size());
  const ValueId in = node().inputs[i];
  if (grad != kNoValue && g_.type(grad) != g_.type(in))
    fail("gradient rule of {} '{}': gradient for input {} has shape {}, the input has {}", node().op->name,
         node().name, i, g_.shape(grad).str(), g_.shape(in).str());
  input_grads_[i] = grad;
}

}  // namespace onnas::graph
