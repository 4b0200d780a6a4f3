#include "graph/compile.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>

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

// The leaf whose open state keeps a value for its gated readers: the deepest leaf
// implied by every gated reader's gate, and not implied by the producer's (or -1).
GateId keeping_leaf(const GateSpace& space, GateId producer, const std::vector<GateId>& reader_gates,
                    std::map<GateId, std::vector<GateId>>& memo) {
  auto leaves = [&](GateId g) -> const std::vector<GateId>& { return space.implied_leaves(g); };
  std::vector<GateId> common = leaves(reader_gates[0]);
  for (size_t i = 1; i < reader_gates.size() && !common.empty(); ++i) {
    const std::vector<GateId>& other = leaves(reader_gates[i]);
    std::vector<GateId> both;
    std::set_intersection(common.begin(), common.end(), other.begin(), other.end(), std::back_inserter(both));
    common = std::move(both);
  }
  const std::vector<GateId>& given = leaves(producer);
  GateId best = -1;
  int best_depth = -1;
  for (GateId l : common) {
    if (std::binary_search(given.begin(), given.end(), l)) continue;
    const int d = space.depth(l);
    if (d > best_depth) best = l, best_depth = d;
  }
  return best;
}

// A choice's index in a value's entry (16 bits).
int16_t narrow_choice(int32_t c) {
  ONNAS_CHECK(c >= -1 && c <= INT16_MAX, "a program of over {} run-time choices", INT16_MAX + 1);
  return int16_t(c);
}

uint32_t append_name(std::string& names, std::string_view name) {
  const size_t at = names.size();
  names.append(name);
  return uint32_t(at);
}

}  // namespace

Program::Program() : running_(std::make_unique<std::atomic<bool>>(false)) {}
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;
Program::~Program() = default;

// The program for one order of the nodes. `gated_temporaries`: a gated node's outputs
// and workspace live in its gate's region (else they are planned as if every node ran).
Program lower_in_order(const Graph& g, const CompileOptions& options, const std::vector<bool>& is_output,
                       std::vector<NodeId> order_in, size_t build_order_bound, bool gated_temporaries);

namespace {
std::atomic<int64_t> g_compile_ns{0};
struct CompileTimer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  ~CompileTimer() {
    g_compile_ns.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count(),
        std::memory_order_relaxed);
  }
};
}  // namespace

double compile_seconds_total() { return double(g_compile_ns.load(std::memory_order_relaxed)) * 1e-9; }

Program lower(const Graph& source, const CompileOptions& options) {
  CompileTimer timer;
  // A copy to add the gradient accumulations to; dropped when the tables are built.
  Graph g = source;
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
  const size_t build_bound = peak_live_bytes(g, live, is_output);
  if (!options.reorder) return lower_in_order(g, options, is_output, live, build_bound, true);
  std::vector<NodeId> reordered = memory_aware_order(g, live, is_output);
  bool gated = false;
  for (NodeId n : live) gated = gated || g.node(n).gate != kAlways;
  if (!gated) {
    const bool better = peak_live_bytes(g, reordered, is_output) < build_bound;
    return lower_in_order(g, options, is_output, better ? reordered : live, build_bound, true);
  }
  // With run-time gates the peak of live bytes says little (it counts every gated node
  // as running): plan each way and keep the smallest arena.
  Program best;
  size_t best_bytes = 0;
  for (const std::vector<NodeId>* order : {&live, &reordered})
    for (bool temporaries : {true, false}) {
      Program p = lower_in_order(g, options, is_output, *order, build_bound, temporaries);
      const planner::Plan plan = planner::plan_with_choices(p.buffers_, p.tree_, planner::Strategy::greedy_by_size);
      if (best_bytes == 0 || plan.arena_bytes < best_bytes) {
        best_bytes = plan.arena_bytes;
        best = std::move(p);
      }
    }
  return best;
}

