// Emitters for the supernet and the discrete network. Dimension key: N batch, C the
// cell's channels, H W its spatial size, k candidate ops, E edges, P pairs of a node.
#include "nas/network.h"

#include <algorithm>
#include <cmath>

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

// ReLU, 1x1 conv, BN (the preprocessing of a cell input).
ValueId relu_conv_bn(Graph& g, ValueId x, int64_t out, const std::string& scope, BnMode mode) {
  Graph::Scope s(g, scope);
  ValueId y = ops::relu(g, x);
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

// One candidate op on an input x with C channels (C out), stride s. `relu_x` is the
// ReLU of x, shared by every op that starts with one. kNoValue for `none`.
ValueId emit_op(Graph& g, OpKind kind, ValueId x, ValueId relu_x, int64_t stride, BnMode mode) {
  const int64_t C = channels_of(g, x);
  Graph::Scope s(g, op_kind_name(kind));
  auto dw_pw = [&](ValueId y, int64_t k, int64_t dil, int64_t st, const std::string& dw, const std::string& pw) {
    y = conv(g, y, dw, C, k, k, {.stride = st, .pad = dil * (k - 1) / 2, .dilation = dil, .groups = C});
    return conv(g, y, pw, C, 1, 1, {});
  };
  switch (kind) {
    case OpKind::none: return kNoValue;
    case OpKind::max_pool_3x3:
      return bn(g, ops::max_pool2d(g, x, {.kernel = 3, .stride = stride, .pad = 1}), "bn", mode);
    case OpKind::avg_pool_3x3:
      return bn(g, ops::avg_pool2d(g, x, {.kernel = 3, .stride = stride, .pad = 1}), "bn", mode);
    case OpKind::skip_connect: {
      if (stride == 1) return x;
      // Not a nested scope: factorized_reduce names its layers under "skip_connect".
      const Shape sh = g.shape(x);  // a copy: emitting nodes may move the graph's values
      ValueId a = conv(g, relu_x, "conv1", C / 2, 1, 1, {.stride = 2});
      ValueId shifted = ops::crop(g, relu_x, 1, 1, sh[2] - 1, sh[3] - 1, "shift");
      ValueId b = conv(g, shifted, "conv2", C - C / 2, 1, 1, {.stride = 2});
      ValueId parts[] = {a, b};
      return bn(g, ops::concat(g, parts, "concat"), "bn", mode);
    }
    case OpKind::conv_1x5_5x1: {
      ValueId y = conv(g, relu_x, "conv1x5", C, 1, 5, {.pad_h = 0, .pad_w = 2, .stride_h = 1, .stride_w = stride});
      y = conv(g, y, "conv5x1", C, 5, 1, {.pad_h = 2, .pad_w = 0, .stride_h = stride, .stride_w = 1});
      return bn(g, y, "bn", mode);
    }
    case OpKind::conv_3x3: return bn(g, dw_pw(relu_x, 3, 1, stride, "dw", "pw"), "bn", mode);
    case OpKind::dil_conv_3x3: return bn(g, dw_pw(relu_x, 3, 2, stride, "dw", "pw"), "bn", mode);
    case OpKind::dil_conv_5x5: return bn(g, dw_pw(relu_x, 5, 2, stride, "dw", "pw"), "bn", mode);
    case OpKind::sep_conv_3x3:
    case OpKind::sep_conv_5x5: {
      int64_t k = kind == OpKind::sep_conv_3x3 ? 3 : 5;
      ValueId y = bn(g, dw_pw(relu_x, k, 1, stride, "dw1", "pw1"), "bn1", mode);
      y = ops::relu(g, y, "relu2");
      return bn(g, dw_pw(y, k, 1, 1, "dw2", "pw2"), "bn2", mode);
    }
  }
  fail("unhandled op kind {}", int(kind));
}

// sum_i s[idx_i] * v_i, with the terms whose flag is 0 added as a constant (no
// gradient reaches them, their inputs or their weights).
ValueId mix(Graph& g, const std::vector<ValueId>& values, ValueId weights, const std::vector<int64_t>& indices,
            const std::vector<uint8_t>& grad, const std::string& name) {
  std::vector<ValueId> gv, cv;
  std::vector<int64_t> gi, ci;
  for (size_t t = 0; t < values.size(); ++t) {
    (grad[t] ? gv : cv).push_back(values[t]);
    (grad[t] ? gi : ci).push_back(indices[t]);
  }
  std::vector<ValueId> parts;
  if (!gv.empty()) parts.push_back(ops::weighted_sum(g, gv, weights, gi, name));
  if (!cv.empty())
    parts.push_back(ops::stop_gradient(g, ops::weighted_sum(g, cv, weights, ci, name + "_const"), name + "_stop"));
  ONNAS_CHECK(!parts.empty(), "{}: nothing to mix", name);
  return parts.size() == 1 ? parts[0] : ops::add(g, parts[0], parts[1], name + "_total");
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

ValueId emit_stem(Graph& g, const SearchSpace& space, ValueId x, BnMode mode) {
  Graph::Scope s(g, "stem");
  ValueId y = conv(g, x, "conv", int64_t(space.stem_multiplier) * space.channels, 3, 3, {.pad = 1});
  return bn(g, y, "bn", mode);
}

ValueId emit_search_cell(Graph& g, const SearchSpace& space, int cell, ValueId s0, ValueId s1,
                         const CellSample& sample) {
  const BnMode mode{};
  const bool reduction = space.is_reduction(cell);
  const bool reduction_prev = cell > 0 && space.is_reduction(cell - 1);
  const int64_t C = space.cell_channels(cell);
  const int64_t k = space.num_ops();
  Graph::Scope scope(g, fmt::format("cells.{}", cell));

  std::vector<ValueId> states;
  states.push_back(reduction_prev ? factorized_reduce(g, s0, C, "pre0", mode) : relu_conv_bn(g, s0, C, "pre0", mode));
  states.push_back(relu_conv_bn(g, s1, C, "pre1", mode));
  std::vector<ValueId> relu_of;  // the ReLU of each state, emitted once when an op first needs it
  auto relu_state = [&](int a) {
    if (relu_of[size_t(a)] == kNoValue) relu_of[size_t(a)] = ops::relu(g, states[size_t(a)], fmt::format("relu_s{}", a));
    return relu_of[size_t(a)];
  };

  const std::string kind = reduction ? "reduce" : "normal";
  ValueId alpha = g.param("alpha." + kind, {Shape{space.num_edges(), k}});
  // Entries of non-sampled ops (or of edges outside the node's gradient pair) get no
  // gradient, although the softmax couples every entry of a row.
  std::vector<uint8_t> alpha_mask(size_t(space.num_edges() * k), 1);
  for (int j = 0; j < space.nodes; ++j) {
    const int gp = sample.grad_pair[size_t(j)];
    const auto pairs = space.pairs(j);
    for (int a = 0; a < 2 + j; ++a) {
      const int e = space.first_edge(j) + a;
      const bool in_pair = gp < 0 || pairs[size_t(gp)].first == a || pairs[size_t(gp)].second == a;
      for (int64_t o = 0; o < k; ++o)
        alpha_mask[size_t(e * k + o)] = in_pair && sample.grad_ops[size_t(e)][size_t(o)] ? 1 : 0;
    }
  }
  if (std::find(alpha_mask.begin(), alpha_mask.end(), 0) != alpha_mask.end())
    alpha = ops::mask_gradient(g, alpha, alpha_mask, "alpha_mask");
  ValueId op_weights = ops::softmax(g, alpha, "alpha_softmax");

  for (int j = 0; j < space.nodes; ++j) {
    Graph::Scope node_scope(g, fmt::format("nodes.{}", j));
    relu_of.resize(states.size(), kNoValue);
    const auto pairs = space.pairs(j);
    const int gp = sample.grad_pair[size_t(j)];
    std::vector<ValueId> edges;
    for (int a = 0; a < 2 + j; ++a) {
      const int e = space.first_edge(j) + a;
      const bool edge_in_grad_pair = gp < 0 || pairs[size_t(gp)].first == a || pairs[size_t(gp)].second == a;
      Graph::Scope edge_scope(g, fmt::format("edges.{}", e));
      const int64_t stride = reduction && a < 2 ? 2 : 1;
      std::vector<ValueId> values;
      std::vector<int64_t> indices;
      std::vector<uint8_t> grad;
      for (int64_t o = 0; o < k; ++o) {
        OpKind op = space.ops[size_t(o)];
        if (op == OpKind::none) continue;
        bool needs_relu = op != OpKind::max_pool_3x3 && op != OpKind::avg_pool_3x3 &&
                          !(op == OpKind::skip_connect && stride == 1);
        ValueId v = emit_op(g, op, states[size_t(a)], needs_relu ? relu_state(a) : kNoValue, stride, mode);
        values.push_back(v);
        indices.push_back(int64_t(e) * k + o);
        grad.push_back(edge_in_grad_pair && sample.grad_ops[size_t(e)][size_t(o)] ? 1 : 0);
      }
      edges.push_back(mix(g, values, op_weights, indices, grad, "mixed"));
    }
    ValueId beta = g.param(fmt::format("beta.{}.{}", kind, j), {Shape{int64_t(pairs.size())}});
    if (gp >= 0) {
      std::vector<uint8_t> beta_mask(pairs.size(), 0);
      beta_mask[size_t(gp)] = 1;
      beta = ops::mask_gradient(g, beta, beta_mask, "beta_mask");
    }
    ValueId pair_weights = ops::softmax(g, beta, "beta_softmax");
    std::vector<ValueId> values;
    std::vector<int64_t> indices;
    std::vector<uint8_t> grad;
    for (size_t p = 0; p < pairs.size(); ++p) {
      for (int a : {pairs[p].first, pairs[p].second}) {
        values.push_back(edges[size_t(a)]);
        indices.push_back(int64_t(p));
        grad.push_back(gp < 0 || gp == int(p) ? 1 : 0);
      }
    }
    states.push_back(mix(g, values, pair_weights, indices, grad, "pairs"));
  }
  std::vector<ValueId> nodes(states.begin() + 2, states.end());
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

SearchNet emit_search_net(Graph& g, const SearchSpace& space, int64_t batch, const Sample& sample) {
  space.validate();
  SearchNet net;
  net.x = g.input("x", {Shape{batch, space.in_channels, space.height, space.width}});
  net.labels = g.input("labels", {Shape{batch}, DType::i32});
  ValueId stem = emit_stem(g, space, net.x, {});
  net.states.push_back(stem);
  ValueId s0 = stem, s1 = stem;
  for (int i = 0; i < space.cells; ++i) {
    ValueId out = emit_search_cell(g, space, i, s0, s1, sample.of(space.is_reduction(i)));
    net.states.push_back(out);
    s0 = s1;
    s1 = out;
  }
  Head h = emit_head(g, space, s1, net.labels);
  net.logits = h.logits;
  net.loss = h.loss;
  return net;
}

SearchNet emit_discrete_net(Graph& g, const SearchSpace& space, const Genotype& genotype, int64_t batch,
                            bool training) {
  space.validate();
  genotype.validate(space, "genotype");
  const BnMode mode{.affine = true, .track_running = true, .training = training};
  SearchNet net;
  net.x = g.input("x", {Shape{batch, space.in_channels, space.height, space.width}});
  net.labels = g.input("labels", {Shape{batch}, DType::i32});
  ValueId stem = emit_stem(g, space, net.x, mode);
  net.states.push_back(stem);
  ValueId s0 = stem, s1 = stem;
  for (int i = 0; i < space.cells; ++i) {
    const bool reduction = space.is_reduction(i);
    const bool reduction_prev = i > 0 && space.is_reduction(i - 1);
    const int64_t C = space.cell_channels(i);
    Graph::Scope scope(g, fmt::format("cells.{}", i));
    std::vector<ValueId> states;
    states.push_back(reduction_prev ? factorized_reduce(g, s0, C, "pre0", mode) : relu_conv_bn(g, s0, C, "pre0", mode));
    states.push_back(relu_conv_bn(g, s1, C, "pre1", mode));
    const auto& nodes = genotype.of(reduction);
    for (int j = 0; j < space.nodes; ++j) {
      Graph::Scope node_scope(g, fmt::format("nodes.{}", j));
      std::vector<ValueId> terms;
      for (const GenotypeEdge& edge : nodes[size_t(j)]) {
        const int e = space.first_edge(j) + edge.input;
        Graph::Scope edge_scope(g, fmt::format("edges.{}", e));
        const int64_t stride = reduction && edge.input < 2 ? 2 : 1;
        ValueId x = states[size_t(edge.input)];
        bool needs_relu = edge.op != OpKind::max_pool_3x3 && edge.op != OpKind::avg_pool_3x3 &&
                          !(edge.op == OpKind::skip_connect && stride == 1) && edge.op != OpKind::none;
        ValueId r = needs_relu ? ops::relu(g, x, "relu") : kNoValue;
        ValueId v = emit_op(g, edge.op, x, r, stride, mode);
        if (v != kNoValue) terms.push_back(v);
      }
      if (terms.empty()) fail("genotype: node {} of cell {} has only 'none' edges", j, i);
      states.push_back(terms.size() == 1 ? terms[0] : ops::add(g, terms[0], terms[1], "sum"));
    }
    std::vector<ValueId> outs(states.begin() + 2, states.end());
    ValueId out = ops::concat(g, outs, "out");
    net.states.push_back(out);
    s0 = s1;
    s1 = out;
  }
  Head h = emit_head(g, space, s1, net.labels);
  net.logits = h.logits;
  net.loss = h.loss;
  return net;
}

void init_params(ParamStore& params, const Graph& g, Rng& rng) {
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const graph::Value& v : g.values()) {
    if (v.kind != graph::ValueKind::param || params.contains(v.name)) continue;
    const std::string& name = v.name;
    const Shape& shape = v.type.shape;
    const bool is_arch = name.rfind("alpha.", 0) == 0 || name.rfind("beta.", 0) == 0;
    const bool is_bn = name.find(".bn") != std::string::npos;
    if (ends_with(name, ".running_mean") || ends_with(name, ".running_var")) {
      Tensor t = params.add(name, shape, ParamKind::buffer);
      if (ends_with(name, ".running_var"))
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 1.0f;
      continue;
    }
    Tensor t = params.add_weight(name, shape, is_arch ? ParamKind::arch : ParamKind::weight);
    float* w = t.f32();
    if (is_arch) {
      for (int64_t i = 0; i < t.numel(); ++i) w[i] = 1e-3f * rng.normal();
    } else if (is_bn) {
      if (ends_with(name, ".weight"))
        for (int64_t i = 0; i < t.numel(); ++i) w[i] = 1.0f;
    } else {
      int64_t fan_in = 1;
      if (ends_with(name, ".bias")) {
        std::string wname = name.substr(0, name.size() - 5) + ".weight";
        const graph::Value* wv = nullptr;
        for (const graph::Value& u : g.values())
          if (u.kind == graph::ValueKind::param && u.name == wname) wv = &u;
        fan_in = wv ? wv->type.shape.numel() / wv->type.shape[0] : shape[0];
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
  emit_search_net(g, space, /*batch=*/2, full_sample(space));  // shapes of parameters do not depend on the batch
  Rng rng(seed);
  init_params(params, g, rng);
}

}  // namespace onnas::nas
