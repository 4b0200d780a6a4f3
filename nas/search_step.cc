// The schedule of one gradient pass. Dimension key: n cells, S micro-batches of
// b = batch / S images; state k is the stem output (k = 0) or the output of cell k - 1;
// cell i reads s0 = state max(i - 1, 0) and s1 = state i.
//
// SBS schedule of one chunk, in run order (recompute variant; checkpoint runs one
// forward to state n - 1 first and no forward before each phase):
//   forward to cell i's inputs    x -> stem -> cells 0..i-1: states max(i-1, 0) and i
//   cell i phase                  cell i (+ head and loss for the last) and its backward,
//                                 seeded by the gradient of state i + 1; outputs the
//                                 gradient of state i (its s1 gradient plus the s0
//                                 gradient cell i + 1 handed on) and its own s0 gradient
//   stem phase (weights only)     stem and its backward, seeded by the gradient of state 0
// for i = n - 1 down to 0. Every value between programs is a handoff of the schedule
// (graph/schedule.h), planned with everything else in one arena.
#include "nas/search_step.h"

#include <cmath>
#include <cstring>

#include "graph/autodiff.h"
#include "nas/search.h"
#include "ops/ops.h"
#include "runtime/error.h"

namespace onnas::nas {
namespace {

using graph::kNoValue;
using graph::Program;

constexpr const char* kModeNames[] = {"full", "ops", "ops+pairs", "ops+pairs+sbs"};

Shape state_shape(const SearchSpace& s, int64_t b, int k) {
  if (k == 0) return Shape{b, int64_t(s.stem_multiplier) * s.channels, s.height, s.width};
  const int cell = k - 1;
  auto [h, w] = s.cell_input_size(cell);
  if (s.is_reduction(cell)) h /= 2, w /= 2;
  return Shape{b, int64_t(s.nodes) * s.cell_channels(cell), h, w};
}

void add_param_grads(graph::CompileOptions& o, std::span<const ValueId> wrt, std::span<const ValueId> grads) {
  for (size_t i = 0; i < wrt.size(); ++i)
    if (grads[i] != kNoValue) o.param_grads.emplace_back(wrt[i], grads[i]);
}

// The loss the backward starts from: the chunk's mean loss scaled by 1/S.
ValueId scaled_loss(Graph& g, ValueId loss, int split) {
  return split == 1 ? loss : ops::scale(g, loss, 1.0f / float(split), "loss_per_chunk");
}


}  // namespace

const char* mode_name(Mode m) { return kModeNames[int(m)]; }

Mode mode_from_name(const std::string& name) {
  for (int i = 0; i < 4; ++i)
    if (name == kModeNames[i]) return Mode(i);
  fail("unknown mode '{}' (known: full, ops, ops+pairs, ops+pairs+sbs)", name);
}

const char* sbs_variant_name(SbsVariant v) { return v == SbsVariant::recompute ? "recompute" : "checkpoint"; }

SbsVariant sbs_variant_from_name(const std::string& name) {
  if (name == "recompute") return SbsVariant::recompute;
  if (name == "checkpoint") return SbsVariant::checkpoint;
  fail("unknown SBS variant '{}' (known: recompute, checkpoint)", name);
}

std::string StepConfig::describe() const {
  std::string s = mode_name(mode);
  if (sbs_on()) s += fmt::format("/{}", sbs_variant_name(sbs));
  if (samples_ops()) s += fmt::format(", k_grad {}", k_grad);
  return s + fmt::format(", split {}", split);
}

std::string StepConfig::flags() const {
  std::string s = fmt::format("--mode {}", mode_name(mode));
  if (sbs_on()) s += fmt::format(" --sbs {}", sbs_variant_name(sbs));
  if (samples_ops()) s += fmt::format(" --k-grad {}", k_grad);
  return s + fmt::format(" --split {}", split);
}

void StepConfig::validate(const SearchSpace& space, int64_t batch) const {
  if (samples_ops() && (k_grad < 1 || k_grad > space.num_ops()))
    fail("k_grad {} is outside [1, {}] (the number of candidate ops)", k_grad, space.num_ops());
  if (split < 1) fail("split must be at least 1 (got {})", split);
  if (batch % split != 0)
    fail("a batch of {} cannot be split into {} equal micro-batches (choose a split that divides the batch)", batch,
         split);
}

StepGates::StepGates(const SearchSpace& space, const StepConfig& config)
    : space_config_(space), config_(config), mix_(ungated(space)) {
  for (int j = 0; j < space.nodes; ++j) pairs_.push_back(space.pairs(j));
  if (!config.samples_ops()) return;
  space_ = std::make_shared<graph::GateSpace>();
  const int k = space.num_ops();
  for (int r = 0; r < 2; ++r) {
    const std::string kind = r ? "reduce" : "normal";
    CellGates& cg = r ? mix_.reduce : mix_.normal;
    edge_gates_[r].assign(size_t(space.num_edges()), graph::kAlways);
    for (int j = 0; j < space.nodes; ++j) {
      const int edges = 2 + j;
      if (config.samples_pairs()) {
        // The node's gradient pair: two of its edges.
        const int32_t group = space_->add_group(fmt::format("{}.nodes.{}", kind, j), graph::kAlways, std::min(edges, 2));
        for (int a = 0; a < edges; ++a) {
          const int e = space.first_edge(j) + a;
          edge_gates_[r][size_t(e)] = space_->add_leaf(group, fmt::format("{}.edges.{}", kind, e));
        }
        const auto pairs = space.pairs(j);
        for (size_t p = 0; p < pairs.size(); ++p)
          cg.pairs[size_t(j)][p] = space_->all_of(edge_gates_[r][size_t(space.first_edge(j) + pairs[p].first)],
                                                  edge_gates_[r][size_t(space.first_edge(j) + pairs[p].second)]);
      }
      for (int a = 0; a < edges; ++a) {
        const int e = space.first_edge(j) + a;
        const int32_t group = space_->add_group(fmt::format("{}.edges.{}.ops", kind, e), edge_gates_[r][size_t(e)],
                                                std::min(config.k_grad, k));
        for (int o = 0; o < k; ++o)
          cg.ops[size_t(e * k + o)] =
              space_->add_leaf(group, fmt::format("{}.edges.{}.{}", kind, e, op_kind_name(space.ops[size_t(o)])));
      }
    }
  }
}

void StepGates::apply(const Sample& sample, graph::GateValues& values) const {
  if (!space_) return;
  values.clear();
  const SearchSpace& space = space_config_;
  const int k = space.num_ops();
  for (int r = 0; r < 2; ++r) {
    const CellSample& c = sample.of(r == 1);
    const CellGates& cg = mix_.of(r == 1);
    for (int j = 0; j < space.nodes; ++j) {
      const int gp = c.grad_pair[size_t(j)];
      const auto& pairs = pairs_[size_t(j)];
      if (gp >= int(pairs.size())) fail("sample: pair {} of node {} does not exist ({} pairs)", gp, j, pairs.size());
      for (int a = 0; a < 2 + j; ++a) {
        const int e = space.first_edge(j) + a;
        if (config_.samples_pairs())
          values.set(edge_gates_[r][size_t(e)],
                     gp < 0 || pairs[size_t(gp)].first == a || pairs[size_t(gp)].second == a);
        for (int o = 0; o < k; ++o) values.set(cg.ops[size_t(e * k + o)], c.grad_ops[size_t(e)][size_t(o)] != 0);
      }
    }
  }
  values.evaluate();
}

void StepGates::alpha_trained(const graph::GateValues& values, bool reduction, std::span<uint8_t> out) const {
  const std::vector<graph::GateId>& ops = mix_.of(reduction).ops;
  for (size_t i = 0; i < ops.size(); ++i) out[i] = values.open(ops[i]) ? 1 : 0;
}

void StepGates::beta_trained(const graph::GateValues& values, bool reduction, int node, std::span<uint8_t> out) const {
  const std::vector<graph::GateId>& pairs = mix_.of(reduction).pairs[size_t(node)];
  for (size_t p = 0; p < pairs.size(); ++p) out[p] = values.open(pairs[p]) ? 1 : 0;
}

struct GradientPass::Impl {
  SearchSpace space;
  StepConfig config;
  int64_t batch = 0, chunk = 0;
  ParamKind kind = ParamKind::weight;
  graph::Schedule schedule;
  std::vector<graph::Schedule::Feed> feeds;  // x and labels of each program that reads them
  std::vector<uint8_t> feeds_labels;         // per feed: 1 labels, 0 images
  int loss_program = 0;
  ValueId loss = kNoValue, logits = kNoValue;