Program lower_in_order(const Graph& g, const CompileOptions& options, const std::vector<bool>& is_output,
                       std::vector<NodeId> order_in, size_t build_order_bound, bool gated_temporaries) {
  Program p;
  p.gates_ = g.gate_space();
  p.build_order_lower_bound_ = build_order_bound;
  p.order_ = std::move(order_in);
  const std::vector<NodeId>& order = p.order_;
  const int32_t last_step = int32_t(order.size()) - 1;

  // Liveness. A value's readers split into those that run whenever it exists (their
  // gate is implied by its producer's) and gated ones; the latter may keep it longer.
  std::vector<int32_t> first(g.num_values(), -1), last(g.num_values(), -1), base_last(g.num_values(), -1);
  std::vector<std::vector<GateId>> late_gates(g.num_values());
  const GateSpace* space = g.gates();
  for (size_t s = 0; s < order.size(); ++s) {
    const Node& n = g.node(order[s]);
    for (ValueId in : n.inputs) {
      last[size_t(in)] = int32_t(s);
      const GateId pg = g.gate_of(in);
      if (!space || n.gate == kAlways || n.gate == pg || space->implies(pg, n.gate))
        base_last[size_t(in)] = int32_t(s);
      else
        late_gates[size_t(in)].push_back(n.gate);
    }
    for (ValueId out : n.outputs) first[size_t(out)] = int32_t(s);
  }

  // Values: one entry per value of the graph, so programs are addressed by ValueId.
  p.vals_.resize(g.num_values());
  for (size_t v = 0; v < g.num_values(); ++v) {
    const Value& val = g.values()[v];
    Program::Val& pv = p.vals_[v];
    // Most values share a type with a recent one: searched from the newest.
    auto same = std::find(p.types_.rbegin(), p.types_.rend(), val.type);
    if (same == p.types_.rend()) {
      p.types_.push_back(val.type);
      ONNAS_CHECK(p.types_.size() <= UINT16_MAX + 1, "a program of over {} distinct value types", UINT16_MAX + 1);
      pv.type = uint16_t(p.types_.size() - 1);
    } else {
      pv.type = uint16_t(p.types_.rend() - same - 1);
    }
    pv.kind = val.kind;
    pv.producer_step = first[v];
    pv.last_step = last[v];
    pv.name_at = append_name(p.names_, val.name);
    ONNAS_CHECK(val.name.size() <= UINT16_MAX, "value name of {} characters (at most {}): {}...", val.name.size(),
                UINT16_MAX, val.name.substr(0, 80));
    pv.name_len = uint16_t(val.name.size());
    if (val.kind == ValueKind::param || val.kind == ValueKind::param_grad) {
      std::string_view name = val.name;
      if (val.kind == ValueKind::param_grad) name = name.substr(0, name.size() - 5);  // strip "@grad"
      Program::Binding b;
      b.name_at = pv.name_at;  // the value's name, or its leading part
      b.name_len = uint32_t(name.size());
      b.grad = val.kind == ValueKind::param_grad;
      pv.binding = int32_t(p.bindings_.size());
      p.bindings_.push_back(b);
    } else if (val.kind == ValueKind::input) {
      pv.binding = int32_t(p.bindings_.size());
      p.bindings_.emplace_back();
      if (last[v] >= 0) p.inputs_.push_back(ValueId(v));
    }
  }

  // Which leaf keeps each late-read value, and the choice tree of those leaves (with
  // their ancestors, so nested groups stay nested).
  std::vector<GateId> keeper(g.num_values(), -1);
  std::map<GateId, std::vector<GateId>> memo;
  GateChoices choices;
  // Tags of the two regions a leaf may have: values kept for its nodes, and the
  // temporaries of its nodes (shorter lives, planned apart).
  constexpr int kKept = 0, kTemporary = 1;
  // A node behind a gate runs only in runs where the gate's deepest leaf is open: its
  // outputs and workspace live in that leaf's share of its group's region (the node's
  // "home"), so the backward of the ops a step did not sample costs no memory.
  std::vector<GateId> home(g.num_nodes(), -1);
  if (space) {
    std::vector<std::pair<GateId, int>> leaves;
    for (NodeId n : order) {
      if (g.node(n).gate == kAlways || !gated_temporaries) continue;
      home[size_t(n)] = space->deepest_leaf(g.node(n).gate);
      if (home[size_t(n)] >= 0) leaves.emplace_back(home[size_t(n)], kTemporary);
    }
    for (size_t v = 0; v < g.num_values(); ++v) {
      if (late_gates[v].empty() || !in_arena(g.values()[v]) || is_output[v] || last[v] <= base_last[v]) continue;
      keeper[v] = keeping_leaf(*space, g.gate_of(ValueId(v)), late_gates[v], memo);
      if (keeper[v] >= 0) leaves.emplace_back(keeper[v], kKept);
    }
    choices = gate_choices(*space, std::move(leaves));
    p.tree_ = choices.tree;
    p.choice_gate_ = choices.gate_of_choice;
  }

  // The steps' attributes, copied into one table (graph/attrs.h): sized first, allocated
  // once. Steps whose attributes are equal (of one type that has operator==) share one
  // copy: a search step's thousands of convolutions and batch norms have a few dozen
  // distinct attributes.
  size_t attrs_bytes = 0;
  std::vector<int32_t> attrs_first(order.size(), -1);  // the earlier step whose copy step s shares
  {
    std::unordered_map<const AttrsType*, std::vector<int32_t>> distinct;  // per type, the steps holding a copy
    for (size_t s = 0; s < order.size(); ++s) {
      const Attrs& a = g.node(order[s]).attrs;
      const AttrsType* t = a.type();
      if (!t) continue;
      if (t->equal) {
        std::vector<int32_t>& held = distinct[t];
        for (int32_t h : held)
          if (t->equal(g.node(order[size_t(h)]).attrs.data(), a.data())) {
            attrs_first[s] = h;
            break;
          }
        if (attrs_first[s] >= 0) continue;
        held.push_back(int32_t(s));
      }
      attrs_bytes = AttrsTable::add_size(attrs_bytes, *t);
    }
  }
  p.attrs_ = AttrsTable(attrs_bytes);
  std::vector<uint32_t> attrs_at(order.size(), 0);
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
      b.op = n.op->name;
      b.kind = v.kind == ValueKind::gradient ? "gradient" : "activation";
      Program::Val& pv = p.vals_[size_t(out)];
      if (home[size_t(order[s])] >= 0 && !is_output[size_t(out)]) {
        b.choice = choices.at(home[size_t(order[s])], kTemporary);
        pv.home = narrow_choice(b.choice);
      }
      if (keeper[size_t(out)] >= 0) {
        // Two places: the short one (closed runs), and the choice's (open runs).
        planner::BufferRequest kept = b;
        kept.last_step = last[size_t(out)];
        kept.choice = choices.at(keeper[size_t(out)], kKept);
        kept.may_share_with = -1;
        kept.kind += " (kept)";
        b.last_step = std::max(base_last[size_t(out)], int32_t(s));
        pv.choice = narrow_choice(kept.choice);
        pv.buffer = int32_t(p.buffers_.size());  // and the kept place right after it
        p.buffers_.push_back(std::move(b));
        p.buffers_.push_back(std::move(kept));
        continue;
      }
      b.last_step = is_output[size_t(out)] ? last_step : std::max(last[size_t(out)], int32_t(s));
      if (options.inplace && k == 0 && n.op->inplace_input >= 0 && size_t(n.op->inplace_input) < n.inputs.size()) {
        ValueId in = n.inputs[size_t(n.op->inplace_input)];
        int32_t in_buffer = buffer_of[size_t(in)];
        if (in_buffer >= 0 && last[size_t(in)] == int32_t(s) && !is_output[size_t(in)] && keeper[size_t(in)] < 0 &&
            g.value(in).type.bytes() >= b.bytes && std::count(n.inputs.begin(), n.inputs.end(), in) == 1)
          b.may_share_with = in_buffer;
      }
      buffer_of[size_t(out)] = int32_t(p.buffers_.size());
      pv.buffer = int32_t(p.buffers_.size());
      p.buffers_.push_back(std::move(b));
    }
    Program::Step step;
    step.op = n.op;
    if (n.attrs.has_value()) {
      step.attrs_type = n.attrs.type();
      const int32_t first = attrs_first[s];
      step.attrs_at = attrs_at[s] = first >= 0 ? attrs_at[size_t(first)] : p.attrs_.add(n.attrs);
    }
    step.first_arg = uint32_t(p.arg_values_.size());
    step.num_inputs = uint32_t(n.inputs.size());
    step.num_outputs = uint32_t(n.outputs.size());
    step.gate = n.gate;
    step.backward = n.backward;
    // A node's name leads its first output's ("conv", "bn" of "bn.mean"): shared.
    const Program::Val* out0 = n.outputs.empty() ? nullptr : &p.vals_[size_t(n.outputs[0])];
    step.name_at = out0 && std::string_view(p.names_).substr(out0->name_at, out0->name_len).starts_with(n.name)
                       ? out0->name_at
                       : append_name(p.names_, n.name);
    step.name_len = uint32_t(n.name.size());
    for (ValueId in : n.inputs) {
      p.arg_values_.push_back(in);
      step.writes_param_grad = step.writes_param_grad || g.value(in).kind == ValueKind::param_grad;
    }
    for (ValueId out : n.outputs) p.arg_values_.push_back(out);
    if (size_t ws = workspace_of(g, n); ws > 0) {
      planner::BufferRequest b;
      b.name = n.name + ".workspace";
      b.bytes = ws;
      b.first_step = b.last_step = int32_t(s);
      b.op = n.op->name;
      b.kind = "workspace";
      if (home[size_t(order[s])] >= 0) b.choice = step.workspace_choice = choices.at(home[size_t(order[s])], kTemporary);
      step.workspace_buffer = int32_t(p.buffers_.size());
      p.buffers_.push_back(std::move(b));
    }
    p.steps_.push_back(std::move(step));
  }
  size_t widest = 0;
  for (const Program::Step& st : p.steps_) widest = std::max<size_t>(widest, st.num_inputs + st.num_outputs);
  p.args_.resize(widest);
  p.bound_.resize(p.bindings_.size());
  p.choice_open_.assign(p.tree_.choices.size(), 0);
  p.choice_base_.assign(p.tree_.choices.size(), -1);
  p.shrink_tables();
  return p;
}

