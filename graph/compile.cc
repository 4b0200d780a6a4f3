#include "graph/compile.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

#include "graph/builtin_ops.h"
#include "graph/op.h"

namespace onnas::graph {
namespace {

bool in_arena(const Value& v) { return v.kind == ValueKind::activation || v.kind == ValueKind::gradient; }

// Nodes that the outputs or a side effect need, in build order.
std::vector<NodeId> live_nodes(const Graph& g, const std::vector<ValueId>& outputs) {
  std::vector<bool> needed(g.num_values(), false);
  for (ValueId v : outputs) needed[size_t(v)] = true;
  std::vector<bool> keep(g.num_nodes(), false);
  for (NodeId n = NodeId(g.num_nodes()) - 1; n >= 0; --n) {
    const Node& node = g.node(n);
    bool k = node.op->side_effects;
    for (ValueId out : node.outputs) k = k || needed[size_t(out)];
    if (!k) continue;
    keep[size_t(n)] = true;
    for (ValueId in : node.inputs) needed[size_t(in)] = true;
  }
  std::vector<NodeId> live;
  for (NodeId n = 0; n < NodeId(g.num_nodes()); ++n)
    if (keep[size_t(n)]) live.push_back(n);
  return live;
}

// Whether input k of n is the first mention of its value (a node reading a value
// twice counts as one reader).
bool first_use(const Node& n, size_t k) {
  return std::find(n.inputs.begin(), n.inputs.begin() + std::ptrdiff_t(k), n.inputs[k]) ==
         n.inputs.begin() + std::ptrdiff_t(k);
}

size_t workspace_of(const Graph& g, const Node& n) {
  return n.op->workspace_bytes ? n.op->workspace_bytes(g, n) : 0;
}

// Peak of live arena bytes if the nodes run in `order` (outputs live to the end).
size_t peak_live_bytes(const Graph& g, const std::vector<NodeId>& order, const std::vector<bool>& is_output) {
  std::vector<int32_t> last(g.num_values(), -1);
  for (size_t s = 0; s < order.size(); ++s)
    for (ValueId in : g.node(order[s]).inputs) last[size_t(in)] = int32_t(s);
  std::vector<int64_t> delta(order.size() + 1, 0);
  size_t peak = 0;
  int64_t live = 0;
  for (size_t s = 0; s < order.size(); ++s) {
    const Node& n = g.node(order[s]);
    for (ValueId out : n.outputs) {
      const Value& v = g.value(out);
      if (!in_arena(v)) continue;
      live += int64_t(v.type.bytes());
      int32_t end = is_output[size_t(out)] ? int32_t(order.size()) - 1 : std::max(last[size_t(out)], int32_t(s));
      delta[size_t(end) + 1] -= int64_t(v.type.bytes());
    }
    peak = std::max(peak, size_t(live) + workspace_of(g, n));
    live += delta[s + 1];
  }
  return peak;
}

// Greedy list scheduling: among the ready nodes, run the one that adds the fewest
// bytes (its outputs minus the inputs it is the last reader of); ties go to the
// earlier node in build order, so a chain stays a chain.
std::vector<NodeId> memory_aware_order(const Graph& g, const std::vector<NodeId>& live,
                                       const std::vector<bool>& is_output) {
  std::vector<int32_t> pos(g.num_nodes(), -1);
  for (size_t i = 0; i < live.size(); ++i) pos[size_t(live[i])] = int32_t(i);
  std::vector<int32_t> readers(g.num_values(), 0);
  std::vector<int32_t> pending(live.size(), 0);
  std::vector<std::vector<int32_t>> users(live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    const Node& n = g.node(live[i]);
    std::vector<int32_t> producers;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      ValueId in = n.inputs[k];
      if (first_use(n, k)) readers[size_t(in)]++;
      NodeId p = g.value(in).producer;
      if (p >= 0 && pos[size_t(p)] >= 0) producers.push_back(pos[size_t(p)]);
    }
    std::sort(producers.begin(), producers.end());
    producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
    pending[i] = int32_t(producers.size());
    for (int32_t p : producers) users[size_t(p)].push_back(int32_t(i));
  }
  auto score = [&](int32_t i) {
    const Node& n = g.node(live[size_t(i)]);
    int64_t s = 0;
    for (ValueId out : n.outputs)
      if (in_arena(g.value(out))) s += int64_t(g.value(out).type.bytes());
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      ValueId in = n.inputs[k];
      if (!first_use(n, k)) continue;
      if (in_arena(g.value(in)) && readers[size_t(in)] == 1 && !is_output[size_t(in)])
        s -= int64_t(g.value(in).type.bytes());
    }
    return s;
  };
  std::vector<int32_t> ready;
  for (size_t i = 0; i < live.size(); ++i)
    if (pending[i] == 0) ready.push_back(int32_t(i));
  std::vector<NodeId> order;
  order.reserve(live.size());
  while (!ready.empty()) {
    size_t best = 0;
    int64_t best_score = std::numeric_limits<int64_t>::max();
    for (size_t r = 0; r < ready.size(); ++r) {
      int64_t s = score(ready[r]);
      if (s < best_score || (s == best_score && ready[r] < ready[best])) {
        best = r;
        best_score = s;
      }
    }
    int32_t i = ready[best];
    ready.erase(ready.begin() + std::ptrdiff_t(best));
    order.push_back(live[size_t(i)]);
    const Node& n = g.node(live[size_t(i)]);
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (first_use(n, k)) readers[size_t(n.inputs[k])]--;
    }
    for (int32_t u : users[size_t(i)])
      if (--pending[size_t(u)] == 0) ready.push_back(u);
  }
  ONNAS_CHECK(order.size() == live.size(), "graph has a cycle ({} of {} nodes ordered)", order.size(), live.size());
  return order;
}

}  // namespace