  Graph new_graph(const StepGates& gates) const {
    Graph g;
    if (gates.space()) g.use_gates(gates.space());
    return g;
  }

  void feed(int program, ValueId v, bool labels) {
    feeds.push_back({program, v, Tensor()});
    feeds_labels.push_back(labels ? 1 : 0);
  }

  void build_one_shot(const StepGates& gates, const ParamStore& params) {
    Graph g = new_graph(gates);
    SearchNet net = emit_search_net(g, space, chunk, gates.mix());
    std::vector<ValueId> wrt = params_of_kind(g, params, kind);
    std::vector<ValueId> grads = graph::backward(g, scaled_loss(g, net.loss, config.split), wrt);
    graph::CompileOptions o;
    o.outputs = {net.loss, net.logits};
    add_param_grads(o, wrt, grads);
    graph::Schedule::Builder parts;
    parts.add({"one-shot", std::move(g), std::move(o)});
    feed(0, net.x, false);
    feed(0, net.labels, true);
    loss_program = 0;
    loss = net.loss;
    logits = net.logits;
    schedule = graph::Schedule(std::move(parts), {}, {{0, net.loss}, {0, net.logits}});
  }

  // x -> stem -> cells 0..last_cell; the states listed become outputs (in that order).
  graph::Schedule::Part forward_states(const StepGates& gates, int last_cell, std::span<const int> keep, ValueId& x,
                                       std::vector<ValueId>& kept, std::string label) {
    Graph g = new_graph(gates);
    x = g.input("x", {Shape{chunk, space.in_channels, space.height, space.width}});
    std::vector<ValueId> states{emit_stem(g, space, x, {})};
    for (int i = 0; i <= last_cell; ++i)
      states.push_back(emit_search_cell(g, space, i, states[size_t(std::max(i - 1, 0))], states[size_t(i)], gates.mix()));
    kept.clear();
    for (int k : keep) kept.push_back(states[size_t(k)]);
    graph::CompileOptions o;
    o.outputs = kept;
    return {std::move(label), std::move(g), std::move(o)};
  }