void Program::apply_plan() {
  for (Val& v : vals_) {
    if (v.buffer >= 0) v.offset = int64_t(plan_.offsets[size_t(v.buffer)]);
    if (v.choice >= 0) v.choice_offset = int64_t(plan_.offsets[size_t(v.buffer) + 1]);
  }
  for (Step& s : steps_)
    if (s.workspace_buffer >= 0) s.workspace_offset = int64_t(plan_.offsets[size_t(s.workspace_buffer)]);
}

Program compile(const Graph& g, const CompileOptions& options) {
  Program p = lower(g, options);
  CompileTimer timer;
  p.plan_ = planner::plan_with_choices(p.buffers_, p.tree_, options.strategy);
  p.apply_plan();
  return p;
}

const char* Program::step_op(size_t s) const { return steps_[s].op->name; }

std::string_view Program::step_name(size_t s) const {
  return std::string_view(names_).substr(steps_[s].name_at, steps_[s].name_len);
}

std::string_view Program::name(ValueId v) const {
  return std::string_view(names_).substr(vals_[size_t(v)].name_at, vals_[size_t(v)].name_len);
}

std::span<const ValueId> Program::step_inputs(size_t s) const {
  return std::span<const ValueId>(arg_values_.data() + steps_[s].first_arg, steps_[s].num_inputs);
}