Program compile(const Graph& source, const CompileOptions& options) {
  Program p;
  p.graph_ = source;
  Graph& g = p.graph_;
  for (auto [param, grad] : options.param_grads) {
    if (g.value(param).kind != ValueKind::param) fail("compile: '{}' is not a parameter", g.name(param));
    if (grad != kNoValue) accumulate_grad(g, param, grad);
  }
  std::vector<bool> is_output(g.num_values(), false);
  for (ValueId v : options.outputs) {
    if (v < 0 || size_t(v) >= g.num_values()) fail("compile: output {} is not a value of the graph", v);
    is_output[size_t(v)] = true;
  }

  std::vector<NodeId> live = live_nodes(g, options.outputs);
  p.build_order_lower_bound_ = peak_live_bytes(g, live, is_output);
  p.order_ = live;
  if (options.reorder) {
    std::vector<NodeId> reordered = memory_aware_order(g, live, is_output);
    if (peak_live_bytes(g, reordered, is_output) < p.build_order_lower_bound_) p.order_ = std::move(reordered);
  }
  const std::vector<NodeId>& order = p.order_;
  const int32_t last_step = int32_t(order.size()) - 1;

  // Liveness.
  std::vector<int32_t> first(g.num_values(), -1), last(g.num_values(), -1);
  for (size_t s = 0; s < order.size(); ++s) {
    const Node& n = g.node(order[s]);
    for (ValueId in : n.inputs) last[size_t(in)] = int32_t(s);
    for (ValueId out : n.outputs) first[size_t(out)] = int32_t(s);
  }
  p.value_offset_.assign(g.num_values(), -1);
  std::vector<int32_t> buffer_of(g.num_values(), -1);
  for (size_t s = 0; s < order.size(); ++s) {
    const Node& n = g.node(order[s]);
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      ValueId out = n.outputs[k];
      const Value& v = g.value(out);
      if (!in_arena(v)) continue;
      planner::BufferRequest b;
      b.name = v.name;
      b.bytes = v.type.bytes();
      b.first_step = int32_t(s);
      b.last_step = is_output[size_t(out)] ? last_step : std::max(last[size_t(out)], int32_t(s));
      b.op = n.op->name;
      b.kind = v.kind == ValueKind::gradient ? "gradient" : "activation";
      if (options.inplace && k == 0 && n.op->inplace_input >= 0 && size_t(n.op->inplace_input) < n.inputs.size()) {
        ValueId in = n.inputs[size_t(n.op->inplace_input)];
        int32_t in_buffer = buffer_of[size_t(in)];
        if (in_buffer >= 0 && last[size_t(in)] == int32_t(s) && !is_output[size_t(in)] &&
            g.value(in).type.bytes() >= b.bytes &&
            std::count(n.inputs.begin(), n.inputs.end(), in) == 1)
          b.may_share_with = in_buffer;
      }
      buffer_of[size_t(out)] = int32_t(p.buffers_.size());
      p.buffers_.push_back(std::move(b));
      p.buffer_value_.push_back(out);
    }
    if (size_t ws = workspace_of(g, n); ws > 0) {
      planner::BufferRequest b;
      b.name = n.name + ".workspace";
      b.bytes = ws;
      b.first_step = b.last_step = int32_t(s);
      b.op = n.op->name;
      b.kind = "workspace";
      p.buffers_.push_back(std::move(b));
      p.buffer_value_.push_back(kNoValue);
    }
  }
  p.plan_ = planner::plan_memory(p.buffers_, options.strategy);

  // Binding tables.
  std::vector<int64_t> workspace_offset(order.size(), -1);
  for (size_t b = 0; b < p.buffers_.size(); ++b) {
    if (p.buffer_value_[b] != kNoValue)
      p.value_offset_[size_t(p.buffer_value_[b])] = int64_t(p.plan_.offsets[b]);
    else
      workspace_offset[size_t(p.buffers_[b].first_step)] = int64_t(p.plan_.offsets[b]);
  }
  for (size_t s = 0; s < order.size(); ++s) {
    const Node& n = g.node(order[s]);
    Program::Step step{order[s], uint32_t(p.arg_values_.size()), uint32_t(n.inputs.size()),
                       uint32_t(n.outputs.size()), workspace_offset[s]};
    for (ValueId in : n.inputs) p.arg_values_.push_back(in);
    for (ValueId out : n.outputs) p.arg_values_.push_back(out);
    p.steps_.push_back(step);
  }
  p.args_.resize(p.arg_values_.size());
  for (size_t v = 0; v < g.num_values(); ++v)
    if (g.values()[v].kind == ValueKind::input && last[v] >= 0) p.inputs_.push_back(ValueId(v));
  p.bound_.resize(g.num_values());
  return p;
}