  void build_sbs(const StepGates& gates, const ParamStore& params) {
    const int n = space.cells;
    graph::Schedule::Builder parts;  // each program lowered as soon as its graph is built
    std::vector<graph::Schedule::Handoff> handoffs;
    // Whether phase i hands the gradients of its inputs on (the architecture pass has no
    // parameters before cell 0, so its phase 0 does not).
    auto hands_on = [&](int i) { return kind != ParamKind::arch || i > 0; };
    int checkpoint = -1;
    std::vector<ValueId> checkpoint_states;
    if (config.sbs == SbsVariant::checkpoint) {
      std::vector<int> keep;
      for (int k = 0; k < n; ++k) keep.push_back(k);
      ValueId x;
      parts.add(forward_states(gates, n - 2, keep, x, checkpoint_states, "forward to cell outputs"));
      checkpoint = 0;
      feed(0, x, false);
    }
    // Per phase (by cell): program index, its gradient outputs, its seed/partial inputs.
    std::vector<int> program_of(size_t(n), -1);
    std::vector<ValueId> full_grad(size_t(n), kNoValue), d_s0_out(size_t(n), kNoValue);
    std::vector<ValueId> seed_in(size_t(n), kNoValue), partial_in(size_t(n), kNoValue);
    for (int i = n - 1; i >= 0; --i) {
      const int k0 = std::max(i - 1, 0);
      int prefix = -1;
      std::vector<ValueId> prefix_states;
      if (config.sbs == SbsVariant::recompute) {
        const int keep[] = {k0, i};
        ValueId x;
        parts.add(forward_states(gates, i - 1, keep, x, prefix_states, fmt::format("forward to cell {}", i)));
        prefix = int(parts.size()) - 1;
        feed(prefix, x, false);
      }
      Graph g = new_graph(gates);
      const ValueId s0 = g.input(fmt::format("state{}", k0), {state_shape(space, chunk, k0)});
      const ValueId s1 = g.input(fmt::format("state{}", i), {state_shape(space, chunk, i)});
      const ValueId out = emit_search_cell(g, space, i, s0, s1, gates.mix());
      graph::CompileOptions o;
      graph::Seed seed{out, kNoValue};
      ValueId labels = kNoValue;
      if (i == n - 1) {
        labels = g.input("labels", {Shape{chunk}, DType::i32});
        Head h = emit_head(g, space, out, labels);
        loss = h.loss;
        logits = h.logits;
        seed = {scaled_loss(g, h.loss, config.split), kNoValue};
        o.outputs = {h.loss, h.logits};
      } else {
        seed_in[size_t(i)] = g.input(fmt::format("grad/state{}", i + 1), {g.type(out)});
        seed.gradient = seed_in[size_t(i)];
      }
      std::vector<ValueId> wrt = params_of_kind(g, params, kind);
      const size_t num_params = wrt.size();
      if (hands_on(i)) {
        wrt.push_back(s0);
        wrt.push_back(s1);
      }
      const std::vector<ValueId> grads = graph::backward(g, std::span<const graph::Seed>(&seed, 1), wrt);
      add_param_grads(o, std::span(wrt).first(num_params), std::span(grads).first(num_params));
      if (hands_on(i)) {
        const ValueId d_s0 = grads[num_params], d_s1 = grads[num_params + 1];
        ONNAS_CHECK(d_s0 != kNoValue && d_s1 != kNoValue, "cell {}: an input without a gradient", i);
        // The gradient of state i: this cell's s1 gradient, plus the s0 gradient cell
        // i + 1 handed on (and, for cell 0, whose s0 is state 0 too, its own s0 gradient).
        ValueId full = d_s1;
        if (i + 1 < n && hands_on(i + 1) && !config.test_drop_s0_hand_on) {
          partial_in[size_t(i)] = g.input(fmt::format("grad/state{}.from_cell{}", i, i + 1), {g.type(d_s1)});
          full = ops::add(g, full, partial_in[size_t(i)], fmt::format("grad/state{}", i));
        }
        if (i == 0) full = ops::add(g, full, d_s0, "grad/state0.total");
        full_grad[size_t(i)] = full;
        o.outputs.push_back(full);
        if (i > 0 && hands_on(i - 1) && !config.test_drop_s0_hand_on) {
          d_s0_out[size_t(i)] = d_s0;
          o.outputs.push_back(d_s0);
        }
      }
      parts.add({fmt::format("cell {} phase", i), std::move(g), std::move(o)});
      const int me = int(parts.size()) - 1;
      program_of[size_t(i)] = me;
      if (labels != kNoValue) {
        feed(me, labels, true);
        loss_program = me;
      }
      if (prefix >= 0) {
        handoffs.push_back({prefix, prefix_states[0], me, s0});
        handoffs.push_back({prefix, prefix_states[1], me, s1});
      } else {
        handoffs.push_back({checkpoint, checkpoint_states[size_t(k0)], me, s0});
        handoffs.push_back({checkpoint, checkpoint_states[size_t(i)], me, s1});
      }
      if (i + 1 < n) {
        const int next = program_of[size_t(i + 1)];
        handoffs.push_back({next, full_grad[size_t(i + 1)], me, seed_in[size_t(i)]});
        if (partial_in[size_t(i)] != kNoValue) handoffs.push_back({next, d_s0_out[size_t(i + 1)], me, partial_in[size_t(i)]});
      }
    }
    if (kind == ParamKind::weight) {
      Graph g = new_graph(gates);
      const ValueId x = g.input("x", {Shape{chunk, space.in_channels, space.height, space.width}});
      const ValueId stem = emit_stem(g, space, x, {});
      const ValueId seed_value = g.input("grad/state0", {g.type(stem)});
      std::vector<ValueId> wrt = params_of_kind(g, params, kind);
      const graph::Seed seed{stem, seed_value};
      std::vector<ValueId> grads = graph::backward(g, std::span<const graph::Seed>(&seed, 1), wrt);
      graph::CompileOptions o;
      add_param_grads(o, wrt, grads);
      parts.add({"stem phase", std::move(g), std::move(o)});
      const int me = int(parts.size()) - 1;
      feed(me, x, false);
      handoffs.push_back({program_of[0], full_grad[0], me, seed_value});
    }
    schedule = graph::Schedule(std::move(parts), std::move(handoffs), {{loss_program, loss}, {loss_program, logits}});
  }