std::span<const ValueId> Program::step_outputs(size_t s) const {
  return std::span<const ValueId>(arg_values_.data() + steps_[s].first_arg + steps_[s].num_inputs,
                                  steps_[s].num_outputs);
}

void Program::bind(const ParamStore& params) {
  for (size_t v = 0; v < vals_.size(); ++v) {
    const Val& val = vals_[v];
    if (val.kind != ValueKind::param && val.kind != ValueKind::param_grad) continue;
    Binding& b = bindings_[size_t(val.binding)];
    const std::string_view name = std::string_view(names_).substr(b.name_at, b.name_len);
    const ParamStore::Entry& e = params.entry(name);
    if (b.grad && e.grad_index < 0) fail("parameter '{}' ({}) has no gradient", name, param_kind_name(e.kind));
    b.entry = b.grad ? params.entries()[size_t(e.grad_index)].get() : &e;
    const Tensor& t = b.entry->tensor;
    const TensorType& type = type_of(val);
    if (t.shape() != type.shape || t.dtype() != type.dtype)
      fail("parameter '{}' in the store has shape {}, the graph expects {}", this->name(ValueId(v)), t.shape().str(),
           type.shape.str());
  }
  bound_store_ = &params;
  bound_layout_ = params.layout_version();
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

// Clears the re-entrancy flag when run() leaves, by return or by throw.
struct RunningGuard {
  std::atomic<bool>& flag;
  ~RunningGuard() { flag.store(false, std::memory_order_release); }
};
}  // namespace

void set_check_numerics(bool on) { g_check_numerics.store(on, std::memory_order_relaxed); }
bool check_numerics() { return g_check_numerics.load(std::memory_order_relaxed); }

void Program::check_inputs_finite(const ParamStore& params, std::span<const Feed> feeds) const {
  for (const Feed& f : feeds)
    if (int64_t i = first_non_finite(f.tensor); i >= 0)
      fail("check-numerics: input '{}' holds a non-finite value ({} at element {})", name(f.value),
           f.tensor.f32()[i], i);
  for (const Binding& b : bindings_) {
    if (!b.entry || b.grad) continue;
    if (int64_t i = first_non_finite(b.entry->tensor); i >= 0)
      fail("check-numerics: parameter '{}' holds a non-finite value ({} at element {}) before the run",
           std::string_view(names_).substr(b.name_at, b.name_len), b.entry->tensor.f32()[i], i);
  }
}

