// Emitters for the supernet and the discrete network. Dimension key: N batch, C the
// cell's channels, H W its spatial size, k candidate ops, E edges, P pairs of a node.
#include "nas/network.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "ops/ops.h"
#include "runtime/error.h"

namespace onnas::nas {
namespace {

using graph::kNoValue;
using graph::TensorType;

std::string qualified(const Graph& g, const std::string& name) {
  return g.scope_prefix().empty() ? name : g.scope_prefix() + "." + name;
}

int64_t channels_of(const Graph& g, ValueId x) { return g.shape(x)[1]; }

// A conv layer with its weight named "<scope>.<name>.weight" (no bias: BN follows).
ValueId conv(Graph& g, ValueId x, const std::string& name, int64_t out, int64_t kh, int64_t kw, ops::Conv2dAttrs a) {
  int64_t in = channels_of(g, x) / a.groups;
  ValueId w = g.param(qualified(g, name) + ".weight", {Shape{out, in, kh, kw}});
  return ops::conv2d(g, x, w, a, name);
}

ValueId bn(Graph& g, ValueId x, const std::string& name, BnMode mode) {
  int64_t c = channels_of(g, x);
  ops::BatchNormParams p;
  std::string q = qualified(g, name);
  if (mode.affine) {
    p.gamma = g.param(q + ".weight", {Shape{c}});
    p.beta = g.param(q + ".bias", {Shape{c}});
  }
  if (mode.track_running) {
    p.running_mean = g.param(q + ".running_mean", {Shape{c}});
    p.running_var = g.param(q + ".running_var", {Shape{c}});
  }
  return ops::batch_norm(g, x, p, {.training = mode.training}, name);
}

// ReLU, 1x1 conv, BN (the preprocessing of a cell input); `relu_x`, the ReLU of x when
// it exists already.
ValueId relu_conv_bn(Graph& g, ValueId x, int64_t out, const std::string& scope, BnMode mode,
                     ValueId relu_x = kNoValue) {
  Graph::Scope s(g, scope);
  ValueId y = relu_x != kNoValue ? relu_x : ops::relu(g, x);
  y = conv(g, y, "conv", out, 1, 1, {});
  return bn(g, y, "bn", mode);
}

// ReLU, then two 1x1 stride-2 convs, on x and on x shifted by one pixel, concatenated, BN.
ValueId factorized_reduce(Graph& g, ValueId x, int64_t out, const std::string& scope, BnMode mode,
                          ValueId relu_x = kNoValue) {
  Graph::Scope s(g, scope);
  const Shape sh = g.shape(x);  // a copy: emitting nodes may move the graph's values
  ValueId r = relu_x != kNoValue ? relu_x : ops::relu(g, x);
  ValueId a = conv(g, r, "conv1", out / 2, 1, 1, {.stride = 2});
  ValueId shifted = ops::crop(g, r, 1, 1, sh[2] - 1, sh[3] - 1, "shift");
  ValueId b = conv(g, shifted, "conv2", out - out / 2, 1, 1, {.stride = 2});
  ValueId parts[] = {a, b};
  return bn(g, ops::concat(g, parts, "concat"), "bn", mode);
}

// The candidate ops, one emitter each (the list: nas/candidate_ops.inc). Each reads its
// input state x with C channels (C out) at stride 1 or 2, and `relu_x`, the ReLU of x
// shared by the ops of x's edges (kNoValue for ops that do not read it).
using CandidateEmitter = ValueId (*)(Graph& g, ValueId x, ValueId relu_x, int64_t stride, BnMode mode);
enum class Relu { never, always, at_stride_2 };

// A depthwise k x k conv (dilation d, stride s) followed by a pointwise 1x1 conv.
ValueId dw_pw(Graph& g, ValueId y, int64_t k, int64_t dil, int64_t stride, const std::string& dw,
              const std::string& pw) {
  const int64_t C = channels_of(g, y);
  y = conv(g, y, dw, C, k, k, {.stride = stride, .pad = dil * (k - 1) / 2, .dilation = dil, .groups = C});
  return conv(g, y, pw, C, 1, 1, {});
}

ValueId emit_none(Graph&, ValueId, ValueId, int64_t, BnMode) { return kNoValue; }
ValueId emit_max_pool_3x3(Graph& g, ValueId x, ValueId, int64_t stride, BnMode mode) {
  return bn(g, ops::max_pool2d(g, x, {.kernel = 3, .stride = stride, .pad = 1}), "bn", mode);
}
ValueId emit_avg_pool_3x3(Graph& g, ValueId x, ValueId, int64_t stride, BnMode mode) {
  return bn(g, ops::avg_pool2d(g, x, {.kernel = 3, .stride = stride, .pad = 1}), "bn", mode);
}
ValueId emit_skip_connect(Graph& g, ValueId x, ValueId relu_x, int64_t stride, BnMode mode) {
  if (stride == 1) return x;
  // Not a nested scope: the factorized reduce names its layers under "skip_connect".
  const int64_t C = channels_of(g, x);
  const Shape sh = g.shape(x);  // a copy: emitting nodes may move the graph's values
  ValueId a = conv(g, relu_x, "conv1", C / 2, 1, 1, {.stride = 2});
  ValueId shifted = ops::crop(g, relu_x, 1, 1, sh[2] - 1, sh[3] - 1, "shift");
  ValueId b = conv(g, shifted, "conv2", C - C / 2, 1, 1, {.stride = 2});
  ValueId parts[] = {a, b};
  return bn(g, ops::concat(g, parts, "concat"), "bn", mode);
}
ValueId emit_conv_1x5_5x1(Graph& g, ValueId x, ValueId relu_x, int64_t stride, BnMode mode) {
  const int64_t C = channels_of(g, x);
  ValueId y = conv(g, relu_x, "conv1x5", C, 1, 5, {.pad_h = 0, .pad_w = 2, .stride_h = 1, .stride_w = stride});
  y = conv(g, y, "conv5x1", C, 5, 1, {.pad_h = 2, .pad_w = 0, .stride_h = stride, .stride_w = 1});
  return bn(g, y, "bn", mode);
}
ValueId emit_conv_3x3(Graph& g, ValueId, ValueId relu_x, int64_t stride, BnMode mode) {
  return bn(g, dw_pw(g, relu_x, 3, 1, stride, "dw", "pw"), "bn", mode);
}
ValueId emit_dil_conv_3x3(Graph& g, ValueId, ValueId relu_x, int64_t stride, BnMode mode) {
  return bn(g, dw_pw(g, relu_x, 3, 2, stride, "dw", "pw"), "bn", mode);
}
ValueId emit_dil_conv_5x5(Graph& g, ValueId, ValueId relu_x, int64_t stride, BnMode mode) {
  return bn(g, dw_pw(g, relu_x, 5, 2, stride, "dw", "pw"), "bn", mode);
}
ValueId sep_conv(Graph& g, ValueId relu_x, int64_t k, int64_t stride, BnMode mode) {
  ValueId y = bn(g, dw_pw(g, relu_x, k, 1, stride, "dw1", "pw1"), "bn1", mode);
  y = ops::relu(g, y, "relu2");
  return bn(g, dw_pw(g, y, k, 1, 1, "dw2", "pw2"), "bn2", mode);
}
ValueId emit_sep_conv_3x3(Graph& g, ValueId, ValueId relu_x, int64_t stride, BnMode mode) {
  return sep_conv(g, relu_x, 3, stride, mode);
}
ValueId emit_sep_conv_5x5(Graph& g, ValueId, ValueId relu_x, int64_t stride, BnMode mode) {
  return sep_conv(g, relu_x, 5, stride, mode);
}

struct Candidate {
  CandidateEmitter emit;
  Relu relu;
};
constexpr Candidate kCandidates[] = {
#define ONNAS_CANDIDATE(kind, name, relu) {emit_##kind, Relu::relu},
#include "nas/candidate_ops.inc"
#undef ONNAS_CANDIDATE
};
static_assert(std::size(kCandidates) == kNumOpKinds, "one emitter per candidate op");

bool reads_relu(OpKind kind, int64_t stride) {
  const Relu r = kCandidates[size_t(kind)].relu;
  return r == Relu::always || (r == Relu::at_stride_2 && stride == 2);
}

// One candidate op of an edge, in its own name scope.
ValueId emit_candidate(Graph& g, OpKind kind, ValueId x, ValueId relu_x, int64_t stride, BnMode mode) {
  Graph::Scope s(g, op_kind_name(kind));
  return kCandidates[size_t(kind)].emit(g, x, relu_x, stride, mode);
}

}  // namespace

std::vector<ValueId> params_of_kind(const Graph& g, const ParamStore& params, ParamKind kind) {
  std::vector<ValueId> out;
  for (const graph::Value& v : g.values())
    if (v.kind == graph::ValueKind::param && params.entry(v.name).kind == kind)
      out.push_back(ValueId(&v - g.values().data()));
  return out;
}

Sample full_sample(const SearchSpace& space) {
  CellSample c;
  c.grad_ops.assign(size_t(space.num_edges()), std::vector<uint8_t>(size_t(space.num_ops()), 1));
  c.grad_pair.assign(size_t(space.nodes), -1);
  return {c, c};
}

bool CellGates::gated() const {
  for (graph::GateId g : ops)
    if (g != graph::kAlways) return true;
  for (const auto& node : pairs)
    for (graph::GateId g : node)
      if (g != graph::kAlways) return true;
  return false;
}

MixGates ungated(const SearchSpace& space) {
  CellGates c;
  c.ops.assign(size_t(space.num_edges() * space.num_ops()), graph::kAlways);
  for (int j = 0; j < space.nodes; ++j) c.pairs.emplace_back(space.pairs(j).size(), graph::kAlways);
  return {c, c};
}

ValueId emit_stem(Graph& g, const SearchSpace& space, ValueId x, BnMode mode) {
  Graph::Scope s(g, "stem");
  ValueId y = conv(g, x, "conv", int64_t(space.stem_multiplier) * space.channels, 3, 3, {.pad = 1});
  return bn(g, y, "bn", mode);
}

ValueId emit_cell(Graph& g, const SearchSpace& space, int cell, ValueId s0, ValueId s1, BnMode mode,
                  const CellBody& body, ValueId relu_s0, ValueId relu_s1) {
  const bool reduction_prev = cell > 0 && space.is_reduction(cell - 1);
  const int64_t C = space.cell_channels(cell);
  Graph::Scope scope(g, fmt::format("cells.{}", cell));
  const ValueId state0 = reduction_prev ? factorized_reduce(g, s0, C, "pre0", mode, relu_s0)
                                        : relu_conv_bn(g, s0, C, "pre0", mode, relu_s0);
  const ValueId state1 = relu_conv_bn(g, s1, C, "pre1", mode, relu_s1);
  const std::vector<ValueId> nodes = body(g, cell, state0, state1);
  ONNAS_CHECK(nodes.size() == size_t(space.nodes), "cell {}: {} nodes, the space has {}", cell, nodes.size(),
              space.nodes);
  return ops::concat(g, nodes, "out");
}

Head emit_head(Graph& g, const SearchSpace& space, ValueId s_last, ValueId labels) {
  Graph::Scope s(g, "classifier");
  ValueId pooled = ops::global_avg_pool(g, s_last, "gap");
  int64_t c = g.shape(pooled)[1];
  ValueId w = g.param("classifier.weight", {Shape{space.classes, c}});
  ValueId b = g.param("classifier.bias", {Shape{space.classes}});
  ValueId logits = ops::linear(g, pooled, w, b, "logits");
  return {logits, ops::softmax_cross_entropy(g, logits, labels, "loss")};
}

SearchNet emit_network(Graph& g, const SearchSpace& space, int64_t batch, BnMode mode, const CellBody& body) {
  space.validate();
  SearchNet net;
  net.x = g.input("x", {Shape{batch, space.in_channels, space.height, space.width}});
  net.labels = g.input("labels", {Shape{batch}, DType::i32});
  ValueId stem = emit_stem(g, space, net.x, mode);
  net.states.push_back(stem);
  // A cell's output is the input s1 of the next cell and s0 of the one after: one ReLU
  // serves both preprocessings (the stem's, all three of cells 0 and 1).
  ValueId s0 = stem, s1 = stem;
  ValueId r0 = ops::relu(g, stem, "stem.relu"), r1 = r0;
  for (int i = 0; i < space.cells; ++i) {
    ValueId out = emit_cell(g, space, i, s0, s1, mode, body, r0, r1);
    net.states.push_back(out);
    s0 = s1, r0 = r1;
    s1 = out;
    r1 = i + 1 < space.cells ? ops::relu(g, out, fmt::format("cells.{}.out.relu", i)) : kNoValue;
  }
  Head h = emit_head(g, space, s1, net.labels);
  net.logits = h.logits;
  net.loss = h.loss;
  return net;
}

namespace {

// The ReLU of each state of a cell, emitted once, when an op first reads it.
class StateRelus {
 public:
  ValueId of(Graph& g, const std::vector<ValueId>& states, int a) {
    if (relu_.size() < states.size()) relu_.resize(states.size(), kNoValue);
    ValueId& r = relu_[size_t(a)];
    if (r == kNoValue) r = ops::relu(g, states[size_t(a)], fmt::format("relu_s{}", a));
    return r;
  }

