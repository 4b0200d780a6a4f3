#include "graph/gates.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/error.h"

namespace onnas::graph {

int32_t GateSpace::add_group(std::string name, GateId parent, int capacity) {
  if (parent != kAlways && (parent < 0 || size_t(parent) >= gates_.size() || !is_leaf(parent)))
    fail("gate group '{}': parent {} is not a leaf gate", name, parent);
  if (capacity < 1) fail("gate group '{}': capacity {} is below 1", name, capacity);
  groups_.push_back({std::move(name), parent, capacity});
  return int32_t(groups_.size()) - 1;
}

GateId GateSpace::add_leaf(int32_t group, std::string name) {
  if (group < 0 || size_t(group) >= groups_.size()) fail("gate '{}': group {} does not exist", name, group);
  gates_.push_back({Kind::leaf, std::move(name), group, {}});
  const GateId id = GateId(gates_.size()) - 1;
  implied_.push_back(compute_implied(gates_.back(), id));
  depth_.push_back(int(implied_.back().size()) - 1);
  return id;
}

GateId GateSpace::derived(Kind kind, std::vector<GateId> operands) {
  std::sort(operands.begin(), operands.end());
  operands.erase(std::unique(operands.begin(), operands.end()), operands.end());
  if (kind == Kind::all) {
    operands.erase(std::remove(operands.begin(), operands.end(), kAlways), operands.end());
    if (operands.empty()) return kAlways;
  } else {
    if (operands.empty() || operands.front() == kAlways) return kAlways;
  }
  if (operands.size() == 1) return operands[0];
  for (GateId g : operands)
    if (g < 0 || size_t(g) >= gates_.size()) fail("gate {} does not exist", g);
  auto key = std::make_pair(kind, operands);
  if (auto it = made_.find(key); it != made_.end()) return it->second;
  // Operands by id: names of nested derived gates would grow with every level.
  std::string name = kind == Kind::all ? "all(" : "any(";
  for (size_t i = 0; i < operands.size(); ++i) name += fmt::format("{}#{}", i ? ", " : "", operands[i]);
  gates_.push_back({kind, name + ")", -1, operands});
  const GateId id = GateId(gates_.size()) - 1;
  implied_.push_back(compute_implied(gates_.back(), id));
  depth_.push_back(0);
  made_.emplace(std::move(key), id);
  return id;
}

GateId GateSpace::all_of(std::span<const GateId> gates) { return derived(Kind::all, {gates.begin(), gates.end()}); }
GateId GateSpace::any_of(std::span<const GateId> gates) { return derived(Kind::any, {gates.begin(), gates.end()}); }

int GateSpace::depth(GateId leaf) const { return depth_[size_t(leaf)]; }

void GateSpace::evaluate(std::span<const uint8_t> flags, std::span<uint8_t> open) const {
  // Operands and parents are made before what uses them, so one pass in id order.
  for (size_t i = 0; i < gates_.size(); ++i) {
    const Gate& g = gates_[i];
    switch (g.kind) {
      case Kind::leaf: {
        const GateId parent = groups_[size_t(g.group)].parent;
        open[i] = flags[i] && (parent == kAlways || open[size_t(parent)]);
        break;
      }
      case Kind::all: {
        uint8_t v = 1;
        for (GateId o : g.operands) v &= open[size_t(o)];
        open[i] = v;
        break;
      }
      case Kind::any: {
        uint8_t v = 0;
        for (GateId o : g.operands) v |= open[size_t(o)];
        open[i] = v;
        break;
      }
    }
  }
}

const std::vector<GateId>& GateSpace::implied_leaves(GateId g) const {
  static const std::vector<GateId> none;
  return g == kAlways ? none : implied_[size_t(g)];
}

std::vector<GateId> GateSpace::compute_implied(const Gate& gate, GateId self) const {
  std::vector<GateId> out;
  if (gate.kind == Kind::leaf) {
    out.push_back(self);
    const GateId parent = groups_[size_t(gate.group)].parent;
    if (parent != kAlways) out.insert(out.end(), implied_[size_t(parent)].begin(), implied_[size_t(parent)].end());
  } else if (gate.kind == Kind::all) {
    for (GateId o : gate.operands) out.insert(out.end(), implied_[size_t(o)].begin(), implied_[size_t(o)].end());
  } else {
    out = implied_[size_t(gate.operands[0])];
    for (size_t k = 1; k < gate.operands.size(); ++k) {
      const std::vector<GateId>& other = implied_[size_t(gate.operands[k])];
      std::vector<GateId> common;
      std::set_intersection(out.begin(), out.end(), other.begin(), other.end(), std::back_inserter(common));
      out = std::move(common);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool GateSpace::implies(GateId g, GateId h) const {
  if (h == kAlways || g == h) return true;
  if (g == kAlways) return false;
  const Gate& gh = gates_[size_t(h)];
  if (gh.kind == Kind::leaf) {
    const std::vector<GateId>& leaves = implied_leaves(g);
    return std::binary_search(leaves.begin(), leaves.end(), h);
  }
  if (gh.kind == Kind::all) {
    for (GateId o : gh.operands)
      if (!implies(g, o)) return false;
    return true;
  }
  for (GateId o : gh.operands)
    if (implies(g, o)) return true;
  return false;
}

GateId GateSpace::deepest_leaf(GateId g) const {
  GateId best = -1;
  int best_depth = -1;
  for (GateId l : implied_leaves(g))
    if (const int d = depth(l); d > best_depth) best = l, best_depth = d;
  return best;
}

GateChoices gate_choices(const GateSpace& space, std::vector<std::pair<GateId, int>> leaves) {
  std::vector<std::pair<GateId, int>> all;
  for (auto [leaf, tag] : leaves)
    for (GateId l = leaf; l != kAlways; l = space.group(space.group_of(l)).parent) all.emplace_back(l, tag);
  // Group by (group, tag), groups in creation order: a parent leaf's group is made
  // before the groups under it, so every group comes after its parent choice.
  std::sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
    const int32_t ga = space.group_of(a.first), gb = space.group_of(b.first);
    if (ga != gb) return ga < gb;
    if (a.second != b.second) return a.second < b.second;
    return a.first < b.first;
  });
  all.erase(std::unique(all.begin(), all.end()), all.end());
  GateChoices out;
  std::map<std::pair<int32_t, int>, int32_t> group_index;
  for (auto [l, tag] : all) {
    const int32_t sg = space.group_of(l);
    if (!group_index.count({sg, tag})) {
      const GateId parent = space.group(sg).parent;
      group_index[{sg, tag}] = int32_t(out.tree.groups.size());
      out.tree.groups.push_back({tag ? fmt::format("{} #{}", space.group(sg).name, tag) : space.group(sg).name,
                                 parent == kAlways ? -1 : out.choice_of.at({parent, tag}), space.group(sg).capacity});
    }
    out.choice_of[{l, tag}] = int32_t(out.tree.choices.size());
    out.tree.choices.push_back({space.name(l), group_index[{sg, tag}]});
    out.gate_of_choice.push_back(l);
  }
  return out;
}

void GateValues::set_all() {
  for (size_t i = 0; i < flags_.size(); ++i) flags_[i] = 1;
}

void GateValues::evaluate() {
  if (!space_) return;
  if (space_->size() != flags_.size())
    fail("gate values were made for {} gates, the gate space now has {} (make them after compiling every program)",
         flags_.size(), space_->size());
  space_->evaluate(flags_, open_);
  std::fill(counts_.begin(), counts_.end(), 0);
  for (size_t i = 0; i < open_.size(); ++i) {
    if (!open_[i] || !space_->is_leaf(GateId(i))) continue;
    const int32_t g = space_->group_of(GateId(i));
    if (++counts_[size_t(g)] > space_->group(g).capacity)
      fail("gate group '{}' has more than {} open gates in this run (its capacity; '{}' is one too many)",
           space_->group(g).name, space_->group(g).capacity, space_->name(GateId(i)));
  }
}

}  // namespace onnas::graph