void Program::bind(const ParamStore& params) {
  for (size_t v = 0; v < graph_.num_values(); ++v) {
    const Value& val = graph_.values()[v];
    if (val.kind != ValueKind::param && val.kind != ValueKind::param_grad) continue;
    std::string_view name = val.name;
    if (val.kind == ValueKind::param_grad) name = name.substr(0, name.size() - 5);  // strip "@grad"
    Tensor t = val.kind == ValueKind::param ? params.get(name) : params.grad(name);
    if (t.shape() != val.type.shape || t.dtype() != val.type.dtype)
      fail("parameter '{}' in the store has shape {}, the graph expects {}", val.name, t.shape().str(),
           val.type.shape.str());
    bound_[v] = t;
  }
  for (ValueId v : arg_values_)
    if (graph_.values()[v].kind == ValueKind::param_grad && bound_[v].empty())
      fail("the gradient '{}' has no storage in the parameter store now (a program compiled for another sample of "
           "the search?)", graph_.name(v));
  bound_store_ = &params;
  bound_version_ = params.version();
}

void Profile::add(const char* op, double seconds) {
  for (Entry& e : entries)
    if (e.op == op) {
      e.calls++;
      e.seconds += seconds;
      return;
    }
  entries.push_back({op, 1, seconds});
}

double Profile::total_seconds() const {
  double t = 0;
  for (const Entry& e : entries) t += e.seconds;
  return t;
}

std::string Profile::table(size_t rows) const {
  std::vector<Entry> sorted = entries;
  std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.seconds > b.seconds; });
  const double total = std::max(total_seconds(), 1e-12);
  std::string out = fmt::format("  {:<34} {:>10} {:>12} {:>7}\n", "op", "calls", "ms", "share");
  for (size_t i = 0; i < std::min(rows, sorted.size()); ++i)
    out += fmt::format("  {:<34} {:>10} {:>12.1f} {:>6.1f}%\n", sorted[i].op, sorted[i].calls, sorted[i].seconds * 1e3,
                       100.0 * sorted[i].seconds / total);
  out += fmt::format("  {:<34} {:>10} {:>12.1f}\n", "total", "", total * 1e3);
  return out;
}

namespace {
std::atomic<bool> g_check_numerics{false};

// The index of the first non-finite element of an f32 tensor, or -1.
int64_t first_non_finite(const Tensor& t) {
  if (t.dtype() != DType::f32 || t.empty()) return -1;
  const float* p = t.f32();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
}
}  // namespace

void set_check_numerics(bool on) { g_check_numerics.store(on, std::memory_order_relaxed); }
bool check_numerics() { return g_check_numerics.load(std::memory_order_relaxed); }