 private:
  std::vector<ValueId> relu_;
};

}  // namespace

CellBody search_body(const SearchSpace& space, const MixGates& gates, BnMode mode) {
  return [space, gates, mode](Graph& g, int cell, ValueId state0, ValueId state1) {
    const bool reduction = space.is_reduction(cell);
    const CellGates& cg = gates.of(reduction);
    const int64_t k = space.num_ops();
    const std::string kind = reduction ? "reduce" : "normal";
    std::vector<ValueId> states{state0, state1};
    StateRelus relus;
    // An entry of alpha gets a gradient only in runs where its op's gate is open,
    // although the softmax couples every entry of a row.
    ValueId alpha = g.param("alpha." + kind, {Shape{space.num_edges(), k}});
    if (cg.gated()) alpha = ops::mask_gradient(g, alpha, cg.ops, "alpha_mask");
    const ValueId op_weights = ops::softmax(g, alpha, "alpha_softmax");
    for (int j = 0; j < space.nodes; ++j) {
      Graph::Scope node_scope(g, fmt::format("nodes.{}", j));
      std::vector<ValueId> edges;
      for (int a = 0; a < 2 + j; ++a) {
        const int e = space.first_edge(j) + a;
        Graph::Scope edge_scope(g, fmt::format("edges.{}", e));
        const int64_t stride = reduction && a < 2 ? 2 : 1;
        std::vector<ValueId> values;
        std::vector<int64_t> indices;
        std::vector<graph::GateId> term_gates;
        for (int64_t o = 0; o < k; ++o) {
          const OpKind op = space.ops[size_t(o)];
          if (op == OpKind::none) continue;
          const ValueId relu_x = reads_relu(op, stride) ? relus.of(g, states, a) : kNoValue;
          values.push_back(emit_candidate(g, op, states[size_t(a)], relu_x, stride, mode));
          indices.push_back(int64_t(e) * k + o);
          term_gates.push_back(cg.ops[size_t(e * k + o)]);
        }
        edges.push_back(ops::weighted_sum(g, values, op_weights, indices, "mixed", term_gates));
      }
      const auto pairs = space.pairs(j);
      ValueId beta = g.param(fmt::format("beta.{}.{}", kind, j), {Shape{int64_t(pairs.size())}});
      const std::vector<graph::GateId>& pair_gates = cg.pairs[size_t(j)];
      if (std::any_of(pair_gates.begin(), pair_gates.end(), [](graph::GateId x) { return x != graph::kAlways; }))
        beta = ops::mask_gradient(g, beta, pair_gates, "beta_mask");
      const ValueId pair_weights = ops::softmax(g, beta, "beta_softmax");
      std::vector<ValueId> values;
      std::vector<int64_t> indices;
      std::vector<graph::GateId> term_gates;
      for (size_t p = 0; p < pairs.size(); ++p)
        for (int a : {pairs[p].first, pairs[p].second}) {
          values.push_back(edges[size_t(a)]);
          indices.push_back(int64_t(p));
          term_gates.push_back(pair_gates[p]);
        }
      states.push_back(ops::weighted_sum(g, values, pair_weights, indices, "pairs", term_gates));
    }
    return std::vector<ValueId>(states.begin() + 2, states.end());
  };
}

CellBody discrete_body(const SearchSpace& space, const Genotype& genotype, BnMode mode) {
  return [space, genotype, mode](Graph& g, int cell, ValueId state0, ValueId state1) {
    const bool reduction = space.is_reduction(cell);
    std::vector<ValueId> states{state0, state1};
    StateRelus relus;
    const auto& nodes = genotype.of(reduction);
    for (int j = 0; j < space.nodes; ++j) {
      Graph::Scope node_scope(g, fmt::format("nodes.{}", j));
      std::vector<ValueId> terms;
      for (const GenotypeEdge& edge : nodes[size_t(j)]) {
        const int e = space.first_edge(j) + edge.input;
        Graph::Scope edge_scope(g, fmt::format("edges.{}", e));
        const int64_t stride = reduction && edge.input < 2 ? 2 : 1;
        const ValueId x = states[size_t(edge.input)];
        const ValueId r = reads_relu(edge.op, stride) ? relus.of(g, states, edge.input) : kNoValue;
        const ValueId v = emit_candidate(g, edge.op, x, r, stride, mode);
        if (v != kNoValue) terms.push_back(v);
      }
      if (terms.empty()) fail("genotype: node {} of cell {} has only 'none' edges", j, cell);
      states.push_back(terms.size() == 1 ? terms[0] : ops::add(g, terms[0], terms[1], "sum"));
    }
    return std::vector<ValueId>(states.begin() + 2, states.end());
  };
}

SearchNet emit_search_net(Graph& g, const SearchSpace& space, int64_t batch, const MixGates& gates) {
  return emit_network(g, space, batch, {}, search_body(space, gates));
}

SearchNet emit_search_net(Graph& g, const SearchSpace& space, int64_t batch) {
  return emit_search_net(g, space, batch, ungated(space));
}

ValueId emit_search_cell(Graph& g, const SearchSpace& space, int cell, ValueId s0, ValueId s1, const MixGates& gates) {
  return emit_cell(g, space, cell, s0, s1, {}, search_body(space, gates));
}

SearchNet emit_discrete_net(Graph& g, const SearchSpace& space, const Genotype& genotype, int64_t batch,
                            bool training) {
  space.validate();
  genotype.validate(space, "genotype");
  const BnMode mode{.affine = true, .track_running = true, .training = training};
  return emit_network(g, space, batch, mode, discrete_body(space, genotype, mode));
}

ParamList param_list(const Graph& g) {
  ParamList list;
  size_t bytes = 0, count = 0;
  for (const graph::Value& v : g.values())
    if (v.kind == graph::ValueKind::param) bytes += v.name.size(), ++count;
  list.names.reserve(bytes);
  list.items.reserve(count);
  for (const graph::Value& v : g.values()) {
    if (v.kind != graph::ValueKind::param) continue;
    list.items.push_back({uint32_t(list.names.size()), uint32_t(v.name.size()), v.type});
    list.names += v.name;
  }
  return list;
}

void init_params(ParamStore& params, const Graph& g, Rng& rng) { init_params(params, param_list(g), rng); }

void init_params(ParamStore& params, const ParamList& list, Rng& rng) {
  for (size_t p = 0; p < list.items.size(); ++p) {
    const std::string name(list.name(p));
    if (params.contains(name)) continue;
    const Shape& shape = list.items[p].type.shape;
    const bool is_arch = name.rfind("alpha.", 0) == 0 || name.rfind("beta.", 0) == 0;
    const bool is_bn = name.find(".bn") != std::string::npos;
    if (name.ends_with(".running_mean") || name.ends_with(".running_var")) {
      Tensor t = params.add(name, shape, ParamKind::buffer);
      if (name.ends_with(".running_var"))
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 1.0f;
      continue;
    }
    Tensor t = params.add_weight(name, shape, is_arch ? ParamKind::arch : ParamKind::weight);
    float* w = t.f32();
    if (is_arch) {
      for (int64_t i = 0; i < t.numel(); ++i) w[i] = 1e-3f * rng.normal();
    } else if (is_bn) {
      if (name.ends_with(".weight"))
        for (int64_t i = 0; i < t.numel(); ++i) w[i] = 1.0f;
    } else {
      int64_t fan_in = 1;
      if (name.ends_with(".bias")) {
        const std::string wname = name.substr(0, name.size() - 5) + ".weight";
        const Shape* ws = nullptr;
        for (size_t u = 0; u < list.items.size(); ++u)
          if (list.name(u) == wname) ws = &list.items[u].type.shape;
        fan_in = ws ? ws->numel() / (*ws)[0] : shape[0];
      } else {
        fan_in = shape.numel() / shape[0];
      }
      float bound = 1.0f / std::sqrt(float(fan_in));
      for (int64_t i = 0; i < t.numel(); ++i) w[i] = (2.0f * rng.uniform() - 1.0f) * bound;
    }
  }
}

void init_search_params(ParamStore& params, const SearchSpace& space, uint64_t seed) {
  Graph g;
  emit_search_net(g, space, /*batch=*/2);  // shapes of parameters do not depend on the batch
  Rng rng(seed);
  init_params(params, g, rng);
}

}  // namespace onnas::nas
