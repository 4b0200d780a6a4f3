// The graph IR: a Graph of Nodes and Values in SSA form (every value produced once),
// each value with its shape, dtype and a readable name, so plans and dumps read like
// the network. Ops are described by OpDef tables (graph/op.h) that ops/ provides;
// the graph never includes an ops/ header.
//
//   Graph g;
//   ValueId x = g.input("x", {Shape{32, 1, 28, 28}});
//   ValueId w = g.param("stem.conv.weight", {Shape{48, 1, 3, 3}});
//   ValueId y = ops::conv2d(g, x, w, {.pad = 1});           // appends a Node
//   auto grads = backward(g, loss, {w});                     // graph/autodiff.h
//   Program p = compile(g, {.outputs = {loss}, .param_grads = {{w, grads[0]}}});
#pragma once

#include <memory>
#include <unordered_map>
#include <cstdint>
#include <string>
#include <vector>

#include "graph/attrs.h"
#include "graph/gates.h"
#include "runtime/param_store.h"
#include "runtime/shape.h"

namespace onnas::graph {

using ValueId = int32_t;
using NodeId = int32_t;
constexpr ValueId kNoValue = -1;

struct TensorType {
  Shape shape;
  DType dtype = DType::f32;
  size_t bytes() const { return size_t(shape.numel()) * dtype_size(dtype); }
  bool operator==(const TensorType&) const = default;
};

enum class ValueKind : uint8_t {
  input,       // fed at run time (images, labels, a seed gradient)
  param,       // a ParamStore tensor, bound by name (weights, arch params, BN running stats)
  param_grad,  // the ParamStore gradient of a param, bound by name; written only by accumulate
  activation,  // produced by a forward node; lives in the arena
  gradient,    // produced by a node that autodiff emitted; lives in the arena
};
const char* value_kind_name(ValueKind k);

struct Value {
  std::string name;
  TensorType type;
  ValueKind kind = ValueKind::activation;
  NodeId producer = -1;  // -1 for inputs and params
  int output_index = 0;
};

struct OpDef;

struct Node {
  const OpDef* op = nullptr;
  std::string name;
  std::vector<ValueId> inputs;
  std::vector<ValueId> outputs;
  Attrs attrs;
  bool backward = false;  // emitted by autodiff
  GateId gate = kAlways;  // runs only when this gate is open (graph/gates.h)
};

class Graph {
 public:
  ValueId input(const std::string& name, const TensorType& type);
  ValueId param(const std::string& name, const TensorType& type);
  // The ParamStore gradient of `param` as a value (ValueKind::param_grad).
  ValueId param_grad(ValueId param);

  // Appends a node: validates the inputs, infers output types with op.infer (which
  // throws onnas::Error naming the node and values on a mismatch), names the outputs
  // `name` (or `name.<output name>` for ops with several outputs). Returns the outputs.
  std::vector<ValueId> add_node(const OpDef& op, const std::string& name, std::vector<ValueId> inputs,
                                Attrs attrs = {});
  ValueId add_node1(const OpDef& op, const std::string& name, std::vector<ValueId> inputs, Attrs attrs = {}) {
    return add_node(op, name, std::move(inputs), std::move(attrs)).at(0);
  }

  const Value& value(ValueId v) const { return values_.at(size_t(v)); }
  const Node& node(NodeId n) const { return nodes_.at(size_t(n)); }
  const TensorType& type(ValueId v) const { return value(v).type; }
  const Shape& shape(ValueId v) const { return value(v).type.shape; }
  const std::string& name(ValueId v) const { return value(v).name; }
  size_t num_values() const { return values_.size(); }
  size_t num_nodes() const { return nodes_.size(); }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Value>& values() const { return values_; }

  // While a BackwardScope is alive, new nodes are marked backward and their
  // outputs are gradient values (graph/autodiff.cc uses it).
  class BackwardScope {
   public:
    explicit BackwardScope(Graph& g) : g_(g), prev_(g.in_backward_) { g.in_backward_ = true; }
    ~BackwardScope() { g_.in_backward_ = prev_; }
    BackwardScope(const BackwardScope&) = delete;
    BackwardScope& operator=(const BackwardScope&) = delete;

   private:
    Graph& g_;
    bool prev_;
  };

  // Run-time gates (graph/gates.h): the space this graph's gates live in, shared with
  // the other graphs of a schedule. Nodes added while a GateScope lives carry its gate
  // (nested scopes: all of them).
  void use_gates(std::shared_ptr<GateSpace> space) { gate_space_ = std::move(space); }
  GateSpace* gates() const { return gate_space_.get(); }
  const std::shared_ptr<GateSpace>& gate_space() const { return gate_space_; }
  GateId current_gate() const { return gate_; }
  // The gate under which `v` exists: its producer's (kAlways for inputs and parameters).
  GateId gate_of(ValueId v) const {
    const NodeId p = value(v).producer;
    return p < 0 ? kAlways : node(p).gate;
  }
  // Nodes added while it lives carry all of the enclosing scopes' gates and `gate`;
  // with exact = true, `gate` alone.
  class GateScope {
   public:
    GateScope(Graph& g, GateId gate, bool exact = false);
    ~GateScope() { g_.gate_ = prev_; }
    GateScope(const GateScope&) = delete;
    GateScope& operator=(const GateScope&) = delete;

   private:
    Graph& g_;
    GateId prev_;
  };

  // A name not used yet: `base`, or `base#2`, `base#3`, ...
  std::string unique_name(const std::string& base);

  // Names of nodes built while a Scope lives are prefixed with it:
  //   { Graph::Scope s(g, "cells.0"); Graph::Scope t(g, "node1"); ops::relu(g, x); }  // "cells.0.node1.relu"
  class Scope {
   public:
    Scope(Graph& g, const std::string& name) : g_(g), size_(g.prefix_.size()) {
      g.prefix_ += g.prefix_.empty() ? name : "." + name;
    }
    ~Scope() { g_.prefix_.resize(size_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Graph& g_;
    size_t size_;
  };
  const std::string& scope_prefix() const { return prefix_; }

 private:
  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<ValueId> param_grads_;  // per value: its param_grad value, or kNoValue
  std::unordered_map<std::string, ValueId> param_index_;  // param values by name
  std::unordered_map<std::string, int> name_count_;
  bool in_backward_ = false;
  std::string prefix_;
  std::shared_ptr<GateSpace> gate_space_;
  GateId gate_ = kAlways;
};

}  // namespace onnas::graph