void Program::check_inputs_finite(const ParamStore& params, std::span<const Feed> feeds) const {
  for (const Feed& f : feeds)
    if (int64_t i = first_non_finite(f.tensor); i >= 0)
      fail("check-numerics: input '{}' holds a non-finite value ({} at element {})", graph_.name(f.value),
           f.tensor.f32()[i], i);
  for (const Value& v : graph_.values()) {
    if (v.kind != ValueKind::param) continue;
    const ParamStore::Entry* e = params.find(v.name);
    if (!e) continue;
    if (int64_t i = first_non_finite(e->tensor); i >= 0)
      fail("check-numerics: parameter '{}' holds a non-finite value ({} at element {}) before the run", v.name,
           e->tensor.f32()[i], i);
  }
}

void Program::check_step_finite(size_t step) const {
  const Step& s = steps_[step];
  const Node& n = graph_.node(s.node);
  for (int j = 0; j < s.num_outputs; ++j) {
    const size_t a = s.first_arg + size_t(s.num_inputs) + size_t(j);
    if (int64_t i = first_non_finite(args_[a]); i >= 0)
      fail("check-numerics: op {} (node '{}', step {} of {}) produced a non-finite value in '{}' ({} at element {}); "
           "its inputs were finite",
           n.op->name, n.name, step, steps_.size(), graph_.name(arg_values_[a]), args_[a].f32()[i], i);
  }
}

void Program::run(Arena& arena, const ParamStore& params, std::span<const Feed> feeds, Profile* profile) {
  if (arena.bytes() < arena_bytes())
    fail("arena of {} bytes is smaller than the {} bytes this program was planned for", arena.bytes(), arena_bytes());
  if (bound_store_ != &params || bound_version_ != params.version()) bind(params);
  for (ValueId v : inputs_) {
    const Feed* feed = nullptr;
    for (const Feed& f : feeds)
      if (f.value == v) feed = &f;
    if (!feed) fail("run: no feed for input '{}'", graph_.name(v));
    if (feed->tensor.shape() != graph_.shape(v) || feed->tensor.dtype() != graph_.type(v).dtype)
      fail("run: input '{}' expects {} {}, was fed {} {}", graph_.name(v), dtype_name(graph_.type(v).dtype),
           graph_.shape(v).str(), dtype_name(feed->tensor.dtype()), feed->tensor.shape().str());
    bound_[size_t(v)] = feed->tensor;
  }
  std::byte* base = arena.base();
  for (size_t a = 0; a < arg_values_.size(); ++a) {
    ValueId v = arg_values_[a];
    int64_t off = value_offset_[size_t(v)];
    args_[a] = off >= 0 ? Tensor(base + off, graph_.type(v).shape, graph_.type(v).dtype) : bound_[size_t(v)];
  }
  const bool checking = check_numerics();
  if (checking) check_inputs_finite(params, feeds);
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Step& s = steps_[k];
    const Node& n = graph_.node(s.node);
    RunContext ctx{n, std::span<const Tensor>(args_.data() + s.first_arg, s.num_inputs),
                   std::span<const Tensor>(args_.data() + s.first_arg + s.num_inputs, s.num_outputs),
                   s.workspace_offset >= 0 ? static_cast<void*>(base + s.workspace_offset) : nullptr};
    if (!profile) {
      n.op->forward(ctx);
      if (checking) check_step_finite(k);
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    n.op->forward(ctx);
    profile->add(n.op->name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (checking) check_step_finite(k);
  }
}

Tensor Program::output(const Arena& arena, ValueId v) const {
  int64_t off = value_offset_.at(size_t(v));
  if (off < 0) fail("'{}' is not an arena value of this program", graph_.name(v));
  return Tensor(arena.base() + off, graph_.type(v).shape, graph_.type(v).dtype);
}

std::vector<std::string> Program::grad_params() const {
  std::vector<std::string> names;
  for (ValueId v : arg_values_) {
    const Value& val = graph_.values()[v];
    if (val.kind != ValueKind::param_grad) continue;
    std::string name = val.name.substr(0, val.name.size() - 5);  // strip "@grad"
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
  }
  return names;
}

size_t Program::persistent_bytes(const ParamStore& params) const {
  size_t total = 0;
  for (const Value& v : graph_.values()) {
    if (v.kind == ValueKind::param || v.kind == ValueKind::param_grad) total += v.type.bytes();
  }
  return total;
}

}  // namespace onnas::graph
