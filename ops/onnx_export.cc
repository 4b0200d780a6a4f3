#include "ops/onnx_export.h"

#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "graph/op.h"
#include "runtime/error.h"

namespace onnas::ops {

void OnnxLowering::unsupported(const std::string& why) const {
  fail("ONNX export: {} '{}': {}", node().op->name, node().name, why);
}

namespace {

#define ONNAS_ONNX_OP_ADDRESS(name) &name,
const OnnxOp* const kOnnxOps[] = {ONNAS_ONNX_LOWERINGS(ONNAS_ONNX_OP_ADDRESS)};
#undef ONNAS_ONNX_OP_ADDRESS

const OnnxOp* find_lowering(const graph::OpDef* op) {
  for (const OnnxOp* o : kOnnxOps)
    if (o->op == op) return o;
  return nullptr;
}

// The graph's values under ONNX names (unique; a value's own name where it is free),
// parameters as initializers, nodes appended as the lowerings emit them.
class Exporter final : public OnnxLowering {
 public:
  Exporter(const graph::Graph& g, const ParamStore& params, onnx::Graph& out) : g_(g), params_(params), out_(out) {}

  void lower(graph::NodeId n) {
    node_ = &g_.node(n);
    const OnnxOp* o = find_lowering(node_->op);
    if (!o) unsupported("no ONNX form (export the inference graph: outputs such as the logits, batch norm in eval mode)");
    o->lower(*this);
  }

  const graph::Graph& graph() const override { return g_; }
  const graph::Node& node() const override { return *node_; }
  std::string input(size_t i) override { return name_of(node_->inputs.at(i)); }
  std::string output(size_t i) override { return name_of(node_->outputs.at(i)); }
  std::string temp(const std::string& suffix) override { return unique(node_->name + "." + suffix); }
  std::string constant(onnx::Tensor t) override {
    std::string name = t.name;
    out_.initializers.push_back(std::move(t));
    return name;
  }
  void emit(std::string op_type, std::vector<std::string> inputs, std::vector<std::string> outputs,
            std::vector<onnx::Attribute> attributes) override {
    std::string name = unique(node_->name + (emitted_ == node_ ? "." + op_type : ""));
    emitted_ = node_;
    out_.nodes.push_back({std::move(op_type), std::move(name), std::move(inputs), std::move(outputs),
                          std::move(attributes)});
  }

  // The ONNX name of a graph value; a parameter's first use adds its initializer.
  std::string name_of(graph::ValueId v) {
    auto it = names_.find(v);
    if (it != names_.end()) return it->second;
    const graph::Value& value = g_.value(v);
    std::string name = unique(value.name);
    names_[v] = name;
    if (value.kind == graph::ValueKind::param) {
      const Tensor t = params_.get(value.name);
      if (t.dtype() != DType::f32) fail("ONNX export: parameter '{}' is not f32", value.name);
      std::vector<int64_t> dims(t.shape().dims().begin(), t.shape().dims().end());
      out_.initializers.push_back(onnx::Tensor::f32(name, dims, std::vector<float>(t.f32(), t.f32() + t.numel())));
    }
    return name;
  }
  // Gives value `v` the ONNX name `name` (an input renamed by the normalization).
  void rename(graph::ValueId v, const std::string& name) {
    names_[v] = name;
    used_.insert(name);
  }

 private:
  std::string unique(const std::string& base) {
    std::string name = base;
    for (int k = 2; used_.count(name); ++k) name = fmt::format("{}#{}", base, k);
    used_.insert(name);
    return name;
  }