void Program::check_step_finite(size_t step) const {
  const Step& s = steps_[step];
  for (uint32_t j = s.num_inputs; j < s.num_inputs + s.num_outputs; ++j) {
    const size_t a = s.first_arg + size_t(j);  // args_ holds the running step's tensors
    if (int64_t i = first_non_finite(args_[j]); i >= 0)
      fail("check-numerics: op {} (node '{}', step {} of {}) produced a non-finite value in '{}' ({} at element {}); "
           "its inputs were finite",
           s.op->name, step_name(step), step, steps_.size(), name(arg_values_[a]), args_[j].f32()[i], i);
  }
}

// The base of choice c in this run, or 0 when it is closed (nothing that runs then
// touches memory placed under it).
int64_t Program::base_of(int32_t c) const { return c >= 0 ? std::max<int64_t>(choice_base_[size_t(c)], 0) : 0; }

Tensor Program::tensor_of(ValueId v, std::byte* base) const {
  const Val& val = vals_[size_t(v)];
  const TensorType& type = type_of(val);
  if (val.choice >= 0 && choice_base_[size_t(val.choice)] >= 0)
    return Tensor(base + choice_base_[size_t(val.choice)] + val.choice_offset, type.shape, type.dtype);
  if (val.offset >= 0) return Tensor(base + base_of(val.home) + val.offset, type.shape, type.dtype);
  return val.binding >= 0 ? bound_[size_t(val.binding)] : Tensor();
}

void Program::run_prefix(Arena& arena, const ParamStore& params, std::initializer_list<Feed> feeds, size_t steps) {
  if (!tree_.empty()) fail("run_prefix: this program's memory depends on run-time gates; run it whole");
  struct Limit {
    size_t& limit;
    ~Limit() { limit = SIZE_MAX; }
  } reset{step_limit_};
  step_limit_ = steps;
  run(arena, params, feeds);
}

