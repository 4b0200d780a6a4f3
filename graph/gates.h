// Gates: the run-time conditions of a family of compiled programs. A node may carry a
// gate; a run skips the nodes whose gate is closed. This is how the sample of a search
// step (which ops of an edge get gradients, which pair of a node does) enters the
// engine as data: the programs are compiled once, with every candidate present, and
// each step only sets flags.
//
//   auto gates = std::make_shared<GateSpace>();
//   int32_t edge = gates->add_group("cells.normal.edges.0", kAlways, /*capacity=*/2);
//   GateId conv = gates->add_leaf(edge, "conv_3x3");        // set per run
//   Graph g;
//   g.use_gates(gates);
//   { Graph::GateScope s(g, conv); ... }                   // nodes emitted here carry `conv`
//   ...compile...
//   GateValues v(*gates);
//   v.set(conv, true);
//   v.evaluate();                                           // then program.run(..., &v)
//
// Leaves are grouped: at most `capacity` leaves of a group are open in a run, and only
// while the group's parent leaf is (groups nest). The planner uses that structure
// (memory_planner/choices.h): a value kept only for nodes behind a leaf is planned in
// that leaf's share of its group's region. Derived gates (all_of, any_of) are what
// autodiff makes when gated gradients meet; they are evaluated from the leaves.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "memory_planner/choices.h"

namespace onnas::graph {

using GateId = int32_t;
constexpr GateId kAlways = -1;

class GateSpace {
 public:
  // A group of leaves, open only while `parent` (a leaf, or kAlways) is open.
  int32_t add_group(std::string name, GateId parent, int capacity);
  GateId add_leaf(int32_t group, std::string name);
  // Derived gates, made once per distinct operand set: kAlways operands drop out; a
  // single operand is itself; all_of of nothing is kAlways; any_of with kAlways is kAlways.
  GateId all_of(std::span<const GateId> gates);
  GateId any_of(std::span<const GateId> gates);
  GateId all_of(GateId a, GateId b) {
    const GateId both[] = {a, b};
    return all_of(both);
  }

  size_t size() const { return gates_.size(); }
  size_t num_groups() const { return groups_.size(); }
  bool is_leaf(GateId g) const { return gates_[size_t(g)].kind == Kind::leaf; }
  int32_t group_of(GateId leaf) const { return gates_[size_t(leaf)].group; }
  const std::string& name(GateId g) const { return gates_[size_t(g)].name; }
  struct Group {
    std::string name;
    GateId parent;
    int capacity;
  };
  const Group& group(int32_t g) const { return groups_[size_t(g)]; }
  // The number of leaves above `leaf` (0 under kAlways).
  int depth(GateId leaf) const;

  // Every effective value from the leaves' flags (indexed by GateId; entries of derived
  // gates are ignored): a leaf is open when its flag is set and its parent is open.
  void evaluate(std::span<const uint8_t> flags, std::span<uint8_t> open) const;
  // The leaves that are open whenever `g` is (its own ancestors for a leaf; for all_of
  // the union of its operands'; for any_of those common to every operand).
  // Computed once, when the gate is made; sorted.
  const std::vector<GateId>& implied_leaves(GateId g) const;
  // Whether `g` open implies `h` open, as far as the structure shows.
  bool implies(GateId g, GateId h) const;
  // The deepest leaf `g` implies, or -1 (kAlways, or a gate that implies no leaf).
  GateId deepest_leaf(GateId g) const;

 private:
  enum class Kind : uint8_t { leaf, all, any };
  struct Gate {
    Kind kind;
    std::string name;
    int32_t group = -1;          // leaves
    std::vector<GateId> operands;  // derived
  };
  GateId derived(Kind kind, std::vector<GateId> operands);
  std::vector<GateId> compute_implied(const Gate& gate, GateId self) const;
  std::vector<Gate> gates_;
  std::vector<std::vector<GateId>> implied_;  // per gate
  std::vector<int> depth_;                    // per leaf (0 for derived gates)
  std::vector<Group> groups_;
  std::map<std::pair<Kind, std::vector<GateId>>, GateId> made_;
};

// The planner's view of some leaves: a choice tree (memory_planner/choices.h) of those
// leaves and their ancestors, groups and choices in the order the planner needs. A
// leaf may be wanted under several tags (a program keeps values for the backward in
// one region and holds the backward's temporaries in another, with other lifetimes):
// each tag gets groups of its own, nested like the gates.
struct GateChoices {
  planner::ChoiceTree tree;
  std::vector<GateId> gate_of_choice;                // per choice of the tree
  std::map<std::pair<GateId, int>, int32_t> choice_of;  // per (leaf, tag)
  int32_t at(GateId leaf, int tag = 0) const { return choice_of.at({leaf, tag}); }
};
GateChoices gate_choices(const GateSpace& space, std::vector<std::pair<GateId, int>> leaves);

// The flags of one run and their evaluation; sized once, so setting and evaluating
// allocate nothing. Programs read open() (indexed by GateId).
class GateValues {
 public:
  GateValues() = default;
  explicit GateValues(const GateSpace& space)
      : space_(&space), flags_(space.size(), 0), open_(space.size(), 0), counts_(space.num_groups(), 0) {}
  void set(GateId leaf, bool open) { flags_[size_t(leaf)] = open ? 1 : 0; }
  void clear() { std::fill(flags_.begin(), flags_.end(), 0); }
  void set_all();  // every leaf open
  // Throws onnas::Error if a group has more open leaves than its capacity.
  void evaluate();
  bool open(GateId g) const { return g == kAlways || open_[size_t(g)] != 0; }
  std::span<const uint8_t> open() const { return open_; }
  const GateSpace* space() const { return space_; }

 private:
  const GateSpace* space_ = nullptr;
  std::vector<uint8_t> flags_, open_;
  std::vector<int> counts_;
};

}  // namespace onnas::graph
