// The programs of one gradient pass and the order they run in. Dimension key: n cells,
// S micro-batches of b = batch / S images; state k is the stem output (k = 0) or the
// output of cell k - 1; cell i reads s0 = state max(i - 1, 0) and s1 = state i.
//
// SBS timeline of one chunk (t is the planner's step for the side storage):
//   t = 0             checkpoint: forward x -> stem -> cells 0..n-2, keep states 0..n-1
//   t = 1 + (n-1-i)   phase of cell i: [recompute: forward up to cell i - 1 for s0, s1]
//                     then cell i (+ head and loss for the last cell) and its backward,
//                     seeded by the gradient of state i + 1; adds d s0, d s1 into the
//                     gradients of states max(i - 1, 0) and i
//   t = n + 1         stem phase (weights only): stem and its backward, seeded by d state 0
// The side buffers (kept states, recompute's s0/s1, the handed-on gradients) get
// their offsets from the memory planner like any arena value.
#include "nas/search_step.h"

#include <cmath>
#include <cstring>

#include "graph/autodiff.h"
#include "memory_planner/planner.h"
#include "nas/search.h"
#include "ops/ops.h"
#include "runtime/error.h"
#include "runtime/kernels/elementwise.h"

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

void add_into(const Tensor& dst, const Tensor& src) {
  ONNAS_CHECK(dst.numel() == src.numel(), "gradient hand-on: {} vs {} elements", dst.numel(), src.numel());
  kernels::accumulate(src.numel(), src.f32(), dst.f32());
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

void StepConfig::validate(const SearchSpace& space, int64_t batch) const {
  if (samples_ops() && (k_grad < 1 || k_grad > space.num_ops()))
    fail("k_grad {} is outside [1, {}] (the number of candidate ops)", k_grad, space.num_ops());
  if (split < 1) fail("split must be at least 1 (got {})", split);
  if (batch % split != 0)
    fail("a batch of {} cannot be split into {} equal micro-batches (choose a split that divides the batch)", batch,
         split);
}

struct GradientPass::Impl {
  struct Phase {
    int cell = -1;             // -1: the stem phase
    int t = 0;                 // side-storage step
    Program prefix;            // recompute: the forward up to s0, s1
    bool has_prefix = false;
    Program program;
    ValueId s0 = kNoValue, s1 = kNoValue, seed = kNoValue, x = kNoValue, labels = kNoValue;
    ValueId d_s0 = kNoValue, d_s1 = kNoValue, loss = kNoValue, logits = kNoValue;
    ValueId prefix_s0 = kNoValue, prefix_s1 = kNoValue, prefix_x = kNoValue;
  };

  SearchSpace space;
  StepConfig config;
  int64_t batch = 0, chunk = 0;
  ParamKind kind = ParamKind::weight;

  // One-shot modes.
  Program one_shot;
  SearchNet net;

  // SBS.
  Program checkpoint;  // forward keeping states 0..n-1
  ValueId checkpoint_x = kNoValue;
  std::vector<ValueId> checkpoint_states;
  std::vector<Phase> phases;  // in run order
  // Side storage: one planned block. Buffers: grad[k] (k < n), then kept states
  // (checkpoint, k < n) or recompute's s0/s1 per phase.
  std::vector<planner::BufferRequest> side;
  planner::Plan side_plan;
  Buffer side_memory;
  std::vector<int> grad_buffer, state_buffer;  // per state k: index into side, or -1
  std::vector<int> slot_s0, slot_s1;           // recompute, per cell: index into side

  Tensor side_tensor(int buffer, const Shape& shape) const {
    return Tensor(static_cast<std::byte*>(side_memory.data()) + side_plan.offsets[size_t(buffer)], shape);
  }

  void build_one_shot(const Sample& sample, const ParamStore& params) {
    Graph g;
    net = emit_search_net(g, space, chunk, sample);
    std::vector<ValueId> wrt = params_of_kind(g, params, kind);
    std::vector<ValueId> grads = graph::backward(g, scaled_loss(g, net.loss, config.split), wrt);
    graph::CompileOptions o;
    o.outputs = {net.loss, net.logits};
    add_param_grads(o, wrt, grads);
    one_shot = graph::compile(g, o);
  }

  // x -> stem -> cells 0..last_cell; the states listed become outputs.
  Program forward_states(const Sample& sample, int last_cell, std::span<const int> keep, ValueId& x,
                         std::vector<ValueId>& kept) {
    Graph g;
    x = g.input("x", {Shape{chunk, space.in_channels, space.height, space.width}});
    std::vector<ValueId> states{emit_stem(g, space, x, {})};
    for (int i = 0; i <= last_cell; ++i)
      states.push_back(emit_search_cell(g, space, i, states[size_t(std::max(i - 1, 0))], states[size_t(i)],
                                        sample.of(space.is_reduction(i))));
    kept.clear();
    for (int k : keep) kept.push_back(states[size_t(k)]);
    return graph::compile(g, {.outputs = kept});
  }

  void build_sbs(const Sample& sample, const ParamStore& params) {
    const int n = space.cells;
    // Side buffers: gradients of states 0..n-1 (state n's comes from the head).
    auto add_side = [&](std::string name, int k, int first, int last, const char* what) {
      planner::BufferRequest b;
      b.name = std::move(name);
      b.bytes = size_t(state_shape(space, chunk, k).numel()) * 4;
      b.first_step = first;
      b.last_step = last;
      b.kind = what;
      b.op = "sbs";
      side.push_back(std::move(b));
      return int(side.size()) - 1;
    };
    grad_buffer.assign(size_t(n), -1);
    state_buffer.assign(size_t(n), -1);
    auto t_of = [&](int cell) { return 1 + (n - 1 - cell); };
    for (int k = 0; k < n; ++k) {
      // Written by cell k + 1 (as its s0; k + 1 < n) and by cell k (as its s1); read
      // by cell k - 1 (as its seed) or, for the stem, by the stem phase.
      const int first = k + 1 < n ? t_of(k + 1) : t_of(k);
      const int last = k == 0 ? n + 1 : t_of(k - 1);
      grad_buffer[size_t(k)] = add_side(fmt::format("grad/state{}", k), k, first, last, "gradient");
    }
    if (config.sbs == SbsVariant::checkpoint) {
      for (int k = 0; k < n; ++k)  // read by cell k + 1 (as s0), then last by cell k (as s1)
        state_buffer[size_t(k)] = add_side(fmt::format("state{}", k), k, 0, t_of(k), "activation");
      std::vector<int> keep;
      for (int k = 0; k < n; ++k) keep.push_back(k);
      checkpoint = forward_states(sample, n - 2, keep, checkpoint_x, checkpoint_states);
    } else {
      slot_s0.assign(size_t(n), -1);
      slot_s1.assign(size_t(n), -1);
      for (int i = 0; i < n; ++i) {
        slot_s0[size_t(i)] = add_side(fmt::format("cells.{}.s0", i), std::max(i - 1, 0), t_of(i), t_of(i), "activation");
        slot_s1[size_t(i)] = add_side(fmt::format("cells.{}.s1", i), i, t_of(i), t_of(i), "activation");
      }
    }

    for (int i = n - 1; i >= 0; --i) {
      Phase ph;
      ph.cell = i;
      ph.t = t_of(i);
      if (config.sbs == SbsVariant::recompute) {
        const int keep[] = {std::max(i - 1, 0), i};
        std::vector<ValueId> kept;
        ph.prefix = forward_states(sample, i - 1, keep, ph.prefix_x, kept);
        ph.prefix_s0 = kept[0];
        ph.prefix_s1 = kept[1];
        ph.has_prefix = true;
      }
      Graph g;
      const int k0 = std::max(i - 1, 0);
      ph.s0 = g.input(fmt::format("state{}", k0), {state_shape(space, chunk, k0)});
      ph.s1 = g.input(fmt::format("state{}", i), {state_shape(space, chunk, i)});
      const ValueId out = emit_search_cell(g, space, i, ph.s0, ph.s1, sample.of(space.is_reduction(i)));
      ValueId root = kNoValue;  // the last cell's (scaled) loss, else seeded from d out
      graph::CompileOptions o;
      if (i == n - 1) {
        ph.labels = g.input("labels", {Shape{chunk}, DType::i32});
        Head h = emit_head(g, space, out, ph.labels);
        ph.loss = h.loss;
        ph.logits = h.logits;
        root = scaled_loss(g, h.loss, config.split);
        o.outputs = {h.loss, h.logits};
      } else {
        ph.seed = g.input(fmt::format("grad/state{}", i + 1), {g.type(out)});
      }
      std::vector<ValueId> wrt = params_of_kind(g, params, kind);
      const size_t num_params = wrt.size();
      // The inputs' gradients are handed on unless nothing before this cell needs them
      // (the architecture pass has no parameters in the stem).
      const bool hand_on = kind != ParamKind::arch || i > 0;
      if (hand_on) {
        wrt.push_back(ph.s0);
        wrt.push_back(ph.s1);
      }
      const graph::Seed seed = root != kNoValue ? graph::Seed{root, kNoValue} : graph::Seed{out, ph.seed};
      const std::vector<ValueId> grads = graph::backward(g, std::span<const graph::Seed>(&seed, 1), wrt);
      add_param_grads(o, std::span(wrt).first(num_params), std::span(grads).first(num_params));
      if (hand_on) {
        ph.d_s0 = grads[num_params];
        ph.d_s1 = grads[num_params + 1];
        for (ValueId d : {ph.d_s0, ph.d_s1})
          if (d != kNoValue) o.outputs.push_back(d);
      }
      ph.program = graph::compile(g, o);
      phases.push_back(std::move(ph));
    }
    if (kind == ParamKind::weight) {
      Phase ph;
      ph.t = n + 1;
      Graph g;
      ph.x = g.input("x", {Shape{chunk, space.in_channels, space.height, space.width}});
      const ValueId stem = emit_stem(g, space, ph.x, {});
      ph.seed = g.input("grad/state0", {g.type(stem)});
      std::vector<ValueId> wrt = params_of_kind(g, params, kind);
      const graph::Seed seed{stem, ph.seed};
      std::vector<ValueId> grads = graph::backward(g, std::span<const graph::Seed>(&seed, 1), wrt);
      graph::CompileOptions o;
      add_param_grads(o, wrt, grads);
      ph.program = graph::compile(g, o);
      phases.push_back(std::move(ph));
    }
    side_plan = planner::plan_memory(side);
    planner::check_plan(side, side_plan);
    side_memory = Buffer(std::max<size_t>(side_plan.arena_bytes, kAlignment));
  }

  PassResult run_chunk(Arena& arena, ParamStore& params, const Tensor& x, const Tensor& y, graph::Profile* profile) {
    PassResult r;
    if (!config.sbs_on()) {
      one_shot.run(arena, params, {{net.x, x}, {net.labels, y}}, profile);
      r.loss = one_shot.output(arena, net.loss).f32()[0];
      r.correct = std::lround(accuracy(one_shot.output(arena, net.logits), y) * double(chunk));
      return r;
    }
    const int n = space.cells;
    if (config.sbs == SbsVariant::checkpoint) {
      checkpoint.run(arena, params, {{checkpoint_x, x}}, profile);
      for (int k = 0; k < n; ++k) {
        const Tensor src = checkpoint.output(arena, checkpoint_states[size_t(k)]);
        std::memcpy(side_tensor(state_buffer[size_t(k)], src.shape()).data(), src.data(), src.bytes());
      }
    }
    auto zero_grads_starting_at = [&](int t) {
      for (int k = 0; k < n; ++k) {
        const planner::BufferRequest& b = side[size_t(grad_buffer[size_t(k)])];
        if (b.first_step == t) std::memset(side_tensor(grad_buffer[size_t(k)], Shape{1}).data(), 0, b.bytes);
      }
    };
    for (Phase& ph : phases) {
      zero_grads_starting_at(ph.t);
      if (ph.cell < 0) {  // stem
        const Tensor seed = side_tensor(grad_buffer[0], state_shape(space, chunk, 0));
        ph.program.run(arena, params, {{ph.x, x}, {ph.seed, seed}}, profile);
        continue;
      }
      const int i = ph.cell, k0 = std::max(i - 1, 0);
      Tensor s0, s1;
      if (config.sbs == SbsVariant::checkpoint) {
        s0 = side_tensor(state_buffer[size_t(k0)], state_shape(space, chunk, k0));
        s1 = side_tensor(state_buffer[size_t(i)], state_shape(space, chunk, i));
      } else {
        ph.prefix.run(arena, params, {{ph.prefix_x, x}}, profile);
        for (auto [value, slot, k] : {std::tuple{ph.prefix_s0, slot_s0[size_t(i)], k0},
                                      std::tuple{ph.prefix_s1, slot_s1[size_t(i)], i}}) {
          const Tensor src = ph.prefix.output(arena, value);
          std::memcpy(side_tensor(slot, src.shape()).data(), src.data(), src.bytes());
        }
        s0 = side_tensor(slot_s0[size_t(i)], state_shape(space, chunk, k0));
        s1 = side_tensor(slot_s1[size_t(i)], state_shape(space, chunk, i));
      }
      graph::Feed feeds[4];
      size_t nf = 0;
      feeds[nf++] = {ph.s0, s0};
      feeds[nf++] = {ph.s1, s1};
      if (ph.labels != kNoValue) feeds[nf++] = {ph.labels, y};
      if (ph.seed != kNoValue) feeds[nf++] = {ph.seed, side_tensor(grad_buffer[size_t(i + 1)], state_shape(space, chunk, i + 1))};
      ph.program.run(arena, params, std::span<const graph::Feed>(feeds, nf), profile);
      if (ph.loss != kNoValue) {
        r.loss = ph.program.output(arena, ph.loss).f32()[0];
        r.correct = std::lround(accuracy(ph.program.output(arena, ph.logits), y) * double(chunk));
      }
      if (ph.d_s0 != kNoValue) add_into(side_tensor(grad_buffer[size_t(k0)], state_shape(space, chunk, k0)), ph.program.output(arena, ph.d_s0));
      if (ph.d_s1 != kNoValue) add_into(side_tensor(grad_buffer[size_t(i)], state_shape(space, chunk, i)), ph.program.output(arena, ph.d_s1));
    }
    return r;
  }
};

GradientPass::GradientPass(const SearchSpace& space, const StepConfig& config, int64_t batch, const Sample& sample,
                           ParamKind kind, const ParamStore& params)
    : impl_(std::make_unique<Impl>()) {
  config.validate(space, batch);
  impl_->space = space;
  impl_->config = config;
  impl_->batch = batch;
  impl_->chunk = batch / config.split;
  impl_->kind = kind;
  if (config.sbs_on())
    impl_->build_sbs(sample, params);
  else
    impl_->build_one_shot(sample, params);
}

GradientPass::GradientPass(GradientPass&&) noexcept = default;
GradientPass& GradientPass::operator=(GradientPass&&) noexcept = default;
GradientPass::~GradientPass() = default;

PassResult GradientPass::run(Arena& arena, ParamStore& params, const Tensor& x, const Tensor& y,
                             graph::Profile* profile) {
  const Impl& m = *impl_;
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
    PassResult r = impl_->run_chunk(arena, params, xc, yc, profile);
    total.loss += r.loss / float(m.config.split);
    total.correct += r.correct;
  }
  return total;
}

size_t GradientPass::arena_bytes() const {
  size_t bytes = 0;
  for (const Labeled& l : programs()) bytes = std::max(bytes, l.program->arena_bytes());
  return bytes;
}

size_t GradientPass::side_bytes() const { return impl_->config.sbs_on() ? impl_->side_plan.arena_bytes : 0; }

std::vector<GradientPass::Labeled> GradientPass::programs() const {
  std::vector<Labeled> out;
  const Impl& m = *impl_;
  if (!m.config.sbs_on()) return {{"one-shot", &m.one_shot}};
  if (m.config.sbs == SbsVariant::checkpoint) out.push_back({"checkpoint forward", &m.checkpoint});
  for (const Impl::Phase& ph : m.phases) {
    if (ph.has_prefix) out.push_back({fmt::format("cell {} recompute", ph.cell), &ph.prefix});
    out.push_back({ph.cell < 0 ? std::string("stem phase") : fmt::format("cell {} phase", ph.cell), &ph.program});
  }
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