void Program::run(Arena& arena, const ParamStore& params, std::span<const Feed> feeds, const GateValues* gates,
                  Profile* profile) {
  if (running_->exchange(true, std::memory_order_acq_rel))
    fail("Program::run: this program is already running on another thread (a Program is not re-entrant)");
  RunningGuard guard{*running_};
  if (arena.bytes() < arena_bytes())
    fail("arena of {} bytes is smaller than the {} bytes this program was planned for", arena.bytes(), arena_bytes());
  if (bound_store_ != &params || bound_layout_ != params.layout_version()) bind(params);
  if (gates && gates->space() != gates_.get() && gates_)
    fail("run: the gate values are for another gate space than this program's");
  if (!tree_.empty()) {
    if (!gates) fail("run: this program's memory depends on run-time gates; pass the run's gate values");
    for (size_t c = 0; c < choice_gate_.size(); ++c) choice_open_[c] = gates->open(choice_gate_[c]) ? 1 : 0;
    planner::place_choices(tree_, plan_, choice_open_, choice_base_);
  }
  const uint8_t* open = gates && !gates->open().empty() ? gates->open().data() : nullptr;
  for (ValueId v : inputs_) {
    const Val& val = vals_[size_t(v)];
    if (val.handed) continue;
    const Feed* feed = nullptr;
    for (const Feed& f : feeds)
      if (f.value == v) feed = &f;
    if (!feed) fail("run: no feed for input '{}'", name(v));
    const TensorType& type = type_of(val);
    if (feed->tensor.shape() != type.shape || feed->tensor.dtype() != type.dtype)
      fail("run: input '{}' expects {} {}, was fed {} {}", name(v), dtype_name(type.dtype), type.shape.str(),
           dtype_name(feed->tensor.dtype()), feed->tensor.shape().str());
    bound_[size_t(val.binding)] = feed->tensor;
  }
  for (const Binding& b : bindings_)
    if (b.entry) bound_[size_t(&b - bindings_.data())] = b.entry->tensor;
  std::byte* base = arena.base();
  const bool checking = check_numerics();
  if (checking) check_inputs_finite(params, feeds);
  const size_t end = std::min(steps_.size(), step_limit_);
  for (size_t k = 0; k < end; ++k) {
    const Step& s = steps_[k];
    if (s.gate != kAlways && open && !open[size_t(s.gate)]) continue;
    // The step's tensors, in a scratch as wide as the widest step.
    const uint32_t n = s.num_inputs + s.num_outputs;
    for (uint32_t i = 0; i < n; ++i) args_[i] = tensor_of(arg_values_[s.first_arg + i], base);
    if (s.writes_param_grad)
      for (uint32_t i = 0; i < s.num_inputs; ++i)
        if (args_[i].empty())
          fail("run: the gradient '{}' has no storage in the parameter store in this run (its gate is open, so a "
               "step writes it)", name(arg_values_[s.first_arg + i]));
    RunContext ctx{attrs_.at(s.attrs_at), s.attrs_type, std::span<const Tensor>(args_.data(), s.num_inputs),
                   std::span<const Tensor>(args_.data() + s.num_inputs, s.num_outputs),
                   s.workspace_offset >= 0 ? static_cast<void*>(base + base_of(s.workspace_choice) + s.workspace_offset)
                                           : nullptr,
                   open};
    if (!profile) {
      s.op->forward(ctx);
      if (checking) check_step_finite(k);
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    s.op->forward(ctx);
    profile->add(s.op->name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (checking) check_step_finite(k);
  }
}

Tensor Program::output(const Arena& arena, ValueId v) const {
  if (v < 0 || size_t(v) >= vals_.size()) fail("output: {} is not a value of this program", v);
  const Val& val = vals_[size_t(v)];
  if (val.offset < 0) fail("'{}' is not an arena value of this program", name(v));
  return tensor_of(v, arena.base());
}

std::vector<std::string> Program::grad_params() const {
  std::vector<std::string> names;
  for (const GradTarget& t : grad_targets())
    if (std::find(names.begin(), names.end(), t.param) == names.end()) names.push_back(t.param);
  return names;
}

std::vector<Program::GradTarget> Program::grad_targets() const {
  std::vector<GradTarget> out;
  for (const Step& s : steps_) {
    if (!s.writes_param_grad) continue;
    for (uint32_t i = 0; i < s.num_inputs; ++i) {
      const Val& val = vals_[size_t(arg_values_[s.first_arg + i])];
      if (val.kind != ValueKind::param_grad) continue;
      const Binding& b = bindings_[size_t(val.binding)];
      out.push_back({std::string(std::string_view(names_).substr(b.name_at, b.name_len)), s.gate});
    }
  }
  return out;
}

size_t Program::persistent_bytes(const ParamStore& params) const {
  size_t total = 0;
  for (const Val& v : vals_)
    if (v.kind == ValueKind::param || v.kind == ValueKind::param_grad) total += type_of(v).bytes();
  return total;
}

size_t Program::table_bytes() const {
  static_assert(sizeof(Val) == 48, "a value's entry is meant to stay 48 bytes");
  size_t bytes = steps_.capacity() * sizeof(Step) + attrs_.bytes() + order_.capacity() * sizeof(NodeId) +
                 arg_values_.capacity() * sizeof(ValueId) + args_.capacity() * sizeof(Tensor) +
                 vals_.capacity() * sizeof(Val) + types_.capacity() * sizeof(TensorType) +
                 inputs_.capacity() * sizeof(ValueId) +
                 bindings_.capacity() * sizeof(Binding) + bound_.capacity() * sizeof(Tensor) + names_.capacity() +
                 choice_gate_.capacity() * sizeof(GateId) + choice_open_.capacity() + choice_base_.capacity() * 8 +
                 plan_.groups.capacity() * sizeof(planner::GroupRegion) + plan_.choice_bytes.capacity() * 8;
  for (const planner::ChoiceGroup& g : tree_.groups) bytes += sizeof(g) + g.name.capacity();
  for (const planner::Choice& c : tree_.choices) bytes += sizeof(c) + c.name.capacity();
  return bytes;
}

size_t Program::planning_bytes() const { return planner::heap_bytes(buffers_) + plan_.offsets.capacity() * sizeof(size_t); }

void Program::release_planning_data() {
  std::vector<planner::BufferRequest>().swap(buffers_);
  std::vector<size_t>().swap(plan_.offsets);
}

void Program::shrink_tables() {
  steps_.shrink_to_fit();
  order_.shrink_to_fit();
  arg_values_.shrink_to_fit();
  args_.shrink_to_fit();
  vals_.shrink_to_fit();
  types_.shrink_to_fit();
  inputs_.shrink_to_fit();
  bindings_.shrink_to_fit();
  bound_.shrink_to_fit();
  names_.shrink_to_fit();
  buffers_.shrink_to_fit();
}

}  // namespace onnas::graph