  PassResult run_chunk(Arena& arena, ParamStore& params, const Tensor& x, const Tensor& y,
                       const graph::GateValues* gates, graph::Profile* profile) {
    for (size_t f = 0; f < feeds.size(); ++f) feeds[f].tensor = feeds_labels[f] ? y : x;
    schedule.run(arena, params, feeds, gates, profile);
    PassResult r;
    r.loss = schedule.output(arena, loss_program, loss).f32()[0];
    r.correct = std::lround(accuracy(schedule.output(arena, loss_program, logits), y) * double(chunk));
    return r;
  }
};

GradientPass::GradientPass(const SearchSpace& space, const StepConfig& config, int64_t batch, const StepGates& gates,
                           ParamKind kind, const ParamStore& params)
    : impl_(std::make_unique<Impl>()) {
  config.validate(space, batch);
  impl_->space = space;
  impl_->config = config;
  impl_->batch = batch;
  impl_->chunk = batch / config.split;
  impl_->kind = kind;
  if (config.sbs_on())
    impl_->build_sbs(gates, params);
  else
    impl_->build_one_shot(gates, params);
}

GradientPass::GradientPass(GradientPass&&) noexcept = default;
GradientPass& GradientPass::operator=(GradientPass&&) noexcept = default;
GradientPass::~GradientPass() = default;

PassResult GradientPass::run(Arena& arena, ParamStore& params, const Tensor& x, const Tensor& y,
                             const graph::GateValues* gates, graph::Profile* profile) {
  Impl& m = *impl_;
  if (x.shape()[0] != m.batch || y.shape()[0] != m.batch)
    fail("search step: batch of {} images and {} labels, the step was compiled for {}", x.shape()[0], y.shape()[0],
         m.batch);
  const int64_t per_image = x.numel() / m.batch;
  PassResult total;
  for (int c = 0; c < m.config.split; ++c) {
    Shape xs = x.shape();
    xs[0] = m.chunk;
    const Tensor xc(x.f32() + c * m.chunk * per_image, xs);
    const Tensor yc(y.i32() + c * m.chunk, Shape{m.chunk}, DType::i32);
    PassResult r = m.run_chunk(arena, params, xc, yc, gates, profile);
    total.loss += r.loss / float(m.config.split);
    total.correct += r.correct;
  }
  return total;
}

size_t GradientPass::arena_bytes() const { return impl_->schedule.arena_bytes(); }
size_t GradientPass::handed_bytes() const { return impl_->schedule.handed_bytes(); }
const graph::Schedule& GradientPass::schedule() const { return impl_->schedule; }
void GradientPass::release_planning_data() { impl_->schedule.release_planning_data(); }

std::vector<GradientPass::Labeled> GradientPass::programs() const {
  std::vector<Labeled> out;
  const graph::Schedule& s = impl_->schedule;
  for (size_t i = 0; i < s.num_programs(); ++i) out.push_back({s.label(i), &s.program(i)});
  return out;
}

int64_t cell_forwards(const SearchSpace& space, const StepConfig& config) {
  const int64_t n = space.cells;
  if (!config.sbs_on()) return n;
  if (config.sbs == SbsVariant::checkpoint) return (n - 1) + n;
  return n * (n - 1) / 2 + n;
}

int64_t GradientPass::cell_forwards() const { return nas::cell_forwards(impl_->space, impl_->config); }

}  // namespace onnas::nas
