// OpDef: what the graph engine knows of an op — a table of functions that ops/
// fills in, one op per file (ops/conv2d.cc holds the conv2d OpDef, its backward
// OpDefs, its shape inference and its gradient rule side by side).
//
//   const OpDef kRelu{
//       .name = "relu",
//       .infer = [](const InferContext& c) { return std::vector{c.input(0)}; },
//       .forward = [](const RunContext& c) { kernels::relu_forward(...); },
//       .gradient = [](GradContext& c) { c.set_input_grad(0, relu_backward(c.graph(), ...)); },
//       .inplace_input = 0,
//   };
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "graph/ir.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace onnas::graph {

class InferContext {
 public:
  InferContext(const Graph& g, const std::string& node_name, std::string_view op_name,
               std::span<const ValueId> inputs, const Attrs& attrs)
      : g_(g), node_name_(node_name), op_name_(op_name), inputs_(inputs), attrs_(attrs) {}

  size_t num_inputs() const { return inputs_.size(); }
  const TensorType& input(size_t i) const { return g_.type(inputs_[i]); }
  const Shape& shape(size_t i) const { return input(i).shape; }
  const std::string& input_name(size_t i) const { return g_.name(inputs_[i]); }
  template <typename A>
  const A& attrs() const {
    return attrs_.get<A>();
  }
  // Throws onnas::Error: "<op> '<node>': <message>".
  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    throw Error(fmt::format("{} '{}': {}", op_name_, node_name_, fmt::format(format, std::forward<Args>(args)...)));
  }
  // Checks the count, then each input's rank (-1 = any) and dtype.
  void expect_inputs(size_t count) const;
  void expect_rank(size_t i, int rank) const;
  void expect_dtype(size_t i, DType dtype) const;

 private:
  const Graph& g_;
  const std::string& node_name_;
  std::string_view op_name_;  // OpDef::name, a string literal
  std::span<const ValueId> inputs_;
  const Attrs& attrs_;
};

struct RunContext {
  const void* attributes;  // the step's copy in its program's attribute table
  const AttrsType* attributes_type;
  std::span<const Tensor> inputs;
  std::span<const Tensor> outputs;
  void* workspace;               // workspace_bytes() bytes of planned scratch, 64-byte aligned
  const uint8_t* gates = nullptr;  // this run's open gates by GateId; nullptr: every gate open
  template <typename A>
  const A& attrs() const {
    return attrs_as<A>(attributes, attributes_type);
  }
  // For ops whose attributes name gates (a term or element that exists only in some runs).
  bool open(GateId g) const { return g == kAlways || !gates || gates[size_t(g)] != 0; }
};

// What a gradient rule sees. Rules emit ordinary graph nodes (through the ops/
// builder functions) for the inputs that need a gradient, and hand them back with
// set_input_grad. Output gradients that nothing produced are kNoValue (zero).
//
// Rematerialization: input(i) and output(i) are the forward values a rule reads. When
// such a value is the output of an op with a `recompute` form whose inputs all live
// outside the arena (feeds, parameters) or are kept for the backward anyway (output 0
// of a node whose OpDef::backward_reads_output says so), autodiff hands the rule a
// copy recomputed in the backward instead (one per value, ordered after this node's
// output gradient), so the forward output dies after its forward readers. A relu of
// a fed cell input, or of a non-affine batch norm, then keeps nothing from the
// forward to the backward.
class GradContext {
 public:
  // Maps a forward value read by a rule to what the rule should read (`after`: a
  // value of the backward the recomputation must follow).
  using Remat = std::function<ValueId(ValueId value, ValueId after)>;
  GradContext(Graph& g, NodeId node, std::vector<ValueId> output_grads, std::vector<bool> needs_grad,
              const Remat* remat = nullptr)
      : g_(g), node_(node), output_grads_(std::move(output_grads)), needs_(std::move(needs_grad)),
        input_grads_(needs_.size(), kNoValue), remat_(remat) {}

  Graph& graph() { return g_; }
  const Node& node() const { return g_.node(node_); }
  ValueId input(size_t i) const { return forward_value(node().inputs[i]); }
  ValueId output(size_t i) const { return forward_value(node().outputs[i]); }
  // The shape of forward input i, for rules that need only that (no recomputation).
  const Shape& input_shape(size_t i) const { return g_.shape(node().inputs[i]); }
  ValueId output_grad(size_t i) const { return output_grads_[i]; }
  bool needs_grad(size_t i) const { return needs_[i]; }
  template <typename A>
  const A& attrs() const {
    return node().attrs.get<A>();
  }
  // A name for a backward value, e.g. "grad/cells.0.conv" + suffix.
  std::string grad_name(const std::string& suffix = "") const { return "grad/" + node().name + suffix; }
  void set_input_grad(size_t i, ValueId grad);
  const std::vector<ValueId>& input_grads() const { return input_grads_; }

 private:
  ValueId forward_value(ValueId v) const {
    if (!remat_) return v;
    for (ValueId d : output_grads_)
      if (d != kNoValue) return (*remat_)(v, d);
    return v;
  }
  Graph& g_;
  NodeId node_;
  std::vector<ValueId> output_grads_;
  std::vector<bool> needs_;
  std::vector<ValueId> input_grads_;
  const Remat* remat_;
};

struct OpDef {
  const char* name = "";
  // Output types from the inputs and attributes; throws through InferContext::fail.
  std::vector<TensorType> (*infer)(const InferContext&) = nullptr;
  // Writes the outputs from the inputs. Never allocates.
  void (*forward)(const RunContext&) = nullptr;
  // Emits the gradient nodes. nullptr: the op has no gradient (an error if one is needed).
  void (*gradient)(GradContext&) = nullptr;
  // Scratch bytes the forward needs, planned for this node's step only.
  size_t (*workspace_bytes)(const Graph&, const Node&) = nullptr;
  // Names of the outputs (for ops with several); output i is called "<node>.<names[i]>".
  std::vector<std::string> output_names = {};
  // The input whose storage output 0 may take over when that input dies here, or -1.
  int inplace_input = -1;
  // Writes to memory beyond its outputs (a ParamStore gradient, running statistics):
  // never removed by dead-code elimination.
  bool side_effects = false;
  // Passes gradients through unchanged in no way (stop_gradient): autodiff stops here.
  bool blocks_gradient = false;
  // The same op with one more input, ignored but read, that orders it: what autodiff
  // emits to recompute this op's output in the backward (see GradContext). nullptr:
  // outputs are kept when the backward reads them.
  const OpDef* recompute = nullptr;
  // With `recompute`: the nodes worth recomputing (cheap ones, e.g. depthwise convs
  // but not dense ones). nullptr: every node of the op.
  bool (*recompute_if)(const Node&) = nullptr;
  // Whether this node's gradient rule reads its output 0 (so that value is kept for
  // the backward anyway and a recomputation from it costs no memory). nullptr: no.
  bool (*backward_reads_output)(const Node&) = nullptr;
};

}  // namespace onnas::graph