  const graph::Graph& g_;
  const ParamStore& params_;
  onnx::Graph& out_;
  const graph::Node* node_ = nullptr;
  const graph::Node* emitted_ = nullptr;  // the node that emitted last (names its second node apart)
  std::unordered_map<graph::ValueId, std::string> names_;
  std::set<std::string> used_;
};

onnx::ValueInfo value_info(const std::string& name, const Shape& shape, const std::string& batch_symbol) {
  onnx::ValueInfo v{name, {}};
  for (int i = 0; i < shape.rank(); ++i) {
    if (i == 0 && !batch_symbol.empty())
      v.dims.emplace_back(batch_symbol);
    else
      v.dims.emplace_back(shape[i]);
  }
  return v;
}

// Consumers of each value name, graph outputs counted as readers too.
std::map<std::string, int> reader_counts(const onnx::Graph& g) {
  std::map<std::string, int> readers;
  for (const onnx::Node& n : g.nodes)
    for (const std::string& i : n.inputs) ++readers[i];
  for (const onnx::ValueInfo& o : g.outputs) ++readers[o.name];
  return readers;
}

std::string bias_name(onnx::Graph& g, const std::string& weight) {
  std::string base = weight.ends_with(".weight") ? weight.substr(0, weight.size() - 7) + ".bias" : weight + ".bias";
  std::string name = base;
  for (int k = 2; g.initializer(name); ++k) name = fmt::format("{}#{}", base, k);
  return name;
}

// Scales conv `c`'s output channels by s[offset + k] and adds shift[offset + k] to its bias.
void fold_into_conv(onnx::Graph& g, onnx::Node& conv, const std::vector<double>& s, const std::vector<double>& shift,
                    int64_t offset, const std::map<std::string, int>& readers) {
  onnx::Tensor* w = g.initializer(conv.inputs[1]);
  const int64_t k_out = w->dims[0], per = w->numel() / k_out;
  if (readers.at(conv.inputs[1]) > 1) {  // a shared weight keeps its values; this conv gets a copy
    onnx::Tensor copy = *w;
    copy.name = conv.name + ".folded_weight";
    conv.inputs[1] = copy.name;
    g.initializers.push_back(std::move(copy));
    w = &g.initializers.back();
  }
  std::vector<float> bias(size_t(k_out), 0.0f);
  if (conv.inputs.size() > 2) bias = g.initializer(conv.inputs[2])->f32_data;
  for (int64_t k = 0; k < k_out; ++k) {
    const double sk = s[size_t(offset + k)];
    for (int64_t e = 0; e < per; ++e) w->f32_data[size_t(k * per + e)] = float(double(w->f32_data[size_t(k * per + e)]) * sk);
    bias[size_t(k)] = float(double(bias[size_t(k)]) * sk + shift[size_t(offset + k)]);
  }
  if (conv.inputs.size() > 2) {
    g.initializer(conv.inputs[2])->f32_data = bias;
  } else {
    const std::string name = bias_name(g, conv.inputs[1]);
    g.initializers.push_back(onnx::Tensor::f32(name, {k_out}, bias));
    conv.inputs.push_back(name);
  }
}

}  // namespace

size_t fold_batch_norms(onnx::Model& model) {
  onnx::Graph& g = model.graph;
  size_t folded = 0;
  for (size_t b = 0; b < g.nodes.size(); ++b) {
    if (g.nodes[b].op_type != "BatchNormalization") continue;
    const std::map<std::string, int> readers = reader_counts(g);
    std::map<std::string, size_t> producer;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (const std::string& o : g.nodes[i].outputs) producer[o] = i;
    const onnx::Node bn = g.nodes[b];
    auto only_read_here = [&](const std::string& v) { return readers.count(v) && readers.at(v) == 1 && producer.count(v); };
    auto is_conv = [&](const std::string& v) {
      if (!only_read_here(v)) return false;
      const onnx::Node& c = g.nodes[producer.at(v)];
      return c.op_type == "Conv" && g.initializer(c.inputs[1]) && (c.inputs.size() < 3 || g.initializer(c.inputs[2]));
    };
    // The convs whose output channels the batch norm's channels are, in order.
    std::vector<size_t> convs;
    size_t concat = SIZE_MAX;
    if (is_conv(bn.inputs[0])) {
      convs.push_back(producer.at(bn.inputs[0]));
    } else if (only_read_here(bn.inputs[0]) && g.nodes[producer.at(bn.inputs[0])].op_type == "Concat") {
      concat = producer.at(bn.inputs[0]);
      const onnx::Attribute* axis = g.nodes[concat].find("axis");
      if (!axis || std::get<int64_t>(axis->value) != 1) continue;
      for (const std::string& part : g.nodes[concat].inputs) {
        if (!is_conv(part)) {
          convs.clear();
          break;
        }
        convs.push_back(producer.at(part));
      }
    }
    if (convs.empty()) continue;
    const onnx::Tensor *gamma = g.initializer(bn.inputs[1]), *beta = g.initializer(bn.inputs[2]),
                       *mean = g.initializer(bn.inputs[3]), *var = g.initializer(bn.inputs[4]);
    if (!gamma || !beta || !mean || !var) continue;
    const onnx::Attribute* eps_attr = bn.find("epsilon");
    const double eps = eps_attr ? double(std::get<float>(eps_attr->value)) : 1e-5;
    std::vector<double> s(gamma->f32_data.size()), shift(s.size());
    for (size_t c = 0; c < s.size(); ++c) {
      s[c] = double(gamma->f32_data[c]) / std::sqrt(double(var->f32_data[c]) + eps);
      shift[c] = double(beta->f32_data[c]) - double(mean->f32_data[c]) * s[c];
    }
    int64_t offset = 0;
    for (size_t c : convs) {
      fold_into_conv(g, g.nodes[c], s, shift, offset, readers);
      offset += g.initializer(g.nodes[c].inputs[1])->dims[0];
    }
    ONNAS_CHECK(offset == int64_t(s.size()), "fold_batch_norms: {} channels of convs for a batch norm of {}", offset,
                s.size());
    // The batch norm's output is now what it read.
    const size_t last = concat != SIZE_MAX ? concat : convs[0];
    g.nodes[last].outputs[0] = bn.outputs[0];
    g.nodes.erase(g.nodes.begin() + std::ptrdiff_t(b));
    --b;
    ++folded;
  }
  // Initializers nothing reads any more (the folded batch norms' statistics).
  const std::map<std::string, int> readers = reader_counts(g);
  std::erase_if(g.initializers, [&](const onnx::Tensor& t) { return !readers.count(t.name); });
  return folded;
}

onnx::Model export_onnx(const graph::Graph& g, const ParamStore& params, const OnnxExportOptions& options,
                        OnnxExportReport* report) {
  ONNAS_CHECK(!options.inputs.empty() && !options.outputs.empty(), "export_onnx: inputs and outputs are required");
  onnx::Model model;
  onnx::Graph& out = model.graph;
  Exporter ex(g, params, out);

  // The nodes the outputs need, in graph order (the order they were built: producers first).
  std::vector<bool> needed(g.num_nodes(), false);
  std::vector<graph::ValueId> stack(options.outputs.begin(), options.outputs.end());
  while (!stack.empty()) {
    const graph::ValueId v = stack.back();
    stack.pop_back();
    const graph::NodeId p = g.value(v).producer;
    if (p < 0 || needed[size_t(p)]) continue;
    needed[size_t(p)] = true;
    for (graph::ValueId i : g.node(p).inputs) stack.push_back(i);
  }

  for (size_t i = 0; i < options.inputs.size(); ++i) {
    const graph::ValueId x = options.inputs[i];
    const Shape& shape = g.shape(x);
    if (i == 0 && !options.input_mean.empty()) {
      // pixels -> (pixels - mean) * (1 / std) -> the graph's input.
      const int64_t c = shape[1];
      ONNAS_CHECK(int64_t(options.input_mean.size()) == c && int64_t(options.input_std.size()) == c,
                  "export_onnx: normalization of {} channels for an input of {}", options.input_mean.size(), c);
      std::vector<float> inv_std(static_cast<size_t>(c));
      for (int64_t k = 0; k < c; ++k) inv_std[size_t(k)] = 1.0f / options.input_std[size_t(k)];
      const std::string graph_input = g.name(x);
      ex.rename(x, graph_input);
      out.inputs.push_back(value_info(options.input_name, shape, options.batch_symbol));
      out.initializers.push_back(onnx::Tensor::f32("input.mean", {1, c, 1, 1}, options.input_mean));
      out.initializers.push_back(onnx::Tensor::f32("input.inv_std", {1, c, 1, 1}, inv_std));
      out.nodes.push_back({"Sub", "input.sub_mean", {options.input_name, "input.mean"}, {"input.centered"}, {}});
      out.nodes.push_back({"Mul", "input.scale", {"input.centered", "input.inv_std"}, {graph_input}, {}});
    } else {
      out.inputs.push_back(value_info(ex.name_of(x), shape, options.batch_symbol));
    }
  }
  for (size_t n = 0; n < g.num_nodes(); ++n)
    if (needed[n]) ex.lower(graph::NodeId(n));
  for (graph::ValueId y : options.outputs) out.outputs.push_back(value_info(ex.name_of(y), g.shape(y), options.batch_symbol));

  OnnxExportReport r;
  if (options.fold_batch_norms) r.folded_batch_norms = fold_batch_norms(model);
  r.nodes = out.nodes.size();
  r.initializers = out.initializers.size();
  for (const onnx::Node& n : out.nodes) r.batch_norms_left += n.op_type == "BatchNormalization";
  if (report) *report = r;
  return model;
}

}  // namespace onnas::ops
